"""The pages a person opens first: ``/`` and the API documentation at ``/docs`` and ``/redoc``.

Swagger UI and ReDoc are loaded from files shipped in the package (``static/docs``, see its
``VENDORED.md``), never from a CDN: Herald often runs where the Internet is out of reach,
and its documentation should not be the part that breaks there.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from importlib import metadata, resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from herald import __version__
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


# The dashboard will take "/" over; until then a person who opens Herald's address in a
# browser learns where to go, instead of reading a JSON 404.
_HOME = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald</title>
<link rel="icon" href="{favicon}">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
        padding: 0 1rem; color: #1f2328; }}
h1 {{ margin-bottom: 0; }}
.version {{ color: #59636e; margin-top: 0; }}
li {{ margin: .4rem 0; }}
code {{ background: #f0f2f4; padding: .1rem .3rem; border-radius: 4px; }}
</style>
</head>
<body>
<h1>Herald</h1>
<p class="version">version {version}: self-hosted multi-channel notifications</p>
<p>This is Herald's API server. There is no dashboard yet; start here:</p>
<ul>
<li><a href="/docs">API documentation</a> (Swagger UI: try every call with your API key)</li>
<li><a href="/redoc">API reference</a> (ReDoc: the same, as one page to read)</li>
<li>{readme}</li>
<li><a href="{openapi}">OpenAPI document</a> (JSON, for client generators)</li>
</ul>
<p>An API key comes from <code>herald projects create NAME</code>, run where Herald runs.</p>
</body>
</html>
"""


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    """A small page that points to the documentation."""
    readme = (
        '<a href="/readme">README</a> (quick start, configuration, every feature)'
        if _readme() is not None
        else "README: <code>README.md</code> in Herald's source"
    )
    page = _HOME.format(
        favicon=_FAVICON,
        version=html.escape(__version__),
        readme=readme,
        openapi=html.escape(_openapi_url(request)),
    )
    return HTMLResponse(page)
