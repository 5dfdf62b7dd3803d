"""``witskit stream --db URL`` and ``witskit stream --config pipeline.yaml``: store while printing.

The frames go through the real pipeline: each is appended to the spool first, then written to
every sink (the database, and any JSONL/CSV sinks the pipeline file names) and acknowledged after
the commit; the output shows them as they arrive. Ctrl-C or SIGTERM stops the sources and drains
the spool into the sinks before exiting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import Any

from witskit.cli._console import EXIT_PROBLEMS, error, info
from witskit.config import PipelineConfig, SinkConfig, SourceConfig, load_config, load_pipeline
from witskit.errors import FrameError, UsageError

__all__ = ["plan_for", "run_ingest"]


def plan_for(
    url: str | None, db: str | None, config_path: str | None, to: list[str] | None = None
) -> PipelineConfig:
    """The pipeline of ``stream``'s arguments: a file, or one URL into one database (or both), plus
    the ``--to`` sinks. With ``--to`` and neither a database nor a file, no database is added:
    ``witskit stream tcp://edr:4000 --to wits-serve://0.0.0.0:10002`` is a relay alone."""
    from witskit.pipeline.build import check_plan, job_spool_dir, plan_problems

    if config_path:
        plan = load_pipeline(config_path, plan_problems)
        if url:
            plan.sources.append(SourceConfig(url=url))
    elif url:
        plan = PipelineConfig(sources=[SourceConfig(url=url)])
    else:
        raise UsageError("give a source URL or --config pipeline.yaml")
    if db:
        plan.sinks.append(SinkConfig(url=db))
    plan.sinks.extend(SinkConfig(url=sink) for sink in to or ())
    check_plan(plan, config_path)
    if not plan.sinks:  # the settings' database (its directory created, as for query and import)
        from witskit.cli._storage import _db_url

        plan.sinks.append(SinkConfig(url=_db_url(None)))
    if plan.spool.dir is None:  # a spool of its own: a running service holds the default one
        plan.spool.dir = job_spool_dir(plan, load_config())
    return plan


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the final flush at exit does not fail again (the recipe
    of the signal module's documentation for a broken pipe)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _LogLines(logging.Handler):
    """The pipeline's warnings and errors (spool full or failing, sources paused or resumed, a sink
    down or recovered) as stderr lines with the UTC time, like the link status lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        from witskit.cli._stream import timestamp

        try:
            info(f"{timestamp()} {record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # pragma: no cover - as logging.Handler.emit does
            self.handleError(record)


def run_ingest(plan: PipelineConfig, *, writer: Any, count: int | None) -> int:
    """Run the pipeline until its sources end, ``count`` frames, or a signal; return the exit status."""
    handler = _LogLines()
    witskit_log = logging.getLogger("witskit")
    witskit_log.addHandler(handler)  # from the start: the spool's free-space warning at open too
    try:
        return _run_ingest(plan, writer=writer, count=count)
    finally:
        witskit_log.removeHandler(handler)


def _run_ingest(plan: PipelineConfig, *, writer: Any, count: int | None) -> int:
    from witskit.cli._stream import EXIT_TRANSPORT, StatusPrinter, run_async
    from witskit.pipeline import Pipeline, open_sink
    from witskit.pipeline.alarms import alarm_stage
    from witskit.pipeline.build import decoder_from, spool_from
    from witskit.protocol import DecodedFrame
    from witskit.transport.base import LinkSource
    from witskit.transport.listener import ListenerSource
    from witskit.transport.urls import open_source

    config = load_config()
    decoder = decoder_from(plan, config)
    sources = []
    for src in plan.sources:
        source = open_source(src.url, **src.options)
        if src.name:
            source.name = src.name
        if isinstance(source, LinkSource | ListenerSource):
            # One printer per source (it tells links from listeners), hooked to its retry policy:
            # each failed attempt is reported with its reason and the delay before the next.
            status = StatusPrinter(info)
            status.attach(source)
            source.on_status = status
        sources.append(source)
    sinks = [open_sink(s.url, **s.options) for s in plan.sinks]
    stage = alarm_stage(plan)
    if stage is not None:  # the pipeline file has alarms: they run on every frame, as one more sink
        sinks.append(stage)
    spool = spool_from(plan, config)
    seen = 0
    pipe: Pipeline | None = None
    print_failed: list[str] = []  # why the output could not be written (it is then not tried again)

    def on_frame(frame: DecodedFrame) -> None:
        nonlocal seen
        for problem in frame.errors:
            info(f"{frame.source}: {problem}")
        if not print_failed:
            try:
                writer.write(frame)
                writer.flush()
            except BrokenPipeError:
                # The reader went away (| head): stop as a plain stream does, draining the spool.
                print_failed.append("")
                _stdout_to_devnull()
                if pipe is not None:
                    pipe.stop()
            except OSError as exc:
                # A full disk under the output: the frames are stored already (printing comes after
                # the spool), so say it once and keep storing; the exit status says it at the end.
                print_failed.append(exc.strerror or str(exc))
                _stdout_to_devnull()
                error(f"cannot write the frames to standard output ({print_failed[0]}); storing goes on")
        seen += 1
        if count is not None and seen >= count and pipe is not None:
            pipe.stop()

    def on_frame_error(err: FrameError) -> None:
        info(err.message)

    pipe = Pipeline(sources, sinks, spool, decoder=decoder, on_frame=on_frame, on_frame_error=on_frame_error)

    async def main() -> None:
        assert pipe is not None
        try:
            await pipe.run()
        finally:  # also after Ctrl-C or SIGTERM: say what waits for the sinks
            spool.close()
            backlog = pipe.backlog
            if backlog:
                info(
                    f"{backlog} frames wait in the spool ({spool.directory}); "
                    "the next witskit stream into the same sinks writes them"
                )

    code = run_async(main)
    lost = pipe.stats.frames_lost
    if lost:
        # The process gave up with data in hand: never a success, whatever stopped it.
        why = f": {pipe.spool_error}" if pipe.spool_error else ""
        error(f"{lost} frame(s) received were not stored: stopped while the spool could not take them{why}")
        return code or EXIT_PROBLEMS
    if print_failed and print_failed[0]:
        return code or EXIT_PROBLEMS
    if pipe.failed_sources and code == 0:
        # A source that gave up (unreachable with reconnect=0, say) is a failure, as in plain stream.
        return EXIT_TRANSPORT
    return code
