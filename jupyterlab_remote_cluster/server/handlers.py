"""Authenticated routes under <base_url>/remote-cluster/.

Every route requires a Jupyter-authenticated and authorized user (token, cookie + XSRF,
or whatever identity provider the server uses), HTTP and WebSocket alike: an upgrade is
authenticated before it happens (cf. CVE-2024-28179 in jupyter-server-proxy). Requests
go to the agent's private socket without credentials: the agent trusts its socket,
never the browser's headers.

    remote-cluster/api/v1/events                          WebSocket  -> agent /api/v1/events
    remote-cluster/kernels/attach                      POST       a detached remote kernel -> this server's kernels
    remote-cluster/api/(.*)                            HTTP       -> agent /api/$1
    remote-cluster/sessions/<id>/proxy/<port>/(.*)     HTTP + WS  -> agent /proxy/<id>/<port>/$3
"""

from __future__ import annotations

import json
import re

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import httpclient, web, websocket

from ..agent_process import AgentProcess, AgentUnavailable
from ..provisioner import ATTACH_KWARG

URL_NAMESPACE = "remote-cluster"
AUTH_RESOURCE = "remote-cluster"
SESSION_RE = r"[0-9a-f]{6,32}"


def session_kernel_name(session: str) -> str:
    """The kernelspec the agent writes for a running session (src/agent/kernelspecs.ts)."""
    return f"remote-cluster-session-{session}"


# Only these request headers reach the agent (and through it, a dashboard).
FORWARDED_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "If-None-Match", "If-Modified-Since")
RETURNED_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Last-Modified", "Content-Encoding", "Location")


class AgentMixin:
    """Forwarding to the agent, shared by the HTTP and WebSocket handlers."""

    settings: dict
    request: "web.httputil.HTTPServerRequest"

    @property
    def agent(self) -> AgentProcess:
        return self.settings["remote_cluster_agent"]

    def write_api_error(self, status: int, code: str, message: str) -> None:
        self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
        self.finish(json.dumps({"error": {"code": code, "message": message}}))  # type: ignore[attr-defined]

    def target(self, path: str) -> str:
        return path + ("?" + self.request.query if self.request.query else "")

    async def forward_http(self, path: str) -> None:
        headers = {k: self.request.headers[k] for k in FORWARDED_HEADERS if k in self.request.headers}
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        try:
            res = await self.agent.request(self.request.method, self.target(path), body=body, headers=headers)
        except AgentUnavailable as e:
            self.write_api_error(503, "agent-unavailable", str(e))
            return
        self.set_status(res.code, res.reason)  # type: ignore[attr-defined]
        for name in RETURNED_HEADERS:
            if name in res.headers:
                self.set_header(name, res.headers[name])  # type: ignore[attr-defined]
        self.finish(res.body or b"")  # type: ignore[attr-defined]


class AgentApiHandler(AgentMixin, APIHandler):
    """`api/*`: the agent's REST API."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        await self.forward_http("/api/" + path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        await self.forward_http("/api/" + path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        await self.forward_http("/api/" + path)


class AttachKernelHandler(AgentMixin, APIHandler):
    """`kernels/attach`: give a kernel that outlived its Jupyter server to this one.

    The kernel keeps running in its job when the server that started it crashes or is
    killed; this starts a Jupyter kernel (in this server's kernel manager, so notebooks
    and consoles can connect to it) whose provisioner attaches to it instead of
    starting a new one. Its variables are intact.
    """

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        session = body.get("session") if isinstance(body, dict) else None
        kernel = body.get("kernel") if isinstance(body, dict) else None
        if not (isinstance(session, str) and re.fullmatch(SESSION_RE, session)) or not (
            isinstance(kernel, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", kernel)
        ):
            self.write_api_error(400, "invalid", 'Expected {"session": <session id>, "kernel": <remote kernel id>}.')
            return
        try:
            res = await self.agent.request("GET", f"/api/v1/sessions/{session}")
        except AgentUnavailable as e:
            self.write_api_error(503, "agent-unavailable", str(e))
            return
        info = json.loads(res.body or b"{}")
        if res.code != 200:
            self.write_api_error(404, "not-found", f"No session {session}.")
            return
        if kernel not in (info.get("detachedKernels") or []):
            # Attached already (here or by another server), or gone: never a second client.
            self.write_api_error(
                409, "not-detached", f"Kernel {kernel} is not a detached kernel of session {session} (any more)."
            )
            return
        try:
            kernel_id = await ensure_async(
                self.kernel_manager.start_kernel(
                    kernel_name=session_kernel_name(session), **{ATTACH_KWARG: kernel}
                )
            )
        except Exception as e:  # the agent's message says what went wrong, for the user
            self.log.warning("remote-cluster: attaching kernel %s of session %s failed: %s", kernel, session, e)
            self.write_api_error(502, "attach-failed", f"Could not attach kernel {kernel}: {e}")
            return
        model = await ensure_async(self.kernel_manager.kernel_model(kernel_id))
        self.set_status(201)
        self.finish(json.dumps(model, default=str))


class WebSocketForwarder(AgentMixin, JupyterHandler, websocket.WebSocketHandler):
    """A WebSocket spliced to one on the agent; authenticated before the upgrade."""

    auth_resource = AUTH_RESOURCE
    upstream: websocket.WebSocketClientConnection | None = None

    async def authorize_ws(self) -> None:
        if not await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "execute", AUTH_RESOURCE)
        ):
            raise web.HTTPError(403)

    async def open_upstream(self, path: str) -> None:
        protocols = [
            p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        try:
            await self.agent.ensure_running()
            self.upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(f"ws://agent{self.target(path)}", connect_timeout=60, request_timeout=60),
                resolver=self.agent.resolver,
                subprotocols=protocols or None,
                on_message_callback=self.on_upstream_message,
                max_message_size=64 * 1024 * 1024,
            )
        except (AgentUnavailable, OSError, httpclient.HTTPClientError, websocket.WebSocketError) as e:
            raise web.HTTPError(502, f"remote-cluster: {e}") from e

    async def upgrade(self, path: str, *args: str) -> None:
        await self.authorize_ws()
        await self.open_upstream(path)
        res = websocket.WebSocketHandler.get(self, *args)
        if res is not None:
            await res

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.upstream.selected_subprotocol if self.upstream else None

    def on_upstream_message(self, message: str | bytes | None) -> None:
        if message is None:  # the agent side closed
            if self.ws_connection is not None:
                self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass

    def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class EventsHandler(WebSocketForwarder):
    """`api/v1/events`: session, connection and prompt events, pushed (no polling)."""

    @ws_authenticated
    async def get(self) -> None:
        await self.upgrade("/api/v1/events")


class SessionProxyHandler(WebSocketForwarder):
    """`sessions/<id>/proxy/<port>/...`: HTTP and WebSocket to a port the session serves.

    The agent only opens ports the session's helper reported, on the session's node.
    """

    def check_xsrf_cookie(self) -> None:
        # Dashboard XHRs do not carry Jupyter's XSRF token; token/cookie authentication
        # still applies (below), and no Jupyter credential is forwarded.
        return None

    def _path(self, session: str, port: str, rest: str) -> str:
        return f"/proxy/{session}/{port}/{rest}"

    @web.authenticated
    @authorized
    async def _http(self, session: str, port: str, rest: str) -> None:
        await self.forward_http(self._path(session, port, rest))

    async def get(self, session: str, port: str, rest: str) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await self._ws(session, port, rest)
        else:
            await self._http(session, port, rest)

    @ws_authenticated
    async def _ws(self, session: str, port: str, rest: str) -> None:
        await self.upgrade(self._path(session, port, rest), session, port, rest)

    async def post(self, session: str, port: str, rest: str) -> None:
        await self._http(session, port, rest)

    async def put(self, session: str, port: str, rest: str) -> None:
        await self._http(session, port, rest)

    async def patch(self, session: str, port: str, rest: str) -> None:
        await self._http(session, port, rest)

    async def delete(self, session: str, port: str, rest: str) -> None:
        await self._http(session, port, rest)


def handlers() -> list[tuple[str, type]]:
    return [
        (rf"/{URL_NAMESPACE}/api/v1/events", EventsHandler),
        (rf"/{URL_NAMESPACE}/kernels/attach", AttachKernelHandler),
        (rf"/{URL_NAMESPACE}/api/(.*)", AgentApiHandler),
        (rf"/{URL_NAMESPACE}/sessions/({SESSION_RE})/proxy/([0-9]{{1,5}})/(.*)", SessionProxyHandler),
    ]
