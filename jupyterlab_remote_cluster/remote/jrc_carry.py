"""Carries a notebook's variables from a kernel to its successor in a new job.

"Continue in a new job" moves a notebook to a kernel in the successor job; JupyterLab asks
the old kernel, just before it is shut down, for `dump_for_successor(...)` and the new
one, once it runs, for `load_from_predecessor(path)` (both as user expressions, so
nothing shows in the notebook or its history). What moves:
  - each variable that pickles (cloudpickle, else dill, else pickle: with cloudpickle
    or dill, functions and classes defined in the notebook move too), within a size cap
    and a time cap for all of them together;
  - modules bound to names (`import numpy as np`), imported again by name.
What does not (each said with its reason): names starting with `_`, IPython's own,
objects tied to the old job (a Dask client, cluster or future: their scheduler is gone),
what does not pickle, what is over the caps, what the new kernel cannot unpickle (a
module it lacks).

The pickles go to a 0600 file in a 0700 directory in the user's home (shared by the
login and compute nodes, as on every cluster): the new job may run on another node. The
file is read once and removed (one a failed move left is removed a day later); one that
is not the user's own, or that others could have written, is refused (loading a pickle
runs code).

Imported by jrc_kernel.py before the kernel starts (its directory is then no longer on
sys.path); runs in the session's Python, never in the helper.
"""

import importlib
import io
import os
import pickle
import secrets
import signal
import stat
import sys
import time
import types

CARRY_DIR = os.path.join("~", ".cache", "jupyterlab-remote-cluster", "carry")
FORMAT = "jrc-carry-1"
# A file not loaded within this long was left by a move that failed.
STALE_AFTER_S = 24 * 3600
# IPython's own names in a user namespace (user_ns_hidden covers most of them).
IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
# Objects of these packages belong to the old job's processes.
TIED_TO_THE_JOB = ("distributed", "dask_jobqueue", "zmq", "ipykernel", "IPython")


class OverCap(Exception):
    """A variable would take the carried pickles over the size cap."""


class OutOfTime(Exception):
    """The time cap for carrying ran out."""


class CappedFile(io.RawIOBase):
    """A file that refuses writes past `limit` bytes (a huge object fails early, in
    bounded memory, rather than after pickling all of it)."""

    def __init__(self, limit):
        super().__init__()
        self.buffer = io.BytesIO()
        self.limit = limit

    def writable(self):
        return True

    def write(self, data):
        if self.buffer.tell() + len(data) > self.limit:
            raise OverCap()
        return self.buffer.write(data)


def pickler_module():
    """The most capable pickler the kernel's Python has, and its name."""
    for name in ("cloudpickle", "dill"):
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    return pickle, "pickle"


def candidates(ns, hidden=()):
    """The names of `ns` worth carrying, in order, and those left out with why."""
    names, skipped = [], {}
    for name, value in ns.items():
        if name.startswith("_") or name in IPYTHON_NAMES or name in hidden:
            continue
        root = (getattr(type(value), "__module__", "") or "").split(".")[0]
        if root in TIED_TO_THE_JOB and not isinstance(value, types.ModuleType):
            skipped[name] = "tied to the old job"
            continue
        names.append(name)
    return names, skipped


def dump(ns, directory, max_bytes, max_seconds, hidden=()):
    """Pickle what of `ns` fits into `directory`; return the file and what was left out."""
    module, how = pickler_module()
    names, skipped = candidates(ns, hidden)
    carried, modules = {}, {}
    used = 0
    left = list(names)
    deadline = time.monotonic() + max_seconds
    try:
        with time_cap(max_seconds):
            while left:
                if time.monotonic() >= deadline:
                    raise OutOfTime()
                name = left[0]
                value = ns[name]
                if isinstance(value, types.ModuleType):
                    modules[name] = value.__name__
                    left.pop(0)
                    continue
                out = CappedFile(max_bytes - used)
                try:
                    module.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
                except OverCap:
                    skipped[name] = "over the size cap"
                except OutOfTime:
                    raise
                except Exception as e:  # what does not pickle, whatever it raises
                    skipped[name] = f"does not pickle ({type(e).__name__})"
                else:
                    carried[name] = out.buffer.getvalue()
                    used += len(carried[name])
                left.pop(0)
    except OutOfTime:
        for name in left:
            if isinstance(ns[name], types.ModuleType):
                modules[name] = ns[name].__name__
            else:
                skipped[name] = "over the time cap"
    path = None
    if carried or modules:
        path = write_private(directory, pickle.dumps({"format": FORMAT, "variables": carried, "modules": modules}))
    return {
        "path": path,
        "pickler": how,
        "carried": sorted(carried) + sorted(modules),
        "bytes": used,
        "skipped": skipped,
    }


def load(ns, path, directory):
    """Put what `path` carries into `ns`; the file is removed. Returns what came and what not."""
    data = read_private(path, directory)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a file of carried variables")
    module, _ = pickler_module()
    loaded, failed = [], {}
    for name, alias in data["modules"].items():
        try:
            ns[name] = importlib.import_module(alias)
            loaded.append(name)
        except Exception as e:
            failed[name] = f"import {alias} failed ({type(e).__name__})"
    for name, blob in data["variables"].items():
        try:
            ns[name] = module.loads(blob)
            loaded.append(name)
        except Exception as e:  # a module the new kernel lacks, a class it cannot find
            failed[name] = f"did not unpickle ({type(e).__name__}: {e})"
    return {"loaded": sorted(loaded), "failed": failed}


class time_cap:
    """Interrupts a pickling that outlives the cap (SIGALRM: the kernel's main thread,
    where user expressions run); the kernel's own handler is put back after."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        self.armed = False
        try:
            self.previous = signal.signal(signal.SIGALRM, self.out_of_time)
        except ValueError:  # not the main thread: no cap on a single variable's pickling
            return
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous if self.previous is not None else signal.SIG_DFL)

    @staticmethod
    def out_of_time(signum, frame):
        raise OutOfTime()


def private_dir(directory):
    """`directory`, made 0700 if new; refused if it is not the user's own and private."""
    directory = os.path.expanduser(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{directory} is not a private directory of this user")
    return directory


def write_private(directory, data):
    directory = private_dir(directory)
    sweep(directory)
    path = os.path.join(directory, secrets.token_hex(16) + ".pickle")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def sweep(directory, older_than=STALE_AFTER_S):
    """Remove what a move that failed halfway left (its file was never loaded)."""
    now = time.time()
    for entry in os.scandir(directory):
        try:
            if entry.name.endswith(".pickle") and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
        except OSError:
            continue


def read_private(path, directory):
    directory = private_dir(directory)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(directory):
        raise PermissionError(f"{path} is not in {directory}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{path} is not a private file of this user")
        with os.fdopen(fd, "rb") as f:
            fd = None
            return pickle.load(f)
    finally:
        if fd is not None:
            os.close(fd)
        os.unlink(path)


class Answer:
    """A user expression's value that JupyterLab reads as JSON (application/json)."""

    def __init__(self, value):
        self.value = value

    def _repr_json_(self):
        return self.value

    def __repr__(self):
        return repr(self.value)


def dump_for_successor(max_megabytes, max_seconds):
    shell = sys.modules["IPython"].get_ipython()
    hidden = set(getattr(shell, "user_ns_hidden", {}))
    return Answer(dump(shell.user_ns, CARRY_DIR, int(max_megabytes * 2**20), max_seconds, hidden))


def load_from_predecessor(path):
    shell = sys.modules["IPython"].get_ipython()
    return Answer(load(shell.user_ns, path, CARRY_DIR))
