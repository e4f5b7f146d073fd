"""What an operation answers besides its 2xx body, for its ``responses=`` in the OpenAPI document.

Every error has Herald's one shape (:class:`~herald.schemas.out.base.ErrorBody`), FastAPI's
``HTTPValidationError`` included: a 422 here is Herald's error body too.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from starlette.responses import Response

from herald.schemas.out.base import ErrorBody

Responses = dict[int | str, dict[str, Any]]

_WHY = {
    400: "The body is not valid JSON, or a value cannot be read.",
    401: "No API key, or not a valid one ('Authorization: Bearer <apiKey>').",
    403: "The provider's signature or token does not match.",
    404: "Nothing with this id in the project.",
    409: "The request conflicts with the resource's current state.",
    410: "It existed, and is gone.",
    413: "The request body is larger than Herald accepts.",
    415: "The body is not JSON ('Content-Type: application/json'), or the uploaded file is "
    "not CSV, XLSX, XLS or ODS.",
    422: "A field or a query parameter is invalid; 'details.errors' names each problem.",
    429: "Too many wrong API keys came from this address; 'Retry-After' says when to retry.",
}

#: Every ``/api/v1`` operation: the key is checked, an unknown query parameter refused, and
#: an address holding NUL refused (api.nul_guard).
API = (400, 401, 422, 429)
#: A JSON request body.
JSON_BODY = (400, 413, 415, 422)
#: A multipart upload.
UPLOAD = (413, 415, 422)


def errors(*statuses: int | tuple[int, ...]) -> Responses:
    """The ``responses=`` of an operation that may answer these error statuses."""
    flat: set[int] = set()
    for group in statuses:
        flat.update(group if isinstance(group, tuple) else (group,))
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in sorted(flat)}


def body(model: Any, status: int = 200, description: str = "OK") -> Responses:
    """A 2xx body documented without being validated: the route answers prebuilt bytes (a hot
    path, or a stored answer replayed); tests check the bytes against ``model``."""
    return {status: {"model": model, "description": description}}


def downloads(*media_types: str, status: int = 200) -> Responses:
    """A file download in one of ``media_types``."""
    content = {media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}
    return {status: {"description": "The file, as an attachment.", "content": content}}


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def json_response(content: Any, status: int = 200) -> Response:
    """``content`` as JSON, written as FastAPI writes a route's return value, without the
    response model's validation (for routes documented with :func:`body`)."""
    return Response(_ANY.dump_json(content), status_code=status, media_type="application/json")
