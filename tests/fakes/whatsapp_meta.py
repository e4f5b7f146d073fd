"""A fake WhatsApp Cloud API (Meta Graph API) on loopback, with signed webhooks.

It follows `shared/reference/channels.md` §4: ``POST /{version}/{phone_number_id}/messages``
with a Bearer token, payloads checked for the text / image / interactive cta_url / template
shapes, Graph API error bodies (``{"error":{"message","type","code","error_data",
"fbtrace_id"}}``), and status webhooks (sent → delivered → read, or failed with ``errors[]``)
signed with ``X-Hub-Signature-256`` under the app secret, posted to `webhook_url`.

    with FakeMetaWhatsApp(webhook_url="http://127.0.0.1:8000/webhooks/meta") as fake:
        ...  # sender.base_url = fake.base_url (version included), account_id = fake.phone_number_id

Blocking methods (`send_inbound`, `wait_for_webhooks`) are meant for a test's thread; from an
async test call them through ``asyncio.to_thread``.

Standalone (benchmarks)::

    python -m tests.fakes.whatsapp_meta --port 0 --webhook-url http://...   # prints "READY ..."
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import HttpFake, ServerThread, serve_until_signal, take_next

API_VERSION: Final = "v21.0"
DEFAULT_ACCESS_TOKEN: Final = "EAAHerald-fake-access-token"
DEFAULT_APP_SECRET: Final = "herald-fake-app-secret"
DEFAULT_PHONE_NUMBER_ID: Final = "106540352242922"
DISPLAY_PHONE_NUMBER: Final = "15550783881"
WABA_ID: Final = "102290129340398"

_DIGITS: Final = re.compile(r"^\+?\d{7,15}$")
_HTTP_URL: Final = re.compile(r"^https?://\S+$")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_ERRORS_HREF: Final = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

_OUTSIDE_WINDOW: Final = (
    131047,
    "Re-engagement message",
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
)
_UNDELIVERABLE: Final = (131026, "Message undeliverable", "Message Undeliverable.")
_THROTTLES: Final = {
    4: (429, "(#4) Application request limit reached"),
    80007: (400, "(#80007) Rate limit issues"),
    130429: (400, "(#130429) Rate limit hit"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
}

Kind = Literal["status", "inbound"]


@dataclass(frozen=True, slots=True)
class MetaRequest:
    """One send the fake received, and what it answered."""

    version: str
    phone_number_id: str
    payload: dict[str, Any] | None
    authorization: str | None
    status: int
    wamid: str | None
    error_code: int | None
    at: float


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """One webhook the fake posted; `status_code` is None when no answer came (see `error`)."""

    kind: Kind
    url: str
    body: bytes
    signature: str
    status_code: int | None
    error: str | None
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        """The posted JSON, decoded."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass(slots=True)
class _Failure:
    remaining: int
    http_status: int
    code: int
    message: str


def sign(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` for `body`: ``sha256=`` + hex HMAC-SHA256 under the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes[:9]).decode()


def _error(
    http_status: int,
    code: int,
    message: str,
    *,
    details: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = _fbtrace_id()
    return JSONResponse({"error": error}, status_code=http_status)


def _invalid(details: str) -> JSONResponse:
    return _error(400, 100, "(#100) Invalid parameter", details=details)


def _text_problem(value: Any, name: str, limit: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        return f"Parameter '{name}' is required and must be a non-empty string."
    if len(value) > limit:
        return f"Parameter '{name}' is too long: at most {limit} characters."
    return None


def _link_problem(media: Any, name: str) -> str | None:
    if not isinstance(media, dict) or not isinstance(media.get("link"), str):
        return f"Parameter '{name}' must be an object with a 'link'."
    if not _HTTP_URL.match(media["link"]):
        return f"Parameter '{name}.link' must be an http(s) URL."
    return None


def _interactive_problem(interactive: Any) -> str | None:
    if not isinstance(interactive, dict) or interactive.get("type") != "cta_url":
        return "Parameter 'interactive.type' must be 'cta_url'."
    body = interactive.get("body")
    problem = _text_problem(
        body.get("text") if isinstance(body, dict) else None, "interactive.body.text", 1024
    )
    if problem:
        return problem
    header = interactive.get("header")
    if header is not None:
        if not isinstance(header, dict) or header.get("type") not in ("image", "text"):
            return "Parameter 'interactive.header.type' must be 'image' or 'text'."
        if header["type"] == "image":
            problem = _link_problem(header.get("image"), "interactive.header.image")
        else:
            problem = _text_problem(header.get("text"), "interactive.header.text", 60)
        if problem:
            return problem
    action = interactive.get("action")
    if not isinstance(action, dict) or action.get("name") != "cta_url":
        return "Parameter 'interactive.action.name' must be 'cta_url'."
    parameters = action.get("parameters")
    if not isinstance(parameters, dict):
        return "Parameter 'interactive.action.parameters' is required."
    problem = _text_problem(parameters.get("display_text"), "display_text", 20)
    if problem:
        return problem
    url = parameters.get("url")
    if not isinstance(url, str) or not _HTTP_URL.match(url):
        return "Parameter 'interactive.action.parameters.url' must be an http(s) URL."
    return None


def _template_problem(template: Any) -> str | None:
    if not isinstance(template, dict):
        return "Parameter 'template' must be an object."
    problem = _text_problem(template.get("name"), "template.name", 512)
    if problem:
        return problem
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        return "Parameter 'template.language.code' is required."
    components = template.get("components", [])
    if not isinstance(components, list):
        return "Parameter 'template.components' must be a list."
    for component in components:
        if not isinstance(component, dict) or component.get("type") not in (
            "header",
            "body",
            "button",
        ):
            return "Each template component needs a type: header, body or button."
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            return "Parameter 'components.parameters' must be a list."
        for parameter in parameters:
            if not isinstance(parameter, dict) or not isinstance(parameter.get("type"), str):
                return "Each template parameter needs a type."
            if parameter["type"] == "text" and not isinstance(parameter.get("text"), str):
                return "A text template parameter needs 'text'."
            if parameter["type"] in _MEDIA_KINDS:
                problem = _link_problem(parameter.get(parameter["type"]), "header parameter")
                if problem:
                    return problem
    namespace = template.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        return "Parameter 'template.namespace' must be a string."
    return None


# Media messages sent by link, each with the fields it takes besides the link.
_MEDIA_KINDS: dict[str, tuple[str, ...]] = {
    "image": ("caption",),
    "video": ("caption",),
    "document": ("caption", "filename"),
    "audio": (),
}


def shape_problem(payload: Any) -> str | None:
    """Why a send payload does not match the Cloud API's shapes (reference §4), else None."""
    if not isinstance(payload, dict):
        return "The request body must be a JSON object."
    if payload.get("messaging_product") != "whatsapp":
        return "Parameter 'messaging_product' must be 'whatsapp'."
    if payload.get("recipient_type", "individual") != "individual":
        return "Parameter 'recipient_type' must be 'individual'."
    to = payload.get("to")
    if not isinstance(to, str) or not _DIGITS.match(to):
        return "Parameter 'to' must be a phone number in international format."
    kind = payload.get("type", "text")
    if kind == "text":
        text = payload.get("text")
        if not isinstance(text, dict):
            return "Parameter 'text' must be an object."
        if not isinstance(text.get("preview_url", False), bool):
            return "Parameter 'text.preview_url' must be a boolean."
        return _text_problem(text.get("body"), "text.body", 4096)
    if kind in _MEDIA_KINDS:
        media = payload.get(kind)
        problem = _link_problem(media, kind)
        if problem or not isinstance(media, dict):
            return problem
        unknown = set(media) - {"link", *_MEDIA_KINDS[kind]}
        if unknown:
            return f"Parameter '{kind}.{sorted(unknown)[0]}' is not valid for {kind} messages."
        if kind == "document":
            problem = _text_problem(media.get("filename"), "document.filename", 240, required=False)
            if problem:
                return problem
        return _text_problem(media.get("caption"), f"{kind}.caption", 1024, required=False)
    if kind == "interactive":
        return _interactive_problem(payload.get("interactive"))
    if kind == "template":
        return _template_problem(payload.get("template"))
    return f"Unsupported message type '{kind}'."


def _is_loopback(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK_HOSTS


class FakeMetaWhatsApp(HttpFake):
    """A fake Cloud API served on a background thread.

    Knobs may be turned from any thread; the records (`requests`, `messages`, `webhooks`)
    are appended by the server thread and meant to be read by the test.
    """

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        app_secret: str = DEFAULT_APP_SECRET,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        webhook_url: str | None = None,
        read_receipts: bool = False,
        webhook_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.webhook_url = webhook_url
        self.read_receipts = read_receipts
        self.webhook_delay = webhook_delay

        self.requests: list[MetaRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.webhooks: list[WebhookRecord] = []

        self._lock = threading.Lock()
        self._webhooks_changed = threading.Condition(self._lock)
        self._outside: dict[str, bool] = {}  # wa_id -> reject synchronously?
        self._undeliverable: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._generation = 0
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        app = Starlette(
            routes=[Route("/{version}/{phone_number_id}/messages", self._send, methods=["POST"])],
            exception_handlers={404: self._not_found, 405: self._not_found},
        )
        self._server = ServerThread(
            app,
            name="fake-meta-whatsapp",
            host=host,
            port=port,
            startup=self._startup,
            shutdown=self._shutdown,
        )

    @property
    def root_url(self) -> str:
        """Scheme, host and port, without the API version."""
        return self._server.base_url

    @property
    def base_url(self) -> str:
        """The Graph API base URL with its version, as a sender's base URL."""
        return f"{self._server.base_url}/{API_VERSION}"

    # -- lifecycle (start, stop and `with` are HttpFake's) -----------------------------------

    async def _startup(self) -> None:
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0), trust_env=False)

    async def _shutdown(self) -> None:
        await self._cancel_tasks()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        """Forget records and knobs, and cancel webhooks in flight."""
        if self._server.loop is not None:
            self._server.call(self._cancel_tasks()).result(timeout=10)
        with self._lock:
            self._generation += 1
            self.requests.clear()
            self.messages.clear()
            self.webhooks.clear()
            self._outside.clear()
            self._undeliverable.clear()
            self._failures.clear()

    # -- knobs -------------------------------------------------------------------------------

    def outside_window(self, to: str, *, synchronous: bool = False) -> None:
        """Free-form messages to `to` fail with 131047 (templates still go through).

        By default the send answers 200 and a ``failed`` status webhook follows, as Meta
        does; with `synchronous` the send itself is refused with HTTP 400.
        """
        with self._lock:
            self._outside[to.lstrip("+")] = synchronous

    def undeliverable(self, to: str) -> None:
        """Messages to `to` are accepted, then fail with 131026 (not on WhatsApp, blocked…)."""
        with self._lock:
            self._undeliverable.add(to.lstrip("+"))

    def fail_next(self, count: int, *, http_status: int = 500, code: int | None = None) -> None:
        """Answer the next `count` sends with a server error (code 1 unknown, 2 service)."""
        code = code if code is not None else (2 if http_status == 503 else 1)
        message = "Service temporarily unavailable" if code == 2 else "An unknown error occurred"
        with self._lock:
            self._failures.append(_Failure(count, http_status, code, message))

    def throttle_next(self, count: int, *, code: int = 130429) -> None:
        """Answer the next `count` sends with a rate-limit error (130429 by default)."""
        if code not in _THROTTLES:
            raise ValueError(f"code must be one of {sorted(_THROTTLES)}")
        http_status, message = _THROTTLES[code]
        with self._lock:
            self._failures.append(_Failure(count, http_status, code, message))

    def wait_for_webhooks(self, n: int, timeout: float = 10.0) -> None:
        """Block until `n` webhooks were posted (answered or not); TimeoutError otherwise."""
        with self._webhooks_changed:
            if not self._webhooks_changed.wait_for(lambda: len(self.webhooks) >= n, timeout):
                raise TimeoutError(f"{len(self.webhooks)} of {n} webhooks after {timeout} s")

    def send_inbound(
        self, from_wa_id: str, text: str, *, name: str = "Test User", timeout: float = 20.0
    ) -> WebhookRecord:
        """Post a signed inbound text message from `from_wa_id`; blocks until answered.

        Like a real reply, it reopens the 24-hour window for that person.
        """
        if self.webhook_url is None:
            raise RuntimeError("set webhook_url first")
        wa_id = from_wa_id.lstrip("+")
        with self._lock:
            self._outside.pop(wa_id, None)
        value = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": self._new_wamid(),
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
        future = self._server.call(self._post_webhook("inbound", self._envelope(value)))
        return future.result(timeout=timeout)

    # -- HTTP --------------------------------------------------------------------------------

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error(
            400,
            100,
            f"Unsupported post request. Object with ID '{request.url.path}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation.",
            error_type="GraphMethodException",
            subcode=33,
        )

    def _take_failure(self) -> _Failure | None:
        return take_next(self._failures, self._lock)

    def _record(
        self,
        request: Request,
        payload: dict[str, Any] | None,
        status: int,
        wamid: str | None = None,
        error_code: int | None = None,
    ) -> None:
        record = MetaRequest(
            version=request.path_params["version"],
            phone_number_id=request.path_params["phone_number_id"],
            payload=payload,
            authorization=request.headers.get("authorization"),
            status=status,
            wamid=wamid,
            error_code=error_code,
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)

    async def _send(self, request: Request) -> Response:
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        payload = parsed if isinstance(parsed, dict) else None
        failure = self._take_failure()
        if failure is not None:
            self._record(request, payload, failure.http_status, error_code=failure.code)
            return _error(
                failure.http_status,
                failure.code,
                failure.message,
                details=failure.message if failure.code in _THROTTLES else None,
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), self.access_token.encode()
        ):
            self._record(request, payload, 401, error_code=190)
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path_params["phone_number_id"] != self.phone_number_id:
            self._record(request, payload, 400, error_code=100)
            return await self._not_found(request, LookupError())
        problem = shape_problem(payload)
        if problem is not None or payload is None:
            self._record(request, payload, 400, error_code=100)
            return _invalid(problem or "The request body must be a JSON object.")
        wa_id = str(payload["to"]).lstrip("+")
        free_form = payload.get("type", "text") != "template"
        with self._lock:
            synchronous = self._outside.get(wa_id)
            undeliverable = wa_id in self._undeliverable
        if free_form and synchronous:
            code, title, details = _OUTSIDE_WINDOW
            self._record(request, payload, 400, error_code=code)
            return _error(400, code, f"(#{code}) {title}", details=details)
        wamid = self._new_wamid()
        failure_reason = None
        if free_form and synchronous is False:
            failure_reason = _OUTSIDE_WINDOW
        elif undeliverable:
            failure_reason = _UNDELIVERABLE
        with self._lock:
            self.messages[wamid] = payload
        self._record(request, payload, 200, wamid=wamid)
        self._launch(wamid, wa_id, failure_reason)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": payload["to"], "wa_id": wa_id}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
        )

    @staticmethod
    def _new_wamid() -> str:
        raw = b"\x15\x02\x00\x11\x18\x12" + uuid.uuid4().hex.upper().encode()
        return "wamid." + base64.b64encode(raw).decode()

    # -- webhooks ----------------------------------------------------------------------------

    def _metadata(self) -> dict[str, str]:
        return {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": self.phone_number_id,
        }

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
        }

    def _launch(self, wamid: str, wa_id: str, failure: tuple[int, str, str] | None) -> None:
        if self.webhook_url is None:
            return
        # Spawned rather than awaited so the 200 goes out first and stop() can cancel it.
        task = asyncio.get_running_loop().create_task(self._progress(wamid, wa_id, failure))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _progress(self, wamid: str, wa_id: str, failure: tuple[int, str, str] | None) -> None:
        steps: list[str]
        if failure is not None:
            steps = ["failed"]
        else:
            steps = ["sent", "delivered", *(["read"] if self.read_receipts else [])]
        conversation = {
            "id": uuid.uuid4().hex,
            "expiration_timestamp": str(int(time.time()) + 86400),
            "origin": {"type": "utility"},
        }
        for step in steps:
            await asyncio.sleep(self.webhook_delay)
            status: dict[str, Any] = {
                "id": wamid,
                "status": step,
                "timestamp": str(int(time.time())),
                "recipient_id": wa_id,
            }
            if failure is not None:
                code, title, details = failure
                status["errors"] = [
                    {
                        "code": code,
                        "title": title,
                        "message": title,
                        "error_data": {"details": details},
                        "href": _ERRORS_HREF,
                    }
                ]
            elif step != "read":
                status["conversation"] = conversation
                status["pricing"] = {
                    "billable": True,
                    "pricing_model": "CBP",
                    "category": "utility",
                }
            value = {
                "messaging_product": "whatsapp",
                "metadata": self._metadata(),
                "statuses": [status],
            }
            await self._post_webhook("status", self._envelope(value))

    async def _post_webhook(self, kind: Kind, payload: dict[str, Any]) -> WebhookRecord:
        url = self.webhook_url or ""
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = sign(self.app_secret, body)
        generation = self._generation
        status_code: int | None = None
        error: str | None = None
        client = self._client
        if not _is_loopback(url):
            error = "not a loopback URL"
        elif client is None:
            error = "fake is stopping"
        else:
            sha1 = hmac.new(self.app_secret.encode(), body, hashlib.sha1).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "facebookexternalua",
                "X-Hub-Signature-256": signature,
                # Meta still sends the legacy SHA-1 signature alongside.
                "X-Hub-Signature": f"sha1={sha1}",
            }
            try:
                response = await client.post(url, content=body, headers=headers)
                status_code = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        record = WebhookRecord(kind, url, body, signature, status_code, error, time.monotonic())
        with self._webhooks_changed:
            if generation == self._generation:
                self.webhooks.append(record)
                self._webhooks_changed.notify_all()
        return record


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fake Cloud API until SIGTERM/SIGINT, after printing `READY <base_url>`."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.whatsapp_meta", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID)
    parser.add_argument("--webhook-url")
    parser.add_argument("--read-receipts", action="store_true")
    parser.add_argument("--webhook-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeMetaWhatsApp(
        access_token=args.access_token,
        app_secret=args.app_secret,
        phone_number_id=args.phone_number_id,
        webhook_url=args.webhook_url,
        read_receipts=args.read_receipts,
        webhook_delay=args.webhook_delay,
        host=args.host,
        port=args.port,
    )
    serve_until_signal(fake)


if __name__ == "__main__":
    main()
