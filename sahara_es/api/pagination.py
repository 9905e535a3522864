"""Lists: filters, sorting and pages, as Sahara does them (``limit``, ``marker``, ``sort_by``
with a ``-`` for descending; ``markers`` in the answer), plus API-SIG ``links``.

A query parameter the list does not know is a 400, not ignored.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from flask import request

from sahara_es.api.errors import bad_request
from sahara_es.commands.errors import NotVisible

PAGING = ("limit", "marker", "sort_by")
MAX_LIMIT = 1000


def check_params(allowed: Iterable[str]) -> None:
    known = set(allowed)
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise bad_request(f"unknown query parameter {', '.join(unknown)}; this resource takes"
                          f" {', '.join(sorted(known)) or 'none'}")


def page(docs: Iterable[dict[str, Any]], *, envelope: str, filters: Iterable[str] = (),
         sort_fields: Iterable[str] = ("id", "name", "created_at", "updated_at"),
         paginated: bool = True, extra_params: Iterable[str] = ()) -> dict[str, Any]:
    """One page of ``docs``, which come in id order (the read models' key order): a page in
    that order reads only as far as it needs; another order reads them all to sort."""
    filters = tuple(filters)
    check_params([*filters, *(PAGING if paginated else ()), *extra_params])
    matching = (d for d in docs if _matches(d, filters))
    if not paginated:
        return {envelope: list(matching)}
    sort_by = request.args.get("sort_by", "id")
    descending = sort_by.startswith("-")
    field = sort_by.lstrip("-")
    sortable = set(sort_fields)
    if field not in sortable:
        raise bad_request(f"sort_by: unknown field {field!r}; sort by"
                          f" {', '.join(sorted(sortable))}")
    limit = _limit()
    marker = request.args.get("marker")
    if field == "id" and not descending and limit:
        chosen, prev, nxt = _in_id_order(matching, limit, marker)
    else:
        chosen, prev, nxt = _sorted(list(matching), field, descending, limit, marker)
    body: dict[str, Any] = {envelope: chosen}
    if marker or nxt or prev:
        body["markers"] = {"prev": prev, "next": nxt}
        body["links"] = _links(prev, nxt, bool(marker))
    return body


Page = tuple[list[dict[str, Any]], str | None, str | None]
"""(the page's items, the previous page's marker, the next page's marker)"""


def _in_id_order(docs: Iterator[dict[str, Any]], limit: int, marker: str | None) -> Page:
    """Read up to the marker (keeping the ``limit`` ids before it) and one past the page."""
    before: deque[str] = deque(maxlen=limit)
    found = marker is None
    chosen: list[dict[str, Any]] = []
    more = False
    for doc in docs:
        if not found:
            if doc["id"] == marker:
                found = True
            else:
                before.append(doc["id"])
            continue
        if len(chosen) == limit:
            more = True
            break
        chosen.append(doc)
    if not found:
        raise NotVisible(f"marker {marker} is not in this list")
    prev = before[0] if marker and len(before) == limit else None
    return chosen, prev, chosen[-1]["id"] if more and chosen else None


def _sorted(items: list[dict[str, Any]], field: str, descending: bool, limit: int | None,
            marker: str | None) -> Page:
    items.sort(key=lambda d: (_sort_key(d.get(field)), d["id"]), reverse=descending)
    start = 0
    if marker:
        ids = [d["id"] for d in items]
        if marker not in ids:
            raise NotVisible(f"marker {marker} is not in this list")
        start = ids.index(marker) + 1
    chosen = items[start:start + limit] if limit else items[start:]
    nxt = chosen[-1]["id"] if limit and start + limit < len(items) and chosen else None
    prev = None
    if marker:
        back = start - 1 - (limit or len(items))
        prev = items[back]["id"] if back >= 0 else None
    return chosen, prev, nxt


def _links(prev: str | None, nxt: str | None, had_marker: bool) -> list[dict[str, str]]:
    links = []
    args = {k: v for k, v in request.args.items() if k != "marker"}
    base = request.base_url
    if nxt:
        links.append({"rel": "next", "href": f"{base}?{urlencode({**args, 'marker': nxt})}"})
    if prev:
        links.append({"rel": "prev", "href": f"{base}?{urlencode({**args, 'marker': prev})}"})
    elif had_marker:
        links.append({"rel": "first", "href": f"{base}?{urlencode(args)}" if args else base})
    return links


def _limit() -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return None
    if not re.fullmatch(r"\d+", raw) or not 0 < int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _matches(doc: dict[str, Any], filters: tuple[str, ...]) -> bool:
    for name in filters:
        wanted = request.args.getlist(name)
        if wanted:
            value = doc.get(name)
            if name == "status" and value is None:  # jobs: info.status
                value = doc.get("info", {}).get("status")
            if str(value) not in wanted and not (name == "name" and any(
                    w in str(value) for w in wanted)):
                return False
    return True


def _sort_key(value: Any) -> tuple[int, str]:
    return (0, "") if value is None else (1, str(value))
