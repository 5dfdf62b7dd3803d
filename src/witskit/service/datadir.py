"""The data directory, and the JWT signing key kept in it.

The signing key is ``WITS_JWT_SECRET`` when set (at least 32 bytes, or the start fails), else a
random 48-byte key generated once and kept in ``<data_dir>/jwt_secret`` (mode 0600), so tokens
survive restarts. ``witskit run``, ``witskit serve`` and ``witskit users`` share both.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final

from witskit.config import ConfigError, WitsConfig
from witskit.security.auth import check_signing_key

__all__ = ["SECRET_FILE", "ensure_data_dir", "resolve_signing_key"]

log = logging.getLogger("witskit.service")

#: Name of the generated key file in the data directory.
SECRET_FILE: Final = "jwt_secret"  # noqa: S105 - a file name


def resolve_signing_key(config: WitsConfig) -> bytes:
    """``WITS_JWT_SECRET`` (checked: >= 32 bytes), or the key kept in ``<data_dir>/jwt_secret``.

    The file is created on first use with a random 48-byte key, readable by the owner only; a file
    that others can read is tightened with a warning. Raises :class:`ConfigError`.
    """
    if config.jwt_secret is not None:
        return check_signing_key(config.jwt_secret)
    path = Path(config.data_dir) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(48) + "\n")  # 48 random bytes, 64 characters
                fh.flush()
                os.fsync(fh.fileno())
            log.info("generated a JWT signing key in %s", path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
            path.chmod(0o600)
        key = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot keep the JWT signing key in {path}: {exc.strerror or exc}") from None
    try:
        return check_signing_key(key)
    except ConfigError:
        raise ConfigError(
            f"{path} holds a key shorter than 32 bytes: delete it to generate a new one, "
            "or set WITS_JWT_SECRET"
        ) from None


def ensure_data_dir(config: WitsConfig) -> None:
    """Create the data directory (owner-only) when the default SQLite database lives there."""
    if config.database_url is None:
        try:
            Path(config.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data directory {config.data_dir}: {exc.strerror or exc}"
            ) from None
