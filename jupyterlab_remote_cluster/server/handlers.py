"""Authenticated routes under <base_url>/remote-cluster/.

Every route requires a Jupyter-authenticated and authorized user (token, cookie + XSRF,
or whatever identity provider the server uses), HTTP and WebSocket alike: an upgrade is
authenticated before it happens (cf. CVE-2024-28179 in jupyter-server-proxy). Requests
go to the agent's private socket without credentials: the agent trusts its socket,
never the browser's headers.

    remote-cluster/api/v1/events                          WebSocket  -> agent /api/v1/events
    remote-cluster/terminals/<session>/<terminal>      WebSocket  -> agent /api/v1/sessions/<s>/terminals/<t>/stream
    remote-cluster/login-terminals/<profile>/<terminal> WebSocket -> agent /api/v1/profiles/<p>/terminals/<t>/stream
    remote-cluster/kernels/attach                      POST       a detached remote kernel -> this server's kernels
    remote-cluster/files/<profile>/<path>              GET        a cluster file, streamed (the drive's downloads)
    remote-cluster/api/(.*)                            HTTP       -> agent /api/$1
    remote-cluster/proxied/<key>/<port>/(.*)           HTTP + WS  -> agent's proxy socket /proxy/<key>/<port>/$3
                                                       (the key is the capability; no Jupyter auth)
"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlparse

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import httpclient, web, websocket
from tornado.netutil import Resolver

from ..agent_process import AgentProcess, AgentUnavailable
from ..provisioner import ATTACH_KWARG
from ..routes import AUTH_RESOURCE, URL_NAMESPACE, session_kernel_name

SESSION_RE = r"[0-9a-f]{6,32}"
PROXIED_PREFIX = f"/{URL_NAMESPACE}/proxied/"
# A session's proxy key (src/common/routes.ts): 32 random bytes, base64url.
PROXY_KEY_RE = r"[A-Za-z0-9_-]{43}"
# Never forwarded to what a session serves: Jupyter's credentials in a query string.
SECRET_QUERY = ("token", "_xsrf")
# On every proxied response: the content runs in an opaque origin (no access to
# JupyterLab's cookies, storage or API), only JupyterLab may frame it, the browser does not
# guess types, and no Referer carries the proxy key elsewhere.
PROXIED_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-forms allow-popups allow-downloads; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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
        # (a 204 has no body: tornado refuses even an empty one)
        self.finish(res.body if res.body and res.code != 204 else None)  # type: ignore[attr-defined]


async def require(handler: JupyterHandler, action: str, resource: str) -> None:
    """403 unless the user may `action` on `resource` (besides the route's own check)."""
    if not await ensure_async(handler.authorizer.is_authorized(handler, handler.current_user, action, resource)):
        raise web.HTTPError(403, f"User is not authorized to {action} on resource: {resource}.")


# Agent routes that start or stop something on the cluster (a job, a kernel): they need what
# starting a kernel needs in Jupyter (`kernels`: write) besides `remote-cluster`: write.
KERNEL_ROUTES = re.compile(
    rf"v1/(sessions|sessions/{SESSION_RE}|sessions/{SESSION_RE}/(kernels|workers|extend|relaunch|activity|notebooks)|kernels/[^/]+(/(signal|restart|detach))?)"
)


# What a kernel printed (its log, the job's stdout): Jupyter's `kernels: read` is needed too.
LOG_ROUTES = re.compile(rf"v1/sessions/{SESSION_RE}/logs")

# A shell in a job: what Jupyter's terminals need (`terminals`: read to list, write to open
# or end one, execute to type in it), besides `remote-cluster`.
TERMINAL_ID_RE = r"t[0-9]{1,6}"
LOGIN_TERMINAL_ID_RE = r"l[0-9]{1,6}"
PROFILE_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TERMINAL_ROUTES = re.compile(
    rf"v1/sessions/{SESSION_RE}/terminals(/{TERMINAL_ID_RE})?|v1/profiles/{PROFILE_RE}/terminals(/{LOGIN_TERMINAL_ID_RE})?"
)


# The cluster drive: what Jupyter's own files need (`contents`: read to list, open and
# download, write to save, create, rename and delete), besides `remote-cluster`.
DRIVE_ROUTES = re.compile(rf"v1/profiles/{PROFILE_RE}/(files|checkpoints|download)(/.*)?")


class AgentApiHandler(AgentMixin, APIHandler):
    """`api/*`: the agent's REST API. Each method is decorated on its own: jupyter_server's
    `@authorized` fixes the action of a decorated function at its first call."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        if LOG_ROUTES.fullmatch(path):
            await require(self, "read", "kernels")
        if TERMINAL_ROUTES.fullmatch(path):
            await require(self, "read", "terminals")
        if DRIVE_ROUTES.fullmatch(path):
            await require(self, "read", "contents")
        await self.forward_http("/api/" + path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        if KERNEL_ROUTES.fullmatch(path):
            await require(self, "write", "kernels")
        if TERMINAL_ROUTES.fullmatch(path):
            await require(self, "write", "terminals")
        if DRIVE_ROUTES.fullmatch(path):
            await require(self, "write", "contents")
        await self.forward_http("/api/" + path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        if KERNEL_ROUTES.fullmatch(path):
            await require(self, "write", "kernels")
        if TERMINAL_ROUTES.fullmatch(path):
            await require(self, "write", "terminals")
        if DRIVE_ROUTES.fullmatch(path):
            await require(self, "write", "contents")
        await self.forward_http("/api/" + path)

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        await self._drive_write(path)

    @web.authenticated
    @authorized
    async def patch(self, path: str) -> None:
        await self._drive_write(path)

    async def _drive_write(self, path: str) -> None:
        """PUT and PATCH: only the drive has them (save, rename)."""
        if not DRIVE_ROUTES.fullmatch(path):
            raise web.HTTPError(405)
        await require(self, "write", "contents")
        await self.forward_http("/api/" + path)


class DriveDownloadHandler(AgentMixin, JupyterHandler):
    """`files/<profile>/<path>`: a cluster file's bytes, streamed from the agent as they
    come over SFTP (never held whole here). A GET authenticated like Jupyter's own
    `files/` route (the cookie: it is what a download link carries), `contents`: read."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self, profile: str, path: str) -> None:
        await require(self, "read", "contents")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        status: list[int] = []
        error = bytearray()

        def header(line: str) -> None:
            m = re.match(r"HTTP/\S+ (\d+)", line)
            if m:
                status.append(int(m.group(1)))
            elif status and status[-1] == 200 and ":" in line:
                name, value = line.split(":", 1)
                if name.strip().lower() in ("content-length", "content-disposition", "content-type"):
                    self.set_header(name.strip(), value.strip())

        def chunk(data: bytes) -> None:
            if status and status[-1] == 200:
                self.write(data)
                self.flush()
            elif len(error) < 65536:
                error.extend(data)

        # (tornado gave the path decoded: each segment is encoded again for the agent)
        encoded = "/".join(quote(segment, safe="") for segment in path.split("/"))
        try:
            res = await self.agent.stream(f"/api/v1/profiles/{profile}/download/{encoded}", header, chunk)
        except AgentUnavailable as e:
            raise web.HTTPError(503, f"remote-cluster: {e}") from e
        if res.code != 200:
            try:
                message = json.loads(bytes(error))["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = res.reason
            raise web.HTTPError(res.code, message)
        self.finish()


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
        await require(self, "write", "kernels")
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
                self.kernel_manager.start_kernel(kernel_name=session_kernel_name(session), **{ATTACH_KWARG: kernel})
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
        if not await ensure_async(self.authorizer.is_authorized(self, self.current_user, "execute", AUTH_RESOURCE)):
            raise web.HTTPError(403)

    async def open_upstream(self, path: str) -> None:
        await self._open_upstream_on(self.target(path), self.agent.resolver)

    async def _open_upstream_on(self, path: str, resolver: Resolver) -> None:
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            await self.agent.ensure_running()
            self.upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(f"ws://agent{path}", connect_timeout=60, request_timeout=60),
                resolver=resolver,
                subprotocols=protocols or None,
                max_message_size=64 * 1024 * 1024,
            )
        except (AgentUnavailable, OSError, httpclient.HTTPClientError, websocket.WebSocketError) as e:
            raise web.HTTPError(502, f"remote-cluster: {e}") from e

    async def upgrade(self, path: str, *args: str) -> None:
        await self.open_upstream(path)
        try:
            res = websocket.WebSocketHandler.get(self, *args)
            if res is not None:
                await res
        finally:
            if self.get_status() != 101 and self.upstream is not None:
                # the upgrade was refused (a bad handshake, also one refused after tornado
                # set up ws_connection): the agent's side goes too
                self.upstream.close()
                self.upstream = None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.upstream.selected_subprotocol if self.upstream else None

    def open(self, *args: str) -> None:  # the browser's side is up
        self._pump = asyncio.ensure_future(self.pump_upstream())

    async def pump_upstream(self) -> None:
        """The agent's messages to the browser, one at a time: the next is read only once
        the last is written out (backpressure: a slow browser slows the source, never
        grows our buffers)."""
        upstream = self.upstream
        while upstream is not None:
            message = await upstream.read_message()
            if message is None:  # the agent side closed: with its code and reason (a terminal's
                # says whether to attach again)
                if self.ws_connection is not None:
                    self.close(upstream.close_code, upstream.close_reason)
                return
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                upstream.close()
                return

    async def on_message(self, message: str | bytes) -> None:
        # (tornado reads the browser's next message once this returns: backpressure too)
        if self.upstream is not None:
            try:
                await self.upstream.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                self.close()

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class EventsHandler(WebSocketForwarder):
    """`api/v1/events`: session, connection and prompt events, pushed (no polling)."""

    @ws_authenticated
    async def get(self) -> None:
        await self.authorize_ws()
        await self.upgrade("/api/v1/events")


class TerminalHandler(WebSocketForwarder):
    """`terminals/<session>/<terminal>`: typing in a shell of a job, like Jupyter's own
    terminals (`terminals`: execute) and this project's (`remote-cluster`: execute). A page
    of another origin is refused before the upgrade, even with the login cookie."""

    @ws_authenticated
    async def get(self, owner: str, terminal: str) -> None:
        await self.authorize_ws()
        await require(self, "execute", "terminals")
        if not self.check_origin():
            raise web.HTTPError(403, "cross-origin WebSocket refused")
        await self.upgrade(self.stream_path(owner, terminal))

    def stream_path(self, session: str, terminal: str) -> str:
        return f"/api/v1/sessions/{session}/terminals/{terminal}/stream"


class LoginTerminalHandler(TerminalHandler):
    """`login-terminals/<profile>/<terminal>`: a shell on a cluster's login node, as above."""

    def stream_path(self, profile: str, terminal: str) -> str:
        return f"/api/v1/profiles/{profile}/terminals/{terminal}/stream"


class ProxiedHandler(WebSocketForwarder):
    """`proxied/<key>/<port>/...`: HTTP and WebSocket to what a session serves (its Dask
    dashboard), through the agent's proxy socket (which reaches nothing but that).

    Not Jupyter-authenticated: the session's proxy key in the path is the capability. The
    content runs sandboxed (`Content-Security-Policy: sandbox`, an opaque origin), so it
    can neither read JupyterLab's cookies or token nor call its API, and in turn it sends
    no cookies here. Requests that change something, and WebSockets, must come from no
    origin, the opaque one (`null`) or this server's own. Paths are taken raw: dot
    segments (also encoded) are refused, never normalised; `token` and `_xsrf` are taken
    out of query strings; redirects may not leave the prefix (docs/security.md).
    """

    prefix = ""  # the public prefix of the request (set by _target)

    def check_xsrf_cookie(self) -> None:
        # Cookies never authenticate here (see the class docstring): origins are checked.
        return None

    def check_origin(self, origin: str | None = None) -> bool:  # type: ignore[override]
        if origin is None:
            origin = self.request.headers.get("Origin")
        if origin in (None, "", "null"):
            return True
        host = self.request.headers.get("Host", "")
        return urlparse(origin).netloc == host

    def _target(self) -> str:
        """The agent's proxy path for this request; remembers the public prefix it is under."""
        raw = self.request.path  # raw: not percent-decoded, not normalised
        i = raw.find(PROXIED_PREFIX)
        parts = raw[i + len(PROXIED_PREFIX) :].split("/", 2) if i >= 0 else []
        if len(parts) < 2 or not re.fullmatch(PROXY_KEY_RE, parts[0]) or not re.fullmatch(r"[0-9]{1,5}", parts[1]):
            raise web.HTTPError(404)
        self.prefix = f"{raw[: i + len(PROXIED_PREFIX)]}{parts[0]}/{parts[1]}"
        tail = "/" + (parts[2] if len(parts) > 2 else "")
        if has_dot_segment(tail):
            raise web.HTTPError(400, "dot segments (. and ..) are not allowed in proxied paths")
        query = [(k, v) for k, v in parse_qsl(self.request.query, keep_blank_values=True) if k not in SECRET_QUERY]
        return f"/proxy/{parts[0]}/{parts[1]}{tail}" + ("?" + urlencode(query) if query else "")

    def set_default_headers(self) -> None:
        super().set_default_headers()
        for name, value in PROXIED_HEADERS.items():
            self.set_header(name, value)

    async def _http(self) -> None:
        if self.request.method not in ("GET", "HEAD", "OPTIONS") and not self.check_origin():
            raise web.HTTPError(403, "cross-origin request refused")
        target = self._target()
        headers = {k: self.request.headers[k] for k in FORWARDED_HEADERS if k in self.request.headers}
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        try:
            res = await self.agent.proxy_request(self.request.method, target, body=body, headers=headers)
        except AgentUnavailable as e:
            self.write_api_error(503, "agent-unavailable", str(e))
            return
        except httpclient.HTTPClientError as e:  # a timeout, a body over the limit
            self.write_api_error(504 if e.code == 599 else 502, "upstream", f"The session did not answer: {e}")
            return
        location = res.headers.get("Location")
        if location is not None and not self._location_ok(location):
            self.write_api_error(502, "redirect-refused", "The session's service redirected outside its address.")
            return
        self.set_status(res.code, res.reason)
        for name in RETURNED_HEADERS:
            if name in res.headers:
                self.set_header(name, res.headers[name])
        self.finish(res.body or b"")

    def _location_ok(self, location: str) -> bool:
        """A redirect stays under this session's prefix (or is relative to it)."""
        u = urlparse(location)
        if u.scheme or u.netloc:
            return False
        if not u.path.startswith("/"):
            return not has_dot_segment(u.path)
        return u.path.startswith(self.prefix + "/") and not has_dot_segment(u.path)

    async def get(self, *args: str) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            if not self.check_origin():
                raise web.HTTPError(403, "cross-origin WebSocket refused")
            await self.upgrade(self._target(), *args)
        else:
            await self._http()

    async def head(self, *args: str) -> None:
        await self._http()

    async def post(self, *args: str) -> None:
        await self._http()

    async def put(self, *args: str) -> None:
        await self._http()

    async def patch(self, *args: str) -> None:
        await self._http()

    async def delete(self, *args: str) -> None:
        await self._http()

    async def open_upstream(self, path: str) -> None:
        await self._open_upstream_on(path, self.agent.proxy_resolver)


def has_dot_segment(raw_path: str) -> bool:
    """A `.` or `..` segment, raw or percent-encoded once or twice (never forwarded: the
    agent would see another path than the one checked here)."""
    p = raw_path
    for _ in range(3):
        if any(seg in (".", "..") for seg in re.split(r"[/\\]", p)):
            return True
        decoded = unquote(p)
        if decoded == p:
            return False
        p = decoded
    return True


def handlers() -> list[tuple[str, type]]:
    return [
        (rf"/{URL_NAMESPACE}/api/v1/events", EventsHandler),
        (rf"/{URL_NAMESPACE}/terminals/({SESSION_RE})/({TERMINAL_ID_RE})", TerminalHandler),
        (rf"/{URL_NAMESPACE}/login-terminals/({PROFILE_RE})/({LOGIN_TERMINAL_ID_RE})", LoginTerminalHandler),
        (rf"/{URL_NAMESPACE}/kernels/attach", AttachKernelHandler),
        (rf"/{URL_NAMESPACE}/files/({PROFILE_RE})/(.*)", DriveDownloadHandler),
        (rf"/{URL_NAMESPACE}/api/(.*)", AgentApiHandler),
        (rf"/{URL_NAMESPACE}/proxied/.*", ProxiedHandler),
    ]
