"""When an access token runs out, judged by the server's clock rather than ours.

A laptop's clock may be minutes off. GoTrue stamps every token it issues with
``iat`` (its own time) and ``exp``; a token received just now tells how far our
clock is from the server's (``iat`` minus our time), and that offset, not our
raw clock, says whether a token is about to expire; and a token received less
than a second ago is never taken for expiring, so a clock that is off can
cause an early refresh, never a loop.
Tokens are read without checking their signature: only the server decides
whether they are valid.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

EXPIRY_MARGIN = 10.0
"""Seconds before ``exp`` at which a token counts as expiring (less for short-lived ones)."""
FRESH_FLOOR = 1.0
"""Seconds after receiving a token during which it is never refreshed on the clock's word."""


@dataclass(frozen=True, slots=True)
class TokenTimes:
    issued_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return max(0.0, self.expires_at - self.issued_at)

    @property
    def margin(self) -> float:
        return EXPIRY_MARGIN if self.lifetime > EXPIRY_MARGIN else self.lifetime / 4


def token_times(authorization: str) -> TokenTimes | None:
    """``iat`` and ``exp`` of a ``Bearer <jwt>`` header (or a bare JWT); None if unreadable."""
    token = authorization.removeprefix("Bearer ").strip()
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
        exp = float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    iat = claims.get("iat")
    return TokenTimes(float(iat) if isinstance(iat, int | float) else exp, exp)


class TokenClock:
    """Our estimate of the server's time, and what it says about tokens."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.offset = 0.0
        """Seconds to add to our clock to get the server's (learned from fresh tokens)."""
        self._fresh: str | None = None
        self._fresh_at = 0.0

    def server_now(self) -> float:
        return self._clock() + self.offset

    def learn(self, authorization: str) -> None:
        """``authorization`` was issued just now: take the server's time from it."""
        times = token_times(authorization)
        if times is None:
            return
        self.offset = times.issued_at - self._clock()
        self._fresh, self._fresh_at = authorization, time.monotonic()

    def is_fresh(self, authorization: str) -> bool:
        """Received less than FRESH_FLOOR ago (by a clock that cannot be off)."""
        return authorization == self._fresh and time.monotonic() - self._fresh_at < FRESH_FLOOR

    def seconds_to_refresh(self, authorization: str) -> float | None:
        """Seconds until the token enters its expiry margin (<= 0: now); None: never."""
        times = token_times(authorization)
        if times is None:
            return None
        left = times.expires_at - self.server_now() - times.margin
        if self.is_fresh(authorization):
            left = max(left, FRESH_FLOOR - (time.monotonic() - self._fresh_at))
        return left

    def is_expiring(self, authorization: str) -> bool:
        """The token has expired, or will within its margin, by the server's clock."""
        left = self.seconds_to_refresh(authorization)
        return left is not None and left <= 0
