"""Query-string helpers for TWIN's list filters, and the check that no parameter is ignored."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Query
from fastapi.dependencies.models import Dependant
from starlette.requests import HTTPConnection, Request

from herald.domain.timezones import InvalidTimeZone, load_zone
from herald.errors import InvalidRequest, ValidationFailed
from herald.schemas.messages import id_list

# Past any real list; a larger number would not even fit the databases' integers (a 500).
MAX_OFFSET = 1_000_000_000
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip (a cursor pages faster).")
]
Page = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_OFFSET,
        description="TWIN's page number, from 1: skips (page - 1) × limit rows. Not with offset.",
    ),
]


# Any text is a valid filter (one value, or several comma-separated), however often repeated:
# the document says so, rather than "an array", which a single ?id=x would seem to break.
_LIST_FILTER_SCHEMA = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
}


def list_filter(alias: str | None = None) -> Any:
    """A list filter as TWIN sends it (read its values with ``twin_list``)."""
    return Query(
        alias=alias,
        description="Comma-separated, repeated, or name[0]=…&name[1]=…",
        json_schema_extra=_LIST_FILTER_SCHEMA,
    )


ListFilter = Annotated[list[str] | None, list_filter()]

# TWIN's other common list parameters, and its admins' companyId. Herald does not implement
# them; a client that sends one would otherwise get a list that silently ignores its ask.
_TWIN_UNSUPPORTED = (
    "timezone",
    "sort",
    "group",
    "fields",
    "language",
    "offsetField",
    "offsetValue",
    "companyId",
)
_INDEXED = re.compile(r"(?P<name>[^\[\]]+)\[\d*\]")


def twin_list(request: Request, name: str) -> list[str]:
    """Every value of a list filter, however the client spelled it.

    TWIN's PHP SDK builds queries with ``http_build_query``, so an array arrives as
    ``name[0]=a&name[1]=b``; other clients send ``name=a,b`` or repeat ``name=a&name=b``.
    """
    values = [
        value
        for key, value in request.query_params.multi_items()
        if key == name or ((m := _INDEXED.fullmatch(key)) is not None and m["name"] == name)
    ]
    return [item for value in values for item in id_list(value)]


# TWIN's list parameters Herald implements (see TwinList); the sort keys each list offers.
# Text, not an int: PHP sends an unset option as "timezone=" (nothing asked).
TwinTimezone = Annotated[
    str | None,
    Query(
        alias="timezone",
        pattern=r"^([+-]?\d{1,2})?$",
        description="Hours from UTC (-12 to 14) for from/to written without an offset (TWIN's "
        "timezone); without it, the project's zone.",
    ),
]
Sort = Annotated[
    str | None,
    Query(description="createdAt, -createdAt (newest first, the default), status or -status."),
]
Fields = Annotated[
    list[str] | None,
    Query(
        alias="fields",
        description="The item keys to return: comma-separated, repeated or fields[0]=…; "
        "count and items are always there.",
    ),
]


def list_zone(hours: str | None, project_zone: str) -> tzinfo:
    """The zone of a list's dates written without an offset: TWIN's hours, else the project's."""
    if hours:
        offset = int(hours)
        if not -12 <= offset <= 14:
            raise ValidationFailed(
                "'timezone' is a number of hours from UTC, from -12 to 14.",
                code="invalid_timezone",
            )
        return timezone(timedelta(hours=offset))
    try:
        return load_zone(project_zone)
    except InvalidTimeZone:
        return UTC


def query_time(value: str | None, name: str, zone: tzinfo = UTC) -> datetime | None:
    """A date-time filter: ISO 8601, with its offset or read in ``zone``.

    TWIN's clients write ``2020-01-01 00:00:00``, without an offset.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidRequest(
            f"'{name}' must be an ISO 8601 date-time, e.g. 2026-01-31T09:00:00+00:00 or "
            "2026-01-31 09:00:00 (read in 'timezone', else the project's zone).",
            code="invalid_date",
        ) from e
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def list_sort(value: str | None, keys: Collection[str]) -> tuple[str, bool]:
    """TWIN's ``sort``: a key, ``-`` first for descending; newest first by default."""
    if not value:
        return "createdAt", True
    key = value.strip().removeprefix("-")
    if key not in keys:
        offered = ", ".join(f"{k}, -{k}" for k in keys)
        raise ValidationFailed(
            f"'sort' takes one of: {offered}.",
            code="invalid_sort",
            details={"sort": value, "allowed": [*keys, *(f"-{k}" for k in keys)]},
        )
    return key, value.strip().startswith("-")


def only_fields(
    listed: dict[str, Any], fields: list[str], known: Collection[str]
) -> dict[str, Any]:
    """A list with each item cut down to TWIN's ``fields``; ``count`` and ``items`` stay."""
    if not fields:
        return listed
    unknown = [name for name in fields if name not in known]
    if unknown:
        raise ValidationFailed(
            f"'fields' names '{unknown[0]}', which the items do not have; they have: "
            f"{', '.join(sorted(known))}.",
            code="unknown_field",
            details={"fields": unknown, "known": sorted(known)},
        )
    wanted = set(fields)
    items = [{k: v for k, v in item.items() if k in wanted} for item in listed["items"]]
    return {**listed, "items": items}


def first_row(offset: int, page: int | None, limit: int) -> int:
    """The offset a request asks for, given as ``offset`` or as TWIN's ``page``."""
    if page is None:
        return offset
    if offset:
        raise ValidationFailed(
            "Give either 'offset' or 'page', not both.", code="conflicting_parameters"
        )
    return (page - 1) * limit


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """Each query parameter the route reads, and whether it takes several values."""
    names = {str(p.alias): _is_list(p.field_info.annotation) for p in dependant.query_params}
    for sub in dependant.dependencies:
        names.update(_query_names(sub))
    return names


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        return any(_is_list(arg) for arg in get_args(annotation))
    return origin in (list, tuple, set, frozenset)


async def no_ignored_parameters(request: HTTPConnection) -> None:
    """Refuse query parameters the route does not read, instead of answering as if unasked.

    A typo (``stauts=failed``) or a TWIN option Herald lacks (``sort``) would otherwise give a
    full, unfiltered answer that looks like the one asked for.
    """
    if not request.url.path.startswith("/api/"):
        return  # webhooks and pages: providers and browsers add what they like
    route: Any = request.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)  # a walk over a few fields: not worth a cache
    unsupported: list[str] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for key, value in request.query_params.multi_items():
        indexed = _INDEXED.fullmatch(key)
        name = indexed["name"] if indexed else key
        if name in known:
            if not known[name] and name in seen:
                # Only one of the values would be read, and the answer would look like one
                # to the whole question.
                raise ValidationFailed(
                    f"Give '{name}' once: it takes a single value.",
                    code="repeated_parameter",
                    details={"parameters": [name]},
                )
            seen.add(name)
            continue
        if name in _TWIN_UNSUPPORTED:
            # PHP sends an unset option as an empty value: nothing was asked.
            if value:
                unsupported.append(name)
        else:
            unknown.append(key)
    if unsupported:
        raise ValidationFailed(
            f"Herald does not support TWIN's '{unsupported[0]}' parameter: lists are newest "
            "first, and the API key alone chooses the project. Leave it out.",
            code="unsupported_parameter",
            details={"parameters": sorted(set(unsupported))},
        )
    if unknown:
        # Raised as only_fields raises for an unknown field; the sentence and details differ.
        raise ValidationFailed(
            f"Unknown query parameter '{unknown[0]}'. This route takes: "
            f"{', '.join(sorted(known)) or 'no query parameters'}.",
            code="unknown_parameter",
            details={"parameters": unknown, "known": sorted(known)},
        )
