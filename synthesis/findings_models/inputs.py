"""How each findings model sees its input — one function per task, used by training and inference alike,
so the two can never drift apart.

- reader:    [CLS] section label [SEP] sentence [SEP]   (label empty for unstructured abstracts; training
             drops it now and then so both layouts are learnt). Tags are read only on sentence tokens.
- direction: [CLS] intervention: I. comparator: C. outcome: O [SEP] evidence sentence [SEP]
- answer:    [CLS] question [SEP] evidence (result sentences, then the rest) [SEP]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthesis.findings_models.encoder import TAG_LABELS, TAG_OF


@dataclass
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: list[tuple[int, int]]  # character offsets in the sentence; (0, 0) for tokens outside it
    labels: list[int] | None = None  # tag label per token, -100 where not scored


def encode_reader(tokenizer: Any, section: str, sentence: str, max_len: int,
                  tags: list[tuple[int, int, str]] | None = None) -> Encoded:
    """One sentence for the reader; `tags` (start, end, "I"|"C"|"O") give training labels."""
    first = section.strip().lower()
    enc = tokenizer(first, sentence, truncation="only_second", max_length=max_len,
                    return_offsets_mapping=True) if first else tokenizer(
        sentence, truncation=True, max_length=max_len, return_offsets_mapping=True)
    seq_ids = enc.sequence_ids()
    own = 1 if first else 0
    offsets = [(s, e) if sid == own else (0, 0) for (s, e), sid in zip(enc["offset_mapping"], seq_ids)]
    labels = None
    if tags is not None:
        labels = []
        previous: tuple[int, int] | None = None
        for (s, e), sid in zip(offsets, seq_ids):
            if sid != own or e <= s:
                labels.append(-100)
                continue
            kind = next((t for a, b, t in tags if a <= s < b), None)
            if kind is None:
                labels.append(0)
                previous = None
                continue
            span = next((a, b) for a, b, t in tags if a <= s < b)
            prefix = "I" if previous == span else "B"
            labels.append(TAG_LABELS.index(f"{prefix}-{TAG_OF[kind]}"))
            previous = span
    return Encoded(list(enc["input_ids"]), list(enc.get("token_type_ids") or [0] * len(enc["input_ids"])),
                   offsets, labels)


def direction_query(intervention: str, comparator: str, outcome: str) -> str:
    return f"intervention: {intervention.strip()}. comparator: {comparator.strip()}. outcome: {outcome.strip()}"


def encode_pair(tokenizer: Any, first: str, second: str, max_len: int) -> Encoded:
    """A (query, text) pair, the longer side cut first."""
    enc = tokenizer(first, second, truncation="longest_first", max_length=max_len)
    ids = list(enc["input_ids"])
    return Encoded(ids, list(enc.get("token_type_ids") or [0] * len(ids)), [(0, 0)] * len(ids))


def encode_direction(tokenizer: Any, intervention: str, comparator: str, outcome: str, sentence: str,
                     max_len: int) -> Encoded:
    return encode_pair(tokenizer, direction_query(intervention, comparator, outcome), sentence, max_len)


def collate(items: list[Encoded], pad_id: int = 0) -> dict[str, Any]:
    """Pad a batch to its longest item: input_ids, attention_mask, token_type_ids (+ tag labels)."""
    import torch

    width = max(len(x.input_ids) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    types = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for i, x in enumerate(items):
        n = len(x.input_ids)
        ids[i, :n] = torch.tensor(x.input_ids)
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(x.token_type_ids)
        if x.labels is not None:
            labels[i, :n] = torch.tensor(x.labels)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "tag_labels": labels}
