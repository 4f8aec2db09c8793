"""The one seeded split rule: which split a record id falls in, fixed by (seed, id, fractions).

It lives on the datasets floor because both sides of the held-out line read it: training (synthesis/finetune)
to build train/dev/test, and the eval datasets to name the same articles (`--split dev`), so a setting tuned on
"dev" provably never saw the validation articles and training never saw "dev".
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")


def unit(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key): the whole basis of every split."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2 ** 64


def split_of(record_id: str, fractions: dict[str, float], seed: int) -> str:
    """The split a record belongs to. Depends only on (seed, record id, fractions), so it never changes with
    the order or the number of records, and a record can never be in two splits."""
    u, acc = unit(seed, record_id), 0.0
    for name in SPLITS:
        acc += fractions.get(name, 0.0)
        if u < acc:
            return name
    return "train"
