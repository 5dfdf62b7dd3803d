"""The untrusted-frame policy is the protocol's one frame check plus named limits (issue 11, item 5):
whatever ``witskit validate`` refuses, ``SecureWITSFrame`` refuses too, and the size limit is the
one in ``protocol/limits.py``."""

from __future__ import annotations

import pytest

from witskit.protocol import check_wits_frame, validate_wits_frame
from witskit.protocol.limits import DEFAULT_MAX_FRAME_BYTES, UNTRUSTED_MAX_FRAME_BYTES
from witskit.security.validation import MAX_FRAME_BYTES, SecureWITSFrame, validate_frame_text


@pytest.mark.parametrize(
    "frame",
    [
        "&&\n99991\n!!",  # an unknown code
        "&&\n01031.5\n!!",  # a decimal in an integer item
        "&&\n!!",  # no data lines
        "&&\n0108 1\n!!\n&&\n0108 2\n!!",  # two frames
    ],
)
def test_what_validate_refuses_the_untrusted_policy_refuses(frame: str) -> None:
    assert not validate_wits_frame(frame)
    with pytest.raises(ValueError, match="Invalid"):
        validate_frame_text(frame)


def test_the_untrusted_limit_is_the_named_one_and_smaller_than_the_stream_limit() -> None:
    assert MAX_FRAME_BYTES == UNTRUSTED_MAX_FRAME_BYTES < DEFAULT_MAX_FRAME_BYTES
    frame = "&&\n" + "0108123.45\n" * 1000 + "!!"
    assert validate_wits_frame(frame)  # a trusted stream takes it
    with pytest.raises(ValueError, match=f"> {UNTRUSTED_MAX_FRAME_BYTES}"):
        SecureWITSFrame(raw_data=frame)


def test_the_check_names_the_line_and_returns_the_decoded_frame() -> None:
    with pytest.raises(ValueError, match=r"'0108x' \(line 3: 0108 DBTM needs a number\)"):
        check_wits_frame("\n&&\n0108x\n!!", untrusted=True)
    assert check_wits_frame("&&\n01083650.40\n!!", untrusted=True).values == [3650.4]


@pytest.mark.parametrize(
    "frame", [b"&&\n" + b"0108123.45\n" * 1000 + b"!!", "&&\n" + "0101\u00e9" * 1800 + "\n!!"]
)
def test_the_size_is_checked_first_for_text_and_bytes(frame: str | bytes) -> None:
    with pytest.raises(ValueError, match=r"exceeds maximum size \(\d+ bytes > 10000\)"):
        check_wits_frame(frame, untrusted=True)
