"""The API's documentation at ``/docs`` and ``/redoc`` (``/`` is the web cabinet's).

Swagger UI and ReDoc are loaded from files shipped in the package (``static/docs``, see its
``VENDORED.md``), never from a CDN: Herald often runs where the Internet is out of reach,
and its documentation should not be the part that breaks there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import metadata, resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from herald.errors import NotFound

ASSETS = "/docs/assets/"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_FAVICON = ASSETS + "favicon-32x32.png"
# The browser itself keeps the pages to Herald's own files: ReDoc's footer would otherwise
# fetch Redocly's logo from their CDN, and any future asset of that kind would fail alike.
_SELF_ONLY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("herald.api").joinpath("static/docs", name).read_bytes()


def _openapi_url(request: Request) -> str:
    app: FastAPI = request.app
    return app.openapi_url or "/openapi.json"


def _docs_page(
    request: Request, render: Callable[..., HTMLResponse], **options: Any
) -> HTMLResponse:
    """A documentation page of Herald's document, held to Herald's own files."""
    page = render(openapi_url=_openapi_url(request), title="Herald API", **options)
    page.headers.update(_SELF_ONLY)
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, with the Authorize button for the API key."""
    return _docs_page(
        request,
        get_swagger_ui_html,
        swagger_js_url=ASSETS + "swagger-ui-bundle.js",
        swagger_css_url=ASSETS + "swagger-ui.css",
        swagger_favicon_url=_FAVICON,
        # validatorUrl: Swagger UI would otherwise send the document to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


# Same shape as /docs: two routes over one _docs_page, only the viewer's options differ.
@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the same document, as one page to read."""
    return _docs_page(
        request,
        get_redoc_html,
        redoc_js_url=ASSETS + "redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )


@router.get(ASSETS + "{name}")
async def asset(name: str) -> Response:
    """One of the vendored files; nothing else in the package is reachable this way."""
    media_type = _MEDIA_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"There is no documentation asset {name!r}.")
    # Versioned with Herald: a day of caching spares reloads without outliving an upgrade long.
    return Response(_asset(name), media_type=media_type, headers={"Cache-Control": "max-age=86400"})


def has_readme() -> bool:
    """Whether ``/readme`` has a README to show (the cabinet's sign-in page links to it)."""
    return _readme() is not None


@functools.cache
def _readme() -> str | None:
    try:
        description = metadata.metadata("herald").json.get("description")
    except metadata.PackageNotFoundError:
        return None
    return description if isinstance(description, str) and description.strip() else None


@router.get("/readme")
async def readme() -> PlainTextResponse:
    """The README this Herald was installed with (it is the package's long description)."""
    text = _readme()
    if text is None:
        raise NotFound(
            "This installation of Herald carries no README: read README.md in its source."
        )
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
