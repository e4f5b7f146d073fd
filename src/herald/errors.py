"""Herald's error tree. Every error carries an HTTP status and a stable machine code.

    HeraldError
    ├── InvalidRequest            400 invalid_request
    │   └── ValidationFailed      422 validation_failed
    │       └── UrlNotAllowed     422 url_not_allowed
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    ├── Conflict                  409 conflict
    ├── Gone                      410 gone
    ├── ContentTooLarge           413 body_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    └── TooManyRequests           429 too_many_requests (with Retry-After)

The API renders them as ``{"error": <sentence>, "code": <machine code>, "details": {...}}``,
the shape TWIN's SDK reads (``error`` is always a string).
"""

from __future__ import annotations

from typing import Any


class HeraldError(Exception):
    """Base of every error a client can see."""

    status_code = 500
    default_code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


# One class per row of the tree above, each two class attributes: alike on purpose, since a
# class per status is what ``except NotFound`` and the handler's one lookup need.
class InvalidRequest(HeraldError):
    status_code = 400
    default_code = "invalid_request"


class ValidationFailed(InvalidRequest):
    status_code = 422
    default_code = "validation_failed"


class UrlNotAllowed(ValidationFailed):
    """A tenant's URL points where Herald does not connect (a private or loopback address)."""

    default_code = "url_not_allowed"


class Unauthorized(HeraldError):
    status_code = 401
    default_code = "unauthorized"


class Forbidden(HeraldError):
    status_code = 403
    default_code = "forbidden"


class NotFound(HeraldError):
    status_code = 404
    default_code = "not_found"


class Conflict(HeraldError):
    status_code = 409
    default_code = "conflict"


class Gone(HeraldError):
    status_code = 410
    default_code = "gone"


class ContentTooLarge(HeraldError):
    status_code = 413
    default_code = "body_too_large"


class UnsupportedMediaType(HeraldError):
    """The body, or an uploaded file, is in a format the operation does not read."""

    status_code = 415
    default_code = "unsupported_media_type"


class TooManyRequests(HeraldError):
    """Refused for now; ``retry_after`` seconds from now the same request may succeed."""

    status_code = 429
    default_code = "too_many_requests"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details={"retryAfter": retry_after, **(details or {})})
        self.retry_after = retry_after
