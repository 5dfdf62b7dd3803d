"""``GET /api/v1/data/las`` and ``/data/witsml``: the documents ``witskit export`` writes, from the
service's store; every refusal a 4xx naming what is missing; bounded in size, time and concurrency.

A real service on a real SQLite file (``service_helpers.running_service``), through its ASGI app.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import lasio
import pytest
from service_helpers import Running, make_config, reset_logging, running_service

from support.waiting import until
from witskit.export import ExportFormat, ExportRequest, IndexKind, WitsmlVersion, render
from witskit.export.table import clean_text
from witskit.security.logging import configure_logging
from witskit.service.routes.exports import ExportSlots, content_disposition

LAS = "/api/v1/data/las"
WITSML = "/api/v1/data/witsml"


@pytest.fixture
async def rig(tmp_path: Path, sim_frames: Callable[..., list[Any]]) -> AsyncIterator[Running]:
    """A serving-only service whose store holds 120 frames (records 1 and 2) of ``rig-7``."""
    async with running_service(make_config(tmp_path), ingest=False) as running:
        await running.service.store.write(sim_frames("rig-7", 120))
        yield running


async def test_las_by_depth_is_the_document_render_writes(rig: Running) -> None:
    params = {"source": "rig-7", "codes": "0108,0113,0116", "index": "depth", "step": "0.5"}
    response = await rig.client.get(LAS, params=params, headers=rig.auth("viewer"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"rig-7_depth.las\"; filename*=UTF-8''rig-7_depth.las"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    request = ExportRequest("rig-7", ["0108", "0113", "0116"], IndexKind.depth, step=0.5, tz=UTC)
    assert response.content == await render(rig.service.store, request, ExportFormat.las)
    las = lasio.read(io.StringIO(response.text))
    assert [c.mnemonic for c in las.curves] == ["DEPT", "DBTM", "ROPA", "WOBA"]
    assert len(las["DEPT"]) > 3


async def test_repeated_and_comma_separated_codes_are_the_same_request(rig: Running) -> None:
    auth = rig.auth("viewer")
    one = await rig.client.get(LAS, params={"source": "rig-7", "codes": "ROPA,WOBA"}, headers=auth)
    two = await rig.client.get(
        LAS, params=[("source", "rig-7"), ("codes", "ROPA"), ("codes", "WOBA")], headers=auth
    )
    assert one.status_code == two.status_code == 200
    assert one.content == two.content


@pytest.mark.parametrize("version", ["1.4.1.1", "2.0"])
async def test_witsml_of_each_version_is_the_document_render_writes(rig: Running, version: str) -> None:
    params = {"source": "rig-7", "codes": "ROPA,WOBA", "version": version}
    response = await rig.client.get(WITSML, params=params, headers=rig.auth("viewer"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    assert 'filename="rig-7_time.xml"' in response.headers["content-disposition"]
    request = ExportRequest("rig-7", ["ROPA", "WOBA"], IndexKind.time, tz=UTC)
    expected = await render(rig.service.store, request, ExportFormat.witsml, WitsmlVersion(version))
    # WITSML 2.0's citation carries the second it was made: the two renders may straddle a second.
    creation = re.compile(rb"<eml:Creation>[^<]*</eml:Creation>")
    assert creation.sub(b"", response.content) == creation.sub(b"", expected)


async def test_the_well_and_uids_come_from_the_settings(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    config = make_config(
        tmp_path,
        well_name="Smith 4H",
        witsml_well_uid="W-{source}",
        witsml_wellbore_uid="WB-1",
        wells={"rig-7": {"log_uid": "{source}-{index}-log", "name": "Jones 2"}},
    )
    async with running_service(config, ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 60))
        await svc.service.store.write(sim_frames("rig-8", 60))
        auth = svc.auth("viewer")
        xml = await svc.client.get(WITSML, params={"source": "rig-7", "codes": "ROPA"}, headers=auth)
        assert xml.status_code == 200, xml.text
        assert '<log uidWell="W-rig-7" uidWellbore="WB-1" uid="rig-7-time-log">' in xml.text
        assert "<nameWell>Jones 2</nameWell>" in xml.text
        other = await svc.client.get(
            LAS, params={"source": "rig-8", "codes": "ROPA", "index": "time"}, headers=auth
        )
        assert lasio.read(io.StringIO(other.text)).well["WELL"].value == "Smith 4H"


async def test_an_unknown_source_is_404(rig: Running) -> None:
    for path in (LAS, WITSML):
        response = await rig.client.get(
            path, params={"source": "rig-9", "codes": "ROPA"}, headers=rig.auth("viewer")
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "no source 'rig-9'"}
    nul = await rig.client.get(LAS, params={"source": "rig\x00", "codes": "ROPA"}, headers=rig.auth("viewer"))
    assert nul.status_code == 404


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"codes": "ROPX"}, "unknown code 'ROPX': neither a 4-digit code nor a WITS mnemonic"),
        ({"codes": "ROPA", "start": "2030-01-01"}, "no data for ROPA in rig-7 from 2030-01-01T00:00:00"),
        ({"codes": "ROPA", "start": "yesterday"}, "start"),
        ({"codes": "WID"}, "is text; a log holds numbers only"),
        ({"codes": ""}, "no codes asked for"),
        ({"codes": ",".join(["ROPA"] * 101)}, "one export takes at most 100"),
    ],
    ids=["unknown-code", "empty-range", "bad-time", "text-item", "no-codes", "too-many-codes"],
)
async def test_a_bad_request_is_422_naming_what_is_missing(
    rig: Running, params: dict[str, str], detail: str
) -> None:
    response = await rig.client.get(LAS, params={"source": "rig-7", **params}, headers=rig.auth("viewer"))
    assert response.status_code == 422, response.text
    assert detail in str(response.json()["detail"])


async def test_a_depth_index_without_depth_items_names_them(tmp_path: Path) -> None:
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    data = b"".join(DrillingSimulator(7, records=(2,)).frames(20))
    frames = [f for f in iter_decode(data, source="mudlog") if isinstance(f, DecodedFrame)]
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        await svc.service.store.write(frames)
        code = next(c for c in frames[0].codes if c.startswith("02") and c > "0207")
        response = await svc.client.get(
            LAS, params={"source": "mudlog", "codes": code, "index": "depth"}, headers=svc.auth("viewer")
        )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("no DBTM (0108, ")
    assert "a depth index is built from it" in response.json()["detail"]


@pytest.mark.parametrize("step", ["0", "-1", "nan", "inf", "1e7"])
async def test_a_step_that_is_not_a_positive_number_is_refused(rig: Running, step: str) -> None:
    response = await rig.client.get(
        LAS, params={"source": "rig-7", "codes": "ROPA", "step": step}, headers=rig.auth("viewer")
    )
    assert response.status_code == 422


async def test_a_document_over_the_value_limit_is_refused_before_it_is_built(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    async with running_service(make_config(tmp_path, export_max_values=1000), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 600))
        auth = svc.auth("viewer")
        # 600 frames of record 1 at 1 s: 600 rows x 2 channels.
        big = await svc.client.get(
            LAS, params={"source": "rig-7", "codes": "0113,0116", "index": "time"}, headers=auth
        )
        assert big.status_code == 422
        assert big.json()["detail"] == (
            "the log would hold more than 1,000 values (2 channels): "
            "ask for a shorter range, fewer codes or a larger step"
        )
        # A larger step fits.
        small = await svc.client.get(
            LAS, params={"source": "rig-7", "codes": "0113,0116", "index": "time", "step": 10}, headers=auth
        )
        assert small.status_code == 200, small.text


async def test_an_export_past_the_time_limit_stops_and_says_so(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    async with running_service(make_config(tmp_path, export_timeout=1e-6), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 30))
        response = await svc.client.get(
            WITSML, params={"source": "rig-7", "codes": "ROPA"}, headers=svc.auth("viewer")
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "the export took longer than 1e-06 s (WITS_EXPORT_TIMEOUT): "
            "ask for a shorter range or fewer codes"
        )
        await until(lambda: ExportSlots.of(svc.service.app, 1).active == 0)  # the worker's slot is back


async def test_exports_beyond_the_concurrency_limit_are_refused_not_queued(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    async with running_service(make_config(tmp_path, export_max_concurrent=2), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 30))
        app = svc.service.app
        params = {"source": "rig-7", "codes": "ROPA"}
        slots = ExportSlots.of(app, 2)
        assert slots.limit == 2
        # Two exports being built (their slots held as a worker holds them): a third is refused.
        assert slots.take()
        assert slots.take()
        refused = await svc.client.get(LAS, params=params, headers=svc.auth("viewer"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["detail"] == (
            "the service builds 2 export(s) at a time (WITS_EXPORT_MAX_CONCURRENT) and is building them "
            "now; try again shortly"
        )
        slots.give()
        served = await svc.client.get(LAS, params=params, headers=svc.auth("viewer"))
        assert served.status_code == 200
        assert slots.active == 1  # its own slot is back
        slots.give()
        # Two at once, really, of two users: both served, and every slot free afterwards.
        both = await asyncio.gather(
            svc.client.get(LAS, params=params, headers=svc.auth("viewer")),
            svc.client.get(WITSML, params=params, headers=svc.auth("operator")),
        )
        assert [r.status_code for r in both] == [200, 200]
        assert slots.active == 0


async def test_one_caller_builds_one_export_at_a_time(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    """So that one account cannot hold every slot: its second export at once is 429, another
    user's is served."""
    config = make_config(tmp_path, export_max_concurrent=2)
    async with running_service(config, ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 30))
        params = {"source": "rig-7", "codes": "ROPA"}
        slots = ExportSlots.of(svc.service.app, 2)
        assert slots.limit == 2
        assert slots.take("viewer")  # the viewer's export being built
        mine = await svc.client.get(WITSML, params=params, headers=svc.auth("viewer"))
        assert mine.status_code == 429
        assert mine.headers["retry-after"] == "10"
        assert mine.json()["detail"] == "an export of yours is being built; one at a time per user"
        other = await svc.client.get(WITSML, params=params, headers=svc.auth("operator"))
        assert other.status_code == 200
        slots.give("viewer")
        again = await svc.client.get(WITSML, params=params, headers=svc.auth("viewer"))
        assert again.status_code == 200
        assert slots.active == 0


async def test_an_export_whose_client_leaves_stops_and_frees_its_slot(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 3000))
        slots = ExportSlots.of(svc.service.app, svc.service.config.export_max_concurrent)
        assert slots.limit == 1  # the default
        params = {"source": "rig-7", "codes": "DBTM,DMEA,ROPA,WOBA,HKLA,RPMA,TQA,SPPA", "index": "time"}
        leaving = asyncio.create_task(svc.client.get(LAS, params=params, headers=svc.auth("viewer")))
        await until(lambda: slots.active == 1, timeout=10, interval=0.001)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        # The worker holds the slot until it stops, at its next batch.
        await until(lambda: slots.active == 0, timeout=10)
        params = {"source": "rig-7", "codes": "ROPA"}
        served = await svc.client.get(LAS, params=params, headers=svc.auth("viewer"))
        assert served.status_code == 200


async def test_the_event_loop_keeps_serving_while_an_export_is_built(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    """The document is built in a worker thread: a cheap request is answered meanwhile."""
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 3000))
        auth = svc.auth("viewer")
        export = asyncio.create_task(
            svc.client.get(
                WITSML,
                params={"source": "rig-7", "codes": "DBTM,DMEA,ROPA,WOBA,HKLA,RPMA,TQA,SPPA"},
                headers=auth,
            )
        )
        answered_during = 0
        while not export.done():
            quick = await svc.client.get("/api/v1/symbols/ROPA", headers=auth)
            assert quick.status_code == 200
            answered_during += 0 if export.done() else 1
        assert (await export).status_code == 200
        # Inline, the loop would answer one at most (before the build starts).
        assert answered_during > 5


@pytest.mark.parametrize(
    "name",
    ['rig "7"; filename=evil.sh', "../../etc/passwd", "Bohrung Ä-7\r\nX-Injected: 1", "..."],
)
def test_the_file_name_cannot_add_a_header_or_a_path(name: str) -> None:
    header = content_disposition(name, IndexKind.depth, "las")
    header.encode("ascii")  # nothing a header cannot carry
    assert "\r" not in header
    assert "\n" not in header
    plain = header.split('filename="', 1)[1].split('"', 1)[0]
    assert not set('/";') & set(plain)
    assert not plain.startswith(".")
    assert plain.endswith("_depth.las")
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert all(c.isalnum() or c in "%-._~" for c in encoded)
    assert clean_text(name, 100) != "" or plain == "export_depth.las"


async def test_a_source_name_that_is_no_file_name_gets_a_safe_one(
    tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    name = 'Bohrung "Ä-7"; x=1'
    async with running_service(make_config(tmp_path), ingest=False) as svc:
        await svc.service.store.write(sim_frames(name, 30))
        response = await svc.client.get(
            LAS, params={"source": name, "codes": "ROPA", "index": "time"}, headers=svc.auth("viewer")
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        'attachment; filename="Bohrung_-7_x_1_time.las"; '
        "filename*=UTF-8''Bohrung%20%22%C3%84-7%22%3B%20x%3D1_time.las"
    )


async def test_what_the_logs_show_at_debug(rig: Running) -> None:
    """The service's log output at ``WITS_LOG_LEVEL=DEBUG`` during an export: one line with names
    and sizes; never a value of the document, never a credential, and not lasio's line per row."""
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        token = rig.tokens["viewer"]
        response = await rig.client.get(
            LAS, params={"source": "rig-7", "codes": "0113", "index": "time"}, headers=rig.auth("viewer")
        )
    finally:
        reset_logging()
    assert response.status_code == 200
    logged = stream.getvalue()
    events = [json.loads(line) for line in logged.splitlines()]
    lines = [e["event"] for e in events if e.get("logger") == "witskit.service.exports"]
    assert len(lines) == 1
    assert lines[0].startswith("export las of 'rig-7' (time index, 1 codes): ")
    assert f"{len(response.content)} bytes" in lines[0]
    assert lines[0].endswith("for viewer")
    assert not [e for e in events if str(e.get("logger", "")).startswith("lasio")]
    assert token not in logged
    values = lasio.read(io.StringIO(response.text))["ROPA"]
    assert len(values) > 100
    assert not any(f"{v:.2f}" in logged for v in values if v == v)  # NaN: no reading


async def test_each_backend_serves_the_document_render_writes(
    db_url: str, tmp_path: Path, sim_frames: Callable[..., list[Any]]
) -> None:
    """The worker reads on a connection of its own: the same document from SQLite, PostgreSQL and
    MariaDB as render() over the service's store."""
    async with running_service(make_config(tmp_path, database_url=db_url), ingest=False) as svc:
        await svc.service.store.write(sim_frames("rig-7", 60))
        params = {"source": "rig-7", "codes": "0108,0113", "index": "depth"}
        response = await svc.client.get(LAS, params=params, headers=svc.auth("viewer"))
        assert response.status_code == 200, response.text
        request = ExportRequest("rig-7", ["0108", "0113"], IndexKind.depth, tz=UTC)
        assert response.content == await render(svc.service.store, request, ExportFormat.las)
