"""`oncolit subscribers add|list|remove` and subscriber periods in their own time zone."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from typer.testing import CliRunner

from ingest.catalog import Catalog
from ingest.errors import ConfigError, RecordNotFound
from oncolit.cli import digest_cmd
from oncolit.cli.common import get_settings
from oncolit.delivery.settings import DigestSettings
from oncolit.delivery.subscribers import add_subscriber, current_period, get_subscriber, period_for
from synthesis.digest import Topic


@pytest.fixture
def cli():
    app = typer.Typer()
    app.add_typer(digest_cmd.subscribers_app, name="subscribers")
    app.command("digest")(digest_cmd.digest)
    get_settings.cache_clear()  # settings come from this test's environment
    runner = CliRunner()

    def invoke(*args: str) -> object:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    yield invoke
    get_settings.cache_clear()


def test_add_list_remove(cli, isolated_env) -> None:
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        catalog.add_search("melanoma-rct", "pubmed", "melanoma[mh] AND randomized controlled trial[pt]")
    added = cli("subscribers", "add", "ana@example.org", "--name", "Dr Ana", "--topic", "Melanoma: BRAF MEK inhibitors",
                "--search", "melanoma-rct", "--site", "lung", "--gene", "EGFR", "--min-level", "2",
                "--frequency", "weekly", "--timezone", "Europe/Paris", "--send-hour", "8", "--json")
    assert added["email"] == "ana@example.org" and added["min_level"] == "2b" and "token" not in added
    assert [t["name"] for t in added["topics"]] == ["Melanoma", "melanoma-rct", "lung", "EGFR"]
    assert added["topics"][0]["query"] == "BRAF MEK inhibitors" and added["topics"][1]["search"] == "melanoma-rct"
    assert added["topics"][2]["sites"] == ["lung"] and added["topics"][3]["genes"] == ["EGFR"]
    cli("subscribers", "add", "bo@example.org", "--topics-json",
        '[{"name": "HER2 breast", "query": "trastuzumab", "sites": ["breast"], "genes": ["HER2"]}]')
    listed = cli("subscribers", "list", "--json")
    assert [s["email"] for s in listed] == ["ana@example.org", "bo@example.org"]
    assert listed[1]["topics"][0]["genes"] == ["HER2"] and listed[0]["last_digest"] is None
    assert "ana@example.org" in cli("subscribers", "list")
    assert cli("subscribers", "remove", "ana@example.org", "--json") == {"removed": "ana@example.org", "id": 1}
    assert [s["email"] for s in cli("subscribers", "list", "--json")] == ["bo@example.org"]


def test_validation(isolated_env) -> None:
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        topic = [Topic(name="x", query="melanoma")]
        with pytest.raises(ConfigError, match="time zone"):
            add_subscriber(catalog, "a@example.org", topic, timezone="Mars/Olympus")
        with pytest.raises(ConfigError, match="e-mail"):
            add_subscriber(catalog, "not-an-address", topic)
        with pytest.raises(ConfigError, match="evidence level"):
            add_subscriber(catalog, "a@example.org", topic, min_level="9")
        with pytest.raises(ConfigError, match="topic"):
            add_subscriber(catalog, "a@example.org", [])
        with pytest.raises(RecordNotFound, match="saved search"):
            add_subscriber(catalog, "a@example.org", [Topic(name="s", search="nope")])
        sub = add_subscriber(catalog, "a@example.org", topic)
        assert get_subscriber(catalog, sub.token).id == get_subscriber(catalog, str(sub.id)).id == sub.id
        with pytest.raises(Exception, match="already subscribed"):
            add_subscriber(catalog, "a@example.org", topic)


def test_periods_follow_the_subscribers_calendar(isolated_env) -> None:
    cfg = DigestSettings(send_hour=7, weekly_day=1)
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        topic = [Topic(name="x", query="melanoma")]
        paris = add_subscriber(catalog, "p@example.org", topic, timezone="Europe/Paris")
        tokyo = add_subscriber(catalog, "t@example.org", topic, timezone="Asia/Tokyo", frequency="weekly",
                               send_hour=9)
    now = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)  # Sunday 23:30 UTC
    p = current_period(paris, now, cfg)
    assert p.key == "2026-11-30" and p.send_at == dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # 07:00 CET
    w = current_period(tokyo, now, cfg)  # already Monday 30 Nov in Tokyo: ISO week 49
    assert w.key == "2026-W49" and (w.start, w.end) == (dt.date(2026, 11, 30), dt.date(2026, 12, 6))
    assert w.send_at == dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)  # Monday 09:00 JST
    summer = period_for(paris, dt.date(2026, 7, 1), cfg)
    assert summer.send_at == dt.datetime(2026, 7, 1, 5, 0, tzinfo=dt.UTC)  # 07:00 CEST
    assert period_for(tokyo, dt.date(2027, 1, 1), cfg).key == "2026-W53"  # ISO year, not calendar year
