"""The kernelspecs of the job's environment (R, bash, other Pythons...): listed by the
session's own Python with jupyter_client, as `jupyter kernelspec list` would, and started
by name (the kernelspec part of Helper)."""

import json
import os
import re
import subprocess
import threading
import time

from .common import ApiError, log

# The spec that names ipykernel in the session's Python is the session's default kernel:
# it runs through our launcher (jrc_kernel.py, with its IOPub keeper), not its own argv.
DEFAULT_SPEC = "python3"
SPEC_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LIST_TIMEOUT = 30.0
LIST_TTL = 60.0  # a kernel installed during the job shows within a minute
# Run by the session's Python: what `jupyter kernelspec list --json` answers, without
# needing the `jupyter` command on PATH.
LIST_SCRIPT = (
    "import json\n"
    "from jupyter_client.kernelspec import KernelSpecManager\n"
    "print(json.dumps(KernelSpecManager().get_all_specs()))\n"
)
INTERRUPT_MODES = ("signal", "message")


class KernelspecsMixin:
    """Helper's kernelspec requests. Uses Helper's config and child_env (session.py)."""

    _specs = None
    _specs_at = 0.0
    _specs_lock = threading.Lock()

    def list_kernelspecs(self):
        """{name: {spec, resource_dir}} of the job's environment, cached for LIST_TTL."""
        with self._specs_lock:
            if self._specs is not None and time.monotonic() - self._specs_at < LIST_TTL:
                return self._specs
            python = self.config["python"]
            try:
                out = subprocess.run(
                    [python, "-c", LIST_SCRIPT],
                    capture_output=True,
                    timeout=LIST_TIMEOUT,
                    env=self.child_env(),
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                raise ApiError(
                    502, "kernelspecs-failed", "cannot list the kernelspecs with %s: %s" % (python, e)
                ) from e
            if out.returncode != 0:
                err = out.stderr.decode("utf-8", "replace").strip().splitlines()
                raise ApiError(
                    502,
                    "kernelspecs-failed",
                    "%s could not list its kernelspecs: %s" % (python, err[-1] if err else "exit %d" % out.returncode),
                )
            try:
                specs = json.loads(out.stdout.decode("utf-8"))
            except ValueError as e:
                raise ApiError(502, "kernelspecs-failed", "unreadable kernelspec list: %s" % e) from e
            self._specs = {n: v for n, v in specs.items() if SPEC_NAME_RE.match(n) and _valid(v)}
            self._specs_at = time.monotonic()
            log("kernelspecs: %s" % ", ".join(sorted(self._specs)))
            return self._specs

    def kernelspecs(self):
        """GET /kernelspecs: what the session can start, the default first."""
        specs = self.list_kernelspecs()
        names = sorted(specs, key=lambda n: (n != DEFAULT_SPEC, n))
        return {
            "default": DEFAULT_SPEC,
            "kernelspecs": [
                {
                    "name": n,
                    "displayName": str(specs[n]["spec"].get("display_name") or n),
                    "language": str(specs[n]["spec"].get("language") or ""),
                    "interruptMode": _interrupt_mode(specs[n]["spec"]),
                }
                for n in names
            ],
        }

    def kernelspec_command(self, name):
        """(argv, env) to start kernelspec `name`, or None for the default kernel."""
        if name is None or name == DEFAULT_SPEC:
            return None
        if not isinstance(name, str) or not SPEC_NAME_RE.match(name):
            raise ApiError(400, "invalid-kernelspec", "kernelspec must be 1-64 of [A-Za-z0-9._-]")
        found = self.list_kernelspecs().get(name)
        if found is None:
            raise ApiError(404, "unknown-kernelspec", "no kernelspec %s in the session's environment" % name)
        spec, resource_dir = found["spec"], found.get("resource_dir") or ""
        argv = [a.replace("{resource_dir}", resource_dir) for a in spec["argv"]]
        # as jupyter_client does: a bare "python" is the environment's own Python
        if argv[0] in ("python", "python3"):
            argv[0] = self.config["python"]
        env = {k: str(v) for k, v in (spec.get("env") or {}).items()}
        return argv, env


def _valid(v):
    spec = v.get("spec") if isinstance(v, dict) else None
    argv = spec.get("argv") if isinstance(spec, dict) else None
    return isinstance(argv, list) and bool(argv) and all(isinstance(a, str) for a in argv)


def _interrupt_mode(spec):
    mode = spec.get("interrupt_mode")
    return mode if mode in INTERRUPT_MODES else "signal"


def sockets_listening(ip, ports):
    """Whether a kernel on ipc listens on all its sockets ("<ip>-<port>")."""
    return all(os.path.exists("%s-%d" % (ip, p)) for p in ports.values())
