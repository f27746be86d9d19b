"""The agent ships as one bundled file; what is inside it is declared next to it (issue
10), for audits of an installed package, and stays out of the browser bundle."""

import json
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jupyterlab_remote_cluster"
REPO = PACKAGE.parent


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_agents_manifest_lists_the_packages_inside_the_bundle():
    manifest = read(PACKAGE / "agent" / "package.json")
    lock = read(PACKAGE / "agent" / "package-lock.json")
    assert manifest["private"] is True and "jupyterlab" not in manifest
    deps = manifest["dependencies"]
    # what the agent imports: the SSH library and the WebSocket server
    assert {"ssh2", "ws"} <= set(deps)
    for name, version in deps.items():
        # exact versions, those installed when the bundle was made
        installed = read(REPO / "node_modules" / name / "package.json")["version"]
        assert version == installed, (name, version, installed)
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-")
    bundle = (PACKAGE / "agent" / "agent.js").read_text()
    # inside, not required at run time (there is no node_modules in an installed wheel)
    for name in deps:
        assert not re.search(rf"require\(\"{re.escape(name)}(/[^\"]*)?\"\)", bundle), name


def test_the_agents_packages_stay_out_of_the_browser_bundle():
    ext = read(PACKAGE / "labextension" / "package.json")
    shared = set(ext.get("dependencies", {})) | set((ext["jupyterlab"].get("sharedPackages") or {}))
    agent = set(read(PACKAGE / "agent" / "package.json")["dependencies"])
    assert not (shared & agent), shared & agent
