"""Outgoing alarm webhooks: each event POSTed as JSON, signed with HMAC-SHA256, never blocking ingest.

The request::

    POST <url>
    Content-Type: application/json
    X-WitsKit-Event: <event id>            the same id on every retry: receivers drop duplicates
    X-WitsKit-Timestamp: <unix seconds>    when this attempt was signed
    X-WitsKit-Signature: sha256=<hex>      HMAC-SHA256(secret, "<timestamp>.<body>")

    {"event_id": ..., "rule": ..., "state": "fired", "severity": ..., "source": ..., "time": ..., ...}

The signed string is the timestamp's decimal digits, a full stop, then the body's bytes exactly as
sent. A receiver recomputes the HMAC with the shared secret, compares in constant time, and refuses
a timestamp more than five minutes from its clock (:func:`verify` does all three): a captured
request cannot be replayed later, and every retry is signed afresh.

Each webhook has a worker and a bounded queue. :meth:`WebhookSender.offer` never waits: when the
queue is full the event is dropped for that webhook and counted (:attr:`WebhookTarget.dropped`),
so a receiver that is down or slow costs memory up to the bound, never ingest. A failed POST
(connection error, timeout, 429 or 5xx) is retried with the project's :class:`RetryPolicy`; any
other answer is final. Redirects are not followed (a signed event goes where it was configured).
httpx is the HTTP client (the ``webhooks`` extra).

A target made with ``public_only=True`` (every webhook added through the service's API, unless
``WITS_ALARM_WEBHOOKS_PRIVATE`` allows otherwise) only ever reaches public addresses: at each
attempt its host name is resolved, every address is checked by :func:`address_problem`, and the
request goes to the checked address itself (the host name kept in ``Host`` and in TLS's SNI and
certificate check), so a name that resolves to a public address when checked and to 127.0.0.1 a
moment later (DNS rebinding) cannot turn the service into a way into its own network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from witskit.errors import UsageError
from witskit.transport.resilience import RetryPolicy

__all__ = [
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "WebhookTarget",
    "address_problem",
    "resolve_public",
    "sign",
    "verify",
]

log = logging.getLogger("witskit.pipeline.webhooks")

SIGNATURE_HEADER: Final = "X-WitsKit-Signature"
TIMESTAMP_HEADER: Final = "X-WitsKit-Timestamp"
EVENT_HEADER: Final = "X-WitsKit-Event"
#: How far a signed timestamp may be from the receiver's clock: long enough for a slow link and
#: modest clock skew, short enough that a captured request is soon useless.
DEFAULT_TOLERANCE: Final = 300.0
#: A line about drops or failures is repeated at most this often (seconds) while they last.
_REMIND_EVERY: Final = 30.0


class _RetryableStatus(Exception):
    """An answer worth retrying (429, 5xx)."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp``: ``sha256=<hex>``."""
    digest = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` made within ``tolerance`` seconds.

    For receivers written in Python; ``headers`` is looked up case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(stamp), body), given)


def address_problem(address: str) -> str | None:
    """Why a webhook may not be sent to this IP address (None when it is a public address).

    Loopback, private (RFC 1918, unique local), link-local (cloud metadata services live at
    169.254.169.254), carrier-grade NAT, multicast, reserved and documentation ranges are refused:
    any address that is not globally routable. An IPv4 address mapped in IPv6 is judged as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global:
        return None
    kind = (
        "loopback"
        if ip.is_loopback
        else "link-local"
        if ip.is_link_local
        else "private"
        if ip.is_private
        else "not a public"
    )
    return f"{ip} is a {kind} address"


async def resolve_public(host: str, port: int) -> list[str]:
    """Every address of ``host``, all public; :class:`UsageError` naming the first that is not.

    A host whose name resolves to several addresses must have only public ones: the client could
    connect to any of them. A name that does not resolve raises :class:`OSError` (``socket.gaierror``):
    at send time that is worth a retry, as a refused connection is.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise UsageError(f"{host} resolves to {address}: {problem}")
    if not addresses:
        raise OSError(f"the host {host!r} has no address")
    return addresses


class WebhookTarget:
    """One webhook: its URL, key, retry policy, queue and counters."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = 10.0,
        max_attempts: int = 5,
        queue_size: int = 1000,
        backoff_factor: float = 0.5,
        max_backoff: float = 30.0,
        public_only: bool = False,
        name: str | None = None,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise UsageError("a webhook URL must start with http:// or https://")
        if not secret:
            raise UsageError("a webhook needs a secret to sign with")
        self.url = url
        self.secret = secret
        #: Send only to public addresses, checked at each attempt (see the module docstring).
        self.public_only = public_only
        #: The name of a webhook added through the API (None for the pipeline file's).
        self.name = name
        self.timeout = timeout
        self.policy = RetryPolicy(
            max_attempts, backoff_factor, max_backoff, retry_on=(_RetryableStatus, OSError)
        )
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._said = -_REMIND_EVERY

    def __repr__(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)  # never the query or credentials: they may hold a token
        return f"<WebhookTarget {parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}>"

    def _remind(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._said >= _REMIND_EVERY:
            self._said = now
            log.warning(message, *args)


class WebhookSender:
    """Sends events to every target from background workers (see the module docstring)."""

    def __init__(self, targets: Sequence[WebhookTarget]) -> None:
        self.targets = list(targets)
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None

    def offer(self, event: Mapping[str, Any]) -> None:
        """Queue an event (a JSON-ready mapping with ``event_id``) for every target; never waits."""
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8")
        for target in self.targets:
            try:
                target.queue.put_nowait(body)
            except asyncio.QueueFull:
                target.dropped += 1
                target._remind("webhook %r: queue full, %d events dropped so far", target, target.dropped)

    def start(self) -> None:
        """Start the workers (in the running event loop)."""
        if self._tasks:
            return
        try:
            import httpx
        except ImportError:  # pragma: no cover - depends on the installation
            raise UsageError("alarm webhooks need httpx: pip install 'witskit[webhooks]'") from None
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._tasks = [
            asyncio.create_task(self._work(target), name=f"witskit-webhook {target!r}")
            for target in self.targets
        ]

    async def _work(self, target: WebhookTarget) -> None:
        while True:
            body = await target.queue.get()
            try:
                await target.policy.execute(self._post, target, body)
                target.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                target.failed += 1
                target._remind(
                    "webhook %r: event not delivered (%s); %d failed so far", target, exc, target.failed
                )
            finally:
                target.queue.task_done()

    async def _post(self, target: WebhookTarget, body: bytes) -> None:
        import httpx

        stamp = int(time.time())
        event_id = json.loads(body).get("event_id", "")
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: str(event_id),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(target.secret, stamp, body),
        }
        url = target.url
        extensions: dict[str, Any] = {}
        if target.public_only:
            async with asyncio.timeout(target.timeout):  # TimeoutError is an OSError: retried
                url, headers["Host"], extensions["sni_hostname"] = await _pinned(target.url)
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=target.timeout, extensions=extensions
            )
        except httpx.TransportError as exc:  # connect, read, timeout: worth another attempt
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableStatus(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise UsageError(f"HTTP {response.status_code} (not retried)")

    def add(self, target: WebhookTarget) -> None:
        """Add a target while running (its worker starts when the sender has started)."""
        self.targets.append(target)
        if self._tasks:
            self._tasks.append(asyncio.create_task(self._work(target), name=f"witskit-webhook {target!r}"))

    async def remove(self, target: WebhookTarget) -> None:
        """Stop sending to a target; what it still had queued is dropped."""
        if target not in self.targets:
            return
        index = self.targets.index(target)
        self.targets.pop(index)
        if self._tasks:
            task = self._tasks.pop(index)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued event to be sent or given up; True if done."""
        try:
            async with asyncio.timeout(timeout):
                for target in self.targets:
                    await target.queue.join()
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued within ``timeout`` seconds, then stop the workers and close the client."""
        if self._tasks:
            await self.drain(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _pinned(url: str) -> tuple[str, str, str]:
    """``url`` with its host replaced by a checked public address of it, the Host header, the host."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = (await resolve_public(host, port))[0]
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    named = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host too
    header = f"{named}:{parts.port}" if parts.port else named
    return urlunsplit(parts._replace(netloc=netloc)), header, host
