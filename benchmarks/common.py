"""The stamp every benchmark result carries, built from `eval.stamp` so benchmarks and eval runs record the
same facts the same way: commit (and whether the checkout was dirty), machine, load, library versions."""

from __future__ import annotations

from typing import Any


def stamp() -> dict[str, Any]:
    """Machine, software and commit, so a number can be traced to what produced it."""
    from eval.stamp import git_state, machine, now

    git, info = git_state(), machine()
    load = info.pop("load_average")
    return {"git_commit": git["commit"], "git_dirty": git["dirty"], **info, "load_avg_start": load,
            "started_utc": now()}
