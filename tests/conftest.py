"""Shared pytest configuration: registers the fixture plugins of the test suite."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.operator"]
