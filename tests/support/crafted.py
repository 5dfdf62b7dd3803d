"""Hand-made WITS streams for the analytics tests: one frame per second, values chosen per test.

``frame(i, {"0121": 3100})`` is the decoded frame of second ``i`` after :data:`T0` (DATE and TIME
items set, so the frame time is exact), received ``received_after`` seconds after its own time.
A value of None is sent as the null sentinel -9999. Frames go through the real encoder, parser and
decoder, so a test sees exactly what a feed would give.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from witskit.protocol import DecodedFrame, FrameParser, WITSDecoder, WITSFrame, encode_frame

T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
_FPS = WITSDecoder()
_METRIC = WITSDecoder(use_metric_units=True)


def frame(
    i: float,
    values: Mapping[str, float | int | None],
    *,
    source: str = "rig-1",
    received_after: float = 0.0,
    metric: bool = False,
    record: int = 1,
) -> DecodedFrame:
    """The decoded frame of second ``i`` holding ``values`` (code -> value; None: a null), with the
    DATE and TIME items of ``record``."""
    t = T0 + timedelta(seconds=i)
    items: list[tuple[str, object]] = [
        (f"{record:02d}05", int(t.strftime("%y%m%d"))),
        (f"{record:02d}06", int(t.strftime("%H%M%S"))),
    ]
    items += [(code, -9999 if value is None else value) for code, value in values.items()]
    parser = FrameParser(source=source, clock=lambda: t + timedelta(seconds=received_after))
    [raw] = [e for e in parser.feed(encode_frame(items)) if isinstance(e, WITSFrame)]
    return (_METRIC if metric else _FPS).decode(raw)


def series(code: str, values: list[float | int | None], *, source: str = "rig-1") -> list[DecodedFrame]:
    """One frame per second with one channel's values (None: a null reading)."""
    return [frame(i, {code: v}, source=source) for i, v in enumerate(values)]
