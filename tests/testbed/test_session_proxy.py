"""The agent's proxy on a running session: it reaches only the ports the session's helper
reports, under the session's proxy key; dot segments are refused, encoded separators (Dask's
info pages link to `.../worker/tls%3A%2F%2F....html`) pass."""

import re
from urllib.parse import urljoin

from .conftest import agent_call, agent_proxy_path, proxy_get, wait_state

KEY_RE = re.compile(r"/remote-cluster/proxied/([A-Za-z0-9_-]{43})/")


def test_proxy_reaches_only_the_sessions_reported_ports(jupyter_dirs):
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": "testbed"})
    assert code == 201, s
    sid = s["id"]
    try:
        s = wait_state(sid, ("running", "ended"), 90)
        assert s["state"] == "running", s
        dash = None
        for _ in range(60):
            dash = next((p for p in s.get("httpPorts") or [] if p["name"] == "dask-dashboard"), None)
            if dash:
                break
            s = wait_state(sid, ("ended",), 1)
        assert dash, s
        key = KEY_RE.search(dash["path"]).group(1)
        base = dash["path"][: dash["path"].index("/status")]  # .../proxied/<key>/0

        # The reported port: the Bokeh dashboard, under its proxy prefix.
        code, body = proxy_get(dash["path"])
        assert code == 200 and b"bokeh" in body.lower()

        # A Dask info page links to workers by address, separators encoded: they load.
        code, body = proxy_get(base + "/info/main/workers.html")
        assert code == 200, body[:300]
        links = re.findall(r'href="([^"]*%2F[^"]*)"', body.decode())
        assert links, body[:1000]
        # (relative links, e.g. ../worker/...: resolved as the browser does)
        link = urljoin(base + "/info/main/workers.html", links[0])
        assert "%2F" in link and "/../" not in link
        code, body = proxy_get(link)
        assert code == 200 and b"Worker" in body, (link, body[:300])

        # Dot segments, raw or encoded, are refused, never normalised.
        for path in (base + "/../../api/v1/sessions", base + "/%2e%2e/%2e%2e/status", base + "/x/..%252f..%252fstatus"):
            code, body = proxy_get(path)
            assert code == 400 and b"Dot segments" in body, (path, code, body)

        # Any other port of that node (sshd, the relay, a kernel's): refused.
        for port in (22, 8787, 1):
            code, body = proxy_get(f"{base[:-2]}/{port}/")
            assert code == 404 and b"not served by session" in body, (port, code, body)
        # Another key (another session's, or none): refused.
        code, body = proxy_get(dash["path"].replace(key, "x" * 43))
        assert code == 404 and b"No running session" in body
        # Not through the API socket: it has no proxy route any more.
        code, body = agent_call_raw("GET", agent_proxy_path(dash["path"]))
        assert code == 404
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{sid}")


def agent_call_raw(method, path):
    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    res = run_sync(get_agent().request)(method, path)
    return res.code, res.body
