"""The Jupyter server's end of a kept IOPub channel (the node's end: remote/jrc_iopub_keeper.py).

jupyter_client subscribes to a local XPUB socket of the bridge, which never goes away
with the link. The bridge is a client of the kernel's keeper on the node, through the
agent's IOPub forward: it asks for what follows the last message it published (on every
(re)connection, and after RESUME_SILENCE seconds without a word, in case a connection
broke unnoticed), publishes each message once and in order, and acknowledges what it
published so the node can forget it. A thread of its own, so it runs under the sync
KernelManager (nbclient, papermill) as under the Jupyter server's event loop.

It also stands in the stdin channel, so that an `input()` prompt asked while the link is
down still reaches the notebook: jupyter_client's stdin connects to a local ROUTER of the
bridge. A prompt's copy kept on the node (on IOPub, topic INPUT_REQUEST_TOPIC, followed
by the identity of the client it is for) goes to that client; the client's answer goes to
the kernel's stdin (the agent's stdin forward) through a DEALER with the client's identity,
made at its first prompt. From then on the kernel's own prompts on stdin reach that DEALER
too: the client gets whichever copy comes first, once. (ZMQ announces a connecting client
only in its draft API, so the bridge learns a client's identity from its first prompt: a
kernel of a release without the kept copy would ask its prompts to no one.)
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time

import zmq

from .remote.jrc_iopub_keeper import DELIM, INPUT_REQUEST_TOPIC

ACK_INTERVAL = 0.5  # seconds between acknowledgements while messages arrive
RESUME_SILENCE = 5.0  # ask again after this long without a message from the keeper
RESUME_MIN_INTERVAL = 0.5  # after a gap, at most this often (the resend is on its way)
POLL_MS = 250
REMEMBERED_PROMPTS = 64  # input_requests handed to clients, by msg_id: their second copy is dropped


class IopubBridge:
    def __init__(self, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.log = log
        self.ctx = zmq.Context()
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.SNDHWM, 100_000)  # a resumed backlog arrives in one burst
        self.xpub.linger = 0
        self.port = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        self.dealer = self.ctx.socket(zmq.DEALER)
        # One id for the bridge's life: the keeper knows it again after a reconnect.
        self.dealer.setsockopt(zmq.ROUTING_ID, b"jrc-bridge-" + os.urandom(8).hex().encode())
        self.dealer.setsockopt(zmq.IMMEDIATE, 1)  # nothing queued for a connection that is not up
        self.dealer.setsockopt(zmq.RCVHWM, 0)
        self.dealer.linger = 0
        self.monitor = self.dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        # stdin: jupyter_client connects here; each client (its identity: its session's)
        # gets a DEALER to the kernel at its first prompt
        self.stdin = self.ctx.socket(zmq.ROUTER)
        self.stdin.linger = 0
        self.stdin_port = self.stdin.bind_to_random_port("tcp://127.0.0.1")
        self.stdin_target: str | None = None
        self.upstream: dict[bytes, zmq.Socket] = {}  # client identity -> DEALER (the bridge thread's)
        self.prompted: collections.deque[bytes] = collections.deque(maxlen=REMEMBERED_PROMPTS)
        self.prompts = 0  # input_requests handed to clients
        self.poller: zmq.Poller | None = None  # the bridge thread's
        self.epoch = b""
        self.last = 0  # the last message published
        self.acked = 0
        self.published = 0
        self.duplicates = 0
        self._asked_at = 0.0
        self.connected = False
        self.target: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, agent_port: int, agent_stdin_port: int) -> None:
        """Connect to the agent's IOPub forward (the keeper, on the node) and its stdin
        forward (the kernel's stdin), and run."""
        target = f"tcp://127.0.0.1:{agent_port}"
        stdin_target = f"tcp://127.0.0.1:{agent_stdin_port}"
        if self._thread is not None:
            # the agent's forwards moved (not expected: restarts keep ports)
            if (target, stdin_target) != (self.target, self.stdin_target):
                self._stop_thread()
            else:
                return
        self.target, self.stdin_target = target, stdin_target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target,), name="jrc-iopub-bridge", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop_thread()
        for s in (self.monitor, self.dealer, self.xpub, self.stdin):
            s.close(0)
        self.ctx.term()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _send(self, verb: bytes, seq: int) -> bool:
        try:
            self.dealer.send_multipart([verb, self.epoch, str(seq).encode()], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False  # not connected (IMMEDIATE): the next connection resumes

    def _run(self, target: str) -> None:
        # Messages are asked for once someone listens: published earlier, they would be lost.
        while not self._stop.is_set() and not self.xpub.poll(POLL_MS):
            pass
        self.dealer.connect(target)
        self.poller = poller = zmq.Poller()
        for s in (self.xpub, self.dealer, self.monitor, self.stdin):
            poller.register(s, zmq.POLLIN)
        heard = time.monotonic()
        acked_at = 0.0
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            now = time.monotonic()
            if self.monitor in ready:
                self.monitor.recv_multipart()
                self.connected = True
                self._send(b"resume", self.last)
                heard = now
            if self.xpub in ready:
                while self.xpub.poll(0):
                    self.xpub.recv_multipart()  # subscriptions: jupyter_client takes everything
            if self.dealer in ready:
                heard = now
                for _ in range(1000):
                    try:
                        frames = self.dealer.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    self._deliver(frames, now)
            if self.stdin in ready:
                self._from_clients()
            for ident, up in list(self.upstream.items()):
                if up in ready:
                    self._from_kernel(ident, up)
            if self.last > self.acked and now - acked_at >= ACK_INTERVAL and self._send(b"ack", self.last):
                self.acked = self.last
                acked_at = now
            if now - heard >= RESUME_SILENCE:
                self._send(b"resume", self.last)
                heard = now
        self.dealer.disconnect(target)
        for up in self.upstream.values():
            poller.unregister(up)
            up.close(0)
        self.upstream.clear()

    def _upstream_of(self, ident: bytes) -> zmq.Socket | None:
        """The DEALER that speaks to the kernel's stdin as client `ident` (its input
        requests are routed to that identity)."""
        up = self.upstream.get(ident)
        if up is None and self.stdin_target and ident and not ident.startswith(b"\0"):
            up = self.ctx.socket(zmq.DEALER)
            up.setsockopt(zmq.ROUTING_ID, ident)
            up.linger = 0
            up.connect(self.stdin_target)
            self.poller.register(up, zmq.POLLIN)
            self.upstream[ident] = up
        return up

    def _from_clients(self) -> None:
        for _ in range(100):
            try:
                frames = self.stdin.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            up = self._upstream_of(frames[0])
            if up is not None:
                up.send_multipart(frames[1:])  # an input_reply

    def _from_kernel(self, ident: bytes, up: zmq.Socket) -> None:
        for _ in range(100):
            try:
                frames = up.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._prompt([ident], frames)

    def _prompt(self, route: list[bytes], message: list[bytes]) -> None:
        """Hand an input_request (`message`: from the delimiter on) to the client at
        `route`, unless one of its copies went already."""
        try:
            msg_id = json.loads(message[2])["msg_id"].encode()
        except (IndexError, ValueError, KeyError, TypeError, AttributeError):
            msg_id = None
        if msg_id is not None:
            if msg_id in self.prompted:
                return
            self.prompted.append(msg_id)
        self.stdin.send_multipart(route + message)
        self.prompts += 1

    def _deliver(self, frames: list[bytes], now: float) -> None:
        if len(frames) < 5 or frames[0] != b"m":
            return
        epoch, seq, after = frames[1], int(frames[2]), int(frames[3])
        if epoch != self.epoch:
            # The first message, or one of a new kernel process (a restart): its numbers
            # start where the keeper started us.
            if self.epoch:
                self.log.info("remote-cluster: IOPub keeper of a new kernel process")
            self.epoch, self.last, self.acked = epoch, after, 0
        if after != self.last:
            if seq <= self.last:
                self.duplicates += 1  # a repeat of a resend
            elif now - self._asked_at > RESUME_MIN_INTERVAL:
                # It overtook messages lost in a broken connection: ask again from our last.
                self._asked_at = now
                self._send(b"resume", self.last)
            return
        if frames[4] == INPUT_REQUEST_TOPIC and DELIM in frames:
            i = frames.index(DELIM)
            route = frames[5:i]
            if route:
                self._upstream_of(route[0])  # where its answer will go
            self._prompt(route, frames[i:])
        else:
            self.xpub.send_multipart(frames[4:])
        self.last = seq
        self.published += 1
