"""The first stage of a digest: which records it may list and how relevant each is to a topic.

    catalog window (from_time, to_time] ──> candidates: new articles, new trials, trial changes that matter
             topics ──> relevance (keywords; + dense similarity when the index is there) ──> matched

Split from `synthesis.digest` (which re-exports every public name here, so callers keep importing from it);
the module docstring there says what "new since the last digest" means and how relevance is scored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.records.article import Article
from ingest.records.trial import Trial

MATTERING_CHANGES = ("overall_status", "has_results", "results_first_posted", "primary_outcomes")
TITLE_WEIGHT, BODY_WEIGHT = 1.0, 0.7
SEARCH_BASE = 0.5

# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

class Topic(BaseModel):
    """One interest of a subscriber. Free text, a saved search, cancer sites and genes may be combined."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    query: str = Field("", max_length=500, description="Free-text interest, e.g. 'BRAF MEK inhibitor melanoma'.")
    search: str | None = Field(None, max_length=100, description="A saved search: only records it brought in.")
    sites: list[str] = Field(default_factory=list, max_length=20, description="Cancer sites; a record must name one.")
    genes: list[str] = Field(default_factory=list, max_length=20, description="Genes/biomarkers; a record must "
                                                                              "name one.")

    def text(self, search_query: str = "") -> str:
        """The words relevance and quotes are scored against."""
        return " ".join(p for p in (self.query, clean_query(search_query), *self.sites, *self.genes) if p).strip() \
            or self.name



@dataclass(frozen=True)
class Window:
    """The slice of the catalog a digest covers: versions first seen in (from_time, to_time]."""

    from_time: dt.datetime | None
    to_time: dt.datetime | None
    to_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {"from_time": _iso(self.from_time), "to_time": _iso(self.to_time), "to_seq": self.to_seq}


class SemanticScorer(Protocol):
    """Similarity of records to a query in [0, 1] (the vector index; see `IndexScorer`)."""

    def similarity(self, query: str, record_ids: Sequence[str]) -> dict[str, float]: ...


@dataclass
class IndexScorer:
    """Similarity from the index, restricted to `record_ids`: the best chunk's dense cosine per record, and, when
    the searcher has a reranker, the mean of that cosine and the reranker's 0-1 relevance for the closest
    `2 x rerank_depth` records (the rest count the reranker as 0: a digest window can hold hundreds of records,
    and reading all of them per topic costs minutes on a CPU)."""

    searcher: Any

    def similarity(self, query: str, record_ids: Sequence[str]) -> dict[str, float]:
        from index.store import SearchFilter

        if not record_ids or not query.strip():
            return {}
        hits = self.searcher.search(query, SearchFilter(record_ids=tuple(record_ids)), limit=len(record_ids),
                                    mode="dense", rerank=False)
        cosine = {h.record_id: max(0.0, min(1.0, float(h.score))) for h in hits}
        reranker = getattr(self.searcher, "reranker", None)
        if reranker is None or not getattr(self.searcher, "rerank", False):
            return cosine
        top = hits[:2 * int(getattr(self.searcher, "rerank_depth", 30))]
        read = dict(zip((h.record_id for h in top),
                        reranker.score(query, [f"{h.title} {h.passage}".strip() for h in top])))
        return {rid: 0.5 * c + 0.5 * read.get(rid, 0.0) for rid, c in cosine.items()}


def catalog_mark(catalog: Catalog) -> tuple[int, dt.datetime | None]:
    """(highest change_seq, newest version first_seen) in one statement, so both describe one snapshot."""
    seq = select(func.coalesce(func.max(t.records.c.change_seq), 0)).scalar_subquery()
    newest = select(func.max(t.record_versions.c.first_seen)).scalar_subquery()
    with catalog.engine.connect() as conn:
        row = conn.execute(select(seq, newest)).one()
    return int(row[0] or 0), _utc(row[1])


def window_after(catalog: Catalog, previous_to: dt.datetime | None, first_lookback_days: int) -> Window:
    """The window of the next digest: after the previous digest's mark, else a look-back from now's mark."""
    seq, newest = catalog_mark(catalog)
    if previous_to is not None:
        start: dt.datetime | None = _utc(previous_to)
    elif newest is not None:
        start = newest - dt.timedelta(days=first_lookback_days)
        start -= dt.timedelta(microseconds=1)  # the look-back includes its first instant
    else:
        start = None
    return Window(start, newest, seq)


# ------------------------------------------------------------------------------------------------
# Candidates: what is new or changed in the window
# ------------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    record_id: str
    kind: str  # article | trial
    reason: str  # new | changed
    record: Article | Trial
    version: int
    changes: list[dict[str, Any]] = field(default_factory=list)  # trial changes that matter
    title_terms: set[str] = field(default_factory=set)
    body_terms: set[str] = field(default_factory=set)
    search_text: str = ""


def candidates(catalog: Catalog, window: Window) -> list[Candidate]:
    """New articles, new trials and trials whose changes matter, in the window; active, not retracted."""
    if window.to_time is None:
        return []
    v = t.record_versions.c
    query = select(v.record_id, v.version, v.changes).where(v.first_seen <= window.to_time)
    if window.from_time is not None:
        query = query.where(v.first_seen > window.from_time)
    with catalog.engine.connect() as conn:
        rows = conn.execute(query.order_by(v.record_id, v.version)).all()
    versions: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {}
    for rid, version, changes in rows:
        versions.setdefault(rid, []).append((version, changes or []))
    out: list[Candidate] = []
    for row, record in catalog.iter_records(versions, active_only=True):
        if row["retracted"] or not isinstance(record, (Article, Trial)):
            continue
        seen = versions[row["id"]]
        if seen[0][0] == 1:
            reason, changes = "new", []
        elif isinstance(record, Trial):
            changes = [c for _, cs in seen for c in cs if c.get("field") in MATTERING_CHANGES]
            if not changes:
                continue
            reason = "changed"
        else:
            continue  # a revised article is not news
        if isinstance(record, Trial) and record.withdrawn and reason == "new":
            continue
        out.append(_candidate(row["id"], record, row["current_version"], reason, changes))
    return out


def _candidate(rid: str, record: Article | Trial, version: int, reason: str,
               changes: list[dict[str, Any]]) -> Candidate:
    title = record.title
    if isinstance(record, Article):
        extra = [h.descriptor for h in record.mesh_headings] + record.keywords + [c.name for c in record.chemicals]
        body = "\n".join([record.abstract_text, *extra])
    else:
        body = "\n".join([record.text, *record.conditions, *(m.term for m in record.condition_mesh)])
    return Candidate(rid, "article" if isinstance(record, Article) else "trial", reason, record, version, changes,
                     lexical_terms(title), lexical_terms(body), f"{title}\n{body}")


# ------------------------------------------------------------------------------------------------
# Relevance
# ------------------------------------------------------------------------------------------------

_FIELD_TAG = re.compile(r"\[[^\]]*\]")
_BOOLEAN = re.compile(r"\b(?:AND|OR|NOT)\b")


def clean_query(query: str) -> str:
    """A saved search's query as words: PubMed field tags, boolean operators and syntax removed."""
    text = _BOOLEAN.sub(" ", _FIELD_TAG.sub(" ", query or ""))
    return " ".join(re.sub(r"[()\"*]", " ", text).split())


# Longest first; a suffix goes only if at least four letters remain ("inhibitor", "inhibition" and
# "inhibited" meet; "inhibin" does not).
_SUFFIXES = ("izations", "isations", "ization", "isation", "ations", "itions", "ation", "ition", "ments", "ment",
             "ions", "ion", "ors", "or", "ers", "er", "ing", "ed", "s")


def _stem(token: str) -> str:
    token = re.sub(r"our$", "or", token)  # tumour -> tumor
    token = re.sub(r"^(h|an|leuk|septic)ae", r"\1e", token)  # haematology, anaemia, leukaemia
    if any(ch.isdigit() for ch in token) or "-" in token:
        return token  # identifiers (v600e, pd-l1, her2) stay whole
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 4 and not token.endswith(("ss", "us", "is")):
            return token[:-len(suffix)]
    return token


def lexical_terms(text: str) -> set[str]:
    """Words for relevance: the index's tokenizer (biomedical tokens kept whole, function words out),
    numbers out, light stemming. Stricter than `citations.content_terms`, which only checks support."""
    from index.sparse import tokenize

    return {_stem(tok) for tok in tokenize(text) if not tok.replace(".", "").isdigit() and len(tok) > 1}


def query_terms(text: str) -> set[str]:
    """A query's words: like `lexical_terms`, but a compound ("non-small", "pd-l1") is not also
    matched by its parts, which say much less ("non", "small")."""
    from index.sparse import tokenize

    tokens = [tok for tok in tokenize(text) if not tok.replace(".", "").isdigit() and len(tok) > 1]
    parts = {part for tok in tokens if "-" in tok or "/" in tok for part in re.split(r"[-/]", tok)}
    return {_stem(tok) for tok in tokens if tok not in parts}


def lexical_score(topic_terms: set[str], c: Candidate, idf: Mapping[str, float]) -> float:
    """Share of the topic's words the record holds, each weighted by its rarity among the candidates;
    a word in the title counts fully, elsewhere 0.7."""
    if not topic_terms:
        return 0.0
    total = sum(idf.get(term, 1.0) for term in topic_terms)
    got = sum(idf.get(term, 1.0) * (TITLE_WEIGHT if term in c.title_terms else BODY_WEIGHT if term in c.body_terms
                                    else 0.0) for term in topic_terms)
    return got / total


def rarity(terms: set[str], cands: Sequence[Candidate]) -> dict[str, float]:
    """IDF of each term over the candidates: log(1 + N / (1 + df))."""
    n = len(cands)
    return {term: math.log(1 + n / (1 + sum(term in c.title_terms or term in c.body_terms for c in cands)))
            for term in terms}


def _mentions(text: str, phrase: str) -> bool:
    """A site or gene mentioned as a whole token sequence ("BRAF" in "BRAF-mutant", not in "BRAFi")."""
    words = [re.escape(w) for w in phrase.split()]
    if not words:
        return False
    pattern = r"(?<![A-Za-z0-9])" + r"[\s\-]+".join(words) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _site_match(c: Candidate, site: str) -> bool:
    terms = lexical_terms(site)
    return bool(terms) and terms <= (c.title_terms | c.body_terms) or _mentions(c.search_text, site)


def relevance(topic: Topic, cands: Sequence[Candidate], *, search_members: set[str] | None = None,
              search_query: str = "", scorer: SemanticScorer | None = None) -> dict[str, float]:
    """Relevance in [0, 1] of each candidate to `topic` (0 for those it filters out)."""
    text = topic.text(search_query)
    terms = query_terms(text)
    pool = [c for c in cands
            if (search_members is None or c.record_id in search_members)
            and (not topic.sites or any(_site_match(c, s) for s in topic.sites))
            and (not topic.genes or any(_mentions(c.search_text, g) for g in topic.genes))]
    semantic = scorer.similarity(text, [c.record_id for c in pool]) if scorer is not None and pool else None
    idf = rarity(terms, cands)
    out: dict[str, float] = {}
    for c in pool:
        score = lexical_score(terms, c, idf)
        if semantic is not None:
            score = 0.5 * score + 0.5 * semantic.get(c.record_id, 0.0)
        if search_members is not None:
            score = SEARCH_BASE + (1 - SEARCH_BASE) * score
        out[c.record_id] = round(min(1.0, score), 6)
    return out


def search_members(catalog: Catalog, name: str) -> tuple[set[str], str]:
    """Record ids a saved search brought in (any of its ingest runs) and its query text."""
    r, v = t.ingest_runs.c, t.record_versions.c
    with catalog.engine.connect() as conn:
        ids = set(conn.execute(select(v.record_id).distinct().select_from(
            t.record_versions.join(t.ingest_runs, v.run_id == r.id)).where(r.search_name == name)).scalars())
        query = conn.execute(select(t.saved_searches.c.query).where(t.saved_searches.c.name == name)).scalar()
    return ids, query or ""


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
