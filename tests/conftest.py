"""Shared fixtures: the real data folder beside the checkout, and an isolated OncoLit environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ONCOLIT_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests that need it fail loudly (not skip) when it is missing."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(
            f"{SHARED_DATA} is missing: the real data must sit beside the checkout as ../shared/data "
            "(or set ONCOLIT_SHARED_DATA).")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and no inherited ONCOLIT_* settings or config file."""
    for key in list(os.environ):
        if key.startswith("ONCOLIT_") and key != "ONCOLIT_SHARED_DATA":
            monkeypatch.delenv(key, raising=False)
    data_dir = tmp_path / "oncolit-data"
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return data_dir
