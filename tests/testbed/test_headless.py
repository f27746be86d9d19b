"""papermill/nbclient with a profile's kernelspec on a brand-new user directory: one
documented command (`jupyter remote-cluster kernelspecs`) and no JupyterLab ever run."""

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from .conftest import squeue, write_testbed_profiles

KERNEL = "remote-cluster-testbed"


def fresh_user(tmp_path: Path) -> dict:
    """The environment of a user with nothing but the profiles file."""
    root = tmp_path / "user"
    dirs = {
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
    }
    write_testbed_profiles(dirs["JUPYTERLAB_SETTINGS_DIR"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(dirs)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def papermill(env, notebook: Path, out: Path):
    return subprocess.run(
        ["papermill", str(notebook), str(out), "-k", KERNEL, "--start-timeout", "180", "--no-progress-bar"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_papermill_on_a_fresh_user_directory(tmp_path):
    env = fresh_user(tmp_path)
    notebook = tmp_path / "job.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell("import os, socket\nprint(os.environ['SLURM_JOB_ID'], socket.gethostname())")
    )
    nbformat.write(nb, notebook)
    out = tmp_path / "out.ipynb"

    # what a new user meets without the command: the kernel is unknown
    before = papermill(env, notebook, out)
    assert before.returncode != 0 and "No such kernel" in before.stderr, before.stderr[-2000:]

    r = subprocess.run(
        ["jupyter", "remote-cluster", "kernelspecs"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert any(line.split("\t")[0] == KERNEL for line in r.stdout.splitlines()), r.stdout
    # the command stopped the agent it started: nothing of ours left running for this user
    assert not list((Path(env["JUPYTER_RUNTIME_DIR"]) / "remote-cluster").glob("*.sock")), "agent left running"

    done = papermill(env, notebook, out)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = nbformat.read(out, as_version=4).cells[0].outputs
    job, host = "".join(o.get("text", "") for o in outputs).split()
    assert host.startswith("node"), outputs

    # the job was the kernel's own: it ended with it
    deadline = time.monotonic() + 90
    while squeue(job) and time.monotonic() < deadline:
        time.sleep(2)
    assert squeue(job) == "", f"job {job} still in the queue after the notebook ran"
