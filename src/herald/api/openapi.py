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
  (:mod:`herald.api.twilio_status`).
"""

from __future__ import annotations

import copy
from typing import Any

from herald.api import twilio_status

BEARER = "bearer"
_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "The project's API key, printed once by 'herald projects create'.",
    }
}
_ERROR_REF = "#/components/schemas/ErrorBody"
_FASTAPI_ERROR = "#/components/schemas/HTTPValidationError"


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the bearer scheme, Herald's 422 and the Twilio status callback.

    Idempotent: FastAPI regenerates its document when routes change, so this may see the
    same one again.
    """
    paths: dict[str, dict[str, Any]] = document.setdefault("paths", {})
    for operations in paths.values():
        for operation in operations.values():
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
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(_SCHEMES)
    paths[twilio_status.PATH_PREFIX + "{attempt_id}"] = {"post": copy.deepcopy(_TWILIO_STATUS)}
    _replace_refs(document, _FASTAPI_ERROR, _ERROR_REF)
    schemas = components.get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


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
