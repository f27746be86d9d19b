"""Runs the remote helper: `python helper.pyz serve --session-dir DIR` (the zipapp the
agent makes of this directory), or `python .../remote/helper serve ...` from the source
tree. Python puts the zip or the directory first on sys.path, so jrc_helper is found
there; nothing is added here."""

import sys

from jrc_helper.cli import main

if __name__ == "__main__":
    sys.exit(main())
