"""What a user name and a password may be: one rule for every way an account is made or changed.

The API's request bodies (:data:`Username`, :data:`Password`, :data:`PasswordAttempt`), the
``witskit users`` commands and the account store (:func:`check_username`, :func:`check_password`)
all apply the rules defined here, so a name or a password one of them takes, the others take too.

A user name is 1-64 characters (the ``users.username`` column): ASCII letters, digits and
``_ . @ -``, starting with a letter or a digit. No space, no ``:`` (the owners of keys made on the
machine itself are named ``cli:...``), no newline (a name reaches log lines). A password is
12-1024 characters, of any kind.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field

from witskit.errors import UsageError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MAX_USERNAME_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Password",
    "PasswordAttempt",
    "Username",
    "check_password",
    "check_username",
]

#: The ``users.username`` column's width.
MAX_USERNAME_LENGTH: Final = 64
#: Long enough that a guessed password is unlikely within the login throttle's limits.
MIN_PASSWORD_LENGTH: Final = 12
#: Argon2 hashes any length, but a megabyte "password" per login attempt is a cheap denial of service.
MAX_PASSWORD_LENGTH: Final = 1024

# The characters, without anchors: Python matches it with fullmatch, and pydantic (whose Rust regex
# engine knows no "\Z") between "^" and "$", which there end at the end of the text. Python's "$"
# would also match before a final newline, and "alice\n" is not "alice".
_USERNAME_SHAPE: Final = r"[A-Za-z0-9][A-Za-z0-9_.@\-]*"
_USERNAME: Final = re.compile(_USERNAME_SHAPE)

#: A user name in a request body (checked by pydantic: a bad one is a 422).
Username = Annotated[str, Field(min_length=1, max_length=MAX_USERNAME_LENGTH, pattern=f"^{_USERNAME_SHAPE}$")]
#: A new password in a request body.
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
#: A password given to be checked against its hash: only the upper bound applies before the check.
PasswordAttempt = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


def check_username(name: str) -> str:
    """The user name, or :class:`~witskit.errors.UsageError` when it breaks the rule."""
    if not isinstance(name, str) or len(name) > MAX_USERNAME_LENGTH or not _USERNAME.fullmatch(name):
        raise UsageError(
            f"a user name is 1-{MAX_USERNAME_LENGTH} characters: letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """The password, or :class:`~witskit.errors.UsageError` when it is too short or too long."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"a password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"a password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password
