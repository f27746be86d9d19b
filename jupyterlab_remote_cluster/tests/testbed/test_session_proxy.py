"""The dashboard proxy on a running session reaches only the ports its helper reported."""

import asyncio
import json

from jupyter_core.utils import run_sync

from jupyterlab_remote_cluster.agent_process import get_agent


async def _call(method, path, body=None):
    agent = get_agent()
    res = await agent.request(method, path, body=None if body is None else json.dumps(body).encode())
    return res.code, res.body or b""


async def _scenario():
    code, body = await _call("POST", "/api/v1/sessions", {"profile": "testbed"})
    assert code == 201, body
    sid = json.loads(body)["id"]
    try:
        for _ in range(90):
            session = json.loads((await _call("GET", f"/api/v1/sessions/{sid}"))[1])
            if session["state"] in ("running", "ended"):
                break
            await asyncio.sleep(1)
        assert session["state"] == "running", session
        dash = next(p for p in session["httpPorts"] if p["name"] == "dask-dashboard")

        # The reported port: the Bokeh dashboard, under its proxy prefix.
        code, body = await _call("GET", f"/proxy/{sid}/{dash['port']}/status")
        assert code == 200
        assert b"bokeh" in body.lower()

        # Any other port of that node (sshd, the helper's control port, a kernel): refused.
        for port in (22, dash["port"] + 1, 8787):
            code, body = await _call("GET", f"/proxy/{sid}/{port}/")
            assert code == 400, port
            assert b"not served by session" in body
        # Another session id: refused.
        code, body = await _call("GET", f"/proxy/0123456789ab/{dash['port']}/status")
        assert code == 400 and b"not running" in body
    finally:
        await _call("DELETE", f"/api/v1/sessions/{sid}")


def test_proxy_reaches_only_the_sessions_reported_ports(jupyter_dirs):
    run_sync(_scenario)()
