"""RBAC table and decorator, the validation policy, and redaction of secrets in logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
import structlog

from witskit.security.logging import REDACTED, SecureLogger, configure_logging, redact_text
from witskit.security.rbac import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    current_roles,
    permissions_for,
    require_permission,
)
from witskit.security.validation import SecureWITSDecoder, SecureWITSFrame


def test_role_table_is_the_plans() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.READ_DATA, Permission.VIEW_ANALYTICS}
    assert ROLE_PERMISSIONS[Role.OPERATOR] == {
        Permission.READ_DATA,
        Permission.WRITE_DATA,
        Permission.VIEW_ANALYTICS,
        Permission.ACK_ALARMS,  # operators acknowledge alarms, never change the rules
    }
    assert Permission.ADMIN_USERS not in ROLE_PERMISSIONS[Role.ADMIN]
    assert {Permission.ACK_ALARMS, Permission.MANAGE_ALARMS} <= ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.MANAGE_CONNECTIONS in ROLE_PERMISSIONS[Role.ADMIN]
    assert ROLE_PERMISSIONS[Role.SUPER_ADMIN] == set(Permission)
    assert permissions_for(["viewer", "made-up-role"]) == ROLE_PERMISSIONS[Role.VIEWER]


def test_require_permission_sync_and_async() -> None:
    @require_permission(Permission.ADMIN_USERS)
    def add_user() -> str:
        return "added"

    @require_permission(Permission.READ_DATA)
    async def read() -> str:
        return "data"

    with pytest.raises(PermissionError, match="Permission users:admin required"):
        add_user()
    with current_roles(["admin"]), pytest.raises(PermissionError):
        add_user()
    with current_roles(["super_admin"]):
        assert add_user() == "added"
    with current_roles(["viewer"]):
        assert asyncio.run(read()) == "data"
    with pytest.raises(PermissionError, match="data:read"):
        asyncio.run(read())


def test_ascii_items_pass_validation() -> None:
    frame = "&&\n1984PASON/EDR\n0101Well #7 (ST01)\n01083650.40\n0108-9999\n!!"
    assert SecureWITSFrame(raw_data=frame).lines[0] == b"1984PASON/EDR"
    decoded = SecureWITSDecoder().decode_frame(frame)
    assert decoded.values[:2] == ["PASON/EDR", "Well #7 (ST01)"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("&&\n0108\x001.0\n!!", "invalid characters"),
        ("&&\n0108 1.0\n", "structure"),
        ("0108 1.0\n!!", "structure"),
        ("&&\nABCD1.0\n!!", "no 4-digit code"),
        ("&&\n0120twelve\n!!", "0120 RPMA needs a number"),
        ("&&\n0108caf\u00e9\n!!", "invalid characters"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(frame: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SecureWITSFrame(raw_data=frame)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connecting to postgresql://wits:hunter2@db:5432/w", "hunter2"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("password=swordfish; host=x", "swordfish"),
        ("api_key: 'k-123-secret'", "k-123-secret"),
        ("key wk_AbCdEfGhIjKlMnOpQrStUv leaked", "wk_AbCdEfGhIjKlMnOpQrStUv"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-nature_1", "eyJzdWIiOiJ4In0"),
    ],
)
def test_redact_text_masks_secrets(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_secure_logger_keeps_the_plans_interface() -> None:
    log = SecureLogger()
    clean = log.sanitize_data({"password": "x", "db": "mysql://u:pw123@h/d", "rows": 5, "api_key": "k"})
    assert clean == {"password": REDACTED, "db": "mysql://u:***@h/d", "rows": 5, "api_key": REDACTED}
    assert (
        log._mask_credentials("password=abc;key=def;secret=ghi;x=1") == "password=***;key=***;secret=***;x=1"
    )


def test_configured_logs_never_carry_secrets_even_in_exceptions() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        structlog.get_logger("t").info(
            "login", username="ann", password="pa55word", url="redis://:tok3n@r:6379"
        )
        try:
            raise ConnectionError("could not connect to postgresql://wits:hunter2@db/w")
        except ConnectionError:
            logging.getLogger("sqlalchemy").exception("database error")
        SecureLogger("t").error("failed", token="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc")
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers if h.get_name() != "witskit"]
        structlog.reset_defaults()
    text = stream.getvalue()
    for secret in ("pa55word", "tok3n", "hunter2", "eyJzdWIiOiJ4In0"):
        assert secret not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["password"] == REDACTED
    assert "postgresql://wits:***@db/w" in records[1]["exception"]
