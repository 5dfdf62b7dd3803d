"""``witskit users`` and ``witskit api-keys``: accounts, managed on the database directly.

They work whether or not the service runs (a running service sees a change within a few seconds),
migrate the database first if needed, and audit every change with the actor ``cli:<login name>``.
A password is read from a hidden prompt (asked twice), from one line of standard input
(``--password-stdin``), or generated (``--generate``, printed once on stdout); it is never an
argument, where it would end up in the shell history and the process list.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from witskit.cli._console import handle_errors, info
from witskit.errors import UsageError
from witskit.security.credentials import check_password, check_username

if TYPE_CHECKING:  # pragma: no cover - typing only
    from witskit.service.identity import Identity

__all__ = ["api_keys_app", "register", "users_app"]

T = TypeVar("T")

users_app = typer.Typer(
    name="users",
    help="Manage user accounts (stored in the service's database, passwords hashed with Argon2id).",
    no_args_is_help=True,
)
api_keys_app = typer.Typer(
    name="api-keys",
    help="Manage API keys for machines (rigs, dashboards, scripts): shown once, stored hashed.",
    no_args_is_help=True,
)


class ListFormat(StrEnum):
    """How lists are printed."""

    table = "table"
    json = "json"


RolesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        "-r",
        help="Role: viewer, operator, admin or super_admin (repeat, or comma-separate).",
        show_default=False,
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]
GenerateOpt = Annotated[
    bool, typer.Option("--generate", help="Generate a random password and print it once on stdout.")
]
FormatOpt = Annotated[ListFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL of the service (default: WITS_DATABASE_URL, else the data dir's SQLite file).",
        show_default=False,
    ),
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container with an arbitrary uid)
        return "cli"


def _with_identity(action: Callable[[Identity], Awaitable[T]], db: str | None) -> T:
    """Open the accounts of ``db`` (or the configured database), run ``action``, flush the audit log, close.

    The audit entries are stored in the database (``audit_log``); they are not echoed on stderr,
    where the command prints one plain line of what it did.
    """
    try:
        from witskit.security.auth import AuthManager
        from witskit.service.accounts import AccountStore
        from witskit.service.audit import AuditLog
        from witskit.service.identity import Identity
    except ImportError as exc:
        raise UsageError(
            f"account commands need the 'server' extra (missing {exc.name!r}): pip install 'witskit[server]'"
        ) from None
    import secrets

    from witskit.config import load_config
    from witskit.security.logging import configure_logging
    from witskit.service.datadir import ensure_data_dir

    config = load_config()
    if db is None:
        from witskit.cli._storage import note_demo_store

        note_demo_store(config)
        ensure_data_dir(config)
    # Warnings and errors only (DEBUG when asked for): the audit entries are in the database, and
    # stdout carries only a generated password or key.
    configure_logging("DEBUG" if config.log_level == "DEBUG" else "WARNING", config.log_format)

    async def main() -> T:
        accounts = await AccountStore.open(db or config.database_url_value, migrate=True, pool_size=1)
        audit = AuditLog(accounts, logger_name="witskit.audit.cli")
        # Only hashing is used here; the CLI issues no tokens, so any key will do.
        identity = Identity(AuthManager(secrets.token_bytes(32)), accounts, audit)
        try:
            return await action(identity)
        finally:
            await audit.aclose()
            await accounts.aclose()

    return asyncio.run(main())


def _password(stdin: bool, generate: bool) -> tuple[str, bool]:
    """The new password and whether it was generated; one that breaks the rule is refused here,
    before the database is opened."""
    if stdin and generate:
        raise UsageError("--password-stdin and --generate cannot be combined")
    if generate:
        from witskit.service.identity import generate_password

        return generate_password(), True
    if stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("no password on standard input")
        return check_password(line), False
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask the password on: use --password-stdin or --generate")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return check_password(value), False


def _roles(values: list[str] | None, default: list[str]) -> list[str]:
    from witskit.service.accounts import parse_roles

    return list(parse_roles(values or default))


def _when(value: object) -> str:
    from datetime import datetime

    return value.strftime("%Y-%m-%d %H:%MZ") if isinstance(value, datetime) else "-"


# users ----------------------------------------------------------------------------------------
@users_app.command("add")
@handle_errors
def users_add(
    *,
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user name.", show_default=False)],
    role: RolesOpt = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.", show_default=False)] = None,
    password_stdin: PasswordStdinOpt = False,
    generate: GenerateOpt = False,
    db: DbOpt = None,
) -> None:
    """Create a user (default role: viewer). The first administrator: --role super_admin."""
    check_username(username)  # before the password is asked for
    roles = _roles(role, ["viewer"])
    password, generated = _password(password_stdin, generate)
    _with_identity(
        lambda identity: identity.add_user(
            username, password, roles, email=email, actor=_actor(), client="local"
        ),
        db,
    )
    if generated:
        typer.echo(password)
    info(f"user {username} created with roles {', '.join(roles) or '(none)'}")


@users_app.command("list")
@handle_errors
def users_list(
    *,
    fmt: FormatOpt = ListFormat.table,
    db: DbOpt = None,
) -> None:
    """List the users."""
    users = _with_identity(lambda identity: identity.accounts.list_users(), db)
    if fmt is ListFormat.json:
        rows = [
            {
                "username": u.username,
                "email": u.email,
                "roles": list(u.roles),
                "is_active": u.is_active,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(users)} user(s)", title_justify="left")
    for column in ("User", "Roles", "Active", "Created", "Last login", "E-mail"):
        table.add_column(column, no_wrap=column != "E-mail")
    for u in users:
        table.add_row(
            u.username,
            ",".join(u.roles),
            "yes" if u.is_active else "no",
            _when(u.created_at),
            _when(u.last_login_at),
            u.email or "",
        )
    Console(markup=False, highlight=False, emoji=False).print(table)


def _set_active(username: str, active: bool, db: str | None) -> None:
    _with_identity(
        lambda identity: identity.update_user(username, is_active=active, actor=_actor(), client="local"),
        db,
    )
    info(f"user {username} {'enabled' if active else 'disabled'}")


@users_app.command("disable")
@handle_errors
def users_disable(
    *,
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user name.", show_default=False)],
    db: DbOpt = None,
) -> None:
    """Disable a user: logins are refused and existing tokens stop working."""
    _set_active(username, False, db)


@users_app.command("enable")
@handle_errors
def users_enable(
    *,
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user name.", show_default=False)],
    db: DbOpt = None,
) -> None:
    """Enable a disabled user."""
    _set_active(username, True, db)


@users_app.command("set-roles")
@handle_errors
def users_set_roles(
    *,
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user name.", show_default=False)],
    roles: Annotated[
        list[str],
        typer.Argument(metavar="ROLE...", help="viewer, operator, admin, super_admin.", show_default=False),
    ],
    db: DbOpt = None,
) -> None:
    """Replace a user's roles (their existing tokens stop working)."""
    wanted = _roles(roles, [])
    _with_identity(
        lambda identity: identity.update_user(username, roles=wanted, actor=_actor(), client="local"),
        db,
    )
    info(f"user {username} now has roles {', '.join(wanted) or '(none)'}")


@users_app.command("set-password")
@handle_errors
def users_set_password(
    *,
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user name.", show_default=False)],
    password_stdin: PasswordStdinOpt = False,
    generate: GenerateOpt = False,
    db: DbOpt = None,
) -> None:
    """Set a user's password (their existing tokens stop working)."""
    password, generated = _password(password_stdin, generate)
    _with_identity(
        lambda identity: identity.update_user(username, password=password, actor=_actor(), client="local"),
        db,
    )
    if generated:
        typer.echo(password)
    info(f"password of {username} changed")


# api-keys -------------------------------------------------------------------------------------
@api_keys_app.command("add")
@handle_errors
def api_keys_add(
    *,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the key is for (e.g. rig-7-dashboard).")],
    role: RolesOpt = None,
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", min=1, max=3650, help="Expire after N days.", show_default=False),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Create an API key (default role: viewer) and print it once on stdout; only its hash is kept."""
    roles = _roles(role, ["viewer"])
    key, record = _with_identity(
        lambda identity: identity.add_api_key(
            name, roles, expires_in_days=expires_days, actor=_actor(), client="local"
        ),
        db,
    )
    typer.echo(key)
    info(f"API key {record.key_id} ({name}) created with roles {', '.join(roles)}; it is not shown again")


@api_keys_app.command("list")
@handle_errors
def api_keys_list(
    *,
    fmt: FormatOpt = ListFormat.table,
    db: DbOpt = None,
) -> None:
    """List the API keys (never the keys themselves)."""
    keys = _with_identity(lambda identity: identity.accounts.list_api_keys(), db)
    if fmt is ListFormat.json:
        rows = [
            {
                "key_id": k.key_id,
                "name": k.name,
                "roles": list(k.roles),
                "owner": k.owner,
                "created_at": k.created_at.isoformat(),
                "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{len(keys)} API key(s)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    # The id is what revoke takes, and a date cut in two is unreadable: neither is ever cut. The
    # name, roles and owner fold on a narrow terminal.
    width = max((len(k.key_id) for k in keys), default=2)
    table.add_column("Id", no_wrap=True, min_width=width)
    for column in ("Name", "Roles", "Owner"):
        table.add_column(column, overflow="fold")
    for column in ("Created", "Expires", "Used", "Revoked"):
        table.add_column(column, no_wrap=True)
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            ", ".join(k.roles),
            k.owner or "",
            *(
                _when(at)[:10]  # days only: the exact times are in --format json
                for at in (k.created_at, k.expires_at, k.last_used_at, k.revoked_at)
            ),
        )
    Console(markup=False, highlight=False, emoji=False).print(table)


@api_keys_app.command("revoke")
@handle_errors
def api_keys_revoke(
    *,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (from api-keys list).")],
    db: DbOpt = None,
) -> None:
    """Revoke an API key: refused from then on."""
    _with_identity(lambda identity: identity.revoke_api_key(key_id, actor=_actor(), client="local"), db)
    info(f"API key {key_id} revoked")


def register(app: typer.Typer) -> None:
    """Add ``users`` and ``api-keys`` to the command line."""
    app.add_typer(users_app, name="users", short_help="Manage user accounts of the service.")
    app.add_typer(api_keys_app, name="api-keys", short_help="Manage API keys for machines and scripts.")
