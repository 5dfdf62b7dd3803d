"""Compound names are secrets too: ``key_password=...``, ``"db_secret": ...``, ``X-API-Key: ...``.

The redactor matched only whole words, so ``key_password=hunter2`` in a URL went through to a 422,
the audit log and the logs. Any name that *contains* password, secret, token, key, credential or
private is masked, except a few known harmless names (``keys``, ``key_id``, ``token_type``).
"""

from __future__ import annotations

import pytest

from witskit.security.logging import (
    REDACTED,
    SecureLogger,
    is_sensitive_name,
    redact_text,
    redact_validation_errors,
)

SECRET = "hunter2-Xq9"


@pytest.mark.parametrize(
    "text",
    [
        f"tls://rig:5000?key_password={SECRET}&ca=/etc/ca.pem",
        f"key_password={SECRET}",
        f"KEY_PASSWORD: {SECRET}",
        f'{{"key_password": "{SECRET}", "keys": 5}}',
        f"db-secret={SECRET}",
        f"X-API-Key: {SECRET}",
        f"private_key='{SECRET}'",
        f"refresh_token={SECRET}",
        f'client_secret: "{SECRET} more"',
    ],
)
def test_compound_names_are_masked_in_text(text: str) -> None:
    assert SECRET not in redact_text(text)


def test_harmless_names_and_the_rest_of_the_text_are_kept() -> None:
    text = f"keys=5 key_id=k1a2b3 ca=/etc/ca.pem name=rig-7 key_password={SECRET}&x=1 token_type=bearer"
    kept = "keys=5 key_id=k1a2b3 ca=/etc/ca.pem name=rig-7 key_password=***&x=1 token_type=bearer"
    assert redact_text(text) == kept


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("key_password", True),
        ("db_secret", True),
        ("x-api-key", True),
        ("signing_key", True),
        ("refresh_token", True),
        ("keys", False),
        ("key_id", False),
        ("token_type", False),
        ("name", False),
    ],
)
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive
    assert (SecureLogger().sanitize_data({name: SECRET})[name] == REDACTED) is sensitive


def test_validation_errors_hide_the_input_of_sensitive_fields() -> None:
    errors = [
        {
            "type": "string_too_short",
            "loc": ("body", "password"),
            "msg": "short",
            "input": SECRET,
            "ctx": {"min_length": 12},
        },
        {"type": "string_type", "loc": ("body", "options", "key_password"), "msg": "bad", "input": 5},
        {
            "type": "value_error",
            "loc": ("body", "url"),
            "msg": "bad",
            "input": f"tls://h:1?key_password={SECRET}",
        },
        {"type": "dict_type", "loc": ("body",), "msg": "bad", "input": {"new_password": SECRET, "name": "x"}},
        {"type": "missing", "loc": ("body", "name"), "msg": "missing", "input": "rig-7"},
    ]
    clean = redact_validation_errors(errors)
    assert SECRET not in repr(clean)
    assert clean[0]["input"] == REDACTED
    assert clean[0]["ctx"] == {"min_length": 12}
    assert clean[1]["input"] == REDACTED
    assert clean[3]["input"] == {"new_password": REDACTED, "name": "x"}
    assert clean[4]["input"] == "rig-7"


@pytest.mark.parametrize("unit", ["a", "tokentoken", "a.b-c_", "key=", "a://", "a://b:", '"k":', "Bearer "])
def test_redaction_takes_linear_time(unit: str) -> None:
    """Every log line is redacted on the event loop: a long path or message must not cost
    quadratic time (a 16 KiB run of letters took a second). Ten times the text, at most ~30 times
    the time (quadratic would be ~100), best of three runs each."""
    import time

    def cost(size: int) -> float:
        text = unit * (size // len(unit))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            redact_text(text)
            best = min(best, time.perf_counter() - t0)
        return best

    small, big = cost(20_000), cost(200_000)
    assert big < 30 * small + 0.02, f"{unit!r}: {small:.4f} s for 20 kB, {big:.4f} s for 200 kB"


@pytest.mark.parametrize(
    "text",
    [
        "database error in POST /api/v1/auth/token: could not update the login throttle",
        "database error in GET /api/v1/api-keys: could not read the API keys",
    ],
)
def test_a_path_ending_in_a_sensitive_word_is_not_a_name(text: str) -> None:
    # The word after "/auth/token:" is the start of the reason, not a token: masking it hid the
    # reason of every database error on the auth routes ("*** not update ...").
    assert redact_text(text) == text
