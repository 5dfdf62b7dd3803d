"""``witskit stream URL``: decode a live source (TCP, TLS, listener, serial, file) as it arrives.

Frames go to stdout as they are decoded, one write and flush per frame, so a pipe downstream sees
each one at once. Everything else goes to stderr: link status (connecting, connected,
disconnected and when the next attempt is), bad bytes between frames and bad data lines.

Also here: :func:`run_async`, which runs a command's event loop and turns Ctrl-C and SIGTERM into
a clean stop and an exit status (``stream`` and the serving modes of ``simulate`` share it).

The CLI imports this module at start-up for :class:`StreamFormat`; asyncio and the transports are
imported when the command runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from witskit.errors import FrameError, TransportError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console

    from witskit.cli._writers import FrameWriter
    from witskit.protocol import DecodedFrame
    from witskit.transport.base import LinkStatus, Source

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_TRANSPORT",
    "LiveLineWriter",
    "StatusPrinter",
    "StreamFormat",
    "run_async",
    "run_stream",
    "stamped",
    "timestamp",
]

#: Exit status after Ctrl-C: 128 + SIGINT, what a shell reports for a program killed by it, so a
#: script can tell "interrupted" from "reached -n" (0).
EXIT_INTERRUPTED = 130
#: Exit status after SIGTERM (128 + 15), for the same reason.
EXIT_TERMINATED = 143
#: Exit status when the source cannot be reached, or drops, and reconnecting is off: the input
#: could not be opened, like a missing file for ``decode``.
EXIT_TRANSPORT = 2
#: Exit status when stdout is a pipe closed early (``witskit stream ... | head``), as for decode.
EXIT_BROKEN_PIPE = 1

#: Schemes whose sources report their link's state (``on_status``).
_LINK_SCHEMES = frozenset({"tcp", "tls", "tcp-listen", "tls-listen", "serial"})

#: Items shown per frame by the live table line before "+N more".
_LINE_ITEMS = 6


class StreamFormat(StrEnum):
    """What ``stream`` writes."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def run_async(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main()`` in a new event loop; return 0, or the exit status of Ctrl-C or SIGTERM.

    Both signals cancel ``main``, whose ``finally`` blocks close its sockets before the loop ends.
    asyncio handles SIGINT itself (and raises KeyboardInterrupt afterwards); SIGTERM is added
    here where the platform allows it, so ``kill`` stops a server just as cleanly.
    """
    import asyncio
    import signal

    terminated = False

    async def wrapper() -> None:
        nonlocal terminated
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed = False

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        # Not on Windows, and not outside the main thread: SIGTERM then keeps its default action.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, on_term)
            installed = True
        try:
            await main()
        except asyncio.CancelledError:
            if not terminated:
                raise  # Ctrl-C: asyncio.run turns this into KeyboardInterrupt
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        asyncio.run(wrapper())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_TERMINATED if terminated else 0


def timestamp() -> str:
    """Now in UTC, to the second, as status lines start: ``2026-03-01T06:00:01Z``."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stamped(say: Callable[[str], None]) -> Callable[[str], None]:
    """``say`` with each line prefixed by :func:`timestamp` (when did the link drop?)."""

    def stamped_say(message: str) -> None:
        say(f"{timestamp()} {message}")

    return stamped_say


class StatusPrinter:
    """Turns a source's link status into lines on stderr, each starting with the UTC time.

    ``connecting to URL``, ``connected to URL``, and on a drop or a failed attempt
    ``disconnected: REASON; reconnecting in N s`` (the delay the retry policy actually chose, from
    its ``on_retry`` hook; ``now`` after a drop of an established link, which reconnects at once).
    Listeners report ``NAME: listening on HOST:PORT`` and each peer's arrival and departure
    (``SOURCE: ADDRESS connected``, ``SOURCE: ADDRESS disconnected after N frame(s)[: REASON]``).
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = stamped(say)
        self._source: Source | None = None
        self._last: dict[str, str] = {}  # link name -> last state seen

    def attach(self, source: Source) -> None:
        """Follow ``source``: hook its retry policy, when it has one, to learn the delays."""
        from witskit.transport.resilience import RetryPolicy

        self._source = source
        retry = getattr(source, "retry", None)
        if isinstance(retry, RetryPolicy):
            previous = retry.on_retry

            def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
                self._say(f"disconnected: {exc}; reconnecting in {delay:.1f} s")
                if previous is not None:
                    previous(attempt, exc, delay)

            retry.on_retry = on_retry

    def __call__(self, status: LinkStatus) -> None:
        from witskit.transport.base import LinkSource, LinkState

        state = status.state
        name = status.source
        before = self._last.get(name)
        self._last[name] = state.value
        source = self._source
        listener = source is not None and not isinstance(source, LinkSource)  # ListenerSource
        peer = f" {status.peer}" if status.peer else ""
        if state is LinkState.CONNECTING:
            again = f" (attempt {status.attempt})" if status.attempt > 1 else ""
            self._say(f"connecting to {name}{again} ...")
        elif state is LinkState.CONNECTED:
            if listener and source is not None and name == source.name:
                self._say(f"{name}: listening on{peer or ' ' + name}")
            else:
                self._say(f"connected to {name}" if not listener else f"{name}:{peer} connected")
        elif state is LinkState.DISCONNECTED:
            reason = status.error or "closed"
            if listener:
                frames = f" after {status.frames} frame(s)" if status.frames is not None else ""
                why = f": {status.error}" if status.error else ""
                self._say(f"{name}:{peer} disconnected{frames}{why}")
            elif before == LinkState.CONNECTED.value and not getattr(source, "failures", 0):
                # A drop of an established link: the source reconnects at once, when allowed to.
                # (A link that ended at once counts as a failed attempt: on_retry reports its wait.)
                more = "; reconnecting now" if getattr(source, "reconnect", False) else ""
                self._say(f"disconnected: {reason}{more}")
            # A failed attempt is reported by on_retry with its delay; when no retry follows,
            # the command prints the final error itself.


class LiveLineWriter:
    """One compact line per frame for a terminal: time, record, sequence and the first items.

    ``2026-01-01 06:00:01 rec 1 #0  DBTM=5887.89 F  DMEA=5887.89 F ...  (+17)``; the header
    items (well id, date, time, ...) are left out, Pason's vendor line too. On a terminal, long
    lines are cut at its width rather than wrapped, so the screen scrolls one line per frame.

    To a pipe or a file (an edge's log), without colours, a line of plain printable ASCII is
    written as it is, the same text rich would write: rendering it through rich cost an edge
    more CPU per frame than spooling and publishing it (``bench/bench_edge.py``). Anything else
    (a terminal, colours forced, a value with a tab, a control or a wide character) goes through
    rich, which strips controls, expands tabs and measures cells.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        # Asked once: rich reads the environment at each call, a dozen lookups per frame.
        self._plain = not console.is_terminal and console.color_system is None

    def write(self, frame: DecodedFrame) -> None:
        codes = frame.codes
        body = [
            (code, value)
            for code, value in zip(codes, frame.values, strict=True)
            if not (code[2:] <= "07" or code == "1984")
        ]
        record = next((c[:2] for c in codes if c != "1984"), "--")
        parts = [
            frame.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            f" rec {int(record) if record.isdigit() else record}",
            f" #{frame.frame.sequence}",
        ]
        for code, value in body[:_LINE_ITEMS]:
            unit = frame.unit(code)
            shown = "null" if value is None else str(value)
            parts.append(f"  {frame.symbol(code).name}=")
            parts.append(shown)
            parts.append(f" {unit}" if unit and unit != "----" else "")
        parts.append(f"  (+{len(body) - _LINE_ITEMS})" if len(body) > _LINE_ITEMS else "")
        parts.append(f"  [{len(frame.errors)} problem(s)]" if frame.errors else "")
        if self._plain:
            text = "".join(parts)
            if text.isascii() and text.isprintable():
                self._console.file.write(text + "\n")
                return
        self._rich(parts)

    def _rich(self, parts: list[str]) -> None:
        """The line through rich, each part of :meth:`write` styled by its position: time, record,
        sequence, then each item's name, value and unit, then the "+N more" and the problems."""
        from rich.text import Text

        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(parts[0], style="bold")
        line.append(parts[1], style="cyan")
        line.append(parts[2], style="dim")
        items = parts[3:-2]
        for i in range(0, len(items), 3):
            line.append(items[i])
            line.append(items[i + 1])
            line.append(items[i + 2], style="dim")
        line.append(parts[-2], style="dim")
        line.append(parts[-1], style="red")
        if self._console.is_terminal:
            self._console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
        else:  # a pipe or a file gets the whole line, however long
            self._console.print(line, soft_wrap=True)

    def flush(self) -> None:
        self._console.file.flush()

    def close(self) -> None:
        self.flush()


def _writer(fmt: StreamFormat) -> FrameWriter:
    """The writer of ``--format``: the ``decode`` writers for jsonl and csv, a live line for table."""
    if fmt is StreamFormat.table:
        from rich.console import Console

        # markup off: values are data, and a '[' in them must print as it is.
        return LiveLineWriter(Console(file=sys.stdout, markup=False, highlight=False, emoji=False))
    from witskit.cli._io import binary_stdout
    from witskit.cli._writers import CsvWriter, JsonlWriter

    sink = binary_stdout()
    return JsonlWriter(sink) if fmt is StreamFormat.jsonl else CsvWriter(sink)


def _scheme(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url.strip()).scheme
    except ValueError:
        return ""


async def stream(
    url: str,
    writer: FrameWriter,
    *,
    count: int | None,
    metric: bool,
    tz: str,
    say: Callable[[str], None],
) -> int:
    """Decode ``url`` into ``writer`` until the source ends or ``count`` frames; return the count."""
    from witskit.protocol import WITSDecoder
    from witskit.transport.urls import open_source

    decoder = WITSDecoder(use_metric_units=metric, timezone=tz)
    status = StatusPrinter(say)
    options: dict[str, Any] = {}
    if _scheme(url) in _LINK_SCHEMES:  # a file or a simulated rig has no link to report on
        options["on_status"] = status
    source = open_source(url, **options)
    status.attach(source)
    frames = 0
    events = aiter(source)
    try:
        async for event in events:
            if isinstance(event, FrameError):
                say(event.message)
                continue
            decoded = decoder.decode(event)
            for problem in decoded.errors:
                say(f"{event.source or url}: {problem}")
            writer.write(decoded)
            writer.flush()  # one frame at a time: whoever reads stdout sees it now
            frames += 1
            if count is not None and frames >= count:
                break
    finally:
        # Close the event generator first (it cancels the keep-alive and closes the link), then
        # the source; leaving either to the garbage collector would leak a task or a socket.
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
        await source.aclose()
    return frames


def run_stream(url: str, *, fmt: StreamFormat, count: int | None, metric: bool, tz: str) -> int:
    """The ``stream`` command: returns its exit status (see the command's help)."""
    from witskit.cli._console import error, info
    from witskit.protocol import WITSDecoder

    WITSDecoder(timezone=tz)  # an unknown zone is a usage error before anything connects
    writer = _writer(fmt)
    failure: list[TransportError] = []

    async def main() -> None:
        try:
            await stream(url, writer, count=count, metric=metric, tz=tz, say=info)
        except TransportError as exc:
            failure.append(exc)

    try:
        status = run_async(main)
        writer.close()
    except BrokenPipeError:
        # The reader went away (| head): stop quietly. Point stdout at devnull so that Python's
        # final flush does not raise again (the recipe of the signal module's documentation).
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if status == EXIT_INTERRUPTED:
        info("interrupted")
    if failure:
        error(str(failure[0]))
        return EXIT_TRANSPORT
    return status
