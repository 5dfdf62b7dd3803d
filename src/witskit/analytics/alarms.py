"""Alarm rules over decoded frames: what fires, when it clears, and nothing in between.

Five kinds of rule, each with a severity (``info``, ``warning``, ``critical``):

* ``threshold``: one channel above (or below) a value, with hysteresis: it fires when the value
  passes ``above`` and clears only when it is back below ``above - hysteresis``.
* ``rate``: one channel's change over a window: ``rise`` (now minus the oldest value of the last
  ``window_seconds``) or ``fall``.
* ``difference``: channel ``code`` minus channel ``minus`` (flow out minus flow in), above or below
  a value; ``minus`` is converted to ``code``'s unit first.
* ``pit_gain`` (kick indicator): the active pit volume (0126 TVA) gains ``gain`` or more over
  ``window_seconds``, while the rig is not tripping.
* ``flow_out_rise`` (kick indicator): flow out (0129 MFOA) rises by ``rise`` or more over
  ``window_seconds`` while the pumps run steady (pump strokes 0123-0125 within ``pump_tolerance``
  SPM; without stroke channels, flow in 0130 within ``rise / 2``).

Every rule is debounced on the frames' own times: it fires when its condition has held for
``for_seconds`` and clears when the condition has been false for ``clear_seconds``. An active alarm
is latched while its signal flaps faster than ``clear_seconds``, so a flapping signal gives one
``fired`` and one ``cleared``, never a flood. A frame that lacks a rule's channel (or holds a null
there) leaves that rule's state as it was.

Tripping, for ``pit_gain``: the rig-state classifier's ``tripping_in`` / ``tripping_out`` when the
caller passes a state, else a heuristic: pumps off (strokes below ``PUMPS_ON_SPM``, flow in below
``PUMPS_ON_GPM`` when there is no stroke channel), no rotation (0120 below ``ROTATING_RPM``) and the
block (0112) moved ``TRIP_MOTION_M`` or more in the last ``TRIP_WINDOW_S`` seconds. A feed without
block position is never taken as tripping: a kick indicator that stays on is the safe side.

Numbers of a rule are in its ``unit`` (default: the channel's unit in each feed, FPS or metric);
they are converted to each feed's unit, so one rule serves FPS and metric rigs.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from witskit.errors import ConfigError, ConversionError
from witskit.protocol import DecodedFrame
from witskit.symbols import SymbolTable, WITSSymbol, default_table
from witskit.units import conversion_factor, convert, is_convertible

__all__ = [
    "AlarmEngine",
    "AlarmEvent",
    "AlarmRule",
    "RuleType",
    "Severity",
    "TrippingHeuristic",
    "parse_rules",
    "rule_problems",
]

#: Total pump strokes per minute below which the pumps count as off (a pump idling at a few SPM
#: while priming is not circulating).
PUMPS_ON_SPM: Final = 5.0
#: Flow in (GPM) below which the pumps count as off, for a feed without stroke channels.
PUMPS_ON_GPM: Final = 50.0
#: Surface RPM below which the string counts as not rotating (encoder noise reads 1-2 RPM).
ROTATING_RPM: Final = 5.0
#: Block travel (metres) within TRIP_WINDOW_S that marks tripping: a stand is ~28 m, so a trip
#: moves this much every minute or two, while a stationary block drifts by centimetres.
TRIP_MOTION_M: Final = 1.0
#: How far back the heuristic looks for block travel (seconds): longer than the slips time of one
#: connection (~1 min), so a trip stays a trip between stands.
TRIP_WINDOW_S: Final = 180.0
#: The longest window of a rule (seconds): its readings are kept in memory, a day of 1 Hz data is
#: ~2 MB per rule and source, and no kick or trend indicator looks back further.
MAX_WINDOW_S: Final = 86_400.0
#: The longest rule name: it is in every event, log line and webhook.
MAX_NAME: Final = 100
#: Rig states of the rig-state classifier that count as tripping.
TRIPPING_STATES: Final = frozenset({"tripping_in", "tripping_out"})


class Severity(StrEnum):
    """How urgent an alarm is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class RuleType(StrEnum):
    """The kinds of rule (the ``type:`` of a rule in the pipeline file)."""

    THRESHOLD = "threshold"
    RATE = "rate"
    DIFFERENCE = "difference"
    PIT_GAIN = "pit_gain"
    FLOW_OUT_RISE = "flow_out_rise"


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """One validated rule (build them with :func:`parse_rules`)."""

    name: str
    type: RuleType
    code: str
    severity: Severity = Severity.WARNING
    unit: str | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = 0.0
    rise: float | None = None
    fall: float | None = None
    gain: float | None = None
    window_seconds: float = 0.0
    minus: str | None = None
    pumps: tuple[str, ...] = ()
    flow_in: str | None = None
    pump_tolerance: float = 2.0
    for_seconds: float = 0.0
    clear_seconds: float = 10.0
    sources: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm firing or clearing: what the store keeps and the webhooks send."""

    #: Stable for the same rule, source, state and frame time: a replay gives the same id.
    event_id: str
    rule: str
    rule_type: str
    state: str  # "fired" or "cleared"
    severity: str
    source: str
    time: datetime
    code: str
    value: float | None
    unit: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values (time in ISO 8601 UTC)."""
        return {
            "event_id": self.event_id,
            "rule": self.rule,
            "rule_type": self.rule_type,
            "state": self.state,
            "severity": self.severity,
            "source": self.source,
            "time": self.time.isoformat(),
            "code": self.code,
            "value": self.value,
            "unit": self.unit,
            "message": self.message,
        }


# Parsing -------------------------------------------------------------------------------------------
_COMMON = {"name", "type", "severity", "unit", "for_seconds", "clear_seconds", "sources"}
_FIELDS: dict[RuleType, set[str]] = {
    RuleType.THRESHOLD: _COMMON | {"code", "above", "below", "hysteresis"},
    RuleType.RATE: _COMMON | {"code", "rise", "fall", "window_seconds"},
    RuleType.DIFFERENCE: _COMMON | {"code", "minus", "above", "below", "hysteresis"},
    RuleType.PIT_GAIN: _COMMON | {"code", "gain", "window_seconds"},
    RuleType.FLOW_OUT_RISE: _COMMON
    | {"code", "rise", "window_seconds", "pumps", "flow_in", "pump_tolerance"},
}
#: The built-in kick indicators' defaults: 10 bbl over 5 minutes is a common pit-gain alarm on
#: land rigs; 50 gpm of flow-out rise within a minute is well above paddle noise.
_DEFAULTS: dict[RuleType, dict[str, Any]] = {
    RuleType.PIT_GAIN: {
        "code": "0126",
        "gain": 10.0,
        "unit": "BBL",
        "window_seconds": 300.0,
        "severity": "critical",
    },
    RuleType.FLOW_OUT_RISE: {
        "code": "0129",
        "rise": 50.0,
        "unit": "GPM",
        "window_seconds": 60.0,
        "pumps": ["0123", "0124", "0125"],
        "flow_in": "0130",
        "severity": "critical",
    },
}

Problems = list[tuple[str, str]]


def _number(rule: Mapping[str, Any], key: str, where: str, problems: Problems) -> float | None:
    value = rule.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append((f"{where}.{key}", f"must be a number (got {value!r})"))
        return None
    return float(value)


def _symbol(code: Any, where: str, problems: Problems, table: SymbolTable) -> WITSSymbol | None:
    if not isinstance(code, str) or len(code) != 4 or not code.isdigit():
        problems.append((where, f'must be a 4-digit WITS code in quotes, such as "0121" (got {code!r})'))
        return None
    symbol = table.get(code)
    if symbol is None:
        problems.append(
            (where, f"unknown WITS code {code!r} (not in the dictionary; add it with an overlay)")
        )
    elif not symbol.data_type.is_numeric:
        problems.append(
            (where, f"{code} {symbol.name} ({symbol.description}) is a text item; alarms need numbers")
        )
        return None
    return symbol


def _units_of(symbol: WITSSymbol) -> str:
    units = dict.fromkeys((symbol.fps_units, symbol.metric_units))
    return " or ".join(units)


def _check_unit(unit: str, symbol: WITSSymbol, where: str, problems: Problems) -> None:
    if not any(is_convertible(unit, u) for u in (symbol.fps_units, symbol.metric_units)):
        problems.append(
            (
                where,
                f"{unit!r} does not fit {symbol.code} {symbol.name} ({symbol.description}), "
                f"measured in {_units_of(symbol)}",
            )
        )


def _one_rule(
    raw: Any, where: str, names: set[str], problems: Problems, table: SymbolTable
) -> AlarmRule | None:
    if not isinstance(raw, Mapping):
        problems.append((where, f"each rule is a mapping with name: and type: (got {raw!r})"))
        return None
    before = len(problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append((f"{where}.name", "every rule needs a name"))
        name = ""
    elif len(name) > MAX_NAME:
        problems.append((f"{where}.name", f"must be at most {MAX_NAME} characters"))
    elif not name.isprintable():  # it is in every log line, event and webhook
        problems.append((f"{where}.name", "must be printable text (no line breaks or control characters)"))
    elif name in names:
        problems.append((f"{where}.name", f"a rule named {name!r} is already defined"))
    names.add(name)
    try:
        kind = RuleType(str(raw.get("type")))
    except ValueError:
        kinds = ", ".join(t.value for t in RuleType)
        problems.append((f"{where}.type", f"unknown rule type {raw.get('type')!r} (one of: {kinds})"))
        return None
    for key in raw:
        if key not in _FIELDS[kind]:
            guess = difflib.get_close_matches(str(key), sorted(_FIELDS[kind]), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.append((f"{where}.{key}", f"unknown field for a {kind.value} rule{hint}"))
    rule = {**_DEFAULTS.get(kind, {}), **raw}
    try:
        severity = Severity(rule.get("severity", "warning"))
    except ValueError:
        problems.append(
            (f"{where}.severity", f"must be info, warning or critical (got {rule['severity']!r})")
        )
        severity = Severity.WARNING
    symbol = _symbol(rule.get("code"), f"{where}.code", problems, table)
    numbers = {
        key: _number(rule, key, where, problems)
        for key in (
            "above",
            "below",
            "hysteresis",
            "rise",
            "fall",
            "gain",
            "window_seconds",
            "pump_tolerance",
        )
    }
    timing = {key: _number(rule, key, where, problems) for key in ("for_seconds", "clear_seconds")}
    for key, value in timing.items():
        if value is not None and value < 0:
            problems.append((f"{where}.{key}", f"must not be negative (got {value:g})"))
    if "window_seconds" in _FIELDS[kind]:
        window = numbers["window_seconds"]
        if window is None and "window_seconds" not in rule:
            problems.append((f"{where}.window_seconds", f"a {kind.value} rule needs window_seconds"))
        elif window is not None and window <= 0:
            problems.append((f"{where}.window_seconds", f"must be more than 0 seconds (got {window:g})"))
        elif window is not None and window > MAX_WINDOW_S:
            problems.append(
                (f"{where}.window_seconds", f"must be at most {MAX_WINDOW_S:,.0f} s, a day (got {window:g})")
            )
    if kind in (RuleType.THRESHOLD, RuleType.DIFFERENCE):
        if numbers["above"] is None and numbers["below"] is None:
            problems.append((where, f"a {kind.value} rule needs above: or below:"))
        if (numbers["hysteresis"] or 0) < 0:
            problems.append((f"{where}.hysteresis", "must not be negative"))
    if kind is RuleType.RATE and numbers["rise"] is None and numbers["fall"] is None:
        problems.append((where, "a rate rule needs rise: or fall: (a change over window_seconds)"))
    for key in ("rise", "fall", "gain"):
        value = numbers[key]
        if value is not None and value <= 0:
            problems.append((f"{where}.{key}", f"must be more than 0 (got {value:g})"))
    unit = rule.get("unit")
    if unit is not None and not isinstance(unit, str):
        problems.append((f"{where}.unit", f"must be a unit such as PSI (got {unit!r})"))
        unit = None
    if unit is not None and symbol is not None:
        before_unit = len(problems)
        _check_unit(unit, symbol, f"{where}.unit", problems)
        if len(problems) > before_unit and "unit" not in raw:  # the kick indicator's default unit
            field_name, message = problems.pop()
            problems.append((field_name, f"the default unit {message}; give unit: for this channel"))
    minus = rule.get("minus")
    if kind is RuleType.DIFFERENCE:
        other = _symbol(minus, f"{where}.minus", problems, table)
        if other is not None and symbol is not None and not is_convertible(other.fps_units, symbol.fps_units):
            problems.append(
                (
                    f"{where}.minus",
                    f"{other.code} {other.name} ({_units_of(other)}) cannot be subtracted from "
                    f"{symbol.code} {symbol.name} ({_units_of(symbol)})",
                )
            )
    pumps = rule.get("pumps", [])
    if kind is RuleType.FLOW_OUT_RISE:
        if not isinstance(pumps, list):
            problems.append((f"{where}.pumps", "must be a list of pump stroke codes"))
            pumps = []
        for i, code in enumerate(pumps):
            _symbol(code, f"{where}.pumps.{i}", problems, table)
        if rule.get("flow_in") is not None:
            _symbol(rule["flow_in"], f"{where}.flow_in", problems, table)
    sources = rule.get("sources")
    if sources is not None and (
        not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)
    ):
        problems.append((f"{where}.sources", "must be a list of source names"))
        sources = None
    if len(problems) > before:
        return None
    return AlarmRule(
        name=name,
        type=kind,
        code=rule["code"],
        severity=severity,
        unit=unit,
        above=numbers["above"],
        below=numbers["below"],
        hysteresis=numbers["hysteresis"] or 0.0,
        rise=numbers["rise"],
        fall=numbers["fall"],
        gain=numbers["gain"],
        window_seconds=numbers["window_seconds"] or 0.0,
        minus=minus,
        pumps=tuple(pumps),
        flow_in=rule.get("flow_in"),
        pump_tolerance=numbers["pump_tolerance"] if numbers["pump_tolerance"] is not None else 2.0,
        for_seconds=timing["for_seconds"] or 0.0,
        clear_seconds=timing["clear_seconds"] if timing["clear_seconds"] is not None else 10.0,
        sources=frozenset(sources) if sources is not None else None,
    )


def rule_problems(rules: Any, where: str = "alarms.rules", *, symbols: SymbolTable | None = None) -> Problems:
    """Every problem of a list of rule mappings (a pipeline file's ``alarms.rules``): (field, message).

    Codes are looked up in ``symbols`` (default: the process-wide dictionary, overlays included).
    """
    problems: Problems = []
    _parse(rules, where, problems, symbols or default_table())
    return problems


def _parse(rules: Any, where: str, problems: Problems, table: SymbolTable) -> list[AlarmRule]:
    if not isinstance(rules, list):
        problems.append((where, f"must be a list of rules (got {type(rules).__name__})"))
        return []
    names: set[str] = set()
    parsed = [_one_rule(raw, f"{where}.{i}", names, problems, table) for i, raw in enumerate(rules)]
    return [rule for rule in parsed if rule is not None]


def parse_rules(
    rules: Any, where: str = "alarms.rules", *, symbols: SymbolTable | None = None
) -> list[AlarmRule]:
    """Validated rules from mappings; a :class:`~witskit.errors.ConfigError` lists every problem."""
    problems: Problems = []
    parsed = _parse(rules, where, problems, symbols or default_table())
    if problems:
        raise ConfigError("invalid alarm rules:\n" + "\n".join(f"  {f}: {m}" for f, m in problems))
    return parsed


# Evaluation ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Track:
    """One rule's state on one source."""

    active: bool = False
    since: float | None = None  # when the condition last turned against the current state
    history: deque[tuple[float, float, float | None]] = field(default_factory=deque)
    value: float | None = None


class TrippingHeuristic:
    """Whether a source is tripping, from pumps, rotation and block travel (see the module docstring)."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        self._blocks: dict[str, deque[tuple[float, float]]] = {}

    def update(self, source: str, t: float, values: Mapping[str, Any], units: Callable[[str], str]) -> bool:
        """Feed one frame's values; True when the source is tripping now."""
        block = values.get("0112")
        history = self._blocks.get(source)
        if history is None:
            history = self._blocks[source] = deque()
        if isinstance(block, int | float):
            history.append((t, block * _factor(units("0112"), "M")))
        while history and t - history[0][0] > TRIP_WINDOW_S:
            history.popleft()
        if len(history) < 2:
            return False
        rpm = values.get("0120")
        if isinstance(rpm, int | float) and rpm >= ROTATING_RPM:
            return False
        strokes = [v for c in ("0123", "0124", "0125") if isinstance(v := values.get(c), int | float)]
        if strokes:
            if sum(strokes) >= PUMPS_ON_SPM:
                return False
        else:
            flow = values.get("0130")
            if isinstance(flow, int | float) and flow * _factor(units("0130"), "GPM") >= PUMPS_ON_GPM:
                return False
        positions = [p for _, p in history]
        return max(positions) - min(positions) >= TRIP_MOTION_M


@lru_cache(maxsize=256)
def _factor(unit: str, target: str) -> float:
    """The factor from ``unit`` to ``target`` (1 when either is unknown or they do not convert)."""
    try:
        return conversion_factor(unit, target)
    except ConversionError:
        return 1.0


def _to(value: float, unit: str, target: str) -> float:
    try:
        return convert(value, unit, target)
    except ConversionError:
        return value


class _Scale:
    """A rule's numbers in one feed's unit (cached per unit: converting per frame costs pint calls)."""

    __slots__ = ("_cache", "_rule")

    def __init__(self, rule: AlarmRule) -> None:
        self._rule = rule
        self._cache: dict[str, dict[str, float | None]] = {}

    def numbers(self, unit: str) -> dict[str, float | None]:
        found = self._cache.get(unit)
        if found is None:
            found = self._cache[unit] = self._convert(unit)
        return found

    def _convert(self, unit: str) -> dict[str, float | None]:
        rule = self._rule
        src = rule.unit or unit

        def level(x: float | None) -> float | None:
            return None if x is None else convert(x, src, unit) if src != unit else x

        def delta(x: float | None) -> float | None:
            if x is None or src == unit:
                return x
            return convert(x, src, unit) - convert(0.0, src, unit)

        above, below = level(rule.above), level(rule.below)
        if rule.type is RuleType.DIFFERENCE:  # a difference is a delta, not a level
            above, below = delta(rule.above), delta(rule.below)
        return {
            "above": above,
            "below": below,
            "hysteresis": delta(rule.hysteresis),
            "rise": delta(rule.rise),
            "fall": delta(rule.fall),
            "gain": delta(rule.gain),
        }


def _event_id(source: str, rule: str, state: str, time: datetime) -> str:
    material = "\x1f".join((source, rule, state, time.isoformat())).encode("utf-8")
    return hashlib.sha256(material).hexdigest()[:32]


class AlarmEngine:
    """Evaluates rules on frames in arrival order and says when each alarm fires and clears.

    ``feed(frame)`` returns the :class:`AlarmEvent` s the frame caused (usually none). ``state`` is
    the rig state of the frame when a classifier runs beside the engine (``tripping_in`` ...);
    without it, tripping is judged by :class:`TrippingHeuristic`. Frames older than the last one of
    their source are skipped (counted in :attr:`out_of_order`): alarms run on data time.
    """

    def __init__(self, rules: Sequence[AlarmRule]) -> None:
        self.rules = tuple(rules)
        self._scales = [_Scale(rule) for rule in self.rules]
        self._tracks: dict[tuple[int, str], _Track] = {}
        self._last: dict[str, float] = {}
        self._tripping = TrippingHeuristic()
        self._needs_tripping = any(r.type is RuleType.PIT_GAIN for r in self.rules)
        self.frames = 0
        self.out_of_order = 0

    def set_rules(self, rules: Sequence[AlarmRule]) -> None:
        """Replace the rules while frames flow (rules added or removed through the API).

        A rule kept unchanged (same name, same definition) keeps its state on every source: an
        active alarm stays active, its debounce and window go on. A changed rule starts afresh, and
        a removed rule's alarms are forgotten without a ``cleared`` event.
        """
        rules = tuple(rules)
        old = {rule: i for i, rule in enumerate(self.rules)}
        tracks: dict[tuple[int, str], _Track] = {}
        for j, rule in enumerate(rules):
            i = old.get(rule)
            if i is None:
                continue
            for (index, source), track in self._tracks.items():
                if index == i:
                    tracks[(j, source)] = track
        self.rules = rules
        self._scales = [_Scale(rule) for rule in rules]
        self._tracks = tracks
        self._needs_tripping = any(r.type is RuleType.PIT_GAIN for r in rules)

    @property
    def needs_rig_state(self) -> bool:
        """True when a rule asks whether the rig is tripping (a ``pit_gain`` rule)."""
        return self._needs_tripping

    def active(self) -> list[tuple[str, str]]:
        """The (rule, source) pairs whose alarm is active now."""
        return sorted((self.rules[i].name, source) for (i, source), t in self._tracks.items() if t.active)

    def feed(self, frame: DecodedFrame, state: str | None = None) -> list[AlarmEvent]:
        """Evaluate every rule on one frame; the events it caused, in rule order."""
        source = frame.source or "default"
        when = frame.timestamp
        t = when.timestamp()
        last = self._last.get(source)
        if last is not None and t < last:
            self.out_of_order += 1
            return []
        self._last[source] = t
        self.frames += 1
        values = dict(zip(frame.codes, frame.values, strict=True))
        units = frame.unit
        tripping = False
        if state is not None:
            tripping = state in TRIPPING_STATES
        elif self._needs_tripping:
            tripping = self._tripping.update(source, t, values, units)
        events: list[AlarmEvent] = []
        for i, rule in enumerate(self.rules):
            if rule.sources is not None and source not in rule.sources:
                continue
            value = values.get(rule.code)
            if not isinstance(value, int | float):
                continue  # missing or null: the state holds
            track = self._tracks.get((i, source))
            if track is None:
                track = self._tracks[(i, source)] = _Track()
            unit = units(rule.code)
            holds = self._condition(
                rule, self._scales[i].numbers(unit), track, t, float(value), values, units, tripping
            )
            if holds is None:
                continue
            event = self._step(rule, track, t, holds)
            if event is not None:
                events.append(self._event(rule, source, when, event, track.value, unit))
        return events

    @staticmethod
    def _condition(
        rule: AlarmRule,
        n: Mapping[str, float | None],
        track: _Track,
        t: float,
        value: float,
        values: Mapping[str, Any],
        units: Callable[[str], str],
        tripping: bool,
    ) -> bool | None:
        kind = rule.type
        if kind is RuleType.THRESHOLD or kind is RuleType.DIFFERENCE:
            if kind is RuleType.DIFFERENCE:
                other = values.get(rule.minus or "")
                if not isinstance(other, int | float):
                    return None
                value -= _to(float(other), units(rule.minus or ""), units(rule.code))
            track.value = value
            slack = (n["hysteresis"] or 0.0) if track.active else 0.0
            above, below = n["above"], n["below"]
            return (above is not None and value > above - slack) or (
                below is not None and value < below + slack
            )
        # Windowed rules: keep (time, value, pumps) for the window, compare now with its oldest.
        # Pumps as total strokes (>= 0), or as flow in (stored negated, so the two never mix).
        pumps: float | None = None
        if kind is RuleType.FLOW_OUT_RISE:
            strokes = [v for c in rule.pumps if isinstance(v := values.get(c), int | float)]
            if strokes:
                pumps = float(sum(strokes))
            elif rule.flow_in is not None and isinstance(flow := values.get(rule.flow_in), int | float):
                pumps = -flow * _factor(units(rule.flow_in), units(rule.code)) - 1.0
        history = track.history
        history.append((t, value, pumps))
        while t - history[0][0] > rule.window_seconds:
            history.popleft()
        _, old, old_pumps = history[0]
        change = value - old
        track.value = change
        if kind is RuleType.RATE:
            rise, fall = n["rise"], n["fall"]
            return (rise is not None and change >= rise) or (fall is not None and -change >= fall)
        if kind is RuleType.PIT_GAIN:
            return not tripping and change >= (n["gain"] or 0.0)
        rise = n["rise"] or 0.0
        if pumps is None or old_pumps is None:
            return None  # cannot tell whether the pumps are steady
        if (pumps >= 0) != (old_pumps >= 0):
            return None  # strokes then and flow in now (or the reverse): not comparable
        tolerance = rule.pump_tolerance if pumps >= 0 else rise / 2
        running = pumps > 0 if pumps >= 0 else -pumps - 1.0 >= PUMPS_ON_GPM * _factor("GPM", units(rule.code))
        return abs(pumps - old_pumps) <= tolerance and running and change >= rise

    @staticmethod
    def _step(rule: AlarmRule, track: _Track, t: float, holds: bool) -> str | None:
        if holds != track.active:  # the condition is against the current state: debounce
            if track.since is None:
                track.since = t
            wait = rule.for_seconds if not track.active else rule.clear_seconds
            if t - track.since >= wait:
                track.active = holds
                track.since = None
                return "fired" if holds else "cleared"
        else:
            track.since = None
        return None

    @staticmethod
    def _event(
        rule: AlarmRule, source: str, when: datetime, state: str, value: float | None, unit: str
    ) -> AlarmEvent:
        shown = "null" if value is None else f"{value:g} {unit}"
        if rule.type is RuleType.THRESHOLD:
            what = f"{rule.code} = {shown}"
        elif rule.type is RuleType.DIFFERENCE:
            what = f"{rule.code} - {rule.minus} = {shown}"
        else:
            what = f"{rule.code} changed {shown} over {rule.window_seconds:g} s"
        message = f"{rule.name} {state} on {source}: {what}"
        return AlarmEvent(
            event_id=_event_id(source, rule.name, state, when),
            rule=rule.name,
            rule_type=rule.type.value,
            state=state,
            severity=rule.severity.value,
            source=source,
            time=when,
            code=rule.code,
            value=value,
            unit=unit,
            message=message,
        )

    def feed_many(self, frames: Iterable[DecodedFrame]) -> list[AlarmEvent]:
        """Every event of a sequence of frames (after the fact: a stored range, a file)."""
        return [event for frame in frames for event in self.feed(frame)]
