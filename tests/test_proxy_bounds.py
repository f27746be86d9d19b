"""The proxy to what sessions serve is bounded (issue 10): what a page sends through it,
however malformed or slow, costs the server nothing it keeps, and never holds up the API.

The session's service is played by a server on the agent's proxy socket that the test
controls (the agent is real, and stays reachable on its own API socket).
"""

import asyncio
import contextlib
import os

from tornado import web, websocket
from tornado.httpclient import HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.simple_httpclient import SimpleAsyncHTTPClient

KEY = "K" * 43


class Upstream:
    """A stand-in for the agent's proxy socket: counts the WebSockets open on it, and
    holds `/proxy/<key>/<port>/hang` requests until released."""

    def __init__(self) -> None:
        self.open_websockets = 0
        self.hung = 0
        self.release = asyncio.Event()
        upstream = self

        class Socket(websocket.WebSocketHandler):
            def open(self, *args):
                upstream.open_websockets += 1

            def on_message(self, message):
                self.write_message(message)

            def on_close(self):
                upstream.open_websockets -= 1

        class Hang(web.RequestHandler):
            async def get(self, *args):
                upstream.hung += 1
                await upstream.release.wait()
                self.finish("late")

        self.app = web.Application([(r"/proxy/[^/]+/[0-9]+/ws", Socket), (r"/proxy/[^/]+/[0-9]+/hang", Hang)])

    def listen(self, path: str) -> HTTPServer:
        server = HTTPServer(self.app)
        server.add_socket(bind_unix_socket(path))
        return server


@contextlib.asynccontextmanager
async def upstream_on_proxy_socket(jp_serverapp, tmp_path):
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    await agent.ensure_running()
    up = Upstream()
    path = str(tmp_path / "proxy.sock")
    server = up.listen(path)
    saved = agent.proxy_socket_path
    agent.proxy_socket_path = path
    agent._proxy_http = None  # (a client made earlier would still dial the real socket)
    try:
        yield up
    finally:
        up.release.set()
        server.stop()
        agent.proxy_socket_path = saved
        agent._proxy_http = None
        os.unlink(path)


async def settle(predicate, seconds=10.0):
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def ws_url(http_server_client, jp_base_url):
    return f"ws://127.0.0.1:{http_server_client.get_http_port()}{jp_base_url}remote-cluster/proxied/{KEY}/0/ws"


# Upgrade requests a browser would never send but a page's script or a client can: each
# is refused after the agent's side of the WebSocket was already opened.
BAD_UPGRADES = {
    "no key": {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
    "old version": {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "8",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    },
    "no connection": {
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    },
}


async def test_refused_websocket_upgrades_leave_nothing_open_upstream(
    jp_serverapp, tmp_path, http_server_client, jp_base_url
):
    async with upstream_on_proxy_socket(jp_serverapp, tmp_path) as upstream:
        await refused_upgrades_leave_nothing_open(upstream, http_server_client, jp_base_url)


async def refused_upgrades_leave_nothing_open(upstream, http_server_client, jp_base_url):
    # The control: a real WebSocket is spliced through (so the refusals below do reach
    # the stage where the upstream is open).
    ws = await websocket.websocket_connect(ws_url(http_server_client, jp_base_url))
    await ws.write_message("ping")
    assert await ws.read_message() == "ping"
    assert upstream.open_websockets == 1
    ws.close()
    assert await settle(lambda: upstream.open_websockets == 0)

    url = f"{jp_base_url}remote-cluster/proxied/{KEY}/0/ws"
    codes = set()
    peak = 0
    for i in range(501):
        name = list(BAD_UPGRADES)[i % len(BAD_UPGRADES)]
        res = await http_server_client.fetch(url, headers=BAD_UPGRADES[name], raise_error=False)
        codes.add((name, res.code))
        peak = max(peak, upstream.open_websockets)
    assert codes == {("no key", 400), ("old version", 426), ("no connection", 400)}, codes
    assert await settle(lambda: upstream.open_websockets == 0), (
        f"{upstream.open_websockets} upstream WebSockets left open by 501 refused upgrades"
    )
    assert peak <= 2, peak


async def test_hung_proxied_requests_do_not_delay_the_api(
    jp_serverapp, tmp_path, http_server_client, jp_base_url, jp_auth_header
):
    async with upstream_on_proxy_socket(jp_serverapp, tmp_path) as upstream:
        await hung_requests_do_not_delay_the_api(
            upstream, jp_serverapp, http_server_client, jp_base_url, jp_auth_header
        )


async def hung_requests_do_not_delay_the_api(upstream, jp_serverapp, http_server_client, jp_base_url, jp_auth_header):
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    # (the page's ten requests from a client of their own: this test's client would
    # queue its eleventh request behind them)
    page = SimpleAsyncHTTPClient(force_instance=True, max_clients=10)
    hung = [
        asyncio.ensure_future(
            page.fetch(
                http_server_client.get_url(f"{jp_base_url}remote-cluster/proxied/{KEY}/{i}/hang"),
                raise_error=False,
                request_timeout=120,
            )
        )
        for i in range(10)
    ]
    assert await settle(lambda: upstream.hung == 10), upstream.hung

    # the sessions list the sidebar polls, and the agent call a kernel's poll makes
    res = await http_server_client.fetch(f"{jp_base_url}remote-cluster/api/v1/sessions", headers=jp_auth_header)
    assert res.code == 200
    res = await agent.request("GET", "/api/v1/sessions")
    assert res.code == 200
    # ... answered while all ten were still held (an API queued behind them would not be)
    assert not any(f.done() for f in hung)

    upstream.release.set()
    answers = await asyncio.gather(*hung)
    page.close()
    assert [a.code for a in answers] == [200] * 10 and answers[0].body == b"late"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_refused_upgrades_leave_the_agents_fd_count_flat(
    jp_serverapp, http_server_client, jp_base_url, jp_auth_header
):
    """The same with the real agent on the other end (its event stream)."""
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    url = f"{jp_base_url}remote-cluster/api/v1/events"
    # the control: an accepted upgrade holds one connection on the agent, and gives it back
    await agent.ensure_running()
    pid = agent.owned_pid
    before = open_fds(pid)
    ws = await websocket.websocket_connect(
        HTTPRequest(f"ws://127.0.0.1:{http_server_client.get_http_port()}{url}", headers=jp_auth_header)
    )
    assert await settle(lambda: open_fds(pid) > before)
    ws.close()
    assert await settle(lambda: open_fds(pid) <= before)

    for i in range(501):
        headers = dict(jp_auth_header, **BAD_UPGRADES[list(BAD_UPGRADES)[i % len(BAD_UPGRADES)]])
        res = await http_server_client.fetch(url, headers=headers, raise_error=False)
        assert res.code in (400, 426), res.code
    assert await settle(lambda: open_fds(pid) <= before + 2), (before, open_fds(pid))
