"""HTTP API routes, one small module per area, each exposing `router` (a FastAPI `APIRouter`).

`oncolit.api.create_app` includes every router listed in `ROUTERS` there. A route reaches the shared
catalog, searcher and LLM through `deps.resources(request)`. Heavy work (search, ask) runs with
`await deps.in_worker(request, fn, *args)` on the worker pool (`serve.workers` threads, at most
`serve.max_queued` waiting, then 503); cheap blocking calls (a record read, the point count) run with
`await deps.in_thread(fn, *args)` on the general thread pool, so `/healthz` and record reads answer while
every worker is busy. `middleware.py` bounds request bodies and sets the API's response headers.
"""
