"""Record ids as people type them, for every surface (CLI arguments, HTTP paths)."""

from __future__ import annotations


def normalise_id(record_id: str) -> str:
    """Accept `pubmed:123`, `PMID:123`, bare PMIDs and bare NCT ids; return the catalog id."""
    rid = record_id.strip()
    if rid.isdigit():
        return f"pubmed:{rid}"
    if rid.upper().startswith("NCT"):
        return f"ctgov:{rid.upper()}"
    if rid.upper().startswith("PMID:"):
        return f"pubmed:{rid[5:]}"
    prefix, _, rest = rid.partition(":")
    return f"{prefix.lower()}:{rest.upper() if prefix.lower() == 'ctgov' else rest}"
