"""The control channel: HTTP/JSON on a Unix socket, with the session's token
(docs/remote-helper.md lists its routes)."""

import json
import os
import socket
import socketserver
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler

from .common import ApiError, log
from .protocol import PROTOCOL_VERSION
from .relay import bearer_ok

MAX_BODY = 1 << 20
REQUEST_TIMEOUT = 30  # seconds a client may take to send its request (no slowloris)


class UnixControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The control channel on a Unix socket (0600 in the 0700 runtime dir: only this
    user, and the agent by SSH or through the relay). The token is checked all the same."""

    daemon_threads = True

    def __init__(self, path, helper):
        self.helper = helper
        try:
            os.unlink(path)  # a stale socket of an earlier helper of this session
        except FileNotFoundError:
            pass
        socketserver.UnixStreamServer.__init__(self, path, ControlHandler)
        os.chmod(path, 0o600)


class ControlHandler(BaseHTTPRequestHandler):
    server_version = "rc-helper/%d" % PROTOCOL_VERSION
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    def address_string(self):
        # a Unix-socket peer has no address ("" instead of (host, port))
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, code, message):
        self._send(status, {"error": {"code": code, "message": message}})

    def _authorized(self):
        return bearer_ok(self.headers.get("Authorization", ""), self.server.helper.config["token"])

    def _body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "length-required", "send a Content-Length, not a chunked body")
        try:
            n = int(length or 0)
        except ValueError:
            raise ApiError(400, "bad-request", "invalid Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, "too-large", "request body larger than %d bytes" % MAX_BODY)
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise ApiError(400, "invalid-json", "request body is not valid JSON: %s" % e) from e
        if not isinstance(body, dict):
            raise ApiError(400, "invalid-json", "request body must be a JSON object")
        return body

    def _discard_body(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < n <= MAX_BODY and not self.headers.get("Transfer-Encoding"):
            try:
                self.rfile.read(n)
            except OSError:
                pass

    def _handle(self, method):
        if not self._authorized():
            # Refused, and the connection dropped afterwards. A declared body (bounded) is
            # read first: closing a socket with unread data resets it, and the client would
            # then lose the answer (or get EPIPE while still sending).
            self.close_connection = True
            self._discard_body()
            self._error(401, "unauthorized", "missing or wrong bearer token")
            return
        helper = self.server.helper
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        parts = path.strip("/").split("/")
        try:
            body = self._body() if method in ("POST", "DELETE") else {}
            if path == "/health" and method == "GET":
                with helper.lock:
                    st = helper.state
                    res = {
                        "version": PROTOCOL_VERSION,
                        "status": st["status"],
                        "sessionId": st["sessionId"],
                        "pid": os.getpid(),
                        "host": st["host"],
                        "uptimeSeconds": round(time.time() - st["startedAt"], 1),
                        "kernels": {kid: k.info() for kid, k in helper.kernels.items()},
                        "dask": st.get("dask"),
                    }
                self._send(200, res)
            elif path == "/kernels" and method == "POST":
                self._send(201, helper.start_kernel(body))
            elif path == "/terminals" and method == "POST":
                self._send(201, helper.start_terminal(body))
            elif path == "/terminals" and method == "GET":
                self._send(200, helper.list_terminals())
            elif len(parts) == 2 and parts[0] == "terminals" and method == "DELETE":
                self._send(200, helper.delete_terminal(parts[1]))
            elif len(parts) == 3 and parts[0] == "terminals" and parts[2] == "attach" and method == "POST":
                self._attach_terminal(helper, parts[1], _query_int(self.path, "from"))
            elif path == "/kernelspecs" and method == "GET":
                self._send(200, helper.kernelspecs())
            elif path == "/kernels" and method == "GET":
                with helper.lock:
                    self._send(200, {kid: k.info() for kid, k in helper.kernels.items()})
            elif len(parts) == 2 and parts[0] == "kernels" and method == "GET":
                self._send(200, helper.get_kernel(parts[1]).info())
            elif len(parts) == 2 and parts[0] == "kernels" and method == "DELETE":
                self._send(200, helper.delete_kernel(parts[1]))
            elif len(parts) == 3 and parts[0] == "kernels" and parts[2] == "signal" and method == "POST":
                self._send(200, helper.signal_kernel(parts[1], body))
            elif path == "/activity" and method == "POST":
                self._send(200, helper.renew_lease(body))
            elif path == "/web-ports" and method == "POST":
                entry = helper.open_web_port(body)
                with helper.lock:
                    sockets = dict(helper.http_sockets)
                self._send(200, {"entry": entry, "httpSockets": sockets})
            elif path == "/shutdown" and method == "POST":
                self.close_connection = True
                self._send(200, {"status": "stopping"})  # answer first: the process exits soon
                helper.request_stop("shutdown requested by the agent", 0)
            elif path in (
                "/health",
                "/kernels",
                "/kernelspecs",
                "/terminals",
                "/shutdown",
                "/activity",
                "/web-ports",
            ) or (parts[0] in ("kernels", "terminals") and len(parts) in (2, 3)):
                self._error(405, "method-not-allowed", "%s not allowed on %s" % (method, path))
            else:
                self._error(404, "not-found", "no route %s" % path)
        except ApiError as e:
            self._error(e.status, e.code, e.message)
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            log("error in %s %s: %s" % (method, path, traceback.format_exc()))
            self._error(500, "internal", "%s: %s" % (type(e).__name__, e))

    def _attach_terminal(self, helper, tid, since):
        """The rest of this connection is the terminal's (terminals.py): its lines both ways
        until either side ends. Answered 200 first, with no length: the stream follows."""
        helper.get_terminal(tid)  # 400/404 before the answer starts
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.flush()
        self.connection.settimeout(None)  # a terminal may stay quiet for hours
        lock = threading.Lock()

        def write(data):
            with lock:
                self.wfile.write(data)
                self.wfile.flush()

        try:
            helper.attach_terminal(tid, self.rfile, write, since, self._hang_up)
        except (ApiError, OSError) as e:
            log("terminal %s: client gone: %s" % (tid, e))

    def _hang_up(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")


def _query_int(path, name):
    """A non-negative integer query parameter of `path`, or None."""
    for pair in (path.split("?", 1)[1] if "?" in path else "").split("&"):
        k, _, v = pair.partition("=")
        if k == name and v.isdigit():
            return int(v)
    return None
