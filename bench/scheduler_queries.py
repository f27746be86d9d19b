"""Scheduler commands per minute that reach the login node, with 1 and with 20 sessions.

The real agent (started like the provisioner starts it) runs a testbed profile whose
`loginSetup` puts counting shims for squeue, sbatch and scancel first on PATH: each shim
appends a line to a log in alice's home and execs the real command, so the log is what
the cluster's admin would see coming from this user. For each case: submit the sessions
(`dask: false`), wait until all run, count over `--minutes` of steady state, then cancel
them (by session, i.e. `scancel <id>`). Prints a table and the 20/1 ratio.

    testbed/testbed start && .venv/bin/python bench/scheduler_queries.py --minutes 6
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTBED = REPO / "testbed" / "testbed"
SHIMS = ".rcbench-shims"  # in alice's home on the cluster
PYTHON = "/opt/rc-testbed/python/bin/python"


def on_login(script: str, stdin: str = "") -> str:
    return subprocess.run(
        [str(TESTBED), "exec", "login", "--user", "alice", "--", "sh", "-c", script],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    ).stdout


def install_shims() -> None:
    """~/.rcbench-shims/{squeue,sbatch,scancel}: log a line (time, command, arguments), exec the real one."""
    on_login(f"mkdir -p ~/{SHIMS} && : > ~/{SHIMS}/log")
    for cmd in ("squeue", "sbatch", "scancel"):
        real = on_login(f"command -v {cmd}").strip()
        shim = f'#!/bin/sh\nprintf \'%s {cmd} %s\\n\' "$(date +%s.%N)" "$*" >> "$HOME/{SHIMS}/log"\nexec {real} "$@"\n'
        on_login(f"cat > ~/{SHIMS}/{cmd} && chmod 755 ~/{SHIMS}/{cmd}", shim)


def read_log() -> list[tuple[float, str, str]]:
    rows = []
    for line in on_login(f"cat ~/{SHIMS}/log").splitlines():
        t, cmd, args = (line.split(" ", 2) + [""])[:3]
        rows.append((float(t), cmd, args))
    return rows


def setup_agent(tmp: Path):
    env = dict(
        line.split("=", 1)
        for line in subprocess.run(
            [str(TESTBED), "env"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        if "=" in line
    )
    dirs = {
        "JUPYTERLAB_SETTINGS_DIR": tmp / "settings",
        "JUPYTER_DATA_DIR": tmp / "data",
        "JUPYTER_RUNTIME_DIR": tmp / "runtime",
    }
    for k, v in dirs.items():
        v.mkdir(parents=True)
        os.environ[k] = str(v)
    profile = {
        "name": "bench",
        "ssh": {"host": "login", "configFile": env["RC_TESTBED_SSH_CONFIG"]},
        "scheduler": "slurm",
        "resources": {"partition": "debug", "walltime": "00:30:00", "cpus": 1, "memory": "200M"},
        "loginSetup": [f'PATH="$HOME/{SHIMS}:$PATH"'],
        "python": PYTHON,
        "dask": False,
    }
    d = dirs["JUPYTERLAB_SETTINGS_DIR"] / "jupyterlab-remote-cluster"
    d.mkdir()
    (d / "profiles.jupyterlab-settings").write_text(json.dumps({"profiles": [profile]}))

    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    agent = get_agent()

    def request(method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        r = run_sync(agent.request)(method, path, data, {"Content-Type": "application/json"} if data else None)
        return r.code, json.loads(r.body or b"{}")

    return agent, request


def wait_all(request, ids: list[str], state: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        _, listing = request("GET", "/api/v1/sessions")
        by_id = {s["id"]: s for s in listing["sessions"]}
        states = [by_id[i]["state"] for i in ids]
        if all(s == state for s in states):
            return time.time()
        bad = [by_id[i] for i in ids if by_id[i]["state"] == "ended" and state != "ended"]
        if bad:
            sys.exit(f"a session ended: {bad[0].get('reason')}")
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {state}: {states}")
        time.sleep(1)


def run_case(request, n: int, minutes: float, all_jobs: list[str]) -> dict:
    ids = []
    for _ in range(n):
        code, s = request("POST", "/api/v1/sessions", {"profile": "bench"})
        if code != 201:
            sys.exit(f"submit failed: {s}")
        ids.append(s["id"])
        all_jobs.append(s["jobId"])
    t_submit = time.time()
    t_running = wait_all(request, ids, "running", 300)
    print(f"  {n} session(s) running {t_running - t_submit:.0f} s after the first submit", file=sys.stderr)
    t0 = time.time()
    time.sleep(minutes * 60)
    t1 = time.time()
    for i in ids:
        request("DELETE", f"/api/v1/sessions/{i}")
    wait_all(request, ids, "ended", 120)
    log = read_log()
    window = [r for r in log if t0 <= r[0] < t1]
    start = [r for r in log if t_submit <= r[0] < t_running]
    status = [r for r in window if r[1] == "squeue" and "--version" not in r[2]]
    return {
        "n": n,
        "startup_s": t_running - t_submit,
        "startup_squeue": sum(1 for r in start if r[1] == "squeue" and "--version" not in r[2]),
        "minutes": (t1 - t0) / 60,
        "squeue": len(status),
        "other": len(window) - len(status),
        "per_min": len(status) / ((t1 - t0) / 60),
        "max_ids": max(
            (len(r[2].split("--jobs=")[1].split()[0].split(",")) for r in status if "--jobs=" in r[2]), default=0
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=6, help="steady-state window per case (>= 2)")
    args = ap.parse_args()
    if args.minutes < 2:
        sys.exit("--minutes: at least 2")
    all_jobs: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rc-bench-sq-") as tmp:
        install_shims()
        agent, request = setup_agent(Path(tmp))
        try:
            results = [run_case(request, n, args.minutes, all_jobs) for n in (1, 20)]
        finally:
            # every job this bench submitted, by id, whatever happened above
            if all_jobs:
                on_login(f"scancel {' '.join(all_jobs)} 2>/dev/null; true")
            left: list[str] = []
            for _ in range(30):  # COMPLETING for a moment after scancel
                left = (
                    on_login(f"squeue -h -j {','.join(all_jobs)} -t PD,R,CG -o %i 2>/dev/null; true").split()
                    if all_jobs
                    else []
                )
                if not left:
                    break
                time.sleep(1)
            print(f"cancelled {len(all_jobs)} jobs by id; still queued or running: {len(left)}", file=sys.stderr)
            on_login(f"rm -rf ~/{SHIMS}")
            from jupyter_core.utils import run_sync

            run_sync(agent.stop)()
    print(
        "| sessions | steady window | squeue calls | per minute | ids per call | other commands in window | startup (all running) | squeue calls during startup |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['n']} | {r['minutes']:.1f} min | {r['squeue']} | {r['per_min']:.2f} | {r['max_ids']} | {r['other']} "
            f"| {r['startup_s']:.0f} s | {r['startup_squeue']} |"
        )
    one, twenty = results[0]["per_min"], results[1]["per_min"]
    ratio = "1.00 (both zero)" if one == twenty == 0 else (f"{twenty / one:.2f}" if one else "inf")
    print(f"\nratio 20/1 of steady squeue calls per minute: {ratio} (goal: 1, and <= 2 per minute)")


if __name__ == "__main__":
    main()
