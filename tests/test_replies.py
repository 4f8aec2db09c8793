"""Reading a model's cited-sentence JSON the way answers and digest overviews do: complete, cut off by
max_tokens, or not JSON at all; citations moved to where a claim ends."""

from __future__ import annotations

from synthesis.citations import citation_ids
from synthesis.replies import cited_sentences, parse_reply, sentences_schema


def test_parse_reply_reads_json_salvages_a_cut_off_reply_and_leaves_prose_alone() -> None:
    assert parse_reply("Plain prose [PMID:1].", "s") is None
    assert parse_reply('Sure: {"s": [{"text": "A.", "citations": []}], "flag": true} trailing', "s") == {
        "s": [{"text": "A.", "citations": []}], "flag": True}
    cut = '{"s": [{"text": "Done.", "citations": ["[PMID:1]"]}, {"text": "Half a sen'
    assert parse_reply(cut, "s") == {"s": [{"text": "Done.", "citations": ["[PMID:1]"]}]}
    assert parse_reply('{"other": 1, "s": [{"te', "s") == {"s": []}
    assert parse_reply('{"broken": ', "s") == {}
    assert parse_reply("[1, 2]", "s") is None  # no object: prose (the caller checks it as text)


def test_cited_sentences_end_with_their_citations() -> None:
    data = {"s": [
        {"text": "[PMID:24434052] shows that thin melanomas increased", "citations": ["[PMID:26298839]"]},
        {"text": "Rates fell [PMID:1] in men.", "citations": []},
        {"text": "x " * 150 + "which has,", "citations": ["[PMID:2]"]},  # cut off by maxLength: dropped
        {"text": "A trial enrolled 40", "citations": ["NCT01234567", "pubmed:3"]},
        {"text": 7, "citations": ["[PMID:4]"]},
        "not an object",
    ]}
    assert cited_sentences(data, "s") == [
        "One study shows that thin melanomas increased [PMID:24434052] [PMID:26298839].",
        "Rates fell in men [PMID:1].",
        "A trial enrolled 40 [NCT01234567] [PMID:3].",
    ]
    assert cited_sentences({}, "s") == []


def test_sentences_schema_limits_citations_to_the_tags_shown() -> None:
    schema = sentences_schema("s", ["[PMID:1]", "[NCT01234567]"], extra={"flag": {"type": "boolean"}})
    citation = schema["properties"]["s"]["items"]["properties"]["citations"]
    assert citation["items"]["enum"] == ["[PMID:1]", "[NCT01234567]"] and citation["minItems"] == 1
    assert schema["required"] == ["s", "flag"]
    assert citation_ids("[PMID:1]") == ["pubmed:1"]
