"""Whether the refresh annotation asks for a refresh now.

A request served already, perhaps by an earlier process, must not be served
again after a restart; a value that can never be served asks for nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delegated_aws.schedule import refresh_request_pending

LAST = datetime(2026, 12, 3, 12, 0, 0, 500000, tzinfo=UTC)
NOW = LAST + timedelta(hours=1)


@pytest.mark.parametrize(
    ("requested", "pending"),
    [
        pytest.param("2026-12-03T11:59:59Z", False, id="before the last refresh"),
        pytest.param(
            "2026-12-03T12:00:00.400000Z", False, id="just before, same second"
        ),
        pytest.param("2026-12-03T12:00:00.700000Z", True, id="just after, same second"),
        pytest.param("2026-12-03T12:00:00Z", False, id="whole seconds, earlier"),
        pytest.param("2026-12-03T12:00:01Z", True, id="after the last refresh"),
        pytest.param("2026-12-03T12:00:00", False, id="no zone reads as UTC"),
        pytest.param("2026-12-03T13:00:00+01:00", False, id="another zone"),
        pytest.param("2026-12-03T13:00:00.500000Z", True, id="exactly now"),
        pytest.param("2026-12-03T13:04:00Z", True, id="a requester's clock ahead"),
        pytest.param("2026-12-03T13:06:00Z", False, id="far in the future: not yet"),
        pytest.param("now please", False, id="not a time: no request"),
    ],
)
def test_refresh_request_pending(requested: str, pending: bool) -> None:
    assert refresh_request_pending(requested, last_refresh=LAST, now=NOW) is pending


def test_any_past_time_is_pending_before_a_first_refresh() -> None:
    assert refresh_request_pending("2020-01-01T00:00:00Z", last_refresh=None, now=NOW)
