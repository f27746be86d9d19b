"""The reverse tunnel (connectivity reverse, auto): an ssh master from the node to the
login node, through which node sockets are forwarded to sockets on the login node."""

import os
import re
import shlex
import subprocess
import time

from .common import log, open_log, stop_processes, tail

TUNNEL_START_TIMEOUT = 30.0
# The reverse tunnel's ssh: no prompts, host keys checked whatever the user's ssh config
# on the cluster says, and nothing of the node forwarded to the login node but our sockets.
REVERSE_SSH_OPTIONS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "ControlPersist=no",
    "-o",
    "PermitLocalCommand=no",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "RequestTTY=no",
]


class ReverseTunnel:
    """An OpenSSH master from this node to the login node; forwards are added on demand
    (`ssh -S ctl -O forward -R login-socket:node-socket`), so the agent reaches sockets
    of this node through Unix sockets on the login node (for nodes nobody can connect to).
    BatchMode and StrictHostKeyChecking forced: no prompts, an unknown host key or a
    missing key fails at once."""

    def __init__(self, host, ctl, log_path):
        self.host = host
        self.ctl = ctl
        self.log_path = log_path
        self.proc = None
        self.remote_dir = None

    def _ssh(self, *args, timeout=20):
        return subprocess.run(
            ["ssh", "-S", self.ctl] + REVERSE_SSH_OPTIONS + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self):
        logf = open_log(self.log_path)
        try:
            self.proc = subprocess.Popen(
                ["ssh", "-M", "-S", self.ctl, "-N"]
                + REVERSE_SSH_OPTIONS
                + [
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-o",
                    "ConnectTimeout=10",
                    "-o",
                    "ServerAliveInterval=15",
                    "-o",
                    "ServerAliveCountMax=4",
                    self.host,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=logf,
                start_new_session=True,
            )
        except OSError as e:
            raise RuntimeError("cannot run ssh: %s" % e) from e
        finally:
            logf.close()
        deadline = time.monotonic() + TUNNEL_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "ssh %s exited with code %s: %s"
                    % (self.host, self.proc.returncode, tail(self.log_path, 600).strip() or "no message")
                )
            if os.path.exists(self.ctl) and self._ssh("-O", "check", self.host, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "ssh %s did not come up within %d s: %s"
                    % (self.host, TUNNEL_START_TIMEOUT, tail(self.log_path, 600).strip())
                )
            time.sleep(0.1)
        # The login side's private directory (a Unix socket is reachable only on the host
        # that bound it, so it must live on the login node, not on the shared home), with
        # an unpredictable name for the same reason as the node's (make_runtime_dir).
        r = self._ssh(self.host, "umask 077 && mktemp -d /tmp/jrc-XXXXXXXXXX")
        out = r.stdout.decode("utf-8", "replace").strip()
        if r.returncode != 0 or not re.match(r"^/tmp/jrc-[A-Za-z0-9]{10}$", out):
            raise RuntimeError(
                "cannot create the socket directory on %s: %s"
                % (self.host, r.stderr.decode("utf-8", "replace").strip() or out)
            )
        self.remote_dir = out

    def forward(self, remote_socket, target):
        """target: a node-side socket path."""
        r = self._ssh("-O", "forward", "-R", "%s:%s" % (remote_socket, target), self.host)
        if r.returncode != 0:
            raise RuntimeError(
                "reverse forward %s failed: %s" % (remote_socket, r.stderr.decode("utf-8", "replace").strip())
            )
        return remote_socket

    def cancel(self, remote_socket, target):
        self._ssh("-O", "cancel", "-R", "%s:%s" % (remote_socket, target), self.host)
        self._ssh(self.host, "rm -f -- %s" % shlex.quote(remote_socket))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        rm = "rm -rf -- %s" % shlex.quote(self.remote_dir) if self.remote_dir else None
        try:
            if self.alive():
                if rm:
                    rm = None if self._ssh(self.host, rm, timeout=10).returncode == 0 else rm
                self._ssh("-O", "exit", self.host, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            log("closing the reverse tunnel: %s" % e)
        stop_processes([self.proc], 2.0)
        if rm:
            # scancel signals the whole job, our master too: the login-side sockets are
            # removed over a new connection then
            try:
                r = subprocess.run(
                    ["ssh"] + REVERSE_SSH_OPTIONS + ["-o", "ConnectTimeout=5", self.host, rm],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=10,
                )
                if r.returncode != 0:
                    log(
                        "cannot remove %s on %s: %s"
                        % (self.remote_dir, self.host, r.stderr.decode("utf-8", "replace").strip())
                    )
            except (OSError, subprocess.SubprocessError) as e:
                log("cannot remove %s on %s: %s" % (self.remote_dir, self.host, e))
