"""Reading back what an earlier run wrote to status."""

from __future__ import annotations

from delegated_aws.models import parse_status


def test_a_broken_status_field_does_not_cost_the_external_id() -> None:
    found = parse_status(
        {"externalId": "kept-id", "credentials": {"sessionDuration": "junk"}}
    )

    assert found.external_id == "kept-id"
    assert found.credentials is None
