"""Predicted relevance for the queue: how likely librarians are to approve a record, learnt from their
own approve/exclude decisions.

A multinomial naive Bayes over words of title, abstract, MeSH, publication types and journal: small,
trained in milliseconds on a few hundred decisions, and honest about its inputs. With fewer than
`MIN_PER_CLASS` decisions of each kind there is nothing to learn from and the score is None (the
queue then sorts those records last under "relevance").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel

MIN_PER_CLASS = 2
_WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
_STOP = frozenset("the and for with was were that this from are not but has have had been its their than "
                  "which who these those into after before between during all any can may our also more "
                  "most other such only both each".split())


def tokens(record: BaseModel) -> list[str]:
    kind = getattr(record, "kind", "")
    if kind == "article":
        parts = [record.title, record.abstract_text, *record.keywords,  # type: ignore[attr-defined]
                 record.journal.title or ""]  # type: ignore[attr-defined]
        extra = [f"mesh:{h.descriptor.lower()}" for h in record.mesh_headings]  # type: ignore[attr-defined]
        extra += [f"pt:{p.lower()}" for p in record.publication_types]  # type: ignore[attr-defined]
    elif kind == "trial":
        parts = [record.title, record.brief_summary or "", *record.conditions, *record.keywords]  # type: ignore[attr-defined]
        extra = [f"phase:{p.lower()}" for p in record.design.phases]  # type: ignore[attr-defined]
        extra.append("kind:trial")
    else:
        return []
    words = [w for w in _WORD.findall(" ".join(parts).lower()) if w not in _STOP]
    return words + extra


@dataclass
class RelevanceModel:
    log_prior: dict[str, float]
    log_likelihood: dict[str, dict[str, float]]
    log_unseen: dict[str, float]

    @classmethod
    def train(cls, examples: Iterable[tuple[list[str], bool]]) -> RelevanceModel | None:
        counts = {"approved": Counter[str](), "excluded": Counter[str]()}
        docs = Counter[str]()
        for words, approved in examples:
            label = "approved" if approved else "excluded"
            counts[label].update(words)
            docs[label] += 1
        if min(docs["approved"], docs["excluded"]) < MIN_PER_CLASS:
            return None
        vocab = set(counts["approved"]) | set(counts["excluded"])
        total_docs = sum(docs.values())
        prior, likelihood, unseen = {}, {}, {}
        for label, counter in counts.items():
            prior[label] = math.log(docs[label] / total_docs)
            denom = sum(counter.values()) + len(vocab) + 1
            likelihood[label] = {w: math.log((counter[w] + 1) / denom) for w in counter}
            unseen[label] = math.log(1 / denom)
        return cls(prior, likelihood, unseen)

    def score(self, words: list[str]) -> float:
        """P(approved | words), in [0, 1]."""
        known = [w for w in words if w in self.log_likelihood["approved"] or w in self.log_likelihood["excluded"]]
        logp = {}
        for label in ("approved", "excluded"):
            table, miss = self.log_likelihood[label], self.log_unseen[label]
            logp[label] = self.log_prior[label] + sum(table.get(w, miss) for w in known)
        diff = logp["excluded"] - logp["approved"]
        if diff > 700:
            return 0.0
        return 1.0 / (1.0 + math.exp(diff))
