"""The layering contract (`[tool.oncolit.layers]` in pyproject.toml, drawn in docs/ARCHITECTURE.md): no import
runs up a floor, except the known ones listed there, each with its reason."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "index", "synthesis", "oncolit", "eval", "benchmarks")
CONTRACT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["oncolit"]["layers"]


def floor_of(module: str, floors: list[list[str]]) -> tuple[int, str]:
    """(floor number, the prefix that placed it): the longest listed prefix of `module` wins."""
    matches = [(len(p), i, p) for i, names in enumerate(floors) for p in names
               if module == p or module.startswith(p + ".")]
    if not matches:
        raise AssertionError(f"{module} is on no floor: list it in [tool.oncolit.layers] floors")
    _, number, prefix = max(matches)
    return number, prefix


def upward_imports(graph: grimp.ImportGraph, floors: list[list[str]]) -> dict[str, list[str]]:
    """"importer -> imported" for every import that runs up a floor, with where each one is written."""
    found: dict[str, list[str]] = {}
    for importer in sorted(graph.modules):
        low = floor_of(importer, floors)[0]
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if floor_of(imported, floors)[0] > low:
                details = graph.get_import_details(importer=importer, imported=imported)
                found[f"{importer} -> {imported}"] = [f"line {d['line_number']}: {d['line_contents']}" for d in details]
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_no_new_import_runs_up_a_floor(graph: grimp.ImportGraph) -> None:
    found = upward_imports(graph, CONTRACT["floors"])
    new = {edge: where for edge, where in found.items() if edge not in CONTRACT["known"]}
    assert new == {}, ("these imports run up a floor (docs/ARCHITECTURE.md, Floors): pass the lower floor what it "
                       f"needs from the wiring instead, or move the code down: {new}")


def test_every_known_exception_still_exists(graph: grimp.ImportGraph) -> None:
    """A fixed exception must leave the list, so the list stays the true debt."""
    found = upward_imports(graph, CONTRACT["floors"])
    assert [edge for edge in CONTRACT["known"] if edge not in found] == []


def test_the_contract_catches_an_upward_import() -> None:
    """The check itself: a records module importing the CLI is reported, a downward import is not."""
    g = grimp.ImportGraph()
    for module in ("ingest.records.article", "oncolit.cli.main", "index.search"):
        g.add_module(module)
    g.add_import(importer="ingest.records.article", imported="oncolit.cli.main", line_number=3,
                 line_contents="from oncolit.cli.main import app")
    g.add_import(importer="index.search", imported="ingest.records.article", line_number=9,
                 line_contents="from ingest.records.article import Article")
    assert list(upward_imports(g, CONTRACT["floors"])) == ["ingest.records.article -> oncolit.cli.main"]


def test_a_module_takes_its_longest_prefix() -> None:
    floors = CONTRACT["floors"]
    assert floor_of("ingest.catalog.catalog", floors)[1] == "ingest.catalog"
    assert floor_of("ingest.pubmed", floors)[1] == "ingest"
    assert floor_of("oncolit.delivery.settings", floors) < floor_of("oncolit.delivery.run", floors)
    assert floor_of("synthesis.llm.base", floors) < floor_of("synthesis.finetune.local_models", floors)
