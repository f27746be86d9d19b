"""Idle reclaim, decided by the helper on the node (jrc_helper/idle.py): the rules on a
fake clock, then a real helper that ends an idle session by itself while a busy one runs
on, with real ipykernel kernels reporting their activity (jrc_kernel.py)."""

import os
import sys
import threading
import time

import pytest

from .test_helper import HELPER, Session, _tls, alive, execute, tls_pems, wait_for  # noqa: F401 (fixtures)

sys.path.insert(0, str(HELPER))
from jrc_helper import gpus  # noqa: E402
from jrc_helper.idle import IdleWatch, check_idle_config, released_core_hours  # noqa: E402

CFG = check_idle_config({"timeoutSeconds": 600, "warnSeconds": 120, "cpuCores": 0.25, "gpuPercent": 5})


def watch(start=1000.0):
    return IdleWatch(dict(CFG), start)


def test_an_unused_session_is_warned_about_then_reclaimed():
    w = watch()
    idle_kernel = [(1000.0, ("idle", 1000.0))]
    assert w.observe(1400.0, idle_kernel, 0.01, None)[0] == "active"
    verdict, state = w.observe(1480.0, idle_kernel, 0.01, None)
    assert verdict == "warn" and state["reclaimAt"] == 1600.0
    assert w.observe(1600.0, idle_kernel, 0.01, None)[0] == "reclaim"


def test_every_sign_of_use_restarts_the_clock():
    # a kernel that ran code at 1500 (its activity file's time)
    w = watch()
    assert w.observe(1650.0, [(1000.0, ("idle", 1500.0))], 0.0, None)[0] == "active"
    assert w.observe(2100.0, [(1000.0, ("idle", 1500.0))], 0.0, None)[0] == "reclaim"
    # the lease (JupyterLab activity), and Keep running (remembered)
    w = watch()
    w.renew(1590.0)
    assert w.observe(1650.0, [], 0.0, None)[0] == "active"
    w.renew(1700.0, keep=True)
    verdict, state = w.observe(2250.0, [], 0.0, None)
    assert verdict == "warn" and state["keptAt"] == 1700.0 and state["lastUseWhy"] == "kept running"
    # CPU and GPU above their thresholds
    for cores, gpu in ((0.3, None), (0.0, 40.0)):
        w = watch()
        assert w.observe(1700.0, [], cores, gpu)[0] == "active"
        assert w.observe(2100.0, [], 0.0, None)[0] == "active"
        assert w.observe(2300.0, [], 0.0, None)[0] == "reclaim"


def test_a_busy_kernel_is_never_reclaimed_and_a_silent_one_keeps_the_session():
    w = watch()
    assert all(w.observe(t, [(1000.0, ("busy", 1001.0))], 0.0, None)[0] == "active" for t in (1700.0, 5000.0, 9e9))
    # a kernel that never reports (not ours): grace, then never idle
    w = watch()
    assert w.observe(1030.0, [(1000.0, None)], 0.0, None)[0] == "active"
    assert w.observe(1700.0, [(1000.0, None)], 0.0, None)[0] == "active"
    assert w.observe(2400.0, [(1000.0, None)], 0.0, None) == ("active", w.state())
    assert w.why == "a kernel that does not report its activity"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("60", "idle must be an object"),
        ({}, "timeoutSeconds must be an integer of at least 20"),
        ({"timeoutSeconds": 5}, "at least 20"),
        ({"timeoutSeconds": True}, "at least 20"),
        ({"timeoutSeconds": 600, "cpuCores": -1}, "idle.cpuCores must be a non-negative number"),
    ],
)
def test_bad_idle_config_is_refused_by_name(raw, message):
    with pytest.raises(ValueError, match=message):
        check_idle_config(raw)


def test_the_job_s_gpus_from_nvidia_smi():
    """Recorded output of the query gpus.QUERY makes; the job's GPUs by index or UUID
    (CUDA_VISIBLE_DEVICES), and what nvidia-smi cannot read left out."""
    out = (
        "0, GPU-8e3f2a71-55c1-2b9e-a4f0-6f0d2e6b8a11, 97, 30264, 40960\n"
        "1, GPU-1d2c3b4a-9e8f-7a6b-5c4d-3e2f1a0b9c8d, 0, 3, 40960\n"
        "2, GPU-77aa55bb-0c1d-4e2f-8a9b-c0d1e2f3a4b5, [N/A], 12, 40960\n"
    )
    everyone = gpus.parse(out)
    assert [g["index"] for g in everyone] == ["0", "1", "2"]
    assert everyone[0] == {
        "index": "0",
        "uuid": "GPU-8e3f2a71-55c1-2b9e-a4f0-6f0d2e6b8a11",
        "percent": 97.0,
        "memUsedBytes": 30264 * 2**20,
        "memTotalBytes": 40960 * 2**20,
    }
    assert "percent" not in everyone[2] and everyone[2]["memUsedBytes"] == 12 * 2**20
    mine = gpus.parse(out, "1,GPU-77aa55bb-0c1d-4e2f-8a9b-c0d1e2f3a4b5")
    assert [g["index"] for g in mine] == ["1", "2"] and gpus.busiest_percent(mine) == 0.0
    assert gpus.parse(out, "") == [] and gpus.busiest_percent([]) is None
    assert gpus.busiest_percent(everyone) == 97.0


# rocm-smi --showuse --showmeminfo vram --json on a node with two MI250X dies (its
# shape: a warning line may come first; a field it cannot read is "N/A")
ROCM_GPUS = (
    "WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n"
    '{"card0": {"GPU use (%)": "88", "VRAM Total Memory (B)": "68702699520", '
    '"VRAM Total Used Memory (B)": "21474836480"}, '
    '"card1": {"GPU use (%)": "N/A", "VRAM Total Memory (B)": "68702699520", '
    '"VRAM Total Used Memory (B)": "10485760"}}\n'
)


def test_the_job_s_gpus_from_rocm_smi(tmp_path, monkeypatch):
    """AMD GPUs: rocm-smi's JSON after its warnings; the job's by ROCR_VISIBLE_DEVICES;
    sampled when nvidia-smi is not there."""
    everyone = gpus.parse_rocm(ROCM_GPUS)
    assert everyone[0] == {
        "index": "0",
        "uuid": "",
        "percent": 88.0,
        "memUsedBytes": 21474836480.0,
        "memTotalBytes": 68702699520.0,
    }
    assert "percent" not in everyone[1] and gpus.busiest_percent(everyone) == 88.0
    assert [g["index"] for g in gpus.parse_rocm(ROCM_GPUS, "1")] == ["1"]
    assert gpus.parse_rocm("rocm-smi: no GPU found") is None and gpus.parse_rocm("[1]") is None

    bin_dir = fake_tool(tmp_path, gpus.ROCM_QUERY, ROCM_GPUS)
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % bin_dir)  # (no nvidia-smi there)
    sampled = gpus.sample({"ROCR_VISIBLE_DEVICES": "0"})
    assert [g["index"] for g in sampled] == ["0"] and sampled[0]["percent"] == 88.0
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert gpus.sample({}) is None


def test_released_core_hours():
    assert released_core_hours(16, 10000.0 + 3 * 3600, 10000.0) == 48.0
    assert released_core_hours(None, 20000.0, 10000.0) is None
    assert released_core_hours(4, None, 10000.0) is None


# nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used,memory.total
#            --format=csv,noheader,nounits on a node with two A100s, both idle
IDLE_GPUS = (
    "0, GPU-8e3f2a71-55c1-2b9e-a4f0-6f0d2e6b8a11, 0, 1, 40960\n"
    "1, GPU-1d2c3b4a-9e8f-7a6b-5c4d-3e2f1a0b9c8d, 2, 3, 40960\n"
)


def fake_tool(tmp_path, argv, output):
    """A stand-in for argv[0] in tmp_path/fake-bin (returned) that prints `output` for
    exactly the query the helper makes and fails for any other."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / argv[0]
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "%s" ] || { echo "unexpected query: $*" >&2; exit 6; }\n'
        "cat <<'EOF'\n%sEOF\n" % (" ".join(argv[1:]), output)
    )
    script.chmod(0o755)
    return bin_dir


def fake_nvidia_smi(tmp_path, output, visible):
    """The helper's environment with an nvidia-smi stand-in first on PATH."""
    bin_dir = fake_tool(tmp_path, gpus.QUERY, output)
    return dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), CUDA_VISIBLE_DEVICES=visible)


def test_the_helper_ends_an_idle_session_itself_and_keeps_a_busy_one(tmp_path):
    """Two real sessions with a 20 s idle timeout: A's kernel does nothing, B's runs a
    35 s cell (asleep: no CPU, only the kernel's own busy report keeps it). A is warned
    about, then ends by itself; B is running past the timeout. A's node has two idle GPUs
    (a stand-in for nvidia-smi printing its recorded output), the job was given the second: it is sampled
    for the efficiency card, and being idle it keeps nothing running."""
    idle = {"timeoutSeconds": 20, "warnSeconds": 10, "cpuCores": 0.5}
    a = Session(tmp_path, env=fake_nvidia_smi(tmp_path, IDLE_GPUS, visible="1"), idle=idle)
    b = Session(tmp_path, idle=idle)
    clients = []
    try:
        a.wait_status("ready", 30)
        b.wait_status("ready", 30)
        clients.append(a.start_kernel("ka"))
        kb = b.start_kernel("kb")
        clients.append(kb)
        started = time.time()
        done = {}
        t = threading.Thread(target=lambda: done.update(r=execute(kb, "import time; time.sleep(35)", timeout=60)))
        t.start()
        warned = wait_for(lambda: (a.state().get("idle") or {}).get("reclaimAt"), 40, "A's countdown")
        assert 0 < warned - time.time() <= 12
        a.proc.wait(40)
        ended = time.time()
        st = a.state()
        assert a.proc.returncode == 0 and st["status"] == "stopping" and st["reason"].startswith("idle for ")
        assert 20 <= st["idleEnded"]["idleSeconds"] <= 35, st["idleEnded"]
        gpu = st["usage"]["gpu"]  # the job's GPU only (CUDA_VISIBLE_DEVICES=1)
        assert gpu["count"] == 1 and gpu["memTotalBytes"] == 40960 * 2**20 and gpu["memPeakBytes"] == 3 * 2**20, gpu
        assert gpu["peakPercent"] == 2.0 and gpu["meanPercent"] == 2.0, gpu
        assert ended - started >= 20
        # B: past its timeout, busy all along, never counted down
        assert b.proc.poll() is None and b.state()["status"] == "ready"
        assert "reclaimAt" not in b.state()["idle"], b.state()["idle"]
        assert b.state()["idle"]["lastUseWhy"] == "a kernel is busy"
        # Keep running answers with the remembered time
        status, res, _ = b.request("POST", "/activity", {"keep": True})
        assert status == 200 and abs(res["idle"]["keptAt"] - time.time()) < 5, res
        t.join(60)
        assert done["r"][0]["status"] == "ok"
        assert not alive(a.proc.pid)
    finally:
        for kc in clients:
            kc.stop_channels()
        for s in (a, b):
            s.close()


def test_the_kernel_reports_busy_while_a_cell_runs(tmp_path):
    """jrc_kernel.py's activity file: busy during a cell, idle after it, even when a
    control-channel request (an interrupt of nothing) comes in between."""
    s = Session(tmp_path, idle={"timeoutSeconds": 600})
    try:
        st = s.wait_status("ready", 30)
        kc = s.start_kernel("kr")
        path = "%s/activity/kr" % st["runtimeDir"]
        try:
            wait_for(lambda: open(path).read() == "idle", 30, "the first report")
            done = {}
            t = threading.Thread(target=lambda: done.update(r=execute(kc, "import time; time.sleep(4)")))
            t.start()
            wait_for(lambda: open(path).read() == "busy", 10, "busy")
            # a control-channel request while the cell runs: the kernel stays busy
            from jupyter_client import BlockingKernelClient

            ctl = BlockingKernelClient()
            ctl.load_connection_file(str(s.dir / "kernels" / "kr" / "connection.json"))
            ctl.start_channels()
            msg = ctl.session.msg("kernel_info_request")
            ctl.control_channel.send(msg)
            ctl.get_control_msg(timeout=10)
            ctl.stop_channels()
            assert open(path).read() == "busy"
            t.join(30)
            assert done["r"][0]["status"] == "ok"
            wait_for(lambda: open(path).read() == "idle", 10, "idle after the cell")
        finally:
            kc.stop_channels()
    finally:
        s.close()
