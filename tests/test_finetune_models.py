"""Fine-tuned models are listed beside the registry's: the local manifest, its names, and what it records."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthesis.finetune import local_models


def test_register_list_and_resolve_a_fine_tuned_model(tmp_path: Path):
    gguf = tmp_path / "run" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(60))
    entry = local_models.register(tmp_path / "models", "smollm2-135m-pubmedqa", base="smollm2-135m", task="pubmedqa",
                                  path=gguf, adapter_dir=tmp_path / "run" / "adapter",
                                  data={"card_sha256": "ab"}, metrics={"test-tuned-llamacpp-n5": {"accuracy": 0.9},
                                                                       "test-tuned-llamacpp": {"accuracy": 0.6}})
    assert entry["size"] == 64 and len(entry["sha256"]) == 64
    assert local_models.resolve_local(tmp_path / "models", "smollm2-135m-pubmedqa") == gguf
    assert local_models.resolve_local(tmp_path / "models", "other") is None
    rows, lines = local_models.listing(tmp_path / "models")
    assert rows[0]["base"] == "smollm2-135m" and rows[0]["fine_tuned"] and rows[0]["pulled"]
    assert "accuracy 0.6" in lines[0] and "smollm2-135m" in lines[0]  # the whole split, not a --limit slice
    # re-registering replaces the entry; a registry name can never be shadowed
    local_models.register(tmp_path / "models", "smollm2-135m-pubmedqa", base="smollm2-135m", task="pubmedqa", path=gguf)
    assert len(local_models.list_local_models(tmp_path / "models")) == 1
    with pytest.raises(ValueError):
        local_models.register(tmp_path / "models", "smollm2-135m", base="x", task="pubmedqa", path=gguf)


def test_models_list_and_resolve_see_a_registered_fine_tuned_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`oncolit models list --json` shows it with base, data and metrics; a backend loads it by name."""
    import json

    from typer.testing import CliRunner

    from oncolit.cli.common import get_settings
    from oncolit.cli.main import app
    from synthesis.llm.registry import ModelNotFound, resolve

    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    models = tmp_path / "models"
    gguf = tmp_path / "run" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(60))
    local_models.register(models, "smollm2-135m-pubmedqa", base="smollm2-135m", task="pubmedqa", path=gguf,
                          data={"counts": {"train": {"examples": 360}}},
                          metrics={"test-tuned-llamacpp": {"accuracy": 0.61, "macro_f1": 0.4}})
    result = CliRunner().invoke(app, ["models", "list", "--no-verify", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    tuned = rows["smollm2-135m-pubmedqa"]
    assert tuned["fine_tuned"] and tuned["base"] == "smollm2-135m" and tuned["pulled"]
    assert tuned["metrics"]["test-tuned-llamacpp"]["macro_f1"] == 0.4 and tuned["data"]["counts"]
    assert "smollm2-135m" in rows and not rows["smollm2-135m"].get("fine_tuned")
    assert resolve("smollm2-135m-pubmedqa", models) == gguf
    gguf.unlink()
    with pytest.raises(ModelNotFound, match="finetune train"):
        resolve("smollm2-135m-pubmedqa", models)
    get_settings.cache_clear()
