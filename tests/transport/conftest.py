"""Transport test fixtures: a leak detector, a trustme PKI, and a scriptable EDR server (``support.edr``).

Every transport test runs on real sockets on 127.0.0.1 (port 0) and real TLS; nothing is mocked.
The autouse ``_no_leaks`` fixture fails any test that leaves an asyncio task running, a socket open
or a thread alive, so a transport that forgets to close something cannot pass.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from support.edr import PKI, EDRServer, Script
from support.leaks import _async_no_leaks, _no_leaks  # noqa: F401  (the leak check of every test here)


# PKI ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A trustme PKI written to PEM files (session-wide: key generation is the slow part)."""
    root = tmp_path_factory.mktemp("pki")
    ca, client_ca, rogue_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = client_ca.issue_cert("rig-7.example")
    rogue = rogue_ca.issue_cert("localhost", "127.0.0.1")
    files = {name: root / f"{name}.pem" for name in PKI.__dataclass_fields__}
    ca.cert_pem.write_to_path(files["ca_file"])
    client_ca.cert_pem.write_to_path(files["client_ca_file"])
    rogue_ca.cert_pem.write_to_path(files["rogue_ca_file"])
    for prefix, issued in (("server", server), ("client", client), ("rogue", rogue)):
        for i, blob in enumerate(issued.cert_chain_pems):
            blob.write_to_path(files[f"{prefix}_cert"], append=i > 0)
        issued.private_key_pem.write_to_path(files[f"{prefix}_key"])
    return PKI(**files)


@pytest.fixture
async def edr() -> AsyncIterator[Callable[..., Awaitable[EDRServer]]]:
    """Start scripted EDR servers: ``server = await edr(script1, script2, ssl_context=...)``."""
    servers: list[EDRServer] = []

    async def start(*scripts: Script, ssl_context: ssl.SSLContext | None = None) -> EDRServer:
        server = await EDRServer(*scripts, ssl_context=ssl_context).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose()
