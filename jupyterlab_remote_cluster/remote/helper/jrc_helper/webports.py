"""Web servers the session's own processes start (TensorBoard, Streamlit, Ray's dashboard,
`python -m http.server`), offered like the Dask dashboards (served.py).

Found by a scan every few seconds: the TCP ports listening on the node, on any of its
addresses (/proc/net/tcp, tcp6), whose socket belongs to a process of this user that descends from the helper
(its /proc/<pid>/fd: only one's own processes' are readable), and that answer HTTP.
The comm ports of the session's Dask servers (TLS only) are never probed: the preload
records them (jrc_dask_private.py), and a port is asked only from its second scan on.
Each gets a Unix socket in the private runtime directory under the port's number as its
label; the agent's proxy reaches it like any served port. Every connection to it checks
again that the port is still held by a session process before a byte goes to it: a port
that a process of another user took since the scan is refused, never reached.

These servers are the user's own: their authentication (a token, none) is theirs, and
a server listening on 0.0.0.0 is reachable from the node's network whatever we do. The
product only reaches them for their owner.
"""

import ipaddress
import os
import socket
import threading
import time

from .common import ApiError, log
from .served import PPID_DEPTH, parent_pid

# Below this, ports are privileged (never the user's) and labels are the Dask dashboards'.
MIN_PORT = 1024
PROBE_TIMEOUT = 2.0
# A server may listen before it answers (loading a model, a busy start): asked again then.
REPROBE_SECONDS = 20.0
LISTEN = "0A"
COMMAND_CHARS = 120


def reachable_address(hex_address):
    """Where the node itself reaches a socket listening on `hex_address` (/proc/net/tcp's
    form: 32-bit words in host order): its own address, or the loopback for "any"."""
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8))
    address = ipaddress.ip_address(raw)
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "::1"
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d: the IPv4 socket
    return str(mapped or address)


def listening_ports():
    """{port: (inode, address to connect to)} of the TCP sockets listening on the node
    (any address: the loopback, every address, one of the node's; IPv4 first)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            address, _, port_hex = fields[1].partition(":")
            port = int(port_hex, 16)
            if port >= MIN_PORT and port not in found:
                try:
                    found[port] = (fields[9], reachable_address(address))
                except ValueError:
                    continue
    return found


def socket_inodes(pid):
    """The socket inodes process `pid` holds (empty when its fds are not ours to read)."""
    out = set()
    base = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def own_descendants(root):
    """Pids of this user's processes that descend from `root` (root included)."""
    uid = os.getuid()
    mine = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat("/proc/" + name).st_uid == uid:
                    mine.append(int(name))
            except OSError:
                continue
    inside = {root: True}

    def descends(pid):
        chain = []
        for _ in range(PPID_DEPTH):
            if pid in inside:
                break
            chain.append(pid)
            try:
                pid = parent_pid(pid) if pid > 1 else 0
            except (OSError, ValueError):
                pid = 0
            if pid <= 1:
                inside.update((p, False) for p in chain)
                return False
        result = inside.get(pid, False)
        inside.update((p, result) for p in chain)
        return result

    return [p for p in mine if descends(p)]


def port_owner(port, root):
    """(pid, host) of the session process listening on `port`, or None."""
    listening = listening_ports().get(port)
    if not listening:
        return None
    inode, host = listening
    for pid in own_descendants(root):
        if inode in socket_inodes(pid):
            return pid, host
    return None


def speaks_http(host, port, timeout=PROBE_TIMEOUT):
    """Whether the server on `port` answers a HEAD request as HTTP (TLS-only comms such
    as Dask's, or a raw protocol, do not)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return s.recv(5) == b"HTTP/"
    except OSError:
        return False


def command_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return ""
    if argv:
        argv[0] = os.path.basename(argv[0])
    return " ".join(argv)[:COMMAND_CHARS]


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def refuse(conn, message):
    """A 404 with `message` in place of the server's answer (the panel shows why). The
    request's head is read first: closing a socket over unread data resets it, and the
    answer would be lost."""
    body = message.encode("utf-8")
    try:
        conn.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        conn.sendall(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # a body it sent after the head, until it closes
            pass
    except OSError:
        pass


class WebPortBridge:
    """A Unix socket whose connections go to TCP `port`, each only while a session
    process (a descendant of `root`) holds it."""

    def __init__(self, path, port, root):
        self.path, self.port, self.root = path, port, root
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(32)
        self.closed = False
        threading.Thread(target=self.accept, name="web-%d" % port, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            owner = port_owner(self.port, self.root)
            if owner is None:
                log("web port %d: not held by a process of the session any more; refused" % self.port)
                refuse(conn, "Port %d is no longer held by a process of this session: it is not reached." % self.port)
                return
            try:
                upstream = socket.create_connection((owner[1], self.port), timeout=10)
            except OSError as e:
                log("web port %d: %s" % (self.port, e))
                return
            with upstream:
                upstream.settimeout(None)
                back = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
                back.start()
                pipe(conn, upstream)
                back.join()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
            os.unlink(self.path)
        except OSError:
            pass


class WebPortsMixin:
    """Helper's web ports (uses Helper's web_lock, runtime, config, served, offer_http,
    withdraw_http, kernel_of, is_dask_comm; served.py's scan calls scan_web_ports, the control channel
    open_web_port)."""

    def scan_web_ports(self):
        """Offer the HTTP servers the session's processes listen with; withdraw the gone."""
        with self.web_lock:
            self._scan_web_ports()

    def open_web_port(self, body):
        """Serve `port` now, asked for by number (the command "Open a Port of the Session"):
        its server may not have been offered yet (asked again only every REPROBE_SECONDS),
        or may be one the user wants now. The same rules as the scan, said as reasons."""
        port = body.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not MIN_PORT <= port <= 65535:
            raise ApiError(400, "invalid", "port must be a whole number from %d to 65535" % MIN_PORT)
        root = os.getpid()
        where = "port %d on %s" % (port, socket.gethostname())
        with self.web_lock:
            listening = listening_ports().get(port)
            if not listening:
                raise ApiError(404, "not-listening", "Nothing listens on %s." % where)
            owner = port_owner(port, root)
            if owner is None:
                raise ApiError(
                    403,
                    "not-the-sessions",
                    "%s is not held by a process of this session: it is not reached." % where.capitalize(),
                )
            pid, host = owner
            if pid == root:
                raise ApiError(
                    403,
                    "not-the-sessions",
                    "%s is the session helper's own endpoint, not a web page." % where.capitalize(),
                )
            if self.is_dask_comm(port, pid):
                raise ApiError(
                    422,
                    "not-http",
                    "%s is a Dask comm port (TLS between scheduler, workers and clients), not a web page."
                    % where.capitalize(),
                )
            ok = speaks_http(host, port)
            self.web_probed[(port, listening[0])] = (ok, time.monotonic())
            if not ok:
                raise ApiError(
                    422,
                    "not-http",
                    "%s does not answer HTTP: a panel shows web pages only (TLS or another protocol cannot be shown)."
                    % where.capitalize(),
                )
            return self._offer_web_port(port, pid, root)

    def _offer_web_port(self, port, pid, root):
        """The httpPorts entry of `port`, held by session process `pid`: offered, bridged."""
        bridges = self.web_bridges
        label = str(port)
        entry = {
            "port": port,
            "name": "web",
            "path": "%s/%d/" % (self.config["proxyBase"], port),
            "stripPrefix": True,
            "pid": pid,
            "kernelId": self.kernel_of(pid),
            "command": command_of(pid),
        }
        if port not in bridges:
            path = os.path.join(self.runtime, "web-%d.sock" % port)
            bridges[port] = WebPortBridge(path, port, root)  # OSError: the caller's
            log("web port %d: %s (pid %d)" % (port, entry["command"], pid))
        if self.served.get(label) != entry:
            self.offer_http(label, bridges[port].path, entry)
        return entry

    def _scan_web_ports(self):
        bridges, probed = self.web_bridges, self.web_probed
        root = os.getpid()
        listening = listening_ports()
        held = {}
        if listening:
            wanted = {inode: port for port, (inode, _host) in listening.items()}
            for pid in own_descendants(root):
                if pid == root:
                    continue  # the helper's own listeners (the relay) are not web UIs
                for inode in socket_inodes(pid) & set(wanted):
                    held[wanted[inode]] = pid
        for port, pid in sorted(held.items()):
            inode, host = listening[port]
            if (port, inode) not in probed:
                # asked from the next scan on: a Dask server records its comm port just
                # after it listens, and an HTTP probe there would be logged by Dask as a
                # failed TLS handshake (into the notebook running the cluster)
                probed[(port, inode)] = (False, None)
                continue
            if self.is_dask_comm(port, pid):
                continue
            ok, at = probed[(port, inode)]
            if at is None or (not ok and time.monotonic() - at > REPROBE_SECONDS):
                ok = speaks_http(host, port)
                probed[(port, inode)] = (ok, time.monotonic())
            if not ok:
                continue
            try:
                self._offer_web_port(port, pid, root)
            except OSError as e:
                log("web port %d: %s" % (port, e))
        for port in [p for p in bridges if p not in held or not probed.get((p, listening[p][0]), (False,))[0]]:
            bridges.pop(port).close()
            self.withdraw_http(str(port))
            log("web port %d withdrawn" % port)
        for key in [k for k in probed if k[0] not in listening or listening[k[0]][0] != k[1]]:
            probed.pop(key)
