"""The agent's sessions file (issue 10): versioned, pruned by the configured retention
rule, and a file it cannot use is kept aside with an error the user sees, never emptied
silently. Against a real Jupyter server and the real bundled agent."""

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


@pytest.fixture
def state_dir(jp_data_dir):
    """Where the agent keeps sessions.json (written before the server starts the agent)."""
    d = jp_data_dir / "remote-cluster"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def record(sid: str, state: str, days_ago: float) -> dict:
    at = (datetime.now(timezone.utc) - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {
        "id": sid,
        "profile": "hpc",
        "cluster": "hpc",
        "resources": {},
        "state": state,
        "createdAt": at,
        "updatedAt": at,
        "clusterKey": "alice|login.invalid|22||",
        "remoteDir": "",
        "owner": "user",
        "kernels": [],
    }


async def first_events(jp_http_port, jp_base_url, jp_auth_header, n_sessions: int) -> list[dict]:
    """What a new tab gets from the event stream, up to the replayed sessions."""
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}remote-cluster/api/v1/events"
    ws = await websocket_connect(HTTPRequest(url, headers=jp_auth_header))
    events = []
    try:
        while sum(e["type"] == "session" for e in events) < n_sessions or not events:
            # (a bounded wait: an agent with nothing to say would otherwise hang the test)
            events.append(json.loads(await asyncio.wait_for(ws.read_message(), 15)))
    finally:
        ws.close()
    return events


@pytest.fixture
def corrupt_file(state_dir):
    text = '{"version": 1, "sessions": [{"id": "0123456789ab", "state": "runn'
    (state_dir / "sessions.json").write_text(text)
    return text


async def test_a_corrupt_sessions_file_is_kept_aside_and_shown(
    corrupt_file, state_dir, jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header
):
    events = await first_events(jp_http_port, jp_base_url, jp_auth_header, 0)
    notice = events[0]
    assert notice["type"] == "notice" and notice["level"] == "error", events
    aside = sorted(state_dir.glob("sessions.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == corrupt_file
    assert "not valid JSON" in notice["message"] and str(aside[0]) in notice["message"]
    # the agent goes on with an empty, valid file (the bad one is not written over)
    doc = json.loads((state_dir / "sessions.json").read_text())
    assert doc == {"version": 1, "sessions": []}
    # every new tab is told (the frontend shows each notice once)
    assert (await first_events(jp_http_port, jp_base_url, jp_auth_header, 0))[0] == notice


@pytest.fixture
def history(state_dir):
    records = [record("00000000000a", "queued", 0)] + [
        record(f"0000000000e{i}", "ended", days) for i, days in enumerate([1, 2, 3, 45])
    ]
    (state_dir / "sessions.json").write_text(json.dumps(records))  # (the unversioned format of 0.x)
    return records


@pytest.mark.extension_config(keep_ended_sessions=2, keep_ended_days=30)
async def test_ended_sessions_are_pruned_by_the_configured_rule(
    history, state_dir, jp_serverapp, http_server_client, jp_http_port, jp_base_url, jp_auth_header
):
    agent = jp_serverapp.web_app.settings["remote_cluster_agent"]
    res = await agent.request("GET", "/api/v1/sessions")
    ids = sorted(s["id"] for s in json.loads(res.body)["sessions"])
    # the one not ended, and the two most recent ended ones (the 45-day-old one is past 30 days anyway)
    assert ids == ["00000000000a", "0000000000e0", "0000000000e1"]
    doc = json.loads((state_dir / "sessions.json").read_text())
    assert doc["version"] == 1 and sorted(s["id"] for s in doc["sessions"]) == ids
    events = await first_events(jp_http_port, jp_base_url, jp_auth_header, 3)
    assert not [e for e in events if e["type"] == "notice"]
