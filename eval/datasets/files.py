"""Where a dataset's file is: a loader accepts the dataset folder or the file itself."""

from __future__ import annotations

from pathlib import Path


def find_file(path: Path | str, name: str, dataset: str) -> Path:
    """`path` itself, or `path/name` when `path` is a folder; a clear error naming both when missing."""
    p = Path(path)
    if p.is_dir():
        p = p / name
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: give the {dataset} folder or its {name}")
    return p
