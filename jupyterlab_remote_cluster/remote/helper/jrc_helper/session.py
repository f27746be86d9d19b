"""The session: Helper, which holds the session's state, writes state.json (with the
heartbeat), reads config.json and runs the session from start to stop. Its kernels,
Dask and connectivity parts are mixins of their own modules."""

import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

from . import gpus
from .common import DASK_PRELOAD, fewer_malloc_arenas, log, stop_processes, write_private
from .connectivity import ConnectivityMixin
from .dask import DaskMixin
from .idle import IdleWatch, check_idle_config, kernel_activity, released_core_hours
from .jobqueue import WORKER_JOBS_DIR, cancel_worker_jobs, check_jobqueue, jobqueue_env, worker_jobs
from .kernels import ACTIVITY_DIR, KernelsMixin
from .kernelspecs import KernelspecsMixin
from .protocol import PROTOCOL_VERSION
from .served import ServedMixin, kernel_dask_env
from .terminals import TerminalsMixin
from .usage import UsageMeter
from .webports import WebPortsMixin
from .workers import WorkersMixin

HEARTBEAT_SECONDS = 10
STOP_GRACE = 3.0  # shutdown/SIGTERM: Slurm's KillWait may be short; be done well before it
PROXY_BASE_RE = re.compile(r"^(/[A-Za-z0-9._~%+-]+)*$")
CONNECTIVITY = ("via-login", "node-ssh", "reverse", "auto")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Helper(
    KernelsMixin,
    KernelspecsMixin,
    TerminalsMixin,
    DaskMixin,
    ConnectivityMixin,
    WorkersMixin,
    ServedMixin,
    WebPortsMixin,
):
    """One session: this process, from config.json to its stop. Its state is here; the
    kernel, Dask and connectivity methods come from the mixins and use it."""

    def __init__(self, session_dir):
        self.dir = os.path.abspath(session_dir)
        self.lock = threading.RLock()
        self.kernels = {}
        self.terminals = {}  # id -> Terminal (terminals.py)
        self.terminal_seq = 0
        self.dask_procs = []  # [scheduler, worker] Popen objects
        self.dask_env = {}  # extra env for kernels once Dask runs
        self.stop_event = threading.Event()
        self.stop_reason = None
        self.exit_code = 0
        self.server = None  # the control server (Unix socket)
        self.relay = None  # Relay (via-login, auto)
        self.runtime = None  # node-local private dir (make_runtime_dir)
        self.tls = None  # paths of the session's CA, certificate and key in it
        self.http_sockets = {}  # proxied port label -> Unix socket (the dashboard: "0")
        self.served = {}  # proxied port label -> its httpPorts entry (served.py)
        self.served_misses = {}
        self.web_bridges = {}  # TCP port -> WebPortBridge (webports.py)
        self.web_probed = {}  # (port, socket inode) -> (whether it answered HTTP, when asked)
        self.web_lock = threading.Lock()  # the scan and open_web_port, one at a time
        self.next_count = 0.0  # when served.py next asks the session's scheduler for its workers
        self.dashboards = None  # where kernels' Dask schedulers put their dashboards
        self.worker_jobs_dir = None  # where kernels' dask-jobqueue clusters record their jobs
        self.kernel_seq = 0
        self.idle = None  # IdleWatch when the profile has an idle timeout (idle.py)
        self.cpus = None  # the CPUs the batch system gave the job on this node
        self.tunnel = None  # ReverseTunnel (reverse, auto)
        self.config = {}
        self.state = {
            "version": PROTOCOL_VERSION,
            "sessionId": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "startedAt": time.time(),
            "heartbeat": time.time(),
            "status": "starting",
            "httpPorts": [],
            "kernels": {},
        }

    # --- state.json ---------------------------------------------------------------------
    def write_state(self, **changes):
        with self.lock:
            self.state.update(changes)
            self.state["heartbeat"] = time.time()
            self.state["kernels"] = {kid: {"pid": k.proc.pid, "alive": k.alive()} for kid, k in self.kernels.items()}
            live = sorted((t for t in self.terminals.values() if t.alive()), key=lambda t: t.started_at)
            self.state["terminals"] = [t.tid for t in live]
            data = json.dumps(self.state, indent=1, sort_keys=True).encode()
            try:
                write_private(os.path.join(self.dir, "state.json"), data)
            except OSError as e:  # a full or flaky shared home must not kill the kernels
                log("cannot write state.json: %s" % e)

    def fail(self, message):
        log("failed: %s" % message)
        self.write_state(status="failed", error=message)

    # --- configuration --------------------------------------------------------------------
    def check_private(self, path, what):
        st = os.stat(path)
        if st.st_uid != os.getuid():
            raise ValueError("%s %s is not owned by this user" % (what, path))
        if st.st_mode & 0o077:
            raise ValueError(
                "%s %s is accessible by other users (mode %o); it must be private (0700 dir, 0600 files)"
                % (what, path, st.st_mode & 0o777)
            )

    def load_config(self):
        self.check_private(self.dir, "session directory")
        path = os.path.join(self.dir, "config.json")
        if not os.path.exists(path):
            raise ValueError("config.json missing in %s" % self.dir)
        self.check_private(path, "config file")  # it holds the control token
        with open(path, "rb") as f:
            try:
                c = json.loads(f.read().decode("utf-8"))
            except ValueError as e:
                raise ValueError("config.json is not valid JSON: %s" % e) from e
        if not isinstance(c, dict):
            raise ValueError("config.json must be a JSON object")

        def opt(key, typ, default):
            v = c.get(key)
            if v is None:
                return default
            # (bool is an int in Python: do not take true for a thread count)
            if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
                raise ValueError("config.json: %r must be of type %s" % (key, typ.__name__))
            return v

        cfg = {}
        cfg["sessionId"] = opt("sessionId", str, "")
        cfg["token"] = opt("token", str, "")
        if len(cfg["token"]) < 16:
            raise ValueError("config.json: token missing or shorter than 16 characters")
        cfg["python"] = opt("python", str, "") or sys.executable
        cfg["workdir"] = os.path.expanduser(opt("workdir", str, "") or "~")
        if not os.path.isdir(cfg["workdir"]):
            raise ValueError("working directory %s does not exist" % cfg["workdir"])
        env = opt("kernelEnv", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("config.json: kernelEnv must map strings to strings")
        cfg["kernelEnv"] = env
        cfg["dask"] = opt("dask", bool, False)
        base = opt("proxyBase", str, "").rstrip("/")
        if not PROXY_BASE_RE.match(base):
            raise ValueError("config.json: proxyBase %r is not a URL path like /a/b" % base)
        cfg["proxyBase"] = base
        threads = opt("daskWorkerThreads", int, 0)
        if threads < 0:
            raise ValueError("config.json: daskWorkerThreads must be a positive integer")
        cfg["daskWorkerThreads"] = threads
        mode = opt("connectivity", str, "via-login")
        if mode not in CONNECTIVITY:
            raise ValueError("config.json: connectivity %r is not one of %s" % (mode, ", ".join(CONNECTIVITY)))
        cfg["connectivity"] = mode
        if not SESSION_ID_RE.match(cfg["sessionId"]):
            raise ValueError("config.json: sessionId must be 1-64 of [A-Za-z0-9_-]")
        host = opt("reverseHost", str, "") or os.environ.get("SLURM_SUBMIT_HOST", "")
        if host and not HOST_RE.match(host):
            raise ValueError("config.json: reverseHost %r is not a host name" % host)
        if mode == "reverse" and not host:
            raise ValueError(
                "connectivity reverse needs the login node's name: set reverseHost (no SLURM_SUBMIT_HOST in this job)"
            )
        cfg["reverseHost"] = host
        tls = opt("tls", dict, None)
        if not (
            isinstance(tls, dict)
            and all(isinstance(tls.get(k), str) and "-----BEGIN" in tls[k] for k in ("ca", "cert", "key"))
        ):
            raise ValueError(
                "config.json: tls must hold the session's ca, cert and key (PEM); "
                "this helper is newer than the agent that wrote it"
            )
        cfg["tls"] = tls
        # Where the relay listens (via-login, auto): the agent connects from the login
        # node. A plain SSH host gets 127.0.0.1 from the agent (it comes in by SSH).
        cfg["bindAddress"] = opt("bindAddress", str, "0.0.0.0")
        # The Dask scheduler and worker (mutual TLS): only this node needs them.
        cfg["daskHost"] = opt("daskHost", str, "127.0.0.1")
        # Multi-node: how to list the allocation's nodes and start a worker on one of them
        # (the agent's adapter writes both); the scheduler then listens for other nodes.
        workers = opt("workers", dict, None)
        if workers is not None and not all(isinstance(workers.get(k), str) and workers[k] for k in ("hosts", "launch")):
            raise ValueError("config.json: workers must hold the hosts and launch commands")
        cfg["workers"] = workers
        # dask-jobqueue preconfigured for the kernels (jobqueue.py)
        cfg["jobqueue"] = check_jobqueue(c.get("jobqueue"))
        # The job's walltime: the session's end (by this node's clock) is reported, and
        # worker jobs stop there (job-worker's --lifetime)
        walltime = opt("walltimeSeconds", int, 0)
        if walltime < 0:
            raise ValueError("config.json: walltimeSeconds must not be negative")
        cfg["idle"] = check_idle_config(c.get("idle"))
        self.config = cfg
        self.state["sessionId"] = cfg["sessionId"]
        if walltime:
            self.state["endsAt"] = self.state["startedAt"] + walltime

    # --- environment of what the session runs ---------------------------------------------
    def child_env(self, extra=None):
        env = dict(os.environ)
        # the kernels' own Dask on the session's TLS, dashboards private (served.py); a
        # profile's kernelEnv may still say otherwise, deliberately
        env.update(kernel_dask_env(self.tls, self.dashboards, self.dask_comms, self.config["proxyBase"], DASK_PRELOAD))
        if self.config.get("jobqueue"):
            env.update(jobqueue_env(self.config["jobqueue"], self.dir, self.worker_jobs_dir))
        env.update(self.config["kernelEnv"])
        if extra:
            env.update(extra)
        # Dask's scratch space of anything the session runs (a notebook's own LocalCluster
        # included) in the private runtime directory: /tmp/dask-scratch-space is shared by
        # every user of the node, and another one can take it first.
        env["DASK_TEMPORARY_DIRECTORY"] = os.path.join(self.runtime, "dask")
        env.update(self.dask_env)
        return fewer_malloc_arenas(env)

    def setup_worker_jobs(self):
        """The directory where the kernels' dask-jobqueue clusters record their jobs (in the
        0700 runtime dir: no one else can add a job to what we report)."""
        if self.config.get("jobqueue"):
            self.worker_jobs_dir = os.path.join(self.runtime, WORKER_JOBS_DIR)
            os.mkdir(self.worker_jobs_dir, 0o700)

    def scan_worker_jobs(self):
        """Report the worker jobs the kernels submitted, when that changed."""
        if self.worker_jobs_dir:
            jobs = worker_jobs(self.worker_jobs_dir)
            if jobs != self.state.get("workerJobs", []):
                self.write_state(workerJobs=jobs)

    # --- lifecycle ------------------------------------------------------------------------
    def request_stop(self, reason, code=0):
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
                self.exit_code = code
        self.stop_event.set()

    # --- idle reclaim (idle.py) -------------------------------------------------------------
    def setup_idle(self):
        if self.config.get("idle"):
            os.mkdir(os.path.join(self.runtime, ACTIVITY_DIR), 0o700)
            self.idle = IdleWatch(self.config["idle"], self.state["startedAt"])
            self.state["idle"] = self.idle.state()

    def renew_lease(self, body):
        """POST /activity: someone used the session in JupyterLab (keep: Keep running)."""
        if self.idle is None:
            return {"idle": None}
        keep = body.get("keep") is True
        with self.lock:
            self.idle.renew(time.time(), keep)
            state = self.idle.state()
        if keep:
            log("idle reclaim postponed: Keep running")
        self.write_state(idle=state)
        return {"idle": state}

    def check_idle(self, cores, gpu):
        if self.idle is None or self.stop_event.is_set():
            return
        now = time.time()
        with self.lock:
            kernels = [
                (k.started_at, kernel_activity(self.activity_file(kid))) for kid, k in self.kernels.items() if k.alive()
            ]
            verdict, state = self.idle.observe(now, kernels, cores, gpu)
        if verdict == "reclaim":
            idle_s = int(now - state["lastUse"])
            released = released_core_hours(self.cpus, self.state.get("endsAt"), now)
            log("idle for %d s: ending the session" % idle_s)
            self.write_state(idle=state, idleEnded={"idleSeconds": idle_s, "coreHoursReleased": released, "at": now})
            self.request_stop("idle for %d s" % idle_s, 0)
        elif state != self.state.get("idle"):
            self.write_state(idle=state)

    def on_end_warning(self, signum, frame):
        """The batch system warns that the walltime ends soon (Slurm --signal=B:USR1@<s>):
        reported, never fatal (SIGUSR1's default action would end the session now)."""
        log("the batch system warns that the walltime ends soon (%s)" % signal.Signals(signum).name)
        self.write_state(endWarning={"signal": signal.Signals(signum).name, "at": time.time()})

    def on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        self.request_stop("received %s (job cancelled or walltime reached)" % name, 128 + signum)

    def cleanup(self):
        # Write "stopping" first: Slurm may SIGKILL us a few seconds after SIGTERM.
        self.write_state(status="stopping", reason=self.stop_reason)
        # Relay, tunnel and sockets first: quick, and after Slurm's KillWait (SIGKILL) we
        # cannot clean up any more. The processes still running lose their sockets and
        # the session's TLS key on disk; they are stopped next.
        self.close_connectivity()
        # the worker jobs a notebook submitted (dask-jobqueue) end with the session
        cancel_worker_jobs(self.config.get("jobqueue"), dict(os.environ))
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)  # sockets, TLS files, Dask scratch
        with self.lock:
            procs = [k.proc for k in self.kernels.values()] + list(self.dask_procs)
        stop_processes(procs + self.stop_terminals(), STOP_GRACE)
        with self.lock:
            for k in self.kernels.values():
                try:
                    os.unlink(k.connection_file)  # keys of dead kernels: nothing to keep
                except OSError:
                    pass
            if (self.state.get("dask") or {}).get("status") == "running":
                self.state["dask"] = dict(self.state["dask"], status="stopped")
        self.write_state(status="stopping", reason=self.stop_reason, httpPorts=[])
        log("stopped: %s" % self.stop_reason)

    def serve(self):
        # before anything else: the warning may come at once for a short walltime
        signal.signal(signal.SIGUSR1, self.on_end_warning)
        try:
            self.load_config()
        except (OSError, ValueError) as e:
            self.fail(str(e))
            return 1
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        # A plain-host session may be started from an SSH session that goes away later.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # elastic: worker jobs may join the session's Dask ("Add workers", jobqueue.py)
        self.write_state(
            status="starting", connectivity=self.config["connectivity"], elastic=bool(self.config.get("jobqueue"))
        )
        try:
            self.setup_connectivity()
            self.setup_served()
            self.setup_worker_jobs()
            self.setup_idle()
        except (OSError, ValueError, RuntimeError) as e:
            self.fail("cannot listen (connectivity %s): %s" % (self.config["connectivity"], e))
            self.close_connectivity()
            if self.runtime:
                shutil.rmtree(self.runtime, ignore_errors=True)
            return 1
        threading.Thread(target=self.server.serve_forever, name="control", daemon=True).start()
        threading.Thread(target=self.watch_dashboards, name="dashboards", daemon=True).start()
        log("session %s ready to serve (connectivity %s)" % (self.config["sessionId"], self.config["connectivity"]))
        if self.config["dask"] and not self.stop_event.is_set():
            self.start_dask()
        if not self.stop_event.is_set():
            self.write_state(status="ready")
        # what the session's processes use on this node, at every heartbeat (usage.py)
        self.cpus = _cpus_on_node()
        meter = UsageMeter(os.getpid(), self.cpus)
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        # The main thread only waits: signal handlers run here, the servers run in threads.
        while not self.stop_event.wait(0.5):
            if time.monotonic() >= next_beat:
                self.check_dask()
                job_gpus = gpus.sample()  # (once per heartbeat, for both)
                self.write_state(usage=meter.sample(job_gpus))
                self.check_idle(meter.cores_now, gpus.busiest_percent(job_gpus))
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
        # After the stop decision, further SIGTERMs must not interrupt the cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.state["usage"] = meter.sample()  # the last figures, written by cleanup at once
        self.cleanup()
        self.server.shutdown()
        return self.exit_code


def _cpus_on_node():
    """The CPUs the batch system gave the job on this node, where it says (None: unknown)."""
    for var in ("SLURM_CPUS_ON_NODE", "NSLOTS", "PBS_NCPUS", "NCPUS", "LSB_DJOB_NUMPROC"):
        try:
            n = int(os.environ.get(var, ""))
        except ValueError:
            continue
        if n > 0:
            return n
    return None
