"""``witskit run`` (ingest and serve) and ``witskit serve`` (serve a store).

Both read the ``WITS_*`` settings (and ``.env``), log JSON (or console) lines to stderr through the
redacting pipeline, and stop cleanly on SIGTERM or Ctrl-C (exit status 0). What is meant for the
person at the terminal (the URL, and the first administrator's generated password, shown once) is
written to stderr as plain text, never to the log.

FastAPI and uvicorn are imported only when a command runs; without them the command says which
extra to install.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from witskit.cli._console import EXIT_USAGE, error, handle_errors
from witskit.errors import ConfigError, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.service.server import Bound

__all__ = ["register", "run_service"]

#: Exit status after Ctrl-C before the service was up (128 + SIGINT).
_EXIT_INTERRUPTED = 130

HostOpt = Annotated[
    str | None,
    typer.Option("--host", help="Address to listen on (default: WITS_HOST, 127.0.0.1).", show_default=False),
]
PortOpt = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="Port (default: WITS_PORT, 8080; 0: any free port).",
        show_default=False,
    ),
]


def _need_server_extra() -> None:
    missing = []
    modules = ("fastapi", "uvicorn", "python_multipart", "structlog", "prometheus_client", "jwt", "pwdlib")
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(
            f"the service needs the 'server' extra (missing: {', '.join(missing)}): "
            "pip install 'witskit[server]'"
        )


def _db_arg(url: str) -> str:
    """``--db URL`` to paste into a command, unless the URL holds a password (then the variable)."""
    import shlex

    from witskit.storage import sanitize_url

    return f"--db {shlex.quote(url)}" if sanitize_url(url) == url else '--db "$WITS_DATABASE_URL"'


def _program() -> str:
    """How another shell runs this program: ``witskit`` when that is it, else its full path.

    ``make demo`` runs ``.venv/bin/witskit`` without activating the virtualenv, so a bare
    ``witskit`` in a hint would be "command not found" for the user who reads it.
    """
    import os
    import shlex
    import shutil

    argv0 = sys.argv[0]
    if os.path.basename(argv0) != "witskit":  # python -m witskit, or embedded: the usual name
        return "witskit"
    here = os.path.realpath(argv0)
    on_path = shutil.which("witskit")
    if on_path is not None and os.path.realpath(on_path) == here:
        return "witskit"
    return shlex.quote(os.path.abspath(argv0))


def _announce(bound: Bound, ingest: bool, db_url: str) -> None:
    out = sys.stderr
    program = _program()
    out.write(f"WitsKit is serving at {bound.url}  (API documentation: {bound.url}/docs)\n")
    if ingest:
        # Every connection running now: the pipeline file's and those kept from an earlier run.
        sources = bound.connections
        out.write(f"Ingesting: {', '.join(sources) if sources else 'nothing yet (add connections)'}\n")
    if bound.metrics_url:
        out.write(f"Prometheus metrics: {bound.metrics_url}\n")
    if bound.health_url:
        out.write(f"Health checks: {bound.health_url} (and /readyz)\n")
    if bound.admin_credentials is not None:
        name, password = bound.admin_credentials
        out.write(
            "\nAn administrator account was created. Its password is shown only this once:\n"
            f"    user name: {name}\n"
            f"    password:  {password}\n"
            f"Change it with: {program} users set-password {name} {_db_arg(db_url)}\n\n"
        )
    elif bound.admins:
        name = bound.admins[0]
        out.write(
            f"Sign in as an existing administrator ({', '.join(bound.admins)}). Lost the password? "
            "Set a new one (printed once) with:\n"
            f"    {program} users set-password {name} --generate {_db_arg(db_url)}\n"
        )
    out.flush()


def run_service(
    *,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    ingest: bool,
    live_interval: float | None = None,
) -> int:
    """Load the settings (and the pipeline file), then serve until stopped; the exit status."""
    import asyncio
    import logging

    _need_server_extra()
    from witskit.config import load_config, load_pipeline
    from witskit.security.logging import configure_logging, redact_text
    from witskit.service.runtime import DEFAULT_PIPELINE
    from witskit.service.server import serve
    from witskit.service.tailer import DEFAULT_INTERVAL

    try:
        config = load_config()
        from witskit.pipeline.build import check_plan, plan_problems

        pipeline = load_pipeline(config_path, plan_problems) if config_path is not None else None
        if pipeline is not None:
            # The data directory's spool, as without --config: its lock keeps to one ingesting
            # service per data directory (a second would read every kept connection twice).
            check_plan(pipeline, config_path)
    except ConfigError as exc:
        error(redact_text(str(exc)))
        return EXIT_USAGE
    if pipeline is not None and not ingest:
        raise UsageError("--config names a pipeline to ingest: use witskit run, not witskit serve")
    configure_logging(config.log_level, config.log_format)
    # Alembic announces each of its plugins at INFO on every start; the migrations themselves
    # are still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    plan = pipeline or DEFAULT_PIPELINE
    try:
        return asyncio.run(
            serve(
                config,
                pipeline=plan if ingest else None,
                ingest=ingest,
                host=host,
                port=port,
                on_ready=lambda bound: _announce(bound, ingest, config.database_url_value),
                live_interval=DEFAULT_INTERVAL if live_interval is None else live_interval,
            )
        )
    except ConfigError as exc:
        error(redact_text(str(exc)))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``serve`` to the command line."""

    @app.command(short_help="Ingest and serve the API and dashboard (the main job).")
    @handle_errors
    def run(
        *,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                "-c",
                help="Pipeline file (YAML): sources, sinks, decoder, spool. Default: one simulated rig.",
                show_default=False,
                dir_okay=False,
            ),
        ] = None,
        host: HostOpt = None,
        port: PortOpt = None,
    ) -> None:
        """Ingest the configured sources into the store and serve the API, in one process.

        With no settings at all it runs on embedded defaults: a SQLite file in the data directory,
        one simulated rig, and the API on http://127.0.0.1:8080 (OpenAPI at /docs). The first start
        creates user admin with a random password, printed once on stderr (set WITS_ADMIN_USERNAME
        and WITS_ADMIN_PASSWORD to choose them). SIGTERM or Ctrl-C drains the pipeline and exits 0.
        """
        status = run_service(config_path=config, host=host, port=port, ingest=True)
        if status:
            raise typer.Exit(status)

    @app.command(short_help="Serve the API over a store another process writes.")
    @handle_errors
    def serve(
        *,
        host: HostOpt = None,
        port: PortOpt = None,
        live_interval: Annotated[
            float,
            typer.Option(
                "--live-interval",
                min=0.05,
                max=60.0,
                help="Seconds between two looks at the store for new frames to send live (/api/v1/live).",
            ),
        ] = 0.5,  # witskit.service.tailer.DEFAULT_INTERVAL (the service is imported only to run)
    ) -> None:
        """Serve the API over the store, without ingesting (another process writes it).

        Same settings as witskit run. Live frames (/api/v1/live) are the frames the other process
        stores, found by looking at the store every --live-interval seconds while someone is
        subscribed; connections need witskit run.
        """
        status = run_service(
            config_path=None, host=host, port=port, ingest=False, live_interval=live_interval
        )
        if status:
            raise typer.Exit(status)
