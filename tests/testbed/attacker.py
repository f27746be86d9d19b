"""Bob, another user of the cluster, probing what alice's sessions expose.

`probe(host, ...)` runs PROBE as bob on a testbed host (with his own job on alice's node,
or on the login node) with the cluster's Python: it enumerates alice's listening TCP
sockets (/proc/net/tcp, by her uid) and the Unix sockets the product names /tmp/jrc-*
(/proc/net/unix), and tries on every one what an attacker would: a Dask client (plain,
and TLS with a certificate of his own making) running `os.getuid` on the scheduler, an
HTTP(S) GET, a ZMQ SUB subscribed to everything (while alice runs code) and a DEALER
asking for kernel_info, a raw read; and a connect on every Unix socket. The same probes
then run against listeners bob starts himself without protection (the positive controls),
so a probe that silently tests nothing fails the controls, not alice's rows.
"""

import json
import subprocess
import threading

from .conftest import TESTBED

PYTHON = "/opt/rc-testbed/python/bin/python"

PROBE = r'''
import faulthandler, json, os, socket, ssl, subprocess, sys, tempfile, threading, time, http.client
import zmq

faulthandler.dump_traceback_later(180, exit=True)  # a hang shows where, in the test's failure
# bob's own Dask (the controls) keeps its scratch files to itself
os.environ["DASK_TEMPORARY_DIRECTORY"] = tempfile.mkdtemp(prefix="bob-dask-")

args = json.loads(sys.argv[1])
WINDOW = args.get("window", 4.0)


def listeners(uid):
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or int(f[7]) != uid:
                continue
            addr, port = f[1].rsplit(":", 1)
            host = "127.0.0.1" if table.endswith("tcp") else "::1"
            if table.endswith("tcp") and addr not in ("00000000", "0100007F"):
                host = socket.inet_ntoa(bytes.fromhex(addr)[::-1])
            out.append([host, int(port, 16)])
    return out


def unix_paths(prefixes, exclude):
    paths = set()
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[7].startswith(tuple(prefixes)) and not f[7].startswith(exclude):
            paths.add(f[7])
    return sorted(paths)


def own_cert():
    """bob's own CA-less certificate, as anyone makes one with openssl."""
    d = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=bob", "-days", "1", "-keyout", d + "/k.pem", "-out", d + "/c.pem"],
                   check=True, capture_output=True)
    return d + "/c.pem", d + "/k.pem"


CERT = own_cert()


DASK_ATTEMPT = """
import os, sys
from distributed import Client
from distributed.security import Security
scheme, host, port, cert, key = sys.argv[1:6]
sec = Security(tls_client_cert=cert, tls_client_key=key, tls_ca_file=cert) if scheme == "tls" else None
try:
    c = Client("%s://%s:%s" % (scheme, host, port), timeout=3, security=sec)
    try:
        print("uid %s" % c.run_on_scheduler(os.getuid), flush=True)
    finally:
        c.close(timeout=2)
except Exception as e:
    print("refused (%s)" % type(e).__name__, flush=True)
os._exit(0)
"""
# Each Dask attempt runs in a process of its own: in one process, every Client shares
# distributed's event loop, and a handshake that never ends (a TLS client against
# something that is not a scheduler) held it, and with it the other clients and bob's
# control cluster started after them (the probe hung, 1 CI run in ~10). A few at a time:
# each imports distributed, on a machine with two cores.
DASK_SLOTS = threading.Semaphore(4)


def dask(host, port):
    results = {}

    def attempt(scheme):
        with DASK_SLOTS:
            try:
                r = subprocess.run([sys.executable, "-c", DASK_ATTEMPT, scheme, host, str(port), CERT[0], CERT[1]],
                                   capture_output=True, text=True, timeout=20)
                lines = r.stdout.strip().splitlines()
                results[scheme] = lines[-1] if lines else "refused (exit %s)" % r.returncode
            except subprocess.TimeoutExpired:
                results[scheme] = "no answer"
    threads = [threading.Thread(target=attempt, args=(scheme,), daemon=True) for scheme in ("tcp", "tls")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(45)
    return [results.get(scheme, "no answer") for scheme in ("tcp", "tls")]


def http_get(host, port, tls):
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(*CERT)
            conn = http.client.HTTPSConnection(host, port, timeout=3, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=3)
        conn.request("GET", "/json/identity.json")
        r = conn.getresponse()
        body = r.read(2000)
        return "HTTP %d %r" % (r.status, body[:200])
    except Exception as e:
        return None


def raw_read(host, port):
    try:
        with socket.create_connection((host, port), timeout=3) as c:
            c.settimeout(2)
            data = c.recv(4096)
            return data.hex() or None
    except Exception:
        return None


def dealer(ctx, host, port):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect("tcp://%s:%d" % (host, port))
    # an unsigned kernel_info_request: a kernel that answers has been reached
    s.send_multipart([b"<IDS|MSG>", b"", b'{"msg_id":"bob","msg_type":"kernel_info_request","username":"bob","session":"bob","version":"5.3"}', b"{}", b"{}", b"{}"])
    got = s.poll(2000)
    reply = s.recv_multipart() if got else None
    s.close()
    return None if reply is None else [f[:200].decode("latin-1") for f in reply]


def unix_connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(path)
        return "connected"
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()


def read_files(paths):
    out = {}
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                out[p] = "listed %s" % os.listdir(p)
            else:
                out[p] = "read %d bytes" % len(open(p, "rb").read())
        except OSError as e:
            out[p] = type(e).__name__
    return out


def probe_all(tcp, unix, ctx):
    """Every probe on every target at once; SUB sockets listen during the window (alice runs code)."""
    res = {"%s:%d" % (h, p): {} for h, p in tcp}
    subs = {}
    for host, port in tcp:
        s = ctx.socket(zmq.SUB)
        s.linger = 0
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect("tcp://%s:%d" % (host, port))
        subs["%s:%d" % (host, port)] = s
    print("READY", flush=True)
    kinds = {"dask": dask, "http": lambda h, p: http_get(h, p, False), "https": lambda h, p: http_get(h, p, True),
             "raw": raw_read, "zmq_dealer": lambda h, p: dealer(ctx, h, p)}
    threads = []

    def one(key, kind, fn, host, port):
        res[key][kind] = fn(host, port)

    for host, port in tcp:
        for kind, fn in kinds.items():
            t = threading.Thread(target=one, args=("%s:%d" % (host, port), kind, fn, host, port), daemon=True)
            t.start()
            threads.append(t)
    deadline = time.time() + WINDOW
    got = {k: [] for k in subs}
    poller = zmq.Poller()
    for s in subs.values():
        poller.register(s, zmq.POLLIN)
    while time.time() < deadline:
        for s, _ in poller.poll(200):
            key = next(k for k, v in subs.items() if v is s)
            msg = b"|".join(s.recv_multipart())[:2000].decode("latin-1")
            if len(got[key]) < 20:
                got[key].append(msg)
    # A probe that has not finished by then got no answer (a read that trickles on, a
    # handshake that never ends): recorded as nothing reached.
    end = time.time() + 45
    for t in threads:
        t.join(max(0.0, end - time.time()))
    for key, r in res.items():
        for kind in kinds:
            r.setdefault(kind, None if kind != "dask" else ["no answer", "no answer"])
    for k, s in subs.items():
        res[k]["zmq_sub"] = got[k]
        s.close()
    for path in unix:
        res["unix:" + path] = {"connect": unix_connect(path)}
    return res


KEEP = []


def start_controls(ctx):
    """Listeners bob starts himself, with no protection: every probe must get through them."""
    import http.server
    from distributed import LocalCluster
    d = tempfile.mkdtemp(prefix="jrc-bobcontrol-")
    cluster = LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None)
    dask_port = int(cluster.scheduler_address.rsplit(":", 1)[1])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    banner = socket.socket()
    banner.bind(("127.0.0.1", 0))
    banner.listen(8)

    def serve_banner():
        while True:
            c, _ = banner.accept()
            try:
                c.sendall(b"hello from bob")
            except OSError:
                pass
            c.close()
    threading.Thread(target=serve_banner, daemon=True).start()
    pub = ctx.socket(zmq.PUB)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    router = ctx.socket(zmq.ROUTER)
    router_port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve_zmq():
        end = time.time() + WINDOW + 30
        while time.time() < end:
            pub.send(b"bob-control")
            if router.poll(100):
                msg = router.recv_multipart()
                router.send_multipart([msg[0], b"reply"])
    threading.Thread(target=serve_zmq, daemon=True).start()
    us = socket.socket(socket.AF_UNIX)
    us.bind(os.path.join(d, "control.sock"))
    us.listen(8)
    KEEP.extend([us, banner, httpd, pub, router])  # alive until the end
    tcp = {"dask": ["127.0.0.1", dask_port], "http": ["127.0.0.1", httpd.server_address[1]],
           "raw": ["127.0.0.1", banner.getsockname()[1]], "zmq_sub": ["127.0.0.1", pub_port],
           "zmq_dealer": ["127.0.0.1", router_port]}
    return tcp, os.path.join(d, "control.sock"), cluster


T0 = time.time()
ctx = zmq.Context()
tcp = listeners(args["uid"]) if args.get("uid") is not None else []
tcp += [t for t in args.get("tcp", []) if t not in tcp]
unix = unix_paths(args.get("unix_prefixes", []), "/tmp/jrc-bobcontrol-")
result = {"enumerated": {"tcp": tcp, "unix": unix}, "files": read_files(args.get("files", []))}
result["targets"] = probe_all(tcp, unix, ctx)
if args.get("controls"):
    # After alice's targets, with the same probes: a probe of many targets at once (each a
    # Dask client in a thread) must not starve the controls into "no answer".
    control_tcp, control_unix, _cluster = start_controls(ctx)
    res = probe_all(list(control_tcp.values()), [control_unix], ctx)
    result["controls"] = {name: res["%s:%d" % tuple(t)] for name, t in control_tcp.items()}
    result["controls"]["unix"] = res["unix:" + control_unix]
result["seconds"] = round(time.time() - T0, 1)
print("RESULT " + json.dumps(result), flush=True)
os._exit(0)  # (clients that never finished their handshakes would hold the exit)
'''


class Probe:
    """PROBE running as bob on `host`; `ready()` once his SUB sockets listen, `result()` at the end."""

    def __init__(self, host, uid=None, tcp=(), unix_prefixes=("/tmp/jrc-",), files=(), window=4.0, controls=True):
        args = {
            "uid": uid,
            "tcp": [list(t) for t in tcp],
            "unix_prefixes": list(unix_prefixes),
            "files": list(files),
            "window": window,
            "controls": controls,
        }
        self.proc = subprocess.Popen(
            [str(TESTBED), "exec", host, "--user", "bob", "--", PYTHON, "-c", PROBE, json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._ready = threading.Event()
        self._lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.append(line)
            if line.startswith("READY"):
                self._ready.set()
        self._ready.set()

    def ready(self, timeout=60):
        assert self._ready.wait(timeout), "the probe did not start"

    def result(self, timeout=240):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        out = [line for line in self._lines if line.startswith("RESULT ")]
        assert out, "probe failed: %s\n%s" % ("".join(self._lines)[-2000:], self.proc.stderr.read()[-3000:])
        return json.loads(out[-1][len("RESULT ") :])


def nothing_reached(result, secret=None):
    """Every probe on every enumerated target of alice was refused or got nothing; the
    controls (bob's own listeners) were all reached. Returns what reached something, as
    short lines ("127.0.0.1:4242 dask: uid 1001")."""
    bad = []
    for key, r in result["targets"].items():
        if key.startswith("unix:"):
            if r["connect"] == "connected":
                bad.append("%s connect: connected" % key)
            continue
        reached = {
            "dask": [d for d in r["dask"] if d.startswith("uid")],
            "http": r["http"],
            "https": r["https"],
            "raw": r["raw"],
            "zmq_dealer": r["zmq_dealer"],
            "zmq_sub": r["zmq_sub"][:3],
        }
        for kind, v in reached.items():
            if v:
                bad.append("%s %s: %s" % (key, kind, str(v)[:160]))
        if secret and secret in json.dumps(r):
            bad.append("%s: saw %r" % (key, secret))
    c = result.get("controls")
    if c is not None:
        assert c["dask"]["dask"][0].startswith("uid"), c["dask"]
        assert c["http"]["http"] and c["http"]["http"].startswith("HTTP 404"), c["http"]
        assert c["raw"]["raw"] == b"hello from bob".hex(), c["raw"]
        assert any("bob-control" in m for m in c["zmq_sub"]["zmq_sub"]), c["zmq_sub"]
        assert c["zmq_dealer"]["zmq_dealer"], c["zmq_dealer"]
        assert c["unix"]["connect"] == "connected", c["unix"]
    return bad
