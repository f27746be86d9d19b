"""Kernel provisioner: a kernel on a compute node looks like any other Jupyter kernel.

The kernelspecs the agent writes name this provisioner with either
  {"session": "<id>"}   attach to a running session (allocation), or
  {"profile": "<name>"} submit a new job with the profile's defaults (and "resources"
                        over them, if given), wait until it runs, and cancel it when
                        the kernel shuts down for good.
  {"profile": "<name>", "prefer_running": true} (stable kernelspecs, what notebooks are
                        saved with): the running session of the profile the agent picks
                        (the notebook's own, else the newest), else a new job as above.
The agent opens local forwards for the kernel's five channels, so jupyter_client gets a
connection info on 127.0.0.1 and never talks to the cluster itself. Restart = a new
kernel in the same allocation (no new job). Interrupt = SIGINT to the remote kernel.
Attach = a kernel that outlived the Jupyter server that started it, taken over as is.
A link that is down makes poll() say "alive": only the helper can say a kernel died.
Output published while the link is down is kept on the node and delivered afterwards:
jupyter_client's IOPub, shell and stdin go to a local bridge (iopub_bridge.py), the keeper's client.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from jupyter_client.provisioning import KernelProvisionerBase
from jupyter_core.utils import ensure_async
from traitlets import Bool, Dict, Float, Unicode

from .agent_process import AgentProcess, AgentUnavailable, get_agent
from .iopub_bridge import IopubBridge
from .routes import AUTH_RESOURCE

# start_kernel() keyword naming a running remote kernel to attach to (see pre_launch).
ATTACH_KWARG = "remote_cluster_attach"


class RemoteKernelError(RuntimeError):
    """A remote kernel could not be started; the message is meant for the user."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def authorize_request() -> None:
    """A kernel of ours submits a job or starts a process on the cluster: beyond what
    Jupyter asked of the user to start a kernel (`kernels`: write), they must be allowed
    `remote-cluster`: write, whether the request came through our routes or Jupyter's own
    (`POST /api/kernels`, `/api/sessions` with one of our kernelspecs). The request is the
    one jupyter_server is handling in this context; headless use (nbclient) has none."""
    try:
        from jupyter_server.base.call_context import CallContext
    except ImportError:  # no jupyter_server: a local, headless process
        return
    handler = CallContext.get(CallContext.JUPYTER_HANDLER)
    if handler is None or not hasattr(handler, "authorizer"):
        return
    allowed = await ensure_async(
        handler.authorizer.is_authorized(handler, handler.current_user, "write", AUTH_RESOURCE)
    )
    if not allowed:
        from tornado import web

        raise web.HTTPError(403, "User is not authorized to write on resource: remote-cluster.")


class RemoteClusterProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    # From the kernelspec's metadata.kernel_provisioner.config (jupyter_client passes
    # those keys as traits).
    session = Unicode(None, allow_none=True, help="Remote session to start the kernel in.")
    profile = Unicode(None, allow_none=True, help="Profile whose defaults start a new job.")
    kernelspec = Unicode(
        None,
        allow_none=True,
        help="Session kernels: another kernelspec of the job's environment than its default Python (R, bash...).",
    )
    resources = Dict(
        None,
        allow_none=True,
        help="For profile kernels: resources over the profile's (the submit dialog's fields, e.g. "
        '{"nodes": 2, "walltime": "02:00:00"}); the agent refuses what a submission may not set.',
    )

    prefer_running = Bool(
        False,
        help="Stable kernels: start in a running session of the profile (the agent picks it) before submitting a job.",
    )

    queue_timeout = Float(3600.0, config=True, help="Seconds to wait for a new job to start running (profile kernels).")

    session_id: str | None = None
    remote_kernel_id: str | None = None
    owns_session: bool = False
    _exit_code: int | None = None
    _restart_id: str | None = None
    _attach_id: str | None = None
    # The Jupyter session's path (jupyter_server's JPY_SESSION_NAME): the agent starts a
    # notebook of a cluster drive in its folder.
    _notebook_path: str | None = None

    _agent: AgentProcess | None = None
    _bridge: IopubBridge | None = None
    # the agent's forwards of the channels the bridge stands in; jupyter_client gets the bridge's
    _agent_ports: dict[str, int] = {}

    @property
    def agent(self) -> AgentProcess:
        # Kept: once its server stopped the agent, this kernel's calls fail fast instead of
        # starting another agent in the middle of the server's shutdown.
        if self._agent is None:
            self._agent = get_agent(self.log)
        return self._agent

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        try:
            res = await self.agent.request(
                method, path, body=data, headers={"Content-Type": "application/json"} if data else {}
            )
        except AgentUnavailable as e:
            raise RemoteKernelError(str(e), 503) from e
        text = res.body.decode() if res.body else "{}"
        payload = json.loads(text) if text else {}
        if res.code >= 400:
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            raise RemoteKernelError(message or f"agent answered {res.code} to {method} {path}", res.code)
        return payload

    @property
    def has_process(self) -> bool:
        return self.remote_kernel_id is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        await authorize_request()
        # Set by the attach route (server/handlers.py): connect to a kernel that still
        # runs in the session instead of starting one. jupyter_client keeps the launch
        # arguments for restarts, where it must be ignored: a restart is a new kernel.
        attach = kwargs.pop(ATTACH_KWARG, None)
        notebook_path = (kwargs.get("env") or {}).get("JPY_SESSION_NAME")
        if isinstance(notebook_path, str) and notebook_path:
            self._notebook_path = notebook_path
        if attach and self._restart_id is None and self.remote_kernel_id is None:
            self._attach_id = str(attach)
        if self.session:
            self.session_id = self.session
        elif self.session_id is None:
            profile = self.profile
            if not profile:
                raise RemoteKernelError("This kernelspec names neither a remote session nor a profile.")
            if self.prefer_running:
                body = {"notebookPath": self._notebook_path} if self._notebook_path else {}
                found = await self._call("POST", f"/api/v1/profiles/{profile}/kernel-session", body)
                self.session_id = found.get("session")
        if self.session_id is None:
            profile = self.profile
            body = {"profile": profile, "owner": "kernel", **({"resources": self.resources} if self.resources else {})}
            session = await self._call("POST", "/api/v1/sessions", body)
            self.session_id = session["id"]
            self.owns_session = True
            self.log.info("remote-cluster: submitted session %s for profile %s", self.session_id, profile)
        await self._wait_running()
        # The kernel command of the spec is never run here; the helper starts the kernel.
        kwargs["cmd"] = []
        return await super().pre_launch(**kwargs)

    async def _wait_running(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue_timeout
        last = None
        while True:
            session = await self._call("GET", f"/api/v1/sessions/{self.session_id}")
            state = session["state"]
            if state == "running":
                return
            if state == "ended":
                raise RemoteKernelError(f"Remote session {self.session_id} ended: {session.get('reason')}")
            if state != last:
                self.log.info(
                    "remote-cluster: session %s is %s %s", self.session_id, state, session.get("reason") or ""
                )
                last = state
            if loop.time() > deadline:
                if self.owns_session:
                    await self._call("DELETE", f"/api/v1/sessions/{self.session_id}")
                raise RemoteKernelError(
                    f"Remote session {self.session_id} did not start within {self.queue_timeout:.0f} s "
                    f"(still {state}: {session.get('reason') or 'no reason given'}); cancelled."
                )
            await asyncio.sleep(2.0)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        # After a restart, the same id: the new kernel keeps the local ports and key.
        if self._attach_id:
            body: dict[str, Any] = {"kernelId": self._attach_id, "attach": True}
        else:
            # A new kernel takes Jupyter's id for its remote id: the page finds which session a
            # notebook on a stable kernelspec runs in by its kernel's id (src/lab/allocation.ts).
            kid = self._restart_id or self.kernel_id
            body = {"kernelId": kid} if kid else {}
            if self.kernelspec:
                body["kernelspec"] = self.kernelspec
            if self._notebook_path and not self._restart_id:
                body["notebookPath"] = self._notebook_path
        info = await self._call("POST", f"/api/v1/sessions/{self.session_id}/kernels", body)
        self._restart_id = None
        self._attach_id = None
        self.remote_kernel_id = info["kernelId"]
        self._exit_code = None
        self._agent_ports = {k: info[k] for k in ("iopub_port", "shell_port", "stdin_port")}
        self.connection_info = {
            "ip": info["ip"],
            "transport": info["transport"],
            "signature_scheme": info["signature_scheme"],
            "key": info["key"].encode(),
            "shell_port": info["shell_port"],
            "iopub_port": info["iopub_port"],
            "stdin_port": info["stdin_port"],
            "control_port": info["control_port"],
            "hb_port": info["hb_port"],
        }
        if info.get("iopub_kept"):
            # Kept across restarts: jupyter_client's IOPub port stays the same.
            if self._bridge is None:
                self._bridge = IopubBridge(self.log)
            self._bridge.start(info["iopub_port"], {"shell": info["shell_port"], "stdin": info["stdin_port"]})
            self.connection_info["iopub_port"] = self._bridge.port
            self.connection_info["shell_port"] = self._bridge.shell_port
            self.connection_info["stdin_port"] = self._bridge.stdin_port
        elif self._bridge is not None:
            self.log.warning("remote-cluster: the restarted kernel %s keeps no output on the node", info["kernelId"])
            self._close_bridge()
        return self.connection_info

    def _close_bridge(self) -> None:
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None

    async def poll(self) -> int | None:
        if self.remote_kernel_id is None:
            return self._exit_code if self._exit_code is not None else 0
        try:
            status = await self._call("GET", f"/api/v1/kernels/{self.remote_kernel_id}")
        except Exception as e:  # agent restarting: that says nothing about the kernel
            self.log.debug("remote-cluster: kernel status unknown: %s", e)
            return None
        if status.get("alive") is False:
            code = status.get("exitCode")
            self._exit_code = int(code) if isinstance(code, int) else 1
            if status.get("final"):
                self._no_restarts(status.get("reason"))
            return self._exit_code
        if status.get("reason") == "unknown-kernel":
            await self._adopt()
            if self.remote_kernel_id is None:
                return self._exit_code
        return None  # alive, or unknown because the link is down: never "dead" on a guess

    def _no_restarts(self, reason) -> None:
        """Its session ended (the job was cancelled, its walltime is over): a restart cannot
        work. Jupyter's restarter would say "restarting" and try five times; with no
        restarts left it says "dead" at once."""
        restarter = getattr(self.parent, "_restarter", None)
        if restarter is not None and restarter.restart_limit != 0:
            self.log.info("remote-cluster: kernel %s ended with its session (%s)", self.remote_kernel_id, reason)
            restarter.restart_limit = 0

    async def _adopt(self) -> None:
        """The agent restarted and lost its forwards: hand it our kernel and ports back."""
        ports = {
            k: self.connection_info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        }
        ports.update(self._agent_ports)
        try:
            await self._call(
                "POST",
                f"/api/v1/sessions/{self.session_id}/kernels",
                {"kernelId": self.remote_kernel_id, "adoptPorts": ports},
            )
            self.log.info("remote-cluster: kernel %s taken back after an agent restart", self.remote_kernel_id)
        except RemoteKernelError as e:
            if e.status in (404, 409):  # the session or the kernel is gone for good (not: a bad request, 5xx)
                self.log.warning("remote-cluster: kernel %s is gone: %s", self.remote_kernel_id, e)
                self._exit_code = 1
                self.remote_kernel_id = None
                return
            self.log.warning("remote-cluster: cannot take kernel %s back yet: %s", self.remote_kernel_id, e)

    async def wait(self) -> int | None:
        while True:
            code = await self.poll()
            if code is not None:
                return code
            await asyncio.sleep(1.0)

    async def send_signal(self, signum: int) -> None:
        if self.remote_kernel_id is None:
            return
        name = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGKILL: "SIGKILL"}.get(signum)
        if name is None:
            if signum == 0:  # "is it alive?" probe
                return
            raise RemoteKernelError(f"Signal {signum} cannot be sent to a remote kernel.")
        try:
            await self._call("POST", f"/api/v1/kernels/{self.remote_kernel_id}/signal", {"signal": name})
        except RemoteKernelError as e:
            # A kernel that is already gone needs no signal; poll() reports it dead.
            self.log.warning("remote-cluster: %s", e)

    async def _stop(self, restart: bool) -> None:
        """Stop the remote kernel. `restart`: keep its local ports and key (in the agent) for
        the next launch of this provisioner; else release them too."""
        if self.remote_kernel_id is not None:
            try:
                if restart:
                    await self._call("POST", f"/api/v1/kernels/{self.remote_kernel_id}/restart", {})
                else:
                    await self._call("DELETE", f"/api/v1/kernels/{self.remote_kernel_id}")
            except RemoteKernelError as e:
                self.log.warning("remote-cluster: %s", e)
            self._exit_code = -signal.SIGTERM
            if restart:
                self._restart_id = self.remote_kernel_id
            self.remote_kernel_id = None

    async def detach(self) -> None:
        """The Jupyter server stops: leave the remote kernel and its job running, with
        their state, for the next server to attach (`remote-cluster/kernels/attach`).
        Afterwards this provisioner reports the kernel gone, so jupyter_client's shutdown
        that follows finishes at once and changes nothing remotely."""
        if self.remote_kernel_id is None:
            return
        try:
            await self._call("POST", f"/api/v1/kernels/{self.remote_kernel_id}/detach", {})
            self.log.info(
                "remote-cluster: kernel %s left running in session %s", self.remote_kernel_id, self.session_id
            )
        except Exception as e:  # agent gone: its forwards are gone too, the kernel runs on
            self.log.warning("remote-cluster: detaching kernel %s: %s", self.remote_kernel_id, e)
        self.remote_kernel_id = None
        self._exit_code = 0
        self._close_bridge()
        self.owns_session = False  # the job stays: the sidebar lists it, to attach or cancel

    async def kill(self, restart: bool = False) -> None:
        # Always as for a restart: jupyter_client's restart_kernel(now=True) (its restarter's
        # too) calls kill() without restart=True, and a kernel relaunched behind new local
        # ports would leave every client, and Jupyter's WebSockets, on the old ones.
        # cleanup() follows every kill and releases the ports unless it is a restart.
        await self._stop(restart=True)

    async def terminate(self, restart: bool = False) -> None:
        await self._stop(restart=True)

    async def cleanup(self, restart: bool = False) -> None:
        if restart:
            # Same allocation, new kernel: the session stays. A kernel that exited by
            # itself on the shutdown request was never killed: release it here, keeping
            # its local ports and key for the next one.
            if self.remote_kernel_id is not None:
                await self._stop(restart=True)
            return
        self._close_bridge()
        if self.remote_kernel_id is not None:
            # It exited by itself on the shutdown request: have the agent drop its record
            # and close its local forwards (the helper already reaped the process).
            await self._stop(restart=False)
        elif self._restart_id is not None:
            # Killed or terminated (ports kept, see kill()) and not restarted: release them.
            try:
                await self._call("DELETE", f"/api/v1/kernels/{self._restart_id}")
            except RemoteKernelError as e:
                self.log.warning("remote-cluster: %s", e)
            self._restart_id = None
        if self.owns_session and self.session_id:
            try:
                await self._call("DELETE", f"/api/v1/sessions/{self.session_id}")
                self.log.info("remote-cluster: cancelled session %s", self.session_id)
            except RemoteKernelError as e:
                self.log.warning("remote-cluster: could not cancel session %s: %s", self.session_id, e)
            self.owns_session = False

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 10.0)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 30.0)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(session_id=self.session_id, remote_kernel_id=self.remote_kernel_id, owns_session=self.owns_session)
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.session_id = provisioner_info.get("session_id")
        self.remote_kernel_id = provisioner_info.get("remote_kernel_id")
        self.owns_session = bool(provisioner_info.get("owns_session"))
