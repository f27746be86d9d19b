"""A client of a terminal (in a job, or on a login node), as JupyterLab's widget is one:
terminado's messages on the agent's WebSocket (what the server extension forwards), with
the shell's byte count kept to attach again after a drop."""

import asyncio
import json
import time

from jupyter_core.utils import run_sync
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyterlab_remote_cluster.agent_process import get_agent

from .conftest import agent_call


class TerminalClient:
    def __init__(self, sid: str | None = None, tid: str | None = None, profile: str | None = None):
        """A new terminal in session `sid`'s job, or on `profile`'s login node."""
        self.base = f"/api/v1/sessions/{sid}/terminals" if sid else f"/api/v1/profiles/{profile}/terminals"
        if tid is None:
            code, t = agent_call("POST", self.base, {"rows": 24, "cols": 80})
            assert code == 201, t
            tid = t["terminalId"]
        self.tid = tid
        self.screen = ""
        self.offset: int | None = None
        self.closed: tuple | None = None  # (code, reason) once the agent closed it
        self.ws = None
        self.attach()

    def attach(self, timeout: float = 60) -> None:
        """Attach (again: from the last output received); returns once the agent reached the shell."""
        query = "" if self.offset is None else f"?from={self.offset}"
        url = f"ws://agent{self.base}/{self.tid}/stream{query}"
        self.closed = None

        async def connect():
            return await websocket_connect(HTTPRequest(url, connect_timeout=30), resolver=get_agent().resolver)

        self.ws = run_sync(connect)()
        first = self._next(timeout)
        assert first == ["setup", {}], (first, self.closed)

    def _next(self, timeout: float):
        async def read():
            return await asyncio.wait_for(self.ws.read_message(), timeout)

        text = run_sync(read)()
        if text is None:
            self.closed = (self.ws.close_code, self.ws.close_reason)
            return None
        return json.loads(text)

    def type(self, text: str) -> None:
        async def write():
            await self.ws.write_message(json.dumps(["stdin", text]))

        run_sync(write)()

    def read_until(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0 and self.closed is None, f"no {needle!r} (closed: {self.closed}): {self.screen[-400:]!r}"
            msg = self._next(left)
            if msg and msg[0] == "stdout":
                self.screen += msg[1]
                self.offset = msg[2]
        return self.screen

    def wait_closed(self, timeout: float) -> tuple:
        deadline = time.monotonic() + timeout
        while self.closed is None:
            assert time.monotonic() < deadline, "the agent did not close the terminal's stream"
            msg = self._next(deadline - time.monotonic())
            if msg and msg[0] == "stdout":
                self.screen += msg[1]
                self.offset = msg[2]
        return self.closed

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
