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


@pytest.mark.timeout(600)
def test_shipped_fine_tuned_model_pulls_lists_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`oncolit models pull smollm2-135m-extraction`: base pulled, the committed adapter merged, registered with
    its held-out metrics; the default backend then serves it by name and it writes the findings JSON."""
    import json

    from typer.testing import CliRunner

    from oncolit.cli.common import get_settings
    from oncolit.cli.main import app
    from synthesis.llm import make_llm

    shipped = local_models.shipped_models()
    assert {"smollm2-135m-extraction", "smollm2-135m-pubmedqa"} <= set(shipped)
    for manifest in shipped.values():  # every shipped adapter carries its card: base, data, held-out results
        assert manifest["base"] == "smollm2-135m" and manifest["data"]["counts"]["test"]["examples"] >= 30
        assert any(key.startswith("test-tuned") for key in manifest["eval"])
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["models", "pull", "smollm2-135m-extraction", "--json"])
        assert result.exit_code == 0, result.output
        listed = CliRunner().invoke(app, ["models", "list", "--no-verify", "--json"])
        rows = {row["name"]: row for row in json.loads(listed.output)}
    finally:
        get_settings.cache_clear()
    tuned = rows["smollm2-135m-extraction"]
    assert tuned["fine_tuned"] and tuned["pulled"] and tuned["metrics"]["test-tuned-llamacpp"]["verified_field_rate"]
    with make_llm("llamacpp", "smollm2-135m-extraction", tmp_path / "models", n_threads=1, n_ctx=2048) as llm:
        reply = llm.complete([{"role": "user", "content": "Reply with the findings JSON for: no record."}],
                             max_tokens=24).text
    assert llm.name == "llamacpp:smollm2-135m-extraction" and reply.strip()
