"""Digest content on real records: what is new, relevance and evidence ranking, caps, key findings,
and the citation invariant on LLM overviews (scripted replies and the real small model).

The helpers at the top (catalog of real records, settings, an SMTP sink on loopback) are shared with
test_digest_delivery.py and test_digest_render.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path, parse_study
from ingest.pubmed_xml import iter_pubmed_file, parse_pubmed_xml
from ingest.records import CommentCorrection
from ingest.source import ParsedItem
from oncolit.delivery.settings import DigestSettings, SmtpSettings
from oncolit.settings import Settings
from synthesis import digest as dg
from synthesis.citations import check_sentence, citation_ids
from synthesis.llm import ScriptedLLM
from synthesis.verify import find_quote

ONCOLOGY = re.compile(r"cancer|carcinoma|tumou?r|neoplasm|lymphoma|leukemia|melanoma|oncolog|metasta", re.I)
NEJM = "pubmed:22663011"  # MEK inhibition in BRAF-mutated melanoma (real 2026 efetch), an RCT
EGFR_TRIAL = "ctgov:NCT06382129"
DAY = dt.date(2026, 11, 27)

# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------

if {"smtp", "digest"} <= set(Settings.model_fields):
    _Settings: type[Settings] = Settings
else:  # until the two sections are wired into oncolit.settings.Settings
    class _Settings(Settings):  # type: ignore[no-redef]
        smtp: SmtpSettings = Field(default_factory=SmtpSettings)
        digest: DigestSettings = Field(default_factory=DigestSettings)


def make_settings(data_dir: Path, *, smtp_port: int | None = None, **digest: Any) -> Settings:
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port or 25, starttls=False,
                        sender="OncoLit <digests@oncolit.test>")
    return _Settings(data_dir=data_dir, smtp=smtp, digest=DigestSettings(**{"use_index": False, **digest}))


def real_items(shared_data: Path) -> list[ParsedItem]:
    """The oncology part of the PubMedQA file, the NEJM RCT and the recorded CT.gov studies (~95 records)."""
    items = [i for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz")
             if ONCOLOGY.search(i.record.title + " " + i.record.abstract_text)]
    nejm_xml = shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml"
    items += parse_pubmed_xml(nejm_xml.read_bytes())
    for path in sorted((shared_data / "ctgov" / "real" / "biomcp").glob("get_*.json")):
        items += list(iter_ctgov_path(path))
    return items


def nejm(catalog: Catalog):
    return catalog.get_record(NEJM)


def hostile_article(catalog: Catalog, pmid: str = "99990001") -> ParsedItem:
    """A melanoma RCT whose title tries to inject markup and script into the e-mail."""
    base = nejm(catalog)
    record = base.model_copy(update={
        "pmid": pmid, "doi": f"10.9999/x<y>&z\"{pmid}", "databanks": [],
        "title": 'BRAF melanoma <script>alert("x")</script> <img src=x onerror=alert(1)> & "MEK"'})
    return ParsedItem(record, b"<PubmedArticle/>", "pubmed-xml")


def new_article(catalog: Catalog, pmid: str, title: str) -> ParsedItem:
    record = nejm(catalog).model_copy(update={"pmid": pmid, "title": title, "doi": None, "databanks": []})
    return ParsedItem(record, b"<PubmedArticle/>", "pubmed-xml")


def retraction_notice(catalog: Catalog, target_pmid: str, pmid: str = "99990077") -> ParsedItem:
    base = nejm(catalog)
    record = base.model_copy(update={
        "pmid": pmid, "title": "Retraction notice", "abstract": [], "doi": None, "databanks": [],
        "publication_types": ["Retraction of Publication"],
        "comments_corrections": [CommentCorrection(ref_type="RetractionOf", pmid=target_pmid)]})
    return ParsedItem(record, b"<PubmedArticle/>", "pubmed-xml")


def trial_revision(shared_data: Path, status: str = "COMPLETED") -> ParsedItem:
    """NCT06382129 as CT.gov would show it after a status change and results posting."""
    raw = json.loads((shared_data / "ctgov" / "real" / "biomcp" / "get_nct06382129_20260811.json").read_text())
    module = raw["protocolSection"]["statusModule"]
    module["overallStatus"] = status
    module["resultsFirstPostDateStruct"] = {"date": "2026-11-20", "type": "ACTUAL"}
    body = json.dumps(raw).encode()
    return ParsedItem(parse_study(raw), body, "ctgov-json")


@contextmanager
def real_catalog(shared_data: Path, data_dir: Path, url: str | None = None) -> Iterator[Catalog]:
    """The real records in a catalog: `url`, else the data dir's SQLite file (what settings point at)."""
    with Catalog(url or f"sqlite:///{data_dir / 'catalog.sqlite'}") as cat:
        cat.ingest_batch(real_items(shared_data))
        yield cat


@pytest.fixture
def catalog(shared_data: Path, isolated_env: Path, catalog_url: str) -> Iterator[Catalog]:
    """On SQLite and on PostgreSQL in turn (conftest `catalog_url`)."""
    with real_catalog(shared_data, isolated_env, catalog_url) as cat:
        yield cat


def melanoma_topics() -> list[dg.Topic]:
    return [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma"),
            dg.Topic(name="Lung", query="non-small cell lung cancer EGFR")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """aiosmtpd handler: keeps what it accepts; can refuse, or kill the sender right after accepting."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refuse_rcpt = 0
        self.kill_pid: int | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if self.refuse_rcpt:
            self.refuse_rcpt -= 1
            return "550 5.1.1 mailbox unavailable (test refusal)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append(envelope.original_content or envelope.content)
        if self.kill_pid is not None:
            import os
            import signal
            os.kill(self.kill_pid, signal.SIGKILL)  # accepted, and the sender dies before logging it
            self.kill_pid = None
        return "250 2.0.0 accepted"


@contextmanager
def smtp_server(**options: Any) -> Iterator[tuple[Sink, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, handled by a `Sink`."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    with smtp_server() as server:
        yield server


# ------------------------------------------------------------------------------------------------
# Content
# ------------------------------------------------------------------------------------------------

def _window(catalog: Catalog) -> dg.Window:
    return dg.window_after(catalog, None, 14)


def test_new_records_ranked_grouped_capped_with_verified_findings(catalog: Catalog) -> None:
    doc = dg.build_digest(catalog, melanoma_topics(), _window(catalog), period_end=DAY,
                          config=dg.DigestConfig(max_items_per_topic=3))
    topics = {t["name"]: t for t in doc["topics"]}
    melanoma = topics["Melanoma"]["items"]
    assert melanoma[0]["record_id"] == NEJM
    top = melanoma[0]
    assert top["design"] == "rct" and top["level"] == "1b" and top["badge"].startswith("RCT")
    assert top["grade_reason"] and "\n" not in top["grade_reason"]
    assert {link["url"] for link in top["links"]} >= {
        "https://pubmed.ncbi.nlm.nih.gov/22663011/", "https://doi.org/10.1056/NEJMoa1203421",
        "https://clinicaltrials.gov/study/NCT01245062"}
    assert "N Engl J Med. 2012;367(2):107-14" in top["citation"] and "PMID: 22663011" in top["citation"]
    assert top["key_finding"]["kind"] == "quote"
    assert find_quote(top["key_finding"]["text"], dg.source_text(nejm(catalog))) is not None
    # Lung: capped at three, the rest counted; trials carry a checked registry sentence.
    lung = topics["Lung"]
    assert len(lung["items"]) == 3 and lung["more"] >= 1
    scores = [i["score"] for i in lung["items"]]
    assert scores == sorted(scores, reverse=True)
    trial = next(i for i in lung["items"] if i["kind"] == "trial")
    assert trial["key_finding"]["kind"] == "generated"
    assert re.fullmatch(r"[A-Z][^.]*(recruiting|completed)[^.]*; enrolment \d+ participants\.",
                        trial["key_finding"]["text"])
    assert trial["links"][0]["url"].startswith("https://clinicaltrials.gov/study/NCT")
    # Each record once; every id cited is in the catalog and in the digest.
    ids = doc["item_ids"]
    assert len(ids) == len(set(ids)) == doc["counts"]["shown"]
    assert set(doc["cited"]) <= set(ids) and all(catalog.exists(r) for r in doc["cited"])
    assert doc["counts"]["more"] == sum(t["more"] for t in doc["topics"])


def test_min_level_and_filters(catalog: Catalog) -> None:
    window = _window(catalog)
    everything = dg.build_digest(catalog, melanoma_topics(), window, period_end=DAY)
    strong = dg.build_digest(catalog, melanoma_topics(), window, period_end=DAY, min_level="2")
    assert strong["counts"]["below_level"] > 0
    assert all(i["level_rank"] <= dg.RANK["2b"] for t in strong["topics"] for i in t["items"])
    assert len(strong["item_ids"]) < len(everything["item_ids"]) and NEJM in strong["item_ids"]
    assert dg.normalise_level("3") == "3b" and dg.normalise_level("1A") == "1a"
    with pytest.raises(ValueError):
        dg.normalise_level("7")
    # A gene filter keeps only records naming it; a site filter likewise.
    braf = dg.build_digest(catalog, [dg.Topic(name="BRAF", query="BRAF", genes=["BRAF"])], window, period_end=DAY)
    assert NEJM in braf["item_ids"]
    for rid in braf["item_ids"]:
        row, record = next(catalog.iter_records([rid]))
        assert re.search(r"(?<![A-Za-z0-9])BRAF(?![A-Za-z0-9])", dg.source_text(record) + str(record.model_dump()))


def test_window_new_then_trial_changes_then_nothing(catalog: Catalog, shared_data: Path) -> None:
    first = _window(catalog)
    assert {c.reason for c in dg.candidates(catalog, first)} == {"new"}
    # The next window starts at this mark: nothing new yet.
    second = dg.window_after(catalog, first.to_time, 14)
    assert dg.candidates(catalog, second) == []
    # A trial changes status and posts results; an article is revised (not news).
    revised = nejm(catalog).model_copy(update={"title": nejm(catalog).title + " (corrected)"})
    catalog.ingest_batch([trial_revision(shared_data), ParsedItem(revised, b"<PubmedArticle/>", "pubmed-xml")])
    third = dg.window_after(catalog, second.to_time, 14)
    pool = dg.candidates(catalog, third)
    assert [(c.record_id, c.reason) for c in pool] == [(EGFR_TRIAL, "changed")]
    assert {ch["field"] for ch in pool[0].changes} >= {"overall_status", "results_first_posted"}
    doc = dg.build_digest(catalog, melanoma_topics(), third, period_end=DAY, pool=pool)
    item = doc["topics"][0]["items"][0]
    assert item["record_id"] == EGFR_TRIAL and item["reason"] == "changed"
    assert item["novelty"] == dg.NOVELTY["results_posted"]
    text = item["key_finding"]["text"]
    assert "Status changed from active, not recruiting to completed." in text
    assert "Results posted on ClinicalTrials.gov (2026-11-20)." in text
    assert check_sentence(f"{text} [NCT06382129]", {EGFR_TRIAL: dg.source_text(catalog.get_record(EGFR_TRIAL),
                                                                                pool[0].changes)}).ok


def test_overview_sentences_are_checked_replaced_counted_and_logged(catalog: Catalog,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    topics = [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma")]
    llm = ScriptedLLM().enqueue(
        "Trametinib improved progression-free survival in BRAF V600E or V600K melanoma [PMID:22663011]. "
        "Trametinib improved overall survival by 47 months in melanoma [PMID:22663011]. "   # wrong number
        "A randomised trial of this drug in melanoma reported the main survival result [PMID:11111111]. "  # unknown
        "Overall this is")  # cut off: no citation
    with caplog.at_level(logging.INFO):
        doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=llm)
    overview = doc["topics"][0]["overview"]
    items = doc["topics"][0]["items"]
    assert overview["kind"] == "generated" and overview["sentences"] == 4
    assert overview["replaced"] == 1 and overview["dropped"] == 2
    assert doc["counts"]["replaced"] == 1 and doc["counts"]["dropped"] == 2
    assert "47 months" not in overview["text"] and "11111111" not in overview["text"]
    # The replacement is the record's verified quote; every sentence left cites a record in the digest.
    assert items[0]["key_finding"]["text"].split(".")[0] in overview["text"]
    assert set(citation_ids(overview["text"])) <= {i["record_id"] for i in items}
    sources = {i["record_id"]: dg.source_text(catalog.get_record(i["record_id"])) for i in items}
    from synthesis.citations import split_sentences
    assert all(check_sentence(s, sources).ok for s in split_sentences(overview["text"]))
    assert any("replaced" in r.getMessage() and "Melanoma" in r.getMessage() for r in caplog.records)
    # The prompt fenced the record text as data.
    prompt = llm.calls[0]["messages"][1]["content"]
    assert dg.BEGIN_MARKER in prompt and "[PMID:22663011]" in prompt


def test_overview_json_reply_cites_through_the_schema_and_a_cut_off_reply_keeps_finished_sentences(
        catalog: Catalog) -> None:
    topics = [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma")]
    finished = {"text": "Trametinib improved progression-free survival in BRAF V600E or V600K melanoma",
                "citations": ["[PMID:22663011]"]}
    llm = ScriptedLLM().enqueue({"sentences": [finished, {"text": "It was tested in melanoma.", "citations": []}]})
    doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=llm)
    overview = doc["topics"][0]["overview"]
    assert overview["kind"] == "generated" and overview["sentences"] == 2 and overview["dropped"] == 1
    assert overview["text"] == ("Trametinib improved progression-free survival in BRAF V600E or V600K melanoma "
                                "[PMID:22663011].")
    schema = llm.calls[0]["json_schema"]["properties"]["sentences"]["items"]["properties"]["citations"]["items"]
    assert "[PMID:22663011]" in schema["enum"] and dg.OVERVIEW_V2.id == "digest-overview/v2"
    # max_tokens cut the JSON off mid-sentence: the finished sentence stays, no fragment reaches the digest
    cut = '{"sentences": [' + json.dumps(finished) + ', {"text": "Overall survival was 47 mon'
    doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=ScriptedLLM().enqueue(cut))
    overview = doc["topics"][0]["overview"]
    assert overview["kind"] == "generated" and "{" not in overview["text"] and "47" not in overview["text"]
    assert citation_ids(overview["text"]) == ["pubmed:22663011"]


def test_overview_without_a_model_is_extractive_and_a_failing_model_falls_back(catalog: Catalog) -> None:
    topics = [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma")]
    doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=None)
    ov = doc["topics"][0]["overview"]
    assert ov["kind"] == "extractive" and citation_ids(ov["text"])[0] == NEJM
    failing = ScriptedLLM()  # nothing queued: the call raises LLMError
    doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=failing)
    ov = doc["topics"][0]["overview"]
    assert ov["kind"] == "extractive" and ov["error"] and citation_ids(ov["text"])[0] == NEJM


def test_real_small_model_output_keeps_the_invariant(catalog: Catalog, tmp_path: Path) -> None:
    """SmolLM2-135M writes whatever it writes; what reaches the digest must still pass every check."""
    from synthesis.llm import TEST_MODEL, make_llm, pull

    pull(TEST_MODEL, tmp_path / "models")
    topics = [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma")]
    config = dg.DigestConfig(overview_items=2, overview_max_tokens=96)
    with make_llm("llamacpp", TEST_MODEL, models_dir=tmp_path / "models", n_ctx=1024) as llm:
        doc = dg.build_digest(catalog, topics, _window(catalog), period_end=DAY, llm=llm, config=config)
    overview = doc["topics"][0]["overview"]
    items = doc["topics"][0]["items"]
    assert overview["kind"] in ("generated", "extractive")
    assert overview["text"], "the extractive overview stands in when nothing generated survives"
    cited = set(citation_ids(overview["text"]))
    assert cited and cited <= {i["record_id"] for i in items}
    sources = {i["record_id"]: dg.source_text(catalog.get_record(i["record_id"])) for i in items}
    from synthesis.citations import split_sentences
    for sentence in split_sentences(overview["text"]):
        check = check_sentence(sentence, sources)
        assert check.ok and check.citations, (sentence, check.problems)


def test_index_similarity_finds_what_keywords_miss(shared_data: Path, isolated_env: Path) -> None:
    """With a synced index, relevance adds dense similarity: a topic sharing no word with the NEJM
    abstract still finds it; without the index the same topic lists nothing."""
    from index.sync import sync
    from oncolit.delivery.run import index_scorer
    from oncolit.resources import open_resources
    from oncolit.wiring import open_index

    settings = make_settings(isolated_env, use_index=True)
    items = [i for i in real_items(shared_data) if i.record.record_id in (NEJM, "pubmed:19327500")]
    topic = [dg.Topic(name="MAPK", query="MAPK pathway blockade in cutaneous malignancy")]
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
        window = _window(catalog)
        assert dg.build_digest(catalog, topic, window, period_end=DAY)["item_ids"] == []
        with open_index(settings) as handle:
            assert sync(catalog, handle).records_indexed == 2
        with open_resources(settings, catalog=catalog) as res:
            scorer = index_scorer(settings, res)
            assert isinstance(scorer, dg.IndexScorer)
            doc = dg.build_digest(catalog, topic, window, period_end=DAY, scorer=scorer)
    assert doc["item_ids"][0] == NEJM
    assert 0.25 <= doc["topics"][0]["items"][0]["relevance"] <= 0.5  # half of a cosine, no keyword share


def test_a_record_pubmed_gives_no_title_is_headed_as_untitled_not_not_available() -> None:
    from synthesis.digest import shown_title

    assert shown_title("[Not Available].", "pubmed:22934253") == "Untitled record (PMID 22934253)"
    assert shown_title(None, "ctgov:NCT1") == "Untitled record (ctgov:NCT1)"
    assert shown_title("Improved survival with MEK inhibition.", "pubmed:1") == "Improved survival with MEK inhibition."
