"""No web page can drive the agent (issue 10): tested as a page in another origin acts,
against a real Jupyter server and the real bundled agent.

A page on http://evil.example that the user visits while logged in to JupyterLab can make
the browser send requests with the login cookie (never the token, never the _xsrf value,
and with its own Origin). Every route that changes something must refuse them; no proxied
path, however encoded, may reach the agent's API.
"""

import json
import re
from urllib.parse import urlencode

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError

EVIL = "http://evil.example"
# A proxy capability nobody issued (the shape of a real one).
KEY = "A" * 43

# Every route of /remote-cluster/ that changes state, with a body the route would accept.
STATE_CHANGING = [
    ("POST", "remote-cluster/api/v1/sessions", {"profile": "attacker"}),
    ("DELETE", "remote-cluster/api/v1/sessions/0123456789ab", None),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/kernels", {}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/workers", {"count": 2}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/extend", {"minutes": 30}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/relaunch", {"continue": True}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/activity", {"keep": True}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/web-ports", {"port": 8123}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/notebooks", {"path": "a.ipynb"}),
    ("POST", "remote-cluster/api/v1/profiles/hpc/kernel-session", {"notebookPath": "a.ipynb"}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/terminals", {"rows": 24, "cols": 80}),
    ("DELETE", "remote-cluster/api/v1/sessions/0123456789ab/terminals/t1", None),
    ("POST", "remote-cluster/api/v1/profiles/hpc/terminals", {}),
    ("DELETE", "remote-cluster/api/v1/profiles/hpc/terminals/l1", None),
    ("POST", "remote-cluster/api/v1/profiles/hpc/estimates", {}),
    ("PUT", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", {"type": "file", "format": "text", "content": "x"}),
    ("POST", "remote-cluster/api/v1/profiles/hpc/files/", {"type": "file"}),
    ("PATCH", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", {"path": "gone.txt"}),
    ("DELETE", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", None),
    ("POST", "remote-cluster/api/v1/profiles/hpc/checkpoints/notes.txt", {}),
    ("DELETE", "remote-cluster/api/v1/profiles/hpc/checkpoints/notes.txt?id=checkpoint", None),
    ("POST", "remote-cluster/api/v1/kernels/k1/signal", {"signal": "SIGKILL"}),
    ("POST", "remote-cluster/api/v1/kernels/k1/restart", {}),
    ("POST", "remote-cluster/api/v1/kernels/k1/detach", {}),
    ("DELETE", "remote-cluster/api/v1/kernels/k1", None),
    ("POST", "remote-cluster/api/v1/prompts/0123456789abcdef", {"accept": True}),
    ("POST", "remote-cluster/kernels/attach", {"session": "0123456789ab", "kernel": "k1"}),
    ("POST", f"remote-cluster/proxied/{KEY}/0/anything", {}),
    ("PUT", f"remote-cluster/proxied/{KEY}/0/anything", {}),
    ("DELETE", f"remote-cluster/proxied/{KEY}/0/anything", None),
]

# What reaches the agent's API with this body: its own refusal of the unknown profile.
API_ANSWER = "There is no cluster profile named"

# `..` segments, raw and encoded once or twice, and mixed.
TRAVERSALS = [
    "../../../../",
    "..%2F..%2F..%2F..%2F",
    "..%2f..%2f..%2f..%2f",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f",
    "%2E%2E/%2E%2E/%2E%2E/%2E%2E/",
    ".%2e/.%2e/.%2e/.%2e/",
    "%252e%252e%252f%252e%252e%252f%252e%252e%252f%252e%252e%252f",
    "..%252f..%252f..%252f..%252f",
    "x/..%2F..%2F..%2F..%2F..%2F",
]


async def login_cookie(http_server_client, jp_base_url, jp_serverapp):
    """The login cookie a browser holds after logging in with the token (and nothing else)."""
    login = jp_base_url + "login"
    res = await http_server_client.fetch(login, raise_error=False)
    xsrf = re.search(r"_xsrf=([^;]+)", res.headers.get("Set-Cookie", "")).group(1)
    res = await http_server_client.fetch(
        login,
        method="POST",
        body=urlencode({"password": jp_serverapp.identity_provider.token, "_xsrf": xsrf}),
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert res.code == 302, res.code
    cookies = [c.split(";", 1)[0] for c in res.headers.get_list("Set-Cookie")]
    login_cookie = "; ".join(c for c in cookies if not c.startswith("_xsrf="))
    assert login_cookie
    # the cookie alone works for a same-origin read: the test would prove nothing otherwise
    ok = await http_server_client.fetch(jp_base_url + "remote-cluster/api/v1/health", headers={"Cookie": login_cookie})
    assert ok.code == 200
    return login_cookie


def reached_agent(res) -> bool:
    """The agent answered (its errors are {"error": {"code", "message"}}), or it succeeded."""
    if 200 <= res.code < 300:
        return True
    try:
        err = json.loads(res.body or b"{}").get("error")
    except ValueError:
        return False
    return isinstance(err, dict) and "code" in err


async def send(http_server_client, jp_base_url, method, path, body, headers):
    return await http_server_client.fetch(
        jp_base_url + path,
        method=method,
        headers=headers,
        raise_error=False,
        follow_redirects=False,
        body=json.dumps(body) if body is not None else (b"" if method in ("POST", "PUT") else None),
        allow_nonstandard_methods=True,
    )


@pytest.mark.parametrize("method, path, body", STATE_CHANGING)
async def test_a_cross_origin_page_with_the_cookie_changes_nothing(
    http_server_client, jp_base_url, jp_serverapp, method, path, body
):
    cookie = await login_cookie(http_server_client, jp_base_url, jp_serverapp)
    res = await send(
        http_server_client,
        jp_base_url,
        method,
        path,
        body,
        {"Cookie": cookie, "Origin": EVIL, "Content-Type": "application/json"},
    )
    # refused before anything reaches the agent (jupyter_server answers 404 to a
    # cross-origin API request, 403 to a missing XSRF token)
    assert res.code in (403, 404) and not reached_agent(res), (method, path, res.code, res.body[:300])


@pytest.mark.parametrize("method, path, body", STATE_CHANGING)
async def test_the_same_request_with_the_token_reaches_the_agent(
    http_server_client, jp_base_url, jp_auth_header, method, path, body
):
    """The control: what the page could not do, the token holder can (the route is real
    and the agent answers), so the refusals above are refusals."""
    headers = dict(jp_auth_header, **{"Content-Type": "application/json"})
    if "/proxied/" in path:
        headers = {"Content-Type": "application/json"}  # the capability is the credential there
    res = await send(http_server_client, jp_base_url, method, path, body, headers)
    assert reached_agent(res), (method, path, res.code, res.body[:300])


@pytest.mark.parametrize("traversal", TRAVERSALS)
@pytest.mark.parametrize("prefix", [f"remote-cluster/proxied/{KEY}/0/", "remote-cluster/sessions/aaaaaa/proxy/1/"])
async def test_no_proxied_path_reaches_the_api(
    http_server_client, jp_base_url, jp_serverapp, jp_auth_header, traversal, prefix
):
    cookie = await login_cookie(http_server_client, jp_base_url, jp_serverapp)
    path = prefix + traversal + "api/v1/sessions"
    for headers in ({"Cookie": cookie, "Origin": EVIL}, {"Cookie": cookie}, dict(jp_auth_header)):
        res = await send(
            http_server_client,
            jp_base_url,
            "POST",
            path,
            {"profile": "attacker"},
            dict(headers, **{"Content-Type": "application/json"}),
        )
        assert API_ANSWER.encode() not in (res.body or b""), (path, headers, res.code, res.body[:300])
        assert res.code in (400, 403, 404), (path, res.code)
        assert not (200 <= res.code < 300)


async def test_the_api_answers_the_probe_directly(http_server_client, jp_base_url, jp_auth_header):
    """The control for the traversal test: sent to the API itself, the probe gets the
    API's own answer (so its absence above means the API was not reached)."""
    res = await send(
        http_server_client,
        jp_base_url,
        "POST",
        "remote-cluster/api/v1/sessions",
        {"profile": "attacker"},
        dict(jp_auth_header, **{"Content-Type": "application/json"}),
    )
    assert res.code == 400 and API_ANSWER.encode() in res.body


# --- authorization: each action as Jupyter's authorizer decides ----------------------------


class _Only(Authorizer):
    """Allows exactly the (action, resource) pairs in `allowed` ("*" for any resource)."""

    allowed: set = set()

    def is_authorized(self, handler, user, action, resource):
        return (action, resource) in self.allowed or (action, "*") in self.allowed


class ReadOnly(_Only):
    allowed = {("read", "*")}


class NoKernels(_Only):
    """May use remote-cluster, but not start kernels."""

    allowed = {("read", "*"), ("write", "remote-cluster"), ("execute", "remote-cluster")}


class NoRemoteCluster(_Only):
    """May start kernels (and everything else), but not on clusters."""

    allowed = {
        (a, r)
        for a in ("read", "write", "execute")
        for r in ("kernels", "kernelspecs", "sessions", "contents", "api", "server")
    } | {("read", "remote-cluster")}


PROFILE = {"name": "hpc", "ssh": {"host": "login.invalid"}, "scheduler": "slurm", "resources": {}, "python": "python3"}


def write_profile(monkeypatch, tmp_path):
    settings = tmp_path / "user-settings"
    d = settings / "jupyterlab-remote-cluster"
    d.mkdir(parents=True)
    (d / "profiles.jupyterlab-settings").write_text(json.dumps({"profiles": [PROFILE]}))
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(settings))


async def sessions_of_the_agent(jp_serverapp):
    res = await jp_serverapp.web_app.settings["remote_cluster_agent"].request("GET", "/api/v1/sessions")
    return json.loads(res.body)["sessions"]


async def submit_attempts(http_server_client, jp_base_url, jp_auth_header, jp_fetch):
    """Every way a browser or client can ask for a job: our route, and Jupyter's own
    kernels and sessions APIs with the profile's kernelspec."""
    h = dict(jp_auth_header, **{"Content-Type": "application/json"})
    await jp_fetch("remote-cluster", "api", "v1", "profiles")  # (writes the kernelspecs)
    return [
        await send(http_server_client, jp_base_url, "POST", "remote-cluster/api/v1/sessions", {"profile": "hpc"}, h),
        await send(http_server_client, jp_base_url, "POST", "api/kernels", {"name": "remote-cluster-hpc"}, h),
        await send(
            http_server_client,
            jp_base_url,
            "POST",
            "api/sessions",
            {"path": "x.ipynb", "type": "notebook", "kernel": {"name": "remote-cluster-hpc"}},
            h,
        ),
    ]


@pytest.mark.parametrize(
    "authorizer",
    [
        pytest.param("ReadOnly", marks=pytest.mark.authorizer(f"{__name__}.ReadOnly")),
        pytest.param("NoKernels", marks=pytest.mark.authorizer(f"{__name__}.NoKernels")),
        pytest.param("NoRemoteCluster", marks=pytest.mark.authorizer(f"{__name__}.NoRemoteCluster")),
    ],
)
async def test_no_job_without_both_kernels_and_remote_cluster_write(
    monkeypatch, tmp_path, jp_serverapp, http_server_client, jp_base_url, jp_auth_header, jp_fetch, authorizer
):
    write_profile(monkeypatch, tmp_path)
    for res in await submit_attempts(http_server_client, jp_base_url, jp_auth_header, jp_fetch):
        # (Jupyter's sessions API answers a kernel that failed to start with a 500 that
        # quotes the refusal)
        refused = res.code == 403 or (res.code == 500 and b"not authorized" in res.body)
        assert refused, (authorizer, res.effective_url, res.code, res.body[:300])
    assert await sessions_of_the_agent(jp_serverapp) == []


# What starts, stops or signals a job or a kernel: Jupyter's `kernels: write` is needed too.
KERNEL_ACTIONS = [
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/kernels", {}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/workers", {"count": 1}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/extend", {"minutes": 10}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/relaunch", {}),
    ("POST", "remote-cluster/api/v1/sessions/0123456789ab/activity", {}),
    ("POST", "remote-cluster/api/v1/kernels/k1/signal", {"signal": "SIGINT"}),
    ("POST", "remote-cluster/api/v1/kernels/k1/restart", {}),
    ("POST", "remote-cluster/api/v1/kernels/k1/detach", {}),
    ("DELETE", "remote-cluster/api/v1/kernels/k1", None),
    ("DELETE", "remote-cluster/api/v1/sessions/0123456789ab", None),
]


@pytest.mark.authorizer(f"{__name__}.NoKernels")
@pytest.mark.parametrize("method, path, body", KERNEL_ACTIONS)
async def test_kernel_actions_need_kernels_write(jp_fetch, method, path, body):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(
            *path.split("/"),
            method=method,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
        )
    assert e.value.code == 403, (path, e.value.response.body[:300] if e.value.response else "")


class RemoteClusterOnly(_Only):
    """May use remote-cluster, nothing of Jupyter's kernels (not even read them)."""

    allowed = {(a, "remote-cluster") for a in ("read", "write", "execute")}


@pytest.mark.authorizer(f"{__name__}.RemoteClusterOnly")
async def test_a_sessions_logs_need_kernels_read(jp_fetch):
    """The logs hold what kernels printed: like reading a kernel's output in Jupyter."""
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "api", "v1", "sessions", "0123456789ab", "logs")
    assert e.value.code == 403
    # the control: the same user lists the sessions (the agent answers)
    res = await jp_fetch("remote-cluster", "api", "v1", "sessions")
    assert res.code == 200


async def test_with_both_permissions_a_submission_gets_through(
    monkeypatch, tmp_path, jp_serverapp, http_server_client, jp_base_url, jp_auth_header, jp_fetch
):
    """The control: the default authorizer lets the same requests through to the agent,
    which then fails to connect to the (unreachable) cluster, and says so."""
    write_profile(monkeypatch, tmp_path)
    res = (await submit_attempts(http_server_client, jp_base_url, jp_auth_header, jp_fetch))[0]
    assert res.code != 403 and reached_agent(res), (res.code, res.body[:300])


# --- proxy hygiene ---------------------------------------------------------------------------


async def test_the_proxy_forwards_no_credentials_and_keeps_redirects_inside(
    jp_serverapp, http_server_client, jp_base_url, monkeypatch
):
    """What the session's service gets and what the browser gets back: no `token` or
    `_xsrf` in the query, no cookie; a redirect may not leave the session's prefix; every
    answer is sandboxed, not sniffed, and sends no Referer with the key."""
    from io import BytesIO

    from tornado.httpclient import HTTPRequest, HTTPResponse
    from tornado.httputil import HTTPHeaders

    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    prefix = f"{jp_base_url}remote-cluster/proxied/{KEY}/0"
    redirects = {
        "inside": f"{prefix}/status",
        "relative": "status",
        "lab": f"{jp_base_url}lab",
        "other-key": f"{jp_base_url}remote-cluster/proxied/{'B' * 43}/0/status",
        "absolute": "http://evil.example/",
        "scheme-relative": "//evil.example/x",
        "dots": f"{prefix}/../../../api/v1/sessions",
    }
    seen = []

    async def proxy_request(method, path, body=None, headers=None):
        seen.append((path, dict(headers or {})))
        name = path.split("/")[4].split("?")[0]
        hdrs = HTTPHeaders({"Content-Type": "text/html", "Set-Cookie": "session=upstream"})
        code = 200
        if name in redirects:
            code, hdrs["Location"] = 302, redirects[name]
        return HTTPResponse(HTTPRequest("http://agent" + path), code, headers=hdrs, buffer=BytesIO(b"<p>ok</p>"))

    monkeypatch.setattr(agent, "proxy_request", proxy_request)

    res = await http_server_client.fetch(
        f"{prefix}/page?token=secret1&x=1&_xsrf=secret2&y=%2F", headers={"Cookie": "username-x=abc"}, raise_error=False
    )
    assert res.code == 200
    path, headers = seen[-1]
    assert path == f"/proxy/{KEY}/0/page?x=1&y=%2F" and "secret" not in path
    assert "Cookie" not in headers and "Authorization" not in headers
    assert "Set-Cookie" not in res.headers  # the service sets no cookie on JupyterLab's origin
    assert res.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "frame-ancestors 'self'" in res.headers["Content-Security-Policy"]
    assert "allow-same-origin" not in res.headers["Content-Security-Policy"]
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers["Referrer-Policy"] == "no-referrer"

    for name, location in redirects.items():
        res = await http_server_client.fetch(f"{prefix}/{name}", follow_redirects=False, raise_error=False)
        if name in ("inside", "relative"):
            assert (res.code, res.headers.get("Location")) == (302, location), name
        else:
            assert res.code == 502 and "Location" not in res.headers, (name, res.code, res.headers.get("Location"))
            assert json.loads(res.body)["error"]["code"] == "redirect-refused"


# --- what a request may change of a profile -----------------------------------------------


@pytest.mark.parametrize(
    "resources, refusal",
    [
        # the attack: another user's directory on the job's PYTHONPATH (their sitecustomize.py
        # runs as the victim)
        ({"extraDirectives": ["--export=ALL,PYTHONPATH=/tmp/bob"]}, "Extra directives can only be set in the profile"),
        ({"partition": "debug", "setup": ["export PYTHONPATH=/tmp/bob"]}, '"resources.setup" cannot be set'),
        ({"cpus": "4; rm -rf ~"}, '"cpus" must be a whole number'),
        (["--export=ALL"], '"resources" must be an object'),
    ],
)
async def test_a_submission_changes_only_the_dialogs_fields(
    monkeypatch, tmp_path, jp_serverapp, http_server_client, jp_base_url, jp_auth_header, jp_fetch, resources, refusal
):
    write_profile(monkeypatch, tmp_path)
    await jp_fetch("remote-cluster", "api", "v1", "profiles")
    res = await send(
        http_server_client,
        jp_base_url,
        "POST",
        "remote-cluster/api/v1/sessions",
        {"profile": "hpc", "resources": resources},
        dict(jp_auth_header, **{"Content-Type": "application/json"}),
    )
    assert res.code == 400, (res.code, res.body[:300])
    assert refusal in json.loads(res.body)["error"]["message"]
    assert await sessions_of_the_agent(jp_serverapp) == []
    # nothing was even tried on the cluster: no SSH link to it
    res = await jp_serverapp.web_app.settings["remote_cluster_agent"].request("GET", "/api/v1/connections")
    assert json.loads(res.body)["connections"] == []


# A shell in a job or on a login node, typed into over a WebSocket: what a page must never open.
TERMINAL_WS = ["remote-cluster/terminals/0123456789ab/t1", "remote-cluster/login-terminals/hpc/l1"]


async def open_terminal_ws(jp_http_port, jp_base_url, headers, route):
    """(upgrade status, close code): 101 and the agent's close code when it got through."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}{route}"
    try:
        ws = await websocket_connect(HTTPRequest(url, headers=headers))
    except HTTPClientError as e:
        return e.code, None
    assert await ws.read_message() is None  # the agent closes it: no such session
    return 101, ws.close_code


@pytest.mark.parametrize("route", TERMINAL_WS)
async def test_a_cross_origin_page_with_the_cookie_cannot_open_a_terminal(
    http_server_client, jp_base_url, jp_serverapp, jp_http_port, jp_auth_header, route
):
    cookie = await login_cookie(http_server_client, jp_base_url, jp_serverapp)
    assert (await open_terminal_ws(jp_http_port, jp_base_url, {"Cookie": cookie, "Origin": EVIL}, route))[0] == 403
    # the control: the same cookie from JupyterLab's own origin, and the token, get through
    # to the agent, which ends the stream itself (4000: no such terminal or session)
    own = f"http://127.0.0.1:{jp_http_port}"
    assert await open_terminal_ws(jp_http_port, jp_base_url, {"Cookie": cookie, "Origin": own}, route) == (101, 4000)
    assert await open_terminal_ws(jp_http_port, jp_base_url, dict(jp_auth_header), route) == (101, 4000)


class NoTerminals(_Only):
    """May use remote-cluster and kernels, not terminals."""

    allowed = {(a, r) for a in ("read", "write", "execute") for r in ("remote-cluster", "kernels", "kernelspecs")}


@pytest.mark.authorizer(f"{__name__}.NoTerminals")
async def test_a_terminal_in_a_job_needs_jupyters_terminals_permissions(
    jp_fetch, jp_http_port, jp_base_url, jp_auth_header
):
    for route in TERMINAL_WS:
        assert (await open_terminal_ws(jp_http_port, jp_base_url, dict(jp_auth_header), route))[0] == 403
    for method, path, body in [
        ("POST", "remote-cluster/api/v1/sessions/0123456789ab/terminals", {}),
        ("GET", "remote-cluster/api/v1/sessions/0123456789ab/terminals", None),
        ("DELETE", "remote-cluster/api/v1/sessions/0123456789ab/terminals/t1", None),
        ("POST", "remote-cluster/api/v1/profiles/hpc/terminals", {}),
        ("GET", "remote-cluster/api/v1/profiles/hpc/terminals", None),
        ("DELETE", "remote-cluster/api/v1/profiles/hpc/terminals/l1", None),
    ]:
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch(*path.split("/"), method=method, body=None if body is None else json.dumps(body))
        assert e.value.code == 403, (method, path)
    # the control: the same user reaches the agent for what needs no terminal permission
    res = await jp_fetch("remote-cluster", "api", "v1", "sessions")
    assert json.loads(res.body) == {"sessions": []}


class NoContents(_Only):
    """May use remote-cluster, kernels and terminals, not Jupyter's contents."""

    allowed = {
        (a, r) for a in ("read", "write", "execute") for r in ("remote-cluster", "kernels", "kernelspecs", "terminals")
    }


@pytest.mark.authorizer(f"{__name__}.NoContents")
async def test_the_cluster_drive_needs_jupyters_contents_permissions(jp_fetch):
    """A user who may not read or write Jupyter's files may not read or write the cluster's
    (the drive's routes would otherwise reach the agent: "no cluster profile named hpc")."""
    for method, path, body in [
        ("GET", "remote-cluster/api/v1/profiles/hpc/files/", None),
        ("GET", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", None),
        ("GET", "remote-cluster/api/v1/profiles/hpc/checkpoints/notes.txt", None),
        ("GET", "remote-cluster/api/v1/profiles/hpc/download/notes.txt", None),
        ("GET", "remote-cluster/files/hpc/notes.txt", None),
        ("PUT", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", {"type": "file", "content": "x"}),
        ("POST", "remote-cluster/api/v1/profiles/hpc/files/", {"type": "file"}),
        ("PATCH", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", {"path": "b.txt"}),
        ("DELETE", "remote-cluster/api/v1/profiles/hpc/files/notes.txt", None),
        ("POST", "remote-cluster/api/v1/profiles/hpc/checkpoints/notes.txt", {}),
    ]:
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch(*path.split("/"), method=method, body=None if body is None else json.dumps(body))
        assert e.value.code == 403, (method, path)
    # the control: the same user reaches the agent for what needs no contents permission
    res = await jp_fetch("remote-cluster", "api", "v1", "sessions")
    assert json.loads(res.body) == {"sessions": []}


async def test_a_download_from_the_cluster_drive_reaches_the_agent_with_the_token(jp_fetch):
    """The control for the download route: authorized, it asks the agent (which knows no
    profile "hpc"), and the agent's own message is the answer."""
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("remote-cluster", "files", "hpc", "notes.txt")
    assert e.value.code == 400
    assert b"There is no cluster profile named" in (e.value.response.body or b"")
