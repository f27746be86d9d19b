"""jupyterlab-remote-cluster remote helper.

Runs inside the batch job on the compute node: `python helper.pyz serve --session-dir DIR`.
It starts kernels (and optionally a Dask scheduler + one worker) on request of the agent,
which reaches it over an authenticated HTTP/JSON control channel.

Why stdlib only, shipped as one file: the agent uploads it by SFTP at submit time and
the cluster's own Python runs it (3.8+). ipykernel/distributed are only imported by the
child processes it starts, with the interpreter named in config.json. The helper is this
package and ../__main__.py: the agent zips that directory into helper.pyz (a zipapp,
named by its content like the rest of the upload) and uploads it with its companions
jrc_kernel.py and jrc_dask_private.py.

Modules (one concern each):
  protocol      PROTOCOL_VERSION (the agent reads it from the files)
  common        log, ApiError, private files, process groups, the runtime directory,
                the TLS files, where the companions are
  session       Helper: config.json, state.json and the heartbeat, start and stop
  kernels       Kernel, and Helper's kernel requests
  dask          Helper's Dask scheduler and worker
  connectivity  Helper's listeners and tunnels, and what a relay client may reach
  control       the control channel (HTTP/JSON on a Unix socket)
  relay         the TLS relay (via-login, auto) and the token check
  reverse       the reverse ssh tunnel (reverse, auto)
  cli           the command line

Nothing of a session is reachable by another user of the node (docs/security.md): the
control channel, the kernels and the Dask dashboard listen on Unix sockets in a node-local
0700 directory with an unpredictable name; Dask speaks mutual TLS with the session's own
CA; the one TCP endpoint for the agent (via-login, auto) is a TLS relay that wants the
session's client certificate and token before it relays to those sockets.

Session directory (on the shared home, 0700, made by the agent):
  config.json   0600, written by the agent: sessionId, token, tls (the session's CA and
                certificate, PEM), python, workdir, kernelEnv, dask, proxyBase, daskWorkerThreads, (optional) bindAddress, daskHost,
                connectivity (via-login | node-ssh | reverse | auto), reverseHost
  state.json    0600, written here atomically: version, status, host, runtimeDir,
                controlSocket, relayPort, heartbeat, ...
  kernels/<id>/connection.json (0600, dir 0700) and kernel.log
  dask-scheduler.json, dask-scheduler.log, dask-worker.log
Node-local runtime directory (never on the shared home; a Unix socket is only reachable
on the host that bound it): mkdtemp under $TMPDIR or /tmp, e.g. /tmp/jrc-k3x9a0q2 (0700):
  control.sock, dashboard.sock, kernel sockets k<n>-<port>, ssh.ctl, tls/, dask-*/
On the login node, for reverse/auto: another mkdtemp directory, made through the tunnel.
See docs/remote-helper.md for the protocol and docs/connectivity.md for the modes.
"""
