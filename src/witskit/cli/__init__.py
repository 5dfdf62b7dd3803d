"""The ``witskit`` command line: decode, validate, look up, convert and simulate WITS Level 0 data.

Data goes to stdout (or ``-o FILE``); messages, problems and progress go to stderr. Exit statuses:
0 success, 1 problems in the input (``--strict``, ``validate``, nothing decodable), 2 usage errors
(bad options, a missing file, an unknown unit or time zone).

Everything heavy (rich, the simulator, pint) is imported by the command that needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from witskit.cli import _analyze, _export, _fleet, _help, _service, _storage, _users
from witskit.cli._console import EXIT_PROBLEMS, error, handle_errors, info, warn
from witskit.cli._simulate import LineEndingChoice, write_stream
from witskit.cli._stream import StreamFormat
from witskit.cli._symbols import ListFormat
from witskit.cli._writers import OutputFormat
from witskit.errors import UsageError

__all__ = ["app", "main"]

app = typer.Typer(
    name="witskit",
    help=(
        "WITS Level 0 toolkit for drilling data: decode and validate feeds and files, look up the "
        "WITS dictionary, convert units, simulate a rig, and store and serve rig data."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from witskit._version import __version__

        typer.echo(f"witskit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
) -> None:
    """WITS Level 0 toolkit for drilling data.

    Data goes to stdout (or -o FILE); messages and problems go to stderr. Exit status: 0 success,
    1 problems in the input, 2 usage errors.
    """


# Shared options ---------------------------------------------------------------------------------
PathArg = Annotated[
    str | None,
    typer.Argument(
        metavar="PATH",
        help="WITS file to read, or - for standard input.",
        show_default=False,
    ),
]
TextOpt = Annotated[
    str | None,
    typer.Option(
        "--text",
        "-t",
        help=r"Frame text to read instead of a file (\n escapes allowed).",
        show_default=False,
    ),
]
MetricOpt = Annotated[
    bool,
    typer.Option(
        "--metric/--fps",
        help="Unit system the rig sends: labels the units (values are not converted).",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Write to FILE instead of stdout.", show_default=False, dir_okay=False
    ),
]


# decode -----------------------------------------------------------------------------------------
@app.command(short_help="Decode WITS frames from a file or stdin (table, JSON, CSV).")
@handle_errors
def decode(
    *,
    path: PathArg = None,
    text: TextOpt = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="Output format.", case_sensitive=False),
    ] = OutputFormat.table,
    metric: MetricOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first problem in the input and exit with status 1.")
    ] = False,
    output: OutputOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Source name recorded in every frame (default: the file's name).",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str,
        typer.Option(
            "--tz", help="Time zone of the rig's DATE/TIME items (IANA name, e.g. America/Chicago)."
        ),
    ] = "UTC",
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=0, help="Frames shown by --format table (0 = all); the rest are counted."
        ),
    ] = 20,
) -> None:
    """Decode WITS Level 0 frames from a file, standard input (-) or --text.

    The input is streamed: frames are written as they are decoded, so files of any size work in
    constant memory. Formats: table (for reading), jsonl (one DecodedFrame.to_record() object per
    frame), json (one array of those), csv (one row per point, columns
    time,source,code,mnemonic,value,text,unit, as query writes), raw (the frames as received).

    Problems (bad bytes between frames, bad or unknown data lines) are reported on stderr as
    PATH:LINE: message. In jsonl and json, per-frame problems also stay in the frame's "errors";
    bad bytes between frames belong to no frame and are reported on stderr only. With --strict the
    first problem stops the run (exit status 1). Exit status 1 too when no frame could be decoded.
    """
    from witskit.cli import _decode, _io
    from witskit.cli._writers import FrameWriter, TableWriter, binary_writer
    from witskit.protocol import WITSDecoder

    decoder = WITSDecoder(use_metric_units=metric, timezone=tz)
    table: TableWriter | None = None
    with _io.open_input(path, text) as inp:
        src = source if source is not None else inp.default_source

        def run(writer: FrameWriter) -> _decode.Tally:
            with _decode.progress_for(inp, _decode.stderr_report) as (on_read, report):
                return _decode.run(
                    inp,
                    decoder=decoder,
                    source=src,
                    writer=writer,
                    report=report,
                    strict=strict,
                    on_read=on_read,
                )

        if fmt is OutputFormat.table:
            with _io.open_text_output(output, input_path=inp.path) as text_sink:
                table = TableWriter(text_sink, limit=limit, width=None if output is None else 120)
                tally = run(table)
        else:
            with _io.open_output(output, input_path=inp.path) as sink:
                tally = run(binary_writer(fmt, sink))
    if tally.stopped_at is not None:
        error(f"{tally.stopped_at.format(inp.label)} (--strict: stopped at the first problem)")
        raise typer.Exit(EXIT_PROBLEMS)
    if table is not None and table.hidden:
        info(
            f"{table.hidden} more frames not shown; use --format jsonl (or --limit 0 to show all) "
            f"({tally.frames} frames in total)"
        )
    if tally.frames == 0:
        error(f"no WITS frames could be decoded from {inp.label}")
        raise typer.Exit(EXIT_PROBLEMS)
    if tally.problems:
        counts = f"{tally.frames} frames ({tally.points} points) decoded"
        warn(f"{tally.problems} problem(s) in {inp.label}; {counts}")


# validate ---------------------------------------------------------------------------------------
@app.command(short_help="Check WITS input and list every problem with its line.")
@handle_errors
def validate(
    *,
    path: PathArg = None,
    text: TextOpt = None,
) -> None:
    """Check WITS Level 0 input and list every problem with its line number.

    Reports bad bytes between frames, cut or oversized frames, data lines that do not fit their
    item and codes the dictionary does not know, each as PATH:LINE: message on stdout, then a
    summary. Exit status 0 when the input is valid, 1 when it has any problem (or no frame).
    """
    import sys

    from witskit.cli import _decode, _io
    from witskit.protocol import WITSDecoder

    def report(line: str) -> None:
        sys.stdout.write(line + "\n")

    with (
        _io.open_input(path, text) as inp,
        _decode.progress_for(inp, report, verb="validating") as (on_read, rep),
    ):
        tally = _decode.run(
            inp, decoder=WITSDecoder(), source=inp.default_source, writer=None, report=rep, on_read=on_read
        )
    problems = tally.problems + (0 if tally.frames else 1)
    if not tally.frames:
        report(f"{inp.label}: no WITS frames found")
    verdict = "valid" if not problems else "INVALID"
    sys.stdout.write(
        f"{inp.label}: {verdict}: {tally.frames} frames, {tally.points} points, {problems} problem(s)\n"
    )
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)


# symbols ----------------------------------------------------------------------------------------
@app.command(short_help="Look up the WITS dictionary (items and records).")
@handle_errors
def symbols(
    *,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", "-s", help="Words to find in codes, mnemonics and descriptions.", show_default=False
        ),
    ] = None,
    record: Annotated[
        int | None, typer.Option("--record", "-r", help="Only this record number.", show_default=False)
    ] = None,
    list_records: Annotated[
        bool, typer.Option("--list-records", help="List the record types instead.")
    ] = False,
    fmt: Annotated[
        ListFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
    ] = ListFormat.table,
) -> None:
    """Look up the WITS dictionary: search items, list a record's items, or list the records.

    Without options every item is listed. Search matches every word against codes, mnemonics and
    descriptions, forgiving abbreviations ("resistivity" finds "Resis"). Exit status 1 when
    nothing matches.
    """
    from witskit.cli._symbols import find_symbols, print_records, print_symbols

    if list_records:
        if search is not None or record is not None:
            raise UsageError("--list-records cannot be combined with --search or --record")
        print_records(fmt)
        return
    found = find_symbols(search, record)
    if not found:
        error(f"no items match {search!r}" + (f" in record {record}" if record is not None else ""))
        if fmt is ListFormat.json:
            typer.echo("[]")
        raise typer.Exit(EXIT_PROBLEMS)
    what = f"matching {search!r}" if search is not None else "in the dictionary"
    where = f" (record {record})" if record is not None else ""
    print_symbols(found, fmt, f"{len(found)} WITS item(s) {what}{where}")


# convert ----------------------------------------------------------------------------------------
@app.command(
    context_settings={"ignore_unknown_options": True}, short_help="Convert a value between WITS units."
)
@handle_errors
def convert(
    *,
    value: Annotated[
        float | None, typer.Argument(metavar="VALUE", help="The number to convert.", show_default=False)
    ] = None,
    from_unit: Annotated[
        str | None, typer.Argument(metavar="FROM", help="Its unit, e.g. KDN, M, DEGC.", show_default=False)
    ] = None,
    to_unit: Annotated[
        str | None,
        typer.Argument(metavar="TO", help="The unit wanted, e.g. KLB, F, DEGF.", show_default=False),
    ] = None,
    list_units: Annotated[bool, typer.Option("--list-units", help="List the units WitsKit knows.")] = False,
) -> None:
    """Convert a value between WITS units and print the result (e.g. convert 1 KDN KLB).

    Unit strings are those of the WITS dictionary, case-insensitive. Negative values work as
    they are (convert -10 DEGC DEGF). Exit status 2 for an unknown unit or incompatible units.
    """
    from witskit import units

    if list_units:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Units WitsKit converts", title_justify="left")
        table.add_column("Unit", no_wrap=True)
        table.add_column("Measures")
        for unit in units.known_units():
            table.add_row(unit, units.unit_category(unit))
        Console(markup=False, highlight=False, emoji=False).print(table)
        return
    if value is None or from_unit is None or to_unit is None:
        raise UsageError("give VALUE FROM TO (e.g. witskit convert 1 KDN KLB), or --list-units")
    from witskit.cli._convert import table_convert

    result = table_convert(value, from_unit, to_unit)
    if result is None:
        result = units.convert(value, from_unit, to_unit)  # any other pair: pint
    typer.echo(f"{result:.12g}")


# simulate ---------------------------------------------------------------------------------------
_SERVE = "Serving (rig server)"
_FAULTS = "Fault injection (serving)"


@app.command(short_help="Write or serve a simulated rig's WITS stream.")
@handle_errors
def simulate(
    *,
    frames: Annotated[
        int | None,
        typer.Option(
            "--frames",
            "-n",
            min=0,
            help="Record-1 frames to write (0 = until interrupted). Default 60; when serving, every "
            "connection runs until interrupted, or ends after N.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[float, typer.Option("--rate", help="Record-1 frames per simulated second (Hz).")] = 1.0,
    records: Annotated[
        str, typer.Option("--records", help="Records to send, comma-separated (from 1, 2 and 8).")
    ] = "1,2,8",
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same data.")] = 0,
    line_ending: Annotated[
        LineEndingChoice,
        typer.Option("--line-ending", help="Line ending of the frames.", case_sensitive=False),
    ] = LineEndingChoice.crlf,
    metric: Annotated[
        bool, typer.Option("--metric/--fps", help="Send values in metric or FPS units.")
    ] = False,
    all_states: Annotated[
        bool,
        typer.Option(
            "--all-states",
            help="Also slide, ream, circulate bottoms up and flow-check, so every rig state occurs "
            "(a different stream for the same seed).",
        ),
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Simulated start: ISO 8601 (UTC unless an offset is given), or now (default: a fixed time).",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = None,
    realtime: Annotated[
        bool | None,
        typer.Option(
            "--realtime/--no-realtime",
            help="Pace frames at the simulated rate instead of all at once "
            "(default: off for stdout and files, on when serving).",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="URL",
            help="Serve on tcp://HOST:PORT or tls://HOST:PORT (port 0: a free port); the bound "
            "addresses are printed on stderr.",
            show_default=False,
            rich_help_panel=_SERVE,
        ),
    ] = None,
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            metavar="URL",
            help="Push to a listener at tcp://HOST:PORT or tls://HOST:PORT?ca=CA.pem, one connection "
            "per rig, reconnecting with backoff.",
            show_default=False,
            rich_help_panel=_SERVE,
        ),
    ] = None,
    serial: Annotated[
        str | None,
        typer.Option(
            "--serial",
            metavar="PATH",
            help="Write to a serial device or pseudo-terminal (raw, 8N1).",
            show_default=False,
            rich_help_panel=_SERVE,
        ),
    ] = None,
    baud: Annotated[
        int, typer.Option("--baud", help="Line speed of --serial.", rich_help_panel=_SERVE)
    ] = 9600,
    cert: Annotated[
        str | None,
        typer.Option(
            "--cert",
            metavar="PEM",
            help="Server certificate for --listen tls://.",
            show_default=False,
            rich_help_panel=_SERVE,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="PEM",
            help="Private key of --cert (if not in the same file).",
            show_default=False,
            rich_help_panel=_SERVE,
        ),
    ] = None,
    rigs: Annotated[
        int,
        typer.Option(
            "--rigs",
            min=1,
            help="Independent rigs to serve: consecutive ports from the --listen port (or free "
            "ports with port 0), or one --connect connection each.",
            rich_help_panel=_SERVE,
        ),
    ] = 1,
    pason: Annotated[
        bool,
        typer.Option(
            "--pason",
            help="Behave like a Pason EDR: a 1984PASON/EDR line in every frame, and silence when "
            "the client has said nothing for --pason-silence seconds.",
            rich_help_panel=_SERVE,
        ),
    ] = False,
    pason_silence: Annotated[
        float,
        typer.Option(
            "--pason-silence",
            metavar="SECONDS",
            min=0.001,
            help="Client silence after which a --pason rig stops sending.",
            rich_help_panel=_SERVE,
        ),
    ] = 30.0,
    send_and_receive: Annotated[
        bool,
        typer.Option(
            "--send-and-receive",
            help="Send nothing spontaneously; answer each valid packet received with --sar-packets packets.",
            rich_help_panel=_SERVE,
        ),
    ] = False,
    sar_packets: Annotated[
        int,
        typer.Option(
            "--sar-packets",
            min=1,
            help="Packets per answer: 1 (half WITS) or 8 (full WITS).",
            rich_help_panel=_SERVE,
        ),
    ] = 1,
    drop_every: Annotated[
        int | None,
        typer.Option(
            "--drop-every",
            metavar="N",
            min=1,
            help="Close each connection after every N frames, in the middle of the next one.",
            show_default=False,
            rich_help_panel=_FAULTS,
        ),
    ] = None,
    garbage_rate: Annotated[
        float,
        typer.Option(
            "--garbage-rate",
            metavar="P",
            min=0.0,
            max=1.0,
            help="Probability per frame of random bytes just before it.",
            rich_help_panel=_FAULTS,
        ),
    ] = 0.0,
    split_writes: Annotated[
        bool,
        typer.Option(
            "--split-writes",
            help="Write frames in random pieces of 1-16 bytes.",
            rich_help_panel=_FAULTS,
        ),
    ] = False,
    stall: Annotated[
        float | None,
        typer.Option(
            "--stall",
            metavar="SECONDS",
            min=0.001,
            help="Send nothing for SECONDS after every --stall-every frames.",
            show_default=False,
            rich_help_panel=_FAULTS,
        ),
    ] = None,
    stall_every: Annotated[
        int,
        typer.Option(
            "--stall-every", metavar="N", min=1, help="Frames between stalls.", rich_help_panel=_FAULTS
        ),
    ] = 30,
) -> None:
    """Write a simulated WITS Level 0 stream from a drilling rig to stdout or a file, or serve it.

    The data is reproducible: the same --seed and --start give the same bytes. Records 2 and 8
    (when asked for) are interleaved with record 1 as a rig sends them.

    With --listen, --connect or --serial it is a rig server: it serves the stream like a rig's
    recorder (optionally a Pason EDR, and with injected faults) until Ctrl-C, printing the bound
    addresses and connections on stderr. Exit status 130 after Ctrl-C, 2 when a port cannot be
    bound. See docs/simulator_server.md.
    """
    from witskit.cli import _io
    from witskit.cli._simulate import (
        ServeOptions,
        check_serving_options,
        parse_records,
        parse_start,
        serve,
        simulator,
    )
    from witskit.sim.server import Faults

    where = ServeOptions(listen=listen, connect=connect, serial=serial, cert=cert, key=key, baud=baud)
    faults = Faults(
        drop_every=drop_every,
        garbage_rate=garbage_rate,
        split_writes=split_writes,
        stall=stall,
        stall_every=stall_every,
    )
    check_serving_options(where, faults=faults, pason=pason, sar=send_and_receive, rigs=rigs)
    first = parse_start(start)
    wanted = parse_records(records)
    if where.serving:
        from witskit.sim.server import RigServer

        if output is not None:
            raise UsageError(
                "-o/--output writes a file; it cannot be combined with --listen/--connect/--serial"
            )
        if not rate > 0:
            raise UsageError(f"--rate must be a positive number of frames per second, got {rate}")
        server = RigServer(
            rigs=rigs,
            seed=seed,
            rate=rate,
            records=wanted,
            line_ending=line_ending.value,
            metric=metric,
            start=first,
            frames=frames or None,
            pason=pason,
            pason_silence_timeout=pason_silence,
            send_and_receive=send_and_receive,
            sar_packets=sar_packets,
            realtime=True if realtime is None else realtime,
            faults=faults,
            on_event=info,
            all_states=all_states,
        )
        status = serve(server, where)
        if status:
            raise typer.Exit(status)
        return
    sim = simulator(
        seed=seed,
        start=first,
        rate=rate,
        records=wanted,
        line_ending=line_ending.value,
        metric=metric,
        all_states=all_states,
    )
    count = 60 if frames is None else frames
    with _io.open_output(output) as sink:
        write_stream(sim, count or None, sink, realtime=bool(realtime))


# stream -----------------------------------------------------------------------------------------
@app.command(short_help="Decode a live source; --db also stores it.")
@handle_errors
def stream(
    *,
    url: Annotated[
        str | None,
        typer.Argument(
            metavar="URL",
            help="The source: tcp://HOST:PORT, tls://HOST:PORT?ca=CA.pem, tcp-listen://HOST:PORT, "
            "tls-listen://..., serial:///dev/ttyUSB0?baud=9600, file://PATH (?follow=1), sim://RIG.",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Also store every frame in this database (through the durable spool)."),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="A pipeline file naming sources and sinks (see examples/pipeline.yaml)."
        ),
    ] = None,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            help="Also send every frame to this sink (repeatable): wits-serve://0.0.0.0:10002, "
            "wits-push://HOST:PORT, serial:///dev/ttyS1?baud=9600, mqtt://BROKER/PREFIX, jsonl://PATH, "
            "nats://HOST:PORT/PREFIX?stream=NAME (a JetStream stream, docs/fleet.md), ...",
        ),
    ] = None,
    fmt: Annotated[
        StreamFormat,
        typer.Option("--format", "-f", help="Output format.", case_sensitive=False),
    ] = StreamFormat.table,
    count: Annotated[
        int,
        typer.Option(
            "--count", "-n", min=0, help="Stop after N frames (0 = until the source ends or Ctrl-C)."
        ),
    ] = 0,
    metric: MetricOpt = False,
    tz: Annotated[
        str,
        typer.Option(
            "--tz", help="Time zone of the rig's DATE/TIME items (IANA name, e.g. America/Chicago)."
        ),
    ] = "UTC",
) -> None:
    """Decode a live WITS source and print its frames as they arrive.

    Formats: table (one compact line per frame), jsonl (one DecodedFrame.to_record() object per
    line, as decode writes it) and csv (one row per point, as decode writes it); each frame is
    flushed as soon as it is decoded. Link status (connecting, connected, disconnected and when
    the next attempt is), bad bytes and bad data lines go to stderr. Links reconnect forever
    unless the URL says ?reconnect=0.

    With --db URL, --to SINK or --config FILE the frames also go through the durable spool into
    the database and the other sinks (a WITS relay, MQTT, a JetStream stream, files) while they
    print; on Ctrl-C or SIGTERM the spool is drained into the sinks before the command exits.

    Exit status: 0 when the source ends or after -n frames; 2 for a bad URL, or when the source
    cannot be reached (or drops) with reconnect=0; 130 after Ctrl-C, 143 after SIGTERM.
    """
    if db or config or to:
        from witskit.cli._ingest import plan_for, run_ingest
        from witskit.cli._stream import _writer

        plan = plan_for(url, db, config, to or [])
        if metric:
            plan.decoder.metric = True
        if tz != "UTC":
            plan.decoder.timezone = tz
        status = run_ingest(plan, writer=_writer(fmt), count=count or None)
        if status:
            raise typer.Exit(status)
        return
    if url is None:
        raise UsageError("give a source URL (or --config pipeline.yaml)")
    from witskit.cli._stream import run_stream

    status = run_stream(url, fmt=fmt, count=count or None, metric=metric, tz=tz)
    if status:
        raise typer.Exit(status)


# demo -------------------------------------------------------------------------------------------
@app.command(short_help="A one-screen tour of a simulated stream.")
@handle_errors
def demo(
    *,
    frames: Annotated[int, typer.Option("--frames", "-n", min=1, help="Record-1 frames to simulate.")] = 120,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    metric: Annotated[bool, typer.Option("--metric/--fps", help="Simulate a metric or an FPS rig.")] = False,
) -> None:
    """Simulate a short stream, decode it, and print what was in it: a tour in one command.

    Shows, per code seen, its mnemonic, description, unit, min, max, last value and count, then
    the number of frames, points and errors and the time span.
    """
    from witskit.cli._simulate import run_demo

    run_demo(frames=frames, seed=seed, metric=metric)


# run, serve, users, api-keys (the secure service) -----------------------------------------------
_service.register(app)
_users.register(app)
_storage.register(app)
_analyze.register(app)
_export.register(app)
_fleet.register(app)
_help.plain_help(app)


def main() -> None:
    """Console-script entry point (``witskit``) and ``python -m witskit``."""
    from witskit._gc import tune

    tune()  # fewer collections: a batch of frames alive is not walked again and again
    app(prog_name="witskit")
