"""Shared pytest fixtures.

Real data lives in ``../shared/data`` beside the repository; tests that need
it use the ``shared_data`` fixture and skip cleanly when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available ({SHARED_DATA} is missing)")
    return SHARED_DATA
