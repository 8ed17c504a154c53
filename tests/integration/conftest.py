"""Integration tests: everything under tests/integration is marked ``integration``."""

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # Before the guard in tests.fixtures.cluster.
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Called with every collected item, not only those below this directory.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)
