"""Pieces shared by every record type: partial dates, canonical hashing, identifier patterns."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from ingest.errors import InvalidRecord

NCT_RE = re.compile(r"\bNCT\s?(\d{8})\b", re.IGNORECASE)
PMID_RE = re.compile(r"^[0-9]{1,9}$")

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}


class Model(BaseModel):
    """Base for record parts: immutable, and strict about unknown fields so typos surface."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PartialDate(Model):
    """A bibliographic date as PubMed writes it: year only, year-month, full, or free text (MedlineDate).

    `medline_date` keeps the original free-text form ("1998 Dec-1999 Jan", "2000 Spring");
    year/month/day hold what could be read from it, so sorting and filtering still work.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    medline_date: str | None = None

    def as_date(self) -> dt.date | None:
        """The earliest calendar day the partial date can mean, for sorting and windows.

        An impossible month/day falls back to the year's first day; a year no calendar has (0, 99999)
        raises `InvalidRecord`: the record is then quarantined by the catalog instead of being stored
        with a made-up date, or blocking its whole batch with a bare ValueError.
        """
        if self.year is None:
            return None
        if not dt.MINYEAR <= self.year <= dt.MAXYEAR:
            raise InvalidRecord(f"date {self.iso() or self.year!r} has year {self.year}, outside "
                                f"{dt.MINYEAR}..{dt.MAXYEAR}")
        try:
            return dt.date(self.year, self.month or 1, self.day or 1)
        except ValueError:
            return dt.date(self.year, 1, 1)

    def iso(self) -> str | None:
        if self.year is None:
            return self.medline_date
        parts = [f"{self.year:04d}"]
        if self.month:
            parts.append(f"{self.month:02d}")
            if self.day:
                parts.append(f"{self.day:02d}")
        return "-".join(parts)

    @classmethod
    def from_parts(cls, year: str | None, month: str | None = None, day: str | None = None,
                   season: str | None = None, medline_date: str | None = None) -> "PartialDate":
        """Build from the text of PubMed's <Year>/<Month>/<Day>/<Season>/<MedlineDate> elements."""
        y = _int(year)
        m = parse_month(month) if month else (_SEASONS.get(season.strip().lower()) if season else None)
        d = _int(day)
        if medline_date and y is None:
            found = re.search(r"\b(1[89]\d\d|20\d\d)\b", medline_date)
            y = int(found.group(1)) if found else None
            mon = re.search(r"\b([A-Za-z]{3})[a-z]*\b", medline_date[found.end():] if found else medline_date)
            if mon and mon.group(1).lower() in _MONTHS:
                m = _MONTHS[mon.group(1).lower()]
            elif mon and mon.group(0).lower() in _SEASONS:
                m = _SEASONS[mon.group(0).lower()]
        if m is not None and not 1 <= m <= 12:
            m = None
        if d is not None and not 1 <= d <= 31:
            d = None
        return cls(year=y, month=m, day=d, medline_date=medline_date)


def parse_month(text: str) -> int | None:
    """PubMed months come as numbers ("05") or English abbreviations ("May", "Sept")."""
    text = text.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is True but int("²") fails
        return int(text)
    return _MONTHS.get(text[:3].lower())


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def canonical_json(data: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, dates as ISO strings."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(model: BaseModel) -> str:
    """sha256 of the canonical JSON of a record: equal content, equal hash, whatever the input bytes."""
    return hashlib.sha256(canonical_json(model.model_dump(mode="json")).encode("utf-8")).hexdigest()


def find_nct_ids(*texts: str | None) -> list[str]:
    """NCT ids mentioned in free text, normalised to `NCT01234567`, in first-seen order."""
    seen: dict[str, None] = {}
    for text in texts:
        if not text or ("NCT" not in text and "nct" not in text and "Nct" not in text):
            continue  # cheap pre-check: the regex is the hot spot when ingesting large files
        for match in NCT_RE.finditer(text):
            seen.setdefault(f"NCT{match.group(1)}", None)
    return list(seen)
