"""Kernels of any language (issue 13, item 3), on the testbed's real Slurm: bash_kernel,
installed in the cluster's environment, is offered by a running session as a kernelspec
of its own, runs a cell on the session's node, is interrupted, and stays bash across a
restart."""

import os
import time

from jupyter_client.kernelspec import KernelSpecManager

from jupyterlab_remote_cluster.routes import session_kernel_name, stable_kernel_name

from .conftest import _running, agent_call, kernel_client, profile_added, running_session, wait_state
from .test_notebook_dask import session_when


def bash(kc, code: str, timeout: float = 60) -> tuple[str, str]:
    """(reply status, stdout) of a bash_kernel cell."""
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=timeout,
        output_hook=lambda m: out.append(m["content"].get("text") or "") if m["msg_type"] == "stream" else None,
    )
    return reply["content"]["status"], "".join(out).strip()


def test_bash_kernel_of_the_jobs_environment_runs_on_the_node(jupyter_dirs):
    with running_session(jupyter_dirs, "rcit-kernelspecs", dask=False) as s:
        s = session_when(s["id"], lambda x: x.get("kernelspecs") is not None, 60)
        offered = {k["name"]: k for k in s.get("kernelspecs") or []}
        assert offered.get("bash", {}).get("language") == "bash", s.get("kernelspecs")
        assert "python3" not in offered  # the session's own kernelspec is its Python

        name = session_kernel_name(s["id"], "bash")
        spec = KernelSpecManager().get_kernel_spec(name)
        assert spec.language == "bash" and spec.display_name.startswith("Bash · "), spec.display_name
        assert spec.interrupt_mode == offered["bash"]["interruptMode"]

        with kernel_client(name) as (km, kc):
            status, out = bash(kc, 'echo "$(hostname) $SLURM_JOB_ID $BASH_VERSION"')
            assert status == "ok", out
            host, job, version = out.split()[:3]
            assert (host, job) == (s["node"], s["jobId"]) and version[0].isdigit(), out

            kc.execute("sleep 60")
            time.sleep(1.5)
            t0 = time.monotonic()
            km.interrupt_kernel()
            reply = kc.get_shell_msg(timeout=20)
            assert reply["content"]["status"] in ("abort", "error"), reply["content"]
            assert time.monotonic() - t0 < 10
            assert bash(kc, "echo still here") == ("ok", "still here")

            # a restart runs the same kernelspec again, in the same job
            km.restart_kernel(now=True)
            kc.wait_for_ready(timeout=60)
            status, out = bash(kc, 'echo "$SLURM_JOB_ID ${BASH_VERSION:+bash}"')
            assert (status, out) == ("ok", "%s bash" % s["jobId"])


def test_a_notebook_saved_with_a_stable_kernel_reopens_in_a_running_session_or_a_new_job(jupyter_dirs):
    """The name a notebook is saved with names the profile and the kernel, not the job: while a
    session of the profile runs, the kernel starts there (no job submitted); next week, with
    no session, the same name starts a job of its own, cancelled when the kernel ends."""
    profile = "rcit-stable"
    stable = stable_kernel_name(profile, "bash")
    env = dict(os.environ, JPY_SESSION_NAME="analysis/week1.ipynb")
    with profile_added(jupyter_dirs, profile, dask=False):
        with _running(profile) as s:
            s = session_when(s["id"], lambda x: x.get("kernelspecs") is not None, 60)
            spec = KernelSpecManager().get_kernel_spec(stable)
            assert (spec.display_name, spec.language) == (f"Bash · {profile}", "bash")
            before = {x["id"] for x in agent_call("GET", "/api/v1/sessions")[1]["sessions"]}
            with kernel_client(stable, env=env) as (km, kc):
                assert bash(kc, "echo $SLURM_JOB_ID") == ("ok", s["jobId"])
            assert {x["id"] for x in agent_call("GET", "/api/v1/sessions")[1]["sessions"]} == before
        wait_state(s["id"], ("ended",), 60)

        # the job is gone: the kernelspec stays, and starts a job of its own
        assert KernelSpecManager().get_kernel_spec(stable).display_name == f"Bash · {profile}"
        with kernel_client(stable, env=env) as (km, kc):
            status, job = bash(kc, 'echo "$SLURM_JOB_ID ${BASH_VERSION:+bash}"')
            assert status == "ok" and job.endswith(" bash") and job.split()[0] != s["jobId"], job
            own = [x for x in agent_call("GET", "/api/v1/sessions")[1]["sessions"] if x.get("jobId") == job.split()[0]]
            assert len(own) == 1 and own[0]["profile"] == profile, own
        assert wait_state(own[0]["id"], ("ended",), 60)["state"] == "ended"  # (its kernel ended: so did the job)
