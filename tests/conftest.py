"""Shared test fixtures: the real datasets folder (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
