"""The names Python shares with the frontend and the agent are the ones of
src/common/routes.ts (the source), and the provisioner's entry point has the agent's name."""

import re
from pathlib import Path

from jupyterlab_remote_cluster import routes

REPO = Path(__file__).resolve().parents[1]


def ts_constants() -> dict:
    text = (REPO / "src" / "common" / "routes.ts").read_text()
    return dict(re.findall(r"^export const ([A-Z_]+) = '([^']*)';$", text, re.M))


def test_python_names_are_the_typescript_ones():
    ts = ts_constants()
    shared = [
        "URL_NAMESPACE",
        "KERNEL_NAME_PREFIX",
        "SESSION_KERNEL_INFIX",
        "REMOTE_KERNEL_SEPARATOR",
        "KERNELSPEC_MARKER",
        "PROVISIONER_NAME",
    ]
    assert set(shared) <= set(ts), f"routes.ts lost {set(shared) - set(ts)}"
    assert {k: getattr(routes, k) for k in shared} == {k: ts[k] for k in shared}


def test_session_kernel_names_are_built_the_same_way():
    text = (REPO / "src" / "common" / "routes.ts").read_text()
    assert "const base = `${KERNEL_NAME_PREFIX}${SESSION_KERNEL_INFIX}${sessionId}`;" in text
    assert "return remote ? `${base}${REMOTE_KERNEL_SEPARATOR}${remote.toLowerCase()}` : base;" in text
    ts = ts_constants()
    base = ts["KERNEL_NAME_PREFIX"] + ts["SESSION_KERNEL_INFIX"] + "ab12cd"
    assert routes.session_kernel_name("ab12cd") == base
    assert routes.session_kernel_name("ab12cd", "IR") == base + ts["REMOTE_KERNEL_SEPARATOR"] + "ir"


def test_profile_and_stable_kernel_names_are_built_the_same_way():
    text = (REPO / "src" / "common" / "routes.ts").read_text()
    assert "return `${KERNEL_NAME_PREFIX}${profile.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`;" in text
    assert "return `${profileKernelName(profile)}${REMOTE_KERNEL_SEPARATOR}${remote.toLowerCase()}`;" in text
    assert "export const DEFAULT_REMOTE_KERNEL = 'python3';" in text
    assert routes.profile_kernel_name("My HPC") == "remote-cluster-my-hpc"
    assert routes.stable_kernel_name("My HPC") == "remote-cluster-my-hpc--python3"
    assert routes.stable_kernel_name("hpc", "IR") == "remote-cluster-hpc--ir"


def test_the_provisioner_entry_point_has_the_name_the_kernelspecs_use():
    # (the section as pyproject.toml writes it: one `name = "module:Class"` line)
    text = (REPO / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."jupyter_client.kernel_provisioners"]\n', 1)[1].split("\n[", 1)[0]
    entries = dict(re.findall(r'^([\w.-]+) = "([^"]+)"$', section, re.M))
    assert entries == {routes.PROVISIONER_NAME: "jupyterlab_remote_cluster.provisioner:RemoteClusterProvisioner"}
