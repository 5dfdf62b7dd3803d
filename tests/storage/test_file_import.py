"""``witskit import``'s reader process: what it sends, how it stops, what it leaves behind."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from witskit.protocol import DecodedFrame, iter_decode
from witskit.simulator import DrillingSimulator
from witskit.storage.file_import import ReaderFailed, batch_gc, reader_batches
from witskit.storage.imports import HEAD_BYTES
from witskit.storage.prepare import frame_key, prepare_rows


def rig_log(path: Path, frames: int, garbage_after: int | None = None) -> bytes:
    chunks = list(DrillingSimulator(3, records=(1,)).frames(frames))
    if garbage_after is not None:
        chunks.insert(garbage_after, b"&&\r\n01xx\r\nnot wits at all\r\n")
    data = b"".join(chunks)
    path.write_bytes(data)
    return data


def job(path: Path, offset: int = 0, line: int = 1, name: str = "rig") -> tuple[str, str, int, int, int, str]:
    """A reader job for ``path`` as it is now, starting at ``offset``."""
    head = path.read_bytes()[:HEAD_BYTES] if path.exists() else b""
    return (str(path), name, offset, line, len(head), hashlib.sha256(head).hexdigest())


async def read_all(path: Path, offset: int = 0, line: int = 1, batch: int = 40) -> tuple[list, list[str]]:
    infos: list[str] = []
    async with reader_batches([job(path, offset, line)], batch, infos.append) as batches:
        events = [e async for e in batches]
    assert events[-1] == (0, None)  # the file's end
    return [b for _, b in events[:-1]], infos


async def test_the_reader_sends_every_frame_keyed_as_the_store_keys_it(tmp_path: Path) -> None:
    log = tmp_path / "rig.wits"
    data = rig_log(log, 100)
    got, infos = await read_all(log)
    assert infos == []
    assert [b.frames for b in got] == [40, 40, 20]
    assert sum(b.points for b in got) == sum(len(b.rows[0][5]) * len(b.rows) for b in got)
    decoded = [f for f in iter_decode(data, source="rig") if isinstance(f, DecodedFrame)]
    rows = [r for b in got for r in b.rows]

    def but_receive_time(rows: list) -> list:  # a file's frames are "received" as it is read
        return [(*r[:2], *r[3:]) for r in rows]

    assert but_receive_time(rows) == but_receive_time(prepare_rows(decoded, "rig")["rig"])
    assert [r[0] for r in rows] == [frame_key(f) for f in decoded]
    assert data.endswith(b"!!\r\n")
    assert got[-1].end == (len(data) - 2, data.count(b"\n"))  # just after the last "!!"


async def test_a_read_resumed_mid_file_gives_the_rest_and_names_bad_lines_by_file_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "rig.wits"
    data = rig_log(log, 60, garbage_after=50)
    first, infos = await read_all(log)
    [bad] = infos
    line = data[: data.index(b"&&\r\n01xx")].count(b"\n") + 1
    assert bad == f"{log}:{line}: frame cut short by a new '&&' before its '!!'"
    offset, line = first[0].end  # just after the first batch's last frame
    rest, infos_again = await read_all(log, offset, line)
    assert [r[0] for b in rest for r in b.rows] == [r[0] for b in first[1:] for r in b.rows]
    assert infos_again == infos  # the same line number, counted from where the read started


async def test_a_file_replaced_since_its_resume_point_was_chosen_is_read_from_its_start(
    tmp_path: Path,
) -> None:
    """Every file's start is chosen before the first is read, maybe an hour before: a file
    replaced meanwhile (another head, or shorter) is read whole, never from the old offset."""
    log = tmp_path / "rig.wits"
    rig_log(log, 100)
    first, _ = await read_all(log)
    stale = job(log, *first[0].end)
    other = b"".join(DrillingSimulator(9, records=(1,)).frames(100))
    for replacement in (other, other[: first[0].end[0] // 2]):  # another head; then shorter too
        log.write_bytes(replacement)
        changed: list[int] = []
        async with reader_batches([stale], 40, print, changed.append) as batches:
            got = [b async for _, b in batches if b is not None]
        assert changed == [0]
        frames = [f for f in iter_decode(replacement, source="rig") if isinstance(f, DecodedFrame)]
        assert sum(b.frames for b in got) == len(frames)
    log.write_bytes(other)
    again, _ = await read_all(log)
    same = job(log, *again[0].end)  # the same file: resumed where it was, nothing changed
    changed = []
    async with reader_batches([same], 40, print, changed.append) as batches:
        got = [b async for _, b in batches if b is not None]
    assert changed == []
    assert sum(b.frames for b in got) == 60


async def test_a_file_that_cannot_be_read_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReaderFailed, match=r"missing\.wits: cannot read: No such file"):
        await read_all(tmp_path / "missing.wits")


async def test_leaving_early_stops_the_reader_and_its_pipes(tmp_path: Path) -> None:
    """A stop mid-file (Ctrl-C, an error in the writer) kills the reader and reads its pipe to
    the end: with reading paused on a full pipe, asyncio never saw the exit (Ctrl-C hung)."""
    log = tmp_path / "rig.wits"
    rig_log(log, 3000)
    async with reader_batches([job(log)], 100, print) as batches:
        async for _ in batches:
            await asyncio.sleep(0.3)  # the reader fills the pipe meanwhile
            break
    assert not _readers(os.getpid())


async def test_a_reader_that_dies_mid_file_is_one_error_with_its_exit_status(tmp_path: Path) -> None:
    log = tmp_path / "rig.wits"
    rig_log(log, 3000)

    async def read_killing_the_reader() -> None:
        async with reader_batches([job(log)], 100, print) as batches:
            deadline = time.monotonic() + 10
            while not (pids := _readers(os.getpid())):
                assert time.monotonic() < deadline, "no reader process"
                await asyncio.sleep(0.01)
            os.kill(pids[0], signal.SIGKILL)
            async for _ in batches:  # what it sent before it died, then the error
                pass

    with pytest.raises(ReaderFailed, match=r"rig\.wits: the reader process stopped \(exit status -9\)"):
        await read_killing_the_reader()


async def test_one_reader_reads_every_file_in_turn_and_stops_at_the_first_it_cannot(tmp_path: Path) -> None:
    logs = [tmp_path / f"day{i}.wits" for i in range(3)]
    sizes = [len(rig_log(log, n)) for log, n in zip(logs, (50, 0, 30), strict=True)]
    jobs = [job(log, name=log.name) for log in logs]
    async with reader_batches(jobs, 40, print) as batches:
        events = [(i, b) async for i, b in batches]
    assert [(i, None if b is None else b.frames) for i, b in events] == [
        (0, 40),
        (0, 10),
        (0, None),
        (1, 0),  # an empty file: one empty batch, then its end
        (1, None),
        (2, 30),
        (2, None),
    ]
    ends = [b.end[0] for _, b in events if b is not None]
    assert ends[1:] == [sizes[0] - 2, 0, sizes[2] - 2]  # each just after its last "!!"
    jobs.insert(1, (str(tmp_path / "gone.wits"), "gone", 0, 1, 0, ""))
    seen: list[int] = []

    async def read() -> None:
        async with reader_batches(jobs, 40, print) as batches:
            async for i, _ in batches:
                seen.append(i)

    with pytest.raises(ReaderFailed, match=r"gone\.wits: cannot read"):
        await read()
    assert seen  # the first file whole, then the error
    assert set(seen) == {0}


async def test_the_reader_runs_this_package_not_one_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` puts the current directory first on the path: a ``witskit/`` left in the
    folder an import runs in would be run instead of the installed package."""
    trap = tmp_path / "here"
    (trap / "witskit" / "storage").mkdir(parents=True)
    marker = tmp_path / "ran"
    for init in (trap / "witskit" / "__init__.py", trap / "witskit" / "storage" / "__init__.py"):
        init.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (trap / "witskit" / "storage" / "file_import.py").write_text("raise SystemExit(3)\n")
    log = tmp_path / "rig.wits"
    rig_log(log, 50)
    monkeypatch.chdir(trap)
    got, _ = await read_all(log)
    assert sum(b.frames for b in got) == 50
    assert not marker.exists()


def _readers(parent: int) -> list[int]:
    """The reader processes whose parent is ``parent``."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"witskit.storage.file_import" in cmd and ppid == parent:
                out.append(int(pid))
    return out


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie left to a parent that does not reap is not)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def test_a_killed_import_leaves_no_reader_behind(tmp_path: Path) -> None:
    log = tmp_path / "rig.wits"
    rig_log(log, 20_000)
    db = tmp_path / "w.db"
    cmd = [sys.executable, "-m", "witskit", "import", str(log), "--db", f"sqlite:///{db}", "--batch", "500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (readers := _readers(proc.pid)):
            time.sleep(0.01)
        assert readers, "the import started no reader"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(readers):
        time.sleep(0.05)
    assert not _alive(readers)


def test_batch_gc_turns_the_collector_off_and_restores_it() -> None:
    assert gc.isenabled()
    with batch_gc() as collect:
        assert not gc.isenabled()
        assert collect() >= 0
    assert gc.isenabled()
    gc.disable()
    try:
        with batch_gc():
            pass
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()
