"""Fastest start on real Slurm (docs/allocation.md): with partition `big` (node2) full,
the estimates for a profile whose candidates are `big` and `sshonly` (node3) say that
`sshonly` starts now and `big` only when the job filling it ends, and nothing is
submitted by asking. (A module of its own: no session of another test on node2.)"""

import time

from .conftest import agent_call, on_login, profile_added


def alices_jobs() -> list:
    return on_login("squeue", "-h", "-u", "alice", "-o", "%i").split()


def test_the_free_partition_starts_first_and_asking_submits_nothing(jupyter_dirs):
    filler = on_login("sbatch", "--parsable", "-p", "big", "--exclusive", "-t", "10", "--wrap", "sleep 600").strip()
    try:
        deadline = time.monotonic() + 60
        while on_login("squeue", "-h", "-j", filler, "-o", "%T").strip() != "RUNNING":
            assert time.monotonic() < deadline, "the filler job never ran"
            time.sleep(1)
        with profile_added(
            jupyter_dirs,
            "rcit-fastest",
            candidates=[{"partition": "big"}, {"partition": "sshonly", "walltime": "00:30:00"}],
        ):
            code, body = agent_call("POST", "/api/v1/profiles/rcit-fastest/estimates", {})
            assert code == 200, body
            big, sshonly = body["estimates"]
            assert sshonly == {
                "partition": "sshonly",
                "walltime": "00:30:00",
                "startsInSeconds": sshonly["startsInSeconds"],
            }
            assert sshonly["startsInSeconds"] < 60, body
            # the filler's 10-minute limit: Slurm plans big's start after it
            assert 60 < big["startsInSeconds"] <= 11 * 60, body
            code, body = agent_call("POST", "/api/v1/profiles/no-such-profile/estimates", {})
            assert code == 400 and "no cluster profile" in body["error"]["message"], body
        assert alices_jobs() == [filler]
    finally:
        on_login("scancel", filler)
