"""TWIN's ``sort`` and ``fields`` on the lists answered through a strict response model."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, get_args

from fastapi import Query
from fastapi.responses import Response
from starlette.requests import Request

from herald.api.query import only_fields, twin_list
from herald.api.responses import json_response
from herald.schemas.out.base import OutModel


def sort_query(keys: Collection[str], default: str = "newest first (-createdAt)") -> Any:
    """TWIN's ``sort``, described with the orders this list offers (read it with list_sort)."""
    offered = ", ".join(f"{k}, -{k}" for k in keys)
    return Query(description=f"One of: {offered}. By default {default}.")


def item_keys(model: type[OutModel]) -> frozenset[str]:
    """The wire keys of one item of ``model``'s ``items``."""
    (item,) = get_args(model.model_fields["items"].annotation)
    return frozenset(field.alias or name for name, field in item.model_fields.items())


def listed_response(
    request: Request, listed: dict[str, Any], model: type[OutModel], *, exclude_unset: bool = False
) -> Response:
    """``listed`` as the route's response model writes it, then cut down to TWIN's ``fields``.

    Validated before the cut, so the whole answer still meets the model; an answer cut down
    would not (its items lack required keys), hence plain JSON documented with body().
    """
    full = model.model_validate(listed).model_dump(
        mode="json", by_alias=True, exclude_unset=exclude_unset
    )
    return json_response(only_fields(full, twin_list(request, "fields"), item_keys(model)))
