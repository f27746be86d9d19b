"""What every benchmark here needs: the testbed, a free local port, percentiles, and
stopping what a run started (helper processes, the node-side server, its work dir)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTBED = REPO / "testbed" / "testbed"


def testbed_env() -> dict[str, str]:
    out = subprocess.run([str(TESTBED), "env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(ts: list[float], p: float) -> float:
    """The p-quantile of durations in seconds, in milliseconds."""
    s = sorted(ts)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))] * 1000


def stop_all(procs: list[subprocess.Popen], server_pid: int | None = None, work: Path | str | None = None) -> None:
    if server_pid:
        os.kill(server_pid, 15)  # same pid namespace; `testbed exec` does not pass signals on
    for p in procs:
        if p.stdin:
            p.stdin.close()
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
