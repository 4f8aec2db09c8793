"""The findings encoders: sentence spans, the dataset builder, a tiny training run, and the shipped models on a
recorded oncology RCT.

The tiny-training tests use a few made-up rows (no shared data); the shipped-model tests read the real NEJM
record in ../shared/data and the committed artifacts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ingest.records import AbstractSection, Article
from synthesis.text import article_sentences, sentences_of

# ------------------------------------------------------------------------------------------------
# Sentences with offsets
# ------------------------------------------------------------------------------------------------


def test_sentences_keep_offsets_and_do_not_split_abbreviations() -> None:
    article = Article(pmid="1", title="Drug A versus placebo in melanoma",
                      abstract=[AbstractSection(label="BACKGROUND", text="Smith et al. reported a benefit. We tested it."),
                                AbstractSection(label="RESULTS", text="PFS was longer with A vs. placebo (HR 0.5). "
                                                                      "OS did not differ.")])
    from synthesis.readers import record_text

    text = record_text(article)
    sentences = article_sentences(article)
    assert [s.section for s in sentences] == ["TITLE", "BACKGROUND", "BACKGROUND", "RESULTS", "RESULTS"]
    assert sentences[1].text == "Smith et al. reported a benefit."
    assert sentences[3].text == "PFS was longer with A vs. placebo (HR 0.5)."
    for s in sentences:
        assert text[s.start:s.end] == s.text


def test_sentences_of_plain_text_split_lines_first() -> None:
    text = "First line. Second sentence.\nA new line 2 here."
    assert [s.text for s in sentences_of(text)] == ["First line.", "Second sentence.", "A new line 2 here."]


# ------------------------------------------------------------------------------------------------
# Dataset builder
# ------------------------------------------------------------------------------------------------


def _ei_folder(root: Path, n: int = 12) -> Path:
    """A tiny folder shaped like the Evidence Inference one: n articles, two prompts each, one validation list."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir()
    with (root / "abstracts.jsonl").open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"pmcid": f"PMC{100 + i}", "title": f"Drug{i} versus placebo", "abstract_sections": [
                {"label": "METHODS", "text": f"Patients were randomised to drug{i} or placebo."},
                {"label": "RESULTS", "text": f"Pain scores were significantly lower with drug{i} than placebo "
                                             f"(p = 0.01). Nausea rates did not differ between groups."}]}) + "\n")
    with (root / "prompts_merged.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["PromptID", "PMCID", "Outcome", "Intervention", "Comparator"])
        for i in range(n):
            w.writerow([2 * i, 100 + i, "pain scores", f"drug{i}", "placebo"])
            w.writerow([2 * i + 1, 100 + i, "nausea rates", f"drug{i}", "placebo"])
    with (root / "v2_annotations.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["UserID", "PromptID", "PMCID", "Valid Label", "Valid Reasoning", "Label", "Annotations",
                    "Label Code", "In Abstract", "Evidence Start", "Evidence End"])
        for i in range(n):
            w.writerow([0, 2 * i, 100 + i, "True", "True", "significantly decreased",
                        f"Pain scores were significantly lower with drug{i} than placebo", -1, "UNK", 0, 0])
            w.writerow([0, 2 * i + 1, 100 + i, "True", "True", "no significant difference",
                        "Nausea rates did not differ between groups", 0, "UNK", 0, 0])
    (root / "splits" / "ev2_validation_article_ids.txt").write_text("100\n101\n")
    (root / "splits" / "ev2_train_article_ids.txt").write_text("\n".join(str(100 + i) for i in range(2, n)) + "\n")
    return root


def test_builder_excludes_evaluated_articles_and_keeps_each_article_in_one_split(tmp_path: Path) -> None:
    from synthesis.finetune.encoder_data import build, read_rows

    folder = _ei_folder(tmp_path / "ei")
    card = build(folder, tmp_path / "out", dev_fraction=0.3)
    rows = {task: {split: read_rows(tmp_path / "out" / task / f"{split}.jsonl") for split in ("train", "dev")}
            for task in ("reader", "direction")}
    seen: dict[str, str] = {}
    for task in rows.values():
        for split, items in task.items():
            for row in items:
                assert row["article"] not in {"PMC100", "PMC101"}, "a validation article reached training"
                assert seen.setdefault(row["article"], split) == split
    assert card["counts"]["articles_excluded_heldout"] == 2
    positives = [r for r in rows["reader"]["train"] + rows["reader"]["dev"] if r["evidence"] == 1]
    assert positives and all("lower with drug" in r["text"] or "did not differ" in r["text"] for r in positives)
    tagged = next(r for r in rows["reader"]["train"] if "Pain scores" in r["text"])
    kinds = {tagged["text"][s:e]: k for s, e, k in tagged["tags"]}
    assert kinds.get("Pain scores") == "O" and kinds.get("placebo") == "C"
    # deterministic: a rebuild writes the same rows
    build(folder, tmp_path / "again", dev_fraction=0.3)
    assert (tmp_path / "out" / "reader" / "train.jsonl").read_bytes() == \
        (tmp_path / "again" / "reader" / "train.jsonl").read_bytes()


# ------------------------------------------------------------------------------------------------
# Tiny training: saves, reloads, predicts; loss goes down on an overfit batch
# ------------------------------------------------------------------------------------------------


def test_tiny_direction_training_saves_reloads_and_predicts(tmp_path: Path) -> None:
    import torch

    from synthesis.findings_models.encoder import load_artifact
    from synthesis.findings_models.inputs import collate, encode_direction
    from synthesis.finetune import encoder_data, encoder_train

    folder = _ei_folder(tmp_path / "ei")
    encoder_data.build(folder, tmp_path / "data", dev_fraction=0.3)
    config = encoder_train.load_config(None, {
        "task": "direction", "name": "tiny", "data_dir": str(tmp_path / "data" / "direction"),
        "runs_dir": str(tmp_path / "runs"), "max_steps": 4, "eval_interval": 2, "checkpoint_interval": 2,
        "batch_size": 4, "threads": 1, "lora_r": 4, "max_len": 64})
    artifact = encoder_train.train(config, say=lambda _m: None)
    assert {p.name for p in artifact.iterdir()} >= {"model.json", "adapter_model.safetensors",
                                                     "adapter_config.json", "heads.safetensors"}
    assert sum(p.stat().st_size for p in artifact.iterdir()) < 2_000_000
    loaded = load_artifact(artifact, threads=1)
    item = encode_direction(loaded.tokenizer, "drug5", "placebo", "pain", "Pain was lower with drug5.", 64)
    batch = collate([item, item])
    with torch.inference_mode():
        logits, _ = loaded.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert logits.shape == (2, 3) and torch.equal(logits[0], logits[1])  # deterministic in eval mode
    again = load_artifact(artifact, threads=1)
    with torch.inference_mode():
        logits2, _ = again.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.allclose(logits, logits2, atol=1e-5)
    # resumable: a second call with more steps starts from the checkpoint
    log = (tmp_path / "runs" / "tiny" / "log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 4


def test_loss_goes_down_on_an_overfit_batch() -> None:
    import torch

    from synthesis.findings_models.encoder import load_tokenizer
    from synthesis.findings_models.inputs import encode_direction
    from synthesis.finetune.encoder_train import Example, load_config, loss_of, make_model

    torch.set_num_threads(1)
    config = load_config(None, {"task": "direction", "lora_r": 4, "max_len": 64})
    tokenizer = load_tokenizer()
    texts = [("A", "B", "pain", "Pain was significantly lower with A than B.", 1),
             ("A", "B", "nausea", "Nausea did not differ between A and B.", 2),
             ("B", "A", "pain", "Pain was significantly lower with A than B.", 0),
             ("A", "B", "sleep", "Sleep was significantly longer with A than B.", 0)]
    batch = [Example(encode_direction(tokenizer, i, c, o, s, 64), y) for i, c, o, s, y in texts]
    module, _ = make_model(config)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = loss_of(module, batch, config, "cpu")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


# ------------------------------------------------------------------------------------------------
# The shipped models on a recorded oncology RCT
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    from synthesis.findings_models import FindingsModels

    assert FindingsModels.available(), "the shipped findings models are missing (synthesis/findings_models/artifacts)"
    return FindingsModels.load(threads=1)


def _nejm(shared_data: Path) -> Article:
    from ingest.pubmed_xml import parse_pubmed_xml

    data = (shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes()
    return next(item.record for item in parse_pubmed_xml(data) if isinstance(item.record, Article))


def test_nejm_mek_record_gives_the_primary_comparison_with_direction_and_hr(shared_data: Path, models) -> None:  # type: ignore[no-untyped-def]
    from synthesis.extract import extract
    from synthesis.findings import key_outcome
    from synthesis.readers import record_text

    article = _nejm(shared_data)
    text = record_text(article)
    findings = extract(article, models=models).findings
    key = key_outcome(findings)
    assert key is not None and key.primary
    assert "progression-free survival" in key.quote.lower()
    assert key.direction == "increased" and key.confidence and key.confidence > 0.5
    assert (key.value, key.ci_low, key.ci_high) == (0.45, 0.33, 0.63) and key.measure == "HR"
    assert text[key.quote_start:key.quote_end] == key.quote
    assert "trametinib" in (key.intervention or "").lower()
    assert "chemotherapy" in (key.comparator or "").lower()
    for o in findings.outcomes:
        if o.quote and o.quote_start is not None:
            assert text[o.quote_start:o.quote_end] == o.quote
    assert findings.provenance["outcomes"] in ("model", "rules+model")


def test_digest_item_of_an_rct_shows_the_result_sentence_not_the_objective(shared_data: Path, isolated_env: Path,
                                                                          models) -> None:  # type: ignore[no-untyped-def]
    from synthesis import digest as dg
    from tests.test_digest import DAY, NEJM, melanoma_topics, real_catalog

    with real_catalog(shared_data, isolated_env) as catalog:
        window = dg.window_after(catalog, None, 14)
        plain = dg.build_digest(catalog, melanoma_topics(), window, period_end=DAY)
        doc = dg.build_digest(catalog, melanoma_topics(), window, period_end=DAY, models=models)
    items = {i["record_id"]: i for t in doc["topics"] for i in t["items"]}
    before = {i["record_id"]: i for t in plain["topics"] for i in t["items"]}
    key = items[NEJM]["key_finding"]
    assert key["direction"] in ("increased", "decreased", "no significant difference")
    assert key["direction_badge"] == dg.DIRECTION_BADGES[key["direction"]]
    assert "progression-free survival" in key["text"].lower() and "hazard ratio" in key["text"].lower()
    assert not key["text"].upper().startswith(("BACKGROUND", "OBJECTIVE", "PURPOSE"))
    assert key["text"] != before[NEJM]["key_finding"]["text"]  # without the models: the conclusion sentence


def test_grade_cites_the_primary_result(shared_data: Path, models) -> None:  # type: ignore[no-untyped-def]
    from synthesis.extract import extract
    from synthesis.grading import grade

    article = _nejm(shared_data)
    graded = grade(article, extract(article, models=models).findings)
    reason = next(r for r in graded.reasons if r.text.startswith("primary outcome"))
    assert "significantly increased" in reason.text and "progression-free survival" in reason.evidence.lower()
    assert graded.level == grade(article).level  # informative: it never moves the level


def test_a_yes_no_question_gets_a_position_with_its_cited_result_sentence(shared_data: Path, models) -> None:  # type: ignore[no-untyped-def]
    from synthesis.findings_models import load_answer_model
    from synthesis.position import is_polar, take_position
    from synthesis.readers import record_text

    article = _nejm(shared_data)
    text = record_text(article)
    question = "Does trametinib improve progression-free survival in BRAF V600 melanoma?"
    assert is_polar(question) and not is_polar("What is the effect of trametinib on survival?")
    rule = take_position(question, text, models=models)
    assert rule is not None and rule.basis == "direction-rule" and rule.answer == "yes"
    assert rule.quote and rule.quote in text and "progression-free survival" in rule.quote.lower()
    assert rule.direction == "increased"
    answerer = load_answer_model("shipped", 1)
    assert answerer is not None, "the shipped answer head is missing"
    position = take_position(question, text, answerer=answerer, models=models, record_id=article.record_id)
    assert position is not None and position.basis == "answer-model"
    assert position.answer in ("yes", "no", "maybe") and abs(sum(position.probabilities.values()) - 1) < 1e-3
    assert position.quote == rule.quote  # the sentence that carries it, whatever decides the answer
    assert take_position("Trametinib in melanoma", text, answerer=answerer, models=models) is None  # not polar


def test_models_list_and_pull_know_the_findings_models() -> None:
    from typer.testing import CliRunner

    from oncolit.cli.main import app

    listed = json.loads(CliRunner().invoke(app, ["models", "list", "--no-verify", "--json"]).stdout)
    encoders = {r["name"]: r for r in listed if r.get("kind") == "encoder"}
    assert {"minilm-reader", "minilm-direction"} <= set(encoders)
    assert all(r["pulled"] and r["size"] < 5_000_000 for r in encoders.values())
    pulled = CliRunner().invoke(app, ["models", "pull", "minilm-direction", "--json"])
    assert pulled.exit_code == 0 and json.loads(pulled.stdout)["task"] == "direction"


def test_arms_with_sizes_are_verbatim_and_tied_to_known_arms() -> None:
    from synthesis.findings_models.merge import arms_with_sizes, subject_phrase

    text = ("Patients were randomised to trametinib (n = 214) or chemotherapy (n = 108). Tumour samples (n = 12) "
            "were sequenced.")
    arms = arms_with_sizes(text, ["trametinib"], "chemotherapy")
    assert [(a.name, a.n) for a, _ in arms] == [("trametinib", 214), ("chemotherapy", 108)]
    assert all(text[q.start:q.end] == q.text for _, q in arms)  # verbatim quotes with offsets
    assert subject_phrase("At 6 months, the rate of overall survival was 81% in the trametinib group.") == \
        "rate of overall survival"
    assert subject_phrase("There was no significant difference in pain scores between groups.") == "pain scores"


def test_reading_more_records_than_the_cache_holds_returns_every_reading(models, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from synthesis.findings_models import runtime
    from synthesis.text import sentences_of

    monkeypatch.setattr(runtime, "CACHE_SIZE", 2)
    texts = [sentences_of(f"Pain was significantly lower with drug {i} than with placebo (p = 0.0{i + 1}).")
             for i in range(5)]
    readings = models.read_many(texts)
    assert len(readings) == 5 and len(models._cache) == 2  # noqa: SLF001
    assert [r.sentences[0].sentence.text for r in readings] == [t[0].text for t in texts]


def test_dev_split_is_the_builders_dev_articles_and_never_validation(tmp_path: Path) -> None:
    """`--split dev` (where settings chosen after training are tuned) must be exactly the articles the builder
    kept out of training, and `fit` the rest of train; neither may hold a validation article."""
    from eval.datasets.evidence_inference import split_ids
    from synthesis.finetune.encoder_data import build, read_rows

    folder = _ei_folder(tmp_path / "ei", n=40)
    build(folder, tmp_path / "out")
    dev_rows = {r["article"] for r in read_rows(tmp_path / "out" / "direction" / "dev.jsonl")}
    train_rows = {r["article"] for r in read_rows(tmp_path / "out" / "direction" / "train.jsonl")}
    dev, fit = split_ids(folder, "dev"), split_ids(folder, "fit")
    assert dev and fit and dev == dev_rows and fit == train_rows
    assert not (dev | fit) & {"PMC100", "PMC101"}


def test_directions_for_a_question_mix_the_best_ranked_sentences(shared_data: Path, models) -> None:  # type: ignore[no-untyped-def]
    from synthesis.findings_models.runtime import DIRECTION_TOP_K

    reading = models.read_article(_nejm(shared_data))
    pfs, = models.directions_for(reading, [("trametinib", "chemotherapy", "progression-free survival")])
    assert pfs is not None and "progression-free survival" in pfs.sentence.sentence.text.lower()
    assert pfs.direction == "increased" and pfs.confidence == pfs.probabilities["increased"]
    assert abs(sum(pfs.probabilities.values()) - 1) < 1e-3
    assert pfs.sentence is models.rank_for(reading, "trametinib", "chemotherapy", "progression-free survival")[0]
    # one batch for all questions: DIRECTION_TOP_K direction-model inputs each
    calls: list[int] = []
    real = models.directions
    models.directions = lambda items: calls.append(len(items)) or real(items)
    try:
        two = models.directions_for(reading, [("trametinib", "chemotherapy", "overall survival"),
                                              ("trametinib", "chemotherapy", "response rate")])
    finally:
        del models.directions
    assert len(two) == 2 and calls == [2 * DIRECTION_TOP_K]
