"""Terminals in the job: a shell on a pseudo-terminal this helper holds, so it survives a
drop of the laptop's link (the agent attaches again and gets the screen's recent output),
works under every batch system and connectivity mode (it is reached over the control
channel, no SSH channel per terminal), and ends with the session (the terminal part of
Helper).

An attached client speaks terminado's messages, one JSON array per line each way:
  to the shell:   ["stdin", text], ["set_size", rows, cols]
  from the shell: ["stdout", text, offset], ["disconnect", exit code]
`offset` counts the bytes the shell printed so far: a client that attaches again after a
drop asks for what came after the last offset it got (attach `?from=`), not the whole
recent screen again.
"""

import codecs
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

from .common import ApiError, kill_group, log, stop_processes

MAX_TERMINALS = 16  # per session: a runaway loop must not fill the node's pty table
SCROLLBACK_BYTES = 64 * 1024  # what a client attaching again gets first
TERMINAL_ID_RE = re.compile(r"^t[0-9]{1,6}$")
MAX_LINE = 1 << 20  # an attached client's message (a paste) at most
HANGUP_GRACE = 2.0  # DELETE: SIGHUP (shells ignore SIGTERM), then SIGTERM/SIGKILL
# Run in the child before the shell: the pty becomes its controlling terminal (job control,
# ^C to the foreground job). subprocess has no option for it; setsid comes first
# (start_new_session).
CTTY_SHIM = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"


class Terminal:
    def __init__(self, tid, proc, master):
        self.tid = tid
        self.proc = proc
        self.master = master
        self.lock = threading.Lock()
        self.scrollback = b""
        self.total = 0  # bytes the shell printed so far (scrollback ends there)
        self.clients = []  # write(line) callables of attached clients
        self.hangups = {}  # a client's write -> what ends its connection (once the shell ended)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.exit_code = None
        self.started_at = time.time()

    def alive(self):
        return self.exit_code is None

    def info(self):
        with self.lock:
            clients = len(self.clients)
        return {"terminalId": self.tid, "pid": self.proc.pid, "alive": self.alive(), "clients": clients}

    def resize(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def broadcast(self, message, clients=None):
        line = (json.dumps(message) + "\n").encode()
        if clients is None:
            with self.lock:
                clients = list(self.clients)
        for write in clients:
            try:
                write(line)
            except (OSError, ValueError):  # (ValueError: its file was closed as it left)
                self.detach(write)

    def detach(self, write):
        with self.lock:
            if write in self.clients:
                self.clients.remove(write)
            self.hangups.pop(write, None)


class TerminalsMixin:
    """Helper's terminal requests. Uses Helper's lock, config, child_env (session.py)."""

    def start_terminal(self, body):
        rows, cols = _size(body.get("rows", 24), body.get("cols", 80))
        shell = os.environ.get("SHELL") or "/bin/sh"
        with self.lock:
            if self.stop_event.is_set():
                raise ApiError(409, "stopping", "the session is stopping")
            if sum(1 for t in self.terminals.values() if t.alive()) >= MAX_TERMINALS:
                raise ApiError(409, "too-many-terminals", "this session has %d terminals open already" % MAX_TERMINALS)
            self.terminal_seq += 1
            tid = "t%d" % self.terminal_seq
            master, slave = os.openpty()
            try:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                proc = subprocess.Popen(
                    [sys.executable, "-c", CTTY_SHIM, shell],
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    cwd=os.path.expanduser(self.config["workdir"]),
                    env=self.child_env({"TERM": "xterm-256color", "JRC_TERMINAL": tid}),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as e:
                os.close(master)
                raise ApiError(500, "terminal-start-failed", "cannot start %s: %s" % (shell, e)) from e
            finally:
                os.close(slave)
            t = Terminal(tid, proc, master)
            self.terminals[tid] = t
        threading.Thread(target=self._pump_terminal, args=(t,), name="terminal-" + tid, daemon=True).start()
        self.write_state()
        log("terminal %s started: %s, pid %d" % (tid, shell, proc.pid))
        return t.info()

    def _pump_terminal(self, t):
        """The shell's output to its clients and scrollback, until it exits."""
        while True:
            try:
                data = os.read(t.master, 65536)
            except OSError:  # EIO: the shell and everything on the pty are gone
                data = b""
            if not data:
                break
            # (clients taken with the output: one attaching now gets it either in its replay
            # or from here, never both)
            with t.lock:
                t.scrollback = (t.scrollback + data)[-SCROLLBACK_BYTES:]
                t.total += len(data)
                text = t.decoder.decode(data)
                message, clients = ["stdout", text, t.total], list(t.clients)
            if text:
                t.broadcast(message, clients)
        code = t.proc.wait()
        t.exit_code = code
        os.close(t.master)
        log("terminal %s ended (exit %s)" % (t.tid, code))
        self.write_state()
        t.broadcast(["disconnect", code])
        with t.lock:
            hangups = list(t.hangups.values())
            t.clients, t.hangups = [], {}
        for hangup in hangups:  # their connections end too (their readers wait for input)
            hangup()

    def get_terminal(self, tid):
        if not TERMINAL_ID_RE.match(tid):
            raise ApiError(400, "invalid-terminal-id", "terminal ids are t<n>")
        with self.lock:
            t = self.terminals.get(tid)
        if t is None or not t.alive():
            raise ApiError(404, "unknown-terminal", "no running terminal %s in this session" % tid)
        return t

    def list_terminals(self):
        with self.lock:
            terms = [t for t in self.terminals.values() if t.alive()]
        return {"terminals": [t.info() for t in terms]}

    def delete_terminal(self, tid):
        t = self.get_terminal(tid)
        kill_group(t.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + HANGUP_GRACE
        while t.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_processes([t.proc], HANGUP_GRACE)
        return {"terminalId": tid, "alive": False}

    def stop_terminals(self):
        """The session stops: every shell with it."""
        with self.lock:
            procs = [t.proc for t in self.terminals.values() if t.alive()]
        for p in procs:
            kill_group(p.pid, signal.SIGHUP)
        return procs

    def attach_terminal(self, tid, rfile, write, since=None, hangup=None):
        """Serve one client until it leaves or the shell ends: first the recent output (after
        offset `since` if given), then everything the shell prints; its lines go to the shell."""
        t = self.get_terminal(tid)
        with t.lock:  # (the replay is written before any newer output reaches this client)
            start = t.total - len(t.scrollback)
            replay = t.scrollback[max(0, (since if since is not None else start) - start) :]
            text = replay.decode("utf-8", "replace")
            if since is not None and since < start:
                text = "\r\n[%d bytes of output were lost while disconnected]\r\n" % (start - since) + text
            if text:
                write((json.dumps(["stdout", text, t.total]) + "\n").encode())
            t.clients.append(write)
            if hangup is not None:
                t.hangups[write] = hangup
        try:
            while t.alive():
                line = rfile.readline(MAX_LINE)
                if not line:
                    return
                self._terminal_input(t, line)
        finally:
            t.detach(write)

    def _terminal_input(self, t, line):
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            return  # a broken line is dropped, the terminal stays
        if not isinstance(msg, list) or not msg:
            return
        if msg[0] == "stdin" and len(msg) > 1 and isinstance(msg[1], str):
            data = msg[1].encode("utf-8")
            while data:
                try:
                    data = data[os.write(t.master, data) :]
                except OSError:
                    return
            if self.idle is not None:
                with self.lock:
                    self.idle.renew(time.time())  # typing in a terminal is using the session
        elif msg[0] == "set_size" and len(msg) > 2:
            try:
                t.resize(*_size(msg[1], msg[2]))
            except (ApiError, OSError):
                pass


def _size(rows, cols):
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000 for v in (rows, cols)):
        raise ApiError(400, "invalid-size", "rows and cols must be integers from 1 to 1000")
    return rows, cols
