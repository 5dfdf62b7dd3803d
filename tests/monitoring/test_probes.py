"""The probe server of processes without the API (a fleet's worker): real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio

from witskit.monitoring.probes import MAX_REQUEST_BYTES, ProbeServer, render_metrics


async def _get(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_the_three_paths_and_nothing_else() -> None:
    state = {"ready": True}
    server = ProbeServer(
        "127.0.0.1",
        0,
        ready=lambda: (
            state["ready"],
            {"broker": "ok" if state["ready"] else "failing for 31 s (not ready)"},
        ),
        metrics=lambda: render_metrics([("witskit_x_total", "counter", "Things", {"worker": 'w"1'}, 3)]),
    )
    await server.start()
    try:
        assert await _get(server.port, b"GET /livez HTTP/1.1\r\n\r\n") == (200, b'{"status":"alive"}\n')
        status, body = await _get(server.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert b'"ready"' in body
        state["ready"] = False
        status, body = await _get(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert status == 503
        assert b"not ready" in body
        status, body = await _get(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200
        assert body == (
            b"# HELP witskit_x_total Things\n# TYPE witskit_x_total counter\n"
            b'witskit_x_total{worker="w\\"1"} 3\n'
        )
        assert (await _get(server.port, b"GET /admin HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await _get(server.port, b"POST /readyz HTTP/1.1\r\n\r\n"))[0] == 405
        huge = b"GET /livez HTTP/1.1\r\nX: " + b"a" * (2 * MAX_REQUEST_BYTES) + b"\r\n\r\n"
        assert (await _get(server.port, huge))[0] == 431
    finally:
        await server.aclose()
