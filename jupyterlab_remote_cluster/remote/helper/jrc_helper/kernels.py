"""Kernels: their processes, their connection files and sockets, and the control
channel's kernel requests (the kernel part of Helper)."""

import json
import os
import re
import secrets
import signal
import subprocess
import time

from .common import KERNEL_LAUNCHER, ApiError, kill_group, log, open_log, stop_processes, tail, write_private
from .kernelspecs import sockets_listening

KERNEL_START_TIMEOUT = 60.0
KERNEL_KILL_GRACE = 5.0  # DELETE: SIGTERM, then SIGKILL after this
KEEPER_PORT = "jrc_iopub_keeper_port"  # in the connection file: jrc_iopub_keeper.py's socket
ACTIVITY_DIR = "activity"  # in the runtime dir: each kernel's busy/idle (jrc_kernel.py)
KERNEL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
KERNEL_CHANNELS = {
    "shell": "shell_port",
    "iopub": "iopub_port",
    "stdin": "stdin_port",
    "control": "control_port",
    "hb": "hb_port",
}


class Kernel:
    def __init__(self, kid, proc, kdir, started_at, key, kernelspec=None):
        self.kid = kid
        self.kernelspec = kernelspec  # another kernelspec of the environment than the default
        # Kept in memory only, for a restart under the same id (see start_kernel).
        self.key = key
        self.proc = proc
        self.dir = kdir
        self.connection_file = os.path.join(kdir, "connection.json")
        self.log_path = os.path.join(kdir, "kernel.log")
        self.started_at = started_at
        self.sockets = {}  # channel port name -> node-local socket path, once it listens
        self.reverse_forwards = []  # (login socket, node socket) to cancel when it stops

    def alive(self):
        return self.proc.poll() is None

    def info(self):
        code = self.proc.poll()
        info = {"pid": self.proc.pid, "alive": code is None, "exitCode": code}
        if self.kernelspec:
            info["kernelspec"] = self.kernelspec  # so a restart after an attach runs it again
        return info


class KernelsMixin:
    """Helper's kernel requests (start, look up, signal, delete). The state they use
    (lock, kernels, config, runtime, tunnel, ...) is Helper's (session.py)."""

    def start_kernel(self, body):
        kid = body.get("kernelId")
        if not isinstance(kid, str) or not KERNEL_ID_RE.match(kid):
            raise ApiError(400, "invalid-kernel-id", "kernelId must be 1-64 of [A-Za-z0-9_-]")
        python = self.config["python"]
        argv = body.get("argv")
        env = body.get("env") or {}
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ApiError(400, "invalid-env", "env must map strings to strings")
        if argv is not None and body.get("kernelspec") is not None:
            raise ApiError(400, "invalid-argv", "give argv or kernelspec, not both")
        # another kernel of the job's environment (R, bash...), by its kernelspec's name
        named = self.kernelspec_command(body.get("kernelspec"))
        if named is not None:
            argv, spec_env = named
            env = dict(spec_env, **env)
        # ours (jrc_kernel.py) also records its IOPub keeper's socket (0: none)
        ours = argv is None
        if ours:
            # ipykernel, with its IOPub pipe on a Unix socket and no debugpy (jrc_kernel.py)
            argv = [python, KERNEL_LAUNCHER, "-f", "{connection_file}"]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ApiError(400, "invalid-argv", "argv must be a non-empty list of strings")
        cwd = body.get("cwd") or self.config["workdir"]
        if not isinstance(cwd, str):
            raise ApiError(400, "invalid-cwd", "cwd must be a string")
        cwd = os.path.expanduser(cwd)
        if not os.path.isdir(cwd):
            raise ApiError(400, "invalid-cwd", "working directory %s does not exist" % cwd)
        # Kernels listen on Unix sockets in the private runtime dir, whatever the mode
        # (a TCP port on a shared node is open to every user there, and one a crashed
        # kernel released can be taken by another user). With reverse, each socket is
        # also forwarded to the login node.
        if body.get("transport", "ipc") != "ipc":
            raise ApiError(400, "invalid-transport", "kernels listen on Unix sockets only (transport ipc)")
        reverse = body.get("reverse") is True
        if reverse and not (self.tunnel and self.tunnel.alive()):
            raise ApiError(
                409,
                "no-reverse-tunnel",
                "no reverse tunnel to the login node: %s"
                % ((self.state.get("reverse") or {}).get("error") or "not started in this mode"),
            )

        with self.lock:
            if self.stop_event.is_set():
                raise ApiError(409, "stopping", "the session is stopping")
            old = self.kernels.get(kid)
            if old is not None and old.alive():
                raise ApiError(409, "kernel-exists", "kernel %s is already running" % kid)
            if old is not None:
                self.cancel_reverse_forwards(old)
            kdir = os.path.join(self.dir, "kernels", kid)
            for d in (os.path.dirname(kdir), kdir):  # (makedirs' mode covers only the leaf)
                os.makedirs(d, mode=0o700, exist_ok=True)
                os.chmod(d, 0o700)
            cf = os.path.join(kdir, "connection.json")
            # A fresh key per kernel; a restart (same id) keeps its key, so the clients'
            # sessions stay valid behind the agent's unchanged local ports. The kernel
            # names its sockets "<ip>-<n>" itself; a short prefix per start keeps the
            # paths under the 107-byte limit and apart from a dead predecessor's.
            key = old.key if old is not None and old.key else secrets.token_hex(32)
            self.kernel_seq += 1
            info = {
                "ip": os.path.join(self.runtime, "k%d" % self.kernel_seq),
                "transport": "ipc",
                "signature_scheme": "hmac-sha256",
                "key": key,
                "kernel_name": "",
            }
            # Ours picks its socket numbers and writes them back. Other kernels get theirs
            # here: not every kernel writes its connection file back (ipykernel's do).
            for i, name in enumerate(PORT_NAMES):
                info[name] = 0 if ours else i + 1
            write_private(cf, json.dumps(info, indent=1).encode())
            argv = [a.replace("{connection_file}", cf) for a in argv]
            # JPY_PARENT_PID: ipykernel exits by itself if this helper dies (even SIGKILL).
            kenv = self.child_env(
                dict(
                    env,
                    JPY_PARENT_PID=str(os.getpid()),
                    JRC_IOPUB_PIPE=info["ip"] + "-pipe",
                    JRC_ACTIVITY_FILE=self.activity_file(kid),  # busy/idle, for idle reclaim (idle.py)
                )
            )
            log_path = os.path.join(kdir, "kernel.log")
            logf = open_log(log_path)
            logf.write(("--- kernel %s starting %s: %s\n" % (kid, time.ctime(), " ".join(argv))).encode())
            logf.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=kenv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own group: signals reach children
                )
            except OSError as e:
                raise ApiError(500, "kernel-start-failed", "cannot start %s: %s" % (argv[0], e)) from e
            finally:
                logf.close()
            kernel = Kernel(kid, proc, kdir, time.time(), key, body.get("kernelspec") if named else None)
            self.kernels[kid] = kernel
        self.write_state()
        log("kernel %s started, pid %d" % (kid, proc.pid))

        ports, kept = self.wait_for_ports(kernel, info["key"], ours, info["ip"])
        if kept:
            # IOPub is reached through its keeper, which holds output while the link is down
            ports["iopub_port"] = kept
        # ipykernel's ipc endpoints are "<ip>-<port>"
        socks = {n: "%s-%d" % (info["ip"], p) for n, p in ports.items()}
        with self.lock:
            kernel.sockets = dict(socks)
        res = {"kernelId": kid, "pid": proc.pid, "transport": "ipc", "ports": ports, "iopubKept": bool(kept)}
        if reverse:
            try:
                for n, path in list(socks.items()):
                    remote = "%s/%s" % (self.tunnel.remote_dir, os.path.basename(path))
                    self.tunnel.forward(remote, path)
                    kernel.reverse_forwards.append((remote, path))
                    socks[n] = remote
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self.delete_kernel(kid)
                raise ApiError(502, "reverse-forward-failed", str(e)) from e
        res["sockets"] = socks
        self.write_state()
        return res

    def wait_for_ports(self, kernel, key, keeper, ip):
        """The kernel's channel ports from its connection file once it listens on all of
        them, and with `keeper` its IOPub keeper's (recorded right after; 0 when it could
        not start)."""
        deadline = time.monotonic() + KERNEL_START_TIMEOUT
        while True:
            try:
                with open(kernel.connection_file, "rb") as f:
                    info = json.loads(f.read().decode("utf-8"))
                ports = {n: int(info.get(n) or 0) for n in PORT_NAMES}
                if (
                    all(ports.values())
                    and info.get("key") == key
                    and (not keeper or KEEPER_PORT in info)
                    and sockets_listening(ip, ports)
                ):
                    return ports, int(info.get(KEEPER_PORT) or 0)
            except (OSError, ValueError):
                pass  # not rewritten yet, or caught mid-write
            if not kernel.alive():
                raise ApiError(
                    500,
                    "kernel-died",
                    "kernel exited with code %s before it was ready; kernel.log ends with:\n%s"
                    % (kernel.proc.returncode, tail(kernel.log_path)),
                )
            if time.monotonic() > deadline or self.stop_event.is_set():
                stop_processes([kernel.proc], 1.0)
                raise ApiError(
                    504,
                    "kernel-timeout",
                    "kernel did not report its ports within %d s; kernel.log ends with:\n%s"
                    % (KERNEL_START_TIMEOUT, tail(kernel.log_path)),
                )
            time.sleep(0.05)

    def activity_file(self, kid):
        return os.path.join(self.runtime, ACTIVITY_DIR, kid)

    def get_kernel(self, kid):
        if not KERNEL_ID_RE.match(kid):
            raise ApiError(400, "invalid-kernel-id", "kernelId must be 1-64 of [A-Za-z0-9_-]")
        with self.lock:
            k = self.kernels.get(kid)
        if k is None:
            raise ApiError(404, "unknown-kernel", "no kernel %s in this session" % kid)
        return k

    def signal_kernel(self, kid, body):
        k = self.get_kernel(kid)
        name = body.get("signal")
        if name not in SIGNALS:
            raise ApiError(400, "invalid-signal", "signal must be one of %s" % ", ".join(sorted(SIGNALS)))
        if not k.alive():
            raise ApiError(409, "kernel-dead", "kernel %s is not running" % kid)
        kill_group(k.proc.pid, SIGNALS[name])
        return {"kernelId": kid, "signal": name}

    def cancel_reverse_forwards(self, k):
        for remote, path in k.reverse_forwards if self.tunnel else []:
            try:
                self.tunnel.cancel(remote, path)
            except (OSError, subprocess.SubprocessError) as e:
                log("cancel reverse forward %s: %s" % (remote, e))
        k.reverse_forwards = []

    def delete_kernel(self, kid):
        k = self.get_kernel(kid)
        stop_processes([k.proc], KERNEL_KILL_GRACE)
        self.cancel_reverse_forwards(k)
        try:
            os.unlink(k.connection_file)  # the key is useless now; do not leave it lying around
        except OSError:
            pass
        self.write_state()
        log("kernel %s stopped (exit %s)" % (kid, k.proc.returncode))
        return dict(k.info(), kernelId=kid)
