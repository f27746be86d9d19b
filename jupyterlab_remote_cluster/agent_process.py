"""Start, supervise and talk to the Node agent.

One agent per user serves every Jupyter server, kernel and session: it listens on a
Unix socket in a 0700 directory of the Jupyter runtime dir. If a live agent already
answers there, we use it; otherwise we start one and own it. An owned agent that dies
is restarted with backoff; it exits by itself when we do (its stdin is our pipe).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import stat
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from jupyter_core.paths import jupyter_config_dir, jupyter_data_dir, jupyter_runtime_dir
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.netutil import Resolver
from tornado.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient

from .node_runtime import NodeNotFoundError, agent_script, find_node, helper_script

READY_TIMEOUT_S = 20.0
# The API client (the frontend's requests, the provisioner's): a submit may wait for the
# user to answer a prompt (a one-time code, a host key).
API_TIMEOUT_S = 300.0
# A download of a large file over a slow link.
DOWNLOAD_TIMEOUT_S = 6 * 3600.0
# The largest answer: a file the drive opens in an editor (64 MiB), base64 in JSON.
API_MAX_BODY = 96 * 1024 * 1024
# A download is passed on as it comes, never held: any size.
STREAM_MAX_BODY = 1 << 50
# The proxy client (what sessions serve): its own connections, so a few hung dashboard
# requests never hold up the API or a kernel poll.
PROXY_TIMEOUT_S = 60.0
PROXY_MAX_CLIENTS = 32
PROXY_MAX_BODY = 256 * 1024 * 1024
# A restart storm (agent dying right after start) stops after this many tries.
MAX_FAST_FAILURES = 5


class AgentUnavailable(RuntimeError):
    """The agent cannot be reached or started; the message is meant for the user."""


class UnixSocketResolver(Resolver):
    """Resolve every host name to one Unix socket, so tornado's HTTP client talks to it."""

    def initialize(self, socket_path: str) -> None:  # type: ignore[override]
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC):  # type: ignore[override]
        return [(socket.AF_UNIX, self.socket_path)]


def private_dir(parent: Path) -> Path:
    """`parent/remote-cluster`, created 0700; refuse one that others can enter."""
    path = parent / "remote-cluster"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise AgentUnavailable(f"{path} must be owned by you with mode 0700; fix or remove it.")
    return path


def user_settings_dir() -> str:
    """JupyterLab's user settings directory (same rule as jupyterlab.commands)."""
    return os.environ.get("JUPYTERLAB_SETTINGS_DIR") or os.path.join(jupyter_config_dir(), "lab", "user-settings")


class AgentProcess:
    def __init__(
        self,
        runtime_dir: str | Path | None = None,
        log: logging.Logger | None = None,
        base_url: str = "/",
        agent_args: list[str] | None = None,
    ) -> None:
        self.log = log or logging.getLogger(__name__)
        self.base_url = base_url
        self.agent_args = list(agent_args or [])
        sockets = private_dir(Path(runtime_dir or jupyter_runtime_dir()))
        self.socket_path = str(sockets / "agent.sock")
        # The proxy to what sessions serve listens apart: nothing proxied reaches the API.
        self.proxy_socket_path = str(sockets / "proxy.sock")
        self._http: SimpleAsyncHTTPClient | None = None
        self._stream_http: SimpleAsyncHTTPClient | None = None
        self._proxy_http: SimpleAsyncHTTPClient | None = None
        # A plain Popen, not an asyncio subprocess: an asyncio transport belongs to the loop
        # that made it, and one collected after that loop closed (headless callers, pytest)
        # raises from __del__ and kills the agent.
        self._proc: subprocess.Popen | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._fast_failures = 0
        self._stopping = False

    @property
    def resolver(self) -> UnixSocketResolver:
        return UnixSocketResolver(socket_path=self.socket_path)

    @property
    def proxy_resolver(self) -> UnixSocketResolver:
        return UnixSocketResolver(socket_path=self.proxy_socket_path)

    @property
    def _client(self) -> SimpleAsyncHTTPClient:
        # Created on first use: tornado binds a client to the IOLoop current at creation,
        # and the extension is constructed before the server's loop runs.
        if self._http is None:
            self._http = SimpleAsyncHTTPClient(force_instance=True, resolver=self.resolver, max_body_size=API_MAX_BODY)
        return self._http

    @property
    def _stream_client(self) -> SimpleAsyncHTTPClient:
        if self._stream_http is None:
            self._stream_http = SimpleAsyncHTTPClient(
                force_instance=True, resolver=self.resolver, max_body_size=STREAM_MAX_BODY
            )
        return self._stream_http

    @property
    def _proxy_client(self) -> SimpleAsyncHTTPClient:
        if self._proxy_http is None:
            self._proxy_http = SimpleAsyncHTTPClient(
                force_instance=True,
                resolver=self.proxy_resolver,
                max_clients=PROXY_MAX_CLIENTS,
                max_body_size=PROXY_MAX_BODY,
            )
        return self._proxy_http

    @property
    def owned_pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _bind_loop(self) -> None:
        """Tornado clients and asyncio locks belong to one event loop; headless callers
        (jupyter_client's run_sync, pytest) may switch loops between calls."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._http = None
            self._stream_http = None
            self._proxy_http = None
            self._lock = asyncio.Lock()

    async def _ready_request(self, path: str, **kwargs: Any) -> HTTPRequest:
        """The agent running (started if needed) and a request to it; never follows redirects."""
        if self._stopping:
            # The server is shutting down and stopped the agent: say so, never restart it.
            raise AgentUnavailable("The remote-cluster agent has stopped (the Jupyter server is shutting down).")
        self._bind_loop()
        await self.ensure_running()
        return HTTPRequest(f"http://agent{path}", allow_nonstandard_methods=True, follow_redirects=False, **kwargs)

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HTTPResponse:
        """Send one HTTP request to the agent (starting it if needed); never raises on 4xx/5xx."""
        req = await self._ready_request(
            path, method=method, body=body, headers=headers or {}, request_timeout=API_TIMEOUT_S
        )
        try:
            return await self._client.fetch(req, raise_error=False)
        except OSError as e:
            if isinstance(e, (HTTPStreamClosedError, ConnectionResetError)) and method not in ("GET", "HEAD"):
                # Sent, and the answer cut off: the agent may have done it. Done twice, a
                # change is wrong (a detach answered "no such kernel"): say so instead.
                raise AgentUnavailable(f"The remote-cluster agent did not finish answering: {e}") from e
            # The agent died since (a crash, a kill): start it again once, then retry.
            await self.ensure_running(check=True)
        try:
            return await self._client.fetch(req, raise_error=False)
        except OSError as e:
            raise AgentUnavailable(f"The remote-cluster agent did not answer: {e}") from e

    async def stream(
        self, path: str, on_header: Callable[[str], None], on_chunk: Callable[[bytes], None]
    ) -> HTTPResponse:
        """A GET whose answer is passed on as it comes (the drive's downloads): its header
        lines to `on_header`, its body to `on_chunk`; never raises on 4xx/5xx."""
        req = await self._ready_request(
            path,
            method="GET",
            request_timeout=DOWNLOAD_TIMEOUT_S,
            header_callback=on_header,
            streaming_callback=on_chunk,
        )
        try:
            return await self._stream_client.fetch(req, raise_error=False)
        except OSError as e:
            raise AgentUnavailable(f"The remote-cluster agent did not answer: {e}") from e

    async def proxy_request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HTTPResponse:
        """One request to the agent's proxy socket (`/proxy/<key>/<port>/...`); never raises
        on 4xx/5xx. Not retried: it may not be idempotent."""
        req = await self._ready_request(
            path,
            method=method,
            body=body,
            headers=headers or {},
            request_timeout=PROXY_TIMEOUT_S,
            connect_timeout=10,
            decompress_response=False,
        )
        try:
            return await self._proxy_client.fetch(req, raise_error=False)
        except OSError as e:
            raise AgentUnavailable(f"The remote-cluster agent did not answer: {e}") from e

    async def is_alive(self) -> bool:
        self._bind_loop()
        if not os.path.exists(self.socket_path):
            return False
        try:
            res = await self._client.fetch(
                HTTPRequest("http://agent/api/v1/health", request_timeout=5), raise_error=False
            )
        except (OSError, HTTPClientError):
            return False
        return res.code == 200

    async def ensure_running(self, check: bool = False) -> None:
        """With `check`, ask the agent itself instead of trusting the process we started."""
        self._bind_loop()
        async with self._lock:
            if (self.owned_pid is not None and not check) or await self.is_alive():
                return
            if self._proc is not None and self._proc.poll() is None:
                # Ours but not answering (or a zombie whose exit this loop never saw).
                try:
                    self._proc.kill()
                except ProcessLookupError:
                    pass
                self._proc = None
            if self._fast_failures >= MAX_FAST_FAILURES:
                raise AgentUnavailable(
                    "The remote-cluster agent keeps crashing at start; last output: " + " | ".join(self._stderr_tail)
                )
            await self._start()

    async def _start(self) -> None:
        try:
            node = find_node()
        except NodeNotFoundError as e:  # no runtime, or one too old: the user fixes it
            raise AgentUnavailable(str(e)) from e
        script = agent_script()
        if not script.exists():
            raise AgentUnavailable(
                f"{script} is missing: the package was installed without building the agent "
                "(run `npm run build:agent` in a source checkout)."
            )
        self.log.info("remote-cluster: starting agent %s %s", node, script)
        # The agent's output is drained by threads, not by tasks of this event loop: a
        # headless caller (jupyter_client's run_sync, pytest) may never run this loop again,
        # and an agent writing to a full pipe would stop dead (Node writes pipes synchronously).
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    node,
                    str(script),
                    "--socket",
                    self.socket_path,
                    "--proxy-socket",
                    self.proxy_socket_path,
                    "--settings-dir",
                    user_settings_dir(),
                    "--kernels-dir",
                    os.path.join(jupyter_data_dir(), "kernels"),
                    "--state-dir",
                    os.path.join(jupyter_data_dir(), "remote-cluster"),
                    "--base-url",
                    self.base_url,
                    "--helper",
                    str(helper_script()),
                    *self.agent_args,
                ],
                stdin=subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
            )
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        first_line: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        drains = [
            threading.Thread(target=self._drain, args=(fd, first), name="agent-output", daemon=True)
            for fd, first in ((out_r, first_line), (err_r, None))
        ]
        for t in drains:
            t.start()
        try:
            line = await asyncio.wait_for(asyncio.wrap_future(first_line), READY_TIMEOUT_S)
            ready: dict[str, Any] = json.loads(line) if line else {}
        except (asyncio.TimeoutError, ValueError):
            ready = {}
        if ready.get("event") != "ready":
            if proc.poll() is None:
                proc.kill()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, proc.wait)
            proc.stdin.close()
            # (its last words: read to the end of the pipe before quoting them)
            await loop.run_in_executor(None, drains[1].join, 2)
            self._fast_failures += 1
            raise AgentUnavailable("The remote-cluster agent failed to start: " + " | ".join(self._stderr_tail))
        self._proc = proc
        self.log.info("remote-cluster: agent %s listening on %s", proc.pid, self.socket_path)
        threading.Thread(
            target=self._supervise, args=(proc, asyncio.get_running_loop()), name="agent-supervisor", daemon=True
        ).start()

    def _drain(self, fd: int, first_line: concurrent.futures.Future | None) -> None:
        """Read the agent's output until it closes: the first line (stdout: the ready
        line) to `first_line`, every line to the log and the tail shown on failures."""
        with open(fd, "rb", buffering=0) as f:
            for raw in iter(f.readline, b""):
                if first_line is not None and not first_line.done():
                    first_line.set_result(raw)
                    continue
                text = raw.decode(errors="replace").rstrip()
                self._stderr_tail.append(text)
                self.log.info("remote-cluster agent: %s", text)
        if first_line is not None and not first_line.done():
            first_line.set_result(b"")

    def _supervise(self, proc: subprocess.Popen, loop: asyncio.AbstractEventLoop) -> None:
        """(a thread) Wait for the agent to exit; unless stopping, start it again on the loop
        that started it, after a back-off. A loop closed since (headless callers) leaves the
        restart to the next request."""
        started = time.monotonic()
        code = proc.wait()
        proc.stdin.close()
        if self._stopping:
            return
        lived = time.monotonic() - started
        self._fast_failures = self._fast_failures + 1 if lived < 10 else 0
        delay = min(30.0, 0.5 * 2**self._fast_failures)
        self.log.warning(
            "remote-cluster: agent %s exited with %s after %.1fs; restarting in %.1fs",
            proc.pid,
            code,
            lived,
            delay,
        )
        try:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._restart_after(delay)))
        except RuntimeError:  # that loop is closed
            pass

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            try:
                await self.ensure_running()
            except AgentUnavailable as e:
                self.log.error("remote-cluster: %s", e)

    @property
    def stopped(self) -> bool:
        """stop() was called: this agent never starts again."""
        return self._stopping

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            await loop.run_in_executor(None, proc.wait)
        for client in (self._http, self._stream_http, self._proxy_http):
            if client is not None:
                client.close()


_shared: AgentProcess | None = None


def set_agent(agent: AgentProcess) -> None:
    """The server extension registers its agent, so provisioners in that server share it."""
    global _shared
    _shared = agent


def get_agent(log: logging.Logger | None = None) -> AgentProcess:
    """The agent of this process: the server extension's, or one started on demand
    (nbclient, papermill: no Jupyter server runs; a live agent of the user is reused)."""
    global _shared
    if _shared is None or _shared.stopped:
        # (a server that stopped its agent leaves it behind: headless use gets a new one)
        _shared = AgentProcess(log=log)
    return _shared
