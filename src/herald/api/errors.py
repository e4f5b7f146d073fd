"""Every error the API returns has one shape: ``{"error", "code", "details"}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from herald.api.routing import OtherMethods
from herald.errors import HeraldError, TooManyRequests
from herald.schemas.messages import pydantic_code

log = logging.getLogger("herald.api")


INTERNAL_ERROR = (
    "Herald hit an internal error; nothing was changed. The server log has the details."
)


def error_response(
    status: int,
    message: str,
    code: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "code": code, "details": details or {}},
        status_code=status,
        headers=headers,
    )


def herald_error_response(
    exc: HeraldError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A Herald error as a response, with the headers its status calls for."""
    extra = dict(headers or {})
    if isinstance(exc, TooManyRequests):
        extra["Retry-After"] = str(exc.retry_after)
    return error_response(exc.status_code, exc.message, exc.code, exc.details, headers=extra)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method this request's path accepts.

    Starlette's 405 names only the first route matching the path, but a path often has one
    route per method (GET and POST /api/v1/senders). A method is allowed when the route
    routing would pick for it (the first that fits path and method) serves it rather than
    refuses it (:class:`herald.api.routing.OtherMethods`).
    """
    routes = request.app.router.routes
    allowed: list[str] = []
    for method in HTTP_METHODS:
        # Tried through the routes' own matching (FastAPI nests included routers), on a copy
        # of the request's scope.
        scope = {**request.scope, "method": method}
        chosen = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
        if chosen is not None and not isinstance(chosen, OtherMethods):
            allowed.append(method)
    return allowed


def method_not_allowed(method: str, allowed: Sequence[str]) -> JSONResponse:
    """405 with the ``Allow`` header HTTP requires, in Herald's error shape."""
    allow = ", ".join(allowed)
    return error_response(
        405,
        f"{method} is not allowed at this address; use {allow}.",
        "method_not_allowed",
        {"allowed": list(allowed)},
        headers={"Allow": allow},
    )


def _where(loc: tuple[Any, ...], inner: str = "") -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for p in parts:
        path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
    # A check on a whole model names the place inside it (herald.schemas.text).
    if inner:
        path += inner if inner.startswith("[") or not path else f".{inner}"
    return path or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(HeraldError)
    async def herald_error(_request: Request, exc: HeraldError) -> JSONResponse:
        return herald_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(tuple(e["loc"]) == ("body",) for e in exc.errors()):
            # The body as a whole is not an object: say why in the client's terms.
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                return error_response(
                    415,
                    f"Send the body as JSON with 'Content-Type: application/json' "
                    f"(this request said {media or 'nothing'!r}).",
                    "unsupported_media_type",
                )
            if not await request.body():
                return error_response(
                    422, "The request body is empty; send a JSON object.", "missing_body"
                )
        errors = [
            {
                "path": _where(tuple(e["loc"]), str(e.get("ctx", {}).get("field", ""))),
                "message": e["msg"],
                "code": pydantic_code(e["type"]),
            }
            for e in exc.errors()
        ]
        if any(e["code"] == "malformed_json" for e in errors):
            return error_response(
                400, "The request body is not valid JSON.", "malformed_json", {"errors": errors}
            )
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        code = first["code"] if len(errors) == 1 else "validation_failed"
        return error_response(
            422, f"{first['path']}: {first['message']}{more}", code, {"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return method_not_allowed(request.method, allowed_methods(request))
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "There is nothing at this address." if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 404 and request.url.path.endswith("/") and request.url.path != "/":
            message = "There is nothing at this address: Herald's addresses do not end with '/'."
        if exc.status_code == 400 and message.startswith("There was an error parsing the body"):
            # FastAPI's words for a body json.loads could not take: bad UTF-8, or nested deeper
            # than the parser allows.
            return error_response(
                400,
                "The request body is not valid JSON: it must be UTF-8 and nested at most a few "
                "hundred levels deep.",
                "malformed_json",
            )
        return error_response(exc.status_code, message, codes.get(exc.status_code, "http_error"))

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, INTERNAL_ERROR, "internal_error")
