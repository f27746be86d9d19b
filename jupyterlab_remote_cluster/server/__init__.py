"""The Jupyter server extension: supervise the agent and expose /remote-cluster/."""

from __future__ import annotations

import asyncio

from jupyter_core.utils import ensure_async
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Integer

from ..agent_process import AgentProcess, AgentUnavailable, set_agent
from ..provisioner import RemoteClusterProvisioner
from .handlers import handlers


class RemoteClusterExtension(ExtensionApp):
    name = "jupyterlab_remote_cluster"
    load_other_extensions = True

    agent: AgentProcess

    keep_kernels_on_stop = Bool(
        True,
        config=True,
        help=(
            "When the Jupyter server stops, leave remote kernels running in their jobs (with "
            "their state) to be attached by the next server, instead of shutting them down."
        ),
    )

    keep_ended_days = Integer(
        30,
        min=0,
        config=True,
        help="Ended sessions stay in the sidebar's history (for Relaunch) this many days after they ended.",
    )

    keep_ended_sessions = Integer(
        200,
        min=0,
        config=True,
        help="At most this many ended sessions are remembered (the most recent ones).",
    )

    max_sign_in_failures = Integer(
        3,
        min=1,
        config=True,
        help=(
            "Failed one-time codes or passwords per account and hour after which no more sign-in "
            "attempts are made (sites lock accounts after a few; the count resets as attempts age)."
        ),
    )

    default_idle_timeout = Integer(
        0,
        min=0,
        max=7 * 24 * 60,
        config=True,
        help=(
            "Minutes without use after which a session is ended by its helper, for profiles that "
            "set no idleTimeout of their own (0: never). A busy kernel is never ended."
        ),
    )

    def initialize_settings(self) -> None:
        self.agent = AgentProcess(
            self.serverapp.runtime_dir,
            log=self.log,
            base_url=self.serverapp.base_url,
            agent_args=[
                "--keep-ended-days",
                str(self.keep_ended_days),
                "--keep-ended-sessions",
                str(self.keep_ended_sessions),
                "--max-sign-in-failures",
                str(self.max_sign_in_failures),
                "--default-idle-timeout",
                str(self.default_idle_timeout),
            ],
        )
        self.settings["remote_cluster_agent"] = self.agent
        set_agent(self.agent)
        self.log.info("remote-cluster: agent socket %s", self.agent.socket_path)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def _start_agent(self) -> None:
        try:
            await self.agent.ensure_running()
        except AgentUnavailable as e:  # also answered on every request, to the user
            self.log.error("remote-cluster: %s", e)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        # The event loop runs now: start the agent in the background so that the first
        # request is fast; requests also start it on demand.
        self._starting = asyncio.ensure_future(self._start_agent())

    async def stop_extension(self) -> None:
        # Extensions stop before the server shuts its kernels down, and the agent with
        # us: settle our kernels while it still answers. By default they are detached, so
        # a server restart does not cost the user their remote kernels' state.
        await self._settle_remote_kernels(detach=self.keep_kernels_on_stop)
        await self.agent.stop()

    async def _settle_remote_kernels(self, detach: bool) -> None:
        km = getattr(self.serverapp, "kernel_manager", None)
        if km is None:
            return
        ours = {}
        for kid in list(km.list_kernel_ids()):
            prov = getattr(km.get_kernel(kid), "provisioner", None)
            if isinstance(prov, RemoteClusterProvisioner):
                ours[kid] = prov
        if detach:
            work = [p.detach() for p in ours.values()]
        else:
            work = [ensure_async(km.shutdown_kernel(kid)) for kid in ours]
        for kid, result in zip(ours, await asyncio.gather(*work, return_exceptions=True)):
            if isinstance(result, Exception):
                self.log.warning("remote-cluster: kernel %s at server stop: %s", kid, result)
