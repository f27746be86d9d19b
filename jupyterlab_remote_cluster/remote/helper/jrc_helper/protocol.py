"""The agent-helper protocol's version: written as "version" into state.json, answered
by GET /health and in the control channel's Server header.

A module of its own, with the assignment spelled exactly so: the agent reads the number
from the helper's files without running them (a line `PROTOCOL_VERSION = <n>`), to
tell a session of an older helper from one of this one.
"""

# The agent-helper protocol (state.json "version"). 1: TCP kernels and control (before
# the isolation work); 2: everything on private Unix sockets, TLS relay, Dask over TLS.
PROTOCOL_VERSION = 2
