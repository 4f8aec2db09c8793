"""The answer classifier at work: (question, evidence) -> yes / no / maybe probabilities.

The evidence is laid out as in training (`synthesis.finetune.answer_data.evidence_text`: result sections first, no
conclusion) when the caller has sections; plain text is used as it comes (a record's abstract in reading order).
"""

from __future__ import annotations

from pathlib import Path

from synthesis.findings_models.encoder import LoadedModel, load_artifact
from synthesis.findings_models.inputs import collate, encode_pair
from synthesis.findings_models.runtime import SHIPPED

ANSWER = "minilm-answer"


class AnswerModel:
    def __init__(self, model: LoadedModel):
        self.model = model
        self.name = model.spec.name
        self.trained_ids = set(model.spec.extra.get("trained_pmids", ()))

    @classmethod
    def load(cls, folder: Path | None = None, threads: int | None = None) -> AnswerModel:
        return cls(load_artifact((folder or SHIPPED) / ANSWER, threads))

    @staticmethod
    def available(folder: Path | None = None) -> bool:
        return ((folder or SHIPPED) / ANSWER / "model.json").is_file()

    def probabilities(self, question: str, evidence: str) -> dict[str, float]:
        import torch

        spec = self.model.spec
        batch = collate([encode_pair(self.model.tokenizer, question, evidence, spec.max_len)])
        with torch.inference_mode():
            logits, _ = self.model.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        probs = (logits[0] / spec.temperature).softmax(-1).tolist()
        return {label: round(float(p), 4) for label, p in zip(spec.labels, probs)}
