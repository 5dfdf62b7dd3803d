"""Alarms live in the pipeline: the stage fires on decoded frames, stores the events, and sends
signed webhooks to a real HTTP receiver on loopback that checks every signature."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.crafted import frame
from support.leaks import no_leaks
from support.waiting import until
from support.webhooks import Receiver, webhook_receiver
from support.webhooks import signed_correctly as signed_by
from witskit.analytics.alarms import AlarmEngine, parse_rules
from witskit.config import load_pipeline
from witskit.errors import ConfigError
from witskit.pipeline.alarms import AlarmStage, alarm_stage
from witskit.pipeline.build import plan_problems
from witskit.pipeline.webhooks import WebhookSender, WebhookTarget, address_problem, verify
from witskit.protocol import DecodedFrame

SECRET = b"a-shared-secret-of-32-bytes-long"
RULE = {"name": "spp-high", "type": "threshold", "code": "0121", "above": 3000, "clear_seconds": 2}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as rec:
        yield rec


def signed_correctly(headers: dict[str, str], body: bytes) -> bool:
    return signed_by(SECRET, headers, body)


def spp(values: list[int]) -> list[DecodedFrame]:
    return [frame(i, {"0121": v}) for i, v in enumerate(values)]


async def test_the_stage_sends_each_event_once_signed(receiver: Receiver) -> None:
    sender = WebhookSender([WebhookTarget(receiver.url, SECRET, backoff_factor=0.01)])
    stage = AlarmStage(AlarmEngine(parse_rules([RULE])), webhooks=sender)
    with no_leaks():
        frames = spp([2000, 3100, 3100, 2000, 2000, 2000, 2000])
        await stage.write(frames[:4], upto=4)
        await stage.write(frames[4:], upto=7)
        await until(lambda: len(receiver.requests) == 2)
        await stage.aclose()
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert [(b["rule"], b["state"], b["time"]) for b in bodies] == [
        ("spp-high", "fired", "2026-01-01T06:00:01+00:00"),
        ("spp-high", "cleared", "2026-01-01T06:00:05+00:00"),
    ]
    for headers, body in receiver.requests:
        assert headers["content-type"] == "application/json"
        assert signed_correctly(headers, body)
        assert verify(SECRET, headers, body)
        assert headers["x-witskit-event"] == json.loads(body)["event_id"]
        assert not verify(b"another-secret-of-32-bytes-long!", headers, body)
        assert not verify(SECRET, headers, body + b" ")
        assert not verify(SECRET, headers, body, now=time.time() + 301)  # replayed later
    assert sender.targets[0].sent == 2


async def test_a_failed_post_is_retried_and_each_attempt_signed_afresh(receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    target = WebhookTarget(receiver.url, SECRET, backoff_factor=0.01, max_attempts=3)
    sender = WebhookSender([target])
    sender.start()
    sender.offer({"event_id": "e1", "state": "fired"})
    await until(lambda: target.sent == 1)
    await sender.aclose()
    assert len(receiver.requests) == 3
    assert all(signed_correctly(h, b) for h, b in receiver.requests)
    assert {h["x-witskit-event"] for h, _ in receiver.requests} == {"e1"}


async def test_an_answer_that_is_no_server_error_is_final(receiver: Receiver) -> None:
    receiver.statuses = [401]
    target = WebhookTarget(receiver.url, SECRET, backoff_factor=0.01)
    sender = WebhookSender([target])
    sender.start()
    sender.offer({"event_id": "e1"})
    await until(lambda: target.failed == 1)
    await sender.aclose()
    assert len(receiver.requests) == 1


async def test_a_receiver_that_hangs_never_blocks_ingest(receiver: Receiver) -> None:
    receiver.hang = True
    target = WebhookTarget(receiver.url, SECRET, timeout=30, queue_size=3)
    sender = WebhookSender([target])
    sender.start()
    started = time.monotonic()
    for i in range(100):
        sender.offer({"event_id": f"e{i}"})  # never awaits: the queue is bounded, the rest dropped
    assert time.monotonic() - started < 1.0
    await until(lambda: len(receiver.requests) == 1)
    assert target.dropped == 97  # offered before the worker ran: 3 queued, the rest dropped
    await sender.aclose(timeout=0.1)


async def test_a_store_that_fails_keeps_the_events_for_the_retry_without_evaluating_twice(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "not-yet"
    url = f"sqlite:///{missing / 'alarms.db'}"
    stage = AlarmStage(AlarmEngine(parse_rules([RULE])), store_url=url)
    batch = spp([2000, 3100, 3100])
    with pytest.raises(Exception, match="not-yet"):
        await stage.write(batch, upto=3)
    missing.mkdir()
    longer = spp([2000, 3100, 3100, 2000, 2000, 2000])  # the retry re-reads the spool, and more came
    await stage.write(longer, upto=6)
    await stage.aclose()
    assert stage.events == 2  # fired once, cleared once: the first three frames were not fed again
    from witskit.storage.alarm_events import AlarmEventStore

    store = await AlarmEventStore.open(url)
    try:
        assert [e.state for e in await store.history()] == ["cleared", "fired"]
    finally:
        await store.aclose()


def pipeline_file(tmp_path: Path, alarms: dict[str, Any]) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"sources": [{"url": "file://rig.wits"}], "alarms": alarms}))
    return path


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        pytest.param(
            {"url": "ftp://ops.example/alarms", "secret_env": "HOME"},
            "alarms.webhooks.0.url: must be an http:// or https:// URL with a host, not ftp://",
            id="not-http",
        ),
        pytest.param(
            {"url": "http://localhost:8080/api/v1/alarms", "secret_env": "HOME"},
            "alarms.webhooks.0.url: points at this WitsKit service (localhost:8080, from WITS_HOST and "
            "WITS_PORT); a webhook must go to another system",
            id="the-service-itself",
        ),
        pytest.param(
            {"url": "https://ops.example/alarms"},
            "alarms.webhooks.0: needs secret_env: (the name of a variable holding the HMAC key) or secret:",
            id="no-secret",
        ),
        pytest.param(
            {"url": "https://ops.example/alarms", "secret_env": "WITSKIT_TEST_UNSET_VARIABLE"},
            "alarms.webhooks.0.secret_env: the environment variable WITSKIT_TEST_UNSET_VARIABLE is not set "
            "(or empty)",
            id="unset-secret",
        ),
        pytest.param(
            {"url": "https://ops.example/alarms", "secret": "short"},
            "alarms.webhooks.0.secret: must be at least 16 bytes (a guessable key signs nothing)",
            id="short-secret",
        ),
    ],
)
def test_a_bad_webhook_is_refused_when_the_file_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: dict[str, Any], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.wits").write_bytes(b"")
    for name in ("WITS_HOST", "WITS_PORT", "WITSKIT_TEST_UNSET_VARIABLE"):
        monkeypatch.delenv(name, raising=False)
    path = pipeline_file(tmp_path, {"rules": [RULE], "webhooks": [hook]})
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, plan_problems)
    assert str(caught.value) == f"{path}: invalid pipeline:\n  {message}"


def test_a_bad_rule_in_the_file_is_refused_with_every_other_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.wits").write_bytes(b"")
    rules = [
        {**RULE, "code": "0999"},
        {"name": "r", "type": "rate", "code": "0114", "fall": 5, "window_seconds": 0},
    ]
    path = pipeline_file(tmp_path, {"rules": rules, "queue_size": 0})
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, plan_problems)
    assert str(caught.value).splitlines() == [
        f"{path}: invalid pipeline:",
        "  alarms.queue_size: Input should be greater than or equal to 1 (got 0)",
        "  alarms.rules.0.code: unknown WITS code '0999' (not in the dictionary; add it with an overlay)",
        "  alarms.rules.1.window_seconds: must be more than 0 seconds (got 0)",
    ]


def test_a_file_without_alarms_has_no_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.wits").write_bytes(b"")
    path = tmp_path / "pipeline.yaml"
    path.write_text("sources:\n  - url: file://rig.wits\n")
    assert alarm_stage(load_pipeline(path, plan_problems)) is None


async def test_witskit_stream_runs_the_alarms_of_its_pipeline_file(
    tmp_path: Path, receiver: Receiver
) -> None:
    """End to end: a recorded feed through ``witskit stream --config``: events stored and sent."""
    import sys

    from support.commands import clean_env
    from witskit.protocol import encode_frame
    from witskit.storage.alarm_events import AlarmEventStore

    pressures = [2000] * 5 + [3100] * 10 + [2000] * 10
    raw = b"".join(
        encode_frame([("0105", 260101), ("0106", 60000 + i), ("0121", v)]) for i, v in enumerate(pressures)
    )
    (tmp_path / "rig.wits").write_bytes(raw)
    db = f"sqlite:///{tmp_path / 'rig.db'}"
    plan = {
        "sources": [{"url": "file://rig.wits", "name": "rig-7"}],
        "sinks": [{"url": db}],
        "spool": {"dir": str(tmp_path / "spool")},
        "alarms": {
            "rules": [{**RULE, "for_seconds": 2}],
            "webhooks": [{"url": receiver.url, "secret_env": "ALARM_KEY"}],
        },
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(plan))
    env = clean_env(ALARM_KEY=SECRET.decode(), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "witskit",
        "stream",
        "--config",
        "pipeline.yaml",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert "warning: alarm spp-high fired on rig-7: 0121 = 3100 PSI (warning)" in stderr.decode()
    assert [json.loads(body)["state"] for _, body in receiver.requests] == ["fired", "cleared"]
    assert all(signed_correctly(h, b) for h, b in receiver.requests)
    store = await AlarmEventStore.open(db)
    try:
        history = await store.history(source="rig-7")
    finally:
        await store.aclose()
    assert [(e.state, e.time.second) for e in history] == [("cleared", 17), ("fired", 7)]


DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def doc_block(kind: str) -> str:
    """The first ``kind`` block under docs/analytics.md's '### In the pipeline file'."""
    section = DOC.read_text(encoding="utf-8").split("### In the pipeline file", 1)[1]
    return section.split(f"```{kind}\n", 1)[1].split("```", 1)[0]


def test_the_documented_pipeline_file_loads_with_its_five_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WITSKIT_WEBHOOK_KEY", SECRET.decode())
    (tmp_path / "pipeline.yaml").write_text(doc_block("yaml"))
    stage = alarm_stage(load_pipeline("pipeline.yaml", plan_problems))
    assert stage is not None
    assert [(r.name, r.type.value) for r in stage.engine.rules] == [
        ("spp-high", "threshold"),
        ("hookload-drop", "rate"),
        ("flow-imbalance", "difference"),
        ("kick-pit-gain", "pit_gain"),
        ("kick-flow-out", "flow_out_rise"),
    ]
    assert stage.store_url == "sqlite:///rig.db"


def test_the_documented_problems_are_what_loading_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("WITS_HOST", "WITS_PORT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "rig.wits").write_bytes(b"")
    rules = [
        {**RULE, "code": "0999"},
        {**RULE, "name": "b", "unit": "M"},
        {"name": "c", "type": "rate", "code": "0114", "fall": 5, "window_seconds": 0},
    ]
    hooks = [
        {"url": "ftp://ops.example.com/x", "secret_env": "HOME"},
        {"url": "http://localhost:8080/x", "secret_env": "HOME"},
    ]
    path = pipeline_file(tmp_path, {"rules": rules, "webhooks": hooks})
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path.name, plan_problems)
    assert str(caught.value) == doc_block("text").strip()


def test_a_rule_may_name_a_code_of_the_files_overlay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rig.wits").write_bytes(b"")
    (tmp_path / "overlay.csv").write_text(
        "code,record,item,mnemonic,long_mnemonic,description,type,length,metric_unit,fps_unit\n"
        "6301,63,1,GASX,GASX,Vendor gas,F,4,%,%\n"
    )
    plan = {
        "sources": [{"url": "file://rig.wits"}],
        "decoder": {"overlay": "overlay.csv"},
        "alarms": {"rules": [{"name": "gas", "type": "threshold", "code": "6301", "above": 5}]},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(plan))
    assert load_pipeline("pipeline.yaml", plan_problems).alarms is not None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.0.0.7", "private"),
        ("192.168.1.2", "private"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "not a public"),
        ("0.0.0.0", "private"),
    ],
)
def test_addresses_a_public_only_webhook_may_not_reach(address: str, kind: str) -> None:
    assert address_problem(address) == f"{address.removeprefix('::ffff:')} is a {kind} address"


def test_public_addresses_are_allowed() -> None:
    assert address_problem("93.184.215.14") is None
    assert address_problem("2606:4700::1111") is None


async def test_a_public_only_webhook_refuses_a_name_that_resolves_to_loopback_at_each_attempt(
    receiver: Receiver,
) -> None:
    # "localhost" is what a rebinding name turns into after the check: refused at the attempt,
    # not retried, and the receiver on loopback never sees a request.
    url = receiver.url.replace("127.0.0.1", "localhost")
    target = WebhookTarget(url, SECRET, public_only=True, backoff_factor=0.01)
    sender = WebhookSender([target])
    sender.start()
    try:
        sender.offer({"event_id": "e1", "rule": "r"})
        assert await sender.drain(10)
    finally:
        await sender.aclose()
    assert (target.sent, target.failed) == (0, 1)
    assert receiver.requests == []


async def test_a_public_only_request_goes_to_the_checked_address_with_the_host_name_kept() -> None:
    from witskit.pipeline.webhooks import _pinned

    assert await _pinned("https://93.184.215.14:8443/hook?x=1") == (
        "https://93.184.215.14:8443/hook?x=1",
        "93.184.215.14:8443",
        "93.184.215.14",
    )
    assert await _pinned("http://[2606:4700::1111]/hook") == (
        "http://[2606:4700::1111]/hook",
        "[2606:4700::1111]",
        "2606:4700::1111",
    )
