"""The Jupyter server extension: supervise the agent and expose /remote-cluster/."""

from __future__ import annotations

import asyncio

from jupyter_server.extension.application import ExtensionApp

from ..agent_process import AgentProcess, AgentUnavailable, set_agent
from .handlers import handlers


class RemoteClusterExtension(ExtensionApp):
    name = "jupyterlab_remote_cluster"
    load_other_extensions = True

    agent: AgentProcess

    def initialize_settings(self) -> None:
        self.agent = AgentProcess(self.serverapp.runtime_dir, log=self.log, base_url=self.serverapp.base_url)
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
        await self.agent.stop()
