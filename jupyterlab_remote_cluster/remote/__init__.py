"""Files that run on the cluster, not in the Jupyter server.

`helper.py` is uploaded by the agent (SFTP) and run by the cluster's own Python inside
the batch job; it must stay a single stdlib-only file. Nothing here is imported by the
server extension.
"""

import os

HELPER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper.py")
