"""NATS JetStream addresses, connections and the stream: what a fleet's edges and central workers share.

A fleet links rig-site edges to central writers through a JetStream stream (see ``docs/fleet.md``).
Both ends name it with one URL grammar::

    nats://[user:password@]host:port[,host:port...]/<subject>?stream=NAME[&option=value...]
    nats+tls://...            the same servers over TLS (``ca=``, ``cert=``/``key=`` for mutual TLS)

For an edge's sink the path is the subject *prefix* (each frame goes to ``<prefix>.<source>``);
for a central worker it is the subject *filter* its durable consumer reads (``wits.>``). The
options are read with the one URL-option grammar (:class:`~witskit.transport.options.URLOptions`):

==================  ======  ================================================================
option              side    meaning (default)
==================  ======  ================================================================
stream              both    the stream's name (required)
edge                edge    this edge's identity in message ids (the host name)
durable             worker  the durable consumer the workers share (required)
replicas            both    replicas of a stream created here (3: survives one node lost)
max_bytes           both    size bound of a stream created here (10 GiB, see below)
max_age             both    age bound, seconds (0: none; see below)
duplicate_window    both    how long the stream remembers message ids, seconds (300)
timeout             both    seconds to wait for a PubAck / an API answer (5)
ack_wait            worker  seconds before an unacknowledged message is redelivered (30)
batch               worker  most frames per SQL transaction (1000; a bundle is not split)
token               both    an auth token (secret: never shown)
nkey                both    path of an NKey seed file
creds               both    path of a JWT credentials file
ca, cert, key       both    TLS: CA bundle, client certificate and key (``nats+tls://``)
==================  ======  ================================================================

The stream is created when missing, with work-queue retention (a message leaves the stream when a
central worker acknowledges it, after its SQL commit: the stream holds exactly the fleet's
backlog), file storage, ``replicas`` copies and ``discard=new``: when the stream is full a publish
is *refused*, never an older message dropped, so the edges keep the frames in their spools and
retry (nothing is lost while their spools have room). An existing stream is checked, not changed:
a stream whose subjects do not cover ours, or that is not file-backed, is refused with the reason;
differing limits are logged. Passwords, tokens and key passwords never appear in a message or log.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from witskit.errors import ConnectError, TransportError, UsageError
from witskit.transport.options import URLOptions, redact_url

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

__all__ = [
    "DEFAULT_ACK_WAIT",
    "DEFAULT_BATCH",
    "DEFAULT_DUPLICATE_WINDOW",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_REPLICAS",
    "DEFAULT_TIMEOUT",
    "BrokerError",
    "JetStreamTarget",
    "connect",
    "ensure_stream",
    "is_nats_url",
    "parse_target",
    "subject_token",
]

log = logging.getLogger("witskit.transport.jetstream")

#: NATS's client port.
DEFAULT_PORT: Final = 4222
#: Three copies: the stream survives one node lost (a Raft group of 3 keeps a quorum of 2).
DEFAULT_REPLICAS: Final = 3
#: 10 GiB per replica: about four hours of a 1000-rig fleet (1 Hz, 40 items: ~0.7 MB/s) with the
#: central writers down. Behind it every edge's spool (1 GiB by default) holds more.
DEFAULT_MAX_BYTES: Final = 10 << 30
#: 0 (no age limit): with work-queue retention a message waits for its commit; an age limit would
#: drop frames no worker has stored yet. Set one only when old data may go.
DEFAULT_MAX_AGE: Final = 0.0
#: Message ids are remembered 5 minutes: longer than any PubAck timeout and retry of a batch (the
#: edge's breaker waits seconds), short enough to keep the ids of ~300k messages in memory. A
#: re-publish later than that is stored twice in the stream and skipped by the store's frame key.
DEFAULT_DUPLICATE_WINDOW: Final = 300.0
#: Seconds to wait for a PubAck or an API answer: a cluster electing a leader answers within ~2 s.
DEFAULT_TIMEOUT: Final = 5.0
#: Seconds a worker may hold a message before JetStream redelivers it (the worker extends it
#: while a commit is retried, so only a dead worker's messages wait this long).
DEFAULT_ACK_WAIT: Final = 30.0
#: Messages per fetch and per SQL transaction: a second of a 1000-rig fleet, one commit.
DEFAULT_BATCH: Final = 1000

#: JetStream API error codes: a stream of that name exists; no peers can hold the stream.
_STREAM_EXISTS: Final = 10058
_NO_PLACEMENT: Final = 10005
#: While a fault lasts, its log line is repeated this often (seconds), as the pipeline does.
_REMIND_EVERY: Final = 30.0

_SCHEMES: Final = ("nats", "nats+tls")
_COMMON: Final = (
    "stream",
    "replicas",
    "max_bytes",
    "max_age",
    "duplicate_window",
    "timeout",
    "token",
    "nkey",
    "creds",
    "ca",
    "cert",
    "key",
)
_EDGE_OPTIONS: Final = (*_COMMON, "edge")
_WORKER_OPTIONS: Final = (*_COMMON, "durable", "ack_wait", "batch")
#: A stream, consumer or edge name: NATS forbids spaces, dots, ``*``, ``>`` and path separators.
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A subject token of ours (what a source name becomes in a subject; see subject_token).
_TOKEN_SAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


class BrokerError(TransportError):
    """The NATS cluster did not take a message or answer a request (down, no quorum, stream full)."""


def is_nats_url(url: str) -> bool:
    """True when ``url`` names a JetStream stream (``nats://`` or ``nats+tls://``)."""
    return isinstance(url, str) and url.split("://", 1)[0].lower() in _SCHEMES and "://" in url


def subject_token(source: str) -> str:
    """A source name as one subject token: letters, digits, ``_`` and ``-`` kept, others ``~XX``.

    Subjects route and filter only (``wits.rig-7`` for one rig); the exact source name travels in
    the message itself, so the mapping needs no inverse. UTF-8 bytes are escaped one by one.
    """
    if not source:
        return "~"
    return _TOKEN_SAFE.sub(lambda m: "".join(f"~{b:02X}" for b in m.group().encode("utf-8")), source)


@dataclass(frozen=True, slots=True)
class JetStreamTarget:
    """One JetStream URL, checked: the servers, the subject, the stream and how to connect."""

    url: str  #: as it may be shown (passwords masked)
    servers: tuple[str, ...]
    subject: str
    stream: str
    tls: bool = False
    edge: str | None = None
    durable: str | None = None
    replicas: int = DEFAULT_REPLICAS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_age: float = DEFAULT_MAX_AGE
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    timeout: float = DEFAULT_TIMEOUT
    ack_wait: float = DEFAULT_ACK_WAIT
    batch: int = DEFAULT_BATCH
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    nkey: Path | None = None
    creds: Path | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def stream_subjects(self) -> list[str]:
        """The subjects a stream created here takes: everything under the subject's first token
        (``wits.>``), so the edges' prefixes and the workers' filters below it all fit."""
        head = self.subject.split(".", 1)[0]
        return [f"{head}.>"] if head not in ("*", ">") else [">"]

    @property
    def covered_subject(self) -> str:
        """What the stream must take: everything under an edge's prefix, or a worker's filter."""
        return f"{self.subject}.>" if self.durable is None else self.subject

    def __str__(self) -> str:
        return self.url


def _check_subject(query: URLOptions, subject: str, *, wildcards: bool) -> str:
    parts = subject.split(".")
    for i, part in enumerate(parts):
        if not part or any(c.isspace() for c in part):
            raise UsageError(f"{query.url}: bad subject {subject!r}: empty token or whitespace")
        if part in ("*", ">") and wildcards:
            if part == ">" and i != len(parts) - 1:
                raise UsageError(f"{query.url}: bad subject {subject!r}: '>' must be the last token")
            continue
        if "*" in part or ">" in part:
            what = "a subject prefix takes no wildcards" if not wildcards else "wildcards are whole tokens"
            raise UsageError(f"{query.url}: bad subject {subject!r}: {what}")
    return subject


def _name(query: URLOptions, key: str, *, required: bool) -> str | None:
    value = query.text(key)
    if value is None:
        if required:
            raise UsageError(f"{query.url}: option {key}=NAME is required")
        return None
    if not _NAME.match(value):
        raise query.bad(key, "is not a name of 1-64 letters, digits, '_' or '-'")
    return value


def _file(query: URLOptions, key: str) -> Path | None:
    value = query.text(key)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"{query.url}: option {key}: no such file {value!r}")
    return path


def _servers(query: URLOptions, netloc: str, tls: bool) -> tuple[tuple[str, ...], str | None, str | None]:
    userinfo, at, hosts = netloc.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        if not colon:
            raise UsageError(
                f"{query.url}: user info without a password; give a token as token=... "
                "(the part before '@' would be shown in logs)"
            )
        user, password = unquote(name), unquote(secret)
    scheme = "tls" if tls else "nats"
    servers = []
    for host in hosts.split(","):
        if not host:
            raise UsageError(f"{query.url}: empty server in the list (write host:port,host:port)")
        name, colon, port_text = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port_text = host, str(DEFAULT_PORT)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"{query.url}: bad port in server {host!r}")
        if not name:
            raise UsageError(f"{query.url}: server {host!r} has no host")
        servers.append(f"{scheme}://{name}:{int(port_text)}")
    return tuple(servers), user, password


def parse_target(url: str, *, role: str) -> JetStreamTarget:
    """Check a JetStream URL for an ``"edge"`` (sink) or a ``"worker"`` (central source).

    Raises :class:`~witskit.errors.UsageError` naming the URL (password masked) and what is wrong.
    """
    if role not in ("edge", "worker"):
        raise UsageError(f"role must be 'edge' or 'worker', got {role!r}")
    query = URLOptions(url, _EDGE_OPTIONS if role == "edge" else _WORKER_OPTIONS)
    scheme = query.scheme.lower()
    if scheme not in _SCHEMES:
        raise UsageError(f"{query.url}: not a JetStream URL (nats:// or nats+tls://)")
    parts = urlsplit(url)
    if parts.fragment:
        raise UsageError(f"{query.url}: unexpected fragment '#{parts.fragment}'")
    ca, cert, key = _file(query, "ca"), _file(query, "cert"), _file(query, "key")
    tls = scheme == "nats+tls"
    if (ca or cert or key) and not tls:
        raise UsageError(f"{query.url}: ca, cert and key are TLS options: use nats+tls://")
    if (cert is None) != (key is None):
        raise UsageError(f"{query.url}: a client certificate needs both cert= and key=")
    servers, user, password = _servers(query, parts.netloc, tls)
    subject = unquote(parts.path.lstrip("/"))
    if not subject:
        example = "wits" if role == "edge" else "wits.>"
        raise UsageError(
            f"{query.url}: the path names the subject, e.g. nats://host:4222/{example}?stream=WITS"
        )
    _check_subject(query, subject, wildcards=role == "worker")
    token = query.secret("token")
    nkey, creds = _file(query, "nkey"), _file(query, "creds")
    if sum(x is not None for x in (password, token, nkey, creds)) > 1:
        raise UsageError(f"{query.url}: give one of user:password, token, nkey or creds")
    stream = _name(query, "stream", required=True)
    assert stream is not None
    edge = _name(query, "edge", required=False) if role == "edge" else None
    if role == "edge" and edge is None:
        edge = subject_token(socket.gethostname())[:64]
    durable = _name(query, "durable", required=role == "worker")
    replicas = query.count("replicas")
    if replicas is not None and replicas > 5:
        raise query.bad("replicas", "is more than 5 (JetStream's limit)")
    max_age = query.seconds("max_age", zero_is_none=True)
    return JetStreamTarget(
        url=query.url,
        servers=servers,
        subject=subject,
        stream=stream,
        tls=tls,
        edge=edge,
        durable=durable,
        replicas=replicas or DEFAULT_REPLICAS,
        max_bytes=query.count("max_bytes") or DEFAULT_MAX_BYTES,
        max_age=max_age or DEFAULT_MAX_AGE,
        duplicate_window=query.seconds("duplicate_window") or DEFAULT_DUPLICATE_WINDOW,
        timeout=query.seconds("timeout") or DEFAULT_TIMEOUT,
        ack_wait=query.seconds("ack_wait") or DEFAULT_ACK_WAIT,
        batch=query.count("batch") or DEFAULT_BATCH,
        user=user,
        password=password,
        token=token,
        nkey=nkey,
        creds=creds,
        ca=ca,
        cert=cert,
        key=key,
    )


def _ssl_context(target: JetStreamTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(target.ca) if target.ca else None)
    if target.cert is not None and target.key is not None:
        context.load_cert_chain(str(target.cert), str(target.key))
    return context


def _require_nats() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        raise UsageError("nats:// needs the nats-py client: pip install 'witskit[fleet]'") from None


async def connect(
    target: JetStreamTarget,
    *,
    name: str,
    on_error: Callable[[str], None] | None = None,
    closing: Callable[[], bool] = lambda: False,
) -> Client:
    """Connect to the cluster (any server of the list), reconnecting forever once connected.

    The client's own error callbacks log one line each without credentials, and pass the error's
    text to ``on_error`` (a refused asynchronous publish is reported only there); nothing is
    logged once ``closing()`` is true. A failure to reach any server raises
    :class:`~witskit.errors.ConnectError`.
    """
    _require_nats()
    import nats
    import nats.errors

    # The client reports every failed reconnect attempt (several a second while the cluster is
    # down): say the first, then one line every _REMIND_EVERY seconds with how many were not said.
    said = {"at": -_REMIND_EVERY, "quiet": 0}

    async def error_cb(exc: Exception) -> None:
        text = redact_url(str(exc)) or type(exc).__name__
        if on_error is not None:
            on_error(text)
        if closing():
            return
        now = time.monotonic()
        if now - said["at"] < _REMIND_EVERY:
            said["quiet"] += 1
            return
        more = f" ({said['quiet']} more such errors since the last line)" if said["quiet"] else ""
        log.warning("%s: %s%s", target.url, text, more)
        said["at"], said["quiet"] = now, 0

    async def on_disconnect() -> None:
        if not closing():
            log.warning("%s: disconnected from the NATS cluster; reconnecting", target.url)

    async def on_reconnect() -> None:
        log.warning("%s: reconnected to the NATS cluster", target.url)
        said["at"], said["quiet"] = -_REMIND_EVERY, 0  # the next outage is said at once

    options: dict[str, Any] = {
        "servers": list(target.servers),
        "name": name,
        "connect_timeout": target.timeout,
        "max_reconnect_attempts": -1,  # an edge behind a satellite link waits as long as it takes
        "reconnect_time_wait": 1.0,
        "allow_reconnect": True,
        "error_cb": error_cb,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if target.user is not None:
        options["user"], options["password"] = target.user, target.password
    if target.token is not None:
        options["token"] = target.token
    if target.nkey is not None:
        options["nkeys_seed"] = str(target.nkey)
    if target.creds is not None:
        options["user_credentials"] = str(target.creds)
    if target.tls:
        options["tls"] = _ssl_context(target)
    try:
        return await nats.connect(**options)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        reason = type(exc).__name__ if not str(exc) else redact_url(str(exc))
        raise ConnectError(f"{target.url}: cannot reach the NATS cluster ({reason})") from exc


async def ensure_stream(js: JetStreamContext, target: JetStreamTarget) -> None:
    """Create the stream when missing; check an existing one covers our subject and keeps files.

    Differences in limits (replicas, bounds, window) are logged, not changed: the stream is shared
    by every edge and worker, so no one process's settings may rewrite it.
    """
    import nats.js.errors
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    try:
        info = await js.stream_info(target.stream)
    except nats.js.errors.NotFoundError:
        config = StreamConfig(
            name=target.stream,
            subjects=target.stream_subjects,
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=target.replicas,
            max_bytes=target.max_bytes,
            max_age=target.max_age,
            duplicate_window=target.duplicate_window,
            discard=DiscardPolicy.NEW,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            # Another edge or worker created it meanwhile (same name): check that one instead.
            code = getattr(exc, "err_code", None)
            if code == _NO_PLACEMENT:
                raise ConnectError(
                    f"{target.url}: cannot create stream {target.stream}: {exc} (fewer JetStream nodes "
                    f"running than replicas={target.replicas}, or less JetStream storage left on them than "
                    f"max_bytes={target.max_bytes:,}: lower max_bytes or give the nodes more max_file_store)"
                ) from exc
            if code != _STREAM_EXISTS:
                raise ConnectError(f"{target.url}: cannot create stream {target.stream}: {exc}") from exc
        else:
            log.info(
                "created stream %s (subjects %s, %d replicas, max %d bytes)",
                target.stream,
                ", ".join(target.stream_subjects),
                target.replicas,
                target.max_bytes,
            )
            return
        info = await js.stream_info(target.stream)
    config = info.config
    subjects = config.subjects or []
    if not any(_covers(pattern, target.covered_subject) for pattern in subjects):
        raise ConnectError(
            f"{target.url}: stream {target.stream} takes subjects {subjects}, not {target.covered_subject!r}"
        )
    if config.storage is not None and config.storage != StorageType.FILE:
        raise ConnectError(f"{target.url}: stream {target.stream} keeps messages in memory, not in files")
    wanted = {
        "num_replicas": target.replicas,
        "max_bytes": target.max_bytes,
        "duplicate_window": target.duplicate_window,
    }
    for name, value in wanted.items():
        have = getattr(config, name)
        if have is not None and float(have) != float(value):
            log.info(
                "stream %s has %s=%s (this process would create it with %s)", target.stream, name, have, value
            )


def _covers(pattern: str, subject: str) -> bool:
    """True when the stream subject ``pattern`` takes every subject ``subject`` names."""
    want = subject.split(".")
    have = pattern.split(".")
    for i, part in enumerate(have):
        if part == ">":
            return len(want) > i
        if i >= len(want) or (part != "*" and part != want[i]) or (part == "*" and want[i] == ">"):
            return False
    return len(want) == len(have)
