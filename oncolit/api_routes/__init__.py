"""HTTP API routes, one small module per area, each exposing `router` (a FastAPI `APIRouter`).

`oncolit.api.create_app` includes every router listed in `ROUTERS` there. A route reaches the shared
catalog, searcher and LLM through `deps.resources(request)`, and runs blocking work with
`await deps.in_worker(request, fn, *args)`: one worker thread owns those objects (llama.cpp and the
SQLite embedding cache are not to be shared between threads), so calls are serialised, and the
event loop stays free for health checks and docs.
"""
