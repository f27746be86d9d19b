"""Fixtures for tests against the running testbed (`testbed/testbed start` first)."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "testbed" / "testbed"


def testbed_env() -> dict:
    out = subprocess.run([str(TESTBED), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def on_login(*cmd: str, user: str = "alice") -> str:
    return subprocess.run(
        [str(TESTBED), "exec", "login", "--user", user, "--", *cmd],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout


@pytest.fixture(scope="session")
def jupyter_dirs(tmp_path_factory):
    """Own settings (a testbed profile), data and runtime dirs, like a fresh user."""
    status = subprocess.run([str(TESTBED), "status"], capture_output=True, text=True)
    assert status.returncode == 0, "the testbed is not running: testbed/testbed start\n" + status.stdout
    root = tmp_path_factory.mktemp("jupyter")
    dirs = {
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    subprocess.run(
        ["bash", "-c", f'source "{REPO}/scripts/lib.sh" && write_testbed_profile "{dirs["JUPYTERLAB_SETTINGS_DIR"]}"'],
        check=True,
    )
    old = {k: os.environ.get(k) for k in dirs}
    os.environ.update(dirs)
    yield dirs
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def squeue(job_id: str) -> str:
    return on_login("squeue", "-h", "-j", job_id, "-o", "%i %T").strip()
