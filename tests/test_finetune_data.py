"""Dataset builders: splits by record id without leakage, dataset cards, and the teacher-verification filter.

Real data throughout (PubMedQA dev items, Evidence Inference abstracts and annotations); the teacher in the
filter test is a ScriptedLLM whose replies are built from the real record text, one faithful and one not.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from synthesis.finetune import data
from synthesis.llm.base import ScriptedLLM


def test_split_of_is_fixed_by_seed_and_id_only():
    fractions = {"train": 0.8, "val": 0.05, "test": 0.15}
    ids = [f"pubmed:{i}" for i in range(2000)]
    first = {rid: data.split_of(rid, fractions, 7) for rid in ids}
    again = {rid: data.split_of(rid, fractions, 7) for rid in reversed(ids)}
    assert first == again
    shares = {s: sum(v == s for v in first.values()) / len(ids) for s in data.SPLITS}
    assert abs(shares["test"] - 0.15) < 0.03 and abs(shares["train"] - 0.8) < 0.03
    assert {rid: data.split_of(rid, fractions, 8) for rid in ids} != first  # the seed matters


def test_pubmedqa_dataset_is_stratified_without_leakage(shared_data: Path, tmp_path: Path):
    source = shared_data / "eval" / "pubmedqa-dev" / "pqal_dev.json"
    card = data.build_pubmedqa(source, tmp_path / "a")
    assert card["counts"]["test"]["labels"] == {"maybe": 11, "no": 34, "yes": 55}
    assert sum(c["examples"] for c in card["counts"].values()) == 500
    splits = json.loads((tmp_path / "a" / "splits.json").read_text())
    seen = [rid for ids in splits.values() for rid in ids]
    assert len(seen) == len(set(seen)) == 500  # no record in two splits
    rows = {s: data.load_split(tmp_path / "a", s) for s in data.SPLITS}
    for split, examples in rows.items():
        assert {ex["record_id"] for ex in examples} == set(splits[split])
    ex = rows["test"][0]
    target = json.loads(ex["target"])
    assert target["answer"] == ex["label"] and target["rationale"].endswith(f"[PMID:{ex['record_id'][7:]}].")
    assert ex["messages"][1]["content"].count(data.BEGIN_MARKER) == 1
    assert (tmp_path / "a" / "CARD.md").read_text().startswith("# Dataset card: pubmedqa")
    # rebuilding gives the same split, whatever the reply format
    card_b = data.build_pubmedqa(source, tmp_path / "b", rationale_first=True)
    assert json.loads((tmp_path / "b" / "splits.json").read_text()) == splits
    assert list(card_b["prompt"]["schema"]["properties"]) == ["rationale", "answer"]
    reply = json.loads(data.load_split(tmp_path / "b", "test")[0]["target"])
    assert list(reply) == ["rationale", "answer"] and reply["answer"] == ex["label"]


def test_check_no_leakage_refuses_a_record_in_two_splits():
    rows = [{"record_id": "pubmed:1", "split": "train"}, {"record_id": "pubmed:1", "split": "test"}]
    try:
        data.check_no_leakage(rows)
    except ValueError as exc:
        assert "pubmed:1" in str(exc)
    else:
        raise AssertionError("leakage was not detected")


def _faithful_reply(article) -> dict:
    """A reply every field of which is in the record: the conclusion section verbatim, nothing else."""
    from synthesis.findings import LLMFindings

    conclusion = next(s.text for s in article.abstract if s.label and s.label.upper().startswith("CONCLUSION"))
    return LLMFindings().model_dump(mode="json") | {"conclusion": conclusion}


def test_teacher_outputs_that_fail_verification_are_excluded(shared_data: Path, tmp_path: Path):
    source = shared_data / "eval" / "evidence-inference" / "abstracts.jsonl"
    records = [(rid, a) for rid, a in itertools.islice(data.evidence_inference_articles(source), 60)
               if any(s.label and s.label.upper().startswith("CONCLUSION") and len(s.text) < 250 for s in a.abstract)
               and len(data.readers_text(a)) < 3000][:4]
    assert len(records) == 4
    good = [_faithful_reply(a) for _, a in records]
    bad_number = dict(good[1], n_randomised=987654)  # a number the record does not contain
    bad_quote = dict(good[2], outcomes=[{"name": "overall survival", "kind": "OS", "measure": "HR", "value": None,
                                         "ci_low": None, "ci_high": None, "p_value": None, "direction": None,
                                         "quote": "the drug cured every patient"}])
    teacher = ScriptedLLM(name="scripted:teacher").enqueue(good[0], bad_number, bad_quote, "not json at all")
    fractions = {"train": 0.5, "val": 0.0, "test": 0.5}
    card = data.build_extraction(records, teacher, tmp_path / "x", fractions=fractions, seed=3)
    kept = [ex for s in data.SPLITS for ex in data.load_split(tmp_path / "x", s)]
    assert [ex["record_id"] for ex in kept] == [records[0][0]]
    assert json.loads(kept[0]["target"])["conclusion"] == good[0]["conclusion"].strip()
    assert kept[0]["messages"][0]["role"] == "system" and data.BEGIN_MARKER in kept[0]["messages"][1]["content"]
    teacher_card = card["teacher"]
    assert teacher_card["attempted"] == 4 and teacher_card["accepted"] == 1
    assert teacher_card["claims_verified"] < teacher_card["claims"]
    assert len(data.read_jsonl(tmp_path / "x" / "labels.jsonl")) == 4  # every teacher answer is logged
    reasons = {r["record_id"]: r["reason"] for s in data.SPLITS
               for r in data.read_jsonl(tmp_path / "x" / f"rejected_{s}.jsonl")}
    assert sorted(reasons) == sorted(rid for rid, _ in records[1:])
    assert "failed verification" in reasons[records[1][0]] and "failed verification" in reasons[records[2][0]]
    assert reasons[records[3][0]] == "not valid JSON"
    # resumable: a rerun asks the teacher nothing more and rebuilds the same dataset
    again = data.build_extraction(records, ScriptedLLM(), tmp_path / "x", fractions=fractions, seed=3)
    assert again["counts"] == card["counts"]
    # policy "prune": the failing values are removed, what is left is verified again and kept
    pruned = data.build_extraction(records, ScriptedLLM(), tmp_path / "x", fractions=fractions, seed=3,
                                   policy="prune")
    kept = {ex["record_id"]: json.loads(ex["target"]) for s in data.SPLITS for ex in data.load_split(tmp_path / "x", s)}
    assert sorted(kept) == sorted(rid for rid, _ in records[:3]) and pruned["teacher"]["accepted_strict"] == 1
    assert kept[records[1][0]]["n_randomised"] is None and kept[records[2][0]]["outcomes"] == []
    assert all(data.judge(rid, a, kept[rid], "train").accepted for rid, a in records[:3])  # every value verifies
    # the teacher's logged replies, scored by the eval as a live model would be: the same claims verify as when
    # the dataset was judged (made-up number and quote lost), the unreadable reply counts as a parse failure
    from synthesis.finetune.evaluate import eval_extraction

    logged = {r["record_id"]: r for r in data.read_jsonl(tmp_path / "x" / "labels.jsonl")}
    examples = [ex for s in data.SPLITS for ex in data.load_split(tmp_path / "x", s)]
    rejected = [r for s in data.SPLITS for r in data.read_jsonl(tmp_path / "x" / f"rejected_{s}.jsonl")]
    metrics, items = eval_extraction(examples, None, say=lambda _m: None, extra_records=rejected, logged=logged)
    assert metrics["records"] == 4 and metrics["parse_failures"] == 1
    assert (metrics["claims"], metrics["claims_verified"]) == (teacher_card["claims"], teacher_card["claims_verified"])
    assert metrics["claims_verified"] < metrics["claims"]
    assert metrics["throughput"]["seconds"] == round(sum(r["seconds"] for r in logged.values()), 1)


def test_evidence_dataset_keeps_only_verbatim_evidence(shared_data: Path, tmp_path: Path):
    card = data.build_evidence(shared_data / "eval" / "evidence-inference", tmp_path / "ev")
    rows = [ex for s in data.SPLITS for ex in data.load_split(tmp_path / "ev", s)]
    assert len(rows) > 300 and card["counts"]["test"]["examples"] > 30
    assert card["filters"]["skipped"]["evidence not verbatim in the abstract"] > 0
    data.check_no_leakage(rows)
    # the split is the record's, shared with the extraction task: no record is test in one and train in another
    fractions = {"train": 0.8, "val": 0.05, "test": 0.15}
    assert all(ex["split"] == data.split_of(ex["record_id"], fractions, 1337) for ex in rows)
    for ex in rows[:50]:
        target = json.loads(ex["target"])
        assert target["direction"] in data.DIRECTIONS
        assert data.find_quote(target["evidence"], ex["messages"][1]["content"]) is not None


def test_answers_dataset_uses_the_product_prompt_and_keeps_text_within_a_split(shared_data: Path, tmp_path: Path):
    from synthesis.citations import check_sentence, with_citations
    from synthesis.prompts_qa import ANSWER_V1

    source = shared_data / "eval" / "pubmedqa-dev" / "pqal_dev.json"
    card = data.build_answers(source, tmp_path / "answers")
    data.build_pubmedqa(source, tmp_path / "pq")
    ours, theirs = (json.loads((tmp_path / d / "splits.json").read_text()) for d in ("answers", "pq"))
    assert all(set(ours[s]) <= set(theirs[s]) for s in data.SPLITS)  # held out in both tasks alike
    items = json.loads(source.read_text())
    rows = [ex for split in data.SPLITS for ex in data.load_split(tmp_path / "answers", split)]
    split_of = {ex["record_id"]: ex["split"] for ex in rows}
    assert card["counts"]["test"]["labels"]["insufficient"] > 5 and card["counts"]["train"]["labels"]["answered"] > 200
    for ex in rows:
        prompt = ex["messages"][1]["content"]
        assert ex["messages"][0]["content"] == ANSWER_V1.system
        shown = set(re.findall(r"Citation: \[PMID:(\d+)\]", prompt))
        own = ex["record_id"].split(":")[1]
        assert all(split_of.get(f"pubmed:{p}", ex["split"]) == ex["split"] for p in shown)  # no text crosses splits
        reply = json.loads(ex["target"])
        if ex["label"] == "insufficient":
            assert own not in shown and reply == {"answer_sentences": [], "insufficient": True}
        else:
            assert own in shown and reply["answer_sentences"] and not reply["insufficient"]
            text = data.pubmedqa_record_text(items[own])
            for sentence in reply["answer_sentences"]:
                assert sentence["citations"] == [f"[PMID:{own}]"]
                assert check_sentence(with_citations(sentence["text"], [ex["record_id"]]), {ex["record_id"]: text}).ok
    # a record shown as context in another split is leakage, and the check says so
    bad = [dict(rows[0], split="train", context_ids=[]), dict(rows[1], split="test", context_ids=[rows[0]["record_id"]])]
    with pytest.raises(ValueError, match="in both"):
        data.check_no_leakage(bad)


def test_eval_answers_reads_and_checks_replies_as_the_product_does(shared_data: Path, tmp_path: Path):
    from synthesis.finetune.evaluate import eval_answers
    from synthesis.llm import ScriptedLLM

    source = shared_data / "eval" / "pubmedqa-dev" / "pqal_dev.json"
    data.build_answers(source, tmp_path / "answers")
    test = data.load_split(tmp_path / "answers", "test")
    answerable = next(ex for ex in test if ex["label"] == "answered")
    unanswerable = next(ex for ex in test if ex["label"] == "insufficient")
    items = json.loads(source.read_text())
    texts = {f"pubmed:{p}": data.pubmedqa_record_text(item) for p, item in items.items()}
    good = json.loads(answerable["target"])  # the gold reply passes
    made_up = {"answer_sentences": [{"text": "The drug cured 97% of patients.", "citations": ["[PMID:1]"]}],
               "insufficient": False}
    llm = ScriptedLLM().enqueue(good, made_up)
    metrics, rows = eval_answers([answerable, unanswerable], llm, say=lambda _m: None, record_texts=texts)
    assert [r["pred"] for r in rows] == ["answered", "answered"] and metrics["accuracy"] == 0.5
    assert rows[0]["cites_own_record"] and rows[1]["sentences_ok"] == 0
    assert metrics["answerable_with_a_checked_citation_of_its_record"] == 1.0
    assert metrics["sentences_pass_check"] == round(len(good["answer_sentences"]) / (len(good["answer_sentences"]) + 1), 4)
    assert llm.calls[0]["json_schema"]["properties"]["answer_sentences"]["items"]["properties"]["citations"]
    # a reply with no JSON is prose, read and checked sentence by sentence as the product does
    metrics, rows = eval_answers([answerable], ScriptedLLM().enqueue("It cured everyone [PMID:1]."), say=lambda _m: None,
                                 record_texts=texts)
    assert rows[0]["sentences"] == 1 and rows[0]["sentences_ok"] == 0 and metrics["unparsed_replies"] == 1
