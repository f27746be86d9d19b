"""How the agent reaches the session (docs/connectivity.md): the runtime directory with
the control socket, the TLS relay, the reverse tunnel; and what a relay client or the
tunnel may reach (the connectivity part of Helper)."""

import os
import subprocess

from .common import ApiError, log, make_runtime_dir, write_tls_files
from .control import UnixControlServer
from .kernels import KERNEL_CHANNELS
from .relay import Relay
from .reverse import ReverseTunnel


class ConnectivityMixin:
    """Helper's listeners and tunnels: set up at start, closed first at the end. The
    state they use (lock, config, state, kernels, http_sockets, ...) is Helper's
    (session.py)."""

    def setup_connectivity(self):
        """Listen as the mode needs; raises (RuntimeError/OSError/ValueError) when it cannot.

        Every mode: the node-local runtime dir (mkdtemp, 0700) with the control channel on
        control.sock, and the session's TLS files.
        via-login: the TLS relay on bindAddress (0.0.0.0): the agent comes from the login node.
        node-ssh:  nothing more (the agent comes in by SSH to this node: streamlocal).
        reverse:   an ssh master to the login node forwarding a socket in a mkdtemp dir
                   there to control.sock; a failing tunnel fails the session.
        auto:      the relay and the tunnel if they come up: the agent tries via-login,
                   node-ssh, reverse and keeps the first that answers.
        """
        mode = self.config["connectivity"]
        self.runtime = make_runtime_dir([os.environ.get("TMPDIR"), "/tmp"])
        self.tls = write_tls_files(os.path.join(self.runtime, "tls"), self.config["tls"])
        path = os.path.join(self.runtime, "control.sock")
        self.server = UnixControlServer(path, self)
        self.write_state(runtimeDir=self.runtime, controlSocket=path)
        log("control channel on %s" % path)
        if mode in ("via-login", "auto"):
            try:
                self.relay = Relay(self, self.config["bindAddress"], self.tls)
            except (ImportError, OSError, ValueError) as e:
                msg = "the TLS relay cannot start (%s: %s)" % (type(e).__name__, e)
                if mode == "via-login":
                    raise RuntimeError(
                        msg + "; via-login never runs unencrypted: use connectivity node-ssh or reverse"
                    ) from e
                log(msg + " (auto: the other modes remain)")
            else:
                self.relay.start()
                self.write_state(relayPort=self.relay.port)
                log("TLS relay on %s:%d" % (self.config["bindAddress"], self.relay.port))
        if mode not in ("reverse", "auto"):
            return
        try:
            if not self.config["reverseHost"]:
                raise RuntimeError("no login node name (reverseHost or SLURM_SUBMIT_HOST)")
            self.tunnel = ReverseTunnel(
                self.config["reverseHost"],
                os.path.join(self.runtime, "ssh.ctl"),
                os.path.join(self.dir, "reverse-ssh.log"),
            )
            self.tunnel.start()
            remote = self.tunnel.forward(self.tunnel.remote_dir + "/control.sock", path)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            msg = "reverse tunnel to %s failed: %s" % (self.config["reverseHost"] or "the login node", e)
            if self.tunnel:
                self.tunnel.stop()
            self.tunnel = None
            self.write_state(reverse={"status": "failed", "error": msg})
            if mode == "reverse":
                raise RuntimeError(msg) from e
            log(msg + " (auto: the other modes remain)")
            return
        self.write_state(
            reverse={
                "status": "up",
                "host": self.config["reverseHost"],
                "dir": self.tunnel.remote_dir,
                "controlSocket": remote,
            }
        )
        log("reverse tunnel to %s: %s" % (self.config["reverseHost"], remote))

    def close_connectivity(self):
        """The relay and the tunnel (with its login-side sockets) go."""
        relay, self.relay = self.relay, None
        if relay:
            relay.stop()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel:
            tunnel.stop()
            with self.lock:
                if self.state.get("reverse"):
                    self.state["reverse"] = dict(self.state["reverse"], status="closed")

    def relay_target(self, target):
        """The Unix socket a relay client may CONNECT to (ApiError 404 for anything else)."""
        parts = target.split("/")
        with self.lock:
            if parts == ["control"]:
                return self.server.server_address
            if len(parts) == 3 and parts[0] == "kernel" and parts[2] in KERNEL_CHANNELS:
                k = self.kernels.get(parts[1])
                path = k.sockets.get(KERNEL_CHANNELS[parts[2]]) if k is not None and k.alive() else None
                if path:
                    return path
                raise ApiError(404, "unknown-kernel", "no running kernel %s" % parts[1])
            if len(parts) == 2 and parts[0] == "http" and parts[1] in self.http_sockets:
                return self.http_sockets[parts[1]]
        raise ApiError(404, "not-found", "nothing to connect to at %r" % target)

    def forward_http(self, label, path):
        """reverse/auto: an HTTP socket also on the login node."""
        if not (self.tunnel and self.tunnel.alive()):
            return
        try:
            remote = self.tunnel.forward("%s/http-%s" % (self.tunnel.remote_dir, label), path)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            log("dashboard through the reverse tunnel: %s" % e)
            return
        with self.lock:
            rev = dict(self.state.get("reverse") or {})
            rev["httpSockets"] = dict(rev.get("httpSockets") or {}, **{label: remote})
            self.state["reverse"] = rev
