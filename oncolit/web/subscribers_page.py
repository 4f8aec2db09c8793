"""/librarian/subscribers: who receives digests and on which topics (read-only), and the topic names the
record page offers for pinning.

Why a page: librarians pin records to topics and watch what digests carry; the topics are the subscribers'
(a pin is matched to a subscriber's topic by name, `synthesis.digest`), so the page a librarian pins from
offers exactly those names instead of free text that silently matches nothing. Subscribers themselves are
changed with `oncolit subscribers ...` or by their signed unsubscribe link; this page only shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ingest.catalog import Catalog
from ingest.curation import User
from oncolit.delivery.subscribers import list_subscribers
from oncolit.web.deps import WebState


def topic_names(catalog: Catalog, pinned: dict[str, list[str]]) -> list[str]:
    """Every topic a pin can feature in: the subscribers' topics (active or paused) and those already pinned."""
    names = {topic.name for sub in list_subscribers(catalog) for topic in sub.topics}
    return sorted(names | set(pinned), key=str.casefold)


def add_routes(router: APIRouter, state: WebState, page_user: Callable[..., tuple[User, str]],
               render: Callable[..., HTMLResponse]) -> None:
    """Adds the page to the librarian router (`oncolit.web.pages.build`), with its login and page frame."""

    @router.get("/subscribers", response_class=HTMLResponse)
    def subscribers(request: Request) -> HTMLResponse:
        user, cookie = page_user(request)
        catalog = state.catalog(request)
        subs = list_subscribers(catalog)
        pins = state.curation(request).pins()
        counts: dict[str, Any] = {name: len(ids) for name, ids in pins.items()}
        return render(request, "subscribers.html", user, cookie, title="Subscribers", current="/subscribers",
                      subscribers=subs, pin_counts=counts, active=sum(s.active for s in subs))
