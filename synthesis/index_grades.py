"""The grade as the index stores it: each record's design and evidence level, for the search filters.

The index sync writes these into every point's payload (`oncolit search --design`, `--max-level`, the
API's `max_level`, the answer ranking's evidence prior). The index sits on a floor below synthesis
and may not import it, so `oncolit.wiring.open_index` puts a `GradeAnnotator` on the index handle and
the sync calls it (`index.sync.Annotator`).

The grade is `synthesis.grading.grade` with the rules alone: no LLM and no findings models, so it is
cheap enough to run on every record at every sync and gives the same answer on every machine. (It can
differ from `oncolit grade ID` run with the findings models, which may add outcomes the end-point
modifier reads.)

What is stored:
- `evidence_level`: the CEBM-style number of the grade's rung ("1b" -> 1, "2a" -> 2, "4b" -> 4,
  "5" -> 5; GRADING.md). That is the scale `--max-level` speaks, so `--max-level 2` keeps rungs 1a-2b.
  A record the grading excludes (a retraction notice, a withdrawn trial) gets None: no level filter
  keeps it, because it must not be cited as evidence.
- `design`: the grade's design label, None for "other" (design not determined).

`fingerprint` changes whenever the same record could be annotated differently: it names the rubric id
and digests the code and data `grade()` reads (the rules, the readers, the design classifier and its
weights) and this mapping. The sync keeps it beside its cursor, and a different one makes the next
sync rewrite every point's design and level in place (no re-embedding). Hashing the code as well as
the rubric id means a rule change that forgot to bump `RUBRIC_ID` still refreshes the index; the cost
is one grading pass after an edit that changed nothing.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cached_property
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

log = logging.getLogger(__name__)

MAPPING_ID = "index-grades/v1"
"""Bump when what this module stores for a grade changes (the level's scale, the design's spelling)."""


class GradeAnnotator:
    """(design, evidence level) of a record from the rules-based grade; see the module docstring."""

    def __call__(self, record: BaseModel) -> tuple[str | None, int | None]:
        from ingest.records import Article, Trial
        from synthesis.grading import grade

        if not isinstance(record, (Article, Trial)):
            return None, None
        try:
            g = grade(record)
        except Exception:  # one record the rules trip on must not stop the index: it stays searchable, ungraded
            log.warning("could not grade %s for the index; indexed without design or level",
                        getattr(record, "record_id", "?"), exc_info=True)
            return None, None
        design = None if g.design == "other" else g.design
        return design, (None if g.excluded else int(g.level[0]))

    @cached_property
    def fingerprint(self) -> str:
        """`grading/v1+index-grades/v1@<12 hex>`: the rubric and mapping ids, and a digest of what grading reads."""
        from synthesis.grading import RUBRIC_ID

        digest = hashlib.sha256(MAPPING_ID.encode())
        for path in _grading_inputs():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return f"{RUBRIC_ID}+{MAPPING_ID}@{digest.hexdigest()[:12]}"


def _grading_inputs() -> list[Path]:
    """The files whose content decides a rules-based grade: modules as imported (a rename fails here,
    loudly, instead of dropping out of the digest) and the classifier's committed weights."""
    import synthesis.design_classifier.model as classifier
    import synthesis.extract
    import synthesis.grading
    import synthesis.readers
    import synthesis.rules.design
    import synthesis.rules.effects
    import synthesis.rules.numbers

    modules: tuple[ModuleType, ...] = (synthesis.grading, synthesis.readers, synthesis.extract, synthesis.rules.design,
                                       synthesis.rules.effects, synthesis.rules.numbers, classifier)
    return [Path(str(m.__file__)) for m in modules] + [classifier.MODEL_DIR / classifier.WEIGHTS_FILE]
