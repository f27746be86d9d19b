"""The provisioner driven by jupyter_client's own KernelManager against a fake agent that
keeps the agent's contract (a kernel id it knows keeps its local ports; a new one gets new
ports): what jupyter_client calls, in its order, and what reaches the agent. No cluster."""

import json
from types import SimpleNamespace

import pytest
from jupyter_client.manager import AsyncKernelManager

from jupyterlab_remote_cluster import provisioner as provisioner_module

SESSION = "ab12cd"


class FakeAgent:
    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []
        self.kernels: dict[str, dict] = {}  # id -> {"ports": {...}, "stopped": bool}
        self._next_port = 40000
        self._next_id = 1
        self.overrides = {}
        self.running_session: str | None = None  # what kernel-session answers

    def _ports(self):
        names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        ports = {n: self._next_port + i for i, n in enumerate(names)}
        self._next_port += 10
        return ports

    #: (method, path) -> (status, body): answers that replace the contract's
    overrides: dict

    async def request(self, method, path, body=None, headers=None):
        data = json.loads(body) if body else None
        self.calls.append((method, path, data))
        if (method, path) in self.overrides:
            code, answer = self.overrides[(method, path)]
            return SimpleNamespace(code=code, body=json.dumps(answer).encode())
        answer = self.answer(method, path, data)
        return SimpleNamespace(code=200, body=json.dumps(answer).encode())

    def answer(self, method, path, data):
        if method == "POST" and path == "/api/v1/profiles/hpc/kernel-session":
            return {"session": self.running_session}
        if method == "POST" and path == "/api/v1/sessions":
            return {"id": SESSION, "state": "queued"}
        if method == "DELETE" and path == f"/api/v1/sessions/{SESSION}":
            return {"id": SESSION, "state": "ended"}
        if method == "GET" and path == f"/api/v1/sessions/{SESSION}":
            return {"id": SESSION, "state": "running"}
        if method == "POST" and path == f"/api/v1/sessions/{SESSION}/kernels":
            kid = (data or {}).get("kernelId")
            if kid not in self.kernels:
                kid = kid or f"k{self._next_id}"
                self._next_id += 1
                self.kernels[kid] = {"ports": self._ports()}
            self.kernels[kid]["stopped"] = False
            return {
                "kernelId": kid,
                "ip": "127.0.0.1",
                "transport": "tcp",
                "signature_scheme": "hmac-sha256",
                "key": "k" * 32,
                **self.kernels[kid]["ports"],
            }
        kid = path.split("/")[4]
        if method == "GET":
            return {"alive": kid in self.kernels and not self.kernels[kid]["stopped"]}
        if method == "POST" and path.endswith("/restart"):
            self.kernels[kid]["stopped"] = True  # ports kept for the next start of kid
        elif method == "DELETE":
            self.kernels.pop(kid, None)
        return {"ok": True}

    def kernel_calls(self):
        return [(m, p.replace("/api/v1/", "")) for m, p, _ in self.calls if "/kernels" in p]


@pytest.fixture
def agent(monkeypatch, tmp_path):
    fake = FakeAgent()
    monkeypatch.setattr(provisioner_module, "get_agent", lambda log=None: fake)
    spec = tmp_path / "kernels" / "rc-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["python", "-c", "raise SystemExit", "{connection_file}"],
                "display_name": "remote",
                "language": "python",
                "interrupt_mode": "signal",
                "metadata": {
                    "kernel_provisioner": {
                        "provisioner_name": "remote-cluster-provisioner",
                        "config": {"session": SESSION},
                    }
                },
            }
        )
    )
    # a stable kernelspec: a profile's bash, in a running session of it or a new job
    stable = tmp_path / "kernels" / "rc-stable"
    stable.mkdir()
    config = {"profile": "hpc", "kernelspec": "bash", "prefer_running": True}
    (stable / "kernel.json").write_text(
        (spec / "kernel.json").read_text().replace(json.dumps({"session": SESSION}), json.dumps(config))
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return fake


def ports(km):
    return {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}


async def test_restart_now_keeps_the_kernel_id_and_its_local_ports(agent):
    """jupyter_client's restart_kernel(now=True), as its restarter does after a crash,
    kills without saying it is a restart: the new kernel must come up behind the same
    ports, or every client (and Jupyter's WebSockets) is left on the old ones."""
    km = AsyncKernelManager(kernel_name="rc-test", kernel_id="k1")
    await km.start_kernel()
    before = ports(km)
    await km.restart_kernel(now=True)
    assert ports(km) == before
    starts = [d for m, p, d in agent.calls if m == "POST" and p.endswith(f"{SESSION}/kernels")]
    # the first start gives Jupyter's kernel id (the page finds a stable kernel's session by
    # it); the restart the same id, so the new kernel takes its place behind the same ports
    assert starts == [{"kernelId": "k1"}, {"kernelId": "k1"}]
    assert ("DELETE", "kernels/k1") not in agent.kernel_calls()  # never released in between
    await km.shutdown_kernel(now=True)


async def test_shutdown_now_releases_the_kernel(agent):
    km = AsyncKernelManager(kernel_name="rc-test", kernel_id="k1")
    await km.start_kernel()
    await km.shutdown_kernel(now=True)
    calls = agent.kernel_calls()
    assert calls[-2:] == [("POST", "kernels/k1/restart"), ("DELETE", "kernels/k1")], calls
    assert agent.kernels == {}


@pytest.mark.parametrize(
    "status, gone",
    [(404, True), (409, True), (400, False), (503, False), (500, False)],
)
async def test_after_an_agent_restart_a_kernel_is_given_up_only_when_the_agent_says_it_is_gone(agent, status, gone):
    """The agent restarted and does not know the kernel: the provisioner hands it back
    (adopt). Only "no such session/kernel" (404) or "session not running" (409) mean the
    kernel is gone; a bad request or an agent error says nothing about it."""
    km = AsyncKernelManager(kernel_name="rc-test", kernel_id="k1")
    await km.start_kernel()
    agent.overrides[("GET", "/api/v1/kernels/k1")] = (200, {"alive": None, "reason": "unknown-kernel"})
    agent.overrides[("POST", f"/api/v1/sessions/{SESSION}/kernels")] = (
        status,
        {"error": {"code": "x", "message": "answer %d" % status}},
    )
    code = await km.provisioner.poll()
    assert (code is not None) == gone, code
    adopts = [d for m, p, d in agent.calls if m == "POST" and p.endswith("/kernels") and d and "adoptPorts" in d]
    assert len(adopts) == 1 and adopts[0]["kernelId"] == "k1"
    agent.overrides.clear()
    await km.shutdown_kernel(now=True)


async def test_a_profile_kernelspec_submits_with_its_resources_over_the_profiles(agent, tmp_path):
    """A kernelspec of one's own for headless runs (papermill -k): its provisioner config
    may carry resources over the profile's, e.g. two nodes (docs/scale-out.md)."""
    spec = tmp_path / "kernels" / "rc-two-nodes"
    spec.mkdir(parents=True)
    kernel = json.loads((tmp_path / "kernels" / "rc-test" / "kernel.json").read_text())
    kernel["metadata"]["kernel_provisioner"]["config"] = {"profile": "hpc", "resources": {"nodes": 2, "cpus": 4}}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    km = AsyncKernelManager(kernel_name="rc-two-nodes", kernel_id="k1")
    await km.start_kernel()
    try:
        submits = [d for m, p, d in agent.calls if (m, p) == ("POST", "/api/v1/sessions")]
        assert submits == [{"profile": "hpc", "owner": "kernel", "resources": {"nodes": 2, "cpus": 4}}]
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_kernel_whose_session_ended_is_dead_at_once_not_restarted(agent):
    """Cancelled job, walltime over: the agent says the kernel is gone for good (`final`).
    Jupyter's restarter, as the Jupyter server runs it, then says "dead" at its first look
    instead of "restarting" (JupyterLab's "appears to have died, it will restart" dialog)
    and five restarts that cannot work. A kernel that died on its own is still restarted."""
    from jupyter_client.ioloop import AsyncIOLoopKernelManager

    async def watch(final):
        km = AsyncIOLoopKernelManager(kernel_name="rc-test", kernel_id="k1")
        await km.start_kernel()
        seen = []
        km.add_restart_callback(lambda: seen.append("restart"), "restart")
        km.add_restart_callback(lambda: seen.append("dead"), "dead")
        answer = {"alive": False, "reason": "the session ended: cancelled by you"}
        agent.overrides[("GET", "/api/v1/kernels/k1")] = (200, {**answer, "final": True} if final else answer)
        await km._restarter.poll()
        agent.overrides.clear()
        km.stop_restarter()
        await km.shutdown_kernel(now=True)
        return seen

    assert await watch(final=True) == ["dead"]
    agent.kernels.clear()
    agent._next_id = 1
    assert (await watch(final=False))[0] == "restart"


@pytest.mark.parametrize("running", [SESSION, None])
async def test_a_stable_kernel_starts_in_the_session_the_agent_picks_else_submits_one(agent, running):
    """A notebook saved with a stable kernelspec: the agent is asked where (with the
    notebook's path, as jupyter_server names it in JPY_SESSION_NAME); a job is submitted
    only when no session of the profile is there for it."""
    agent.running_session = running
    km = AsyncKernelManager(kernel_name="rc-stable", kernel_id="k1")
    await km.start_kernel(env={"JPY_SESSION_NAME": "runs/june.ipynb"})
    asked = [data for m, p, data in agent.calls if p.endswith("/kernel-session")]
    submitted = [data for m, p, data in agent.calls if m == "POST" and p == "/api/v1/sessions"]
    started = [data for m, p, data in agent.calls if p == f"/api/v1/sessions/{SESSION}/kernels"]
    assert asked == [{"notebookPath": "runs/june.ipynb"}]
    assert submitted == ([] if running else [{"profile": "hpc", "owner": "kernel"}])
    assert started == [{"kernelId": "k1", "kernelspec": "bash", "notebookPath": "runs/june.ipynb"}]
    await km.shutdown_kernel(now=True)
    ended = [p for m, p, _ in agent.calls if m == "DELETE" and p == f"/api/v1/sessions/{SESSION}"]
    assert ended == ([] if running else [f"/api/v1/sessions/{SESSION}"])  # only its own job is cancelled
