"""Opening the CLI's inputs and outputs: a path, ``-`` (stdin), ``--text``, ``-o FILE`` or stdout.

Inputs are read as binary streams in chunks, so a file of any size is never held in memory. The
chunk reader calls a hook before each read: the decode loop uses it to flush what it has written,
so output from a live pipe (``nc rig 4000 | witskit decode -``) appears as frames arrive.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TextIO

from witskit.errors import UsageError

__all__ = [
    "CHUNK_SIZE",
    "Input",
    "binary_stdout",
    "open_input",
    "open_output",
    "open_text_output",
    "text_bytes",
]

#: Bytes per read: large enough that per-read overhead vanishes, small enough to keep memory flat.
CHUNK_SIZE = 1 << 20

_STDIN_LABEL = "<stdin>"
_TEXT_LABEL = "<text>"


@dataclass
class Input:
    """An open input: what to call it in messages, its stream, and its size when known."""

    label: str
    stream: IO[bytes]
    size: int | None
    path: Path | None = None

    @property
    def default_source(self) -> str | None:
        """The frames' ``source`` unless ``--source`` says otherwise: the file's name (as ``import``
        and a ``file://`` source name it, so the same log is one source everywhere), or none."""
        return self.path.name if self.path is not None else None

    def chunks(
        self,
        *,
        before_read: Callable[[], None] | None = None,
        on_read: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Yield the input in chunks; ``read1`` returns what a pipe has, without waiting for more."""
        read: Callable[[int], bytes] = getattr(self.stream, "read1", None) or self.stream.read
        while True:
            if before_read is not None:
                before_read()
            data = read(chunk_size)
            if not data:
                return
            if on_read is not None:
                on_read(len(data))
            yield data


def text_bytes(text: str) -> bytes:
    r"""The bytes of ``--text``; typed ``\n``, ``\r\n`` or ``\r`` escapes become line breaks.

    A shell does not turn ``'&&\n0108...'`` into a line break, so when the text has no real line
    break its backslash escapes are read as line breaks.
    """
    if "\n" not in text and "\r" not in text and "\\" in text:
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n")
    return text.encode("latin-1", "replace")


def _stdin_binary() -> IO[bytes]:
    stdin = sys.stdin
    if stdin is None:
        raise UsageError("standard input is closed")
    buffer: IO[bytes] | None = getattr(stdin, "buffer", None)
    if buffer is None:
        raise UsageError("standard input cannot be read as bytes")
    return buffer


@contextmanager
def open_input(path: str | None, text: str | None) -> Iterator[Input]:
    """Open ``PATH``, ``-`` or ``--text``; a missing path is a :class:`UsageError`, never frame text."""
    if path is not None and text is not None:
        raise UsageError("give either a PATH or --text, not both")
    if text is not None:
        data = text_bytes(text)
        yield Input(_TEXT_LABEL, io.BytesIO(data), len(data))
        return
    if path is None:
        raise UsageError("give a PATH to read (or - for standard input), or --text FRAME")
    if path == "-":
        yield Input(_STDIN_LABEL, _stdin_binary(), None)
        return
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file")
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, not a file")
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with fh:
        size = os.fstat(fh.fileno()).st_size if p.is_file() else None
        yield Input(path, fh, size or None, p)


def _check_not_input(output: Path, input_path: Path | None) -> None:
    if input_path is None or not output.exists():
        return
    try:
        same = os.path.samefile(output, input_path)
    except OSError:
        return
    if same:
        raise UsageError(f"{output}: the output file is the input file; writing it would destroy the input")


def _cannot_write(output: Path, exc: OSError) -> UsageError:
    return UsageError(f"{output}: cannot write: {exc.strerror or exc}")


def binary_stdout() -> BinaryIO:
    """stdout as bytes (text written earlier is flushed first so nothing is reordered)."""
    sys.stdout.flush()
    buffer: BinaryIO | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise UsageError("standard output cannot be written as bytes")
    return buffer


@contextmanager
def open_output(output: Path | None, *, input_path: Path | None = None) -> Iterator[IO[bytes]]:
    """A binary sink: the ``-o`` file, or stdout. The file is closed (and stdout flushed) at the end."""
    if output is None or str(output) == "-":
        sink = binary_stdout()
        try:
            yield sink
        finally:
            sink.flush()
        return
    _check_not_input(output, input_path)
    try:
        fh = output.open("wb")
    except OSError as exc:
        raise _cannot_write(output, exc) from exc
    with fh:
        yield fh


@contextmanager
def open_text_output(output: Path | None, *, input_path: Path | None = None) -> Iterator[TextIO]:
    """A text sink (UTF-8): the ``-o`` file, or stdout."""
    if output is None or str(output) == "-":
        try:
            yield sys.stdout
        finally:
            sys.stdout.flush()
        return
    _check_not_input(output, input_path)
    try:
        fh = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise _cannot_write(output, exc) from exc
    with fh:
        yield fh
