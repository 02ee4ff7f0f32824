"""API tokens nobody has (unknown, or revoked): each one recorded in the login trail, at most
``TOKEN_FAILURE_RATE_LIMIT`` per client address (default 10 a minute and 100 an hour). Beyond that the address
is answered 429 with Retry-After, and nothing more is recorded until its window ends — so a guesser, or a
pipeline left with a revoked token, neither fills the trail nor gets more tries.

Counted with the app's rate limiter (registry.library.concern_views.init_rate_limits: memory, or the shared
RATELIMIT_STORAGE_URL). When that storage cannot be reached the token is refused 401 unrecorded; with rate limits
turned off (``RATELIMIT_ENABLED=false``) every one is recorded.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NoReturn

from flask import current_app
from limits import parse_many

from registry.accounts import trail
from registry.accounts.models import LoginOutcome
from registry.errors import TooManyRequests, Unauthenticated
from registry.request_db import db

log = logging.getLogger(__name__)
_SCOPE = "bad_api_token"


def refuse(client: trail.Client) -> NoReturn:
    """Refuse a request that sent an unknown token: 401, recorded in the trail; 429 when its address is over
    the limit (see the module's docstring)."""
    wait = _over_limit(client.address or "unknown")
    if wait is not None:
        raise TooManyRequests(
            f"Too many unknown API tokens from your address. Try again in {wait} seconds.",
            code="too_many_bad_tokens",
            extra={"retry_after": wait},
        )
    session = db()
    session.rollback()
    trail.record(session=session, outcome=LoginOutcome.BAD_TOKEN, username="", client=client)
    session.commit()
    raise Unauthenticated("The API token is unknown or revoked.", code="bad_token")


def _over_limit(address: str) -> int | None:
    """Count this refusal for ``address``; the seconds until it may try again when it is over a limit, else None."""
    limiter = current_app.extensions.get("registry_limiter")
    if limiter is None or not limiter.enabled:
        return None
    for item in parse_many(current_app.config["TOKEN_FAILURE_RATE_LIMIT"]):
        try:
            if not limiter.limiter.hit(item, _SCOPE, address):
                reset = limiter.limiter.get_window_stats(item, _SCOPE, address).reset_time
                return max(1, math.ceil(reset - time.time()))
        except Exception:  # noqa: BLE001 - the limiter's storage is away: refuse, but record nothing
            log.warning("rate limit storage unavailable: an unknown API token from %s is not recorded", address)
            raise Unauthenticated("The API token is unknown or revoked.", code="bad_token") from None
    return None
