"""The Parquet archive: layout and columns, idempotence, bad files, the retention gate, S3, kill -9.

Real components only: stores on SQLite and PostgreSQL, a local directory, a real S3-compatible
server (``moto_server`` from PyPI, started as a subprocess on a free 127.0.0.1 port), and a real
``witskit archive`` subprocess killed with SIGKILL half way and run again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.ci import in_ci
from support.waiting import wait_until
from witskit.storage import Store
from witskit.storage.archive import ARCHIVE_COLUMNS, Archive, ArchiveError, archive_days, is_archived
from witskit.storage.retention import RetentionPolicy

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def day_frames(source: str, day: int, steps: int = 20, seed: int = 1) -> list[Any]:
    """``steps`` record-1 frames (30 points each) at noon of 2026-03-(day+1)."""
    from witskit.protocol import DecodedFrame, iter_decode
    from witskit.simulator import DrillingSimulator

    start = DAY0 + timedelta(days=day, hours=12)
    data = b"".join(DrillingSimulator(seed + day, records=(1,), start=start).frames(steps))
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


async def fill(store: Store, source: str = "rig/7", days: int = 3) -> None:
    for d in range(days):
        await store.write(day_frames(source, d))


#: Days a long ``witskit archive`` run has to write (long enough to be caught in the middle).
ARCHIVE_RUN_DAYS = 40


def archive_run(tmp_path: Path) -> tuple[str, Path, Path, list[str]]:
    """A SQLite store of ``ARCHIVE_RUN_DAYS`` days of source ``rig`` (60 frames a day), and the
    ``witskit archive`` command that archives them all: (db URL, archive root, the source's
    manifest directory, command)."""
    db = f"sqlite:///{tmp_path / 'w.db'}"

    async def setup() -> None:
        store = await Store.open(db)
        try:
            for d in range(ARCHIVE_RUN_DAYS):
                await store.write(day_frames("rig", d, steps=60))
        finally:
            await store.aclose()

    asyncio.run(setup())
    root = tmp_path / "archive"
    cmd = [sys.executable, "-m", "witskit", "archive", "--db", db, "--to", str(root), "--until", "2026-06-01"]
    return db, root, root / "_manifest" / "source=rig", cmd


def hot_rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    """(time, source, code, value, text, frame key) of query rows, as the archive holds them."""
    out = []
    for r in rows:
        text = r.value if isinstance(r.value, str) else None
        num = None if text is not None or r.value is None else float(r.value)
        out.append((r.time, r.source, r.code, num, text, r.frame_key))
    return sorted(out, key=repr)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'w.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


async def test_closed_days_become_hive_parquet_files_with_every_value(url: str, tmp_path: Path) -> None:
    archive = Archive(str(tmp_path / "archive"))
    store = await Store.open(url, timeout=10)
    try:
        await fill(store)
        report = await archive_days(store, archive, until=DAY0 + timedelta(days=2))  # days 0 and 1
        assert [(e.source, e.date, e.rows, e.frames) for e in report.written] == [
            ("rig/7", "2026-03-01", 600, 20),
            ("rig/7", "2026-03-02", 600, 20),
        ]
        files = sorted(
            p.relative_to(tmp_path / "archive").as_posix() for p in (tmp_path / "archive").rglob("*.parquet")
        )
        assert files == [
            "source=rig%2F7/date=2026-03-01/part-0.parquet",
            "source=rig%2F7/date=2026-03-02/part-0.parquet",
        ]
        meta = pq.ParquetFile(tmp_path / "archive" / files[0]).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        # Read as any engine would: the directory, Hive partitioning, nothing else.
        table = ds.dataset(tmp_path / "archive", format="parquet", partitioning="hive").to_table()
        assert set(ARCHIVE_COLUMNS) <= set(table.column_names)
        assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
        got = sorted(
            (
                (r["time"], r["source"], r["code"], r["value"], r["text"], r["frame_key"])
                for r in table.select(["time", "source", "code", "value", "text", "frame_key"]).to_pylist()
            ),
            key=repr,
        )
        want = hot_rows([r async for r in store.query("rig/7", end=DAY0 + timedelta(days=2))])
        assert got == want
        mnemonic = {r["code"]: (r["mnemonic"], r["unit"]) for r in table.to_pylist()}
        assert mnemonic["0108"] == ("DBTM", "F")

        again = await archive_days(store, archive, until=DAY0 + timedelta(days=2))
        assert (again.written, again.skipped) == ([], 2)
        # A late frame of an archived day: that day (only) is written again, whole.
        await store.write(day_frames("rig/7", 1, steps=21)[20:])
        third = await archive_days(store, archive, until=DAY0 + timedelta(days=2))
        assert [(e.date, e.frames) for e in third.written] == [("2026-03-02", 21)]
    finally:
        await store.aclose()


async def test_bad_archive_files_are_named_and_never_count_as_archived(tmp_path: Path) -> None:
    archive = Archive(str(tmp_path / "a"))
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        await fill(store, "rig", days=3)
        await archive_days(store, archive, until=DAY0 + timedelta(days=3))
        day0, day1, day2 = (date(2026, 3, d) for d in (1, 2, 3))
        end = DAY0 + timedelta(days=3)
        assert await is_archived(store, archive, "rig", DAY0, end)

        # A corrupt file, a foreign Parquet file, a manifest entry whose file is missing.
        Path(archive.data_path("rig", day0)).write_bytes(b"PAR1 not really")
        pq.write_table(pa.table({"a": [1]}), archive.data_path("rig", day1))
        os.remove(archive.data_path("rig", day2))
        for day, why in ((day0, "bytes, its manifest says"), (day2, "is missing")):
            entry = archive.entry("rig", day)
            assert entry is not None
            with pytest.raises(ArchiveError, match=why) as err:
                archive.verify(entry)
            assert archive.data_path("rig", day) in str(err.value)
        entry = archive.entry("rig", day1)
        assert entry is not None
        foreign = archive.data_path("rig", day1)
        entry = type(entry)(**{**entry.__dict__, "bytes": os.path.getsize(foreign)})
        with pytest.raises(ArchiveError, match="not a WitsKit archive file"):
            archive.verify(entry)
        assert not await is_archived(store, archive, "rig", DAY0, end)

        # Retention keeps what is not verifiably archived; a rerun repairs the archive.
        async def gate(source: str, lo: datetime, hi: datetime) -> bool:
            return await is_archived(store, archive, source, lo, hi)

        report = await store.retention(
            RetentionPolicy(1), apply=True, now=end + timedelta(days=2), archived=gate
        )
        assert report.removed == []
        assert "not in the archive yet" in report.kept[0]
        assert len([r async for r in store.query("rig")]) == 3 * 600
        repaired = await archive_days(store, archive, until=end)
        assert sorted(e.date for e in repaired.written) == ["2026-03-01", "2026-03-02", "2026-03-03"]
        report = await store.retention(
            RetentionPolicy(1), apply=True, now=end + timedelta(days=2), archived=gate
        )
        assert report.points == 3 * 600
        # A manifest entry that is not JSON is named too.
        Path(archive.manifest_path("rig", day0)).write_text("{oops")
        with pytest.raises(ArchiveError, match=r"date=2026-03-01\.json"):
            archive.entries()
    finally:
        await store.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A real moto S3 server on 127.0.0.1 (its endpoint), stopped afterwards."""
    try:
        import moto  # noqa: F401
    except ModuleNotFoundError:
        if in_ci():
            pytest.fail("the archive's S3 tests need moto[server] (CI=true)")
        pytest.skip("the archive's S3 tests need moto[server]: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, timeout=30, what="moto_server to listen")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_an_s3_compatible_bucket_holds_the_same_archive(s3_server: str, tmp_path: Path) -> None:
    from pyarrow import fs as pafs

    s3 = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        scheme="http",
        endpoint_override=s3_server,
        allow_bucket_creation=True,
    )
    s3.create_dir("wits-archive")
    archive = Archive("wits-archive/fleet", filesystem=s3)
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        await fill(store, "rig-1", days=2)
        report = await archive_days(store, archive, until=DAY0 + timedelta(days=2))
        assert len(report.written) == 2
        assert [e.date for e in archive.entries()] == ["2026-03-01", "2026-03-02"]
        assert await is_archived(store, archive, "rig-1", DAY0, DAY0 + timedelta(days=2))
        table = ds.dataset(
            "wits-archive/fleet", filesystem=s3, format="parquet", partitioning="hive"
        ).to_table()
        assert table.num_rows == 1200
        again = await archive_days(store, archive, until=DAY0 + timedelta(days=2))
        assert again.skipped == 2
    finally:
        await store.aclose()


def test_s3_keys_in_the_archive_location_are_never_shown(s3_server: str, tmp_path: Path) -> None:
    """``s3://KEY:SECRET@bucket/prefix`` is how pyarrow takes keys in a URI (and WITS_ARCHIVE_URL):
    the secret is in no repr, no error and no line of ``witskit archive``."""
    from witskit.errors import UsageError

    secret = "wJalrXUtnFEMI-do-not-show"
    location = (
        f"s3://testing:{secret}@wits-archive/fleet?scheme=http&endpoint_override={s3_server}"
        "&region=us-east-1&allow_bucket_creation=true"
    )
    assert secret not in repr(Archive(location))
    with pytest.raises(UsageError) as err:
        Archive(location + "&no_such_option=1")
    assert "no_such_option" in str(err.value)
    assert secret not in str(err.value)

    db = f"sqlite:///{tmp_path / 'w.db'}"

    async def filled() -> None:
        store = await Store.open(db)
        try:
            await fill(store, "rig-1", days=1)
        finally:
            await store.aclose()

    asyncio.run(filled())
    cmd = [sys.executable, "-m", "witskit", "archive", "--db", db, "--to", location, "--until", "2026-03-02"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 day(s) written" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_a_killed_archive_run_leaves_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    days = ARCHIVE_RUN_DAYS
    _, root, manifest, cmd = archive_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: manifest.is_dir() and len(list(manifest.iterdir())) >= 3,
            timeout=60,
            interval=0.01,
            what="three days archived",
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(manifest.iterdir()))
    assert done_before < days, "the run finished before it was killed: nothing was tested"

    rerun = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    archive = Archive(str(root))
    entries = archive.entries()
    assert [e.date for e in entries] == [
        (date(2026, 3, 1) + timedelta(days=d)).isoformat() for d in range(days)
    ]
    assert not list(root.rglob(".tmp-*"))
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == days * 60 * 30
    keys = table.select(["frame_key", "idx"]).to_pylist()
    assert len({(k["frame_key"], k["idx"]) for k in keys}) == len(keys)  # no duplicate
    for entry in entries:
        archive.verify(entry)


def test_a_second_archive_run_at_once_never_breaks_the_first(tmp_path: Path) -> None:
    """Two runs at once (a cron job and a hand-run one): the second's clean-up took the first's
    temporary file for a killed run's and removed it mid-write, and the first failed. Now the
    second is refused by name while the first runs, and the first completes."""
    days = ARCHIVE_RUN_DAYS
    db, root, manifest, cmd = archive_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    refusals = 0
    try:
        wait_until(manifest.is_dir, timeout=60, interval=0.01, what="the first run writing")

        async def second() -> None:
            nonlocal refusals
            store = await Store.open(db)
            try:
                for _ in range(200):  # bounded: the first run takes a few seconds
                    if first.poll() is not None:
                        return
                    try:
                        await archive_days(store, Archive(str(root)), until=DAY0 + timedelta(days=1))
                    except ArchiveError as exc:
                        refusals += "another run is writing the archive" in str(exc)
                    await asyncio.sleep(0.005)
            finally:
                await store.aclose()

        asyncio.run(second())
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert refusals > 0, "the first run ended before the second tried (or it failed otherwise)"
    assert len(Archive(str(root)).entries()) == days


async def test_a_manifest_entry_names_only_its_own_file(tmp_path: Path) -> None:
    """Whoever can write a manifest entry cannot point it at another file: not another source's
    (its data would be read, and retention would drop hot rows, as this source's), not a file
    outside the archive (``../``)."""
    import json
    import shutil

    archive = Archive(str(tmp_path / "a"))
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        await fill(store, "rig-a", days=1)
        await store.write(day_frames("rig-b", 0, seed=9))
        await archive_days(store, archive, until=DAY0 + timedelta(days=1))
        day0 = date(2026, 3, 1)
        other = archive.data_path("rig-a", day0)
        outside = tmp_path / "outside" / "part-0.parquet"
        outside.parent.mkdir()
        shutil.copy(other, outside)
        manifest = Path(archive.manifest_path("rig-b", day0))
        good = json.loads(manifest.read_text())
        for path in (other[len(archive.root) + 1 :], "../outside/part-0.parquet", str(outside)):
            manifest.write_text(json.dumps({**good, "path": path, "bytes": outside.stat().st_size}))
            with pytest.raises(ArchiveError, match="does not name its own file") as err:
                archive.entry("rig-b", day0)
            assert str(manifest) in str(err.value)
            assert not await is_archived(store, archive, "rig-b", DAY0, DAY0 + timedelta(days=1))
    finally:
        await store.aclose()


def test_an_oversized_manifest_entry_is_refused_unread(tmp_path: Path) -> None:
    archive = Archive(str(tmp_path / "a"))
    day0 = date(2026, 3, 1)
    manifest = Path(archive.manifest_path("rig", day0))
    manifest.parent.mkdir(parents=True)
    with manifest.open("wb") as f:  # a 300 MB "entry" (sparse: no disk used)
        f.truncate(300 * 1024 * 1024)
    with pytest.raises(ArchiveError, match="larger than") as err:
        archive.entry("rig", day0)
    assert str(manifest) in str(err.value)


def _file_size_limit(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes; a write past it fails with EFBIG
    (SIGXFSZ ignored) instead of killing the process: a full disk for the files it writes."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_while_archiving_names_the_file_and_removes_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    # No small filesystem can be mounted here: RLIMIT_FSIZE in the child makes every file it
    # writes a real, size-limited one, so pyarrow's write of the day file really fails half way.
    # The store is PostgreSQL: its files are the server's, outside the limit (as on a rig, where
    # the archive's disk is not the database's).
    db = postgres_url

    async def setup() -> int:
        store = await Store.open(db)
        try:
            return await store.write(day_frames("rig", 0, steps=2000))
        finally:
            await store.aclose()

    stored = asyncio.run(setup())
    root = tmp_path / "archive"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    archive = [
        sys.executable,
        "-m",
        "witskit",
        "archive",
        "--db",
        db,
        "--to",
        str(root),
        "--until",
        "2026-06-01",
    ]
    run = subprocess.run(
        archive,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _file_size_limit(16_384),
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr
    day_file = root / "source=rig" / "date=2026-03-01"
    assert str(day_file) in run.stderr, run.stderr
    assert "File too large" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not list(root.rglob("*.parquet"))  # the partial file was removed
    assert not list(root.rglob(".tmp-*"))
    assert not list(root.rglob("*.json"))  # and no manifest entry claims the day

    # Retention with that archive removes nothing: the day is not verifiably archived.
    retention = [sys.executable, "-m", "witskit", "db", "retention", "--db", db, "--days", "1"]
    rerun = subprocess.run(
        [*retention, "--apply", "--archive", str(root)], check=False, env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 1, rerun.stderr  # something was kept
    assert "not in the archive yet" in rerun.stderr, rerun.stderr

    async def count() -> int:
        store = await Store.open(db)
        try:
            return sum(s.point_count for s in await store.sources()) and len(
                [r async for r in store.query("rig")]
            )
        finally:
            await store.aclose()

    assert asyncio.run(count()) == stored
