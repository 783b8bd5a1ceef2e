"""Each content class gets the stale directives that fit it; takedown stays within R9's bound."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imgcore import Policy
from imgcore.policy import TAKEDOWN_BOUND_SECONDS, CacheTtls
from imgcore.responses import cache_control


def test_standard_content_may_be_served_stale() -> None:
    assert cache_control("img") == (
        "public, max-age=31536000, immutable, stale-while-revalidate=86400, stale-if-error=604800"
    )


def test_takedown_content_gets_no_stale_window_by_default() -> None:
    assert cache_control("ugc") == "public, max-age=60"


def test_a_takedown_stale_window_is_only_stale_if_error_and_fits_the_bound() -> None:
    policy = Policy(ttl=CacheTtls(takedown=40, takedown_stale_if_error=20))
    assert cache_control("ugc", policy) == "public, max-age=40, stale-if-error=20"
    with pytest.raises(ValidationError, match="at most 60 s after a takedown"):
        CacheTtls(takedown=60, takedown_stale_if_error=1)
    assert TAKEDOWN_BOUND_SECONDS == 60


def test_zero_windows_leave_the_directives_out() -> None:
    policy = Policy(ttl=CacheTtls(immutable_stale_while_revalidate=0, immutable_stale_if_error=0))
    assert cache_control("img", policy) == "public, max-age=31536000, immutable"
