"""The command line: `python helper.pyz serve --session-dir DIR` (or the helper/
directory instead of the zipapp)."""

import argparse
import os

from .common import log
from .session import Helper


def main(argv=None):
    parser = argparse.ArgumentParser(description="jupyterlab-remote-cluster remote helper")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the session's control channel")
    serve.add_argument("--session-dir", required=True)
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    if not os.path.isdir(args.session_dir):
        log("session directory %s does not exist" % args.session_dir)
        return 2
    return Helper(args.session_dir).serve()
