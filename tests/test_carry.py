"""Carrying a notebook's variables to its successor job (remote/jrc_carry.py): what
pickles moves, within a size and a time cap, and what does not is named; the pickles sit
in a 0600 file in a 0700 directory and are read once; a file others could have written is
refused. Last, two real kernels started as the helper starts them (jrc_kernel.py, the
cluster's Python with cloudpickle), asked as JupyterLab asks them (user expressions)."""

import ast
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REMOTE = Path(__file__).resolve().parents[1] / "jupyterlab_remote_cluster" / "remote"
sys.path.insert(0, str(REMOTE))
import jrc_carry  # noqa: E402
from jrc_iopub_keeper import PORT_KEY  # noqa: E402

CLUSTER_PY = "/opt/rc-testbed/python/bin/python"


class FromTheOldJob:
    """Stands for a Dask client: its type's module is distributed's."""


FromTheOldJob.__module__ = "distributed.client"


class SlowToPickle:
    def __init__(self, seconds):
        self.seconds = seconds

    def __reduce__(self):
        time.sleep(self.seconds)
        return (int, (0,))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_what_pickles_moves_and_what_does_not_is_named(tmp_path):
    carry = tmp_path / "carry"
    ns = {
        "answer": 42,
        "data": {"a": [1, 2, 3], "b": "text"},
        "j": json,
        "_private": 1,
        "In": [""],
        "lock": threading.Lock(),
        "client": FromTheOldJob(),
    }
    out = jrc_carry.dump(ns, str(carry), 2**20, 10)
    assert out["carried"] == ["answer", "data", "j"], out
    assert out["skipped"] == {"lock": "does not pickle (TypeError)", "client": "tied to the old job"}, out
    assert mode(carry) == 0o700 and mode(out["path"]) == 0o600
    assert os.path.dirname(out["path"]) == str(carry)

    fresh = {"answer": "from before"}
    back = jrc_carry.load(fresh, out["path"], str(carry))
    assert back == {"loaded": ["answer", "data", "j"], "failed": {}}
    assert fresh == {"answer": 42, "data": {"a": [1, 2, 3], "b": "text"}, "j": json}
    # read once: gone after loading
    assert not os.path.exists(out["path"])


def test_a_variable_over_the_size_cap_stays_and_the_others_move(tmp_path):
    ns = {"small": "x" * 1000, "big": b"x" * (4 * 2**20), "after": list(range(100))}
    out = jrc_carry.dump(ns, str(tmp_path / "carry"), 2**20, 10)
    assert out["carried"] == ["after", "small"]
    assert out["skipped"] == {"big": "over the size cap"}
    assert out["bytes"] < 2**20


def test_the_time_cap_stops_a_long_pickling_and_gives_the_kernel_its_alarm_back(tmp_path):
    def kernels_own(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, kernels_own)
    try:
        ns = {"first": 1, "slow": SlowToPickle(5), "later": 2}
        started = time.monotonic()
        out = jrc_carry.dump(ns, str(tmp_path / "carry"), 2**20, 1)
        took = time.monotonic() - started
        assert out["carried"] == ["first"]
        assert out["skipped"] == {"slow": "over the time cap", "later": "over the time cap"}
        assert took < 3, took
        assert signal.getsignal(signal.SIGALRM) is kernels_own
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_nothing_to_carry_writes_no_file(tmp_path):
    out = jrc_carry.dump({"lock": threading.Lock()}, str(tmp_path / "carry"), 2**20, 10)
    assert out["path"] is None and out["carried"] == []
    assert not (tmp_path / "carry").exists()


def test_a_file_others_could_have_written_is_refused_and_nothing_is_loaded(tmp_path):
    """Loading a pickle runs code: the file must be the user's own, private, in the carry dir."""
    carry = tmp_path / "carry"
    out = jrc_carry.dump({"answer": 42}, str(carry), 2**20, 10)
    os.chmod(out["path"], 0o644)
    ns = {}
    with pytest.raises(PermissionError, match="not a private file"):
        jrc_carry.load(ns, out["path"], str(carry))
    assert ns == {}

    # a file elsewhere is not even opened
    planted = tmp_path / "planted.pickle"
    planted.write_bytes(b"not read")
    planted.chmod(0o600)
    with pytest.raises(PermissionError, match="is not in"):
        jrc_carry.load(ns, str(planted), str(carry))
    assert planted.exists() and ns == {}

    # nor through a symlink in the carry dir
    link = carry / "link.pickle"
    link.symlink_to(planted)
    with pytest.raises(OSError):
        jrc_carry.load(ns, str(link), str(carry))
    assert ns == {}

    # a carry dir others can write into is neither written nor read
    carry.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        jrc_carry.dump({"answer": 42}, str(carry), 2**20, 10)


def test_a_file_a_failed_move_left_is_removed_a_day_later(tmp_path):
    carry = tmp_path / "carry"
    stale = jrc_carry.dump({"a": 1}, str(carry), 2**20, 10)["path"]
    recent = jrc_carry.dump({"b": 2}, str(carry), 2**20, 10)["path"]
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    newest = jrc_carry.dump({"c": 3}, str(carry), 2**20, 10)["path"]
    assert sorted(p.name for p in carry.iterdir()) == sorted(os.path.basename(p) for p in (recent, newest))


def start_kernel(tmp_path, name, home):
    """A real kernel as the helper starts it: jrc_kernel.py, ipc sockets, the cluster's Python."""
    run = tmp_path / ("rt-" + name)
    run.mkdir(mode=0o700)
    cf = tmp_path / ("%s.json" % name)
    info = {"ip": str(run / name), "transport": "ipc", "signature_scheme": "hmac-sha256", "key": os.urandom(16).hex()}
    info.update({c: 0 for c in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")})
    cf.write_text(json.dumps(info))
    env = dict(os.environ, HOME=str(home), JRC_IOPUB_PIPE=str(run / "pipe"))
    log = open(tmp_path / ("%s.log" % name), "wb")
    proc = subprocess.Popen([CLUSTER_PY, str(REMOTE / "jrc_kernel.py"), "-f", str(cf)], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while PORT_KEY not in (json.loads(cf.read_text() or "{}") if cf.stat().st_size else {}):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / ("%s.log" % name)).read_text()
        time.sleep(0.05)
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_info(dict(json.loads(cf.read_text()), key=info["key"].encode()))
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return proc, kc, log


def user_expression(kc, expression):
    """As JupyterLab asks (carry-variables.ts): silent, out of the history, read as JSON."""
    kc.execute("", silent=True, store_history=False, user_expressions={"carry": expression})
    reply = kc.get_shell_msg(timeout=60)
    answer = reply["content"]["user_expressions"]["carry"]
    assert answer["status"] == "ok", answer
    return answer["data"]["application/json"]


def value_of(kc, expression):
    """A plain value, read from its repr (silent, as above)."""
    kc.execute("", silent=True, store_history=False, user_expressions={"v": expression})
    answer = kc.get_shell_msg(timeout=60)["content"]["user_expressions"]["v"]
    assert answer["status"] == "ok", answer
    return ast.literal_eval(answer["data"]["text/plain"])


def run(kc, code):
    kc.execute(code)
    reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


def test_two_real_kernels_carry_functions_classes_and_modules(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    started = []
    try:
        old = start_kernel(tmp_path, "old", home)
        started.append(old)
        run(
            old[1],
            "import math as m\n"
            "answer = 42\n"
            "def twice(x):\n    return 2 * x\n"
            "class Point:\n    def __init__(self, x): self.x = x\n"
            "p = Point(answer)\n"
            "import threading\nlock = threading.Lock()\n",
        )
        dumped = user_expression(old[1], "__import__('jrc_carry').dump_for_successor(64, 20)")
        assert dumped["pickler"] == "cloudpickle"
        assert dumped["carried"] == ["Point", "answer", "p", "twice", "m", "threading"], dumped
        assert dumped["skipped"] == {"lock": "does not pickle (TypeError)"}, dumped
        assert dumped["path"].startswith(str(home / ".cache" / "jupyterlab-remote-cluster" / "carry"))

        new = start_kernel(tmp_path, "new", home)
        started.append(new)
        loaded = user_expression(
            new[1], "__import__('jrc_carry').load_from_predecessor(%s)" % json.dumps(dumped["path"])
        )
        assert loaded == {"loaded": sorted(dumped["carried"]), "failed": {}}, loaded
        assert value_of(new[1], "[twice(answer), p.x, round(m.pi, 2), type(p).__name__]") == [84, 42, 3.14, "Point"]
        # nothing of it in the notebook's history: no input was stored
        assert value_of(new[1], "len(In)") == 1
    finally:
        for proc, kc, log in started:
            kc.stop_channels()
            proc.kill()
            proc.wait()
            log.close()
