"""What every benchmark here needs: the testbed, a free local port, percentiles, and
stopping what a run started (helper processes, the node-side server, its work dir)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.tlsutil (one TLS maker for tests and benches)

from tests.tlsutil import make_tls  # noqa: E402

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


def bench_tls(work: Path, owner: str = "alice") -> dict[str, str]:
    """A CA and a certificate it signs (name jrc-bench), as the agent makes for a session:
    {"ca", "cert", "key"} PEM texts, and "dir" with the files (owned by `owner`, 0600 in
    0700, for the node-side relay)."""
    import pwd

    d = work / "tls"
    d.mkdir(mode=0o700)

    make_tls(d, name="jrc-bench")
    (d / "ca.key").unlink()
    user = pwd.getpwnam(owner)
    os.chmod(work, 0o711)  # alice passes through the scratch dir to her own tls/
    for f in [d, *d.iterdir()]:
        os.chown(f, user.pw_uid, user.pw_gid)
        if f.is_file():
            os.chmod(f, 0o600)
    out = {k: (d / f"{k}.pem").read_text() for k in ("ca", "cert", "key")}
    out["dir"] = str(d)
    return out


# On a node, as alice: the helper's own Relay class (remote/helper/jrc_helper/relay.py), in front of the
# Unix sockets named in its targets; prints "PORT PID" once it listens.
RELAY = r'''
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])  # the helper's directory: its package jrc_helper
from jrc_helper.common import ApiError
from jrc_helper.relay import Relay
cfg = json.loads(sys.argv[2])

class Session:
    """What the relay asks of the helper: the token, and where a target is."""
    config = {"token": cfg["token"]}

    def relay_target(self, target):
        if target in cfg["targets"]:
            return cfg["targets"][target]
        raise ApiError(404, "not-found", target)

d = cfg["tls_dir"]
relay = Relay(Session(), "0.0.0.0", {k: os.path.join(d, k + ".pem") for k in ("ca", "cert", "key")})
relay.start()
print(relay.port, os.getpid(), flush=True)
threading.Event().wait()
'''


def start_relay(
    node: str, tls: dict[str, str], token: str, targets: dict[str, str]
) -> tuple[subprocess.Popen, int, int]:
    """The helper's relay on `node` (as alice) for `targets` ({"http/9": "/path.sock"})."""
    cfg = {"token": token, "targets": targets, "tls_dir": tls["dir"]}
    p = subprocess.Popen(
        [
            str(TESTBED),
            "exec",
            node,
            "--user",
            "alice",
            "--",
            "python3",
            "-c",
            RELAY,
            str(REPO / "jupyterlab_remote_cluster" / "remote" / "helper"),
            json.dumps(cfg),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    port, pid = map(int, p.stdout.readline().split())
    return p, port, pid
