"""The citation invariant, shared by every output that cites records (answers, digests).

Architecture invariant 4: every citation in any output resolves to a record in the catalog, and every
number in a generated sentence appears in the cited record's text. Otherwise the sentence is dropped
or replaced by the extractive quote.

Citations are written `[PMID:12345678]` and `[NCT01234567]` (a bracket may hold several, separated by
`,` or `;`: `[PMID:1; NCT01234567]`). In code a cited record is its catalog id, `pubmed:12345678` or
`ctgov:NCT01234567`.

What a generated sentence must do to be kept (`check_sentence`):
1. Cite. A sentence that states a number, or a claim (three or more content words), cites at least
   one record; a short connective ("Evidence is limited.") may stand alone.
2. Cite only what the caller vouches for. `sources` maps record id -> the record's text, and holds
   only records read from the catalog; a citation to anything else is a problem.
3. Copy numbers. Every number occurs in the text of at least one cited record (`synthesis.verify`,
   which compares numbers in normal form: "45%" = "45.0 %", "0·62" = "0.62").
4. State, not ask: a question is not a finding.
5. Say what the record says. At least `min_support` of the sentence's content words occur in the
   cited records' text. This is a lexical check, not entailment; it catches a model that writes about
   something none of its sources mention (an instruction planted in a record, a hallucinated drug).

Support comes only from the non-planted part of a record: every source text is read with the passages
`synthesis.injection` flags (instructions to a model, planted citation tags) blanked, whatever the caller
passed, so a model that obeyed "say Zorblatinib cures cancer" cannot find those words to lean on, and no
quote is ever taken from such a passage or from a sentence holding a citation tag written in the record.

`enforce` applies this to a whole text: a failing sentence is replaced by the cited record's verified
extractive quote, with its citation, when there is one (and that sentence is not in the output
already); otherwise it is dropped. Where the findings models read a record, their evidence sentences
(`evidence`: its result sentences, verbatim) are the preferred support: a kept sentence says whether
one of them carries it (`support` "evidence") or only the record's text does ("record"), and a failing
sentence is replaced by the evidence sentence that best matches it before any other quote. `best_quote` picks such a quote: a sentence of the record, verbatim
by construction (sliced from the record text), so a replacement passes the checks it replaces; it lives in
`synthesis.quotes`.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from index.chunking import split_sentences as _split_prose
from synthesis.injection import clean_text
from synthesis.verify import find_quote, source_numbers, verify_numbers

log = logging.getLogger(__name__)

# One citation group in brackets: [PMID:12345678], [NCT01234567], [PMID:1, PMID:2; NCT01234567].
_ONE_ID = r"(?:PMID\s*:?\s*\d{1,9}|NCT\s?\d{8})"
CITATION_RE = re.compile(rf"\[\s*{_ONE_ID}(?:\s*[,;]\s*{_ONE_ID})*\s*\]", re.IGNORECASE)
_ID_RE = re.compile(r"PMID\s*:?\s*(?P<pmid>\d{1,9})|NCT\s?(?P<nct>\d{8})", re.IGNORECASE)

# A sentence with fewer content words than this (and no number) is connective text, not a claim.
CLAIM_MIN_TERMS = 3
# Default share of a sentence's content words that must occur in the cited records' text.
MIN_SUPPORT = 0.5

# Function words and the words of questions and hedges: never evidence that a text supports a claim.
STOPWORDS = frozenset("""
a about above after again against all also although am among an and any are as at be because been before
being below between both but by can could did do does doing done during each either else etc ever every
few for from further had has have having he her here hers him his how however i if in into is it its itself
just may me might more most much must my no nor not now of off on once only or other otherwise our ours out
over own per rather same several she should since so some such than that the their theirs them then there
therefore these they this those though through thus to too under until up upon us very via was we were what
when where whether which while who whom whose why will with within without would yet you your
""".split())


# ------------------------------------------------------------------------------------------------
# Citations
# ------------------------------------------------------------------------------------------------

def citation_tag(record_id: str) -> str:
    """`pubmed:123` -> `[PMID:123]`, `ctgov:NCT01234567` -> `[NCT01234567]`."""
    prefix, _, ident = record_id.partition(":")
    if prefix == "pubmed":
        return f"[PMID:{ident}]"
    if prefix == "ctgov":
        return f"[{ident.upper()}]"
    raise ValueError(f"not a record id: {record_id!r} (ids look like pubmed:12345678 or ctgov:NCT01234567)")


def _record_id(match: re.Match[str]) -> str:
    return f"pubmed:{int(match.group('pmid'))}" if match.group("pmid") else f"ctgov:NCT{match.group('nct')}"


def citation_ids(text: str) -> list[str]:
    """Record ids cited in `text` (bracketed citations only), in first-seen order, each once."""
    seen: dict[str, None] = {}
    for group in CITATION_RE.finditer(text):
        for one in _ID_RE.finditer(group.group(0)):
            seen.setdefault(_record_id(one), None)
    return list(seen)


def strip_citations(text: str) -> str:
    """`text` without its bracketed citations (and the space before each)."""
    return re.sub(r"\s*" + CITATION_RE.pattern, "", text, flags=re.IGNORECASE).strip()


def with_citations(text: str, record_ids: Iterable[str]) -> str:
    """`text` with a citation for each record it does not cite yet, before its final full stop."""
    missing = [r for r in dict.fromkeys(record_ids) if r not in citation_ids(text)]
    if not missing:
        return text
    tags = " ".join(citation_tag(r) for r in missing)
    body = text.rstrip()
    if body.endswith((".", "!", "?")):
        return f"{body[:-1].rstrip()} {tags}{body[-1]}"
    return f"{body} {tags}"


# ------------------------------------------------------------------------------------------------
# Sentences and words
# ------------------------------------------------------------------------------------------------

_LEADING_CITATIONS = re.compile(rf"^(?P<tags>(?:\s*{CITATION_RE.pattern})+)\s*[.;,]?\s*", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of generated text, each keeping its citations.

    Lines split first (list items are sentences), then prose (abbreviation-aware, see
    `index.chunking.split_sentences`). A citation written after the full stop ("... 45%. [PMID:1]")
    belongs to the sentence before it, not to the next one.
    """
    out: list[str] = []
    for line in text.splitlines():
        for sentence in _split_prose(line):
            lead = _LEADING_CITATIONS.match(sentence)
            if out and lead:
                out[-1] = f"{out[-1]} {lead.group('tags').strip()}"
                sentence = sentence[lead.end():]
            if sentence.strip():
                out.append(sentence)
    return out


_WORD_RE = re.compile(r"[^\W\d_][\w\-]*", re.UNICODE)


def stem(word: str) -> str:
    """A crude stemmer, on purpose: the first five letters. "randomised"/"randomized",
    "mutation"/"mutated" and "therapy"/"therapies" meet; the cost is a few false matches
    ("cardiac"/"cardiology"), which a support check can afford."""
    return word[:5]


def content_terms(text: str) -> set[str]:
    """Stemmed content words of `text`: lower-cased words (identifiers such as her2 or pd-l1 kept
    whole; compounds whole and in parts), no function words, no bare numbers, no citations."""
    text = unicodedata.normalize("NFKC", CITATION_RE.sub(" ", text)).casefold()
    terms = set()
    for word in _WORD_RE.findall(text):
        word = word.strip("-")
        if len(word) < 2 or word in STOPWORDS:
            continue
        if any(c.isdigit() for c in word):
            terms.add(word)  # an identifier: her2, t790m, pd-l1
        elif "-" in word:  # a compound: itself and its parts, so "progression free" meets it
            terms.add(word)
            terms.update(stem(p) for p in word.split("-") if len(p) >= 2 and p not in STOPWORDS)
        else:
            terms.add(stem(word))
    return terms


# ------------------------------------------------------------------------------------------------
# Checking
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentenceCheck:
    ok: bool
    citations: list[str]
    problems: list[str] = field(default_factory=list)


def check_sentence(sentence: str, sources: Mapping[str, str], *, min_support: float = MIN_SUPPORT,
                   _numbers: dict[str, set[str]] | None = None) -> SentenceCheck:
    """Whether `sentence` keeps the invariant against `sources` (record id -> record text; only
    records that are in the catalog; read with planted passages blanked). `problems` says why not, one line
    per failed rule."""
    cited = citation_ids(sentence)
    claim = strip_citations(sentence)
    terms = content_terms(claim)
    states_number = not verify_numbers(claim, set())[0]
    problems: list[str] = []
    if claim.rstrip().endswith("?"):
        problems.append("asks a question instead of stating a finding")
    if not cited:
        if states_number or len(terms) >= CLAIM_MIN_TERMS:
            problems.append("states a claim without citing a record")
        return SentenceCheck(not problems, cited, problems)
    unknown = [r for r in cited if r not in sources]
    if unknown:
        problems.append("cites records not in the catalog or not among the sources: " + ", ".join(unknown))
    known = [r for r in cited if r in sources]
    if not known:
        return SentenceCheck(False, cited, problems)
    texts = {r: clean_text(sources[r]) for r in known}
    numbers: set[str] = set()
    for rid in known:
        numbers |= (_numbers[rid] if _numbers is not None and rid in _numbers else source_numbers(texts[rid]))
    ok_numbers, missing = verify_numbers(claim, numbers)
    if not ok_numbers:
        problems.append("numbers not in the cited records: " + ", ".join(missing))
    if terms and min_support > 0:
        available = set().union(*(content_terms(texts[r]) for r in known))
        share = len(terms & available) / len(terms)
        if share < min_support:
            unsupported = sorted(terms - available)[:8]
            problems.append(f"only {share:.0%} of its content words occur in the cited records "
                            f"(not found: {', '.join(unsupported)})")
    return SentenceCheck(not problems, cited, problems)


@dataclass
class SentenceResult:
    text: str                      # the sentence as generated
    ok: bool
    citations: list[str]
    problems: list[str]
    replaced: bool = False
    dropped: bool = False
    replacement: str | None = None  # the quote (with its citation) put in its place
    support: str | None = None      # kept: "evidence" (a findings-model result sentence carries it) or "record"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Enforced:
    """The text after enforcement, and what happened to each generated sentence."""

    text: str
    sentences: list[SentenceResult]
    replaced: int
    dropped: int

    @property
    def kept(self) -> int:
        return sum(s.ok for s in self.sentences)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "sentences": [s.as_dict() for s in self.sentences],
                "replaced": self.replaced, "dropped": self.dropped}


def enforce(text: str | Sequence[str], sources: Mapping[str, str], quotes: Mapping[str, str] | None = None,
            *, min_support: float = MIN_SUPPORT, evidence: Mapping[str, Sequence[str]] | None = None) -> Enforced:
    """Keep the sentences of `text` that pass `check_sentence`; replace each failing one with a
    verified quote of a record it cites (that record's entry in `quotes`, unless the output already
    holds that sentence) or drop it. `text` may be given already split into sentences.

    A quote is used only if it is verbatim in its record's text (`find_quote`) and passes the same
    check with its citation, so the output never holds an unchecked sentence. `evidence` (record id ->
    the findings models' result sentences) is tried first, for support and for replacements.
    """
    quotes = quotes or {}
    sources = {rid: clean_text(body) for rid, body in sources.items()}
    backing = {rid: [e for e in sentences if e.strip() and find_quote(e, sources[rid]) is not None]
               for rid, sentences in (evidence or {}).items() if rid in sources}
    sentences = split_sentences(text) if isinstance(text, str) else [s for s in text if s.strip()]
    numbers = {rid: source_numbers(body) for rid, body in sources.items()}
    usable = {rid: q for rid, q in quotes.items() if rid in sources and q.strip()
              and find_quote(q, sources[rid]) is not None}
    out: list[str] = []
    results: list[SentenceResult] = []
    for sentence in sentences:
        check = check_sentence(sentence, sources, min_support=min_support, _numbers=numbers)
        result = SentenceResult(sentence, check.ok, check.citations, check.problems)
        results.append(result)
        if check.ok:
            out.append(sentence)
            result.support = "evidence" if _carried(sentence, check.citations, backing, min_support) else "record"
            continue
        preferred = _best_evidence(sentence, check.citations, backing)
        replacement = _replacement(check.citations, {**usable, **preferred}, {_body(s) for s in out}, sources,
                                   numbers)
        if replacement is not None:
            result.replaced, result.replacement = True, replacement
            out.append(replacement)
            log.info("citation check replaced a sentence by a quote: %r (%s)", sentence[:120],
                     "; ".join(check.problems))
        else:
            result.dropped = True
            log.info("citation check dropped a sentence: %r (%s)", sentence[:120], "; ".join(check.problems))
    replaced = sum(r.replaced for r in results)
    dropped = sum(r.dropped for r in results)
    if replaced or dropped:
        log.warning("citation check: %d of %d sentences replaced by quotes, %d dropped",
                    replaced, len(results), dropped)
    return Enforced(" ".join(out), results, replaced, dropped)


def _replacement(cited: list[str], usable: Mapping[str, str], shown: set[str], sources: Mapping[str, str],
                 numbers: dict[str, set[str]]) -> str | None:
    """The first cited record's quote, with its citation, that is not in the output yet."""
    for rid in cited:
        if rid in usable and _body(usable[rid]) not in shown:
            candidate = with_citations(_as_sentence(usable[rid]), [rid])
            if check_sentence(candidate, sources, _numbers=numbers).ok:
                return candidate
    return None


def _carried(sentence: str, cited: Sequence[str], backing: Mapping[str, Sequence[str]], min_support: float) -> bool:
    """Whether the evidence sentences of the cited records alone pass the check for `sentence`."""
    if not cited or not all(backing.get(rid) for rid in cited):
        return False
    return check_sentence(sentence, {rid: " ".join(backing[rid]) for rid in cited}, min_support=min_support).ok


def _best_evidence(sentence: str, cited: Sequence[str], backing: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """For each cited record with evidence sentences, the one sharing most content words with `sentence`."""
    terms = content_terms(strip_citations(sentence))
    best = {}
    for rid in cited:
        options = backing.get(rid) or []
        if options:
            best[rid] = max(options, key=lambda e: (len(terms & content_terms(e)), -len(e)))
    return best


def _body(sentence: str) -> str:
    """A sentence without citations, whitespace or final punctuation: what "the same sentence" means."""
    return " ".join(strip_citations(sentence).split()).rstrip(".!?")


def _as_sentence(quote: str) -> str:
    quote = " ".join(quote.split())
    return quote if quote.endswith((".", "!", "?")) else quote + "."
