"""Who keeps a contested External ID (F05, and the confused deputy)."""

from __future__ import annotations

from typing import Any

from delegated_aws.extid import ExternalIdIndex


def _body(
    name: str, *, age: int, pinned: str | None = None, status: str | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": f"2029-01-01T00:00:{age:02d}Z",
        },
        "spec": {"externalId": pinned} if pinned else {},
        "status": {"externalId": status} if status else {},
    }


def test_a_generated_id_stays_with_its_resource_even_against_an_older_one() -> None:
    index = ExternalIdIndex()
    victim = _body("victim", age=5, status="generated-for-victim")
    thief = _body("thief", age=1, pinned="generated-for-victim")
    index.observe(victim)
    index.observe(thief)

    assert index.holder_other_than("generated-for-victim", thief) == "ns/victim"
    assert index.holder_other_than("generated-for-victim", victim) is None


def test_between_two_pins_the_older_resource_keeps_the_id() -> None:
    index = ExternalIdIndex()
    older = _body("older", age=1, pinned="shared", status="shared")
    younger = _body("younger", age=2, pinned="shared")
    index.observe(older)
    index.observe(younger)

    assert index.holder_other_than("shared", younger) == "ns/older"
    assert index.holder_other_than("shared", older) is None


def test_a_forgotten_resource_releases_its_id() -> None:
    index = ExternalIdIndex()
    gone = _body("gone", age=1, status="freed")
    index.observe(gone)
    index.forget(gone)

    assert (
        index.holder_other_than("freed", _body("next", age=2, pinned="freed")) is None
    )


def test_a_pinned_id_in_status_is_not_taken_for_a_generated_one() -> None:
    index = ExternalIdIndex()
    pinner = _body("pinner", age=9, pinned="from-git", status="from-git")
    other = _body("other", age=1, pinned="from-git")
    index.observe(pinner)
    index.observe(other)

    # Both pinned it: the older one keeps it, as for any two pins.
    assert index.holder_other_than("from-git", pinner) == "ns/other"
