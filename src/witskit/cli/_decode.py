"""The streaming loop behind ``decode`` and ``validate``, and how problems are reported.

Input is read in chunks and decoded with :func:`witskit.protocol.iter_decode`, so memory stays flat
whatever the input size; each frame is handed to a writer as soon as it is decoded.

A problem is reported as ``LABEL:LINE: message``, where LINE is the line of the input it is on:
for bad bytes between frames (a :class:`~witskit.errors.FrameError`) the line where they start;
for a bad data line inside a frame, that data line (the decoder numbers lines within their frame;
this module turns that into a line of the input).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from witskit.cli._console import stderr_console, stderr_is_terminal
from witskit.cli._io import Input
from witskit.cli._writers import FrameWriter
from witskit.errors import FrameError
from witskit.protocol import DecodedFrame, WITSDecoder, iter_decode

__all__ = ["PROGRESS_THRESHOLD", "Problem", "Tally", "frame_problems", "progress_for", "run", "stderr_report"]

#: Inputs larger than this get a progress bar (when stderr is a terminal): 8 MiB take about half a
#: second to decode, so a bar appears only where there is a wait to see.
PROGRESS_THRESHOLD = 8 * 1024 * 1024

_IN_FRAME = re.compile(r"line (\d+) of frame at line \d+ \(byte \d+\): (.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in the input: the input line it is on, and what is wrong."""

    line: int
    message: str

    def format(self, label: str) -> str:
        """``LABEL:LINE: message``, the form compilers and linters use."""
        return f"{label}:{self.line}: {self.message}"


@dataclass
class Tally:
    """What a run saw."""

    frames: int = 0
    points: int = 0
    problems: int = 0
    #: In strict mode, the problem that stopped the run.
    stopped_at: Problem | None = None
    #: Frames with at least one problem.
    bad_frames: int = field(default=0)


def _input_line(frame: DecodedFrame, index: int) -> int:
    """The input line of data line ``index`` (0-based, as the parser counts them) of a frame."""
    body = frame.frame.raw_data.encode("latin-1", "replace")[2:-2]  # between '&&' (on frame.line) and '!!'
    seen = -1
    for k, text in enumerate(body.splitlines()):
        if text.strip():
            seen += 1
            if seen == index:
                return frame.frame.line + k
    return frame.frame.line


def frame_problems(frame: DecodedFrame) -> list[Problem]:
    """The problems the decoder recorded in a frame, each located on its input line."""
    where = f"(frame at line {frame.frame.line}, byte {frame.frame.offset})"
    out: list[Problem] = []
    for message in frame.errors:
        match = _IN_FRAME.match(message)
        if match:
            out.append(Problem(_input_line(frame, int(match[1]) - 1), f"{match[2]} {where}"))
        else:
            out.append(Problem(frame.frame.line, message))
    return out


def frame_error_problem(exc: FrameError) -> Problem:
    """A FrameError (bad bytes between frames, a cut or oversized frame) as a :class:`Problem`."""
    return Problem(exc.line, f"{exc.reason} (byte offset {exc.offset}): {exc.excerpt!r}")


def stderr_report(line: str) -> None:
    """Write one problem line to stderr (plain and fast: a bad feed can have many)."""
    sys.stderr.write(line + "\n")


@contextmanager
def progress_for(
    inp: Input, report: Callable[[str], None], *, verb: str = "decoding"
) -> Iterator[tuple[Callable[[int], None] | None, Callable[[str], None]]]:
    """A rich progress bar on stderr for a large file when stderr is a terminal; else nothing.

    Yields the callback to count bytes read (or ``None``) and a report function that prints above
    the bar when the report goes to stderr.
    """
    if inp.size is None or inp.size <= PROGRESS_THRESHOLD or not stderr_is_terminal():
        yield None, report
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task(f"{verb} {inp.label}", total=inp.size)

        def advance(n: int) -> None:
            progress.advance(task, n)

        def report_above(line: str) -> None:
            if report is stderr_report:
                progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                report(line)

        yield advance, report_above


def run(
    inp: Input,
    *,
    decoder: WITSDecoder,
    source: str | None,
    writer: FrameWriter | None,
    report: Callable[[str], None],
    strict: bool = False,
    on_read: Callable[[int], None] | None = None,
) -> Tally:
    """Decode ``inp`` frame by frame, hand each good frame to ``writer``, report every problem.

    In ``strict`` mode the run stops at the first problem (the frame holding it is not written) and
    returns it in :attr:`Tally.stopped_at` instead of reporting it. The writer is always closed.
    """
    tally = Tally()
    label = inp.label
    write = writer.write if writer is not None else None
    chunks = inp.chunks(before_read=writer.flush if writer is not None else None, on_read=on_read)
    try:
        for event in iter_decode(chunks, decoder=decoder, source=source):
            if isinstance(event, FrameError):
                problem = frame_error_problem(event)
                if strict:
                    tally.stopped_at = problem
                    break
                tally.problems += 1
                report(problem.format(label))
                continue
            if event.errors:
                problems = frame_problems(event)
                if strict:
                    tally.stopped_at = problems[0]
                    break
                tally.problems += len(problems)
                tally.bad_frames += 1
                for problem in problems:
                    report(problem.format(label))
            tally.frames += 1
            tally.points += len(event.codes)
            if write is not None:
                write(event)
    finally:
        if writer is not None:
            writer.close()
    return tally
