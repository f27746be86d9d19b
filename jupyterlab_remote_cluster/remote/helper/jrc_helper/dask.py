"""Dask: the session's scheduler and worker (the Dask part of Helper)."""

import json
import os
import subprocess
import time

from .common import DASK_PRELOAD, _int, log, open_log, stop_processes, tail

DASK_START_TIMEOUT = 60.0
DASHBOARD_LABEL = "0"  # the Dask dashboard's "port" in proxied URLs (it has no TCP port)


class DaskMixin:
    """Helper's Dask: start it (once, at session start), and notice when it dies. The
    state it uses (lock, config, runtime, tls, dask_procs, ...) is Helper's (session.py)."""

    def start_dask(self):
        """Scheduler + one worker (with its nanny), on mutual TLS with the session's CA:
        nobody without the session's certificate can connect to them (a Dask scheduler
        runs code for whoever does). Their HTTP servers are kept off TCP by the preload
        module (jrc_dask_private.py): the dashboard is served on dashboard.sock in the
        runtime dir, under the proxied prefix. Failure is recorded in state.dask, never
        fatal; there is no plaintext fallback."""
        cfg = self.config
        sched_file = os.path.join(self.dir, "dask-scheduler.json")
        prefix = "%s/%s" % (cfg["proxyBase"], DASHBOARD_LABEL)
        dash_sock = os.path.join(self.runtime, "dashboard.sock")
        tls = ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
        # One node: loopback is enough. Several, or worker jobs that may join ("Add workers"):
        # the workers on other nodes connect to the scheduler and to each other, so Dask
        # listens on the node's address (mutual TLS still refuses everyone without the
        # session's certificate).
        host = [] if cfg.get("workers") or cfg.get("jobqueue") else ["--host", cfg["daskHost"]]
        # Nothing of theirs may fall back to an unencrypted comm.
        env = self.child_env({"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"})
        self.write_state(dask={"status": "starting"})
        try:
            if not os.path.isfile(DASK_PRELOAD):
                raise RuntimeError("%s is missing: it keeps the dashboard private" % DASK_PRELOAD)
            try:
                os.unlink(sched_file)
            except FileNotFoundError:
                pass
            argv = [
                cfg["python"],
                "-m",
                "distributed.cli.dask_scheduler",
                *host,
                "--port",
                "0",
                "--protocol",
                "tls",
                *tls,
                "--preload",
                DASK_PRELOAD,
                # the dashboard is served under the proxied path, so its links work
                "--dashboard-prefix",
                prefix,
                "--scheduler-file",
                sched_file,
            ]
            sched = self._spawn_dask(argv, "dask-scheduler.log", dict(env, JRC_DASK_HTTP_SOCKET=dash_sock))
            info = self._wait_scheduler_file(sched, sched_file)
            address = info["address"]
            if not address.startswith("tls://") or not os.path.exists(dash_sock):
                raise RuntimeError(
                    "the scheduler came up at %s %s the dashboard socket"
                    % (address, "with" if os.path.exists(dash_sock) else "without")
                )
            threads = cfg["daskWorkerThreads"] or _int(os.environ.get("SLURM_CPUS_ON_NODE")) or 1
            argv = [
                cfg["python"],
                "-m",
                "distributed.cli.dask_worker",
                "--scheduler-file",
                sched_file,
                "--nthreads",
                str(threads),
                "--nworkers",
                "1",
                *host,
                "--protocol",
                "tls",
                *tls,
                "--preload",
                DASK_PRELOAD,
                "--no-dashboard",
                "--name",
                "rc-worker-0",
                "--local-directory",
                os.path.join(self.runtime, "dask-worker-0"),
                "--death-timeout",
                "60",  # exits by itself if the scheduler is gone
            ]
            self._spawn_dask(argv, "dask-worker.log", env)
            workers = [{"name": "rc-worker-0", "host": self.state["host"]}] + self.start_remote_workers(threads, env)
            path = "%s/status" % prefix
            with self.lock:
                # Client() in a notebook connects with no argument, over the session's TLS
                # (kernel_dask_env: the certificates; links to the proxied dashboard)
                self.dask_env = {"DASK_SCHEDULER_ADDRESS": address}
            self.write_state(
                dask={
                    "status": "running",
                    "schedulerAddress": address,
                    "dashboardPath": path,
                    "workerThreads": threads,
                    "workers": workers,
                    "tls": True,
                }
            )
            self.offer_http(
                DASHBOARD_LABEL, dash_sock, {"port": int(DASHBOARD_LABEL), "name": "dask-dashboard", "path": path}
            )
            log("dask scheduler %s (TLS), dashboard on %s" % (address, dash_sock))
        except Exception as e:  # noqa: BLE001 - kernels must keep working without Dask
            with self.lock:
                procs = list(self.dask_procs)
                self.dask_procs = []
            stop_processes(procs, 1.0)
            msg = "Dask did not start: %s%s" % (e, self.tls_hint())
            log(msg)
            self.withdraw_http(DASHBOARD_LABEL)
            self.write_state(dask={"status": "failed", "error": msg})

    def tls_hint(self):
        """Why Dask failed, when it is that the session's Python cannot speak TLS."""
        try:
            r = subprocess.run(
                [self.config["python"], "-c", "import ssl"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        if r.returncode == 0:
            return ""
        last = (r.stderr.decode("utf-8", "replace").strip().splitlines() or ["no ssl module"])[-1]
        return " (Dask runs only over TLS, never in the clear, and %s cannot do TLS: %s)" % (
            self.config["python"],
            last,
        )

    def _spawn_dask(self, argv, logname, env):
        logf = open_log(os.path.join(self.dir, logname))
        try:
            p = subprocess.Popen(
                argv,
                cwd=self.config["workdir"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            logf.close()
        with self.lock:
            self.dask_procs.append(p)
        return p

    def _wait_scheduler_file(self, proc, path):
        deadline = time.monotonic() + DASK_START_TIMEOUT
        while True:
            try:
                with open(path) as f:
                    info = json.load(f)
                if info.get("address"):
                    return info
            except (OSError, ValueError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(
                    "the scheduler exited with code %s; dask-scheduler.log ends with:\n%s"
                    % (proc.returncode, tail(os.path.join(self.dir, "dask-scheduler.log"), 1500))
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not write %s within %d s" % (path, DASK_START_TIMEOUT))
            if self.stop_event.is_set():
                raise RuntimeError("session stopping")
            time.sleep(0.1)

    def check_dask(self):
        """Heartbeat: notice a scheduler that died after start (the UI should say so)."""
        with self.lock:
            procs = list(self.dask_procs)
            dask = self.state.get("dask") or {}
        if dask.get("status") == "running" and procs and procs[0].poll() is not None:
            msg = "Dask scheduler exited with code %s" % procs[0].returncode
            log(msg)
            self.withdraw_http(DASHBOARD_LABEL)
            self.write_state(dask=dict(dask, status="failed", error=msg))
