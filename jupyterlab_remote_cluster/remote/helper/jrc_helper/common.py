"""What every part of the helper uses: the log, the API error, private files, process
groups, the node-local runtime directory, the session's TLS files, and where the
helper's companions are."""

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time

LOG_TAIL_BYTES = 4000
# Unix socket paths are limited to 107 bytes: a runtime base longer than this is skipped
# (the longest name in it is the kernel sockets' "k<n>-<port>").
RUNTIME_BASE_MAX = 64
# The helper's companions, uploaded with it into the same versioned directory; they run
# in the session's Python (with ipykernel / distributed), the helper stays stdlib-only.
# ROOT is what Python runs: the zipapp (helper.pyz, on the cluster) or the directory it
# is made of (remote/helper/ in the source tree); this module is ROOT/jrc_helper/, and
# the companions are next to ROOT. Only paths are made from __file__, no file is read
# through it: inside a zip it names no real file.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(ROOT)
KERNEL_LAUNCHER = os.path.join(HERE, "jrc_kernel.py")
DASK_PRELOAD = os.path.join(HERE, "jrc_dask_private.py")


def fewer_malloc_arenas(env):
    """Under a limit on address space (Grid Engine's h_vmem, PBS's pvmem, `ulimit -v`),
    processes get MALLOC_ARENA_MAX=2 unless the user chose a value. glibc reserves 64 MiB
    of address space per malloc arena, up to 8 arenas per core, made as threads contend;
    such limits count reservations, not use. A kernel with a Dask client reached 98% of
    h_vmem=500M with 74 MB resident, and died when the next arena came (docs/schedulers/sge.md)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and "MALLOC_ARENA_MAX" not in env:
        env["MALLOC_ARENA_MAX"] = "2"
    return env


def log(msg):
    # stderr is the job's error file (the agent shows its tail when a session fails).
    sys.stderr.write("[rc-helper %s] %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


class ApiError(Exception):
    """An error answered as JSON: {"error": {"code", "message"}} (same shape as the agent's)."""

    def __init__(self, status, code, message):
        Exception.__init__(self, message)
        self.status = status
        self.code = code
        self.message = message


def write_private(path, data):
    """Write bytes to `path` atomically with mode 0600 (tmp file + os.replace).

    Why: readers (the agent over SFTP) must never see a half-written file, and the
    files hold secrets or ports that only this user may read.
    """
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)  # shared homes are often NFS: make the replace point at real data
    finally:
        os.close(fd)
    os.replace(tmp, path)


def open_log(path):
    """Append-only log file, 0600 whatever the umask (we leave the umask to the user's kernels)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def tail(path, limit=LOG_TAIL_BYTES):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def kill_group(pgid, sig):
    """Signal a whole process group (kernels spawn children: multiprocessing, shells)."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid):
    return kill_group(pgid, 0)


def stop_processes(procs, grace):
    """SIGTERM each process group, wait up to `grace` s, then SIGKILL what is left.

    `procs` are Popen objects started with start_new_session (pgid == pid).
    """
    for p in procs:
        kill_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        # wait for the leader *and* its group (a kernel's children may outlive it)
        while time.monotonic() < deadline and (p.poll() is None or group_alive(p.pid)):
            time.sleep(0.05)
    for p in procs:
        if p.poll() is None or group_alive(p.pid):
            kill_group(p.pid, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass


def make_runtime_dir(bases):
    """The session's node-local private directory: a fresh mkdtemp under the first usable
    base (e.g. $TMPDIR, then /tmp).

    Why mkdtemp: a name another user of the node can predict can be taken first (a file,
    his own directory, a symlink) and block or capture the session; mkdtemp picks an
    unpredictable name, creates it 0700 and fails rather than reuse anything that exists.
    """
    errors = []
    for base in bases:
        if not base or not os.path.isabs(base) or len(base) > RUNTIME_BASE_MAX:
            continue
        try:
            return tempfile.mkdtemp(prefix="jrc-", dir=base)
        except OSError as e:
            errors.append("%s: %s" % (base, e))
    raise RuntimeError("no private directory for sockets: %s" % ("; ".join(errors) or "no usable temporary directory"))


def write_tls_files(directory, tls):
    """The session's CA, certificate and key as 0600 files in a 0700 dir (Dask and the
    relay read files). Returns {"ca", "cert", "key"} paths."""
    os.mkdir(directory, 0o700)
    paths = {}
    for name in ("ca", "cert", "key"):
        paths[name] = os.path.join(directory, name + ".pem")
        write_private(paths[name], tls[name].encode())
    return paths


def _int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return 0
