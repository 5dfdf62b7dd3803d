"""The alarm history on every backend: stored once per event id, read back newest first, acknowledged once."""

from __future__ import annotations

from datetime import timedelta

from support.crafted import T0, series
from support.leaks import no_leaks
from witskit.analytics.alarms import AlarmEngine, AlarmEvent, parse_rules
from witskit.storage.alarm_events import AlarmEventStore

RULE = {"name": "spp-high", "type": "threshold", "code": "0121", "above": 3000, "clear_seconds": 0}


def events(source: str) -> list[AlarmEvent]:
    engine = AlarmEngine(parse_rules([RULE]))
    return engine.feed_many(series("0121", [2000, 3100, 3100, 2000, 3200, 2000], source=source))


async def test_events_are_stored_once_and_read_back_newest_first(db_url: str, source_name: str) -> None:
    made = events(source_name)
    assert [e.state for e in made] == ["fired", "cleared", "fired", "cleared"]
    with no_leaks():
        store = await AlarmEventStore.open(db_url, timeout=10)
        try:
            assert await store.add(made) == 4
            assert await store.add(made[:2] + made[:2]) == 0  # a replay stores nothing new
            history = await store.history(source=source_name)
            assert [(h.state, h.time) for h in history] == [(e.state, e.time) for e in reversed(made)]
            first = history[-1]
            assert (first.rule, first.rule_type, first.severity, first.code, first.value, first.unit) == (
                "spp-high",
                "threshold",
                "warning",
                "0121",
                3100.0,
                "PSI",
            )
            assert first.message == made[0].message
            assert first.acknowledged_at is None
            window = await store.history(
                source=source_name, start=T0 + timedelta(seconds=2), end=T0 + timedelta(seconds=5)
            )
            assert [h.state for h in window] == ["fired", "cleared"]
            assert len(await store.history(source=source_name, limit=1)) == 1
            assert await store.history(source=source_name, rule="other") == []
        finally:
            await store.aclose()


async def test_an_event_is_acknowledged_once(db_url: str, source_name: str) -> None:
    made = events(source_name)
    with no_leaks():
        store = await AlarmEventStore.open(db_url, timeout=10)
        try:
            await store.add(made)
            assert await store.acknowledge(made[0].event_id, by="operator-1")
            assert not await store.acknowledge(made[0].event_id, by="operator-2")
            assert not await store.acknowledge("no-such-event", by="operator-1")
            [stored] = [h for h in await store.history(source=source_name) if h.event_id == made[0].event_id]
            assert stored.acknowledged_by == "operator-1"
            assert stored.acknowledged_at is not None
        finally:
            await store.aclose()
