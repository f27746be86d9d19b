"""The command line: `python helper.pyz serve --session-dir DIR` (or the helper/
directory instead of the zipapp)."""

import argparse
import os
import sys

from .common import log
from .session import Helper
from .workers import run_job_worker, run_worker


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["job-worker"]:
        # `<launcher> -m distributed.cli.dask_worker <args>` (dask-jobqueue's job script):
        # everything after the session dir is the worker's, not ours to parse
        if len(argv) < 3 or argv[1] != "--session-dir" or not os.path.isdir(argv[2]):
            log("usage: job-worker --session-dir DIR -m distributed.cli.dask_worker ARGS")
            return 2
        return run_job_worker(os.path.abspath(argv[2]), argv[3:])
    parser = argparse.ArgumentParser(description="jupyterlab-remote-cluster remote helper")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the session's control channel")
    serve.add_argument("--session-dir", required=True)
    worker = sub.add_parser("worker", help="run a Dask worker of the session on this node")
    worker.add_argument("--session-dir", required=True)
    worker.add_argument("--name", required=True)
    worker.add_argument("--nthreads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):
        parser.print_help()
        return 2
    if not os.path.isdir(args.session_dir):
        log("session directory %s does not exist" % args.session_dir)
        return 2
    if args.command == "worker":
        return run_worker(os.path.abspath(args.session_dir), args.name, max(1, args.nthreads))
    return Helper(args.session_dir).serve()
