"""Librarian surfaces over HTTP: the curation JSON API and the server-rendered pages (one APIRouter)."""

from oncolit.web.router import create_router

__all__ = ["create_router"]
