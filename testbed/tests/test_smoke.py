"""Smoke tests from the laptop side (root netns) against a started testbed."""

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # any import mode
from tbutil import SSH, TESTBED, logged_in, require_healthy, run, tb_env, tbctl, wait_jobs


@pytest.fixture(scope="module")
def env():
    require_healthy()
    return tb_env()


@pytest.fixture(scope="module")
def alice(env):
    with logged_in(env) as ssh:
        yield ssh


def askpass(tmp_path, env, wrong=False):
    """An SSH_ASKPASS program answering the bastion's OTP prompt without a terminal."""
    secret_file = env["RC_TESTBED_BOB_TOTP"]
    if wrong:
        # a 6-digit code outside the whole accepted window (+-5 steps, and more)
        r = run(["oathtool", "--totp", "-w", "12", Path(secret_file).read_text().strip()])
        valid = set(r.stdout.split())
        code = next(f"{n:06d}" for n in range(123456, 999999, 7919) if f"{n:06d}" not in valid)
        body = f"#!/bin/sh\necho {code}\n"
    else:
        body = f'#!/bin/sh\nexec oathtool --totp "$(cat {secret_file})"\n'
    p = tmp_path / ("askpass-wrong" if wrong else "askpass")
    p.write_text(body)
    p.chmod(0o700)
    return {"SSH_ASKPASS": str(p), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}


@pytest.fixture(scope="module")
def bob(env, tmp_path_factory):
    ssh = SSH(env, "login-bob", askpass(tmp_path_factory.mktemp("bob"), env), batch=False)
    rc, log = ssh.open()
    if rc != 0:
        # pam_oath refuses a code of a time step it has already accepted (replay), e.g. when
        # the tests ran twice within 30 s: wait for the next step and try once more.
        time.sleep(31 - time.time() % 30)
        rc, log = ssh.open()
    assert rc == 0, f"bob could not log in with key + TOTP:\n{log}"
    yield ssh
    ssh.close()


def submit(ssh, args, command):
    out = ssh.check(f"mkdir -p tb-smoke && sbatch --parsable {args} -o tb-smoke/%j.out --wrap {command!r}")
    return out.strip().split(";")[0]


def test_alice_jobs_land_on_the_requested_nodes(alice):
    jobs = {
        "node1": submit(alice, "-w node1", "hostname"),
        "node2": submit(alice, "-w node2", "hostname"),
        # the big partition has node2 only; node2 has the bigmem feature and one (fake) GPU
        "big": submit(alice, "-p big -C bigmem --gres=gpu:1", "hostname"),
    }
    states = wait_jobs(alice, list(jobs.values()))
    expected = {"node1": "node1", "node2": "node2", "big": "node2"}
    for name, jid in jobs.items():
        assert states[jid][:2] == ("COMPLETED", "0:0"), (name, states[jid])
        # the hostname the job saw: proves each slurmd has its own UTS namespace
        assert alice.check(f"cat tb-smoke/{jid}.out").strip() == expected[name], name


def test_cluster_python_in_a_job_on_node1(alice):
    jid = submit(alice, "-w node1", "python3 -c 'import sys, ipykernel, dask, distributed; print(sys.prefix)'")
    states = wait_jobs(alice, [jid])
    assert states[jid][:2] == ("COMPLETED", "0:0"), (states[jid], alice.run(f"cat tb-smoke/{jid}.out"))
    assert alice.check(f"cat tb-smoke/{jid}.out").strip() == "/opt/rc-testbed/python"


def test_cluster_python_via_exec(env):
    r = tbctl(
        "exec",
        "node1",
        "--user",
        "alice",
        "--",
        env["RC_TESTBED_PYTHON"],
        "-c",
        "import ipykernel, dask, distributed, bokeh, socket, getpass; print(socket.gethostname(), getpass.getuser())",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["node1", "alice"]


def test_login_to_node_ssh_with_strict_host_keys(alice, env):
    for target in ("node1", "node2", env["RC_TESTBED_NODE1_ADDR"]):
        out = alice.check(f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {target} hostname")
        assert out.strip() == ("node2" if target == "node2" else "node1")


def test_nodes_through_two_jumps(env):
    r = run(["ssh", "-F", env["RC_TESTBED_SSH_CONFIG"], "-o", "BatchMode=yes", "node2", "hostname"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node2"


def test_hosts_have_their_own_host_keys(env):
    keys = [l.split()[2] for l in Path(env["RC_TESTBED_KNOWN_HOSTS"]).read_text().splitlines() if l]
    assert len(keys) == 6 and len(set(keys)) == 6
    system = {Path(p).read_text().split()[1] for p in Path("/etc/ssh").glob("ssh_host_*_key.pub")}
    assert not set(keys) & system


def test_bob_with_key_and_totp_runs_a_job(bob):
    assert bob.check("id -un").strip() == "bob"
    jid = submit(bob, "", "hostname")
    states = wait_jobs(bob, [jid])
    assert states[jid][:2] == ("COMPLETED", "0:0"), states[jid]
    assert bob.check(f"cat tb-smoke/{jid}.out").strip() in ("node1", "node2")


def test_bob_without_otp_is_refused(env):
    # key only (BatchMode cannot answer the keyboard-interactive OTP prompt)
    r = run(["ssh", "-F", env["RC_TESTBED_SSH_CONFIG"], "-o", "BatchMode=yes", "bastion-bob", "true"], timeout=30)
    assert r.returncode == 255 and "Permission denied" in r.stderr, r.stderr


def test_bob_with_wrong_otp_is_refused(env, tmp_path):
    r = run(
        ["ssh", "-F", env["RC_TESTBED_SSH_CONFIG"], "-o", "NumberOfPasswordPrompts=1", "bastion-bob", "true"],
        timeout=30,
        env=dict(os.environ, **askpass(tmp_path, env, wrong=True)),
    )
    assert r.returncode == 255 and "Permission denied" in r.stderr, r.stderr


def test_alice_needs_no_otp(env):
    r = run(["ssh", "-F", env["RC_TESTBED_SSH_CONFIG"], "-o", "BatchMode=yes", "bastion", "hostname"])
    assert r.returncode == 0 and r.stdout.strip() == "bastion", r.stderr


def tcp(addr, port=22, timeout=3.0):
    t0 = time.monotonic()
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64), time.monotonic() - t0
    except OSError as e:
        return e, time.monotonic() - t0


@pytest.mark.parametrize(
    "key", ["RC_TESTBED_NODE1_ADDR", "RC_TESTBED_NODE2_ADDR", "RC_TESTBED_LOGIN_ADDR", "RC_TESTBED_LOGIN_CLUSTER_ADDR"]
)
def test_laptop_cannot_reach_inner_hosts(env, key):
    result, took = tcp(env[key])
    assert isinstance(result, OSError), f"{env[key]}:22 answered {result!r}"
    # refused at once by the unreachable route, not a timeout (and never sent out)
    assert result.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), result
    assert took < 1.0


def test_laptop_reaches_bastion(env):
    result, _ = tcp(env["RC_TESTBED_BASTION_ADDR"])
    assert isinstance(result, bytes) and result.startswith(b"SSH-2.0-"), result


def test_laptop_files(env):
    for key in ("RC_TESTBED_KEY_ALICE", "RC_TESTBED_KEY_BOB", "RC_TESTBED_BOB_TOTP"):
        st = os.stat(env[key])
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, key


# --- node3 (partition sshonly) and node4 (partition isolated): firewalls in their netns ---

PROBE = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
    "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('open', s.recv(8).decode(errors='replace'))\n"
    "except socket.timeout:\n    print('timeout')\n"
    "except OSError as e:\n    print(type(e).__name__)\n"
)


def probe(env, host, target, port, timeout=3):
    r = tbctl(
        "exec", host, "--user", "alice", "--", env["RC_TESTBED_PYTHON"], "-c", PROBE, target, str(port), str(timeout)
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def listener(env):
    """A TCP listener on node3 and node4 (port 28123, all interfaces), each answering 'hi'."""
    procs = []
    for node in ("node3", "node4"):
        code = (
            "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 28123)); s.listen(); s.settimeout(60)\n"  # gone within 60 s whatever happens
            "while True:\n    c, _ = s.accept(); c.sendall(b'hi'); c.close()"
        )
        procs.append(
            subprocess.Popen(
                [TESTBED, "exec", node, "--user", "alice", "--", env["RC_TESTBED_PYTHON"], "-c", code],
                start_new_session=True,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)
    yield 28123
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)  # the whole group: the python under nsenter/setpriv too
        p.wait(10)


def test_node3_accepts_only_ssh_from_the_cluster_network(env, listener):
    assert probe(env, "login", "node3", 22).startswith("open SSH-2.0")
    # the listener answers on node3 itself, but the cluster network gets refused at once
    assert probe(env, "node3", env["RC_TESTBED_NODE3_ADDR"], listener) == "open hi"
    assert probe(env, "login", "node3", listener) == "ConnectionRefusedError"
    assert probe(env, "node1", "node3", listener) == "ConnectionRefusedError"


def test_node4_accepts_nothing_from_the_cluster_network_but_reaches_login(env, listener):
    assert probe(env, "node4", env["RC_TESTBED_NODE4_ADDR"], listener) == "open hi"
    assert probe(env, "login", "node4", 22) == "timeout"
    assert probe(env, "login", "node4", listener) == "timeout"
    assert probe(env, "node4", "login", 22).startswith("open SSH-2.0")


def test_nodes_ssh_to_login_with_the_clusters_known_hosts(env):
    # only /etc/ssh/ssh_known_hosts (the cluster's, in each host's mount view) is consulted
    for node in ("node3", "node4"):
        r = tbctl(
            "exec",
            node,
            "--user",
            "alice",
            "--",
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "login",
            "hostname",
        )
        assert r.returncode == 0 and r.stdout.strip() == "login", r.stderr
    r = tbctl(
        "exec",
        "login",
        "--user",
        "alice",
        "--",
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "node3",
        "hostname",
    )
    assert r.returncode == 0 and r.stdout.strip() == "node3", r.stderr


def test_jobs_run_in_partitions_sshonly_and_isolated(alice):
    jobs = {"node3": submit(alice, "-p sshonly", "hostname"), "node4": submit(alice, "-p isolated", "hostname")}
    states = wait_jobs(alice, list(jobs.values()))
    for node, jid in jobs.items():
        assert states[jid][:2] == ("COMPLETED", "0:0"), (node, states[jid])
        assert alice.check(f"cat tb-smoke/{jid}.out").strip() == node
