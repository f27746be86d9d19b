"""Terminals the helper holds (terminals.py), for real: a shell on a pty, attached over the
control channel as the agent attaches, that keeps running when its client goes (a link
drop) and gives the next client the recent screen; resized; ended by DELETE or by the
session. (In a job on the testbed: tests/testbed/test_terminals.py.)"""

import json
import os
import socket
import time

import pytest

from .test_helper import Session, tls_pems, wait_for  # noqa: F401

_ = tls_pems


@pytest.fixture(scope="module")
def session(tmp_path_factory, tls_pems):
    from .test_helper import TLS

    TLS.update(tls_pems)
    s = Session(tmp_path_factory.mktemp("terminals"), env=dict(os.environ, SHELL="/bin/bash"))
    s.wait_status("ready", 30)
    yield s
    s.close()


class Client:
    """An attached client: the raw control socket, as the agent's stream."""

    def __init__(self, session, tid, token=None, since=None):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(15)
        self.sock.connect(session.state()["controlSocket"])
        self.sock.sendall(
            (
                "POST /terminals/%s/attach%s HTTP/1.1\r\nHost: helper\r\nAuthorization: Bearer %s\r\n"
                "Content-Length: 0\r\n\r\n" % (tid, "" if since is None else "?from=%d" % since, token or session.token)
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed before answering: %r" % self.buf
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])
        self.screen = ""
        self.offset = None  # the shell's byte count at the end of what this client got
        self.ended = None

    def send(self, *msg):
        self.sock.sendall((json.dumps(list(msg)) + "\n").encode())

    def type(self, text):
        self.send("stdin", text)

    def read_until(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while needle not in self.screen:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                kind, value, *rest = json.loads(line)
                if kind == "stdout":
                    self.screen += value
                    self.offset = rest[0]
                elif kind == "disconnect":
                    self.ended = value
            if needle in self.screen or self.ended is not None:
                break
            assert time.monotonic() < deadline, "no %r on the screen: %r" % (needle, self.screen[-500:])
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue  # (the deadline check above says what is missing)
            if not chunk:
                break
            self.buf += chunk
        return self.screen

    def close(self):
        self.sock.close()


def test_a_shell_outlives_its_client_and_the_next_one_sees_the_recent_screen(session):
    st, t, _ = session.request("POST", "/terminals", {"rows": 30, "cols": 100})
    assert st == 201 and t["alive"] is True, t
    tid = t["terminalId"]
    assert session.state()["terminals"] == [tid]  # (the agent shows them in the Running panel)
    a = Client(session, tid)
    assert a.status == 200
    a.type('echo "pid=$$ term=$TERM var=$RC_TEST_VAR"; stty size\n')
    screen = a.read_until("30 100")
    assert "term=xterm-256color var=hello" in screen  # the session's kernel environment too
    pid = screen.split("pid=")[-1].split()[0]
    a.send("set_size", 40, 120)
    a.type("stty size; (sleep 1; echo late-$((2+3))) &\n")
    a.read_until("40 120")
    a.close()  # the link dropped; the shell prints on
    time.sleep(1.5)

    st, res, _ = session.request("GET", "/terminals")
    assert [x["terminalId"] for x in res["terminals"]] == [tid]
    # a client attaching again gets what it missed, and nothing it had
    again = Client(session, tid, since=a.offset)
    assert "pid=" not in again.read_until("late-5")
    again.close()
    # a new client (a reloaded page) gets the recent screen
    b = Client(session, tid)
    assert "late-5" in b.read_until("pid=%s" % pid)
    b.type("echo again=$$\n")
    assert "again=%s" % pid in b.read_until("again=%s" % pid)  # the same shell
    # ^C reaches the foreground job: the pty is the shell's controlling terminal
    b.type('sleep 30; echo sl""ept\n')
    time.sleep(0.5)
    b.type("\x03")
    b.type("echo after-$((1+1))\n")
    screen = b.read_until("after-2")
    assert "slept" not in screen

    st, res, _ = session.request("DELETE", "/terminals/%s" % tid)
    assert st == 200, res
    b.read_until("never printed", timeout=10)
    assert b.ended is not None  # told the shell ended
    b.close()
    assert session.request("GET", "/terminals")[1] == {"terminals": []}
    wait_for(lambda: session.state()["terminals"] == [], 10, "state.json without the terminal")
    wait_for(lambda: not os.path.exists("/proc/%s" % pid), 10, "the shell to be gone")


def test_exit_ends_the_terminal_and_tells_its_client(session):
    st, t, _ = session.request("POST", "/terminals", {})
    c = Client(session, t["terminalId"])
    c.type("exit 7\n")
    c.read_until("never printed", timeout=10)
    assert c.ended == 7
    c.close()
    st, res, _ = session.request("POST", "/terminals/%s/attach" % t["terminalId"])
    assert st == 404 and res["error"]["code"] == "unknown-terminal"


def test_bad_terminal_requests_are_refused(session):
    assert session.request("POST", "/terminals", {"rows": 0})[0] == 400
    assert session.request("POST", "/terminals", {"cols": "80"})[0] == 400
    assert session.request("DELETE", "/terminals/bash")[0] == 400  # ids are t<n>
    assert session.request("DELETE", "/terminals/t999")[0] == 404
    st, t, _ = session.request("POST", "/terminals", {})
    # a client without the session's token is refused before anything is attached
    c = Client(session, t["terminalId"], token="wrong")
    assert c.status == 401
    c.close()
    assert session.request("GET", "/terminals")[1]["terminals"][0]["clients"] == 0
    assert session.request("DELETE", "/terminals/%s" % t["terminalId"])[0] == 200


def test_the_session_stopping_ends_its_shells(tmp_path, tls_pems):
    from .test_helper import TLS

    TLS.update(tls_pems)
    s = Session(tmp_path, env=dict(os.environ, SHELL="/bin/bash"))
    s.wait_status("ready", 30)
    try:
        pid = s.request("POST", "/terminals", {})[1]["pid"]
        c = Client(s, "t1")
        # a shell that ignores the hangup of its terminal (and SIGTERM) still ends
        c.type("trap '' HUP TERM; echo shell=$$\n")
        c.read_until("shell=%d" % pid)  # (the shim execs the shell: same process)
        assert s.request("POST", "/shutdown")[0] == 200
        s.proc.wait(30)
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
        c.close()
    finally:
        s.close()


def test_a_client_that_left_is_dropped_without_stopping_the_output():
    """A client's file is closed as it leaves (ValueError, not OSError), possibly while the
    shell's output is being sent to it: the others still get the output."""
    import sys

    from .test_helper import HELPER

    sys.path.insert(0, str(HELPER))
    from jrc_helper.terminals import Terminal

    got = []

    def gone(line):
        raise ValueError("write to closed file")

    t = Terminal("t1", None, -1)
    t.clients = [gone, got.append]
    t.broadcast(["stdout", "x", 1])
    assert got == [b'["stdout", "x", 1]\n'] and t.clients == [got.append]
