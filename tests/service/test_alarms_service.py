"""Alarms in the service, end to end through a real uvicorn on 127.0.0.1: a crafted stream over TCP
fires and clears a rule once; the events reach the history, the live WebSocket and a signed
webhook on loopback; operators acknowledge (audited, one wins a race), viewers cannot; a rule
added through the API is checked as the pipeline file's, fires, and survives a restart; webhooks
added through the API may not reach private addresses unless the setting allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from live_helpers import free_port
from service_helpers import make_config, serving
from websockets.asyncio.client import connect

from support.auth import login_async
from support.waiting import until
from support.webhooks import Receiver, signed_correctly, webhook_receiver
from witskit.analytics.alarms import rule_problems
from witskit.config import PipelineConfig, WitsConfig

SECRET = "a-shared-secret-of-32-bytes-long"
PASSWORD = "p" * 16
SPP_RULE = {
    "name": "spp-high",
    "type": "threshold",
    "code": "0121",
    "above": 3000,
    "hysteresis": 100,
    "clear_seconds": 3,
    "severity": "critical",
}
#: docs/analytics.md's "In the service" section: its JSON examples are checked against the API.
DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def doc_json() -> list[Any]:
    section = DOC.read_text(encoding="utf-8").split("### In the service", 1)[1]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, flags=re.S)]


WOB_RULE = {"name": "wob-high", "type": "threshold", "code": "0116", "above": 30, "severity": "warning"}


def frame_bytes(at: datetime, items: dict[str, float]) -> bytes:
    """One WITS frame of record 1 at ``at``."""
    lines = [f"0105{at:%y%m%d}", f"0106{at:%H%M%S}", *(f"{code}{value:g}" for code, value in items.items())]
    return ("&&\r\n" + "".join(f"{line}\r\n" for line in lines) + "!!\r\n").encode()


def plan(port: int, hook_url: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sources": [
                {"url": f"tcp-listen://127.0.0.1:{port}", "options": {"peer_names": {"127.0.0.1": "rig-a"}}}
            ],
            "alarms": {"rules": [SPP_RULE], "webhooks": [{"url": hook_url, "secret": SECRET}]},
        }
    )


@contextlib.asynccontextmanager
async def rig(port: int) -> AsyncIterator[asyncio.StreamWriter]:
    """A TCP connection to the service's listener: what an EDR pushing WITS would be."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def send(writer: asyncio.StreamWriter, start: datetime, values: list[dict[str, float]]) -> datetime:
    """One frame per second from ``start``; the time after the last."""
    for i, items in enumerate(values):
        writer.write(frame_bytes(start + timedelta(seconds=i), items))
    await writer.drain()
    return start + timedelta(seconds=len(values))


class Alarms:
    """The alarm messages of a live WebSocket, collected in the background."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.other_types: set[str] = set()

    async def collect(self, ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "alarm":
                self.messages.append(message)
            else:
                self.other_types.add(message.get("type", "frame"))


async def add_user(http: httpx.AsyncClient, root: dict[str, str], name: str, role: str) -> dict[str, str]:
    made = await http.post(
        "/api/v1/users", json={"username": name, "password": PASSWORD, "roles": [role]}, headers=root
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {await login_async(str(http.base_url), name, PASSWORD)}"}


def config_for(tmp_path: Path, **overrides: Any) -> WitsConfig:
    return make_config(tmp_path, jwt_secret=None, **overrides)


async def test_alarms_fire_clear_acknowledge_and_rules_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()
    async with webhook_receiver() as receiver:
        async with serving(config_for(tmp_path), pipeline=plan(port, receiver.url)) as bound:
            assert bound.admin_credentials is not None
            name, password = bound.admin_credentials
            root = {"Authorization": f"Bearer {await login_async(bound.url, name, password)}"}
            async with httpx.AsyncClient(base_url=bound.url, timeout=10) as http:
                boss = await add_user(http, root, "boss", "admin")
                op = await add_user(http, root, "op", "operator")
                op2 = await add_user(http, root, "op2", "operator")
                viewer = await add_user(http, root, "watcher", "viewer")
                await first_run(
                    bound.url, http, port, receiver, root=root, boss=boss, op=op, op2=op2, viewer=viewer
                )

        # A restart: the rule added through the API is back; a webhook to loopback is allowed now.
        port = free_port()
        allowed = config_for(tmp_path, alarm_webhooks_private=True)
        async with (
            webhook_receiver() as second,
            serving(allowed, pipeline=plan(port, receiver.url)) as bound,
            httpx.AsyncClient(base_url=bound.url, timeout=10) as http,
        ):
            boss = {"Authorization": f"Bearer {await login_async(bound.url, 'boss', PASSWORD)}"}
            rules = (await http.get("/api/v1/alarms/rules", headers=boss)).json()
            assert [(r["name"], r["origin"], r["created_by"]) for r in rules] == [
                ("spp-high", "pipeline_file", None),
                ("wob-high", "api", "boss"),
            ]
            added = await http.post(
                "/api/v1/alarms/webhooks",
                json={"name": "ops-room", "url": second.url + "?token=abc", "secret": SECRET},
                headers=boss,
            )
            assert added.status_code == 201, added.text
            assert added.json()["url"] == second.url  # the query (it may hold a token) is not shown
            assert SECRET not in added.text
            listed = (await http.get("/api/v1/alarms/webhooks", headers=boss)).text
            assert SECRET not in listed
            assert "abc" not in listed
            async with rig(port) as writer:
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
                await send(writer, start, [{"0116": 45.0}] * 3)

                def fired_to_second() -> bool:
                    return any(json.loads(b)["rule"] == "wob-high" for _, b in second.requests)

                await until(fired_to_second, timeout=20)
            headers, body = second.requests[0]
            assert signed_correctly(SECRET.encode(), headers, body)
            assert headers["host"] == second.url.split("/")[2]
            removed = await http.delete("/api/v1/alarms/webhooks/ops-room", headers=boss)
            assert removed.status_code == 204


async def first_run(
    url: str,
    http: httpx.AsyncClient,
    port: int,
    receiver: Receiver,
    *,
    root: dict[str, str],
    boss: dict[str, str],
    op: dict[str, str],
    op2: dict[str, str],
    viewer: dict[str, str],
) -> None:
    ws_url = url.replace("http://", "ws://") + "/api/v1/live?source=rig-a"
    alarms = Alarms()
    token = boss["Authorization"].split()[1]
    async with connect(f"{ws_url}&token={token}") as ws:
        collector = asyncio.create_task(alarms.collect(ws))
        try:
            async with rig(port) as writer:
                start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
                # Normal, 30 s high with a dip that the hysteresis holds, then normal: one firing,
                # one clearing (3 s after it is back below 2900).
                spp = [2000.0] * 5 + [3200.0] * 10 + [2950.0] * 2 + [3200.0] * 5 + [2000.0] * 10
                after = await send(writer, start, [{"0121": v, "0116": 10.0} for v in spp])
                await until(lambda: len(alarms.messages) >= 2, timeout=20)
                fired, cleared = alarms.messages[:2]
                assert (fired["state"], cleared["state"]) == ("fired", "cleared")
                assert fired["rule"] == "spp-high"
                assert fired["severity"] == "critical"
                assert fired["source"] == "rig-a"
                assert fired["code"] == "0121"
                assert fired["value"] == 3200.0
                assert datetime.fromisoformat(fired["time"]) == start + timedelta(seconds=5)
                assert datetime.fromisoformat(cleared["time"]) == start + timedelta(seconds=25)

                # In the history (newest first), once each.
                async def both_stored() -> Any:
                    got = await http.get("/api/v1/alarms/history", params={"source": "rig-a"}, headers=viewer)
                    return len(got.json()) == 2 and got.json()

                history = await until(both_stored)
                assert [e["state"] for e in history] == ["cleared", "fired"]
                assert history[1]["event_id"] == fired["event_id"]
                assert (await http.get("/api/v1/alarms", headers=viewer)).json() == []
                window = {"start": (start + timedelta(seconds=10)).isoformat(), "rule": "spp-high"}
                only_clearing = (
                    await http.get("/api/v1/alarms/history", params=window, headers=viewer)
                ).json()
                assert [e["state"] for e in only_clearing] == ["cleared"]

                # A rule through the API: checked as the pipeline file's, with the same messages.
                bad = {"name": "typo", "type": "threshold", "code": "9999", "above": 1, "window": 3}
                refused = await http.post("/api/v1/alarms/rules", json=bad, headers=boss)
                assert refused.status_code == 422
                expected = [
                    {"field": "rule" + f.removeprefix("alarms.rules.0"), "message": m}
                    for f, m in rule_problems([bad])
                ]
                assert refused.json()["detail"] == expected
                documented_refusal, documented_message = doc_json()
                assert refused.json() == documented_refusal
                assert set(fired) == set(documented_message)
                assert fired["type"] == documented_message["type"]
                assert any("unknown WITS code '9999'" in p["message"] for p in expected)
                twice = await http.post(
                    "/api/v1/alarms/rules", json={**WOB_RULE, "name": "spp-high"}, headers=boss
                )
                assert twice.json()["detail"] == [
                    {"field": "rule.name", "message": "a rule named 'spp-high' is already defined"}
                ]
                assert (await http.post("/api/v1/alarms/rules", json=WOB_RULE, headers=op)).status_code == 403
                added = await http.post("/api/v1/alarms/rules", json=WOB_RULE, headers=boss)
                assert added.status_code == 201, added.text
                assert added.json()["origin"] == "api"
                gone = await http.delete("/api/v1/alarms/rules/spp-high", headers=boss)
                assert gone.status_code == 409
                assert "pipeline file" in gone.json()["detail"]

                # The API's rule fires on the next frames and stays active.
                await send(writer, after, [{"0121": 2000.0, "0116": 45.0}] * 3)
                await until(lambda: len(alarms.messages) >= 3, timeout=20)
                wob = alarms.messages[2]
                assert (wob["rule"], wob["state"], wob["severity"]) == ("wob-high", "fired", "warning")

                async def active() -> Any:
                    got = (await http.get("/api/v1/alarms", headers=viewer)).json()
                    return got if got else None

                [shown] = await until(active)
                assert shown["event_id"] == wob["event_id"]
                assert shown["acknowledged_by"] is None
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    assert "frame" in alarms.other_types  # the frames came on the same socket, untyped

    # Acknowledgements: a viewer cannot; an operator can, again without harm; another gets 409.
    ack = f"/api/v1/alarms/{wob['event_id']}/ack"
    denied = await http.post(ack, headers=viewer)
    assert denied.status_code == 403
    assert "alarms:ack" in denied.json()["detail"]
    first = await http.post(ack, headers=op)
    assert first.status_code == 200, first.text
    assert (first.json()["acknowledged_by"], first.json()["new"]) == ("op", True)
    again = await http.post(ack, headers=op)
    assert (again.status_code, again.json()["new"]) == (200, False)
    other = await http.post(ack, headers=op2)
    assert other.status_code == 409
    assert other.json()["detail"].startswith("already acknowledged by op at ")
    [shown] = (await http.get("/api/v1/alarms", headers=viewer)).json()
    assert shown["acknowledged_by"] == "op"
    assert (await http.post("/api/v1/alarms/nosuchevent/ack", headers=op)).status_code == 404
    cleared_id = history[0]["event_id"]
    assert (await http.post(f"/api/v1/alarms/{cleared_id}/ack", headers=op)).status_code == 422

    # Two operators at once on the same firing: one wins, the other is told who did.
    race = f"/api/v1/alarms/{fired['event_id']}/ack"
    answers = await asyncio.gather(http.post(race, headers=op), http.post(race, headers=op2))
    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = next(a for a in answers if a.status_code == 200).json()["acknowledged_by"]
    loser = next(a for a in answers if a.status_code == 409).json()["detail"]
    assert loser.startswith(f"already acknowledged by {winner} at ")

    # Audited with the actor and the client.
    audit = (await http.get("/api/v1/audit", params={"action": "alarm.ack"}, headers=root)).json()
    mine = [e for e in audit if e["target"] == wob["event_id"]]
    assert {(e["actor"], e["outcome"], e["client"]) for e in mine} == {
        ("op", "success", "127.0.0.1"),
        ("op2", "failure", "127.0.0.1"),
    }

    # The pipeline file's webhook got each event once, signed.
    await until(lambda: len(receiver.requests) >= 3, timeout=20)
    sent = [json.loads(body) for _, body in receiver.requests]
    assert [(e["rule"], e["state"]) for e in sent] == [
        ("spp-high", "fired"),
        ("spp-high", "cleared"),
        ("wob-high", "fired"),
    ]
    assert all(signed_correctly(SECRET.encode(), h, b) for h, b in receiver.requests)

    # A webhook through the API may not reach this machine (nor any private address) by default.
    for target in (
        receiver.url,
        "http://169.254.169.254/latest",
        "http://10.1.2.3/x",
        "http://localhost:9/x",
    ):
        refused = await http.post(
            "/api/v1/alarms/webhooks", json={"name": "inside", "url": target, "secret": SECRET}, headers=boss
        )
        assert refused.status_code == 422, (target, refused.text)
        [problem] = refused.json()["detail"]
        assert problem["field"] == "webhook.url"
        assert "WITS_ALARM_WEBHOOKS_PRIVATE" in problem["message"]
        assert SECRET not in refused.text
    short = await http.post(
        "/api/v1/alarms/webhooks",
        json={"name": "weak", "url": "https://example.com/x", "secret": "tiny-key"},
        headers=boss,
    )
    assert short.status_code == 422
    assert "tiny-key" not in short.text


async def test_witskit_serve_reads_alarms_from_the_history_and_changes_no_rules(tmp_path: Path) -> None:
    from service_helpers import running_service

    from support.crafted import frame
    from witskit.analytics.alarms import AlarmEngine, parse_rules
    from witskit.storage.alarm_events import AlarmEventStore

    engine = AlarmEngine(parse_rules([{**SPP_RULE, "clear_seconds": 1}, WOB_RULE]))
    values = [{"0121": 3200, "0116": 40}] * 3 + [{"0121": 2000, "0116": 40}] * 3
    events = [e for i, v in enumerate(values) for e in engine.feed(frame(i, v))]
    assert [(e.rule, e.state) for e in events] == [
        ("spp-high", "fired"),
        ("wob-high", "fired"),
        ("spp-high", "cleared"),
    ]
    config = make_config(tmp_path)
    async with running_service(config, ingest=False) as svc:
        store = AlarmEventStore(svc.service.accounts.database)
        assert await store.add(events) == 3
        [active] = (await svc.client.get("/api/v1/alarms", headers=svc.auth("viewer"))).json()
        assert (active["rule"], active["state"], active["acknowledged_by"]) == ("wob-high", "fired", None)
        acked = await svc.client.post(
            f"/api/v1/alarms/{active['event_id']}/ack", headers=svc.auth("operator")
        )
        assert acked.status_code == 200, acked.text
        [active] = (await svc.client.get("/api/v1/alarms", headers=svc.auth("viewer"))).json()
        assert active["acknowledged_by"] == "operator"
        refused = await svc.client.post("/api/v1/alarms/rules", json=WOB_RULE, headers=svc.auth("admin"))
        assert refused.status_code == 409
        assert "witskit serve" in refused.json()["detail"]
        assert (await svc.client.get("/api/v1/alarms/webhooks", headers=svc.auth("admin"))).json() == []
