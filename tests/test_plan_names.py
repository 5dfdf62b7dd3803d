"""Every public name of seed/IMPLEMENTATION_PLAN.md is importable where the plan puts it, and is
the real thing (issue 11, item 5), so the plan's compatibility names cannot grow a second
implementation again.

:data:`PLAN` lists the names the plan's code defines, by the module it puts them in. Each is one of:

* the implementation itself, used by WitsKit (``AuthManager`` is the service's token code,
  ``CircuitBreaker`` the pipeline's breaker): defined in the plan's module and nowhere else;
* a process-wide instance of such a class (the plan's ``metrics``, ``error_handler``...);
* a thin wrapper, listed in :data:`WRAPPERS` with what it wraps: a subclass that adds only the
  plan's hooks, or a class that holds the real object and hands everything to it.

The plan's ``touch witskit/security/credentials.py`` and ``encryption.py`` define no names. The
rest of item 5 is held here too: transports report problems through one channel (their events),
and the error tree of ``witskit/errors.py`` is checked by ``tests/test_exported_members.py``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: The plan's module -> the names its code defines there.
PLAN: dict[str, set[str]] = {
    "witskit.config": {"WitsConfig", "config"},  # Task 1.1
    "witskit.storage.secure_connection": {"SecureDatabaseManager"},  # Task 1.2
    "witskit.security.validation": {"SecureWITSFrame", "SecureWITSDecoder"},  # Task 1.3
    "witskit.security.logging": {"SecureLogger", "secure_logger"},  # Task 1.4
    "witskit.security.auth": {"User", "AuthManager"},  # Task 2.1
    "witskit.security.rbac": {"Permission", "Role", "ROLE_PERMISSIONS", "require_permission"},  # 2.2
    "witskit.transport.secure_tcp_reader": {"SecureTCPReader"},  # Task 2.3
    "witskit.transport.async_tcp_reader": {"AsyncTCPReader"},  # Task 3.1 (its tests import it)
    "witskit.transport.resilience": {"CircuitState", "CircuitBreaker", "RetryPolicy"},  # Task 3.2
    "witskit.transport.error_handling": {  # Task 3.3
        "ErrorSeverity",
        "ErrorCategory",
        "WitsError",
        "ErrorHandler",
        "error_handler",
    },
    "witskit.monitoring.metrics": {"WitsMetrics", "metrics", "track_processing_time"},  # Task 4.1
    "witskit.monitoring.health": {  # Task 4.2
        "HealthStatus",
        "HealthCheck",
        "HealthMonitor",
        "database_health_check",
        "memory_health_check",
        "health_monitor",
    },
}

#: The plan's process-wide instances -> their class.
INSTANCES = {
    "config": "WitsConfig",
    "secure_logger": "SecureLogger",
    "error_handler": "ErrorHandler",
    "metrics": "WitsMetrics",
    "health_monitor": "HealthMonitor",
}

#: Methods and attributes the plan's code calls on its classes.
MEMBERS = {
    "SecureDatabaseManager": {"get_engine", "_sanitize_url"},
    "SecureWITSDecoder": {"decode_frame", "_validate_symbol_code"},
    "SecureLogger": {"SENSITIVE_FIELDS", "sanitize_data", "_mask_credentials", "info", "error"},
    "AuthManager": {"create_access_token", "verify_token", "hash_password", "verify_password"},
    "SecureTCPReader": {"_create_ssl_context", "stream"},
    "AsyncTCPReader": {"stream", "connection_attempts"},
    "CircuitBreaker": {"call"},
    "RetryPolicy": {"execute"},
    "ErrorHandler": {"register_callback", "handle_error", "get_error_stats"},
    "WitsMetrics": {"record_connection_attempt", "record_frame_processed", "record_error"},
    "HealthMonitor": {"register_check", "run_all_checks", "get_overall_health"},
}

#: Thin wrappers -> (the real class they subclass or hold, the members they may define themselves).
#: A subclass may add only these (the plan's hooks); a holder must pass the real object on.
WRAPPERS = {
    "SecureWITSFrame": ("witskit.protocol.parser:WITSFrame", {"__init__"}),
    "SecureWITSDecoder": ("witskit.protocol.decoder:WITSDecoder", {"decode_frame", "_validate_symbol_code"}),
    "SecureTCPReader": (
        "witskit.transport.async_tcp_reader:AsyncTCPReader",
        {"__init__", "_create_ssl_context"},
    ),
}

#: Modules that exist for the plan's names only -> every module they may import. They hand their
#: work to the real modules, so none parses, connects, or builds an engine by itself.
COMPAT_MODULES = {
    "witskit.security.validation": {"__future__", "datetime", "witskit.protocol", "witskit.protocol.limits"},
    "witskit.transport.async_tcp_reader": {
        "__future__",
        "ssl",  # a type in a signature
        "collections.abc",
        "typing",
        "witskit.errors",
        "witskit.transport.base",
        "witskit.transport.error_handling",
        "witskit.transport.resilience",
        "witskit.transport.tcp",
    },
    "witskit.transport.secure_tcp_reader": {
        "__future__",
        "ssl",
        "os",
        "typing",
        "witskit.errors",
        "witskit.transport.async_tcp_reader",
        "witskit.transport.resilience",
        "witskit.transport.tls",
    },
    "witskit.storage.secure_connection": {
        "__future__",
        "logging",
        "typing",
        "sqlalchemy.ext.asyncio",  # the engine's type
        "witskit.storage._url",  # sanitize_url, the URL masking the store uses
        "witskit.storage.database",
    },
}

NAMES = sorted((module, name) for module, names in PLAN.items() for name in names)


@pytest.fixture
def fresh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``witskit.config.config`` read from a clean directory, and forgotten afterwards."""
    monkeypatch.chdir(tmp_path)  # no developer's .env
    module = importlib.import_module("witskit.config")
    monkeypatch.delitem(vars(module), "config", raising=False)
    yield
    vars(module).pop("config", None)


@functools.cache
def definitions() -> dict[str, list[str]]:
    """Top-level class and function name -> the files of src/witskit that define it."""
    out: dict[str, list[str]] = {}
    for path in sorted((SRC / "witskit").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                out.setdefault(node.name, []).append(str(path.relative_to(SRC)))
    return out


def real(path: str) -> type:
    module, _, name = path.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


@pytest.mark.usefixtures("fresh_config")
@pytest.mark.parametrize(("module", "name"), NAMES, ids=[f"{m}.{n}" for m, n in NAMES])
def test_each_plan_name_is_importable_where_the_plan_puts_it_and_is_the_real_thing(
    module: str, name: str
) -> None:
    obj = getattr(importlib.import_module(module), name)
    if name in INSTANCES:
        cls = getattr(importlib.import_module(module), INSTANCES[name])
        assert type(obj) is cls, f"{module}.{name} is a {type(obj).__name__}, not the plan's {cls.__name__}"
    elif name == "ROLE_PERMISSIONS":
        rbac = importlib.import_module(module)
        assert obj is rbac.ROLE_PERMISSIONS
        assert {rbac.permissions_for([role]) == perms for role, perms in obj.items()} == {True}
    else:
        # Defined once, in the plan's module: no second class or function of the name elsewhere.
        assert obj.__module__ == module, f"{module}.{name} is {obj.__module__}.{name}: import it from there"
        where = definitions().get(name)
        assert where == [module.replace(".", "/") + ".py"], f"{name} is defined in {where}"
    for member in MEMBERS.get(name, ()):
        assert hasattr(obj, member), f"{module}.{name} has no {member}, which the plan's code uses"


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_a_subclass_wrapper_adds_only_the_plans_hooks(name: str) -> None:
    module = next(m for m, names in PLAN.items() if name in names)
    cls = getattr(importlib.import_module(module), name)
    base, allowed = WRAPPERS[name]
    assert cls.__bases__ == (real(base),)
    own = {k for k in vars(cls) if not (k.startswith("__") and k.endswith("__"))} | (
        {"__init__", "__new__", "__call__"} & set(vars(cls))
    )
    assert own <= allowed, f"{name} defines {sorted(own - allowed)} itself: move it to {base}"


@pytest.mark.parametrize("module", sorted(COMPAT_MODULES))
def test_a_compatibility_module_imports_only_what_it_wraps(module: str) -> None:
    path = SRC / (module.replace(".", "/") + ".py")
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    extra = imported - COMPAT_MODULES[module]
    assert not extra, f"{module} imports {sorted(extra)}: a wrapper hands its work to the real module"


def test_the_readers_hand_everything_to_the_tcp_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from witskit.transport import secure_tcp_reader
    from witskit.transport.async_tcp_reader import AsyncTCPReader
    from witskit.transport.tcp import TCPSource

    reader = AsyncTCPReader("127.0.0.1", 4000)
    assert type(reader.source) is TCPSource
    assert reader.name == reader.source.name == "tcp://127.0.0.1:4000"
    made = ssl.create_default_context()
    asked = []
    monkeypatch.setattr(secure_tcp_reader, "client_context", lambda *files: asked.append(files) or made)
    secure = secure_tcp_reader.SecureTCPReader("127.0.0.1", 4000, ca_file="ca.pem")
    assert type(secure.source) is TCPSource
    assert secure.source.ssl_context is made  # transport.tls's context, passed on as it is
    assert asked == [("ca.pem", None, None)]


def test_the_secure_logger_redacts_as_the_log_pipeline_does() -> None:
    from witskit.security.logging import SecureLogger, redact_event

    plans_fields = {"password", "passwd", "pwd", "secret", "key", "token", "auth", "credential", "private"}
    assert plans_fields | {"api_key"} <= SecureLogger.SENSITIVE_FIELDS
    data = {
        "db_password": "hunter2",
        "url": "postgresql://wits:hunter2@db/wits",
        "nested": {"api_key": "wk_x", "rows": [1, "token=abc"]},
        "keys": 3,
    }
    assert SecureLogger().sanitize_data(data) == redact_event(None, "info", dict(data))


async def test_the_database_manager_opens_the_stores_database_handle(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from witskit.storage.database import Database
    from witskit.storage.secure_connection import SecureDatabaseManager

    url = f"sqlite:///{tmp_path / 'w.db'}"
    manager = SecureDatabaseManager(
        SimpleNamespace(database_url=url, database_pool_size=2, database_timeout=5)
    )
    engine = manager.get_engine()
    reference = Database.open(url, pool_size=2, timeout=5)
    try:  # the same engine settings: the store's SQLite set-up and hidden parameters
        assert engine.url == reference.engine.url
        assert engine.sync_engine.hide_parameters
        assert reference.engine.sync_engine.hide_parameters
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        await manager.aclose()
        await reference.aclose()


def test_transports_report_problems_through_their_events_only() -> None:
    # One channel: a transport yields FrameErrors and gives LinkStatus to on_status; the plan's
    # WitsError records are derived from those events (error_handling.error_record), never made
    # by a transport on the side.
    makers = sorted(
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in (SRC / "witskit").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "WitsError"
    )
    assert makers, "the scan found no WitsError at all"
    assert {m.rpartition(":")[0] for m in makers} == {"witskit/transport/error_handling.py"}, makers


def test_the_plan_lists_no_name_this_table_misses() -> None:
    # The names the plan's Python blocks bind at module level, in the modules it names.
    plan = SRC.parents[1] / "shared" / "seed" / "IMPLEMENTATION_PLAN.md"
    if not plan.is_file():
        pytest.skip(f"the plan is not beside this checkout ({plan})")
    found: dict[str, set[str]] = {}
    for block in plan.read_text(encoding="utf-8").split("```python\n")[1:]:
        code = block.split("```", 1)[0]
        head = code.splitlines()[0]
        if not head.startswith("# witskit/"):
            continue  # the plan's tests
        module = head[2:].removesuffix(".py").replace("/", ".")
        tree = ast.parse(code)
        names = set()
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        found[module] = names
    # AsyncTCPReader is the one name the plan uses (in its tests) without a block that defines it.
    assert found == {m: n for m, n in PLAN.items() if m != "witskit.transport.async_tcp_reader"}
