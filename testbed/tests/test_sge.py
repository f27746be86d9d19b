"""Grid Engine add-on (testbed/addons/sge.sh) against a started testbed: real qsub / qstat /
qdel as alice over ssh (laptop -> bastion -> login), jobs on node1/node2, and `down` leaving
nothing behind. The module brings the add-on up first (`up` is idempotent) and leaves it up.
"""

import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any import mode
from tbutil import logged_in, require_healthy, run, tb_env, tbctl

GID_RANGE = range(65400, 65500)  # the jobs' additional groups (gid_range of the add-on)
MARK = f"rctb-sge-test-{uuid.uuid4().hex[:8]}"  # this run's files in alice's home


def addon(action):
    r = tbctl("addon", "sge", action, timeout=300)
    assert r.returncode == 0, f"testbed addon sge {action}: rc={r.returncode}\n{r.stdout}{r.stderr}"
    return r.stderr


@pytest.fixture(scope="module")
def env():
    require_healthy()
    addon("up")
    return tb_env()


@pytest.fixture(scope="module")
def alice(env):
    with logged_in(env) as ssh:
        ssh.check(f"mkdir -p {MARK}")
        yield ssh
        ssh.run(f"rm -rf {MARK}")


def sge(ssh, env, command, check=True):
    """A Grid Engine command as a profile's loginSetup would run it on login."""
    line = f". {env['RC_TESTBED_STATE']}/sge/settings.sh && {command}"
    return ssh.check(line) if check else ssh.run(line)


def qstat_jobs(ssh, env):
    """{job id: (state, queue_name, name)} from `qstat -xml` (the adapter's status command).
    Other engineers' sessions run as alice too: tests look only at their own job ids/names."""
    xml = sge(ssh, env, 'qstat -xml -u "$(id -un)"')
    assert xml.lstrip().startswith("<?xml") and xml.rstrip().endswith("</job_info>"), xml
    jobs = {}
    for body in re.findall(r"<job_list\b[^>]*>(.*?)</job_list>", xml, re.S):
        field = lambda name, body=body: (re.search(rf"<{name}>([^<]*)</{name}>", body) or [None, ""])[1]
        jobs[field("JB_job_number")] = (field("state"), field("queue_name"), field("JB_name"))
    return jobs


def wait_for(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.3)


def submit(ssh, env, name, body, qsub_args=""):
    """Write a job script (the adapter's style: #$ lines, -S /bin/sh, -wd) and qsub -terse it."""
    d = f"/home/alice/{MARK}"
    script = (
        f"#!/bin/sh\n#$ -N {name}\n#$ -o {d}/{name}.out\n#$ -e {d}/{name}.err\n"
        f"#$ -j n\n#$ -wd {d}\n#$ -S /bin/sh\n{body}\n"
    )
    ssh.check(f"cat > {MARK}/{name}.sh <<'EOF'\n{script}EOF")
    out = sge(ssh, env, f"qsub -terse {qsub_args} {MARK}/{name}.sh")
    assert re.fullmatch(r"\d+\n", out), out
    return out.strip()


def pid_info(pid):
    """(comm, uid, extra gids) of a live process, or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    if fields["State"].split()[0] == "Z":
        return None
    return (fields["Name"].strip(), int(fields["Uid"].split()[0]), {int(g) for g in fields["Groups"].split()})


def wait_running(ssh, env, jid):
    """Wait until qstat -xml shows the job running; -> its queue instance (all.q@nodeN)."""

    def queue():
        state, queue, _ = qstat_jobs(ssh, env).get(jid, ("", "", ""))
        return state == "r" and queue

    return wait_for(f"job {jid} running", queue)


def running_job(ssh, env, name):
    """Submit a job that records its pid then sleeps; wait until it runs. -> (id, node, pid)"""
    jid = submit(ssh, env, name, f"echo $$ > {name}.pid\nexec sleep 600")
    node = wait_running(ssh, env, jid).split("@", 1)[1]
    pid = wait_for(f"job {jid} pid file", lambda: ssh.run(f"cat {MARK}/{name}.pid").stdout.strip())
    return jid, node, int(pid)


def test_qsub_runs_the_job_on_a_node_as_alice(alice, env):
    jid = submit(alice, env, "where", 'echo "$(hostname) $(id -un) $JOB_ID"; sleep 3')
    # qstat -xml shows it running in a queue instance of node1 or node2
    queue = wait_running(alice, env, jid)
    assert queue in ("all.q@node1", "all.q@node2"), queue
    wait_for(f"job {jid} left qstat", lambda: jid not in qstat_jobs(alice, env))
    # the job saw the node's own hostname (and qstat's node), ran as alice, got its id
    assert alice.check(f"cat {MARK}/where.out").split() == [queue.split("@")[1], "alice", jid]
    assert alice.check(f"cat {MARK}/where.err") == ""


def test_qstat_xml_shows_pending_and_held_jobs(alice, env):
    held = submit(alice, env, "held", "true", "-h")
    # no host has two GPUs (node2 has the only one): waits for ever
    waiting = submit(alice, env, "waiting", "true", "-l gpu=2")
    time.sleep(2)  # a few scheduling passes (the add-on schedules every 2 s)
    jobs = qstat_jobs(alice, env)
    assert jobs[held] == ("hqw", "", "held") and jobs[waiting] == ("qw", "", "waiting"), jobs
    out = sge(alice, env, f"qdel {held} {waiting}")
    assert out.splitlines() == [f"alice has deleted job {held}", f"alice has deleted job {waiting}"], out
    wait_for("deleted jobs left qstat", lambda: not {held, waiting} & set(qstat_jobs(alice, env)))


def test_qdel_kills_a_running_job(alice, env):
    jid, node, pid = running_job(alice, env, "victim")
    comm, uid, groups = pid_info(pid)
    assert (comm, uid) == ("sleep", int(run(["id", "-u", "alice"]).stdout)), (comm, uid)
    assert groups & set(GID_RANGE), groups  # Grid Engine tracks it by its additional group
    # it runs in the network namespace of the node qstat names
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/rctb-{node}").st_ino
    out = sge(alice, env, f"qdel {jid}")
    assert out.strip() == f"alice has registered the job {jid} for deletion", out
    wait_for(f"job {jid} left qstat", lambda: jid not in qstat_jobs(alice, env))
    wait_for(f"job {jid}'s process {pid} gone", lambda: pid_info(pid) is None, timeout=10)


def test_refusal_and_bad_input_change_nothing(alice, env):
    name = f"refused-{MARK}"
    r = sge(alice, env, f"qsub -terse -N {name} -q nosuch.q {MARK}/where.sh", check=False)
    assert r.returncode == 1 and 'unknown queue "nosuch.q"' in r.stderr, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert name not in {job[2] for job in qstat_jobs(alice, env).values()}


def sge_leftovers(state):
    """Everything of the add-on that could outlive `down`: processes and files."""
    left = []
    for p in Path("/proc").glob("[0-9]*"):
        info = pid_info(p.name)
        if info and (info[0].startswith("sge_") or info[2] & set(GID_RANGE)):
            left.append(f"process {p.name} {info}")
    if Path(state, "sge").exists():
        left.append(f"{state}/sge")
    return left


def listing(*dirs):
    return {os.path.join(top, n) for d in dirs for top, ds, fs in os.walk(d) for n in ds + fs}


def sge_tmp_files():
    """Top-level /tmp entries Grid Engine would leave: its daemons' fallback message files,
    job TMPDIRs (<job>.<task>.<queue>), anything sgeadmin owns."""
    found = set()
    with os.scandir("/tmp") as it:
        for e in it:
            try:
                owner = Path(e.path).owner()
            except (FileNotFoundError, KeyError):
                continue  # other engineers' files come and go
            if owner == "sgeadmin" or re.fullmatch(r"(qmaster|execd|shepherd)_messages.*|\d+\.\d+\.\w+\.q", e.name):
                found.add(e.name)
    return found


def test_down_leaves_nothing_and_up_again(alice, env):
    state = env["RC_TESTBED_STATE"]
    # outside $STATE: the packages' own dirs stay exactly as they were, nothing new in /tmp
    packaged = ("/var/lib/gridengine", "/var/spool/gridengine", "/etc/default/gridengine")
    before = listing(*packaged[:2]), Path(packaged[2]).read_text()
    tmp_before = sge_tmp_files()
    jid, node, pid = running_job(alice, env, "survivor")  # down must kill running jobs too
    addon("down")
    assert sge_leftovers(state) == []
    assert pid_info(pid) is None
    assert (listing(*packaged[:2]), Path(packaged[2]).read_text()) == before
    assert sge_tmp_files() <= tmp_before, sge_tmp_files() - tmp_before
    # `down` again is a no-op
    addon("down")
    assert sge_leftovers(state) == []
    # up again: both execds report, and a job runs
    assert "up in" in addon("up")
    assert "already running" in addon("up")
    hosts = sge(alice, env, "qhost")
    assert re.search(r"^node1\s+lx-amd64", hosts, re.M) and re.search(r"^node2\s+lx-amd64", hosts, re.M), hosts
    jid = submit(alice, env, "again", "hostname")
    wait_for(f"job {jid} done", lambda: alice.run(f"cat {MARK}/again.out").stdout.strip() in ("node1", "node2"))
