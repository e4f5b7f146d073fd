"""Herald's OpenAPI document: FastAPI's, completed where FastAPI cannot see.

* The bearer scheme, on every operation that reads the API key: those FastAPI lists with an
  ``Authorization`` header parameter, which only :func:`herald.api.deps.project_id` declares.
  Declared here rather than with a ``Security`` dependency: one would run on every request
  for the document's sake alone, and Herald answers a missing key itself (401
  ``missing_api_key``).
* Herald's error body for every 422, where FastAPI would otherwise put its own
  ``HTTPValidationError``, which Herald never sends; and as JSON, where FastAPI gives an
  error the media type of the route's success (the hosted chat page's HTML).
* Twilio's status callback, which Herald answers ahead of FastAPI's routing
  (:mod:`herald.api.webhooks.twilio_status`).
* Uploaded files as ``format: binary``: any bytes are a file. FastAPI says only
  ``contentMediaType``, which tools read as a string of text (so a number, sent as a file,
  would look like a schema violation that Herald accepted).
* A multipart form's plain text fields without a type: every part is text on the wire, so
  ``true`` or ``5`` sent as ``async`` is the text Herald reads, not a wrong type.
* A working example for each request body (:mod:`herald.api.examples`), so Swagger UI's
  "Try it out" starts from a request Herald accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from herald.api import examples
from herald.api.webhooks import twilio_status

BEARER = "bearer"
_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "The project's API key, printed once by 'herald projects create', or "
        "a user's token from POST /api/v1/auth/login (TWIN's IAM).",
    }
}
_SCHEMAS = "#/components/schemas/"
_ERROR_REF = _SCHEMAS + "ErrorBody"
_FASTAPI_ERROR = "#/components/schemas/HTTPValidationError"


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the bearer scheme, Herald's 422 and the Twilio status callback.

    Idempotent: FastAPI regenerates its document when routes change, so this may see the
    same one again.
    """
    paths: dict[str, dict[str, Any]] = document.setdefault("paths", {})
    components = document.setdefault("components", {})
    for operations in paths.values():
        for operation in operations.values():
            _mark_files(operation, components.get("schemas", {}))
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45" and response.get("content"):
                    response["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
            parameters = operation.get("parameters", [])
            # The scheme says it; as a parameter too, a client generator would ask twice.
            kept = [p for p in parameters if not _is_authorization(p)]
            if len(kept) == len(parameters):
                continue
            operation["security"] = [{BEARER: []}]
            if kept:
                operation["parameters"] = kept
            else:
                del operation["parameters"]
    components.setdefault("securitySchemes", {}).update(_SCHEMES)
    paths[twilio_status.PATH_PREFIX + "{attempt_id}"] = {"post": copy.deepcopy(_TWILIO_STATUS)}
    _add_examples(paths)
    _replace_refs(document, _FASTAPI_ERROR, _ERROR_REF)
    schemas = components.get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


_TEXT = [{"type": "string"}, {"type": "null"}]


def _mark_files(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Each file part of a multipart body ``format: binary``; each plain text part any value."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("multipart/form-data", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith(_SCHEMAS):
        schema = schemas.get(ref[len(_SCHEMAS) :], {})
    for part in schema.get("properties", {}).values():
        if part.get("anyOf") == _TEXT:
            del part["anyOf"]
        for node in (part, part.get("items", {})):
            if node.get("type") == "string" and "contentMediaType" in node:
                node["format"] = "binary"


def _add_examples(paths: dict[str, dict[str, Any]]) -> None:
    for path, operations in paths.items():
        for method, operation in operations.items():
            example = examples.REQUEST_BODIES.get((method.upper(), path))
            if example is None:
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                media["example"] = copy.deepcopy(example)


def _is_authorization(parameter: dict[str, Any]) -> bool:
    return parameter.get("in") == "header" and parameter.get("name", "").lower() == "authorization"


def _replace_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for item in node:
            _replace_refs(item, old, new)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
    }


_TWILIO_STATUS: dict[str, Any] = {
    "tags": ["webhooks"],
    "summary": "Twilio status callback",
    "description": "The URL Herald gives Twilio as StatusCallback for each send attempt. "
    "Signed with X-Twilio-Signature over Herald's public URL and every posted parameter.",
    "operationId": "twilio_status_callback",
    "parameters": [
        {"name": "attempt_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "X-Twilio-Signature", "in": "header", "schema": {"type": "string"}},
    ],
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "MessageSid": {"type": "string"},
                        "MessageStatus": {"type": "string"},
                        "ErrorCode": {"type": "string"},
                    },
                    "additionalProperties": {"type": "string"},
                }
            }
        }
    },
    "responses": {
        "200": {
            "description": "Applied (or already applied): empty TwiML.",
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        "403": _error("The signature does not match."),
        "404": _error("No send attempt has this id."),
        "409": _error("The report names another message than the attempt's."),
        "413": _error("Larger than any status callback."),
    },
}
