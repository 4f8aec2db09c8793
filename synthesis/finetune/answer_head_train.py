"""Train the yes/no/maybe answer head (`synthesis.findings_models.answer_head`) on the train half of the PubMedQA
dev items, through the shipped findings models.

    python -m synthesis.finetune.answer_head_train [--pubmedqa ../shared/data/eval/pubmedqa-dev/pqal_dev.json]
        [--out synthesis/findings_models/artifacts/answer-head] [--c 1.0]

Split: `answer_data.pubmedqa_split` (a seeded hash of the PMID) halves the 500 items; only the `train` half is
read here, its PMIDs are written into the artifact, and `oncolit eval qa --backend default` never scores them.
The regularisation strength is chosen by 5-fold cross-validation on the train half (macro-F1); classes are
weighted inversely to their frequency, so "maybe" (11%) is predicted at all. Deterministic (liblinear-free lbfgs
on standardised features, fixed folds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from synthesis.findings_models.answer_head import FEATURES, FILE, features
from synthesis.finetune.answer_data import evidence_text, pubmedqa_split
from synthesis.finetune.data import git_commit, sha256_of

CLASSES = ("yes", "no", "maybe")


def train(pubmedqa: Path, out: Path, *, seed: int = 1337, threads: int = 2, say: Any = print) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    from synthesis.findings_models import FindingsModels

    models = FindingsModels.load(threads=threads)
    raw = json.loads(pubmedqa.read_text(encoding="utf-8"))
    ids, x, y = [], [], []
    for pmid, item in sorted(raw.items()):
        if pubmedqa_split(pmid, seed) != "train":
            continue
        labels = item.get("LABELS") or [""] * len(item["CONTEXTS"])
        evidence = evidence_text(list(zip(labels, item["CONTEXTS"])))
        ids.append(pmid)
        x.append(features(item["QUESTION"], evidence, models))
        y.append(CLASSES.index(item["final_decision"].strip().lower()))
    X, Y = np.array(x), np.array(y)
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    best_c, best_f1 = 1.0, -1.0
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        f1 = f1_score(Y, cross_val_predict(clf, Z, Y, cv=folds), average="macro")
        say(f"C={c}: 5-fold macro-F1 {f1:.3f}")
        if f1 > best_f1:
            best_c, best_f1 = c, f1
    clf = LogisticRegression(C=best_c, class_weight="balanced", max_iter=2000).fit(Z, Y)
    spec = {"name": "answer-head", "task": "answer", "base": f"{models.name} (findings models)",
            "classes": list(CLASSES), "features": list(FEATURES), "mean": scaler.mean_.round(6).tolist(),
            "scale": scaler.scale_.round(6).tolist(), "coef": clf.coef_.round(6).tolist(),
            "intercept": clf.intercept_.round(6).tolist(), "C": best_c, "cv_macro_f1": round(best_f1, 4),
            "trained_pmids": ids, "train_counts": {c: int((Y == i).sum()) for i, c in enumerate(CLASSES)},
            "data": {"pubmedqa": str(pubmedqa), "sha256": sha256_of(pubmedqa), "split_seed": seed,
                     "split": "answer_data.pubmedqa_split: train half only"},
            "commit": git_commit()}
    out.mkdir(parents=True, exist_ok=True)
    (out / FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    card = {"name": "answer-head", "task": "answer", "kind": "head", "base": spec["base"], "labels": list(CLASSES),
            "data": spec["data"] | {"train_counts": spec["train_counts"]}, "cv_macro_f1": spec["cv_macro_f1"],
            "commit": spec["commit"], "eval": {}}
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    say(f"answer head: C={best_c}, 5-fold macro-F1 {best_f1:.3f} on {len(ids)} train items -> {out / FILE}")
    return spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubmedqa", type=Path, default=Path("../shared/data/eval/pubmedqa-dev/pqal_dev.json"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "findings_models" / "artifacts" / "answer-head")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    train(args.pubmedqa, args.out, threads=args.threads)


if __name__ == "__main__":
    main()
