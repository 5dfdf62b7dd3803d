"""The strict frame policy accepts the vendor header lines the decoder knows, and nothing else
without a code (issue 10: a Pason serial feed sends ``EDR PASON`` in every frame)."""

from __future__ import annotations

import pytest

from witskit.security.validation import SecureWITSDecoder, validate_frame_text


def test_pason_header_line_passes_the_strict_policy() -> None:
    validate_frame_text("&&\r\nEDR PASON\r\n01083650.40\r\n!!")
    df = SecureWITSDecoder().decode_frame("&&\nEDR PASON\n01083650.40\n!!")
    assert df.headers == ("EDR PASON",)
    assert df.values == [3650.4]


@pytest.mark.parametrize("line", ["hello world", "EDR PASON X", "EDR PASON&&"])
def test_other_lines_without_a_code_are_still_refused(line: str) -> None:
    with pytest.raises(ValueError, match="no 4-digit code"):
        validate_frame_text(f"&&\n{line}\n01081\n!!")
