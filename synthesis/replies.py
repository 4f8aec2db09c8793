"""Reading a model's JSON reply of cited sentences, the shape answers and digest overviews share:
`{"<key>": [{"text": "...", "citations": ["[PMID:1]", ...]}, ...], ...}`.

Constrained decoding makes the JSON well formed until `max_tokens` cuts it off; then the reply is JSON that
never closes. Read as prose, its fragments (keys, half a sentence, a citation tag) would reach the citation
checker as "sentences", so `parse_reply` keeps the sentence objects that did close instead (`_salvage`).
A reply with no JSON at all is prose, and the caller checks it sentence by sentence.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from synthesis.citations import CITATION_RE, citation_ids, strip_citations, with_citations

log = logging.getLogger(__name__)

_SKIP = re.compile(r"[\s,]*")
_LEADING_TAG = re.compile(r"\s*(?:" + CITATION_RE.pattern + r"\s*)+", re.IGNORECASE)


def parse_reply(text: str, key: str) -> dict[str, Any] | None:
    """The reply's JSON object; None only when it holds no JSON at all (then it is prose).
    A truncated or malformed object gives its finished `key` items (or nothing)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return _salvage(text, start, key)
    return data if isinstance(data, dict) else {}


def _salvage(text: str, start: int, key: str) -> dict[str, Any]:
    opened = re.compile(rf'"{re.escape(key)}"\s*:\s*\[').search(text, start)
    if opened is None:
        return {}
    decoder, pos, items = json.JSONDecoder(), opened.end(), []
    while True:
        pos = _SKIP.match(text, pos).end()  # type: ignore[union-attr]
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        items.append(item)
    log.warning("the model's reply was not complete JSON; kept %d finished sentence(s)", len(items))
    return {key: items}


def tag_ids(tag: str) -> list[str]:
    """A citation as a model may write it: "[PMID:1]", "PMID:1", "pubmed:1", "NCT01234567", "ctgov:NCT…"."""
    tag = tag.strip()
    for prefix, fmt in (("pubmed:", "[PMID:{}]"), ("ctgov:", "[{}]")):
        if tag.lower().startswith(prefix):
            tag = fmt.format(tag[len(prefix):])
    return citation_ids(tag if tag.startswith("[") else f"[{tag}]")


def cited_sentences(data: dict[str, Any], key: str, *, max_chars: int = 300) -> list[str]:
    """Each `{"text", "citations"}` item as one sentence with its citations at its end (OncoLit's form).

    Models also write tags into the text ("[PMID:1] shows that ..."): those move to the end with the listed
    ones (a leading tag was the sentence's subject, so it becomes "One study"), so a claim always runs up to
    its citations. A text the schema's `max_chars` cut off mid-sentence is no claim at all: it is dropped."""
    sentences = []
    for item in data.get(key) or []:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        text = " ".join(item["text"].split())
        cited = [rid for tag in item.get("citations") or [] if isinstance(tag, str) for rid in tag_ids(tag)]
        inline = citation_ids(text)
        if inline:
            leading = _LEADING_TAG.match(text) is not None
            text = strip_citations(text)
            if leading and text[:1].islower():
                text = "One study " + text
            cited = inline + cited
        if not text or (len(item["text"]) >= max_chars and not text.endswith((".", "!", "?"))):
            continue
        if not text.endswith((".", "!", "?")):
            text += "."  # a sentence, so its citations go before the full stop
        sentences.append(with_citations(text, cited))
    return sentences


def sentences_schema(key: str, tags: list[str], *, max_sentences: int = 4, max_chars: int = 300,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON schema of a reply of cited sentences. Citations are an enum of the tags shown, so a backend that
    constrains output to the schema cannot cite a record it was not given."""
    citation: dict[str, Any] = {"type": "string", "enum": list(tags)} if tags else {"type": "string"}
    properties: dict[str, Any] = {key: {
        "type": "array", "maxItems": max_sentences,
        "items": {"type": "object",
                  "properties": {"text": {"type": "string", "maxLength": max_chars},
                                 "citations": {"type": "array", "minItems": 1, "maxItems": 3, "items": citation}},
                  "required": ["text", "citations"]}}}
    properties.update(extra or {})
    return {"type": "object", "properties": properties, "required": list(properties)}
