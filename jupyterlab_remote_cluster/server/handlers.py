"""Authenticated routes under <base_url>/remote-cluster/.

Every route requires a Jupyter-authenticated user (token, cookie + XSRF, or whatever
identity provider the server uses); `api/*` is forwarded to the agent as-is, minus the
credentials: the agent trusts its private socket, never the browser's headers.
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..agent_process import AgentProcess, AgentUnavailable

URL_NAMESPACE = "remote-cluster"
AUTH_RESOURCE = "remote-cluster"
# Only these request headers reach the agent.
FORWARDED_HEADERS = ("Content-Type", "Accept")


class AgentApiHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def agent(self) -> AgentProcess:
        return self.settings["remote_cluster_agent"]

    def write_api_error(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    async def _forward(self, path: str) -> None:
        headers = {k: self.request.headers[k] for k in FORWARDED_HEADERS if k in self.request.headers}
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        target = "/api/" + path
        if self.request.query:
            target += "?" + self.request.query
        try:
            res = await self.agent.request(self.request.method, target, body=body, headers=headers)
        except AgentUnavailable as e:
            self.write_api_error(503, "agent-unavailable", str(e))
            return
        self.set_status(res.code, res.reason)
        self.set_header("Content-Type", res.headers.get("Content-Type", "application/json"))
        self.set_header("Cache-Control", "no-store")
        self.finish(res.body or b"")

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    @authorized
    async def patch(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        await self._forward(path)
