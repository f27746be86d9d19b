"""Starts an IPython kernel of jupyterlab-remote-cluster with nothing of it on TCP.

    python jrc_kernel.py -f CONNECTION_FILE      (as `python -m ipykernel_launcher -f ...`)

The helper writes connection files with `transport: ipc`, so the five channels are Unix
sockets in the session's 0700 runtime directory. Two more listeners of ipykernel would
still be TCP ports on the node, which every user of a shared node can connect to:
  - the IOPub pipe through which forked child processes publish their output: a ZMQ PULL
    socket on a random 127.0.0.1 port. Here it binds the Unix socket named by
    $JRC_IOPUB_PIPE instead (in the runtime dir); where that cannot be done (an
    ipykernel whose internals differ), the pipe is switched off (forked children's output
    then goes to kernel.log) rather than left on TCP;
  - the debugger: debugpy listens on a 127.0.0.1 port while a debug session runs, and
    whoever connects to it can run code in the kernel. It is switched off (the kernel
    says so in kernel_info, and JupyterLab hides its debugger).
It also reports whether it is busy, for idle reclaim: every status it publishes
("busy", "idle") is written to the file named by $JRC_ACTIVITY_FILE (in the runtime dir),
whose modification time says when. A busy kernel is never reclaimed.
And it keeps its IOPub output on the node while the laptop's link is down
(jrc_iopub_keeper.py, next to this file), its cells' replies and `input()` prompts with
it: sent on the shell or stdin socket while the link is down, ZMQ drops them, and the cell
would show as running, or wait for an answer, forever (keep_replies_and_prompts).
It makes jrc_carry.py (next to this file) importable in the kernel, to carry the
notebook's variables to a successor job.
Runs in the session's Python (with ipykernel), never in the helper.
"""

import os
import sys
import threading

PIPE_ENV = "JRC_IOPUB_PIPE"
ACTIVITY_ENV = "JRC_ACTIVITY_FILE"


def report_activity(path):
    if not path:
        return
    from ipykernel.kernelbase import Kernel

    publish = Kernel._publish_status

    def write(status):
        # shell and control threads both publish: a temporary file per thread
        tmp = "%s.%d.tmp" % (path, threading.get_ident())
        try:
            with open(tmp, "w") as f:
                f.write(status)
            os.replace(tmp, path)
        except OSError:
            pass  # the runtime dir went away: the session is stopping

    # per channel: an interrupt on "control" goes idle while "shell" still runs a cell
    busy = {}
    lock = threading.Lock()

    def _publish_status(self, status, channel="shell", *args, **kwargs):
        with lock:
            busy[channel] = status == "busy"
            write("busy" if any(busy.values()) else "idle")
        return publish(self, status, channel, *args, **kwargs)

    Kernel._publish_status = _publish_status
    write("idle")


def private_iopub_pipe(path):
    from ipykernel.iostream import IOPubThread

    if not (path and hasattr(IOPubThread, "_setup_pipe_in") and hasattr(IOPubThread, "_setup_pipe_out")):
        no_iopub_pipe(IOPubThread)
        return

    def _setup_pipe_in(self):
        import zmq
        from zmq.eventloop.zmqstream import ZMQStream

        self._pipe_uuid = os.urandom(16)
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        pipe_in.bind("ipc://" + path)
        self._pipe_port = "ipc://" + path  # read back by _setup_pipe_out in forked children
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def _setup_pipe_out(self):
        import zmq

        ctx = zmq.Context()  # a new context after fork
        pipe_out = ctx.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(self._pipe_port)
        return ctx, pipe_out

    IOPubThread._setup_pipe_in = _setup_pipe_in
    IOPubThread._setup_pipe_out = _setup_pipe_out


def no_iopub_pipe(cls):
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        kwargs["pipe"] = False
        init(self, *args, **kwargs)

    cls.__init__ = __init__


def no_debugger():
    from ipykernel import debugger

    # ipkernel reads it when a kernel is made: no Debugger, no debugpy listener
    debugger._is_debugpy_available = False


def keep_replies_and_prompts(kernel, topics, kept_type):
    """Every message of a type in `topics` (execute_reply, input_request) the kernel sends
    also goes out on IOPub, under its topic: the keeper keeps it like any output, and the
    bridge hands the client the first copy of each. The copy travels inside a message of
    its own (`kept_type`, no parent; content: the routing ids of the client it is for; the
    copy's frames as its buffers): a client on the kernel's own IOPub would take the same
    signature seen twice as a replay and fail."""
    session = kernel.session
    send = session.send

    def send_and_keep(stream, msg_or_type, content=None, parent=None, ident=None, *args, **kwargs):
        msg = send(stream, msg_or_type, content, parent, ident, *args, **kwargs)
        topic = topics.get(msg.get("msg_type")) if isinstance(msg, dict) else None
        if topic and stream is not kernel.iopub_socket:
            route = list(ident) if isinstance(ident, (list, tuple)) else [ident] if ident else []
            copy = session.serialize(msg)  # the frames sent, from the delimiter on
            send(kernel.iopub_socket, kept_type, {"route": [r.hex() for r in route]}, None, [topic], buffers=copy)
        return msg

    session.send = send_and_keep


def main():
    # (this file's directory is still sys.path[0])
    # (jrc_carry is imported now, while it can be: JupyterLab asks the kernel for it by
    # name when the notebook moves to a successor job)
    import jrc_carry  # noqa: F401
    from jrc_iopub_keeper import EXECUTE_REPLY_TOPIC, INPUT_REQUEST_TOPIC, KEPT_MSG_TYPE, keep_iopub

    # As ipykernel_launcher: the working directory must not shadow the kernel's modules.
    if sys.path and sys.path[0] in ("", os.path.dirname(os.path.abspath(__file__))):
        del sys.path[0]
    private_iopub_pipe(os.environ.get(PIPE_ENV))
    no_debugger()
    report_activity(os.environ.get(ACTIVITY_ENV))
    from ipykernel.kernelapp import IPKernelApp

    # IPKernelApp.launch_instance(), with the keeper started between its two steps: once
    # the sockets are bound, before the kernel publishes anything.
    app = IPKernelApp.instance()
    app.initialize()
    if keep_iopub(app):
        topics = {"execute_reply": EXECUTE_REPLY_TOPIC, "input_request": INPUT_REQUEST_TOPIC}
        keep_replies_and_prompts(app.kernel, topics, KEPT_MSG_TYPE)
    app.start()


if __name__ == "__main__":
    main()
