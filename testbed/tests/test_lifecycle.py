"""start is idempotent, stop leaves nothing behind, start works again.

The tests run in file order and end with a started, healthy cluster (later tests need it),
so this file can run on its own: pytest testbed/tests/test_lifecycle.py
"""

import os
import pwd
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any import mode
from tbutil import HOSTS, run, tb_env, tbctl

ENV = tb_env()
STATE = ENV["RC_TESTBED_STATE"]
USERS = ENV["RC_TESTBED_USERS"].split()


def procs():
    """(pid, comm, cmdline, uid, net ns link) of every live (non-zombie) process."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
            if "\nState:\tZ" in status:
                continue
            uid = int(status.split("\nUid:\t", 1)[1].split()[0])
            comm = (d / "comm").read_text().strip()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            net = os.readlink(d / "ns/net")
        except (OSError, IndexError, ValueError):
            continue
        out.append((int(d.name), comm, cmdline, uid, net))
    return out


def netns_links():
    links = {}
    for h in HOSTS:
        p = Path(f"/var/run/netns/rctb-{h}")
        if p.exists():
            links[h] = f"net:[{p.stat().st_ino}]"
    return links


def daemon_counts():
    ns = netns_links()
    ps = procs()
    in_ns = lambda h: [p for p in ps if p[4] == ns.get(h)]
    return {
        "munged": sum(1 for p in ps if p[1] == "munged" and STATE + "/" in p[2]),
        "slurmctld": sum(1 for p in in_ns("login") if p[1] == "slurmctld"),
        "slurmd": sum(1 for h in ("node1", "node2", "node3", "node4") for p in in_ns(h) if p[1] == "slurmd"),
        "sshd": sum(1 for p in ps if p[1] == "sshd" and "[listener]" in p[2] and f"-f {STATE}/ssh/" in p[2]),
    }


def test_1_start_on_a_running_cluster_is_a_no_op():
    r = tbctl("start")  # starts it if it is not running yet; the second call is the test
    assert r.returncode == 0, r.stderr
    before = daemon_counts()
    r = tbctl("start", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "already running" in r.stderr
    assert daemon_counts() == before == {"munged": 1, "slurmctld": 1, "slurmd": 4, "sshd": 6}


def test_2_stop_leaves_nothing_behind():
    ns = set(netns_links().values())
    uids = {pwd.getpwnam(u).pw_uid for u in USERS}
    homes = [pwd.getpwnam(u).pw_dir for u in USERS]
    r = tbctl("stop")
    assert r.returncode == 0, r.stderr

    assert "rctb" not in run(["ip", "netns", "list"]).stdout
    left = [
        p
        for p in procs()
        if p[4] in ns or p[3] in uids or STATE + "/" in p[2] or p[1] in ("slurmctld", "slurmd", "slurmstepd")
    ]
    assert not left, left
    assert "rctb" not in run(["ip", "-o", "link"]).stdout
    routes = run(["ip", "route", "show", "table", "all"]).stdout
    assert "198.18." not in routes, routes
    assert not os.path.exists(STATE)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert STATE not in mounts and "rctb" not in mounts
    for u in USERS:
        assert run(["getent", "passwd", u]).returncode == 2, u
    for h in homes:
        assert not os.path.exists(h), h
    etc = "".join(Path("/etc", f).read_text() for f in ("passwd", "group", "subuid", "subgid"))
    assert not any(f"{u}:" in etc for u in USERS)
    # stop on a stopped testbed is fine too
    assert tbctl("stop").returncode == 0


def test_3_start_again_is_healthy():
    r = tbctl("start", timeout=120)
    assert r.returncode == 0, r.stderr
    s = tbctl("status")
    assert s.returncode == 0, s.stdout + s.stderr
    assert s.stdout.rstrip().endswith("healthy") and "NOT healthy" not in s.stdout
    assert "idle node[1-2]" in s.stdout
    assert daemon_counts() == {"munged": 1, "slurmctld": 1, "slurmd": 4, "sshd": 6}
