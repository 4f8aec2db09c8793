"""`oncolit replay serve`: answer E-utilities and CT.gov API v2 requests from recorded files."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Local replay of recorded PubMed / ClinicalTrials.gov responses.", no_args_is_help=True)


@app.command("serve")
def serve(
    pubmed: Path = typer.Option(None, help="Folder of PubmedArticleSet XML files (plain or .gz)."),
    ctgov: Path = typer.Option(None, help="Folder of CT.gov API v2 JSON files."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Serve recorded data so the real clients run offline.

    Example:
      oncolit replay serve --pubmed ../shared/data/pubmed/constructed &
      ONCOLIT_PUBMED__BASE_URL=http://127.0.0.1:8765/entrez/eutils/ oncolit ingest pubmed --query cancer
    """
    from ingest.replay import serve as serve_forever

    serve_forever(pubmed, ctgov, host, port,
                  on_ready=lambda srv: typer.echo(f"E-utilities: {srv.eutils_url}\nCT.gov API v2: {srv.ctgov_url}",
                                                  err=True))
