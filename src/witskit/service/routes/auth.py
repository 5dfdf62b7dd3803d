"""``/api/v1/auth``: the OAuth2 password flow, token refresh, logout, and the caller's own account."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from witskit.security.auth import AuthError
from witskit.security.credentials import PasswordAttempt
from witskit.service.deps import Context, CurrentPrincipal, authenticated, client_address, public
from witskit.service.identity import LoginRefused, LoginThrottled, TokenPair

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenResponse(BaseModel):
    """Tokens: a short-lived access token and a refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds the access token is valid for")

    @classmethod
    def of(cls, pair: TokenPair) -> TokenResponse:
        """From a :class:`TokenPair`."""
        return cls(
            access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
        )


class RefreshRequest(BaseModel):
    """A refresh token (to exchange, or whose session to end)."""

    refresh_token: str = Field(min_length=1, max_length=4096)


class PasswordChange(BaseModel):
    """A user's own password change."""

    current_password: PasswordAttempt
    # The rule for a new password is checked after the current password (a 400, not a 422).
    new_password: PasswordAttempt


class Me(BaseModel):
    """The caller."""

    name: str
    kind: Literal["user", "api_key"]
    roles: list[str]
    permissions: list[str]


def _too_many(exc: LoginThrottled, detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail,
        headers={"Retry-After": str(max(int(exc.retry_after + 0.999), 1))},
    )


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Log in (OAuth2 password flow)",
    **public(
        responses={
            401: {"description": "Wrong user name or password"},
            429: {"description": "Too many failures"},
        }
    ),
)
async def token(
    request: Request, context: Context, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenResponse:
    """Exchange a user name and password for an access token and a refresh token.

    Failures are throttled per user name and per address (429 with ``Retry-After``) and audited.
    """
    try:
        pair = await context.identity.login(form.username, form.password, client_address(request))
    except LoginThrottled as exc:
        raise _too_many(exc, "too many failed logins; try again later") from None
    except LoginRefused as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    return TokenResponse.of(pair)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for new tokens",
    **public(responses={401: {"description": "Invalid, expired or revoked refresh token"}}),
)
async def refresh(request: Request, context: Context, body: RefreshRequest) -> TokenResponse:
    """A new access token and refresh token for a valid refresh token of an active user.

    A refresh token works once: the one sent is spent, and the new one continues the session.
    Presenting a spent token again ends the whole session (both parties must sign in again).
    """
    try:
        pair = await context.identity.refresh(body.refresh_token, client_address(request))
    except AuthError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired refresh token",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    return TokenResponse.of(pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Log out: end the session of a refresh token",
    **public(),
)
async def logout(request: Request, context: Context, body: RefreshRequest) -> None:
    """Revoke the session (the refresh token's whole family of rotations): none of its refresh
    tokens works any more. Access tokens already issued stay valid until they expire (15 minutes).

    Always 204, whatever the token: logging out twice, or with an expired, unknown or malformed
    token, changes nothing and says nothing about whether the token existed. Audited.
    """
    await context.identity.logout(body.refresh_token, client_address(request))


@router.get("/me", response_model=Me, summary="Who am I", **authenticated())
async def me(principal: CurrentPrincipal) -> Me:
    """The caller's name, kind, roles and the permissions they grant."""
    return Me(
        name=principal.name,
        kind=principal.kind,
        roles=list(principal.roles),
        permissions=sorted(p.value for p in principal.permissions),
    )


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password",
    **authenticated(
        responses={
            400: {"description": "Not a user, a wrong current password, or a bad new password"},
            429: {"description": "Too many wrong current passwords (the login throttle)"},
        }
    ),
)
async def change_password(
    request: Request, context: Context, principal: CurrentPrincipal, body: PasswordChange
) -> None:
    """Change the caller's own password (the current one is checked); existing tokens are revoked.

    Wrong current passwords count against the login throttle of the user's name and address (429
    with ``Retry-After`` when over it), exactly as wrong passwords at login do.
    """
    if principal.kind != "user":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "API keys have no password")
    try:
        await context.identity.change_own_password(
            principal.name, body.current_password, body.new_password, client_address(request)
        )
    except LoginThrottled as exc:
        raise _too_many(exc, "too many wrong passwords; try again later") from None
    except LoginRefused as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
