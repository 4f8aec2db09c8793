"""deploy/: the compose file parses, has the shape the README sizes, and sets only real settings.

pydantic-settings ignores an `ONCOLIT_*` variable it has no field for, so a misspelt name in the
compose file would silently fall back to a default (an Edge index inside each container instead of
the cluster, say). Here every name is walked down the settings model, then the whole environment
is loaded and read back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from oncolit.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` and `${VAR:?error}`, with no variables set: the default, or a stand-in."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(2) or f"<{m.group(1)}>", value)


def _oncolit_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so the settings check can read it"
    return {k: _interpolate(str(v)) for k, v in env.items() if k.startswith("ONCOLIT_")}


def _field_path(name: str) -> list[str]:
    """ONCOLIT_INDEX__QDRANT_URL -> ["index", "qdrant_url"], checked against the model field by field."""
    parts = name.removeprefix("ONCOLIT_").lower().split("__")
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        assert part in model.model_fields, f"{name}: {part!r} is not a field of {model.__name__}"
        annotation = model.model_fields[part].annotation
        if depth < len(parts) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{name}: {part} has no fields"
            model = annotation
    return parts


def test_compose_parses_with_the_cluster_it_is_sized_for() -> None:
    services = _compose()["services"]
    assert {"qdrant-1", "qdrant-2", "qdrant-3", "postgres", "llm", "scheduler", "api", "proxy"} <= set(services)
    for n in (1, 2, 3):
        node = services[f"qdrant-{n}"]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert f"http://qdrant-{n}:6335" in node["command"]
        assert ("--bootstrap" in node["command"]) == (n > 1)
    assert services["postgres"]["image"] == "postgres:15"
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    assert "--schedule" in services["scheduler"]["command"]
    assert "--no-schedule" in services["api"]["command"]
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "server api:8000" in nginx and "location /local/ { return 404; }" in nginx
    assert any(v.startswith("./nginx.conf:") for v in services["proxy"]["volumes"])
    assert services["scheduler"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "torch==2.13.0" in (DEPLOY / "Dockerfile").read_text()


@pytest.mark.parametrize("service", ["scheduler", "api"])
def test_every_oncolit_variable_is_a_setting(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _oncolit_env(_compose()["services"][service])
    assert env, f"{service} sets no ONCOLIT_* variables"
    for name, value in env.items():
        _field_path(name)
        monkeypatch.setenv(name, value)
    settings = Settings()
    dumped = settings.model_dump(mode="json")
    for name, value in env.items():
        *sections, key = _field_path(name)
        node = dumped
        for section in sections:
            node = node[section]
        assert str(node[key]).lower() == value.lower() or node[key] == type(node[key])(value), name
    ix = settings.index
    assert (ix.backend, ix.replication_factor, ix.quantization) == ("qdrant", 2, "int8")
    assert ix.shard_number % 3 == 0, "shards spread evenly over the 3 nodes"
    assert settings.resolved_catalog_url.startswith("postgresql+psycopg://")
    assert settings.llm.backend == "openai" and str(settings.llm.base_url).endswith("/v1")


def test_a_misspelt_setting_is_caught() -> None:
    with pytest.raises(AssertionError, match="qdrant_ulr"):
        _field_path("ONCOLIT_INDEX__QDRANT_ULR")
    with pytest.raises(AssertionError, match="has no fields"):
        _field_path("ONCOLIT_DATA_DIR__X")
