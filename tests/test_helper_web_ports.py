"""Web servers the session's processes start (webports.py), found and reached for real:
an http.server a kernel starts is offered and answers through its bridge socket; one that
no longer descends from the session is never offered, and its bridge refuses it; a
listener that does not speak HTTP is not offered. (Another user's server, on the
testbed: tests/testbed/test_web_ports.py.)"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from .test_helper import HELPER, PY, Session, UnixHTTPConnection, execute, tls_pems, wait_for  # noqa: F401

sys.path.insert(0, str(HELPER))
from jrc_helper import served, webports  # noqa: E402

_ = tls_pems  # the Session's TLS (a fixture of test_helper, used here too)


@pytest.fixture(autouse=True)
def _tls(tls_pems):
    from .test_helper import TLS

    TLS.update(tls_pems)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_server(port, cwd, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kw,
    )


def orphan_server(port, cwd):
    """An http.server started by a shell that exits at once: its parent is no longer
    anything of ours (not a descendant of this process). Its pid."""
    subprocess.run(
        "%s -m http.server %d --bind 127.0.0.1 >/dev/null 2>&1 & echo $! > orphan.pid" % (sys.executable, port),
        shell=True,
        cwd=cwd,
        check=True,
    )
    return int((cwd / "orphan.pid").read_text())


def get(sock_path, path="/"):
    conn = UnixHTTPConnection(sock_path, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_a_port_is_the_sessions_only_while_its_process_descends_from_it(tmp_path):
    (tmp_path / "marker-file.txt").write_text("x")
    port, orphan_port = free_port(), free_port()
    child = http_server(port, tmp_path)
    orphan = orphan_server(orphan_port, tmp_path)
    bridges = []
    try:
        wait_for(lambda: {port, orphan_port} <= set(webports.listening_ports()), 15, "both servers listening")
        root = os.getpid()
        assert webports.port_owner(port, root) == (child.pid, "127.0.0.1")
        assert child.pid in webports.own_descendants(root)
        assert webports.port_owner(orphan_port, root) is None  # (control: it is served, by the orphan)
        assert webports.speaks_http("127.0.0.1", orphan_port)
        assert "http.server %d" % port in webports.command_of(child.pid)

        ours = webports.WebPortBridge(str(tmp_path / "ours.sock"), port, root)
        theirs = webports.WebPortBridge(str(tmp_path / "theirs.sock"), orphan_port, root)
        bridges += [ours, theirs]
        assert oct(os.stat(ours.path).st_mode & 0o777) == "0o600"
        status, body = get(ours.path)
        assert status == 200 and "marker-file.txt" in body
        # the orphan's server answers on TCP, but never through a bridge of the session
        status, body = get(theirs.path)
        assert status == 404 and "marker-file.txt" not in body, body
        assert body == "Port %d is no longer held by a process of this session: it is not reached." % orphan_port
        # the session's server goes and a process that is not the session's takes its port:
        # the bridge made for it refuses at the connection, before any scan
        child.terminate()
        child.wait(10)
        os.kill(orphan, 15)
        orphan = orphan_server(port, tmp_path)
        wait_for(lambda: webports.speaks_http("127.0.0.1", port), 15, "the other server on the port")
        status, body = get(ours.path)
        assert status == 404 and "marker-file.txt" not in body and "no longer held" in body, body
    finally:
        for b in bridges:
            b.close()
        child.terminate()
        os.kill(orphan, 15)


@pytest.mark.parametrize(
    "hex_address, expected",
    [
        ("0100007F", "127.0.0.1"),
        ("00000000", "127.0.0.1"),  # every address: reached on the loopback
        ("0A02000A", "10.0.2.10"),  # one of the node's own addresses
        ("00000000000000000000000000000000", "::1"),
        ("00000000000000000000000001000000", "::1"),
        ("0000000000000000FFFF00000100007F", "127.0.0.1"),  # IPv4-mapped
    ],
)
def test_listening_addresses_are_read_as_the_kernel_writes_them(hex_address, expected):
    assert webports.reachable_address(hex_address) == expected


def test_a_server_on_one_of_the_nodes_addresses_is_found_too(tmp_path):
    address = socket.gethostbyname(socket.gethostname())
    if address.startswith("127."):
        address = "127.0.0.2"  # (a host whose name is on the loopback: another loopback address)
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", address],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port in webports.listening_ports(), 15, "the server on %s" % address)
        assert webports.port_owner(port, os.getpid()) == (child.pid, address)
        assert webports.speaks_http(address, port)
    finally:
        child.terminate()


def test_a_listener_that_does_not_speak_http_is_not_a_web_ui():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def answer():
        conn, _ = srv.accept()
        conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # a TLS alert, as a TLS-only comm answers
        conn.close()

    import threading

    threading.Thread(target=answer, daemon=True).start()
    try:
        assert webports.speaks_http("127.0.0.1", port) is False
    finally:
        srv.close()


def test_the_helper_offers_a_kernels_web_server_and_withdraws_it(tmp_path):
    s = Session(tmp_path)
    try:
        s.wait_status("ready", 30)
        kc = s.start_kernel("k-web")
        port = free_port()
        reply, _ = execute(
            kc,
            "import subprocess, sys\n"
            "web = subprocess.Popen([sys.executable, '-m', 'http.server', '%d', '--bind', '127.0.0.1'],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)" % port,
        )
        assert reply["status"] == "ok", reply
        t0 = time.monotonic()
        st = wait_for(
            lambda: (lambda st: st if any(p.get("port") == port for p in st.get("httpPorts", [])) else None)(s.state()),
            15,
            "port %d offered (%s)" % (port, s.output()[-1500:]),
        )
        found_in = time.monotonic() - t0
        entry = next(p for p in st["httpPorts"] if p["port"] == port)
        assert entry["name"] == "web" and entry["kernelId"] == "k-web" and entry["stripPrefix"] is True, entry
        assert entry["path"] == "/remote-cluster/sessions/ab12/proxy/%d/" % port
        assert "http.server %d" % port in entry["command"]
        assert found_in < 10, found_in
        status, body = get(st["httpSockets"][str(port)])
        assert status == 200 and "Directory listing" in body
        # the kernel's own listeners (ZMQ on Unix sockets) and the relay are not offered
        assert [p["name"] for p in st["httpPorts"]] == ["web"], st["httpPorts"]

        execute(kc, "web.terminate(); web.wait()")
        wait_for(
            lambda: not any(p.get("port") == port for p in s.state().get("httpPorts", [])),
            15,
            "port %d withdrawn" % port,
        )
        assert not os.path.exists(st["httpSockets"][str(port)])
        kc.stop_channels()
    finally:
        s.close()


SLOW_SERVER = r"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as real servers do: a port left in TIME_WAIT is bound again
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
ready_at = time.monotonic() + float(sys.argv[2])
held = []
while True:
    c, _ = s.accept()
    if time.monotonic() < ready_at:
        held.append(c)  # listening, not answering yet (a server still starting)
        continue
    c.recv(65536)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nready")
    c.close()
"""


class OffersRecorded:
    """The Helper's side of offering a served port, recorded in `served` (the stand-ins
    below run one scan of the real mixins against it)."""

    served: dict

    def kernel_of(self, pid):
        return None

    def offer_http(self, label, sock, entry):
        self.served[label] = entry

    def withdraw_http(self, label):
        self.served.pop(label, None)


class ScanOnly(OffersRecorded, webports.WebPortsMixin):
    """What scan_web_ports uses of the Helper, with this process as the helper."""

    def __init__(self, runtime):
        self.runtime, self.config = str(runtime), {"proxyBase": "/p"}
        self.web_bridges, self.web_probed, self.served = {}, {}, {}
        self.web_lock = threading.Lock()

    def is_dask_comm(self, port, pid):
        return False


def test_a_server_that_listens_before_it_answers_is_asked_again(tmp_path, monkeypatch):
    monkeypatch.setattr(webports, "REPROBE_SECONDS", 0.5)
    monkeypatch.setattr(webports, "PROBE_TIMEOUT", 0.5)
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(port), "2"])
    helper = ScanOnly(tmp_path)
    try:
        wait_for(lambda: port in webports.listening_ports(), 15, "the slow server listening")
        helper.scan_web_ports()  # seen: asked from the next scan on
        helper.scan_web_ports()
        assert helper.web_probed[(port, webports.listening_ports()[port][0])][1] is not None  # asked
        assert str(port) not in helper.served  # it did not answer yet
        wait_for(lambda: helper.scan_web_ports() or str(port) in helper.served, 15, "offered once it answers")
        assert helper.served[str(port)]["name"] == "web" and helper.served[str(port)]["pid"] == child.pid
    finally:
        child.terminate()
        for b in helper.web_bridges.values():
            b.close()


RAW_LISTENER = r"""
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # never a byte back: not HTTP
"""


def test_a_port_asked_for_by_number_is_opened_only_if_a_session_web_server_holds_it(tmp_path):
    s = Session(tmp_path)
    orphan = None
    try:
        s.wait_status("ready", 30)
        kc = s.start_kernel("k-open")

        def ask(port):
            status, res, _ = s.request("POST", "/web-ports", {"port": port})
            return status, res

        for bad in (80, 70000, "8000", True, None):
            status, res = ask(bad)
            assert status == 400 and "whole number from 1024 to 65535" in res["error"]["message"], (bad, res)

        nobody = free_port()
        status, res = ask(nobody)
        assert (status, res["error"]["code"]) == (404, "not-listening"), res
        assert res["error"]["message"] == "Nothing listens on port %d on %s." % (nobody, socket.gethostname())

        # the user's own server, but not one of the session's processes
        theirs = free_port()
        orphan = orphan_server(theirs, tmp_path)
        wait_for(lambda: theirs in webports.listening_ports(), 15, "the other server listening")
        status, res = ask(theirs)
        assert (status, res["error"]["code"]) == (403, "not-the-sessions"), res
        assert "not held by a process of this session" in res["error"]["message"]

        # the helper's own relay port
        status, res = ask(s.state()["relayPort"])
        assert (status, res["error"]["code"]) == (403, "not-the-sessions"), res
        assert "helper's own endpoint" in res["error"]["message"]

        # a session process that listens but does not speak HTTP
        raw, web = free_port(), free_port()
        reply, _ = execute(
            kc,
            "import subprocess, sys\n"
            f"raw = subprocess.Popen([sys.executable, '-c', {RAW_LISTENER!r}, '{raw}'])\n"
            f"web = subprocess.Popen([sys.executable, '-m', 'http.server', '{web}', '--bind', '127.0.0.1'],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)",
        )
        assert reply["status"] == "ok", reply
        wait_for(lambda: {raw, web} <= set(webports.listening_ports()), 15, "both listening")
        status, res = ask(raw)
        assert (status, res["error"]["code"]) == (422, "not-http"), res
        assert all(p["port"] != raw for p in s.state().get("httpPorts", []))

        # the session's web server: offered at once, reached through its socket
        status, res = ask(web)
        assert status == 200, res
        assert res["entry"]["port"] == web and res["entry"]["name"] == "web" and res["entry"]["kernelId"] == "k-open"
        assert "http.server %d" % web in res["entry"]["command"]
        assert any(p["port"] == web for p in s.state()["httpPorts"])
        code, body = get(res["httpSockets"][str(web)])
        assert code == 200 and "Directory listing" in body
        # asked again: the same entry, one bridge
        assert ask(web) == (200, res)
        execute(kc, "raw.kill(); web.kill(); raw.wait(); web.wait()")
        kc.stop_channels()
    finally:
        if orphan:
            os.kill(orphan, 15)
        s.close()


# Records every warning Dask's TCP comms log in the kernel (where the notebook's scheduler
# runs): an HTTP probe of its TLS port is one ("TLS handshake failed ... http request").
DASK_WARNINGS = """
import logging
from distributed import LocalCluster
comm_warnings = []
class Recorded(logging.Handler):
    def emit(self, record):
        comm_warnings.append(record.getMessage())
logging.getLogger("distributed.comm.tcp").addHandler(Recorded())
lc = LocalCluster(n_workers=1, threads_per_worker=1)
print(lc.scheduler_address)
"""


def test_the_comm_ports_of_a_notebooks_dask_cluster_are_never_probed(tmp_path):
    """A notebook's LocalCluster listens on TLS comm ports, as do its nanny and worker. The
    scan for web servers must not send them its HTTP probe: Dask would log each probe as a
    failed TLS handshake, and that warning lands in the user's notebook. Asked for by
    number, such a port is refused as Dask's, without a probe."""
    s = Session(tmp_path)
    try:
        s.wait_status("ready", 30)
        kc = s.start_kernel("k-dask")
        reply, out = execute(kc, DASK_WARNINGS, timeout=90)
        assert reply["status"] == "ok", reply
        port = int(out.split()[-1].rsplit(":", 1)[1])
        # the scan ran on the cluster's ports: its dashboard (label 1) is offered, and then
        # a few more scans went by
        wait_for(lambda: any(p["port"] == 1 for p in s.state().get("httpPorts", [])), 20, "dashboard 1")
        time.sleep(3 * served.SCAN_SECONDS)
        reply, out = execute(kc, "print(len(comm_warnings), comm_warnings[:2])")
        assert reply["status"] == "ok", reply
        assert out.split()[0] == "0", out
        status, res, _ = s.request("POST", "/web-ports", {"port": port})
        assert (status, res["error"]["code"]) == (422, "not-http"), res
        assert "is a Dask comm port" in res["error"]["message"], res
        reply, out = execute(kc, "print(len(comm_warnings)); lc.close()", timeout=60)
        assert out.split()[0] == "0", out
        assert [p["name"] for p in s.state()["httpPorts"] if p["name"] == "web"] == []
        kc.stop_channels()
    finally:
        s.close()


class DashboardsOnly(OffersRecorded, served.ServedMixin):
    """What scan_dashboards uses of the Helper."""

    def __init__(self, dashboards):
        self.dashboards, self.config = str(dashboards), {"proxyBase": "/p"}
        self.served, self.served_misses, self.next_count = {}, {}, float("inf")


def fake_scheduler(path, answers):
    """A Unix-socket HTTP server answering identity.json with `answers` in turn (the last
    one repeated): a status and an identity."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(8)
    answers = list(answers)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            status, ident = answers.pop(0) if len(answers) > 1 else answers[0]
            body = json.dumps(ident).encode() if status == 200 else b"<html>500: Internal Server Error</html>"
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_a_dashboard_that_answers_an_error_is_alive_and_one_that_is_gone_is_withdrawn(tmp_path):
    """A scheduler whose identity.json answers an error (Dask's own, while it computes)
    keeps its offered dashboard and its count; one that no longer answers at all is
    withdrawn at the second scan that misses it, and its socket goes."""
    ident = {"type": "Scheduler", "n_workers": 2, "total_threads": 4}
    sock = tmp_path / "1.sock"
    srv = fake_scheduler(sock, [(200, ident)] + [(500, None)] * 4)
    helper = DashboardsOnly(tmp_path)
    helper.scan_dashboards()
    assert helper.served["1"]["workers"] == 2 and helper.served["1"]["threads"] == 4, helper.served
    for _ in range(4):
        helper.scan_dashboards()
        assert helper.served["1"]["workers"] == 2, helper.served
    srv.shutdown(socket.SHUT_RDWR)  # (close alone leaves it listening while accept waits)
    srv.close()
    helper.scan_dashboards()
    assert "1" in helper.served  # one miss may be a scheduler between bind and listen
    helper.scan_dashboards()
    assert "1" not in helper.served and not sock.exists()
