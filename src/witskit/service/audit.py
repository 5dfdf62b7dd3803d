"""The audit trail: every authentication attempt and every administrative action.

:meth:`AuditLog.record` is synchronous and never fails the request that calls it: the entry is
logged at once (structlog, redacted, with the request id) and queued; a background task writes the
queue to the ``audit_log`` table in batches, so a burst of failed logins costs one transaction per
batch, not one per attempt. If the database cannot take an entry it is still in the log stream,
marked ``audit_write_failed``.

Entries never hold a secret: callers pass names and reasons, and ``detail`` is passed through the
same redaction as the logs before it is stored, in case one slips in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import structlog

from witskit.security.logging import SecureLogger, redact_text
from witskit.service.accounts import AccountStore, AuditEvent

__all__ = ["AuditLog", "Outcome"]

log = logging.getLogger("witskit.service.audit")

#: Entries per transaction.
_BATCH: Final = 200
#: Seconds between writes when entries trickle in: an entry reaches the table within this.
_INTERVAL: Final = 0.25
#: Entries held while the database is slow; beyond this, entries are only logged (and counted).
_MAX_QUEUE: Final = 10_000


class Outcome:
    """Outcome values of audit entries."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditLog:
    """Logs and stores audit entries (see the module docstring)."""

    def __init__(self, accounts: AccountStore | None, *, logger_name: str = "witskit.audit") -> None:
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
