"""Web servers a session's processes start, on the testbed's real Slurm (issue 13, item 4):
`python -m http.server` started from a cell is offered within seconds and answers through
the proxy; bob's server on the same node is never offered and the proxy refuses its port;
when alice's server stops, it is withdrawn, and bob taking its port reaches nothing."""

import subprocess
import time

import pytest

from ..test_helper_web_ports import SLOW_SERVER
from .conftest import TESTBED, agent_call, proxy_get, running_session_kernel
from .test_notebook_dask import run, served

PYTHON = "/opt/rc-testbed/python/bin/python"
ALICE_PORT, BOB_PORT = 8123, 8124


@pytest.fixture(scope="module")
def web_session(jupyter_dirs):
    with running_session_kernel(jupyter_dirs, "rcit-web-ports", dask=False) as session_and_kernel:
        yield session_and_kernel


def bob_serves(node: str, port: int, text: str, seconds: int = 90) -> subprocess.Popen:
    """bob's own http.server on `node` (a directory with `text` in it), gone after `seconds`."""
    script = (
        f"d=$(mktemp -d) && echo {text} > $d/{text}.txt && cd $d && "
        f"exec timeout {seconds} {PYTHON} -m http.server {port} --bind 127.0.0.1"
    )
    return subprocess.Popen(
        [str(TESTBED), "exec", node, "--user", "bob", "--", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bob_stops(node: str) -> None:
    subprocess.run(
        [str(TESTBED), "exec", node, "--user", "bob", "--", "pkill", "-u", "bob", "-f", "http.server"],
        capture_output=True,
        timeout=30,
    )


def node_listens(node: str, port: int) -> bool:
    out = subprocess.run(
        [str(TESTBED), "exec", node, "--user", "bob", "--", "cat", "/proc/net/tcp"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return any(f[1].endswith(":%04X" % port) and f[3] == "0A" for f in (line.split() for line in out.splitlines()[1:]))


def wait_listening(node: str, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not node_listens(node, port):
        assert time.monotonic() < deadline, f"nothing listens on {node}:{port}"
        time.sleep(0.3)


@pytest.fixture
def bob_too(web_session):
    """The session and its kernel, with bob's http.server listening on BOB_PORT of its node.
    Yields (session, kernel client, bob's servers: a test appends any it starts); every
    server of bob's is stopped after."""
    session, kc = web_session
    node = session["node"]
    bobs = [bob_serves(node, BOB_PORT, "bob-secret-page")]
    try:
        wait_listening(node, BOB_PORT)
        yield session, kc, bobs
    finally:
        bob_stops(node)
        for b in bobs:
            b.wait(10)


def test_a_cells_web_server_is_offered_and_opens_bobs_is_never_reached(bob_too):
    session, kc, bobs = bob_too
    sid, node = session["id"], session["node"]
    started = time.monotonic()
    run(
        kc,
        "import os, subprocess, sys, tempfile\n"
        "site = tempfile.mkdtemp(); open(os.path.join(site, 'alice-page.txt'), 'w').write('hi')\n"
        f"web = subprocess.Popen([sys.executable, '-m', 'http.server', '{ALICE_PORT}', '--bind', '127.0.0.1'],"
        " cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(web.pid)",
    )
    s = served(sid, lambda ports: any(p["port"] == ALICE_PORT for p in ports), timeout=20)
    took = time.monotonic() - started
    entry = next(p for p in s.get("httpPorts") or [] if p["port"] == ALICE_PORT)
    assert entry["name"] == "web" and "http.server" in entry["command"], entry
    assert took < 10, f"offered after {took:.1f} s"
    # through the proxy (what the panel loads)
    code, body = proxy_get(entry["path"])
    assert code == 200 and b"alice-page.txt" in body, (code, body[:300])

    # bob's server on the same node: listening all along, never offered, refused by the proxy
    assert node_listens(node, BOB_PORT)
    assert all(p["port"] != BOB_PORT for p in s.get("httpPorts") or []), s["httpPorts"]
    bob_path = entry["path"].replace(f"/{ALICE_PORT}/", f"/{BOB_PORT}/")
    code, body = proxy_get(bob_path)
    assert code == 404 and b"bob-secret-page" not in body, (code, body[:300])

    # alice's server stops: withdrawn; bob takes the port: nothing of his is reached
    run(kc, "web.terminate(); web.wait(); print('stopped')")
    bob_stops(node)
    bobs[0].wait(10)
    bobs.append(bob_serves(node, ALICE_PORT, "bob-took-the-port"))
    wait_listening(node, ALICE_PORT)
    code, body = proxy_get(entry["path"])
    assert b"bob-took-the-port" not in body, (code, body[:300])
    assert code in (404, 502), (code, body[:300])
    s = served(sid, lambda ports: all(p["port"] != ALICE_PORT for p in ports), timeout=10)
    assert all(p["port"] != ALICE_PORT for p in s.get("httpPorts") or []), s["httpPorts"]
    code, body = proxy_get(entry["path"])
    assert code == 404 and b"bob-took-the-port" not in body, (code, body[:300])


# SLOW_SERVER listens at once and answers HTTP only after a while (a server still loading):
# the scan's first probe finds no HTTP and asks again only 20 s later.
LATE_PORT = 8125


def test_a_port_asked_for_by_number_opens_now_if_the_sessions_and_never_if_bobs(bob_too):
    session, kc, _ = bob_too
    sid, node = session["id"], session["node"]
    code, res = agent_call("POST", f"/api/v1/sessions/{sid}/web-ports", {"port": BOB_PORT})
    assert code == 400 and "is not held by a process of this session" in res["error"]["message"], res
    code, res = agent_call("POST", f"/api/v1/sessions/{sid}/web-ports", {"port": 80})
    assert code == 400 and "1024 to 65535" in res["error"]["message"], res
    code, res = agent_call("POST", f"/api/v1/sessions/{sid}/web-ports", {"port": 8126})
    assert code == 404 and res["error"]["message"] == f"Nothing listens on port 8126 on {node}.", res

    run(
        kc,
        "import subprocess, sys\n"
        f"late = subprocess.Popen([sys.executable, '-c', {SLOW_SERVER!r}, '{LATE_PORT}', '8'])\n"
        "print(late.pid)",
    )
    wait_listening(node, LATE_PORT)
    time.sleep(9)  # answering now; the scan asked before and asks again only after 20 s
    code, s = agent_call("GET", f"/api/v1/sessions/{sid}")
    assert all(p["port"] != LATE_PORT for p in s.get("httpPorts") or []), s["httpPorts"]
    code, entry = agent_call("POST", f"/api/v1/sessions/{sid}/web-ports", {"port": LATE_PORT})
    assert code == 200 and entry["port"] == LATE_PORT and entry["name"] == "web", entry
    code, body = proxy_get(entry["path"])
    assert code == 200 and body == b"ready", (code, body[:300])
    code, s = agent_call("GET", f"/api/v1/sessions/{sid}")
    assert any(p["port"] == LATE_PORT for p in s["httpPorts"]), s["httpPorts"]
    assert all(p["port"] != BOB_PORT for p in s["httpPorts"]), s["httpPorts"]
    code, body = proxy_get(entry["path"].replace(f"/{LATE_PORT}/", f"/{BOB_PORT}/"))
    assert code == 404 and b"bob-secret-page" not in body, (code, body[:300])
    run(kc, "late.kill(); late.wait(); print('stopped')")
