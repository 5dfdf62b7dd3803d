"""Rig state (activity) detection: what the rig is doing, per frame of record 1.

:class:`RigStateClassifier` takes record-1 frames one by one (live, one object per rig) and gives
each a :class:`RigState`; :func:`classify` runs one over a range (a file, a stored range). Both read
the same items, in FPS or metric units: bit depth 0108, hole depth 0110, block position 0112, hook
load 0114, WOB 0116, torque 0118, RPM 0120, standpipe pressure 0121, pump strokes 0123-0125 and
flow in 0130.

Each frame is reduced to five facts, then to a state (``docs/analytics.md`` has the table):

* in slips: hook load below the slips threshold, the block weight plus a margin;
* on bottom: bit depth within a tolerance of hole depth (WOB above a threshold when a depth is missing);
* pumps on: flow in above its threshold, else the strokes, else the standpipe pressure;
* rotating: RPM above its threshold (torque when RPM is missing);
* moving: the string's vertical speed, from block position (bit depth when it is missing).

The block weight and the pump thresholds are estimated from the data as it arrives (see
:class:`RigStateSettings`, where each can be overridden per rig). A reading that is null, not a
number or outside physical limits is replaced by the last good one for :attr:`RigStateSettings.hold`
seconds, then counts as missing; a state has to hold for :attr:`RigStateSettings.confirm` seconds
before it is reported, so a one-sample spike never flips it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from witskit.errors import ConfigError, UsageError
from witskit.protocol.decoder import DecodedFrame, Value
from witskit.units import convert_symbol_value

__all__ = [
    "RIG_STATE_CODES",
    "RigState",
    "RigStateClassifier",
    "RigStateSettings",
    "Sample",
    "StateSample",
    "classify",
    "samples_from_points",
]


class RigState(StrEnum):
    """What the rig is doing. The values are the contract (CSV, API, stored channel)."""

    ROTARY_DRILLING = "rotary_drilling"
    """On bottom, pumps on, string rotating."""
    SLIDE_DRILLING = "slide_drilling"
    """On bottom, pumps on, string not rotating (the mud motor turns the bit)."""
    REAMING = "reaming"
    """Off bottom, pipe moving down with circulation or rotation."""
    BACK_REAMING = "back_reaming"
    """Off bottom, pipe moving up with circulation or rotation."""
    CIRCULATING = "circulating"
    """Pumps on, pipe not moving, not drilling (on or off bottom)."""
    TRIPPING_IN = "tripping_in"
    """Pipe moving down, off slips, no pumps, no rotation."""
    TRIPPING_OUT = "tripping_out"
    """Pipe moving up, off slips, no pumps, no rotation."""
    IN_SLIPS = "in_slips"
    """The string hangs in the slips: hook load near the block weight."""
    STATIONARY = "stationary"
    """Off slips, nothing moving, no pumps."""
    UNKNOWN = "unknown"
    """Not enough data: no hook load, no pump reading or no depth/position to move by."""


#: The record-1 items the classifier reads (the store query of a classified range).
RIG_STATE_CODES = (
    "0108",
    "0110",
    "0112",
    "0114",
    "0116",
    "0118",
    "0120",
    "0121",
    "0123",
    "0124",
    "0125",
    "0130",
)

# Index of each item in the classifier's value slots.
_BIT, _HOLE, _BLOCK, _HOOK, _WOB, _TORQUE, _RPM, _SPP, _SPM1, _SPM2, _SPM3, _FLOW = range(12)

# Physical limits (FPS) beyond which a reading is a sensor fault, not the rig: deeper than any well
# drilled (40,000 ft), a derrick taller than 250 ft, a hook load above the largest rigs' 2,500 klb,
# torque above 150 kft·lbf, 600 RPM, 15,000 psi, 400 strokes a minute, 5,000 gpm.
_LIMITS: tuple[tuple[float, float], ...] = (
    (-100.0, 60_000.0),  # bit depth
    (-100.0, 60_000.0),  # hole depth
    (-30.0, 250.0),  # block position
    (0.0, 2_500.0),  # hook load
    (-100.0, 1_000.0),  # WOB
    (-20.0, 150.0),  # torque
    (-600.0, 600.0),  # RPM
    (-200.0, 15_000.0),  # SPP
    (0.0, 400.0),  # SPM1
    (0.0, 400.0),  # SPM2
    (0.0, 400.0),  # SPM3
    (0.0, 5_000.0),  # flow in
)

#: A block faster than this (ft/s; 10 ft/s is twice a fast trip's top speed) is a position spike.
_MAX_SPEED = 10.0

# Hook-load histogram for the block weight: 1 klb bins up to the limit; a level is a window of
# +-2 bins holding at least _LEVEL_COUNT samples (20 s at 1 Hz: one connection's slips time).
_BINS = 2_500
_HALF_WINDOW = 2
_LEVEL_COUNT = 20
#: Hook loads below this (klb) are ignored by the estimate: no block weighs less (a dead sensor reads 0).
_MIN_BLOCK_WEIGHT = 5.0
#: The string must hang at least this much (klb) above the lowest level, and this many times it, for
#: that level to be the block: hook load while drilling (string weight minus WOB, 10-30% below the
#: hanging weight) is a level of its own that must not pass for the block.
_MIN_STRING_GAP = 15.0
_MIN_STRING_RATIO = 1.5
#: Estimate every this many hook-load samples until a block weight is found (the estimate scans the
#: histogram), then refresh it every _REFRESH_EVERY (10 min at 1 Hz: the block weight seldom changes).
_REESTIMATE_EVERY = 5
_REFRESH_EVERY = 600


@dataclass(frozen=True, slots=True)
class RigStateSettings:
    """Per-rig settings of :class:`RigStateClassifier`, in the feed's unit system.

    ``metric`` says which system the rig sends (``False``: FPS). Every threshold left ``None`` is
    estimated from the data or takes the documented default; give a number to override it for a rig:

    * ``block_weight`` (klb or kdaN-style KDN): default, the lowest hook-load level held for 20 s with
      the hanging string at least 15 klb above it;
    * ``slips_margin``: hook load up to ``block_weight + max(slips_margin, 30% of (string weight -
      block weight))`` is in slips; default 10 klb (4.45 KDN);
    * ``flow_threshold`` (gpm or L/M), ``strokes_threshold`` (SPM, summed over pumps),
      ``spp_threshold`` (psi or kPa): default 10% of the operating level seen, at least 30 gpm,
      5 SPM, 150 psi;
    * ``rpm_threshold`` (RPM): 10; ``torque_threshold`` (used without RPM): 2 kft·lbf;
    * ``wob_threshold`` (used for on bottom without a depth): 2 klb;
    * ``on_bottom_tolerance`` (ft or m): 1 ft; ``moving_speed`` (ft/s or m/s): 0.1 ft/s;
    * ``confirm`` (s): a new state must hold this long before it is reported, 2 s;
    * ``hold`` (s): a null or missing reading is replaced by the last good one this long, 10 s;
    * ``max_gap`` (s): frames further apart start afresh (speed unknown), 30 s.
    """

    metric: bool = False
    block_weight: float | None = None
    slips_margin: float | None = None
    flow_threshold: float | None = None
    strokes_threshold: float | None = None
    spp_threshold: float | None = None
    rpm_threshold: float = 10.0
    torque_threshold: float | None = None
    wob_threshold: float | None = None
    on_bottom_tolerance: float | None = None
    moving_speed: float | None = None
    confirm: float = 2.0
    hold: float = 10.0
    max_gap: float = 30.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "metric":
                if not isinstance(value, bool):
                    raise UsageError(f"rig state setting metric must be true or false, not {value!r}")
                continue
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UsageError(f"rig state setting {field.name} must be a number, not {value!r}")
            if value < 0 or (value == 0 and field.name in {"hold", "max_gap", "moving_speed"}):
                raise UsageError(f"rig state setting {field.name} must be positive, got {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, where: str = "rig_state") -> RigStateSettings:
        """Settings from a mapping (a pipeline file's ``rig_state:`` section, an API body).

        An unknown key or a bad value raises :class:`~witskit.errors.ConfigError` naming
        ``where.key``, so a typo is caught at load time, not in the middle of a shift.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown rig state setting (known: {', '.join(names)})")
        try:
            return cls(**data)  # type: ignore[arg-type]
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_fps(self, name: str, code: str) -> float | None:
        """Setting ``name`` in FPS (the classifier's internal units), converted as item ``code``."""
        value: float | None = getattr(self, name)
        if value is None or not self.metric:
            return value
        return convert_symbol_value(float(value), code, to_metric=False)


class Sample(NamedTuple):
    """One record-1 frame as the classifier needs it: its time and its values by code."""

    time: datetime
    values: Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class StateSample:
    """A classified frame with the depths the KPIs need, in the feed's units (``None``: no reading)."""

    time: datetime
    state: RigState
    hole_depth: float | None
    bit_depth: float | None


def _factors(metric: bool) -> tuple[float, ...]:
    if not metric:
        return (1.0,) * len(RIG_STATE_CODES)
    return tuple(convert_symbol_value(1.0, code, to_metric=False) for code in RIG_STATE_CODES)


class _Level:
    """The operating level of a pump reading: a slow average of the readings above the floor."""

    __slots__ = ("floor", "level", "override")

    def __init__(self, floor: float, override: float | None) -> None:
        self.floor = floor
        self.override = override
        self.level = 0.0

    def on(self, value: float) -> bool:
        if self.override is not None:
            return value > self.override
        floor = self.floor
        if value > floor and value > 0.5 * self.level:
            # Readings near the level (not the ramp up or down) move it by 1% each.
            self.level = value if self.level == 0.0 else self.level + 0.01 * (value - self.level)
        return value > max(floor, 0.1 * self.level)

    @property
    def threshold(self) -> float:
        return self.override if self.override is not None else max(self.floor, 0.1 * self.level)


class RigStateClassifier:
    """Classifies the record-1 frames of one rig, one at a time, into :class:`RigState`.

    Feed it in time order: :meth:`feed` takes a :class:`~witskit.protocol.DecodedFrame` (frames of
    other records give ``None``), :meth:`update` a time and values by code. Stateful and cheap
    (a few microseconds per frame): keep one per rig for a live feed.
    """

    def __init__(self, settings: RigStateSettings | None = None) -> None:
        s = settings if settings is not None else RigStateSettings()
        if not isinstance(s, RigStateSettings):
            raise UsageError(f"settings must be RigStateSettings, not {type(s).__name__}")
        self.settings = s
        self._factor = _factors(s.metric)
        # Per item: slot, code, factor to FPS and physical limits, in one tuple for the hot loop.
        self._plan = tuple((i, code, self._factor[i], *_LIMITS[i]) for i, code in enumerate(RIG_STATE_CODES))
        bw = s.to_fps("block_weight", "0114")
        self._block_override = bw
        margin = s.to_fps("slips_margin", "0114")
        self._margin = 10.0 if margin is None else margin
        self._flow = _Level(30.0, s.to_fps("flow_threshold", "0130"))
        self._strokes = _Level(5.0, s.strokes_threshold)
        self._spp = _Level(150.0, s.to_fps("spp_threshold", "0121"))
        self._rpm_thr = s.rpm_threshold
        torque = s.to_fps("torque_threshold", "0118")
        self._torque_thr = 2.0 if torque is None else torque
        wob = s.to_fps("wob_threshold", "0116")
        self._wob_thr = 2.0 if wob is None else wob
        tol = s.to_fps("on_bottom_tolerance", "0108")
        self._tol = 1.0 if tol is None else tol
        speed = s.to_fps("moving_speed", "0112")
        self._speed_thr = 0.1 if speed is None else speed
        # Last good reading of each item and its time (epoch seconds).
        self._value: list[float | None] = [None] * len(RIG_STATE_CODES)
        self._seen: list[float] = [-math.inf] * len(RIG_STATE_CODES)
        # Recent (time, upward position) of the string, for its speed.
        self._track: deque[tuple[float, float]] = deque(maxlen=8)
        self._track_from = -1  # which item the track follows: _BLOCK, _BIT, or none yet
        self._spikes = 0
        self._speed: float | None = None
        self._hist = [0] * _BINS
        self._hook_samples = 0
        self._top_bin = 0
        self._block_weight: float | None = bw
        self._string_weight: float | None = None
        self._last_t: float | None = None
        self._state = RigState.UNKNOWN
        self._pending = RigState.UNKNOWN
        self._pending_since = 0.0

    # Public ---------------------------------------------------------------------------------
    @property
    def state(self) -> RigState:
        """The state reported for the last frame."""
        return self._state

    @property
    def block_weight(self) -> float | None:
        """The block weight in use (the override, or the estimate), in the feed's units."""
        return self._out(self._block_weight, 0)

    @property
    def slips_threshold(self) -> float | None:
        """Hook load below which the string is in slips, in the feed's units (``None``: not known yet)."""
        return self._out(self._slips_fps(), 0)

    def _out(self, fps: float | None, factor_of: int) -> float | None:
        if fps is None:
            return None
        return fps / self._factor[_HOOK] if factor_of == 0 else fps / self._factor[factor_of]

    def feed(self, frame: DecodedFrame) -> RigState | None:
        """Classify a decoded frame; ``None`` (and no change) for a frame that is not record 1."""
        codes = frame.codes
        if not codes or not codes[0].startswith("01"):
            return None
        return self.update(frame.timestamp, dict(zip(codes, frame.values, strict=True)))

    def update(self, time: datetime, values: Mapping[str, Value]) -> RigState:
        """Classify one record-1 frame given as its time and its values by code."""
        t = time.timestamp()
        last = self._last_t
        gap = last is not None and t - last > self.settings.max_gap
        if gap:  # a hole in the data: the string's speed starts afresh
            self._track.clear()
            self._speed = None
        backwards = last is not None and t <= last
        if not backwards:
            self._last_t = t
        self._read(t, values)
        v = self._current(t)
        if not backwards:
            self._move(t, v)
        candidate = self._candidate(v)
        return self._confirm(t, candidate, gap)

    # Steps ----------------------------------------------------------------------------------
    def _read(self, t: float, values: Mapping[str, Value]) -> None:
        value = self._value
        seen = self._seen
        get = values.get
        for i, code, factor, lo, hi in self._plan:
            raw = get(code)
            kind = type(raw)
            if kind is not float and kind is not int:  # None, text (and bool, never a reading)
                continue
            x = raw * factor  # type: ignore[operator]
            if not lo <= x <= hi:  # NaN fails too
                continue
            value[i] = x
            seen[i] = t
            if i == _HOOK:
                self._learn_hook(x)

    def _current(self, t: float) -> list[float | None]:
        hold = self.settings.hold
        seen = self._seen
        return [x if t - seen[i] <= hold else None for i, x in enumerate(self._value)]

    def _move(self, t: float, v: list[float | None]) -> None:
        """Update the string's upward speed from block position, else bit depth."""
        block, bit = v[_BLOCK], v[_BIT]
        if block is not None and self._seen[_BLOCK] == t:
            src, pos = _BLOCK, block
        elif block is None and bit is not None and self._seen[_BIT] == t:
            src, pos = _BIT, -bit
        else:
            return  # nothing new: keep the last speed while the reading is held
        track = self._track
        if src != self._track_from:
            track.clear()
            self._track_from = src
        if track:
            t0, p0 = track[-1]
            if t > t0 and abs(pos - p0) / (t - t0) > _MAX_SPEED:
                self._spikes += 1
                if self._spikes < 3:
                    return  # a spike: skip it
                track.clear()  # three in a row: the position really jumped (re-zeroed)
        self._spikes = 0
        track.append((t, pos))
        # Speed over about 2 s (two frames at 1 Hz): noise halves, lag stays one frame.
        for t0, p0 in track:
            if t - t0 <= 2.0 + 1e-6:
                if t > t0:
                    self._speed = (pos - p0) / (t - t0)
                break

    def _learn_hook(self, x: float) -> None:
        if x < _MIN_BLOCK_WEIGHT or self._block_override is not None:
            return
        at = min(int(x), _BINS - 1)
        self._hist[at] += 1
        self._top_bin = max(self._top_bin, at)
        self._hook_samples += 1
        if self._hook_samples % (_REESTIMATE_EVERY if self._block_weight is None else _REFRESH_EVERY) == 0:
            self._estimate()

    def _estimate(self) -> None:
        """Block weight: the lowest hook-load level held long enough, with the string hanging well
        above it; string weight: the most populated level at least _MIN_STRING_GAP above that and
        _MIN_STRING_RATIO times it."""
        hist = self._hist
        w = _HALF_WINDOW
        top = min(self._top_bin + w + 1, _BINS - w - 1)
        sums: list[int] = []
        run = sum(hist[: 2 * w + 1])
        for centre in range(w, top):
            sums.append(run)  # sums[k]: the window around bin k + w
            run += hist[centre + w + 1] - hist[centre - w]
        lowest = next((k for k, n in enumerate(sums) if n >= _LEVEL_COUNT), None)
        if lowest is None:
            return
        low = self._centre(lowest + w)
        above = int(max(low + _MIN_STRING_GAP, low * _MIN_STRING_RATIO)) - w
        best = max(range(max(above, 0), len(sums)), key=sums.__getitem__, default=None)
        if best is None or sums[best] < _LEVEL_COUNT:
            # No hanging level yet: the lowest level may be the string itself (no slips seen).
            self._string_weight = low
            return
        self._string_weight = self._centre(best + w)
        self._block_weight = low

    def _centre(self, at: int) -> float:
        hist = self._hist
        lo, hi = max(0, at - _HALF_WINDOW), min(_BINS, at + _HALF_WINDOW + 1)
        n = sum(hist[lo:hi])
        return sum((i + 0.5) * hist[i] for i in range(lo, hi)) / n if n else at + 0.5

    def _slips_fps(self) -> float | None:
        bw = self._block_weight
        sw = self._string_weight
        if bw is None:
            # Until a block level is seen: well below the string weight, or nothing.
            return None if sw is None or self._block_override is not None else 0.4 * sw
        span = 0.3 * (sw - bw) if sw is not None and sw > bw else 0.0
        return bw + max(self._margin, span)

    def _candidate(self, v: list[float | None]) -> RigState:
        hook = v[_HOOK]
        speed = self._speed
        if hook is None or speed is None:
            return RigState.UNKNOWN
        pumps = self._pumps(v)
        if pumps is None:
            return RigState.UNKNOWN
        slips = self._slips_fps()
        if slips is not None and hook < slips:
            return RigState.IN_SLIPS
        rpm = v[_RPM]
        if rpm is not None:
            rotating = abs(rpm) > self._rpm_thr
        else:
            torque = v[_TORQUE]
            rotating = torque is not None and torque > self._torque_thr
        hole, bit = v[_HOLE], v[_BIT]
        if hole is not None and bit is not None:
            on_bottom = hole - bit <= self._tol
        else:
            wob = v[_WOB]
            on_bottom = wob is not None and wob > self._wob_thr
        if on_bottom and pumps:
            return RigState.ROTARY_DRILLING if rotating else RigState.SLIDE_DRILLING
        if speed > self._speed_thr:
            return RigState.BACK_REAMING if pumps or rotating else RigState.TRIPPING_OUT
        if speed < -self._speed_thr:
            return RigState.REAMING if pumps or rotating else RigState.TRIPPING_IN
        return RigState.CIRCULATING if pumps else RigState.STATIONARY

    def _pumps(self, v: list[float | None]) -> bool | None:
        flow = v[_FLOW]
        if flow is not None:
            return self._flow.on(flow)
        strokes = [x for x in (v[_SPM1], v[_SPM2], v[_SPM3]) if x is not None]
        if strokes:
            return self._strokes.on(sum(strokes))
        spp = v[_SPP]
        if spp is not None:
            return self._spp.on(spp)
        return None

    def _confirm(self, t: float, candidate: RigState, restart: bool) -> RigState:
        if restart or self._state is RigState.UNKNOWN:
            # Nothing to hold on to: report what the data says at once.
            self._state = self._pending = candidate
            self._pending_since = t
            return candidate
        if candidate is self._state:
            self._pending = candidate
            return candidate
        if candidate is not self._pending:
            self._pending = candidate
            self._pending_since = t
        elif t - self._pending_since >= self.settings.confirm:
            self._state = candidate
        return self._state


def classify(
    frames: Iterable[DecodedFrame | Sample], settings: RigStateSettings | None = None
) -> Iterator[StateSample]:
    """Classify a range of frames (a file, a stored range) in time order.

    Takes decoded frames (those not of record 1 are skipped) or :class:`Sample` tuples (see
    :func:`samples_from_points` for stored points), and yields one :class:`StateSample` per
    record-1 frame, with the hole and bit depths the KPIs need.
    """
    clf = RigStateClassifier(settings)
    update = clf.update
    for item in frames:
        if isinstance(item, DecodedFrame):
            codes = item.codes
            if not codes or not codes[0].startswith("01"):
                continue
            time = item.timestamp
            values: Mapping[str, Value] = dict(zip(codes, item.values, strict=True))
        else:
            time, values = item
        state = update(time, values)
        yield StateSample(time, state, _depth(values.get("0110")), _depth(values.get("0108")))


def _depth(value: Value) -> float | None:
    kind = type(value)
    if kind is not float and kind is not int:
        return None
    x = float(value)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None


def samples_from_points(points: Iterable[tuple[datetime, str, Value, int]]) -> Iterator[Sample]:
    """Group stored points ``(time, code, value, frame key)``, in time order, into record-1 samples.

    This is how a stored range is classified: query the store for :data:`RIG_STATE_CODES` of one
    source and pass the points here, then the samples to :func:`classify`.
    """
    values: dict[str, Value] = {}
    current: tuple[datetime, int] | None = None
    for time, code, value, key in points:
        if (time, key) != current:
            if current is not None and values:
                yield Sample(current[0], values)
            current = (time, key)
            values = {}
        values[code] = value
    if current is not None and values:
        yield Sample(current[0], values)
