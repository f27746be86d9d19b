"""The TLS relay (connectivity via-login, auto): the agent's one TCP endpoint on the
node, in front of the session's private Unix sockets; and the token check it shares
with the control channel."""

import asyncio
import hmac
import socket
import threading

from .common import ApiError

RELAY_HEAD_TIMEOUT = 15.0  # seconds for a relay client's TLS handshake and CONNECT line
RELAY_HEAD_MAX = 16384


class Relay:
    """The agent's one TCP endpoint on the node (via-login, auto): TLS that requires the
    session's client certificate (the agent's; verified against the session CA), then
    `CONNECT <target>` with the session's token, then the bytes of a private Unix socket:
      control                  the control channel (HTTP, as on control.sock)
      kernel/<id>/<channel>    a kernel's ZMQ socket (shell, iopub, stdin, control, hb)
      http/<port>              an HTTP service of the session (the Dask dashboard: 0)
    Nobody without the session's key completes the handshake, and the token never
    crosses the network in the clear. Runs an asyncio loop in a thread of its own:
    asyncio's TLS is the stdlib's one that streams both ways at once safely. Bytes are
    handed from one transport to the other in the protocols' callbacks (no stream
    buffers in between), with each side's flow control pausing the other."""

    def __init__(self, helper, host, tls_paths):
        import ssl  # here, not at the top: a Python without ssl still runs node-ssh/reverse

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(tls_paths["cert"], tls_paths["key"])
        ctx.load_verify_locations(tls_paths["ca"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.helper = helper
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.ready = threading.Event()

    def start(self):
        threading.Thread(target=self._run, name="relay", daemon=True).start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                self.loop.create_server(
                    lambda: RelayConnection(self),
                    sock=self.sock,
                    ssl=self.ctx,
                    ssl_handshake_timeout=RELAY_HEAD_TIMEOUT,
                )
            )
        finally:
            self.ready.set()
        self.loop.run_forever()

    def stop(self):
        def close():
            if self.server is not None:
                self.server.close()
            self.loop.stop()

        try:
            self.loop.call_soon_threadsafe(close)
        except RuntimeError:  # the loop is already closed
            pass

    def target(self, head):
        """The socket a CONNECT head asks for, after checking the token (ApiError if not)."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
            raise ApiError(405, "method-not-allowed", "only CONNECT is served here")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if not bearer_ok(headers.get("authorization", ""), self.helper.config["token"]):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")
        return self.helper.relay_target(parts[1])


class RelayConnection(asyncio.Protocol):
    """One client of the relay, after its TLS handshake: its CONNECT head, then its bytes
    to the target's Unix socket and back. Either side's end closes both (asyncio's TLS
    cannot be half-closed)."""

    def __init__(self, relay):
        self.relay = relay
        self.tls = None
        self.head = b""
        self.pending = None  # bytes that came after the head, while the target connects
        self.upstream = None  # the target's transport
        self.timer = None

    def connection_made(self, transport):
        self.tls = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timer = self.relay.loop.call_later(RELAY_HEAD_TIMEOUT, transport.abort)

    def data_received(self, data):
        if self.upstream is not None:
            self.upstream.write(data)
        elif self.pending is not None:
            self.pending.append(data)
        else:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > RELAY_HEAD_MAX:
                    self.tls.abort()  # not a client of ours: nothing to answer
                return
            self.timer.cancel()
            head, rest = self.head[: end + 4], self.head[end + 4 :]
            self.pending = [rest] if rest else []
            try:
                path = self.relay.target(head)
            except ApiError as e:
                self.answer(e.status, e.message)
                return
            self.relay.loop.create_task(self.connect(path, head.split(b" ", 2)[1].decode("latin-1")))

    async def connect(self, path, target):
        try:
            transport, up = await self.relay.loop.create_unix_connection(lambda: RelayUpstream(self), path)
        except OSError as e:
            self.answer(502, "cannot connect to %s: %s" % (target, e))
            return
        if self.tls.is_closing():
            transport.close()
            return
        self.tls.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for data in self.pending:
            transport.write(data)
        self.pending = None
        self.upstream = transport
        up.open()

    def answer(self, status, message):
        self.tls.write(relay_answer(status, message))
        self.tls.close()

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()
        if self.upstream is not None:
            self.upstream.close()

    # the TLS side cannot take more for now: stop reading the target, and on again
    def pause_writing(self):
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self):
        if self.upstream is not None:
            self.upstream.resume_reading()


class RelayUpstream(asyncio.Protocol):
    """The target's side of a relayed connection."""

    def __init__(self, client):
        self.client = client
        self.early = []  # what the target said before the client got its "200"

    def open(self):
        for data in self.early:
            self.client.tls.write(data)
        self.early = None

    def data_received(self, data):
        if self.early is not None:
            self.early.append(data)
        else:
            self.client.tls.write(data)

    def connection_lost(self, exc):
        self.client.tls.close()  # after what is buffered for it

    def pause_writing(self):
        self.client.tls.pause_reading()

    def resume_writing(self):
        self.client.tls.resume_reading()


def relay_answer(status, message):
    body = message.encode("utf-8", "replace")
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status,
        b"Error",
        len(body),
        body,
    )


def bearer_ok(header, token):
    prefix = "Bearer "
    offered = header[len(prefix) :].encode("utf-8", "replace") if header.startswith(prefix) else b""
    # constant time: the comparison does not tell an attacker how much of it matched
    return hmac.compare_digest(offered, token.encode())
