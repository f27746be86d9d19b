"""Files that run on the cluster, not in the Jupyter server.

`helper/` is the remote helper: a runnable directory (`__main__.py` and the stdlib-only
package `jrc_helper`, Python ≥ 3.8). The agent zips its contents into one file, a zipapp
(`helper.pyz`), uploads it (SFTP) with the companions `jrc_kernel.py`,
`jrc_iopub_keeper.py`, `jrc_dask_private.py` and `jrc_carry.py`, and the cluster's own
Python runs it inside the batch job. From
the source tree, `python .../remote/helper serve --session-dir DIR` runs the same.
Nothing here is imported by the server extension.
"""

import os

HELPER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper")
