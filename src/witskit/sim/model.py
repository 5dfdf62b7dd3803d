"""A deterministic drilling-rig simulator that writes WITS Level 0 frames.

:class:`DrillingSimulator` plays a rig drilling a vertical 8 1/2 in hole with a top drive, stand by
stand: drilling on bottom, a connection every stand, circulating while the pumps come back up and the
bit is washed back to bottom, and now and then a short (wiper) trip out of the hole and back in. It
produces the frames a rig's recorder would send: record 1 (General Time-Based) at a fixed rate of
simulated time, record 2 (Drilling - Depth Based) each time the hole depth crosses a depth interval,
and record 8 (MWD Formation Evaluation) every few seconds while the MWD tool pulses (pumps on, bit on
or near bottom).

It is pure Python with no I/O and no wall clock: the same seed and arguments give byte-identical
output. Simulated time only moves when frames are asked for, so a day of drilling takes a fraction of
a second to generate; pacing the frames in real time is the caller's job (the CLI and servers do it).

>>> from witskit.sim.model import DrillingSimulator
>>> sim = DrillingSimulator(seed=7, records=(1,))
>>> frame = next(sim.frames(1))
>>> frame.startswith(b"&&\\r\\n0101WITSKIT-SIM-1\\r\\n")
True
>>> sim.phase.value
'drilling'

Activity codes (item ``RR07``, ACTC) follow :data:`ACTIVITY_CODES`: 1 drilling, 2 connection,
3 tripping out, 4 tripping in, 5 circulating. :attr:`DrillingSimulator.rig_state` is the finer truth
(slips, pipe movement, pumps and rotation) in the vocabulary of :data:`RIG_STATES`, which
``witskit.analytics.rigstate`` detects from the frames. See ``docs/simulator.md`` for the full
description.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from witskit.errors import UsageError
from witskit.protocol.encoder import LINE_ENDINGS, format_value

__all__ = [
    "ACTIVITY_CODES",
    "DEFAULT_START",
    "RECORDS",
    "RIG_STATES",
    "DrillingSimulator",
    "Phase",
    "SimState",
]


class Phase(StrEnum):
    """What the rig is doing (the simulator's rig state)."""

    DRILLING = "drilling"
    """Bit on bottom, rotating, pumps on, hole getting deeper."""
    CONNECTION = "connection"
    """Adding a stand: off bottom, pumps off, no rotation, string in the slips."""
    TRIPPING_OUT = "tripping_out"
    """Pulling stands out of the hole, pumps off."""
    TRIPPING_IN = "tripping_in"
    """Running stands back into the hole, pumps off."""
    CIRCULATING = "circulating"
    """Pumps on with the bit off bottom: breaking circulation, washing down, bottoms up."""

    @property
    def activity_code(self) -> int:
        """The ACTC value (item ``RR07``) sent for this phase."""
        return ACTIVITY_CODES[self]


#: Phase -> activity code (ACTC, item ``RR07`` of every record).
ACTIVITY_CODES: dict[Phase, int] = {
    Phase.DRILLING: 1,
    Phase.CONNECTION: 2,
    Phase.TRIPPING_OUT: 3,
    Phase.TRIPPING_IN: 4,
    Phase.CIRCULATING: 5,
}

#: The rig states :attr:`DrillingSimulator.rig_state` reports: the contract vocabulary of
#: ``witskit.analytics.RigState`` (the simulator never reports ``unknown``: it always knows).
RIG_STATES = (
    "rotary_drilling",
    "slide_drilling",
    "reaming",
    "back_reaming",
    "circulating",
    "tripping_in",
    "tripping_out",
    "in_slips",
    "stationary",
)

# With all_states: the share of stands whose first part is slid (oriented with the mud motor), the
# share of stands reamed up and down before their connection, and the share of trips pumped out
# with rotation (back-reamed) instead of pulled dry.
_SLIDE_SHARE = 0.4
_REAM_SHARE = 0.5
_PUMP_OUT_SHARE = 0.4

#: The default start of simulated time.
DEFAULT_START = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)

#: The records the simulator writes: 1 (General Time-Based), 2 (Drilling - Depth Based) and
#: 8 (MWD Formation Evaluation).
RECORDS = (1, 2, 8)


@dataclass(frozen=True, slots=True)
class SimState:
    """A snapshot of the simulated rig, in FPS units, as of the last record-1 sample.

    Depths and block position in ft, ``rop`` in ft/h, loads in klb, torque in kft·lbf, pressure in
    psi, flows in gpm, pit volume in bbl, densities in ppg, temperature in °F. ``formation`` is the
    lithology at the bit (``"shale"``, ``"sandstone"`` or ``"limestone"``).
    """

    phase: Phase
    clock: datetime
    hole_depth: float
    bit_depth: float
    block_position: float
    rop: float
    hookload: float
    wob: float
    torque: float
    rpm: int
    standpipe_pressure: float
    spm1: int
    spm2: int
    flow_in: float
    flow_out: float
    flow_out_percent: int
    pit_volume: float
    mud_density_in: float
    mud_density_out: float
    mud_temp_out: float
    formation: str
    stands_drilled: int
    trips: int
    rig_state: str
    """The truth in :data:`RIG_STATES`' vocabulary (see :attr:`DrillingSimulator.rig_state`)."""


# Conversion factors FPS -> metric (the dictionary's metric units: KDN is 10 kN).
_FT_M = 0.3048
_KLB_KDN = 0.44482216152605
_KFTLB_KNM = 1.3558179483314
_PSI_KPA = 6.894757293168
_BBL_M3 = 0.158987294928
_GAL_L = 3.785411784
_PPG_KGM3 = 119.8264273

# Rig and well constants (FPS).
_HOLE_CAPACITY = 8.5**2 / 1029.4  # bbl per ft of 8 1/2 in hole
_BIT_DIAMETER_IN = 8.5
_GAMMA_OFFSET = 42.0  # ft from the bit to the gamma sensor
_RES_OFFSET = 33.0  # ft from the bit to the resistivity sensor
_MIN_TRIP_DEPTH = 400.0  # never trip the bit shallower than this

# Lithologies: weight, thickness ft, ROP ft/h, WOB klb, gamma API, deep resistivity ohm·m (log-uniform),
# shallow/deep resistivity ratio, bit torque factor.
_R = tuple[float, float]
_LITHOLOGIES: dict[str, tuple[float, _R, _R, _R, _R, _R, _R, float]] = {
    "shale": (0.5, (30, 160), (55, 95), (20, 27), (95, 135), (1, 4), (0.95, 1.05), 1.0),
    "sandstone": (0.3, (15, 100), (95, 145), (15, 21), (25, 55), (2, 60), (0.6, 0.9), 0.9),
    "limestone": (0.2, (20, 120), (32, 60), (27, 35), (20, 35), (20, 180), (0.8, 1.0), 1.2),
}


@dataclass(frozen=True, slots=True)
class _Layer:
    top: float
    name: str
    rop: float
    wob: float
    gamma: float
    gamma_amp: float
    gamma_wave: float
    gamma_phase: float
    res: float
    invasion: float
    torque_factor: float


class _Formation:
    """Layers from the surface down, generated lazily from their own random stream."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._tops: list[float] = []
        self._layers: list[_Layer] = []
        self._bottom = 0.0
        self._last = ""
        self._cur: _Layer | None = None
        self._cur_top = 0.0
        self._cur_bottom = -1.0

    def _grow(self, depth: float) -> None:
        rng = self._rng
        names = list(_LITHOLOGIES)
        weights = [spec[0] for spec in _LITHOLOGIES.values()]
        while self._bottom <= depth:
            name = self._last
            while name == self._last:
                name = rng.choices(names, weights)[0]
            _, thick, rop, wob, gamma, res, inv, tqf = _LITHOLOGIES[name]
            layer = _Layer(
                top=self._bottom,
                name=name,
                rop=rng.uniform(*rop),
                wob=rng.uniform(*wob),
                gamma=rng.uniform(*gamma),
                gamma_amp=rng.uniform(3.0, 10.0),
                gamma_wave=rng.uniform(12.0, 40.0),
                gamma_phase=rng.uniform(0.0, 2 * math.pi),
                res=math.exp(rng.uniform(math.log(res[0]), math.log(res[1]))),
                invasion=rng.uniform(*inv),
                torque_factor=tqf,
            )
            self._tops.append(layer.top)
            self._layers.append(layer)
            self._bottom += rng.uniform(*thick)
            self._last = name

    def at(self, depth: float) -> _Layer:
        """The layer at ``depth`` ft (negative depths read the top layer)."""
        cur = self._cur
        if cur is not None and self._cur_top <= depth < self._cur_bottom:
            return cur
        if depth >= self._bottom:
            self._grow(depth)
        i = max(0, bisect_right(self._tops, depth) - 1)
        cur = self._cur = self._layers[i]
        self._cur_top = cur.top
        self._cur_bottom = self._tops[i + 1] if i + 1 < len(self._tops) else self._bottom
        return cur

    def gamma(self, depth: float) -> float:
        """Gamma ray (API) of the rock at ``depth``, before measurement noise."""
        lay = self.at(depth)
        return lay.gamma + lay.gamma_amp * math.sin(depth * (2 * math.pi) / lay.gamma_wave + lay.gamma_phase)

    def resistivity(self, depth: float) -> tuple[float, float]:
        """(shallow, deep) resistivity (ohm·m) at ``depth``, before measurement noise."""
        lay = self.at(depth)
        deep = lay.res * math.exp(0.12 * math.sin(depth * (2 * math.pi) / (1.7 * lay.gamma_wave)))
        return deep * lay.invasion, deep


# Time constants (s) of the first-order lags, in the order _relax unpacks them: pumps up, flow-out
# paddle, flowline temperature (circulating), drain-back (pumps on), flowline cooling, drain-back
# (pumps off), standpipe (pumps on), standpipe bleed-off, rotary up, rotary stop, WOB, ROP, density out.
_TAUS = (8.0, 15.0, 900.0, 25.0, 3600.0, 20.0, 2.0, 1.5, 4.0, 2.0, 15.0, 20.0, 120.0)


def _decay(h: float) -> tuple[float, ...]:
    """The lag factors ``exp(-h/tau)`` for ``h`` seconds, then ``sqrt(h)`` (random-walk scale)."""
    return (*(math.exp(-h / tau) for tau in _TAUS), math.sqrt(h))


def _template(fields: list[tuple[str, str]], eol: str) -> str:
    lines = ["&&", *(f"{code}{{:{spec}}}" for code, spec in fields), "!!"]
    return eol.join(lines) + eol


_R1_FIELDS = [
    ("0108", ".2f"),  # DBTM
    ("0110", ".2f"),  # DMEA
    ("0112", ".2f"),  # BPOS
    ("0113", ".2f"),  # ROPA
    ("0114", ".2f"),  # HKLA
    ("0115", ".2f"),  # HKLX
    ("0116", ".2f"),  # WOBA
    ("0117", ".2f"),  # WOBX
    ("0118", ".2f"),  # TQA
    ("0119", ".2f"),  # TQX
    ("0120", "d"),  # RPMA
    ("0121", ".1f"),  # SPPA
    ("0122", ".1f"),  # CHKP
    ("0123", "d"),  # SPM1
    ("0124", "d"),  # SPM2
    ("0126", "{vol}"),  # TVA
    ("0127", "{vol}"),  # TVCA
    ("0128", "d"),  # MFOP
    ("0129", ".1f"),  # MFOA
    ("0130", ".1f"),  # MFIA
    ("0131", "{dens}"),  # MDOA
    ("0132", "{dens}"),  # MDIA
    ("0133", ".1f"),  # MTOA
]
_R2_FIELDS = [
    ("0208", ".2f"),  # DMEA
    ("0210", ".2f"),  # ROPA
    ("0211", ".2f"),  # WOBA
    ("0212", ".2f"),  # HKLA
    ("0213", ".1f"),  # SPPA
    ("0214", ".2f"),  # TQA
    ("0215", "d"),  # RPMA
    ("0216", "d"),  # BRVC
    ("0217", "{dens}"),  # MDIA
    ("0218", "{dens}"),  # ECDT
    ("0219", ".1f"),  # MFIA
    ("0220", ".1f"),  # MFOA
    ("0221", "d"),  # MFOP
    ("0222", "{vol}"),  # TVA
    ("0225", ".2f"),  # BDTI
    ("0226", ".2f"),  # BDDI
    ("0227", ".2f"),  # DXC
]
_R8_FIELDS = [
    ("0808", ".2f"),  # DMEA
    ("0810", ".2f"),  # DBTM
    ("0813", ".2f"),  # DR1M
    ("0815", ".2f"),  # MR1
    ("0817", ".2f"),  # DR2M
    ("0819", ".2f"),  # MR2
    ("0821", ".2f"),  # DG1M
    ("0823", ".1f"),  # MG1
    ("0824", ".1f"),  # MG1C
    ("0835", ".1f"),  # MFTA
]
_HEADER = [("01", ""), ("02", "d"), ("03", "d"), ("04", "d"), ("05", "d"), ("06", "d"), ("07", "d")]

_SQID_WRAP = 2**31 - 1


def _record_template(record: int, fields: list[tuple[str, str]], metric: bool, eol: str) -> str:
    vol, dens = (".3f", ".1f") if metric else (".2f", ".2f")
    head = [(f"{record:02d}{item}", spec) for item, spec in _HEADER]
    body = [(code, spec.format(vol=vol, dens=dens)) for code, spec in fields]
    return _template(head + body, eol)


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive finite number, got {value!r}")
    return value


class DrillingSimulator:
    """A rig drilling ahead, as WITS Level 0 frames; deterministic for a given seed and arguments.

    ``rate`` is the number of record-1 frames per simulated second. ``records`` picks which of
    records 1, 2 and 8 are written. ``metric`` writes the dictionary's metric units (M, KDN, KNM,
    KPA, M3, L/M, KGM3, DEGC) instead of FPS (F, KLB, KFLB, PSI, BBL, GPM, PPG, DEGF);
    ``start_depth`` and ``depth_interval`` are in the same system (ft, or m when metric).
    ``start_depth`` ``None`` picks a depth between 5,000 and 9,000 ft from the seed.
    ``depth_interval`` (default 1 ft, or 0.3 m) is the hole-depth step that triggers a record 2;
    ``mwd_interval`` (simulated seconds) the spacing of record 8 while the MWD tool pulses.
    ``trip_every_stands`` is how many drilled stands separate two short trips (0: never trip); the
    first trip comes after 1 or 2 stands so that even short runs show one.

    ``all_states`` adds what a rig also does, so that every state of :data:`RIG_STATES` occurs: part
    of some stands slid with the mud motor (no rotation), stands reamed up and down before their
    connection, a short stop before the slips, bottoms up and a flow check before each trip, and
    some trips pumped out with rotation. It changes the random draws, so it gives a different
    stream; without it the output is what it always was.

    The simulator is stateful: :meth:`events` and :meth:`frames` continue where the last call
    stopped. ``start`` is the time of the first record-1 frame; a naive datetime is taken as UTC.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        start: datetime = DEFAULT_START,
        rate: float = 1.0,
        records: Iterable[int] = (1, 2, 8),
        line_ending: str = "crlf",
        well_id: str = "WITSKIT-SIM-1",
        metric: bool = False,
        start_depth: float | None = None,
        depth_interval: float | None = None,
        mwd_interval: float = 10.0,
        trip_every_stands: int = 4,
        all_states: bool = False,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"seed must be an integer, not {type(seed).__name__}")
        if not isinstance(start, datetime):
            raise UsageError(f"start must be a datetime, not {type(start).__name__}")
        self._start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        self._rate = _check_positive("rate", rate)
        wanted = set()
        for rec in records:
            if rec not in RECORDS or isinstance(rec, bool):
                raise UsageError(f"records must be among 1, 2 and 8, got {rec!r}")
            wanted.add(rec)
        if not wanted:
            raise UsageError("records must name at least one of 1, 2 and 8")
        self._records = frozenset(wanted)
        if not isinstance(line_ending, str) or line_ending.lower() not in LINE_ENDINGS:
            raise UsageError(f"line_ending must be 'crlf', 'lf' or 'cr', not {line_ending!r}")
        self.line_ending: str = line_ending.lower()
        eol = LINE_ENDINGS[self.line_ending].decode("ascii")
        if not isinstance(well_id, str) or not well_id:
            raise UsageError("well_id must be a non-empty string")
        format_value("0101", well_id)  # raises EncodeError for text WITS cannot carry
        self.well_id: str = well_id
        self.metric: bool = bool(metric)
        self.seed: int = seed
        self._len = _FT_M if self.metric else 1.0  # output length units per ft
        interval = 0.3 if self.metric else 1.0
        if depth_interval is not None:
            interval = _check_positive("depth_interval", depth_interval)
        self._depth_interval = interval
        self._mwd_interval = _check_positive("mwd_interval", mwd_interval)
        trip_every = trip_every_stands
        if isinstance(trip_every, bool) or not isinstance(trip_every, int) or trip_every < 0:
            raise UsageError(f"trip_every_stands must be an integer >= 0, got {trip_every_stands!r}")
        self._trip_every = trip_every_stands
        self._all_states = bool(all_states)

        self._tpl1 = _record_template(1, _R1_FIELDS, self.metric, eol)
        self._tpl2 = _record_template(2, _R2_FIELDS, self.metric, eol)
        self._tpl8 = _record_template(8, _R8_FIELDS, self.metric, eol)
        self._sqid = {1: 0, 2: 0, 8: 0}

        # Independent random streams: physics, formation, MWD noise. The record selection, the unit
        # system and the depth interval never change the physics stream.
        master = random.Random(seed)
        self._rng = random.Random(master.getrandbits(64))
        self._dt = 1.0 / self._rate
        self._fac = _decay(self._dt)
        self._formation = _Formation(master.getrandbits(64))
        self._mwd_rng = random.Random(master.getrandbits(64))
        rng = self._rng
        uni = rng.uniform

        # Rig and mud constants for this well.
        self._block_weight = uni(36.0, 44.0)  # klb
        self._pipe_weight = uni(0.028, 0.032)  # klb per ft, buoyed
        self._gal_per_stroke = uni(4.1, 4.3)
        self._spp_c0 = uni(1900.0, 2100.0)
        self._spp_c1 = uni(0.055, 0.07)
        self._flow_set = uni(620.0, 720.0)  # gpm
        self._fo_set = uni(0.96, 0.99)
        self._mw = uni(10.25, 10.45)
        self._gamma_corr = uni(1.03, 1.08)
        self._pit_target = uni(780.0, 820.0)
        self._pit = self._pit_target + uni(-5.0, 5.0)
        self._db_max = uni(6.0, 12.0)  # surface drain-back, bbl
        self._b_low = uni(2.5, 4.0)

        # Geometry.
        if start_depth is None:
            hole = round(uni(5000.0, 9000.0), 2)
        else:
            hole = _check_positive("start_depth", start_depth) / self._len
        self._hole = hole
        self._bit = hole
        self._stand = uni(91.0, 95.0)
        self._block = self._b_low + uni(10.0, self._stand)
        self._bit_in = max(0.0, hole - uni(300.0, 1500.0))
        self._bit_hours = uni(8.0, 40.0)
        self._bit_revs = self._bit_hours * 3600.0 * 2.0  # ~120 rpm average
        self._next_boundary = math.floor(hole * self._len / interval) + 1

        # Driller's set points and actual (lagged) values.
        lay = self._formation.at(hole)
        self._spm_set = self._flow_set / self._gal_per_stroke / 2.0
        self._spm_split = uni(-2.0, 2.0)
        self._rpm_set = float(rng.randint(90, 150))
        self._wob_bias = uni(-2.0, 2.0)
        self._spm = self._spm_set
        self._rpm = self._rpm_set
        self._wob = lay.wob + self._wob_bias
        self._rop = lay.rop
        self._rop_noise = 1.0
        self._pumps = True
        self._rotate = True
        self._on_bottom = True
        self._spp = self._spp_target(True)
        self._fo = self._fo_set
        self._mto = 95.0 + 0.004 * hole
        self._mdo = self._mw + 0.06
        self._db = 0.0
        self._transfer = 0.0

        # Phase machine.
        self._phase = Phase.DRILLING
        self._stage: Callable[[float], float] = self._st_drill
        self._left = 0.0
        self._target = 0.0
        self._speed = 0.0
        self._carry = False
        self._done: Callable[[], None] = self._end_of_stand
        self._hook_mode = 0
        self._hook_extra = 0.0
        self._stands_drilled = 0
        self._trips = 0
        self._trip_stands = 0
        self._racked: list[float] = []
        self._clearance = 0.0
        self._stands_to_trip = rng.randint(1, min(2, trip_every_stands)) if trip_every_stands else 0
        # all_states only: the hole depth where a slide ends, the ream length, the mud motor's speed
        # (added to the surface RPM at the bit: 0 keeps the classic stream's arithmetic exact) and
        # whether this trip is pumped out.
        self._slide_to: float | None = None
        self._ream = 0.0
        self._motor_rpm = 0.0
        self._pump_out = False

        # Clock and output.
        self._elapsed = 0.0
        self._ticks = 0
        self._clock = self._start
        self._mwd_next: float | None = self._mwd_interval
        self._crossings: list[float] = []
        self._pending: deque[tuple[datetime, bytes]] = deque()
        self._last_tva: float | None = None
        self._v: tuple[float, ...] = ()
        self._v_drill: tuple[float, ...] = ()
        self._sample()

    # Public API ---------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        """The current phase (as of the last record-1 sample)."""
        return self._phase

    @property
    def rig_state(self) -> str:
        """The true rig state (as of the last record-1 sample), one of :data:`RIG_STATES`.

        It is the driller's intent, not the sensors: the step a stage ends on already reports the
        next state while pumps, top drive and hook load settle over a few seconds.
        """
        if self._hook_mode:
            return "in_slips"
        circulation = self._pumps or self._rotate
        if self._on_bottom:
            return "rotary_drilling" if self._rotate else "slide_drilling"
        if self._stage == self._st_move and self._carry:
            if self._target > self._block:
                return "back_reaming" if circulation else "tripping_out"
            return "reaming" if circulation else "tripping_in"
        return "circulating" if self._pumps else "stationary"

    @property
    def clock(self) -> datetime:
        """The current simulated time (UTC): the time of the last record-1 frame, or ``start``."""
        return self._clock

    @property
    def rate(self) -> float:
        """Record-1 frames per simulated second."""
        return self._rate

    @property
    def records(self) -> frozenset[int]:
        """The records written."""
        return self._records

    @property
    def state(self) -> SimState:
        """A snapshot of the current values, in FPS units."""
        v = self._v
        return SimState(
            phase=self._phase,
            clock=self._clock,
            hole_depth=self._hole,
            bit_depth=self._bit,
            block_position=self._block,
            rop=v[3],
            hookload=v[4],
            wob=v[6],
            torque=v[8],
            rpm=int(v[10]),
            standpipe_pressure=v[11],
            spm1=int(v[13]),
            spm2=int(v[14]),
            flow_in=v[19],
            flow_out=v[18],
            flow_out_percent=int(v[17]),
            pit_volume=v[15],
            mud_density_in=v[21],
            mud_density_out=v[20],
            mud_temp_out=v[22],
            formation=self._formation.at(self._bit).name,
            stands_drilled=self._stands_drilled,
            trips=self._trips,
            rig_state=self.rig_state,
        )

    def events(self, n: int | None = None) -> Iterator[tuple[datetime, bytes]]:
        """Yield ``(simulated UTC time, frame bytes)`` for ``n`` record-1 time steps (``None``: forever).

        Each step is ``1/rate`` simulated seconds and writes, in this order, its record 1, the
        record 2 of every depth interval crossed during the step, and a record 8 when one is due; all
        carry the step's time. ``n`` counts steps even when record 1 is not written. Frames of a step
        left unread by an earlier call come first, and are not counted.
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise UsageError(f"n must be a non-negative integer or None, got {n!r}")
        pending = self._pending
        while pending:
            yield pending.popleft()
        done = 0
        while n is None or done < n:
            self._step(pending)
            done += 1
            while pending:
                yield pending.popleft()

    def frames(self, n: int | None = None) -> Iterator[bytes]:
        """Yield the frame bytes of :meth:`events` without their times."""
        for _, frame in self.events(n):
            yield frame

    # Stepping -----------------------------------------------------------------------------------
    def _step(self, out: deque[tuple[datetime, bytes]]) -> None:
        if self._ticks:
            self._advance(self._dt)
            self._sample()
        tick = self._ticks
        self._ticks += 1
        t = self._start + timedelta(microseconds=round(tick * 1e6 / self._rate))
        self._clock = t
        date = (t.year % 100) * 10000 + t.month * 100 + t.day
        time = t.hour * 10000 + t.minute * 100 + t.second
        actc = ACTIVITY_CODES[self._phase]
        records = self._records
        if 1 in records:
            out.append((t, self._frame1(date, time, actc)))
        if self._crossings:
            if 2 in records:
                for depth in self._crossings:
                    out.append((t, self._frame2(depth, date, time)))
            self._crossings.clear()
        if self._mwd_due() and 8 in records:
            out.append((t, self._frame8(date, time, actc)))

    def _next_sqid(self, record: int) -> int:
        seq = self._sqid[record] % _SQID_WRAP + 1
        self._sqid[record] = seq
        return seq

    def _mwd_due(self) -> bool:
        pulsing = self._pumps and self._spm > 0.8 * self._spm_set and self._phase is not Phase.CONNECTION
        if not pulsing:
            self._mwd_next = None
            return False
        now = self._elapsed
        if self._mwd_next is None:
            self._mwd_next = now + self._mwd_interval
            return False
        if now + 1e-9 < self._mwd_next:
            return False
        while self._mwd_next <= now + 1e-9:
            self._mwd_next += self._mwd_interval
        return True

    def _advance(self, dt: float) -> None:
        remaining = dt
        guard = 0
        while remaining > 1e-9:
            used = self._stage(remaining)
            if used > 0:
                self._relax(used)
                remaining -= used
                self._elapsed += used
            guard += 1
            if guard > 10_000:  # pragma: no cover - a stage that never consumes time is a bug
                raise RuntimeError("simulator stage made no progress")

    # Physics -----------------------------------------------------------------------------------
    def _string_weight(self) -> float:
        return self._block_weight + self._pipe_weight * self._bit

    def _spp_target(self, pumps: bool) -> float:
        if not pumps:
            return 0.0
        flow = 2.0 * self._spm * self._gal_per_stroke
        spp = (self._spp_c0 + self._spp_c1 * self._bit) * math.pow(flow / 650.0, 1.85)
        if self._on_bottom:
            spp += 8.0 * self._wob
        return spp

    def _relax(self, h: float) -> None:
        """Move the lagged values toward the stage's set points over ``h`` seconds."""
        fac = self._fac if h == self._dt else _decay(h)
        f_spm, f_fo, f_mto, f_db, f_cool, f_dbo, f_spp, f_spp0, f_rpm, f_rpm0, f_wob, f_rop, f_mdo, sq = fac
        rng = self._rng
        if self._pumps:
            self._spm = self._spm_set + (self._spm - self._spm_set) * f_spm
            self._fo = self._fo_set + (self._fo - self._fo_set) * f_fo
            mto = 95.0 + 0.004 * self._bit
            self._mto = mto + (self._mto - mto) * f_mto
            self._db *= f_db
            spp = self._spp_target(True)
            self._spp = spp + (self._spp - spp) * f_spp
        else:
            self._spm = 0.0
            self._fo = 0.0
            self._mto = 85.0 + (self._mto - 85.0) * f_cool
            self._db = self._db_max + (self._db - self._db_max) * f_dbo
            self._spp *= f_spp0
        if self._rotate:
            self._rpm = self._rpm_set + (self._rpm - self._rpm_set) * f_rpm
            self._bit_revs += self._rpm * h / 60.0
        else:
            self._rpm *= f_rpm0
        if self._on_bottom:
            lay = self._formation.at(self._hole)
            wob_set = lay.wob + self._wob_bias
            self._wob = wob_set + (self._wob - wob_set) * f_wob
            noise = self._rop_noise + (rng.random() - 0.5) * 0.03 * sq
            self._rop_noise = noise + (1.0 - noise) * min(1.0, h / 600.0)
            bit_rpm = self._rpm + self._motor_rpm
            rop_set = lay.rop * (self._wob / wob_set) ** 0.8 * (bit_rpm / 120.0) ** 0.3 * self._rop_noise
            rop_set = min(rop_set, 150.0)
            self._rop = rop_set + (self._rop - rop_set) * f_rop
            mdo = self._mw + 0.03 + 0.0004 * self._rop
            self._mdo = mdo + (self._mdo - mdo) * f_mdo
            self._bit_hours += h / 3600.0
            # Refill the active pit from the reserve when it has run low.
            if self._transfer <= 0 and self._pit < self._pit_target - 30.0:
                self._transfer = rng.uniform(30.0, 45.0)
        else:
            self._wob = 0.0
            self._rop = 0.0
            if self._pumps:
                mdo = self._mw + 0.02
                self._mdo = mdo + (self._mdo - mdo) * f_mdo
        if self._transfer > 0:
            add = min(self._transfer, 5.0 / 60.0 * h)
            self._pit += add
            self._transfer -= add
        mw = self._mw + (rng.random() - 0.5) * 0.0004 * sq
        self._mw = 10.2 if mw < 10.2 else 10.5 if mw > 10.5 else mw

    def _sample(self) -> None:
        """Compute the displayed values (FPS, with sensor noise) of the current step."""
        r = self._rng.random
        pumps = self._pumps
        spm1 = round(self._spm + self._spm_split * self._spm / max(self._spm_set, 1.0)) if pumps else 0
        spm2 = round(2.0 * self._spm - spm1) if pumps else 0
        spm1, spm2 = max(0, spm1), max(0, spm2)
        flow_in = (spm1 + spm2) * self._gal_per_stroke
        if flow_in > 0:
            frac = min(1.0, self._fo + (r() - 0.5) * 0.02)
            mfop = round(frac * 100.0)
            flow_out = flow_in * frac
        else:
            mfop = 0
            flow_out = 0.0
        rpm = round(self._rpm + (r() - 0.5) * 4.0) if self._rpm > 2.0 else 0
        rpm = max(0, rpm)
        if self._on_bottom:
            wob = max(0.0, self._wob + (r() - 0.5) * 1.6)
            rop = min(150.0, max(0.0, self._rop * (1.0 + (r() - 0.5) * 0.08)))
        else:
            wob = 0.0
            rop = 0.0
        wobx = wob + r() * 1.5 if wob > 0 else 0.0
        if rpm > 0:
            lay_tq = self._formation.at(self._hole).torque_factor
            torque = 3.0 + 0.0005 * self._bit + 0.01 * self._rpm
            if self._on_bottom:
                torque += 0.28 * self._wob * lay_tq
            torque = max(0.0, torque * (1.0 + (r() - 0.5) * 0.06))
            tqx = torque + r() * 1.5
        else:
            torque = tqx = 0.0
        mode = self._hook_mode
        if mode == 0:  # string hanging from the block
            hook = self._string_weight() - self._wob + self._hook_extra
        elif mode == 1:  # in slips, block only
            hook = self._block_weight + self._hook_extra
        else:  # in slips, a stand hanging in the elevator
            hook = self._block_weight + 0.0215 * self._stand
        hook = max(0.0, hook + (r() - 0.5) * 1.2)
        hookx = hook + r() * 1.5
        spp = self._spp
        spp = max(0.0, spp + (r() - 0.5) * 30.0) if spp > 20.0 else (spp if spp > 1.0 else 0.0)
        tva = self._pit + self._db + (r() - 0.5) * 0.3
        mdi = self._mw + (r() - 0.5) * 0.02
        mdo = self._mdo + (r() - 0.5) * 0.04
        mto = self._mto + (r() - 0.5) * 0.6
        self._v = (
            self._bit,  # 0 DBTM
            self._hole,  # 1 DMEA
            self._block,  # 2 BPOS
            rop,  # 3 ROPA
            hook,  # 4 HKLA
            hookx,  # 5 HKLX
            wob,  # 6 WOBA
            wobx,  # 7 WOBX
            torque,  # 8 TQA
            tqx,  # 9 TQX
            rpm,  # 10 RPMA
            spp,  # 11 SPPA
            0.0,  # 12 CHKP (conventional drilling: choke open)
            spm1,  # 13 SPM1
            spm2,  # 14 SPM2
            tva,  # 15 TVA
            0.0,  # 16 TVCA (computed in output units)
            mfop,  # 17 MFOP
            flow_out,  # 18 MFOA
            flow_in,  # 19 MFIA
            mdo,  # 20 MDOA
            mdi,  # 21 MDIA
            mto,  # 22 MTOA
        )
        if self._on_bottom:
            self._v_drill = self._v

    # Output -------------------------------------------------------------------------------------
    def _frame1(self, date: int, time: int, actc: int) -> bytes:
        v = self._v
        if self.metric:
            tva = round(v[15] * _BBL_M3, 3)
            ln, ld, tq, pr, fl, de = _FT_M, _KLB_KDN, _KFTLB_KNM, _PSI_KPA, _GAL_L, _PPG_KGM3
            mto = (v[22] - 32.0) / 1.8
        else:
            tva = round(v[15], 2)
            ln = ld = tq = pr = fl = de = 1.0
            mto = v[22]
        tvca = 0.0 if self._last_tva is None else tva - self._last_tva + 0.0
        self._last_tva = tva
        text = self._tpl1.format(
            self.well_id,
            0,
            1,
            self._next_sqid(1),
            date,
            time,
            actc,
            v[0] * ln,
            v[1] * ln,
            v[2] * ln,
            v[3] * ln,
            v[4] * ld,
            v[5] * ld,
            v[6] * ld,
            v[7] * ld,
            v[8] * tq,
            v[9] * tq,
            v[10],
            v[11] * pr,
            v[12] * pr,
            v[13],
            v[14],
            tva,
            tvca,
            v[17],
            v[18] * fl,
            v[19] * fl,
            v[20] * de,
            v[21] * de,
            mto,
        )
        return text.encode("ascii")

    def _frame2(self, depth_out: float, date: int, time: int) -> bytes:
        # The values of the last sample on bottom: a stand that ended during this step has already
        # picked up off bottom. Record 2 is only written while drilling, so its ACTC is drilling's.
        v = self._v_drill
        ecd = self._mw + 0.2 + 0.000025 * self._hole
        rop = max(v[3], 1.0)
        rpm = max(v[10], 1)
        wob_lb = max(v[6], 0.5) * 1000.0
        dxc = math.log10(rop / (60.0 * rpm)) / math.log10(12.0 * wob_lb / (1e6 * _BIT_DIAMETER_IN))
        dxc = min(5.0, max(0.0, dxc * 9.0 / ecd))
        if self.metric:
            ln, ld, tq, pr, fl, de, vol = _FT_M, _KLB_KDN, _KFTLB_KNM, _PSI_KPA, _GAL_L, _PPG_KGM3, _BBL_M3
        else:
            ln = ld = tq = pr = fl = de = vol = 1.0
        text = self._tpl2.format(
            self.well_id,
            0,
            2,
            self._next_sqid(2),
            date,
            time,
            ACTIVITY_CODES[Phase.DRILLING],
            depth_out,
            v[3] * ln,
            v[6] * ld,
            v[4] * ld,
            v[11] * pr,
            v[8] * tq,
            v[10],
            int(self._bit_revs),
            v[21] * de,
            ecd * de,
            v[19] * fl,
            v[18] * fl,
            v[17],
            v[15] * vol,
            self._bit_hours,
            (self._hole - self._bit_in) * ln,
            dxc,
        )
        return text.encode("ascii")

    def _frame8(self, date: int, time: int, actc: int) -> bytes:
        r = self._mwd_rng.random
        form = self._formation
        bit = self._bit
        d_res = max(0.0, bit - _RES_OFFSET)
        d_gam = max(0.0, bit - _GAMMA_OFFSET)
        gamma = min(150.0, max(20.0, form.gamma(d_gam) + (r() - 0.5) * 8.0))
        shallow, deep = form.resistivity(d_res)
        mr1 = min(200.0, max(0.5, shallow * (1.0 + (r() - 0.5) * 0.06)))
        mr2 = min(200.0, max(0.5, deep * (1.0 + (r() - 0.5) * 0.06)))
        mfta = 75.0 + 0.011 * bit + (r() - 0.5) * 0.8
        ln = self._len
        if self.metric:
            mfta = (mfta - 32.0) / 1.8
        text = self._tpl8.format(
            self.well_id,
            0,
            8,
            self._next_sqid(8),
            date,
            time,
            actc,
            self._hole * ln,
            bit * ln,
            d_res * ln,
            mr1,
            d_res * ln,
            mr2,
            d_gam * ln,
            gamma,
            gamma * self._gamma_corr,
            mfta,
        )
        return text.encode("ascii")

    # Stages ---------------------------------------------------------------------------------------
    # A stage is a method taking the simulated seconds available and returning those it used; when
    # it ends it calls the next stage's entry, which sets the phase, the set points and the stage.
    def _st_wait(self, avail: float) -> float:
        h = min(avail, self._left)
        self._left -= h
        if self._left <= 1e-9:
            self._done()
        return h

    def _st_move(self, avail: float) -> float:
        dist = self._target - self._block
        need = abs(dist) / self._speed
        if need <= avail:
            h = need
            delta = dist
        else:
            h = avail
            delta = math.copysign(self._speed * h, dist)
        self._block += delta
        if self._carry:
            self._bit = min(self._hole, self._bit - delta)
        if need <= avail:
            self._block = self._target
            self._done()
        return h

    def _st_drill(self, avail: float) -> float:
        speed = max(self._rop, 1.0) / 3600.0  # ft/s; the lag brings the ROP up within seconds
        need = (self._block - self._b_low) / speed
        h = min(avail, need)
        depth = self._hole + speed * h
        if need <= avail:
            depth = self._hole + (self._block - self._b_low)
            self._block = self._b_low
        else:
            self._block -= speed * h
        self._pit -= (depth - self._hole) * _HOLE_CAPACITY
        self._hole = self._bit = depth
        if self._slide_to is not None and depth >= self._slide_to:
            self._slide_to = None  # the slide is done: rotate the rest of the stand
            self._rotate = True
        boundary = self._next_boundary * self._depth_interval
        while depth * self._len >= boundary - 1e-9:
            self._crossings.append(round(boundary, 2))
            self._next_boundary += 1
            boundary = self._next_boundary * self._depth_interval
        if need <= avail:
            self._end_of_stand()
        return h

    def _wait(self, seconds: float, done: Callable[[], None]) -> None:
        self._stage = self._st_wait
        self._left = seconds
        self._done = done

    def _move(self, target: float, speed: float, carry: bool, done: Callable[[], None]) -> None:
        self._stage = self._st_move
        self._target = target
        self._speed = speed
        self._carry = carry
        self._done = done

    def _set(
        self, phase: Phase, *, pumps: bool, rotate: bool, hook_mode: int, hook_extra: float = 0.0
    ) -> None:
        self._phase = phase
        self._pumps = pumps
        self._rotate = rotate
        self._on_bottom = False
        self._hook_mode = hook_mode
        self._hook_extra = hook_extra
        if not pumps:
            self._spm = 0.0

    def _end_of_stand(self) -> None:
        self._stands_drilled += 1
        if self._trip_every:
            self._stands_to_trip -= 1
            if self._stands_to_trip <= 0:
                self._stands_to_trip = self._trip_every
                stands = min(self._rng.randint(3, 8), int((self._bit - _MIN_TRIP_DEPTH) // 100.0))
                if stands >= 1:
                    self._trips += 1
                    self._trip_stands = stands
                    self._racked = []
                    if self._all_states:
                        self._pump_out = self._rng.random() < _PUMP_OUT_SHARE
                        self._pre_trip_pickup()
                    else:
                        self._trip_out_pull()
                    return
        if self._all_states and self._rng.random() < _REAM_SHARE:
            self._ream_up()
            return
        self._conn_pickup()

    # Connection: pick up off bottom, slips, block up, make up the new stand, out of slips.
    def _conn_pickup(self) -> None:
        rng = self._rng
        self._set(Phase.CONNECTION, pumps=False, rotate=False, hook_mode=0, hook_extra=rng.uniform(4.0, 9.0))
        self._move(self._block + rng.uniform(2.0, 4.0), 0.4, True, self._conn_slips)

    def _conn_slips(self) -> None:
        self._set(Phase.CONNECTION, pumps=False, rotate=False, hook_mode=1)
        self._wait(self._rng.uniform(30.0, 60.0), self._conn_raise)

    def _conn_raise(self) -> None:
        self._stand = self._rng.uniform(91.0, 95.0)
        self._move(self._block + self._stand, self._rng.uniform(1.1, 1.5), False, self._conn_makeup)

    def _conn_makeup(self) -> None:
        self._hook_mode = 2
        self._wait(self._rng.uniform(70.0, 160.0), self._conn_release)

    def _conn_release(self) -> None:
        self._set(
            Phase.CONNECTION, pumps=False, rotate=False, hook_mode=0, hook_extra=self._rng.uniform(1.0, 4.0)
        )
        self._wait(self._rng.uniform(10.0, 20.0), self._circ_break)

    # Circulating: pumps up, rotation, wash down to bottom.
    def _circ_break(self) -> None:
        self._set(Phase.CIRCULATING, pumps=True, rotate=False, hook_mode=0)
        rng = self._rng
        self._spm_set = (self._flow_set + rng.uniform(-10.0, 10.0)) / self._gal_per_stroke / 2.0
        self._wait(rng.uniform(30.0, 60.0), self._circ_rotate)

    def _circ_rotate(self) -> None:
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0)
        rng = self._rng
        self._rpm_set = float(rng.randint(90, 150))
        self._wob_bias = rng.uniform(-2.0, 2.0)
        self._wait(rng.uniform(10.0, 20.0), self._circ_washdown)

    def _circ_washdown(self) -> None:
        target = self._block - (self._hole - self._bit)
        self._move(target, self._rng.uniform(0.2, 0.4), True, self._drill)

    def _drill(self) -> None:
        self._set(Phase.DRILLING, pumps=True, rotate=True, hook_mode=0)
        self._on_bottom = True
        self._bit = self._hole
        self._rop = 0.3 * self._formation.at(self._hole).rop
        self._stage = self._st_drill
        if self._all_states:
            rng = self._rng
            self._motor_rpm = rng.uniform(110.0, 150.0)
            if rng.random() < _SLIDE_SHARE:  # orient the motor and slide the first part of the stand
                self._rotate = False
                self._slide_to = self._hole + rng.uniform(20.0, 60.0)

    # all_states: ream the stand up and down, stop, then the connection's slips.
    def _ream_up(self) -> None:
        rng = self._rng
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0, hook_extra=rng.uniform(3.0, 8.0))
        self._ream = rng.uniform(30.0, 80.0)
        self._move(self._block + self._ream, rng.uniform(0.3, 0.6), True, self._ream_down)

    def _ream_down(self) -> None:
        rng = self._rng
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0, hook_extra=-rng.uniform(2.0, 6.0))
        self._move(
            self._block - self._ream + rng.uniform(2.0, 4.0), rng.uniform(0.3, 0.6), True, self._ream_stop
        )

    def _ream_stop(self) -> None:
        self._set(Phase.CONNECTION, pumps=False, rotate=False, hook_mode=0)
        self._wait(self._rng.uniform(10.0, 25.0), self._conn_slips)

    # all_states: before a trip, pick up, circulate bottoms up, then check the well is static.
    def _pre_trip_pickup(self) -> None:
        rng = self._rng
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0, hook_extra=rng.uniform(3.0, 8.0))
        self._move(
            self._block + rng.uniform(5.0, 15.0), rng.uniform(0.2, 0.4), True, self._pre_trip_circulate
        )

    def _pre_trip_circulate(self) -> None:
        rng = self._rng
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0)
        self._rpm_set = float(rng.randint(40, 60))
        self._wait(rng.uniform(300.0, 600.0), self._flow_check)

    def _flow_check(self) -> None:
        self._set(Phase.TRIPPING_OUT, pumps=False, rotate=False, hook_mode=0)
        self._wait(self._rng.uniform(300.0, 600.0), self._trip_out_pull)

    # Short trip out: pull a stand, slips, break out and rack back, lower the empty block; repeat.
    def _trip_out_pull(self) -> None:
        rng = self._rng
        self._set(
            Phase.TRIPPING_OUT, pumps=False, rotate=False, hook_mode=0, hook_extra=rng.uniform(6.0, 14.0)
        )
        stand = rng.uniform(91.0, 95.0)
        self._racked.append(stand)
        if self._pump_out:  # back-ream the stand out: pumps on, rotating, slower
            self._pumps = self._rotate = True
            self._spm_set = (self._flow_set + rng.uniform(-10.0, 10.0)) / self._gal_per_stroke / 2.0
            self._move(self._b_low + stand, rng.uniform(0.3, 0.5), True, self._trip_out_breakout)
            return
        self._move(self._b_low + stand, rng.uniform(0.6, 0.9), True, self._trip_out_breakout)

    def _trip_out_breakout(self) -> None:
        self._set(Phase.TRIPPING_OUT, pumps=False, rotate=False, hook_mode=1)
        self._wait(self._rng.uniform(25.0, 45.0), self._trip_out_lower)

    def _trip_out_lower(self) -> None:
        done = self._trip_out_pull if len(self._racked) < self._trip_stands else self._trip_in_raise
        self._move(self._b_low, self._rng.uniform(1.5, 2.0), False, done)

    # Trip back in: raise the empty block, pick up and make up a stand, run it in; repeat.
    def _trip_in_raise(self) -> None:
        rng = self._rng
        self._set(Phase.TRIPPING_IN, pumps=False, rotate=False, hook_mode=1)
        self._stand = self._racked[-1]
        self._move(self._b_low + self._stand, rng.uniform(1.5, 2.0), False, self._trip_in_makeup)

    def _trip_in_makeup(self) -> None:
        self._hook_mode = 2
        self._wait(self._rng.uniform(30.0, 50.0), self._trip_in_lower)

    def _trip_in_lower(self) -> None:
        rng = self._rng
        self._set(
            Phase.TRIPPING_IN, pumps=False, rotate=False, hook_mode=0, hook_extra=-rng.uniform(4.0, 10.0)
        )
        self._racked.pop()
        if self._racked:
            self._move(self._b_low, rng.uniform(0.7, 1.0), True, self._trip_in_slips)
        else:  # the last stand: stop short of bottom and circulate
            self._clearance = rng.uniform(10.0, 20.0)
            self._move(self._b_low + self._clearance, rng.uniform(0.7, 1.0), True, self._circ_bottoms_up)

    def _trip_in_slips(self) -> None:
        self._set(Phase.TRIPPING_IN, pumps=False, rotate=False, hook_mode=1)
        self._wait(self._rng.uniform(15.0, 25.0), self._trip_in_raise)

    def _circ_bottoms_up(self) -> None:
        rng = self._rng
        self._set(Phase.CIRCULATING, pumps=True, rotate=True, hook_mode=0)
        self._spm_set = (self._flow_set + rng.uniform(-10.0, 10.0)) / self._gal_per_stroke / 2.0
        self._rpm_set = float(rng.randint(40, 60))
        self._wait(rng.uniform(360.0, 720.0), self._circ_wash_to_bottom)

    def _circ_wash_to_bottom(self) -> None:
        self._move(self._b_low, self._rng.uniform(0.2, 0.4), True, self._end_of_wash)

    def _end_of_wash(self) -> None:
        # The stand is down with the bit on bottom: make a connection before drilling on.
        self._bit = self._hole
        self._conn_pickup()
