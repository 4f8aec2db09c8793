"""llama-index glue: `OncoLitRetriever`, a `BaseRetriever` over OncoLit's own search path.

Why a retriever and not a llama-index vector store: a vector store class would hand the query
embedding and the filters to llama-index, which embeds with `Settings.embed_model` and speaks its
own `MetadataFilters`. Our collection only makes sense with the embedder that built it, hybrid
search needs our BM25 query encoder, and our filters (`SearchFilter`) hide retracted and excluded
records by default. So the retriever wraps `index.search.Searcher`, the one retrieval path the CLI
and QA use, and llama-index sees only finished results: any query engine (`RetrieverQueryEngine`,
routers, fusion retrievers) works on OncoLit's index, and llama-index's embedding model is never
called.

One node per record (the record's best chunk), as `Searcher.search` ranks them: a citation names a
record, so several chunks of one record would crowd out other evidence. Each node is

    TextNode(id_=chunk_id, text=passage, metadata={record_id, citation, title, record_type,
             published, design, evidence_level, section, trial_status, flags, ...})

with its record as the SOURCE relationship (so `node.ref_doc_id == record_id`). The passage is
record text: prompts that place it before an LLM must delimit it as data (ARCHITECTURE.md, inv. 5).

    retriever = OncoLitRetriever(handle.searcher(), filters=SearchFilter(record_types=("article",)), limit=5)
    engine = RetrieverQueryEngine.from_args(retriever, llm=..., response_mode=ResponseMode.NO_TEXT)
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode

from index.search import RecordHit, Searcher
from index.store import SearchFilter, SearchMode

# Payload fields copied into node metadata: what a reader or a prompt needs to cite and weigh a passage.
METADATA_FIELDS = ("record_type", "published", "design", "evidence_level", "section", "trial_status",
                   "phases", "publication_types", "flags", "version")
# Metadata an LLM prompt sees beside the passage (llama-index prepends it); the rest is for code.
LLM_METADATA = ("citation", "title", "published", "record_type", "design")


def citation(record_id: str) -> str:
    """The in-text citation of a record, as renderers and the verifier expect: `[PMID:1]`, `[NCT01234567]`."""
    source, _, local = record_id.partition(":")
    return f"[PMID:{local}]" if source == "pubmed" else f"[{local}]"


def to_node(hit: RecordHit) -> NodeWithScore:
    """One `RecordHit` as a llama-index node, scored with the store's score (RRF, cosine or BM25)."""
    metadata: dict[str, Any] = {"record_id": hit.record_id, "citation": citation(hit.record_id), "title": hit.title,
                                "chunk_id": hit.chunk_id, "rank": hit.rank}
    metadata.update({k: hit.payload.get(k) for k in METADATA_FIELDS})
    node = TextNode(id_=hit.chunk_id, text=hit.passage, metadata=metadata,
                    excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA],
                    excluded_embed_metadata_keys=list(metadata),
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.record_id)})
    return NodeWithScore(node=node, score=hit.score)


class OncoLitRetriever(BaseRetriever):
    """Query string -> the best `limit` records as nodes, through `Searcher.search`.

    `filters`, `limit` and `mode` ("hybrid", "dense", "sparse") are plain attributes: set them
    between queries to narrow a session (llama-index's `QueryBundle` has no place for them). A
    bundle's precomputed `embedding` is ignored: only our embedder's vectors match the collection.
    """

    def __init__(self, searcher: Searcher, *, filters: SearchFilter | None = None, limit: int = 10,
                 mode: SearchMode = "hybrid", callback_manager: CallbackManager | None = None,
                 verbose: bool = False) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.searcher = searcher
        self.filters = filters
        self.limit = limit
        self.mode: SearchMode = mode

    @classmethod
    def from_handle(cls, handle: Any, **kwargs: Any) -> OncoLitRetriever:
        """From an `oncolit.wiring.IndexHandle` (what `open_index(settings)` yields)."""
        return cls(handle.searcher(), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.searcher.search(query_bundle.query_str, filters=self.filters, limit=self.limit, mode=self.mode)
        return [to_node(hit) for hit in hits]
