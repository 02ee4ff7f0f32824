"""The clients of ``benchmarks/load.py`` (locust, headless, FastHttpUser): readers of the public library, and the
floor's client. Each request is named by its endpoint group, so locust's statistics are per group.

The public library mix (weights): the list with filters, sorting and pages (30), search in Chinese and English (20),
entry pages (20), the JSON API — list, search and entries (20) — and the standings and statistics pages and API
(10). Each reader reads in Chinese or (one in five) English. Entries, search words, cities and pages are drawn
with Zipf weights (the first of each list most often; the entries shuffled once, so that popularity does not follow
the filing number), as readers' interest is skewed. No think time: each client sends its next request
as soon as the last is answered (a closed loop), so the throughput is what the server can give at that many
clients at once.

``LOAD_TARGETS`` names a JSON file with ``{"entries": [entry keys…], "cities": [codes…], "years": [years…]}``.
"""

from __future__ import annotations

import json
import os
import random
from http.cookiejar import Cookie
from urllib.parse import quote, urlencode, urlsplit

from locust import FastHttpUser, constant, task

SEARCH_WORDS = (
    "低保",
    "医保",
    "信用",
    "许可",
    "养老金",
    "住房",
    "资格认定",
    "医保报销",
    "郑州",
    "洛阳",
    "credit",
    "housing",
    "pension",
    "medical insurance",
    "licence",
    "eligibility",
    "inspection",
    "Kaifeng",
)
SCENARIOS = ("eligibility_determination", "credit_evaluation", "licence_approval", "benefit_or_claim_review")
TIERS = ("I", "II", "III", "IV")
STATES = ("approved", "approved_with_conditions", "rejected", "suspended", "revoked", "expired", "superseded")
SORTS = ("newest", "name", "city", "tier")


def _targets() -> dict:
    path = os.environ.get("LOAD_TARGETS")
    if not path:
        return {"entries": [], "cities": ["410100"], "years": [2026]}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


TARGETS = _targets()


def _popular(items):
    """An item of ``items``, the first ones most often (Zipf, s = 1): what readers look at is skewed — the
    newest entries, the big cities, the first pages — and so is what a cache of pages holds."""
    weights = _WEIGHTS.get(len(items))
    if weights is None:
        weights = _WEIGHTS[len(items)] = [1 / rank for rank in range(1, len(items) + 1)]
    return random.choices(items, weights=weights)[0]


_WEIGHTS: dict[int, list[float]] = {}


def _query(**params) -> str:
    params = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(params) if params else ""


def _cookie(name: str, value: str, host: str) -> Cookie:
    """A cookie for ``host``'s every path, as a browser keeps one a page set."""
    return Cookie(0, name, value, None, False, host, False, False, "/", True, False, None, False, None, None, {})


class LibraryReader(FastHttpUser):
    """A reader of the public library (anonymous)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        # The registry's language is a cookie (the language switch sets it); Chinese without one. It goes into the
        # client's cookie jar beside the session cookie the registry sets, as a browser keeps both.
        if random.random() < 0.2:
            host = urlsplit(self.host).hostname or "127.0.0.1"
            self.client.cookiejar.set_cookie(_cookie("lang", "en", host))

    def _get(self, path: str, group: str) -> None:
        self.client.get(path, name=group)

    def _filters(self) -> dict:
        """One filter at most (or none), an order and a page: readers narrow by one thing and rarely go far."""
        pick = random.random
        params: dict = {}
        roll = pick()
        if roll < 0.25:
            params["city"] = _popular(TARGETS["cities"])
        elif roll < 0.35:
            params["scenario"] = random.choice(SCENARIOS)
        elif roll < 0.45:
            params["tier"] = random.choice(TIERS)
        elif roll < 0.52:
            params["state"] = random.choice(STATES)
        elif roll < 0.57:
            params["year"] = random.choice(TARGETS["years"])
        if pick() < 0.3:
            params["sort"] = random.choice(SORTS)
        if pick() < 0.3:
            params["page"] = _popular((2, 3, 4, 5, 10, 20, 50))
        return params

    @task(30)
    def library_list(self) -> None:
        self._get("/library" + _query(**self._filters()), "list /library")

    @task(20)
    def search(self) -> None:
        page = random.choice((2, 3)) if random.random() < 0.2 else None
        city = random.choice(TARGETS["cities"]) if random.random() < 0.1 else None
        self._get("/library" + _query(q=_popular(SEARCH_WORDS), city=city, page=page), "search /library?q=")

    @task(20)
    def entry(self) -> None:
        if TARGETS["entries"]:
            self._get("/library/" + quote(_popular(TARGETS["entries"]), safe=""), "entry /library/<number>")

    @task(20)
    def api(self) -> None:
        roll = random.random()
        if roll < 0.4 and TARGETS["entries"]:
            key = quote(_popular(TARGETS["entries"]), safe="")
            self._get(f"/api/v1/library/{key}", "api /api/v1/library…")
        elif roll < 0.7:
            self._get("/api/v1/library" + _query(q=_popular(SEARCH_WORDS)), "api /api/v1/library…")
        else:
            self._get("/api/v1/library" + _query(**self._filters()), "api /api/v1/library…")

    @task(10)
    def standings_and_statistics(self) -> None:
        path = random.choice(
            ("/library/standings", "/library/statistics", "/api/v1/library/standings", "/api/v1/library/statistics")
        )
        self._get(path, "standings & statistics")


class FloorClient(FastHttpUser):
    """The floor: a bare Flask route on the same server."""

    wait_time = constant(0)

    @task
    def floor(self) -> None:
        self.client.get("/floor/", name="floor /floor/")
