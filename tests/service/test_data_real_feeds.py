"""The API on what real rigs send (issue 10): values that do not fit their item's type, and many
frames in one DATE/TIME second, paged in the order they were received."""

from __future__ import annotations

import random
from typing import Any

from service_helpers import Running

from witskit.protocol import DecodedFrame, iter_decode


def frames_of_one_second(source: str, count: int) -> list[DecodedFrame]:
    data = b"".join(
        f"&&\r\n0105260315\r\n0106093015\r\n0108{1000 + i}.5\r\n012095.{i % 10}\r\n"
        f"01281.06\r\n!!\r\n".encode()
        for i in range(count)
    )
    return [f for f in iter_decode(data, source=source) if isinstance(f, DecodedFrame)]


async def test_data_pages_keep_the_receive_order_and_every_value(svc: Running) -> None:
    frames = frames_of_one_second("rig-5hz", 12)
    shuffled = frames[:]
    random.Random(1).shuffle(shuffled)
    for start in range(0, len(shuffled), 4):
        await svc.service.store.write(shuffled[start : start + 4])

    params: dict[str, Any] = {"source": "rig-5hz", "codes": "0108,0120,0128", "limit": 5}
    got: list[dict[str, Any]] = []
    while True:
        page = (await svc.client.get("/api/v1/data", params=params, headers=svc.auth("viewer"))).json()
        got.extend(page["rows"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [r["value"] for r in got if r["code"] == "0108"] == [1000.5 + i for i in range(12)]
    assert [r["value"] for r in got if r["code"] == "0120"] == [
        95 if i % 10 == 0 else 95 + (i % 10) / 10 for i in range(12)
    ]
    assert {r["value"] for r in got if r["code"] == "0128"} == {1.06}
    assert len(got) == 36

    latest = await svc.client.get("/api/v1/latest", params={"source": "rig-5hz"}, headers=svc.auth("viewer"))
    values = {v["code"]: v["value"] for v in latest.json()[0]["values"]}
    assert values["0108"] == 1011.5  # the frame received last of that second
    assert values["0128"] == 1.06
