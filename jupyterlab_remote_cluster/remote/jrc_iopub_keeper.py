"""Keeps a kernel's IOPub output on the node while the laptop's link is down (issue 12).

ZMQ's PUB socket drops every message published while no subscriber is connected, so a
cell that prints through a link cut loses those lines for good. The keeper, a process
next to each kernel started by jrc_kernel.py (in the kernel's Python: it needs pyzmq,
which the helper does not have), subscribes to the kernel's IOPub socket, numbers every message and keeps it until the
client acknowledges it. The client, the bridge of the Jupyter server's provisioner
(jupyterlab_remote_cluster/iopub_bridge.py), reaches the keeper instead of the PUB socket
through the same tunnels, and asks again from its last number after every reconnect:

  client -> keeper   [b"resume", epoch, seq]    send me what follows seq (epoch b"": new client)
                     [b"ack", epoch, seq]       I have published up to seq: forget it
  keeper -> client   [b"m", epoch, seq, after, *frames]
                     one IOPub message, frames as the kernel sent them; `after` is the
                     number the client must have published last for this one to follow

`epoch` names this kernel process: after a restart (same kernel id, new process) a client
resuming with the old epoch gets the new process's messages from its first one. The
client publishes a message only if it follows its last one (`after`); anything else (a
live message that overtook a resend, a repeat) it drops, asking again from its last
if that is not a repeat. So every message is published once and in order.

A cell's execute_reply and an `input()` prompt are kept the same way: the kernel
(jrc_kernel.py) publishes a copy of each on IOPub under the topic EXECUTE_REPLY_TOPIC or
INPUT_REQUEST_TOPIC, inside a KEPT_MSG_TYPE message naming the client it is for. The bridge
hands the client whichever copy comes first (the one the kernel sends on its shell or
stdin socket is lost when the link is down), once (kept_channels.py).

Bounded: at most MAX_MESSAGES messages and MAX_BYTES bytes wait for an acknowledgement;
beyond that the oldest are dropped and one signed stderr line in their cell says so. A
message over MAX_MESSAGE_BYTES (an image, a big print) is sent live as it is but kept
only as such a line, never held whole.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time

MAX_MESSAGES = 20000
MAX_BYTES = 64 * 1024 * 1024
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
CLIENT_FORGET_SECONDS = 600.0  # a client silent this long no longer holds messages back
DELIM = b"<IDS|MSG>"
PORT_KEY = "jrc_iopub_keeper_port"  # in the connection file, read by the helper and the agent
# the IOPub topics of the kept copies (jrc_kernel.py sends them, iopub_bridge.py takes them)
EXECUTE_REPLY_TOPIC = b"jrc-execute-reply"
INPUT_REQUEST_TOPIC = b"jrc-input-request"
# [topic, DELIM, signature, header, {} parent, metadata, {"route": [hex]}, *the copy's frames]
KEPT_MSG_TYPE = "jrc_kept"


def parent_header(frames):
    """The parent header of a serialized Jupyter message (dict; {} when unreadable)."""
    try:
        i = frames.index(DELIM)
        return json.loads(frames[i + 3].decode("utf-8"))
    except (ValueError, IndexError, UnicodeDecodeError):
        return {}


class Buffer:
    """Numbered IOPub messages not yet acknowledged by every client, bounded."""

    def __init__(self, notice, max_messages=MAX_MESSAGES, max_bytes=MAX_BYTES, max_message=MAX_MESSAGE_BYTES):
        self.notice = notice  # (parent header, text) -> frames of a signed stderr message
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_message = max_message
        self.entries = collections.deque()  # (seq, frames, size)
        self.size = 0
        self.seq = 0

    def add(self, frames):
        """Number `frames`; keep them (or a line saying they were too big)."""
        self.seq += 1
        size = sum(len(f) for f in frames)
        if size > self.max_message:
            frames = self.notice(
                parent_header(frames),
                "[remote-cluster: an output of %.1f MiB was not kept on the node while the link "
                "was down]\n" % (size / 1048576.0),
            )
            size = sum(len(f) for f in frames)
        self.entries.append((self.seq, frames, size))
        self.size += size
        if len(self.entries) > self.max_messages or self.size > self.max_bytes:
            self._shed()
        return self.seq

    def _shed(self):
        """Drop the oldest quarter (by count or bytes) and say so in place of the last dropped."""
        dropped, last_seq, last_frames = 0, 0, None
        while self.entries and (len(self.entries) > self.max_messages * 3 // 4 or self.size > self.max_bytes * 3 // 4):
            last_seq, last_frames, size = self.entries.popleft()
            self.size -= size
            dropped += 1
        text = (
            "[remote-cluster: %d output messages were dropped on the node: the link was down "
            "longer than %d messages or %d MiB could wait]\n" % (dropped, self.max_messages, self.max_bytes >> 20)
        )
        frames = self.notice(parent_header(last_frames), text)
        self.entries.appendleft((last_seq, frames, sum(len(f) for f in frames)))
        self.size += self.entries[0][2]

    def forget_upto(self, seq):
        while self.entries and self.entries[0][0] <= seq:
            self.size -= self.entries.popleft()[2]

    def after(self, seq):
        """The kept messages numbered after `seq`, in order."""
        return [(s, f) for s, f, _ in self.entries if s > seq]

    def first_seq(self):
        return self.entries[0][0] if self.entries else self.seq + 1


class Keeper:
    def __init__(self, iopub_endpoint, bind_path, session):
        import zmq

        self.zmq = zmq
        self.session = session
        self.epoch = os.urandom(8).hex().encode()
        self.buffer = Buffer(self._notice)
        self.clients = {}  # routing id -> {"sent": seq, "acked": seq, "seen": monotonic}
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)  # the kernel's PUB must never drop for us
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.SNDHWM, 0)  # a ROUTER at its high-water mark drops silently
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client takes its id back
        self.router.linger = 0
        self.router.bind("ipc://" + bind_path)
        self._connect_sub(iopub_endpoint)

    def _connect_sub(self, endpoint):
        """Connect to the kernel's PUB and wait until the subscription is through, so the
        kernel's first messages ("starting") are kept too."""
        zmq = self.zmq
        monitor = self.sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.sub.connect(endpoint)
        try:
            if monitor.poll(5000):
                monitor.recv_multipart()
                time.sleep(0.02)  # the subscription follows the handshake on the same pipe
        finally:
            self.sub.disable_monitor()
            monitor.close(0)

    def _notice(self, parent, text):
        msg = self.session.msg("stream", {"name": "stderr", "text": text}, parent=parent)
        return self.session.serialize(msg, ident=[b"stream.stderr"])

    def run(self, alive):
        """Serve until `alive()` says the kernel is gone (asked once a second at most)."""
        zmq = self.zmq
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.router, zmq.POLLIN)
        checked = time.monotonic()
        while True:
            if time.monotonic() - checked >= 1.0:
                if not alive():
                    return
                checked = time.monotonic()
            ready = dict(poller.poll(1000))
            if self.sub in ready:
                for _ in range(1000):  # then look at the clients too
                    try:
                        frames = self.sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    seq = self.buffer.add(frames)
                    self._send_live(seq, frames)
            if self.router in ready:
                while True:
                    try:
                        request = self.router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(request)

    def _send_live(self, seq, frames):
        for ident, c in self.clients.items():
            if c["sent"] == seq - 1:  # caught up: this one goes straight out
                self._send(ident, seq, seq - 1, frames)
                c["sent"] = seq

    def _send(self, ident, seq, after, frames):
        try:
            self.router.send_multipart([ident, b"m", self.epoch, str(seq).encode(), str(after).encode()] + list(frames))
        except self.zmq.ZMQError:
            pass  # the client's connection is gone; it resumes after its reconnect

    def _handle(self, request):
        if len(request) != 4 or request[1] not in (b"resume", b"ack"):
            return  # not our client's request: ignore it
        ident, verb, epoch, seq = request
        try:
            seq = int(seq)
        except ValueError:
            return
        now = time.monotonic()
        c = self.clients.get(ident)
        if verb == b"ack":
            if c is not None and epoch == self.epoch:
                c["acked"] = max(c["acked"], seq)
                c["seen"] = now
                self._forget()
            return
        if epoch != self.epoch:
            # A new client starts after what the others acknowledged (what none of them
            # published); one of a previous process of this kernel, from our start.
            acked = [o["acked"] for o in self.clients.values()]
            seq = min(acked) if (epoch == b"" and acked) else 0
        c = self.clients[ident] = {"sent": seq, "acked": max(seq, c["acked"] if c else 0), "seen": now}
        for s, frames in self.buffer.after(seq):
            self._send(ident, s, c["sent"], frames)
            c["sent"] = s
        c["sent"] = max(c["sent"], self.buffer.seq)
        self._forget()

    def _forget(self):
        now = time.monotonic()
        for ident in [i for i, c in self.clients.items() if now - c["seen"] > CLIENT_FORGET_SECONDS]:
            del self.clients[ident]
        if self.clients:
            self.buffer.forget_upto(min(c["acked"] for c in self.clients.values()))


def free_ipc_path(prefix):
    """`<prefix>-<n>` not used by the kernel's own sockets (they count up from 1)."""
    n = 100
    while os.path.exists("%s-%d" % (prefix, n)):
        n += 1
    return n, "%s-%d" % (prefix, n)


READY_TIMEOUT = 15.0  # seconds for the keeper process to bind and subscribe


def keep_iopub(app):
    """Start a keeper process for an initialized IPKernelApp on ipc transport; record its
    socket's number in the connection file (PORT_KEY; 0 when it cannot run), which the
    helper reads. A process, not a thread: the kernel's own code (a pure-Python loop holds
    the GIL) never delays the output on its way out, and the keeper never slows the kernel."""
    port = 0
    try:
        if app.transport != "ipc":
            raise RuntimeError("the kernel is not on Unix sockets")
        port, path = free_ipc_path(app.ip)
        spec = {
            "iopub": "ipc://%s-%d" % (app.ip, app.iopub_port),
            "bind": path,
            # the key goes through a pipe, never argv (which every user of the node can read)
            "key": app.session.key.decode("latin-1"),
            "scheme": app.session.signature_scheme,
            "parent": os.getpid(),
        }
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        ready = _read_line(proc.stdout, READY_TIMEOUT)
        proc.stdout.close()
        if ready != b"ready":
            proc.kill()
            raise RuntimeError("the keeper did not start (%r)" % ready)
    except Exception as e:  # an old pyzmq/libzmq: run on, the output is just not kept
        port = 0
        print("jrc_iopub_keeper: not keeping IOPub output: %s" % e, flush=True)
    with open(app.abs_connection_file, "rb") as f:
        info = json.loads(f.read().decode("utf-8"))
    info[PORT_KEY] = port
    tmp = app.abs_connection_file + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, app.abs_connection_file)
    return port


def _read_line(pipe, timeout):
    import select

    if not select.select([pipe], [], [], timeout)[0]:
        return None
    return pipe.readline().strip()


def main():
    """The keeper process: its spec on stdin; "ready" on stdout once it keeps; exits with
    the kernel (whose process group it shares: an interrupt's SIGINT is not for it)."""
    from jupyter_client.session import Session

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = json.loads(sys.stdin.read())
    session = Session(key=spec["key"].encode("latin-1"), signature_scheme=spec["scheme"], username="kernel")
    keeper = Keeper(spec["iopub"], spec["bind"], session)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.dup2(2, 1)  # nobody reads the pipe any more: anything later goes to the kernel's log
    keeper.run(lambda: os.getppid() == spec["parent"])


if __name__ == "__main__":
    main()
