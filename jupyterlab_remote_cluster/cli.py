"""`jupyter remote-cluster kernelspecs`: write the profiles' kernelspecs without JupyterLab.

papermill and nbclient find kernels only as kernelspec directories, which the agent writes
when it reads the profiles (normally when JupyterLab starts it). On a fresh user directory
that never ran JupyterLab, this writes them: it asks the user's agent (started for the
purpose and stopped again if none was running), so the specs are exactly the ones
JupyterLab would write. Nothing is sent to any cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from jupyter_core.paths import jupyter_data_dir

from .agent_process import AgentProcess, AgentUnavailable
from .routes import KERNELSPEC_MARKER


def our_kernelspecs() -> list[tuple[str, str]]:
    """(name, display name) of the kernelspecs the agent wrote."""
    kernels = os.path.join(jupyter_data_dir(), "kernels")
    found = []
    for name in sorted(os.listdir(kernels)) if os.path.isdir(kernels) else []:
        try:
            with open(os.path.join(kernels, name, "kernel.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError):
            continue
        if KERNELSPEC_MARKER in spec.get("metadata", {}):
            found.append((name, spec.get("display_name", name)))
    return found


async def sync_kernelspecs() -> dict:
    agent = AgentProcess()
    try:
        res = await agent.request("GET", "/api/v1/profiles")
        body = json.loads(res.body or b"{}")
        if res.code != 200:
            raise AgentUnavailable(body.get("error", {}).get("message") or f"the agent answered {res.code}")
        return body
    finally:
        if agent.owned_pid is not None:  # started here: not left running
            await agent.stop()


def kernelspecs_command(_args: argparse.Namespace) -> int:
    try:
        body = asyncio.run(sync_kernelspecs())
    except AgentUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for error in body.get("errors", []):
        print(f"warning: {body.get('file', 'settings')}: {error}", file=sys.stderr)
    specs = our_kernelspecs()
    if not specs:
        print("No remote-cluster profiles: add one in JupyterLab's Settings Editor (Remote cluster).")
    for name, display in specs:
        print(f"{name}\t{display}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jupyter remote-cluster", description="jupyterlab-remote-cluster commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    ks = commands.add_parser(
        "kernelspecs", help="write the kernelspecs of your profiles (for papermill/nbclient without JupyterLab)"
    )
    ks.set_defaults(run=kernelspecs_command)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
