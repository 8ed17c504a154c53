"""The README's troubleshooting table covers every reason a person may meet."""

from __future__ import annotations

import re
from pathlib import Path

from delegated_aws.messages import Reason as R

README = Path(__file__).resolve().parents[2] / "README.md"

# Reasons of things going well, or about to: nothing to troubleshoot.
PROGRESS = {
    R.ROLE_ASSUMED,
    R.EXTERNAL_ID_ENFORCED,
    R.SECRET_WRITTEN,
    R.READY,
    R.ACCESS_VERIFIED,
    R.ACCESS_CHECKS_DISABLED,
    R.PENDING,
}


def _troubleshooting_reasons() -> set[str]:
    text = README.read_text()
    table = text[text.index("| reason | on | what to do |") :]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_every_reason_that_needs_a_fix_has_a_row() -> None:
    needing_a_fix = {r.value for r in R if r not in PROGRESS}
    assert needing_a_fix - _troubleshooting_reasons() == set()


def test_the_table_names_only_real_reasons() -> None:
    assert _troubleshooting_reasons() - {r.value for r in R} == set()
