"""Kernels of the job's environment other than the session's Python (kernelspecs.py), for
real: listed as `jupyter kernelspec list` would, started by name with their own argv and
env, on Unix sockets like every kernel of the session, including a kernel that never
writes its connection file back. (bash_kernel on a node: tests/testbed/test_kernelspecs.py.)"""

import json
import os

import pytest

from .test_helper import Session, client_for, execute, tls_pems  # noqa: F401

_ = tls_pems


@pytest.fixture(autouse=True)
def _tls(tls_pems):
    from .test_helper import TLS

    TLS.update(tls_pems)


# A kernel that does not write its connection file back (as IRkernel and others): it
# runs ipykernel on a copy, so the helper must have given it its socket numbers.
SILENT_LAUNCHER = """
import shutil, sys
copy = sys.argv[1] + ".copy"
shutil.copy(sys.argv[1], copy)
sys.argv = ["ipykernel_launcher", "-f", copy]
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def kernelspec(root, name, spec, files=None):
    d = root / "kernels" / name
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps(spec))
    for fname, text in (files or {}).items():
        (d / fname).write_text(text)


@pytest.fixture(scope="module")
def session(tmp_path_factory, tls_pems):
    from .test_helper import TLS

    TLS.update(tls_pems)
    tmp = tmp_path_factory.mktemp("kernelspecs")
    root = tmp / "jupyter"
    kernelspec(
        root,
        "echo-lang",
        {
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Echo (test)",
            "language": "echo",
            "interrupt_mode": "message",
            "env": {"SPEC_VAR": "from-spec"},
        },
    )
    kernelspec(
        root,
        "silent",
        {
            "argv": ["python", "{resource_dir}/launch.py", "{connection_file}"],
            "display_name": "Silent",
            "language": "x",
        },
        {"launch.py": SILENT_LAUNCHER},
    )
    kernelspec(root, "broken", {"argv": [], "display_name": "Broken"})
    s = Session(tmp, env=dict(os.environ, JUPYTER_PATH=str(root)))
    s.wait_status("ready", 30)
    yield s
    s.close()


def test_the_environments_kernelspecs_are_listed_default_first(session):
    st, res, _ = session.request("GET", "/kernelspecs")
    assert st == 200, res
    names = [k["name"] for k in res["kernelspecs"]]
    assert res["default"] == "python3" and names[0] == "python3", names
    assert {"echo-lang", "silent"} <= set(names)
    assert "broken" not in names  # no argv: nothing could start it
    echo = next(k for k in res["kernelspecs"] if k["name"] == "echo-lang")
    assert echo == {"name": "echo-lang", "displayName": "Echo (test)", "language": "echo", "interruptMode": "message"}
    silent = next(k for k in res["kernelspecs"] if k["name"] == "silent")
    assert silent["interruptMode"] == "signal"  # the default when the spec says nothing


def test_a_kernelspec_starts_with_its_own_argv_and_env(session):
    kc = session.start_kernel("k-echo", kernelspec="echo-lang", env={"RC_REQ_VAR": "req"})
    try:
        reply, out = execute(kc, "import os; print(os.environ['SPEC_VAR'], os.environ['RC_TEST_VAR'])")
        assert reply["status"] == "ok" and out.split() == ["from-spec", "hello"]
    finally:
        kc.stop_channels()
    # not the session's default kernel: no IOPub keeper of ours in it
    conn = json.loads((session.dir / "kernels" / "k-echo" / "connection.json").read_text())
    assert conn["transport"] == "ipc" and "jrc_iopub_keeper_port" not in conn
    assert session.request("DELETE", "/kernels/k-echo")[0] == 200


def test_a_kernel_that_never_writes_its_connection_file_back_is_reached(session):
    st, res, _ = session.request("POST", "/kernels", {"kernelId": "k-silent", "kernelspec": "silent"})
    assert st == 201, res
    conn_file = session.dir / "kernels" / "k-silent" / "connection.json"
    conn = json.loads(conn_file.read_text())
    # the helper's own numbers, and the kernel listens on exactly those sockets
    assert [conn[n] for n in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")] == [1, 2, 3, 4, 5]
    assert res["sockets"]["shell_port"] == "%s-1" % conn["ip"]
    kc = client_for(str(conn_file))
    try:
        assert execute(kc, "6*7")[1] == "42"
    finally:
        kc.stop_channels()
    assert session.request("DELETE", "/kernels/k-silent")[0] == 200


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"kernelspec": "nope"}, 404, "no kernelspec nope in the session's environment"),
        ({"kernelspec": "../etc"}, 400, "kernelspec must be"),
        ({"kernelspec": "broken"}, 404, "no kernelspec broken"),
        ({"kernelspec": "echo-lang", "argv": ["python"]}, 400, "not both"),
    ],
)
def test_a_bad_kernelspec_is_refused_and_starts_nothing(session, body, status, words):
    st, res, _ = session.request("POST", "/kernels", {"kernelId": "k-bad", **body})
    assert st == status and words in res["error"]["message"], res
    assert "k-bad" not in session.state().get("kernels", {})
