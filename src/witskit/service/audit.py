"""The audit trail: every authentication attempt and every administrative action.

:meth:`AuditLog.record` is synchronous and never fails the request that calls it: the entry is
logged at once (structlog, redacted, with the request id) and queued; a background task writes the
queue to the ``audit_log`` table in batches, so a burst of failed logins costs one transaction per
batch, not one per attempt. If the database cannot take an entry it is still in the log stream,
marked ``audit_write_failed``.

Entries never hold a secret: callers pass names and reasons, and ``detail`` is passed through the
same redaction as the logs before it is stored, in case one slips in.

The ``audit_log`` table (Alembic revision ``0002``): who did what, when (UTC), from where, and how
it ended; :class:`AuditStore` writes and reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import structlog
from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, insert, select

from witskit.security.logging import SecureLogger, redact_text
from witskit.service._tables import TableStore, clip, metadata, utcnow, where_given
from witskit.storage.schema import UTCDateTime

__all__ = ["AuditEvent", "AuditLog", "AuditRecord", "AuditStore", "Outcome", "audit_log"]

log = logging.getLogger("witskit.service.audit")

#: Entries per transaction.
_BATCH: Final = 200
#: Seconds between writes when entries trickle in: an entry reaches the table within this.
_INTERVAL: Final = 0.25
#: Entries held while the database is slow; beyond this, entries are only logged (and counted).
_MAX_QUEUE: Final = 10_000


audit_log = Table(
    "audit_log",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid (autoincrementing); BIGINT elsewhere.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("actor", String(255), nullable=True),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("target", String(255), nullable=True),
    Column("client", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit entry to write: who (``actor``), what (``action``, ``target``), how it ended
    (``outcome``: success, failure, denied), when (UTC), from where (``client``)."""

    action: str
    outcome: str
    actor: str | None = None
    target: str | None = None
    client: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored audit entry."""

    id: int
    at: datetime
    actor: str | None
    action: str
    outcome: str
    target: str | None
    client: str | None
    request_id: str | None
    detail: dict[str, Any]


def _record(row: Any) -> AuditRecord:
    try:
        detail = json.loads(row.detail) if row.detail else {}
    except ValueError:
        detail = {"text": str(row.detail)}
    return AuditRecord(
        **{**row._mapping, "detail": detail if isinstance(detail, dict) else {"value": detail}}
    )


class AuditStore(TableStore):
    """The ``audit_log`` table."""

    async def write_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append audit entries (one transaction)."""
        if not events:
            return
        rows = [
            {
                "at": e.at,
                "actor": clip(e.actor, 255),
                "action": e.action[:64],
                "outcome": e.outcome[:16],
                "target": clip(e.target, 255),
                "client": clip(e.client, 64),
                "request_id": clip(e.request_id, 64),
                "detail": json.dumps(e.detail, default=str, separators=(",", ":")) if e.detail else None,
            }
            for e in events
        ]
        async with self._db.write("write the audit log of") as conn:
            await conn.execute(insert(audit_log), rows)

    async def list_audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditRecord]:
        """Audit entries, newest first; ``before_id`` pages back."""
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        stmt = where_given(stmt, (audit_log.c.actor, actor), (audit_log.c.action, action))
        async with self._db.read("read the audit log of") as conn:
            rows = (await conn.execute(stmt)).all()
        return [_record(r) for r in rows]


class Outcome:
    """Outcome values of audit entries."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditLog:
    """Logs and stores audit entries (see the module docstring)."""

    def __init__(self, accounts: AuditStore | None, *, logger_name: str = "witskit.audit") -> None:
        self._accounts = accounts
        self._secure = SecureLogger(logger_name)
        self._queue: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # one transaction at a time keeps the ids in event order
        self.dropped = 0
        self.written = 0

    def record(
        self,
        action: str,
        *,
        outcome: str,
        actor: str | None = None,
        target: str | None = None,
        client: str | None = None,
        **detail: Any,
    ) -> AuditEvent:
        """Log and queue one entry. ``detail`` holds reasons and names, never secrets."""
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        clean = self._secure.sanitize_data(detail)
        target = redact_text(target) if target else target
        event = AuditEvent(
            action=action,
            outcome=outcome,
            actor=actor,
            target=target,
            client=client,
            request_id=request_id if isinstance(request_id, str) else None,
            detail=clean,
        )
        self._secure.info(
            "audit",
            action=action,
            outcome=outcome,
            actor=actor,
            target=target,
            client=client,
            at=event.at.isoformat(),
            **clean,
        )
        if self._accounts is None:
            return event
        if len(self._queue) >= _MAX_QUEUE:
            self.dropped += 1
            log.error("audit queue full: entry %s/%s kept in the log only", action, outcome)
            return event
        self._queue.append(event)
        self._wake.set()
        return event

    def start(self) -> None:
        """Start the background writer (needs a running event loop)."""
        if self._task is None and self._accounts is not None:
            self._task = asyncio.create_task(self._run(), name="witskit-audit-writer")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()
            await asyncio.sleep(_INTERVAL)

    async def _write_pending(self) -> None:
        async with self._writing:
            await self._write_queue()

    async def _write_queue(self) -> None:
        accounts = self._accounts
        while self._queue and accounts is not None:
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            try:
                await accounts.write_audit(batch)
                self.written += len(batch)
            except Exception as exc:
                self.dropped += len(batch)
                for event in batch:
                    self._secure.error(
                        "audit_write_failed",
                        action=event.action,
                        outcome=event.outcome,
                        actor=event.actor,
                        target=event.target,
                        client=event.client,
                        error=str(exc),
                    )

    async def flush(self) -> None:
        """Write everything queued so far (before reading the table, and at shutdown)."""
        await self._write_pending()

    async def aclose(self) -> None:
        """Write what is queued, then stop the writer."""
        task, self._task = self._task, None
        if task is not None:
            async with self._writing:  # never cancel the writer in the middle of a transaction
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_pending()
