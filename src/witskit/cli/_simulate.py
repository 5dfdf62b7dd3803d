"""``witskit simulate`` and ``witskit demo``: synthetic drilling data from :mod:`witskit.simulator`.

``simulate`` writes to stdout or a file, or, with ``--listen``, ``--connect`` or ``--serial``,
serves the stream like a rig's recorder through :class:`witskit.sim.server.RigServer`
(:func:`serve`). The simulator and the server are imported when a command runs, not when the CLI
starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, TYPE_CHECKING

from witskit.errors import FrameError, TransportError, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import ssl

    from witskit.protocol import Value
    from witskit.sim.model import DrillingSimulator
    from witskit.sim.server import Faults, RigServer

__all__ = [
    "LineEndingChoice",
    "ServeOptions",
    "parse_records",
    "parse_start",
    "run_demo",
    "serve",
    "simulator",
    "write_stream",
]

#: Frames joined into one write when not pacing in real time.
_BATCH = 256


class LineEndingChoice(StrEnum):
    """Line endings real feeds use."""

    crlf = "crlf"
    lf = "lf"
    cr = "cr"


def parse_records(text: str) -> tuple[int, ...]:
    """``"1,2,8"`` -> ``(1, 2, 8)``; anything else is a usage error."""
    records: list[int] = []
    for piece in text.split(","):
        part = piece.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 99:
            raise UsageError(f"--records: {part!r} is not a record number 1-99 (example: --records 1,2,8)")
        if int(part) not in records:
            records.append(int(part))
    if not records:
        raise UsageError("--records: give at least one record number (example: --records 1,2,8)")
    return tuple(records)


def parse_start(text: str | None) -> datetime:
    """An ISO 8601 time (naive means UTC), ``now``, or without one the simulator's fixed default.

    The fixed default keeps ``witskit simulate`` reproducible: same options, same bytes.
    """
    if text is None:
        from witskit.sim.model import DEFAULT_START

        return DEFAULT_START
    if text.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        start = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--start: {text!r} is not an ISO 8601 time (example: 2024-05-01T06:00:00Z)"
        ) from None
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def simulator(
    *,
    seed: int,
    start: datetime,
    rate: float,
    records: tuple[int, ...],
    line_ending: str,
    metric: bool,
    all_states: bool = False,
) -> DrillingSimulator:
    """A :class:`~witskit.simulator.DrillingSimulator` (imported now, on first use)."""
    from witskit.sim.model import DrillingSimulator

    if not rate > 0:
        raise UsageError(f"--rate must be a positive number of frames per second, got {rate}")
    return DrillingSimulator(
        seed,
        start=start,
        rate=rate,
        records=records,
        line_ending=line_ending,
        metric=metric,
        all_states=all_states,
    )


def write_stream(sim: DrillingSimulator, frames: int | None, sink: IO[bytes], *, realtime: bool) -> None:
    """Write the simulated stream: as fast as possible, or paced at the simulated rate."""
    if not realtime:
        batch: list[bytes] = []
        for data in sim.frames(frames):
            batch.append(data)
            if len(batch) >= _BATCH:
                sink.write(b"".join(batch))
                batch.clear()
        sink.write(b"".join(batch))
        sink.flush()
        return
    first: datetime | None = None
    wall0 = time.monotonic()
    for when, data in sim.events(frames):
        if first is None:
            first = when
        delay = (when - first).total_seconds() - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)
        sink.write(data)
        sink.flush()


# serving ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServeOptions:
    """Where ``simulate`` serves the stream (at least one of ``listen``, ``connect``, ``serial``)."""

    listen: str | None = None
    connect: str | None = None
    serial: str | None = None
    cert: str | None = None
    key: str | None = None
    baud: int = 9600

    @property
    def serving(self) -> bool:
        """True when the stream goes to the network or a serial line rather than to stdout."""
        return bool(self.listen or self.connect or self.serial)


def _listen_target(url: str, cert: str | None, key: str | None) -> tuple[str, int, ssl.SSLContext | None]:
    """(host, port, TLS context) of ``--listen tcp://host:port`` or ``tls://host:port``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"--listen: {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("tcp", "tls") or port is None or parts.path not in ("", "/") or parts.query:
        raise UsageError(
            f"--listen: {url!r} is not tcp://host:port or tls://host:port "
            "(example: --listen tcp://0.0.0.0:5000; port 0 picks a free port)"
        )
    if parts.scheme == "tcp":
        if cert is not None or key is not None:
            raise UsageError("--cert and --key are for --listen tls://host:port")
        return parts.hostname or "", port, None
    if cert is None:
        raise UsageError("--listen tls://... needs --cert (and --key unless the key is in the same PEM)")
    from witskit.transport.tls import server_context

    return parts.hostname or "", port, server_context(cert, key)


def _faults_used(faults: Faults) -> list[str]:
    used = []
    if faults.drop_every is not None:
        used.append("--drop-every")
    if faults.garbage_rate:
        used.append("--garbage-rate")
    if faults.split_writes:
        used.append("--split-writes")
    if faults.stall is not None:
        used.append("--stall")
    return used


def check_serving_options(where: ServeOptions, *, faults: Faults, pason: bool, sar: bool, rigs: int) -> None:
    """Options that only make sense when serving are refused without a place to serve."""
    if where.serving:
        return
    used = _faults_used(faults)
    used += ["--pason"] if pason else []
    used += ["--send-and-receive"] if sar else []
    used += ["--rigs"] if rigs != 1 else []
    used += ["--cert/--key"] if where.cert or where.key else []
    if used:
        raise UsageError(f"{', '.join(used)}: only when serving (--listen, --connect or --serial)")


def serve(server: RigServer, where: ServeOptions) -> int:
    """Serve until Ctrl-C (or until every push/serial stream has sent its ``--frames``).

    Bound addresses and connections are reported on stderr. Returns the exit status: 0 when the
    streams ended, 130 after Ctrl-C, 143 after SIGTERM, 2 when a port cannot be bound.
    """
    import asyncio

    from witskit.cli._console import error, info
    from witskit.cli._stream import EXIT_INTERRUPTED, EXIT_TRANSPORT, run_async

    listen = _listen_target(where.listen, where.cert, where.key) if where.listen else None
    failure: list[TransportError] = []

    async def main() -> None:
        try:
            if listen is not None:
                host, port, context = listen
                await server.serve_tcp(host, port, context)
                for rig, address in enumerate(server.addresses):
                    info(f"rig {rig + 1} (WITSKIT-SIM-{rig + 1}) listening on {address}")
            if where.connect:
                await server.push(where.connect)
                info(f"pushing {server.rigs} rig(s) to {where.connect.split('?', 1)[0]}")
            if where.serial:
                await server.serve_serial(where.serial, baudrate=where.baud)
                info(f"rig 1 (WITSKIT-SIM-1) writing to {where.serial}")
            if listen is not None:
                await asyncio.Event().wait()  # a listening rig serves until it is stopped
            else:
                await server.wait_finished()
        except TransportError as exc:
            failure.append(exc)
        finally:
            await server.aclose()

    status = run_async(main)
    if failure:
        error(str(failure[0]))
        return EXIT_TRANSPORT
    if status == EXIT_INTERRUPTED:
        info("interrupted")
    info(f"served {server.connections} session(s), {server.frames_sent} frames")
    return status


# demo -------------------------------------------------------------------------------------------
@dataclass
class _CodeStats:
    count: int = 0
    minimum: float | None = None
    maximum: float | None = None
    last: Value = None


@dataclass
class DemoSummary:
    """What the demo decoded."""

    frames: int = 0
    points: int = 0
    errors: int = 0
    first: datetime | None = None
    last: datetime | None = None
    records: dict[int, int] = field(default_factory=dict)
    codes: dict[str, _CodeStats] = field(default_factory=dict)


def summarise(
    chunks: Iterator[bytes] | bytes, *, metric: bool
) -> tuple[DemoSummary, dict[str, tuple[str, str, str]]]:
    """Decode a stream and gather per-code statistics, plus (mnemonic, description, unit) per code."""
    from witskit.protocol import WITSDecoder, iter_decode

    summary = DemoSummary()
    labels: dict[str, tuple[str, str, str]] = {}
    for event in iter_decode(chunks, decoder=WITSDecoder(use_metric_units=metric), source="simulator"):
        if isinstance(event, FrameError):
            summary.errors += 1
            continue
        frame = event
        summary.frames += 1
        summary.points += len(frame.codes)
        summary.errors += len(frame.errors)
        summary.first = frame.timestamp if summary.first is None else min(summary.first, frame.timestamp)
        summary.last = frame.timestamp if summary.last is None else max(summary.last, frame.timestamp)
        if frame.codes:
            rec = int(frame.codes[0][:2])
            summary.records[rec] = summary.records.get(rec, 0) + 1
        for code, value in frame.items():
            stats = summary.codes.get(code)
            if stats is None:
                stats = summary.codes[code] = _CodeStats()
                sym = frame.symbol(code)
                labels[code] = (sym.name, sym.description, frame.unit(code))
            stats.count += 1
            stats.last = value
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                stats.minimum = number if stats.minimum is None else min(stats.minimum, number)
                stats.maximum = number if stats.maximum is None else max(stats.maximum, number)
    return summary, labels


def _number(value: Value | float) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def _span(summary: DemoSummary) -> str:
    if summary.first is None or summary.last is None:
        return "-"
    seconds = int((summary.last - summary.first).total_seconds())
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    length = f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
    return f"{summary.first.isoformat()} to {summary.last.isoformat()} ({length})"


def run_demo(*, frames: int, seed: int, metric: bool) -> DemoSummary:
    """Simulate ``frames`` record-1 frames (with records 2 and 8), decode them, print a summary."""
    sim = simulator(
        seed=seed, start=parse_start(None), rate=1.0, records=(1, 2, 8), line_ending="crlf", metric=metric
    )
    data = b"".join(sim.frames(frames))
    summary, labels = summarise(data, metric=metric)

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, emoji=False)
    table = Table(
        title=f"WitsKit demo: {summary.frames} simulated frames decoded ({len(data):,} bytes)",
        title_justify="left",
    )
    table.add_column("Code", no_wrap=True)
    table.add_column("Mnemonic", no_wrap=True)
    table.add_column("Description")
    table.add_column("Unit", no_wrap=True)
    for name in ("Min", "Max", "Last", "Count"):
        table.add_column(name, justify="right", no_wrap=True)
    from rich.text import Text

    for code in sorted(summary.codes):
        stats = summary.codes[code]
        mnemonic, description, unit = labels[code]
        table.add_row(
            code,
            Text(mnemonic),
            Text(description),
            Text(unit),
            _number(stats.minimum),
            _number(stats.maximum),
            Text(_number(stats.last)),
            str(stats.count),
        )
    console.print(table)

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    per_record = ", ".join(f"record {r}: {n}" for r, n in sorted(summary.records.items()))
    facts.add_row("Frames", Text(f"{summary.frames} ({per_record})"))
    facts.add_row("Points", f"{summary.points:,}")
    facts.add_row("Codes", str(len(summary.codes)))
    facts.add_row("Errors", str(summary.errors))
    facts.add_row("Time span", Text(_span(summary)))
    console.print(facts)
    return summary
