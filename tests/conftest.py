"""Shared fixtures: the real data folder beside the checkout, and an isolated OncoLit environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg  # at import: it reads ONCOLIT_TEST_PG* before `isolated_env` strips ONCOLIT_* per test

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


# ------------------------------------------------------------------------------------------------
# The catalog on both backends. `catalog_url` is parametrised: every test that takes it runs once on
# a SQLite file and once on PostgreSQL (a fresh schema in the session's throwaway cluster, tests/pg.py).
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL for the session; stopped and deleted at the end. Fails (does not skip) when it
    cannot start, unless ONCOLIT_TEST_PG=skip."""
    if pg.OPT_OUT:
        pytest.skip("ONCOLIT_TEST_PG=skip: PostgreSQL tests opted out")
    cluster = pg.start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> Iterator[str]:
    """A PostgreSQL catalog URL with an empty schema of its own."""
    url = pg_cluster.fresh_url()
    yield url
    pg_cluster.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog's URL, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    return url
