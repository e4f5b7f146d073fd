"""Every error the API returns has one shape: ``{"error", "code", "details"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald.errors import HeraldError
from herald.schemas.messages import pydantic_code

log = logging.getLogger("herald.api")


INTERNAL_ERROR = (
    "Herald hit an internal error; nothing was changed. The server log has the details."
)


def error_response(status: int, message: str, code: str, details: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": message, "code": code, "details": details or {}}, status_code=status
    )


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for p in parts:
        path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
    return path or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(HeraldError)
    async def herald_error(_request: Request, exc: HeraldError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.code, exc.details)

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
            {"path": _where(tuple(e["loc"])), "message": e["msg"], "code": pydantic_code(e["type"])}
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
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "There is nothing at this address." if exc.status_code == 404 else str(exc.detail)
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
