"""Query expansion from the catalog's own vocabulary: "non-small cell lung cancer" also looks for "NSCLC",
"Keytruda" also for "pembrolizumab" and "MK-3475".

Why: BM25 only meets words the query spells, and abstracts switch to their abbreviations after the first
sentence; trial registrations name a drug by code, brand or generic name. No external vocabulary (UMLS, MeSH
entry terms) is available offline, so the synonyms are learned from the records themselves:

- `abbreviation`: definitions written in titles and abstracts (`index.abbreviations`, Schwartz-Hearst style);
- `intervention`: a CT.gov intervention's name and its other names (brand, generic, code);
- `mesh`: a record's short forms (defined ones and abbreviation-like keywords) matched letter by letter against
  the same record's MeSH terms and multi-word keywords ("NSCLC" <-> "Non-Small-Cell Lung Carcinoma").

Every pair is kept per record (`SynonymTable`, SQLite beside the index cursor), so a revised, deleted or
excluded record takes its pairs with it and the counts stay true; the table follows the catalog's change_seq
with its own cursor (`SynonymTable.follow`, called by `index.sync.sync` through the handle), so an index synced
before the table existed gets it on the next sync. At query time `QueryExpander` finds the table's terms in a
query (longest match first) and proposes their synonyms with a weight: `weight` x the share of the term's
records that pair it with that synonym (an "ER" that is "estrogen receptor" in 16 records and "endoplasmic
reticulum" in 7 proposes both, the first more strongly), divided by the square root of the synonym's token
count so that a six-word long form does not outweigh the one word it stands for. Pairs seen in fewer than
`min_records` records or with a share under `min_share` are not used. Short forms match only with the case
they were written in (so "all" is not "ALL"), except in an all-lower-case query, where short forms of four or
more characters match in any case ("nsclc").
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.abbreviations import find_abbreviations, looks_short, match_long_form
from index.sparse import STOPWORDS, tokenize
from ingest.records import Article, Trial

if TYPE_CHECKING:
    from ingest.catalog import Catalog

ABBREVIATION, INTERVENTION, MESH = "abbreviation", "intervention", "mesh"
MAX_TERM_WORDS = 8  # longer "names" are descriptions, not names
MAX_GROUP = 8  # intervention names per group considered
_PART = re.compile(r"[^\W_]+")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (record_id TEXT NOT NULL, kind TEXT NOT NULL, a_key TEXT NOT NULL,
    a_text TEXT NOT NULL, b_key TEXT NOT NULL, b_text TEXT NOT NULL, PRIMARY KEY (record_id, kind, a_key, b_key))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _parts(text: str) -> list[str]:
    """Words as keys see them: NFKC, alphanumeric runs ("non-small" -> "non", "small"), no function words."""
    return [p for p in _PART.findall(unicodedata.normalize("NFKC", text)) if p.casefold() not in STOPWORDS]


def term_key(text: str) -> str:
    """"Non-small-cell lung cancer" and "non small cell lung cancer" share the key "non small cell lung cancer"."""
    return " ".join(p.casefold() for p in _parts(text))


@dataclass(frozen=True)
class Pair:
    """One synonym pair seen in one record. For abbreviation and mesh pairs `a` is the short form."""

    kind: str
    a: str
    b: str

    @property
    def keys(self) -> tuple[str, str]:
        return term_key(self.a), term_key(self.b)


def _singular(short: str, long: str) -> tuple[str, str] | None:
    """("SNP", "single nucleotide polymorphism") from ("SNPs", "... polymorphisms"): queries use both numbers."""
    if re.fullmatch(r".*[A-Z0-9]s", short) and long.endswith("s") and not long.endswith("ss"):
        return short[:-1], long[:-1]
    return None


def _uninvert(descriptor: str) -> str:
    """"Carcinoma, Non-Small-Cell Lung" -> "Non-Small-Cell Lung Carcinoma" (MeSH writes headings inverted)."""
    return " ".join(reversed([p.strip() for p in descriptor.split(",") if p.strip()]))


def record_pairs(record: Article | Trial) -> list[Pair]:
    """Every synonym pair one record states, deduplicated by key."""
    if isinstance(record, Article):
        text = f"{record.title}\n{record.abstract_text}"
        longs = [_uninvert(h.descriptor) for h in record.mesh_headings] + record.keywords
    else:
        text = record.text
        longs = [m.term for m in record.condition_mesh + record.intervention_mesh] + record.conditions + record.keywords
    pairs = [Pair(ABBREVIATION, a.short, a.long) for a in find_abbreviations(text)]
    pairs += [Pair(ABBREVIATION, *s) for p in list(pairs) if (s := _singular(p.a, p.b))]
    defined = {term_key(p.b) for p in pairs}
    shorts = dict.fromkeys([p.a for p in pairs] + [k for k in record.keywords if looks_short(k.strip())])
    for short in shorts:
        if sum(c.isalnum() for c in short) < 3:
            continue  # two letters match too many headings by chance ("LN" = "Lung Neoplasms")
        for long in dict.fromkeys(x for x in longs if len(x.split()) >= 2 or "-" in x):
            found = match_long_form(short, long, whole=True)
            if found is not None and term_key(found) not in defined:
                pairs.append(Pair(MESH, short, found))
    if isinstance(record, Trial):
        for iv in record.interventions:
            names = [n.strip() for n in dict.fromkeys([iv.name, *iv.other_names])
                     if n.strip() and "+" not in n and len(_parts(n)) <= MAX_TERM_WORDS][:MAX_GROUP]
            pairs += [Pair(INTERVENTION, x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    seen: dict[tuple[str, str, str], Pair] = {}
    for pair in pairs:
        a, b = pair.keys
        if a and b and a != b:
            if pair.kind == INTERVENTION and b < a:
                pair, a, b = Pair(pair.kind, pair.b, pair.a), b, a
            seen.setdefault((pair.kind, a, b), pair)
    return list(seen.values())


@dataclass(frozen=True)
class TableCursor:
    seq: int = 0
    record_id: str = ""


class SynonymTable:
    """The pairs of every live record, in one SQLite file, with the catalog position they are complete up to.

    Connections are opened per call (the table is written by the sync and read by searchers on other threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path)
        db.executescript(_SCHEMA)
        return db

    def cursor(self) -> TableCursor:
        if not self.path.exists():
            return TableCursor()
        with closing(self._connect()) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return TableCursor(int(meta.get("seq", 0)), meta.get("record_id", ""))

    def reset(self) -> None:
        """Forget everything (the index was rebuilt): the next `follow` reads the whole catalog."""
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM pairs")
            db.execute("DELETE FROM meta")

    def follow(self, catalog: Catalog, *, is_live: Callable[[dict[str, Any]], bool], batch_size: int = 256,
               should_stop: Callable[[], bool] | None = None) -> int:
        """Bring the table up to the catalog: each changed record's pairs are replaced (none when it is gone),
        and the cursor moves in the same transaction, so a crash repeats or skips nothing. Returns records read."""
        start, done = self.cursor(), 0
        with closing(self._connect()) as db:
            for rows in catalog.changed_since(start.seq, batch_size=batch_size, after_id=start.record_id):
                if should_stop is not None and should_stop():
                    break
                live = [r["id"] for r in rows if is_live(r)]
                found = [(row["id"], p) for row, record in catalog.iter_records(live) for p in record_pairs(record)]
                with db:
                    db.executemany("DELETE FROM pairs WHERE record_id = ?", [(r["id"],) for r in rows])
                    db.executemany("INSERT OR IGNORE INTO pairs VALUES (?, ?, ?, ?, ?, ?)",
                                   [(rid, p.kind, p.keys[0], p.a, p.keys[1], p.b) for rid, p in found])
                    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                   [("seq", str(rows[-1]["change_seq"])), ("record_id", rows[-1]["id"])])
                done += len(rows)
        return done

    def counts(self) -> tuple[list[tuple[str, str, str, str, str, int]], dict[str, int]]:
        """(kind, a key, a text, b key, b text, records) per spelling, and the records each key takes part in."""
        if not self.path.exists():
            return [], {}
        with closing(self._connect()) as db:
            pairs = db.execute("SELECT kind, a_key, a_text, b_key, b_text, COUNT(*) FROM pairs "
                               "GROUP BY kind, a_key, a_text, b_key, b_text").fetchall()
            terms = dict(db.execute("SELECT key, COUNT(DISTINCT record_id) FROM (SELECT record_id, a_key AS key "
                                    "FROM pairs UNION SELECT record_id, b_key FROM pairs) GROUP BY key").fetchall())
        return pairs, terms

    def stamp(self) -> tuple[int, int] | None:
        """Changes whenever a write commits (rollback journal: the main file is rewritten)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class ExpansionConfig:
    """How synonyms are used: see the module docstring. `dense`: also embed the query with its synonyms."""

    weight: float = 0.5
    min_records: int = 1
    min_share: float = 0.2
    max_synonyms: int = 3  # per matched term, strongest first
    dense: bool = False


@dataclass(frozen=True)
class Expansion:
    """A synonym added to a query: `matched` (the query's words) also looks for `synonym`."""

    matched: str
    synonym: str
    kind: str
    records: int  # records that pair them
    share: float  # of the matched term's records, the share that pair it with this synonym
    weight: float  # query weight of each of the synonym's tokens (the engine multiplies by IDF)

    def as_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "synonym": self.synonym, "kind": self.kind, "records": self.records,
                "share": round(self.share, 4), "weight": round(self.weight, 4)}


@dataclass(frozen=True)
class _Link:
    key: str
    text: str
    kind: str
    records: int
    share: float


@dataclass
class _Vocabulary:
    links: dict[str, list[_Link]] = field(default_factory=dict)
    short: dict[str, set[str]] = field(default_factory=dict)  # short-form key -> its spellings' parts, cased
    longest: int = 0


def _vocabulary(table: SynonymTable, config: ExpansionConfig) -> _Vocabulary:
    rows, term_records = table.counts()
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    spellings: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    vocab = _Vocabulary()
    for kind, a_key, a_text, b_key, b_text, n in rows:
        counts[(kind, a_key, b_key)] += n
        spellings[a_key][a_text] += n
        spellings[b_key][b_text] += n
        if kind != INTERVENTION:
            vocab.short.setdefault(a_key, set()).add(" ".join(_parts(a_text)))
    shown = {key: max(texts.items(), key=lambda kv: (kv[1], kv[0]))[0] for key, texts in spellings.items()}
    found: dict[str, dict[str, _Link]] = defaultdict(dict)
    for (kind, a, b), n in counts.items():
        for src, dst in ((a, b), (b, a)):
            share = n / max(term_records.get(src, n), n)
            held = found[src].get(dst)
            if n >= config.min_records and share >= config.min_share and (held is None or held.records < n):
                found[src][dst] = _Link(dst, shown[dst], kind, n, share)
    for src, links in found.items():
        vocab.links[src] = sorted(links.values(), key=lambda lk: (-lk.share, -lk.records, lk.key))[
            :config.max_synonyms]
        vocab.longest = max(vocab.longest, len(src.split()))
    return vocab


class QueryExpander:
    """Finds the table's terms in a query and proposes their synonyms; reloads when the table changes."""

    def __init__(self, table: SynonymTable, config: ExpansionConfig | None = None) -> None:
        self.table = table
        self.config = config or ExpansionConfig()
        self._stamp: tuple[int, int] | None = None
        self._vocab: _Vocabulary | None = None

    def vocabulary(self) -> _Vocabulary:
        stamp = self.table.stamp()
        if self._vocab is None or stamp != self._stamp:
            self._vocab, self._stamp = _vocabulary(self.table, self.config), stamp
        return self._vocab

    def _matches(self, query: str, vocab: _Vocabulary) -> Iterator[tuple[str, str]]:
        """(the query's text of each term found, key), longest first, not overlapping."""
        query = unicodedata.normalize("NFKC", query)
        words = [m for m in _PART.finditer(query) if m.group(0).casefold() not in STOPWORDS]
        lower_query = query == query.casefold()
        i = 0
        while i < len(words):
            for n in range(min(vocab.longest, len(words) - i), 0, -1):
                cased = " ".join(m.group(0) for m in words[i:i + n])
                key = cased.casefold()
                if key not in vocab.links:
                    continue
                spellings = vocab.short.get(key)
                if spellings is not None and cased not in spellings and not (
                        lower_query and len(key.replace(" ", "")) >= 4):
                    continue  # a short form written otherwise: "all" is not "ALL"
                yield query[words[i].start():words[i + n - 1].end()], key
                i += n
                break
            else:
                i += 1

    def expand(self, query: str) -> list[Expansion]:
        """Synonyms to add, at most `max_synonyms` per matched term, each once; none already spelled in the query."""
        vocab = self.vocabulary()
        if not vocab.links:
            return []
        in_query = set(tokenize(query))
        out: list[Expansion] = []
        added: set[str] = set()
        for cased, key in self._matches(query, vocab):
            for link in vocab.links[key]:
                tokens = [t for t in dict.fromkeys(tokenize(link.text)) if t not in in_query]
                if not tokens or link.key in added:
                    continue  # spelled in the query already, or added for an earlier mention
                added.add(link.key)
                weight = self.config.weight * link.share / math.sqrt(len(tokens))
                out.append(Expansion(cased, link.text, link.kind, link.records, link.share, weight))
        return out

    def dense_text(self, query: str, expansions: Sequence[Expansion]) -> str:
        """The text the dense side embeds: the query, with its synonyms in parentheses when `config.dense`."""
        if not self.config.dense or not expansions:
            return query
        return f"{query} ({'; '.join(dict.fromkeys(e.synonym for e in expansions))})"


def sparse_terms(expansions: Iterable[Expansion]) -> list[tuple[str, float]]:
    """What `BM25Encoder.encode_query` adds: each synonym's text with its weight."""
    return [(e.synonym, e.weight) for e in expansions]
