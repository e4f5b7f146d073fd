"""What the provider webhooks share: the URL a provider signed, TwiML answers, and how an
answer is documented.

Reading the parameters of Twilio's forms is :mod:`herald.domain.form_params`, since services
read them too.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from fastapi import Request

from herald.api.responses import Responses, errors

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def public_url(public_base: str, path: str, query: str) -> str:
    """The URL the provider called, as it saw it: behind a proxy, our public URL, not ours."""
    url = public_base.rstrip("/") + path
    return f"{url}?{query}" if query else url


def public_url_of(request: Request, public_base: str) -> str:
    """:func:`public_url` for a request FastAPI routed."""
    return public_url(public_base, request.url.path, request.url.query)


def twiml(replies: list[str]) -> str:
    """A TwiML answer with one <Message> per reply, or ``<Response/>`` for none."""
    if not replies:
        return EMPTY_TWIML
    body = "".join(f"<Message>{escape(_NOT_XML.sub('', r))}</Message>" for r in replies)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def answered(description: str, media_type: str | None = None) -> Responses:
    """The OpenAPI answers of a webhook: 200 with ``description``, or Herald's errors."""
    content = {media_type: {"schema": {"type": "string"}}} if media_type else {}
    return {200: {"description": description, "content": content}, **errors(400, 403, 404, 413)}
