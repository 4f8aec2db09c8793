"""POST /ask: a cited answer to a question, or "insufficient evidence" with the closest records."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from oncolit.api_routes.deps import Filters, in_worker, resources
from oncolit.resources import Resources
from synthesis.answer import answer

router = APIRouter(tags=["answers"])


class AskRequest(BaseModel):
    question: str = Field(..., min_length=3, max_length=1000,
                          examples=["Does trametinib improve progression-free survival in BRAF V600 melanoma?"])
    filters: Filters = Field(default_factory=Filters)
    limit: int = Field(8, ge=1, le=20, description="Records retrieved to answer from.")


class Citation(BaseModel):
    id: str = Field(description="Catalog record id: pubmed:<PMID> or ctgov:<NCT id>.")
    tag: str = Field(description="How the answer text cites it: [PMID:…] or [NCT…].")
    title: str
    quote: str = Field(description="A sentence of the record, verbatim, that supports the answer.")
    score: float
    flags: list[str] = Field([], description="retracted / withdrawn / excluded: shown wherever the record is.")


class PositionOut(BaseModel):
    answer: str = Field(description="yes | no | maybe")
    confidence: float
    basis: str = Field(description="answer-model (the trained yes/no/maybe classifier) or direction-rule.")
    probabilities: dict[str, float]
    record_id: str | None = None
    tag: str | None = None
    quote: str | None = Field(None, description="The record's result sentence that carries it, verbatim.")
    direction: str | None = Field(None, description="That sentence's direction of effect (findings models).")


class AnswerOut(BaseModel):
    question: str
    answer: str = Field(description="2-4 sentences, each ending with citations; every number is in a cited record.")
    citations: list[Citation]
    insufficient_evidence: bool
    closest: list[dict[str, Any]] = Field(description="When evidence is insufficient: the closest records.")
    dropped: int = Field(description="Generated sentences dropped by the citation check.")
    replaced: int = Field(description="Generated sentences replaced by a verbatim quote.")
    model: str
    prompt_id: str
    seconds: float
    mode: str
    support: dict[str, Any]
    sentences: list[dict[str, Any]]
    position: PositionOut | None = Field(None, description="For a yes/no question: the position the best record's "
                                                           "evidence supports, with its cited result sentence.")


@router.post("/ask", response_model=AnswerOut, summary="Answer a question with verified citations")
async def ask(body: AskRequest, request: Request) -> JSONResponse:
    return await in_worker(request, _ask, resources(request), body)


def _ask(res: Resources, body: AskRequest) -> JSONResponse:
    """On the worker: the answer, checked against `AnswerOut` and encoded there, so the event loop (and the
    health checks it serves) never spends time on a large answer's validation and JSON."""
    result = answer(body.question, res.searcher, res.catalog, res.llm, filters=body.filters.search_filter(),
                    limit=body.limit, models=res.findings_models, answerer=res.answer_model)
    return JSONResponse(AnswerOut.model_validate(result.as_dict()).model_dump(mode="json"))
