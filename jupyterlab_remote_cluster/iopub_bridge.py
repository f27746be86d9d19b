"""The Jupyter server's end of a kept IOPub channel (the node's end: remote/jrc_iopub_keeper.py).

jupyter_client subscribes to a local XPUB socket of the bridge, which never goes away
with the link. The bridge is a client of the kernel's keeper on the node, through the
agent's IOPub forward: it asks for what follows the last message it published (on every
(re)connection, and after RESUME_SILENCE seconds without a word, in case a connection
broke unnoticed), publishes each message once and in order, and acknowledges what it
published so the node can forget it. A thread of its own, so it runs under the sync
KernelManager (nbclient, papermill) as under the Jupyter server's event loop.

It also stands in the shell and stdin channels (kept_channels.py): a cell's execute_reply
and an `input()` prompt sent while the link is down are kept on the node as copies on
IOPub (topics KEPT_TOPICS), and reach the client once the link is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import zmq

from .kept_channels import ClientChannel
from .remote.jrc_iopub_keeper import EXECUTE_REPLY_TOPIC, INPUT_REQUEST_TOPIC

ACK_INTERVAL = 0.5  # seconds between acknowledgements while messages arrive
RESUME_SILENCE = 5.0  # ask again after this long without a message from the keeper
RESUME_MIN_INTERVAL = 0.5  # after a gap, at most this often (the resend is on its way)
POLL_MS = 250
EXPIRE_INTERVAL = 10.0  # seconds between looks for silent clients (kept_channels.py)
# the kept copies of the channels' messages: IOPub topic -> channel
KEPT_TOPICS = {EXECUTE_REPLY_TOPIC: "shell", INPUT_REQUEST_TOPIC: "stdin"}


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
        # jupyter_client's shell and stdin connect to these (the agent's forwards behind them)
        self.channels = {
            "shell": ClientChannel(self.ctx, "shell", frozenset({"execute_reply"})),
            "stdin": ClientChannel(self.ctx, "stdin", frozenset({"input_request"})),
        }
        self.shell_port = self.channels["shell"].port
        self.stdin_port = self.channels["stdin"].port
        self.epoch = b""
        self.last = 0  # the last message published
        self.acked = 0
        self.published = 0
        self.duplicates = 0
        self._asked_at = 0.0
        self.connected = False
        self.targets: tuple | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, agent_port: int, agent_channels: dict[str, int]) -> None:
        """Connect to the agent's IOPub forward (the keeper, on the node) and its forwards
        of the shell and stdin channels ({"shell": port, "stdin": port}), and run."""
        targets = (
            f"tcp://127.0.0.1:{agent_port}",
            tuple(f"tcp://127.0.0.1:{agent_channels[name]}" for name in self.channels),
        )
        if self._thread is not None:
            if targets == self.targets:
                return
            self._stop_thread()  # the agent's forwards moved (not expected: restarts keep ports)
        self.targets = targets
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=targets, name="jrc-iopub-bridge", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop_thread()
        for s in (self.monitor, self.dealer, self.xpub):
            s.close(0)
        for channel in self.channels.values():
            channel.close()
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

    def _run(self, target: str, channel_targets: tuple[str, ...]) -> None:
        poller = zmq.Poller()
        for channel, channel_target in zip(self.channels.values(), channel_targets):
            channel.attach(poller, channel_target)
        poller.register(self.xpub, zmq.POLLIN)
        # Messages are asked for once someone listens: published earlier, they would be lost.
        subscribed = False
        heard = expired = time.monotonic()
        acked_at = 0.0
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            now = time.monotonic()
            for channel in self.channels.values():
                try:
                    channel.pump(ready)
                except zmq.ZMQError as e:  # one bad message must not stop every channel
                    self.log.warning("remote-cluster: kernel %s channel: %s", channel.name, e)
            if now - expired >= EXPIRE_INTERVAL:
                expired = now
                for channel in self.channels.values():
                    channel.expire(now)
            if self.xpub in ready:
                while self.xpub.poll(0):
                    self.xpub.recv_multipart()  # subscriptions: jupyter_client takes everything
                if not subscribed:
                    subscribed = True
                    self.dealer.connect(target)
                    for s in (self.dealer, self.monitor):
                        poller.register(s, zmq.POLLIN)
                    heard = now
            if not subscribed:
                continue
            if self.monitor in ready:
                self.monitor.recv_multipart()
                self.connected = True
                self._send(b"resume", self.last)
                heard = now
            if self.dealer in ready:
                heard = now
                for _ in range(1000):
                    try:
                        frames = self.dealer.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    self._deliver(frames, now)
            if self.last > self.acked and now - acked_at >= ACK_INTERVAL and self._send(b"ack", self.last):
                self.acked = self.last
                acked_at = now
            if now - heard >= RESUME_SILENCE:
                self._send(b"resume", self.last)
                heard = now
        if subscribed:
            self.dealer.disconnect(target)
        for channel in self.channels.values():
            channel.detach()

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
        kept = KEPT_TOPICS.get(frames[4])
        if kept:
            self.channels[kept].kept(frames[4:])
        else:
            self.xpub.send_multipart(frames[4:])
        self.last = seq
        self.published += 1
