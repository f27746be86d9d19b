"""IOPub output kept on the node across a link cut (issue 12 item 5): the keeper
(remote/jrc_iopub_keeper.py, in a real ipykernel started by jrc_kernel.py) and the
provisioner's bridge (iopub_bridge.py), with a TCP hop between them that is cut as the
laptop's link would be. A plain subscriber through the same kind of hop shows what is
lost without them."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from jupyterlab_remote_cluster.iopub_bridge import IopubBridge

REMOTE = Path(__file__).resolve().parents[1] / "jupyterlab_remote_cluster" / "remote"
sys.path.insert(0, str(REMOTE))
from jrc_iopub_keeper import PORT_KEY, Buffer  # noqa: E402

CLUSTER_PY = "/opt/rc-testbed/python/bin/python"
PY = CLUSTER_PY if os.access(CLUSTER_PY, os.X_OK) else sys.executable
CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class CuttableHop:
    """127.0.0.1:<port> -> a Unix socket, byte for byte, until cut(): then every
    connection is closed and new ones are refused (closed at once) until restore()."""

    def __init__(self, target):
        self.target = target
        self.up = threading.Event()
        self.up.set()
        self.conns = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                c.close()
                continue
            u = socket.socket(socket.AF_UNIX)
            try:
                u.connect(self.target)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up.clear()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.up.set()

    def close(self):
        self.cut()
        self.listener.close()


@pytest.fixture
def kept_kernel(tmp_path):
    """A real kernel started as the helper starts it (jrc_kernel.py, ipc sockets); TCP
    hops to its five channels, the IOPub one to its keeper."""
    run = tmp_path / "rt"
    run.mkdir(mode=0o700)
    cf = tmp_path / "connection.json"
    info = {"ip": str(run / "k1"), "transport": "ipc", "signature_scheme": "hmac-sha256", "key": os.urandom(16).hex()}
    info.update({c: 0 for c in CHANNELS})
    cf.write_text(json.dumps(info))
    env = dict(os.environ, JRC_IOPUB_PIPE=str(run / "k1-pipe"))
    log = open(tmp_path / "kernel.log", "wb")
    proc = subprocess.Popen([PY, str(REMOTE / "jrc_kernel.py"), "-f", str(cf)], env=env, stdout=log, stderr=log)
    hops = []
    try:
        deadline = time.monotonic() + 60
        while True:
            info = json.loads(cf.read_text() or "{}") if cf.stat().st_size else {}
            if PORT_KEY in info:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "kernel.log").read_text()
            time.sleep(0.05)
        assert info[PORT_KEY] > 0, (tmp_path / "kernel.log").read_text()
        hop = {c: CuttableHop("%s-%d" % (info["ip"], info[c])) for c in CHANNELS}
        hop["keeper"] = CuttableHop("%s-%d" % (info["ip"], info[PORT_KEY]))
        hops = list(hop.values())
        yield info, hop
    finally:
        for h in hops:
            h.close()
        proc.kill()
        proc.wait()
        log.close()


def bridged_client(info, hop, bridge):
    """A kernel client on the hops, whose IOPub and stdin are the bridge's (as the
    provisioner arranges)."""
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_info(
        dict(
            info,
            transport="tcp",
            ip="127.0.0.1",
            key=info["key"].encode(),
            **{c: hop[c].port for c in CHANNELS},
        )
    )
    kc.iopub_port, kc.shell_port, kc.stdin_port = bridge.port, bridge.shell_port, bridge.stdin_port
    return kc


@pytest.fixture
def bridged(kept_kernel):
    """A ready client of the kept kernel as the provisioner arranges it (IOPub, shell and
    stdin through a bridge); the bridge and the hops."""
    info, hop = kept_kernel
    bridge = IopubBridge(logging.getLogger("test"))
    bridge.start(hop["keeper"].port, {"shell": hop["shell_port"].port, "stdin": hop["stdin_port"].port})
    kc = bridged_client(info, hop, bridge)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc, bridge, hop
    finally:
        kc.stop_channels()
        bridge.close()


def lines_of(texts):
    return [int(x) for x in "".join(texts).split()]


def test_a_cut_during_a_printing_cell_loses_no_line_and_repeats_none(kept_kernel):
    info, hop = kept_kernel
    bridge = IopubBridge(__import__("logging").getLogger("test"))
    bridge.start(hop["keeper"].port, {"shell": hop["shell_port"].port, "stdin": hop["stdin_port"].port})
    kc = bridged_client(info, hop, bridge)
    # What a client subscribed to the kernel's PUB socket itself sees (through a hop cut alike).
    ctx = zmq.Context()
    plain = ctx.socket(zmq.SUB)
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    plain.connect("tcp://127.0.0.1:%d" % hop["iopub_port"].port)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        texts = []
        plain_texts = []

        def plain_reader(stop):
            while not stop.is_set():
                if plain.poll(100):
                    frames = plain.recv_multipart()
                    i = frames.index(b"<IDS|MSG>")
                    if json.loads(frames[i + 2])["msg_type"] == "stream":
                        plain_texts.append(json.loads(frames[i + 5])["text"])

        stop = threading.Event()
        reader = threading.Thread(target=plain_reader, args=(stop,), daemon=True)
        reader.start()

        def cut_and_restore():
            time.sleep(1.0)
            for h in (hop["keeper"], hop["iopub_port"]):
                h.cut()
            time.sleep(2.0)
            for h in (hop["keeper"], hop["iopub_port"]):
                h.restore()

        cutter = threading.Thread(target=cut_and_restore)
        cutter.start()
        reply = kc.execute_interactive(
            "import time\nfor i in range(80):\n    print(i, flush=True)\n    time.sleep(0.05)\n",
            timeout=60,
            output_hook=lambda m: texts.append(m["content"]["text"]) if m["msg_type"] == "stream" else None,
        )
        cutter.join()
        assert reply["content"]["status"] == "ok"
        # every line, in order, once
        assert lines_of(texts) == list(range(80)), "%s %d %d" % (lines_of(texts), bridge.duplicates, bridge.published)
        assert bridge.duplicates >= 0 and bridge.published > 0
        stop.set()
        reader.join()
        # the same cut without the keeper loses the lines printed meanwhile
        got = lines_of(plain_texts)
        assert got and len(got) < 80 - 20, got
    finally:
        kc.stop_channels()
        plain.close(0)
        ctx.term()
        bridge.close()


def notice(parent, text):
    return [b"stream.stderr", b"<IDS|MSG>", b"sig", b"{}", json.dumps(parent).encode(), b"{}", text.encode()]


def message(parent_id, size=10):
    return [
        b"stream.stdout",
        b"<IDS|MSG>",
        b"sig",
        b"{}",
        json.dumps({"msg_id": parent_id}).encode(),
        b"{}",
        b"x" * size,
    ]


def test_the_buffer_is_bounded_and_says_in_the_cell_what_it_dropped():
    b = Buffer(notice, max_messages=8, max_bytes=10_000, max_message=1000)
    for _ in range(8):
        b.add(message("cell-1"))
    assert [s for s, _ in b.after(0)] == list(range(1, 9))
    b.add(message("cell-1"))  # the ninth: over the count, the oldest quarter goes
    kept = b.after(0)
    assert len(kept) <= 8
    first_seq, first = kept[0]
    assert b"output messages were dropped on the node" in first[-1]
    assert json.loads(first[4]) == {"msg_id": "cell-1"}  # in the cell they belonged to
    assert [s for s, _ in kept[1:]] == list(range(first_seq + 1, 10))
    # an oversized message is kept only as a line saying so, in its own cell
    seq = b.add(message("cell-2", size=5000))
    ((s, big),) = b.after(seq - 1)
    assert s == seq and b"was not kept on the node" in big[-1] and json.loads(big[4]) == {"msg_id": "cell-2"}
    assert b.size < 10_000
    b.forget_upto(seq)
    assert b.after(0) == [] and b.size == 0 and b.first_seq() == seq + 1


def test_an_input_prompt_asked_while_the_link_is_down_arrives_once_and_is_answered(bridged):
    """input() called while every hop is cut: the prompt the kernel sends on stdin is lost,
    its copy kept on the node arrives once the link is back, the answer reaches the
    kernel, and the cell goes on. A prompt asked with the link up arrives once too (both
    of its copies reach the bridge)."""
    kc, bridge, hop = bridged
    prompts, texts = [], []

    def answer(msg):
        prompts.append((time.monotonic(), msg["content"]["prompt"]))
        kc.input("alice-%d" % len(prompts))

    def hook(msg):
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"])

    # with the link up
    reply = kc.execute_interactive(
        "print('up:', input('first? '))", timeout=30, allow_stdin=True, stdin_hook=answer, output_hook=hook
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [p for _, p in prompts] == ["first? "] and "".join(texts) == "up: alice-1\n", (prompts, texts)

    # with every hop cut from before the prompt until after it was asked
    prompts.clear()
    texts.clear()
    cut_at = {}

    def cut_and_restore():
        time.sleep(0.5)
        for h in hop.values():
            h.cut()
        cut_at["cut"] = time.monotonic()
        time.sleep(3.0)
        for h in hop.values():
            h.restore()
        cut_at["up"] = time.monotonic()

    cutter = threading.Thread(target=cut_and_restore)
    cutter.start()
    reply = kc.execute_interactive(
        "import time\ntime.sleep(1.5)\nprint('cut:', input('second? '))",
        timeout=60,
        allow_stdin=True,
        stdin_hook=answer,
        output_hook=hook,
    )
    cutter.join()
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [p for _, p in prompts] == ["second? "], prompts
    assert prompts[0][0] >= cut_at["up"]  # asked during the cut, it came after it
    assert "".join(texts) == "cut: alice-1\n", texts
    assert bridge.channels["stdin"].delivered == 2


def test_a_cell_that_ends_while_the_link_is_down_gets_its_reply_once(bridged):
    """The execute_reply (what ends a cell's [*] in JupyterLab) of a cell that ends while
    every hop is cut reaches the client once the link is back, once; and so does the
    reply of a cell run with the link up, whose two copies both reach the bridge."""
    kc, bridge, hop = bridged
    reply = kc.execute_interactive("a = 1", timeout=30)
    assert reply["content"]["status"] == "ok"
    up_count = reply["content"]["execution_count"]
    for h in hop.values():
        h.cut()
    msg_id = kc.execute("import time\ntime.sleep(1)\nb = a + 1")  # queued: sent once the link is back
    for h in hop.values():
        h.restore()
    # the request goes out at once: cut again before the cell ends (in 1 s)
    time.sleep(0.3)
    for h in hop.values():
        h.cut()
    time.sleep(2.5)
    for h in hop.values():
        h.restore()
    up = time.monotonic()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok", reply
    assert reply["content"]["execution_count"] == up_count + 1
    reply_id = reply["header"]["msg_id"].encode()
    assert time.monotonic() - up < 15
    # nothing twice: the next reply is the next cell's
    follow = kc.execute("c = b + 1")
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == follow, reply["parent_header"]
    time.sleep(1.0)  # and no copy comes later
    assert not kc.shell_channel.msg_ready()
    # the copy of the cut cell's reply sent on the shell was lost: the kept one is
    # remembered (for a twin that will not come)
    assert reply_id in bridge.channels["shell"].once


def test_a_silent_clients_way_to_the_kernel_is_closed_and_made_again(bridged, monkeypatch):
    """The bridge's DEALER for a client that has carried nothing for a while is closed
    (the Jupyter server makes a client per page and closes it with the page); the
    client's next request makes it again, and a reply for it meanwhile comes as its copy."""
    from jupyterlab_remote_cluster import iopub_bridge, kept_channels

    monkeypatch.setattr(kept_channels, "UPSTREAM_IDLE_SECONDS", 1.0)
    monkeypatch.setattr(iopub_bridge, "EXPIRE_INTERVAL", 0.2)
    kc, bridge, hop = bridged
    shell = bridge.channels["shell"]
    assert len(shell.upstream) == 1
    # a cell that outlasts the idle time: its DEALER goes, its reply comes as the copy
    reply = kc.execute_interactive("import time; time.sleep(3); a = 1", timeout=30)
    assert reply["content"]["status"] == "ok"
    assert reply["header"]["msg_id"].encode() in shell.once  # the copy came; its twin had no way
    time.sleep(2.0)
    assert shell.upstream == {}
    reply = kc.execute_interactive("a + 1", timeout=30)
    assert reply["content"]["status"] == "ok" and len(shell.upstream) == 1


def test_a_client_without_an_identity_of_its_own_gets_its_replies(bridged):
    """The Jupyter server asks a kernel_info through a socket with no identity when a page
    connects: ZMQ gives it a number that starts with a zero byte, which a DEALER cannot
    take as its own. Its requests still reach the kernel and its replies come back."""
    kc, bridge, _hop = bridged
    ctx = zmq.Context()
    anonymous = ctx.socket(zmq.DEALER)
    anonymous.linger = 0
    anonymous.connect("tcp://127.0.0.1:%d" % bridge.shell_port)
    try:
        for _ in range(2):
            sent = kc.session.send(anonymous, "kernel_info_request", {})
            assert anonymous.poll(20000), "no kernel_info_reply"
            _idents, reply = kc.session.recv(anonymous)
            assert reply["msg_type"] == "kernel_info_reply"
            assert reply["parent_header"]["msg_id"] == sent["header"]["msg_id"]
        assert any(i.startswith(b"\0") for i in bridge.channels["shell"].upstream)
    finally:
        anonymous.close(0)
        ctx.term()


def test_a_client_on_the_kernels_own_sockets_runs_cells_as_before(kept_kernel):
    """A client on the kernel's own IOPub (on the node, without the bridge) also receives
    the kept copies: they travel in an envelope of their own, so the client never sees a
    reply's signature twice (jupyter_client takes that as a replay and fails)."""
    from jupyter_client import BlockingKernelClient

    info, hop = kept_kernel
    kc = BlockingKernelClient()
    kc.load_connection_info(
        dict(info, transport="tcp", ip="127.0.0.1", key=info["key"].encode(), **{c: hop[c].port for c in CHANNELS})
    )
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        out = []
        for _ in range(3):
            reply = kc.execute_interactive(
                "print(6 * 7)", timeout=20, output_hook=lambda m: out.append(m["content"].get("text", ""))
            )
            assert reply["content"]["status"] == "ok", reply["content"]
        assert "".join(out).split() == ["42", "42", "42"], out
    finally:
        kc.stop_channels()
