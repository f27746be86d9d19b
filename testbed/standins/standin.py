"""Stand-ins for the commands of PBS Pro / OpenPBS, Torque, LSF and HTCondor on the testbed.

They are NOT those batch systems: each command reads what the real one reads (the job
script's #PBS / #BSUB lines, an HTCondor submit description), refuses what it cannot run
with the real system's error text, and prints what the real command prints (formats
copied from the recorded outputs in src/agent/__tests__/fixtures/), but every job is
submitted to the testbed's real Slurm underneath (`sbatch --parsable`), so the job script
really runs on node1/node2. See README.md for the mapping.

    standin.py SCHED COMMAND [ARGS...]      SCHED: pbs torque lsf htcondor

State comes from one `squeue` call plus a spool of our own in ~/.rc-standins/SCHED/
(the testbed has no Slurm accounting): <id>.json at submit, <id>.start and <id>.end
written by run-job on the node, <id>.deleted by the cancel command.
"""

import json
import os
import pwd
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_JOB = os.path.join(HERE, "run-job")
SERVER = "login"

# Queues of each stand-in -> Slurm partition (first = default queue).
QUEUES = {
    "pbs": [("workq", "debug"), ("bigmem", "big")],
    "torque": [("batch", "debug"), ("bigmem", "big")],
    "lsf": [("normal", "debug"), ("bigmem", "big")],
    "htcondor": [("", "debug")],
}
# How long finished jobs stay visible (PBS Pro: job history with -x; Torque: keep_completed;
# LSF: CLEAN_PERIOD; HTCondor: condor_history, always).
KEEP_FINISHED = {"pbs": 14 * 86400, "torque": 300, "lsf": 3600, "htcondor": 10**9}


class Refused(Exception):
    """The real command's error text (stderr) and exit code."""

    def __init__(self, text, code=1):
        super().__init__(text)
        self.text = text
        self.code = code


def user():
    return pwd.getpwuid(os.getuid()).pw_name


def spool(sched):
    d = os.path.join(os.path.expanduser("~"), ".rc-standins", sched)
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ctime(t):
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(t))


def hms(secs):
    secs = max(0, int(secs))
    return "%02d:%02d:%02d" % (secs // 3600, secs % 3600 // 60, secs % 60)


def slurm_seconds(s):
    """Seconds in a Slurm duration (D-HH:MM:SS, HH:MM:SS, MM:SS); None for UNLIMITED etc."""
    m = re.match(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$", (s or "").strip())
    if not m:
        return None
    d, h, mi, se = (int(x) if x else 0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + se


def partition_limit(partition):
    """The partition's MaxTime in seconds (None: unlimited), from sinfo."""
    r = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%l"], capture_output=True, text=True)
    return slurm_seconds(r.stdout.strip().splitlines()[0] if r.stdout.strip() else "")


def controller_down():
    r = subprocess.run(["squeue", "-h", "-j", "0"], capture_output=True, text=True)
    return "Unable to contact slurm controller" in r.stderr or "Socket timed out" in r.stderr


# ------------------------------------------------------------------ submit to Slurm


def submit_to_slurm(sched, job, script_text):
    """Spool the script (real schedulers copy it at submission), sbatch run-job, record the job."""
    d = spool(sched)
    token = "%d-%d" % (os.getpid(), int(time.time() * 1000))
    script = os.path.join(d, "script-%s.sh" % token)
    write_file(script, script_text)
    os.chmod(script, 0o700)
    argv = [
        "sbatch",
        "--parsable",
        "--job-name",
        job["name"],
        "--partition",
        job["partition"],
        "--output",
        job["stdout"],
        "--error",
        job["stderr"],
        "--chdir",
        job["cwd"],
        "--cpus-per-task",
        str(job["cpus"]),
        "--nodes",
        "1",
    ]
    if job.get("walltime"):
        argv += ["--time", "%d" % max(1, -(-job["walltime"] // 60))]
    if job.get("mem_mb"):
        argv += ["--mem", "%dM" % job["mem_mb"]]
    argv += [RUN_JOB, sched, script, d, job["queue"] or "-"]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip().split(";")[0].isdigit():
        os.unlink(script)
        raise Refused(r.stderr.strip().replace("sbatch: error: ", "") or "submission failed", 1)
    slurm_id = r.stdout.strip().split(";")[0]
    job.update(slurm_id=slurm_id, script=script, submitted=time.time(), owner=user())
    write_file(os.path.join(d, slurm_id + ".json"), json.dumps(job))
    return slurm_id


# ------------------------------------------------------------------ job states


def squeue_all():
    """Slurm's view of this user's jobs: {slurm id: {state, node, reason, left, used}}."""
    r = subprocess.run(
        ["squeue", "-h", "--states=all", "-u", user(), "-o", "%i|%T|%N|%r|%L|%M"], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise Refused(r.stderr.strip(), 2)
    out = {}
    for line in r.stdout.splitlines():
        f = line.split("|")
        if len(f) == 6:
            out[f[0]] = {
                "state": f[1],
                "node": f[2],
                "reason": f[3],
                "left": slurm_seconds(f[4]),
                "used": slurm_seconds(f[5]) or 0,
            }
    return out


def job_view(sched, slurm_id, live):
    """What the stand-in knows about one job, or None if it never had it (or forgot it).

    phase: queued | running | finished; plus node, left, used, exit info."""
    d = spool(sched)
    job = read_json(os.path.join(d, slurm_id + ".json"))
    if job is None:
        return None
    start = read_text(os.path.join(d, slurm_id + ".start"))
    end = read_text(os.path.join(d, slurm_id + ".end"))
    deleted = os.path.exists(os.path.join(d, slurm_id + ".deleted"))
    sq = live.get(slurm_id)
    v = dict(job)
    v["deleted"] = deleted
    if start:
        host, _, t = start.partition(" ")
        v["node"], v["start"] = host, float(t or 0)
    if end:
        code, _, t = end.partition(" ")
        v["exit"], v["end"] = int(code), float(t or time.time())
    state = sq["state"] if sq else None
    if state in ("PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED") and not end:
        v["phase"] = "queued"
        v["reason"] = sq["reason"]
    elif state in ("RUNNING", "COMPLETING") and not end:
        v["phase"] = "running"
        v["node"] = v.get("node") or sq["node"].split(",")[0]
        v["left"], v["used"] = sq["left"], sq["used"]
        v.setdefault("start", time.time() - sq["used"])
    else:
        v["phase"] = "finished"
        v.setdefault("end", v.get("start") or job["submitted"])
        if "exit" not in v and state in ("TIMEOUT",):
            v["exit"] = 128 + 15
        # killed hard (SIGKILL at the walltime or after qdel) before run-job could write .end
        v["timeout"] = state == "TIMEOUT" or bool(
            job.get("walltime")
            and "start" in v
            and "exit" in v
            and v["exit"] > 128
            and not deleted
            and v["end"] - v["start"] >= job["walltime"] - 2
        )
        if time.time() - v["end"] > KEEP_FINISHED[sched]:
            return None
    return v


def views(sched, ids):
    live = squeue_all()
    return {i: job_view(sched, i, live) for i in ids}


def my_ids(sched):
    d = spool(sched)
    return sorted((n[:-5] for n in os.listdir(d) if re.match(r"^\d+\.json$", n)), key=int)


def cancel_slurm(sched, slurm_id):
    write_file(os.path.join(spool(sched), slurm_id + ".deleted"), str(time.time()))
    subprocess.run(["scancel", slurm_id], capture_output=True, text=True)


# ================================================================== PBS Pro / Torque


def pbs_directives(text):
    """#PBS options up to the first command line (qsub stops there)."""
    opts = []
    for line in text.splitlines()[1:] if text.startswith("#!") else text.splitlines():
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        m = re.match(r"^#PBS\s+(.*)$", s)
        if m:
            opts += shlex.split(m.group(1))
    return opts


def pbs_memory_mb(v):
    m = re.match(r"^(\d+)([kmgt]?)b?$", v.strip().lower())
    if not m:
        raise Refused("qsub: Illegal attribute or resource value Resource_List.mem", 1)
    n = int(m.group(1))
    return {"k": max(1, n // 1024), "": max(1, n // (1024 * 1024)), "m": n, "g": n * 1024, "t": n * 1024 * 1024}[
        m.group(2)
    ]


def pbs_duration(v, flavour):
    parts = v.split(":")
    if not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise Refused(
            "qsub: Illegal attribute or resource value Resource_List.walltime"
            if flavour == "pbs"
            else "qsub: submit error (Illegal attribute or resource value MSG=illegal walltime value)",
            1,
        )
    secs = 0
    for p in parts:
        secs = secs * 60 + int(p)
    return secs


# The one-node request of each flavour: its -l key, what it names, and the refusal (with
# qsub's exit code) for more than one node.
NODE_SPEC = {
    "pbs": {
        "key": "select",
        "fields": {"ncpus": "cpus", "mem": "mem", "ngpus": "gpus"},
        "too_many": ("qsub: Job exceeds queue resource limits", 188),
    },
    "torque": {
        "key": "nodes",
        "fields": {"ppn": "cpus", "gpus": "gpus"},
        "too_many": (
            "qsub: submit error (Job exceeds queue resource limits MSG=cannot satisfy queue max nodes requirement)",
            1,
        ),
    },
}


def pbs_qsub(flavour, args):
    if not args or args[-1].startswith("-"):
        raise Refused("usage: qsub [-a date_time] ... [script | -- command [arg1 ...]]", 2)
    path = args[-1]
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise Refused("qsub: script file:: No such file or directory", 2) from None
    opts = pbs_directives(text) + args[:-1]
    queues = dict(QUEUES[flavour])
    job = {
        "name": os.path.basename(path)[:15],
        "queue": QUEUES[flavour][0][0],
        "cpus": 1,
        "mem_mb": None,
        "walltime": None,
        "cwd": os.path.expanduser("~"),
        "account": None,
        "submit_args": " ".join(args),
    }
    home = os.path.expanduser("~")
    job["stdout"] = job["stderr"] = None
    i = 0
    while i < len(opts):
        o = opts[i]
        val = opts[i + 1] if i + 1 < len(opts) else ""
        i += 2
        if o == "-N":
            job["name"] = val
        elif o == "-o":
            job["stdout"] = val.split(":", 1)[-1]
        elif o == "-e":
            job["stderr"] = val.split(":", 1)[-1]
        elif o == "-q":
            job["queue"] = val
        elif o == "-A":
            job["account"] = val
        elif o in ("-j", "-S", "-m", "-M", "-r", "-V"):
            if o == "-V":
                i -= 1
        elif o == "-l":
            for item in val.split(","):
                key, _, v = item.partition("=")
                if key == "walltime":
                    job["walltime"] = pbs_duration(v, flavour)
                elif key == "mem":
                    job["mem_mb"] = pbs_memory_mb(v)
                elif key == NODE_SPEC[flavour]["key"]:
                    # PBS Pro: select=1:ncpus=N:mem=M:ngpus=G; Torque: nodes=1:ppn=N:gpus=G
                    spec = NODE_SPEC[flavour]
                    chunks = v.split(":")
                    if chunks[0] != "1":
                        raise Refused(*spec["too_many"])
                    for c in chunks[1:]:
                        k, _, x = c.partition("=")
                        field = spec["fields"].get(k)
                        if field == "cpus":
                            job["cpus"] = int(x)
                        elif field == "mem":
                            job["mem_mb"] = pbs_memory_mb(x)
                        elif field == "gpus" and int(x) > 0:
                            job["gpus"] = int(x)
        else:
            raise Refused("qsub: invalid option -- '%s'" % o.lstrip("-"), 2)
    if job["queue"] not in queues:
        raise Refused(
            "qsub: Unknown queue" if flavour == "pbs" else "qsub: submit error (Unknown queue MSG=cannot locate queue)",
            170 if flavour == "pbs" else 1,
        )
    job["partition"] = queues[job["queue"]]
    limit = partition_limit(job["partition"])
    if job["walltime"] and limit and job["walltime"] > limit:
        raise Refused(
            "qsub: Job exceeds queue resource limits"
            if flavour == "pbs"
            else "qsub: submit error (Job exceeds queue resource limits MSG=cannot satisfy queue max walltime requirement)",
            188 if flavour == "pbs" else 1,
        )
    # PBS writes <name>.o<seq> into the submission directory when -o/-e are not given
    job["stdout"] = job["stdout"] or os.path.join(os.getcwd(), job["name"] + ".o%j")
    job["stderr"] = job["stderr"] or os.path.join(os.getcwd(), job["name"] + ".e%j")
    job["cwd"] = home  # PBS jobs start in $HOME
    job["workdir"] = os.getcwd()
    slurm_id = submit_to_slurm(flavour, job, text)
    print("%s.%s" % (slurm_id, SERVER))


def pbs_id(arg):
    """`123`, `123.login` -> `123`, else None."""
    m = re.match(r"^(\d+)(\.[A-Za-z0-9._-]+)?$", arg)
    return m.group(1) if m else None


PBS_STATE = {"queued": "Q", "running": "R"}


def pbs_exit_status(flavour, v):
    if v.get("timeout"):
        return -29 if flavour == "pbs" else -11
    code = v.get("exit")
    if code is None:
        return 271 if v["deleted"] else -3
    return 256 + (code - 128) if code > 128 else code


def pbs_attrs(flavour, sid, v):
    """A job's attributes as qstat -f shows them (nested dicts for PBS Pro JSON)."""
    now = time.time()
    state = PBS_STATE.get(v["phase"]) or ("F" if flavour == "pbs" else "C")
    if state == "R" and v["deleted"]:
        state = "E"  # qdel'd, still exiting
    wall = v.get("walltime")
    owner = "%s@%s" % (v["owner"], SERVER)
    a = {"Job_Name": v["name"], "Job_Owner": owner}
    used = None
    if v["phase"] == "running":
        used = v.get("used") or (now - v["start"])
    elif v["phase"] == "finished" and "start" in v:
        used = v["end"] - v["start"]
    if used is not None:
        a["resources_used"] = {"cput": hms(0), "mem": "0kb", "ncpus": v["cpus"], "walltime": hms(used)}
    a.update(
        {
            "job_state": state,
            "queue": v["queue"],
            "server": SERVER,
            "Checkpoint": "u",
            "ctime": ctime(v["submitted"]),
            "Error_Path": "%s:%s" % (SERVER, v["stderr"]),
        }
    )
    if v.get("node") and v["phase"] != "queued":
        a["exec_host"] = (
            "%s/0*%d" % (v["node"], v["cpus"]) if flavour == "pbs" else "%s/0-%d" % (v["node"], v["cpus"] - 1)
        )
        if flavour == "pbs":
            a["exec_vnode"] = "(%s:ncpus=%d)" % (v["node"], v["cpus"])
    a.update(
        {
            "Hold_Types": "n",
            "Join_Path": "n",
            "Keep_Files": "n",
            "Mail_Points": "a",
            "mtime": ctime(v.get("end") or v.get("start") or v["submitted"]),
            "Output_Path": "%s:%s" % (SERVER, v["stdout"]),
            "Priority": 0,
            "qtime": ctime(v["submitted"]),
            "Rerunable": "True",
        }
    )
    rl = {}
    if flavour == "pbs":
        rl["ncpus"] = v["cpus"]
        if v.get("mem_mb"):
            rl["mem"] = "%dmb" % v["mem_mb"]
        rl["nodect"] = 1
        rl["place"] = "pack"
        rl["select"] = "1:ncpus=%d%s" % (v["cpus"], ":mem=%dmb" % v["mem_mb"] if v.get("mem_mb") else "")
    else:
        if v.get("mem_mb"):
            rl["mem"] = "%dmb" % v["mem_mb"]
        rl["nodect"] = 1
        rl["nodes"] = "1:ppn=%d" % v["cpus"]
    if wall:
        rl["walltime"] = hms(wall)
    a["Resource_List"] = rl
    if v["phase"] != "queued" and "start" in v:
        a["stime" if flavour == "pbs" else "start_time"] = ctime(v["start"])
    if v["phase"] == "running" and flavour == "torque" and wall:
        a["Walltime.Remaining"] = int(v["left"] if v.get("left") is not None else wall - used)
    a["Variable_List"] = {
        "PBS_O_HOME": os.path.expanduser("~"),
        "PBS_O_LOGNAME": v["owner"],
        "PBS_O_HOST": SERVER,
        "PBS_O_WORKDIR": v.get("workdir", ""),
        "PBS_O_QUEUE": v["queue"],
        "PBS_O_SYSTEM": "Linux",
    }
    if v["phase"] == "queued":
        reason = v.get("reason") or "None"
        never = reason in ("PartitionTimeLimit", "PartitionConfig", "BadConstraints", "PartitionNodeLimit")
        a["comment"] = ("Can Never Run: " if never else "Not Running: ") + {
            "Resources": "Insufficient amount of resource: ncpus",
            "Priority": "Job would conflict with reservation or top job",
            "None": "Job is waiting to be scheduled",
        }.get(reason, reason)
    elif v["phase"] == "running":
        a["comment"] = "Job run at %s on (%s:ncpus=%d)" % (ctime(v["start"])[:16], v["node"], v["cpus"])
    else:
        status = pbs_exit_status(flavour, v)
        a["comment"] = "Job run at %s and finished" % ctime(v.get("start", v["submitted"]))[:16]
        a["Exit_status" if flavour == "pbs" else "exit_status"] = status
        if flavour == "torque":
            a["comp_time"] = ctime(v["end"])
    a["Submit_arguments" if flavour == "pbs" else "submit_args"] = v.get("submit_args", "")
    if v.get("account"):
        a["Account_Name"] = v["account"]
    return a


def pbs_qstat(flavour, args):
    full = "-f" in args
    as_json = "-F" in args and args[args.index("-F") + 1 : args.index("-F") + 2] == ["json"]
    history = "-x" in args or "-H" in args
    ids = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-F":
            skip = True
            continue
        if a.startswith("-"):
            if a not in ("-f", "-x", "-H", "-1", "-u"):
                raise Refused("qstat: invalid option -- '%s'" % a.lstrip("-"), 2)
            skip = a == "-u"
            continue
        ids.append(a)
    if controller_down():
        raise Refused("Connection refused\nqstat: cannot connect to server %s (errno=111)" % SERVER, 2)
    errors = []
    rows = []  # (display id, view)
    wanted = ids or [i for i in my_ids(flavour)]
    vs = views(flavour, [pbs_id(i) or "x" for i in wanted])
    for arg in wanted:
        sid = pbs_id(arg)
        v = vs.get(sid) if sid else None
        full_id = "%s.%s" % (sid, SERVER) if sid else arg
        if v is None:
            if ids:
                errors.append(
                    "qstat: Unknown Job Id %s" % arg if flavour == "pbs" else "qstat: Unknown Job Id Error %s" % full_id
                )
            continue
        if v["phase"] == "finished" and flavour == "pbs" and not history:
            if ids:
                errors.append("qstat: %s Job has finished, use -x or -H to obtain historical job information" % full_id)
            continue
        rows.append((full_id, sid, v))
    code = 0
    if errors:
        code = 153 if any("Unknown" in e for e in errors) else 35
    if full and as_json:
        doc = {
            "timestamp": int(time.time()),
            "pbs_version": "22.05.11 (stand-in)",
            "pbs_server": SERVER,
            "Jobs": {fid: pbs_attrs(flavour, sid, v) for fid, sid, v in rows},
        }
        if rows or not errors:
            print(json.dumps(doc, indent=4))
    elif full:
        for fid, sid, v in rows:
            print("Job Id: %s" % fid)
            for k, val in pbs_attrs(flavour, sid, v).items():
                if k == "Variable_List":
                    print("    Variable_List = %s" % ",".join("%s=%s" % kv for kv in val.items()))
                elif isinstance(val, dict):
                    for k2, v2 in val.items():
                        print("    %s.%s = %s" % (k, k2, v2))
                else:
                    print("    %s = %s" % (k, val))
            print()
    elif rows:
        print("Job id            Name             User              Time Use S Queue")
        print("----------------  ---------------- ----------------  -------- - -----")
        for fid, sid, v in rows:
            a = pbs_attrs(flavour, sid, v)
            print(
                "%-17s %-16s %-17s %8s %s %s"
                % (
                    fid[:17],
                    v["name"][:16],
                    v["owner"][:17],
                    a.get("resources_used", {}).get("cput", "0"),
                    a["job_state"],
                    v["queue"],
                )
            )
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
    return code


def pbs_qdel(flavour, args):
    ids = [a for a in args if not a.startswith("-")]
    if not ids:
        raise Refused("usage: qdel [-W force|suppress_email=X] [-x] job_identifier...", 2)
    vs = views(flavour, [pbs_id(i) or "x" for i in ids])
    code = 0
    for arg in ids:
        sid = pbs_id(arg)
        v = vs.get(sid) if sid else None
        if v is None:
            sys.stderr.write("qdel: Unknown Job Id %s\n" % arg)
            code = 153
        elif v["phase"] == "finished":
            sys.stderr.write(
                "qdel: Job has finished %s.%s\n" % (sid, SERVER)
                if flavour == "pbs"
                else "qdel: Invalid state for job - COMPLETE %s.%s\n" % (sid, SERVER)
            )
            code = 35
        else:
            cancel_slurm(flavour, sid)
    return code


# ================================================================== LSF

LSF_RUNLIMIT_RE = re.compile(r"^(?:(\d+):)?(\d+)$")


def lsf_memory_mb(v):
    m = re.match(r"^(\d+)([KMGT]?)B?$", v.strip().upper())
    if not m:
        raise Refused("%s: Bad argument for memory limit. Job not submitted." % v, 255)
    n = int(m.group(1))
    return {"K": max(1, n // 1024), "": n, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[m.group(2)]


def lsf_bsub(args):
    if args:
        raise Refused("bsub: only `bsub < script` is supported by this stand-in", 255)
    text = sys.stdin.read()
    opts = []
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"^#BSUB\s+(.*)$", s)
        if m:
            opts += shlex.split(m.group(1))
    job = {
        "name": "NONAME",
        "queue": None,
        "cpus": 1,
        "mem_mb": None,
        "walltime": None,
        "cwd": os.getcwd(),
        "account": None,
        "stdout": None,
        "stderr": None,
        "workdir": os.getcwd(),
    }
    i = 0
    while i < len(opts):
        o, val = opts[i], opts[i + 1] if i + 1 < len(opts) else ""
        i += 2
        if o == "-J":
            job["name"] = val
        elif o in ("-o", "-oo"):
            job["stdout"] = val
        elif o in ("-e", "-eo"):
            job["stderr"] = val
        elif o == "-cwd":
            job["cwd"] = val
        elif o == "-q":
            job["queue"] = val
        elif o == "-P":
            job["account"] = val
        elif o == "-W":
            m = LSF_RUNLIMIT_RE.match(val)
            if not m:
                raise Refused("%s: Bad RUNLIMIT specification. Job not submitted." % val, 255)
            job["walltime"] = (int(m.group(1) or 0) * 60 + int(m.group(2))) * 60
        elif o == "-n":
            job["cpus"] = int(val)
        elif o == "-M":
            job["mem_mb"] = lsf_memory_mb(val)
        elif o == "-R":
            m = re.search(r"rusage\[mem=([0-9A-Za-z]+)\]", val)
            if m:
                job["mem_mb"] = lsf_memory_mb(m.group(1))
        elif o == "-gpu":
            job["gpus"] = val
        elif o in ("-x", "-B", "-N", "-r"):
            i -= 1
        else:
            raise Refused("%s: Illegal option. Job not submitted." % o, 255)
    queues = dict(QUEUES["lsf"])
    default = job["queue"] is None
    job["queue"] = job["queue"] or QUEUES["lsf"][0][0]
    if job["queue"] not in queues:
        raise Refused("%s: No such queue. Job not submitted." % job["queue"], 255)
    job["partition"] = queues[job["queue"]]
    limit = partition_limit(job["partition"])
    if job["walltime"] and limit and job["walltime"] > limit:
        raise Refused("RUNLIMIT: Cannot exceed queue's hard limit(s). Job not submitted.", 255)
    if controller_down():
        raise Refused("LSF is down. Please wait ...\nbsub: Cannot connect to LSF. Job not submitted.", 255)
    job["stdout"] = job["stdout"] or "/dev/null"
    job["stderr"] = job["stderr"] or job["stdout"]
    slurm_id = submit_to_slurm("lsf", job, text)
    print("Job <%s> is submitted to %squeue <%s>." % (slurm_id, "default " if default else "", job["queue"]))


LSF_PEND = {
    "None": "New job is waiting for scheduling;",
    "Priority": "Job's requirements for reserving resource are not satisfied;",
    "Resources": "Not enough job slot(s);",
    "PartitionTimeLimit": "The job's run limit exceeds the queue's;",
}


def lsf_fields(sched_view, sid):
    v = sched_view
    f = {
        "jobid": sid,
        "stat": "",
        "exec_host": "",
        "time_left": "",
        "exit_code": "",
        "exit_reason": "",
        "pend_reason": "",
        "job_name": v["name"],
        "queue": v["queue"],
        "user": v["owner"],
    }
    if v["phase"] == "queued":
        f["stat"] = "PEND"
        f["pend_reason"] = LSF_PEND.get(v.get("reason") or "None", (v.get("reason") or "") + ";")
    else:
        if v.get("node"):
            f["exec_host"] = v["node"] if v["cpus"] == 1 else "%d*%s" % (v["cpus"], v["node"])
        if v["phase"] == "running":
            f["stat"] = "RUN"
            left = v.get("left")
            if v.get("walltime") and left is not None:
                f["time_left"] = "%d:%02d L" % (left // 3600, left % 3600 // 60)
        else:
            code = v.get("exit")
            if code == 0 and not v["deleted"]:
                f["stat"] = "DONE"
            else:
                f["stat"] = "EXIT"
                f["exit_code"] = "" if code is None else str(code)
                if v["deleted"]:
                    f["exit_reason"] = "TERM_OWNER: job killed by owner"
                elif v.get("timeout"):
                    f["exit_reason"] = "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    return f


def lsf_bjobs(args):
    fields = None
    as_json = False
    noheader = False
    delim = " "
    ids = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-o":
            spec = args[i + 1]
            i += 2
            m = re.search(r"delimiter='(.)'", spec)
            if m:
                delim = m.group(1)
                spec = spec[: m.start()]
            fields = spec.split()
            continue
        if a == "-json":
            as_json = True
        elif a == "-noheader":
            noheader = True
        elif a in ("-a", "-w"):
            pass
        elif a.startswith("-"):
            raise Refused("%s: Illegal option.\nUsage: bjobs [-h] [-V] ..." % a, 255)
        else:
            ids.append(a)
        i += 1
    if controller_down():
        raise Refused("LSF is down. Please wait ...", 255)
    fields = fields or ["jobid", "user", "stat", "queue", "exec_host", "job_name"]
    wanted = ids or my_ids("lsf")
    vs = views("lsf", [x if x.isdigit() else "x" for x in wanted])
    records, errors = [], []
    for arg in wanted:
        v = vs.get(arg)
        if v is None:
            if ids:
                errors.append("Job <%s> is not found" % arg)
            continue
        if not ids and v["phase"] == "finished":
            continue  # bjobs without ids: unfinished jobs only
        f = lsf_fields(v, arg)
        records.append([(name, f.get(name.lower(), "-")) for name in fields])
    if as_json:
        recs = [{k.upper(): val for k, val in r} for r in records]
        recs += [{"ERROR": e} for e in errors]
        doc = {"COMMAND": "bjobs", "JOBS": len(recs), "RECORDS": recs}
        print(json.dumps(doc, indent=2))
        return 0
    if records and not noheader:
        print(delim.join(n.upper() for n in fields))
    for r in records:
        print(delim.join(val or "-" for _, val in r))
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
    if not records and not ids:
        print("No unfinished job found")
    return 0 if records or not errors else 255


def lsf_bkill(args):
    ids = [a for a in args if not a.startswith("-")]
    vs = views("lsf", [x if x.isdigit() else "x" for x in ids])
    code = 0
    for arg in ids:
        v = vs.get(arg)
        if v is None:
            sys.stderr.write("Job <%s>: No matching job found\n" % arg)
            code = 255
        elif v["phase"] == "finished":
            sys.stderr.write("Job <%s>: Job has already finished\n" % arg)
            code = 255
        else:
            cancel_slurm("lsf", arg)
            print("Job <%s> is being terminated" % arg)
    return code


# ================================================================== HTCondor


def classad_ok(expr):
    """A crude ClassAd syntax check: balanced brackets and quotes, no dangling operator."""
    depth = 0
    in_str = False
    for ch in expr:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch in "([{":
            depth += 1
        elif not in_str and ch in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not in_str and not re.search(r"(&&|\|\||[<>=!+\-*/])\s*$", expr) and expr.strip() != ""


def condor_submit(args):
    appended = []
    files = []
    i = 0
    while i < len(args):
        if args[i] == "-append":
            appended.append(args[i + 1])
            i += 2
            continue
        files.append(args[i])
        i += 1
    text = sys.stdin.read() if files in ([], ["-"]) else open(files[0]).read()
    cmds = {}
    queued = 0
    lines = text.splitlines()
    # -append commands come right before the queue statement
    qline = next((n for n, l in enumerate(lines) if re.match(r"^\s*queue\b", l, re.I)), len(lines))
    lines = lines[:qline] + appended + lines[qline:]
    print("Submitting job(s)", end="")
    sys.stdout.flush()
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if re.match(r"^queue\b", s, re.I):
            rest = s[5:].strip()
            queued += int(rest) if rest.isdigit() else 1
            continue
        m = re.match(r"^(\+?[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$", s)
        if not m:
            print()
            raise Refused(
                "\nERROR: on Line %d of submit file: \nSubmit file line: '%s' is not a valid submit command\n" % (n, s),
                1,
            )
        key, val = m.group(1).lower(), m.group(2).strip()
        if key.startswith("+") or key in (
            "requirements",
            "rank",
            "periodic_remove",
            "periodic_hold",
            "request_cpus",
            "request_memory",
            "request_gpus",
        ):
            if not classad_ok(val):
                print()
                raise Refused(
                    "\nERROR: Parse error in expression: \n\t%s = %s\n\t^^^\n\nError in submit file\n"
                    % (m.group(1), val),
                    1,
                )
        cmds[key] = val
    if queued != 1:
        print()
        raise Refused("\nERROR: this stand-in queues exactly one job per submission\n", 1)
    exe = cmds.get("executable")
    if not exe or not os.path.exists(exe):
        print()
        raise Refused("\nERROR: Executable file %s does not exist\n" % exe, 1)
    if cmds.get("universe", "vanilla").lower() != "vanilla":
        print()
        raise Refused("\nERROR: Invalid Universe %s\n" % cmds["universe"], 1)
    job = {
        "name": cmds.get("batch_name", os.path.basename(exe)),
        "queue": "",
        "partition": QUEUES["htcondor"][0][1],
        "cwd": cmds.get("initialdir", os.getcwd()),
        "workdir": os.getcwd(),
        "account": cmds.get("accounting_group"),
    }
    job["stdout"] = cmds.get("output", "/dev/null")
    job["stderr"] = cmds.get("error", "/dev/null")

    def number(key, default):
        v = cmds.get(key)
        if v is None:
            return default
        if not re.match(r"^\d+$", v):
            raise Refused("\nERROR: %s = %s: this stand-in only takes plain numbers\n" % (key, v), 1)
        return int(v)

    job["cpus"] = number("request_cpus", 1)
    job["mem_mb"] = number("request_memory", 0) or None
    job["gpus"] = number("request_gpus", 0)
    job["walltime"] = number("+maxruntime", 0) or None
    with open(exe) as f:
        script = f.read()
    try:
        cluster = submit_to_slurm("htcondor", job, script)
    except Refused as e:
        print()
        raise Refused("\nERROR: Failed to queue job (the testbed's Slurm refused it: %s)\n" % e.text, 1) from e
    print(".\n1 job(s) submitted to cluster %s." % cluster)


def condor_ad(v, cluster):
    now = int(time.time())
    ad = {
        "ClusterId": int(cluster),
        "ProcId": 0,
        "Owner": v["owner"],
        "JobBatchName": v["name"],
        "Iwd": v["cwd"],
        "Out": v["stdout"],
        "Err": v["stderr"],
        "RequestCpus": v["cpus"],
        "ServerTime": now,
        "QDate": int(v["submitted"]),
    }
    if v.get("walltime"):
        ad["MaxRuntime"] = v["walltime"]
    if v["phase"] == "queued":
        ad["JobStatus"] = 1
        if v.get("reason") not in (None, "None", "Priority"):
            ad["LastRejMatchReason"] = "no match found (%s)" % v["reason"]
    elif v["phase"] == "running" and v["deleted"]:
        ad["JobStatus"] = 3  # condor_rm'd: shown as X until the job has left the queue
        ad["RemoveReason"] = "via condor_rm (by user %s)" % v["owner"]
    elif v["phase"] == "running":
        ad["JobStatus"] = 2
        ad["RemoteHost"] = "slot1@%s" % v["node"]
        ad["JobCurrentStartDate"] = int(v["start"])
    else:
        ad["CompletionDate"] = int(v["end"])
        if v["deleted"]:
            ad["JobStatus"] = 3
            ad["RemoveReason"] = "via condor_rm (by user %s)" % v["owner"]
        elif v.get("timeout"):
            ad["JobStatus"] = 3
            ad["RemoveReason"] = (
                "The job attribute PeriodicRemove expression '(JobStatus == 2) && (time() - JobCurrentStartDate > %d)' evaluated to TRUE"
                % v["walltime"]
            )
        else:
            ad["JobStatus"] = 4
            code = v.get("exit")
            if code is not None and code > 128:
                ad["ExitBySignal"] = True
                ad["ExitSignal"] = code - 128
            else:
                ad["ExitBySignal"] = False
                ad["ExitCode"] = code if code is not None else 0
    return ad


def condor_ids(args):
    ids, attrs, constraint, limit = [], None, None, None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-attributes", "-af"):
            attrs = args[i + 1].split(",")
            i += 2
            continue
        if a == "-constraint":
            constraint = args[i + 1]
            i += 2
            continue
        if a == "-limit":
            limit = int(args[i + 1])
            i += 2
            continue
        if a in ("-json", "-long", "-nobatch", "-allusers"):
            i += 1
            continue
        if a.startswith("-"):
            raise Refused("Error: unknown argument %s" % a, 1)
        ids.append(a)
        i += 1
    if constraint:
        ids += ["%s.%s" % m for m in re.findall(r"ClusterId\s*==\s*(\d+)\s*&&\s*ProcId\s*==\s*(\d+)", constraint)]
    return ids, attrs, limit


def print_ads(ads, attrs):
    if not ads:
        return
    out = [{k: ad[k] for k in (attrs or ad.keys()) if k in ad} for ad in ads]
    print(json.dumps(out, indent=2))


def condor_q_or_history(args, history):
    if controller_down():
        raise Refused(
            "\n-- Failed to fetch ads from: <198.18.1.2:9618> : %s\nCEDAR:6001:Failed to connect to <198.18.1.2:9618>"
            % SERVER,
            1,
        )
    ids, attrs, limit = condor_ids(args)
    wanted = ids or ["%s.0" % c for c in my_ids("htcondor")]
    clusters = [w.split(".")[0] for w in wanted]
    vs = views("htcondor", [c if c.isdigit() else "x" for c in clusters])
    ads = []
    for w, c in zip(wanted, clusters):
        v = vs.get(c)
        if v is None or not w.endswith(".0") and "." in w:
            continue
        if (v["phase"] == "finished") == history:
            ads.append(condor_ad(v, c))
    if limit is not None:
        ads = ads[:limit]
    if "-json" in args:
        print_ads(ads, attrs)
    else:
        for ad in ads:
            print("%d.0 %s %s" % (ad["ClusterId"], ad["Owner"], "IRXCH"[ad["JobStatus"] - 1]))
    return 0


def condor_rm(args):
    ids = [a for a in args if not a.startswith("-")]
    vs = views("htcondor", [i.split(".")[0] if i.split(".")[0].isdigit() else "x" for i in ids])
    code = 0
    for arg in ids:
        c = arg.split(".")[0]
        v = vs.get(c)
        if v is None or v["phase"] == "finished":
            sys.stderr.write("Couldn't find/remove all jobs matching constraint (ClusterId == %s && ProcId == 0)\n" % c)
            code = 1
        else:
            cancel_slurm("htcondor", c)
            print(
                "Job %s.0 marked for removal" % c
                if "." in arg
                else "All jobs in cluster %s have been marked for removal" % c
            )
    return code


# ================================================================== main

COMMANDS = {
    "pbs": {
        "qsub": lambda a: pbs_qsub("pbs", a),
        "qstat": lambda a: pbs_qstat("pbs", a),
        "qdel": lambda a: pbs_qdel("pbs", a),
    },
    "torque": {
        "qsub": lambda a: pbs_qsub("torque", a),
        "qstat": lambda a: pbs_qstat("torque", a),
        "qdel": lambda a: pbs_qdel("torque", a),
    },
    "lsf": {"bsub": lsf_bsub, "bjobs": lsf_bjobs, "bkill": lsf_bkill},
    "htcondor": {
        "condor_submit": condor_submit,
        "condor_q": lambda a: condor_q_or_history(a, False),
        "condor_history": lambda a: condor_q_or_history(a, True),
        "condor_rm": condor_rm,
    },
}


def main(argv):
    if len(argv) < 2 or argv[0] not in COMMANDS or argv[1] not in COMMANDS[argv[0]]:
        sys.stderr.write("usage: standin.py {%s} COMMAND ARGS...\n" % ",".join(COMMANDS))
        return 2
    try:
        return COMMANDS[argv[0]][argv[1]](argv[2:]) or 0
    except Refused as e:
        sys.stdout.flush()
        sys.stderr.write(e.text.rstrip("\n") + "\n")
        return e.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
