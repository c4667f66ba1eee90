"""Prefect for the integration tests that run flows (batch, research): its state in a private directory, and one
test harness for the session."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Prefect reads its settings once, at import: its state goes to a private directory before anything imports it.
if "PREFECT_HOME" not in os.environ:
    _prefect_home = tempfile.mkdtemp(prefix="tradeos-test-prefect-")
    os.environ["PREFECT_HOME"] = _prefect_home
    atexit.register(functools.partial(shutil.rmtree, _prefect_home, ignore_errors=True))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test API for the session (its start-up costs several seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
