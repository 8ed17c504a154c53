"""Whether a refresh request was served already, e.g. by an earlier process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from delegated_aws.schedule import request_served

LAST = datetime(2026, 12, 3, 12, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "served"),
    [
        pytest.param("2026-12-03T11:59:59Z", True, id="before the last refresh"),
        pytest.param(
            "2026-12-03T12:00:00.400000Z", True, id="just before, same second"
        ),
        pytest.param(
            "2026-12-03T12:00:00.700000Z", False, id="just after, same second"
        ),
        pytest.param("2026-12-03T12:00:00Z", True, id="whole seconds, earlier"),
        pytest.param("2026-12-03T12:00:01Z", False, id="after the last refresh"),
        pytest.param("2026-12-03T12:00:00", True, id="no zone reads as UTC"),
        pytest.param("2026-12-03T13:00:00+01:00", True, id="another zone"),
        pytest.param("now please", False, id="not a time: a new request"),
    ],
)
def test_request_served(requested: str, served: bool) -> None:
    assert request_served(requested, last=LAST) is served
