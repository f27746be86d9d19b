"""The kernel's request channels (shell, stdin) as the bridge (iopub_bridge.py) stands in them.

A kernel answers on a ROUTER socket, which drops a message for a client that is not
connected: a cell that ends while the laptop's link is down loses its execute_reply
(JupyterLab then shows it running for good), and an `input()` asked meanwhile loses its
prompt (the cell waits for an answer forever). So the kernel (remote/jrc_kernel.py) also
publishes a copy of those two to the keeper on the node, which keeps them like output;
the bridge gets the copy with the routing id of the client it is for.

jupyter_client connects to `port`, a local ROUTER that never goes away with the link.
Each client's messages go on to the kernel (the agent's forward of the channel) through a
DEALER with the client's own identity, so the kernel routes its answers to it as to the
client. An answer reaches the client once: the copy sent on the channel and the copy kept
on the node are told apart by msg_id, and the second one is dropped.

A client without an identity of its own (the Jupyter server asks a kernel_info through
one when a page connects) gets one made from the number the bridge's ROUTER gave it: ZMQ
reserves identities that start with a zero byte.

A client's DEALER is closed once it has carried nothing for UPSTREAM_IDLE_SECONDS (the
Jupyter server makes a client per browser connection, and closes it with the page), one
without an identity after ANONYMOUS_IDLE_SECONDS (its number is never used again): a
reply that comes later for it still arrives as its kept copy, and its next request makes
the DEALER again.

Only the bridge's thread uses these sockets.
"""

from __future__ import annotations

import collections
import json
import time

import zmq

from .remote.jrc_iopub_keeper import DELIM

# A copy's msg_id is remembered until the other copy comes; at most this many (copies
# whose twin was lost in a cut are the ones that stay)
REMEMBERED = 1024
UPSTREAM_IDLE_SECONDS = 1800.0
ANONYMOUS_IDLE_SECONDS = 60.0
ANONYMOUS_PREFIX = b"jrc-anonymous-"


class ClientChannel:
    def __init__(self, ctx: zmq.Context, name: str, kept_types: frozenset[str]) -> None:
        self.ctx, self.name = ctx, name
        self.kept_types = kept_types  # the message types that come twice
        self.router = ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.target: str | None = None  # the agent's forward of this channel
        self.upstream: dict[bytes, zmq.Socket] = {}  # client identity -> DEALER to the kernel
        self.used: dict[bytes, float] = {}  # client identity -> when its DEALER last carried anything
        self.client_of: dict[bytes, bytes] = {}  # a DEALER's identity (the kernel's view) -> its client's
        self.once: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.delivered = 0  # copies handed to clients
        self.poller: zmq.Poller | None = None

    def attach(self, poller: zmq.Poller, target: str) -> None:
        self.poller, self.target = poller, target
        poller.register(self.router, zmq.POLLIN)

    def detach(self) -> None:
        for up in self.upstream.values():
            if self.poller is not None:
                self.poller.unregister(up)
            up.close(0)
        self.upstream.clear()
        self.used.clear()
        self.client_of.clear()
        if self.poller is not None:
            self.poller.unregister(self.router)
            self.poller = None

    def close(self) -> None:
        self.router.close(0)

    def upstream_of(self, ident: bytes) -> zmq.Socket | None:
        """The DEALER that speaks to the kernel as client `ident` (made at its first
        message, or at the first kept copy for it)."""
        up = self.upstream.get(ident)
        self.used[ident] = time.monotonic()
        if up is None and self.target and self.poller is not None and ident:
            own = ident if not ident.startswith(b"\0") else ANONYMOUS_PREFIX + ident.hex().encode()
            up = self.ctx.socket(zmq.DEALER)
            up.setsockopt(zmq.ROUTING_ID, own)
            up.linger = 0
            up.connect(self.target)
            self.poller.register(up, zmq.POLLIN)
            self.upstream[ident] = up
            self.client_of[own] = ident
        return up

    def expire(self, now: float) -> None:
        """Close the DEALERs of clients that have been silent for UPSTREAM_IDLE_SECONDS."""

        def idle_limit(ident):
            return ANONYMOUS_IDLE_SECONDS if ident.startswith(b"\0") else UPSTREAM_IDLE_SECONDS

        for ident in [i for i, t in self.used.items() if now - t > idle_limit(i)]:
            del self.used[ident]
            for own in [o for o, c in self.client_of.items() if c == ident]:
                del self.client_of[own]
            up = self.upstream.pop(ident, None)
            if up is not None:
                if self.poller is not None:
                    self.poller.unregister(up)
                up.close(0)

    def pump(self, ready: dict) -> None:
        """Move what is ready: clients' requests to the kernel, the kernel's answers back."""
        if self.router in ready:
            for _ in range(1000):
                try:
                    frames = self.router.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                up = self.upstream_of(frames[0])
                if up is not None:
                    try:
                        # never blocks the bridge: a request over the queue's bound while
                        # the link is down is dropped, as ZMQ itself would drop it
                        up.send_multipart(frames[1:], zmq.NOBLOCK)
                    except zmq.Again:
                        pass
        for ident, up in list(self.upstream.items()):
            if up in ready:
                self.used[ident] = time.monotonic()
                for _ in range(1000):
                    try:
                        frames = up.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.deliver([ident], frames)

    def kept(self, frames: list[bytes]) -> None:
        """A copy kept on the node, in its envelope (jrc_iopub_keeper.KEPT_MSG_TYPE):
        [topic, DELIM, signature, header, parent, metadata, {"route": [hex]}, *copy]."""
        try:
            i = frames.index(DELIM)
            route = [bytes.fromhex(r) for r in json.loads(frames[i + 5])["route"]]
            copy = frames[i + 6 :]
        except (ValueError, IndexError, KeyError, TypeError):
            return
        if not copy or copy[0] != DELIM:
            return
        if route:
            client = self.client_of.get(route[0])
            if client is None and not route[0].startswith(ANONYMOUS_PREFIX):
                client = route[0]
                self.upstream_of(client)  # where the client's answer to it will go
            route = [client or route[0]] + route[1:]
        self.deliver(route, copy)

    def deliver(self, route: list[bytes], message: list[bytes]) -> None:
        """Hand `message` (from the delimiter on) to the client at `route`, unless it is
        the second copy of one that went already."""
        try:
            header = json.loads(message[2])
            twice = header["msg_type"] in self.kept_types
            msg_id = str(header["msg_id"]).encode()
        except (IndexError, ValueError, KeyError, TypeError):
            twice, msg_id = False, b""
        if twice:
            if msg_id in self.once:
                del self.once[msg_id]  # its twin went already
                return
            self.once[msg_id] = None
            if len(self.once) > REMEMBERED:
                self.once.popitem(last=False)
        self.router.send_multipart(route + message)
        self.delivered += 1
