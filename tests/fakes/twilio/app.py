"""The fake Twilio's HTTP side: the Messages API routes, served on a `harness.ServerThread`.

`FakeTwilio` is the class tests use: the message state (`state.TwilioState`) behind Twilio's
routes, with the callback sender (`callbacks.CallbackSender`) on the server's loop.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Final
from urllib.parse import parse_qs, urlencode

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from tests.fakes.harness import HttpFake, ServerThread
from tests.fakes.twilio.callbacks import CallbackSender, callback_params
from tests.fakes.twilio.state import (
    InboundResult,
    StoredMessage,
    TwilioState,
    list_key,
    page_token,
    parse_page_token,
)
from tests.fakes.twilio.wire import (
    API_VERSION,
    READ_TIMEOUT,
    basic_auth_matches,
    error,
    first,
    http_error,
    not_found,
    num_segments,
    parse_day,
    parse_form,
    twilio_signature,
    validate,
)

_CREATE_PATH: Final = re.compile(r"^/2010-04-01/Accounts/[^/]+/Messages\.json$")


async def _read_body(receive: Receive) -> bytes:
    """A request's body, read to its end (a create is small; past 1 MiB the rest is left)."""
    body = bytearray()
    while len(body) <= 1 << 20:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


async def _hang_up(receive: Receive, send: Send) -> None:
    """Close the request's connection without an answer."""
    # ASGI cannot abort a connection; uvicorn's `send` is a bound method of the request
    # cycle, which holds the transport. Closing it is what a dead Twilio looks like.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):
        raise RuntimeError("dropping connections needs uvicorn's HTTP protocol")
    close()
    # Returning before uvicorn sees the disconnect would make it log a missing response.
    await asyncio.wait_for(receive(), timeout=5)


class FakeTwilio(TwilioState, HttpFake):
    """A fake Twilio REST API served by uvicorn on a background thread.

    Knobs may be turned from any thread; the records (`requests`, `messages`,
    `callbacks_sent`, `callbacks_failed`) are appended by the server thread and meant to be
    read by the test. `start()`, `stop()` and the with-statement come from `HttpFake`.
    """

    def __init__(
        self,
        *,
        accounts: dict[str, str] | None = None,
        callback_delay: float = 0.0,
        send_callbacks: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(accounts)
        self.callback_delay = callback_delay
        self.send_callbacks = send_callbacks
        self._callbacks = CallbackSender()
        prefix = "/2010-04-01/Accounts/{account_sid}"
        self._app = Starlette(
            routes=[
                Route(f"{prefix}/Messages.json", self._create, methods=["POST"]),
                Route(f"{prefix}/Messages.json", self._list, methods=["GET"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._fetch, methods=["GET"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._update, methods=["POST"]),
                Route(f"{prefix}/Messages/{{sid}}.json", self._delete, methods=["DELETE"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/_fake/times", self._times, methods=["GET"]),
            ],
            exception_handlers={404: http_error, 405: http_error},
        )

        self._server = ServerThread(
            self._asgi,
            name="fake Twilio",
            host=host,
            port=port,
            startup=self._callbacks.open,
            shutdown=self._callbacks.close,
            # uvloop when installed: the SMS benchmark needs the fake to keep up with Herald.
            loop="auto",
            timeout_keep_alive=30,
        )

    @property
    def base_url(self) -> str:
        """Scheme, host and port, once started: the Twilio adapter's base URL."""
        return self._server.base_url

    def reset(self) -> None:
        """Forget messages, records and knobs, and cancel status progressions in flight."""
        loop = self._server.loop
        if loop is not None and loop.is_running():
            self._server.call(self._callbacks.cancel_all()).result(timeout=10)
        super().reset()

    async def send_inbound(
        self,
        to: str,
        from_: str,
        body: str,
        *,
        url: str,
        media: list[str] | None = None,
        account_sid: str | None = None,
        message_sid: str | None = None,
        extra: dict[str, str] | None = None,
        sign_with: str | None = None,
        signed_url: str | None = None,
    ) -> InboundResult:
        """POST a signed inbound-message webhook to `url`, as Twilio does when `from_` texts
        the number `to` (reference §5); returns the TwiML answer.

        `message_sid` repeats a delivery; `extra` adds parameters (e.g. `OptOutType`);
        `sign_with` signs with another token and `signed_url` for another URL (forgeries).
        """
        sid = account_sid or self.account_sid
        media = media or []
        message_sid = message_sid or ("MM" if media else "SM") + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": message_sid,
            "NumMedia": str(len(media)),
            "SmsSid": message_sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": str(num_segments(body)),
            "MessageSid": message_sid,
            "AccountSid": sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        for i, media_url in enumerate(media):
            params[f"MediaUrl{i}"] = media_url
            params[f"MediaContentType{i}"] = "image/jpeg"
        params.update(extra or {})
        token = sign_with if sign_with is not None else self._accounts.get(sid, "")
        signature = twilio_signature(signed_url or url, params, token)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        }
        # Twilio waits 15 s for the TwiML (reference §3 timeouts).
        async with httpx.AsyncClient(timeout=READ_TIMEOUT) as client:
            response = await client.post(url, content=urlencode(params).encode(), headers=headers)
        return InboundResult(
            status_code=response.status_code,
            text=response.text,
            content_type=response.headers.get("content-type", ""),
            params=params,
            signature=signature,
        )

    # -- HTTP --------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            (self._down or self._answers_lost)
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and _CREATE_PATH.match(scope["path"])
        ):
            if self._down:
                await self._drop(scope, receive, send)
            else:
                await self._create_unanswered(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a create, record it, and close its connection without answering."""
        body = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        params = parse_form(headers.get("content-type", ""), body)
        account_sid = scope["path"].split("/")[3]
        self._record_create(params, account_sid, 0, None, None)
        await _hang_up(receive, send)

    async def _create_unanswered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Carry out a create, then close its connection instead of answering."""
        body = await _read_body(receive)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        routed = {**scope, "path_params": {"account_sid": scope["path"].split("/")[3]}}
        response = await self._create(Request(routed, replay))
        if response.background is not None:
            await response.background()
        await _hang_up(receive, send)

    def _authenticate(self, request: Request, account_sid: str) -> JSONResponse | None:
        token = self._accounts.get(account_sid)
        header = request.headers.get("authorization")
        if token is not None and header and basic_auth_matches(header, account_sid, token):
            return None
        return error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    async def _create(self, request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        params = parse_form(request.headers.get("content-type", ""), await request.body())
        # Injected failures model the edge (load balancer, concurrency limit): before auth.
        failure = self._take_failure()
        if failure is not None:
            headers = None
            if failure.retry_after is not None:
                headers = {"Retry-After": f"{failure.retry_after:g}"}
            message = "Too Many Requests" if failure.http_status == 429 else "Internal Server Error"
            self._record_create(params, account_sid, failure.http_status, None, failure.code)
            return error(failure.http_status, failure.code, message, headers)
        denied = self._authenticate(request, account_sid)
        if denied is not None:
            self._record_create(params, account_sid, 401, None, 20003)
            return denied
        problem = validate(params)
        if problem is not None:
            self._record_create(params, account_sid, 400, None, problem[0])
            return error(400, *problem)
        message_ = self._new_message(account_sid, params)
        self._record_create(params, account_sid, 201, message_.sid, None)
        if self._answer_delay > 0:
            await asyncio.sleep(self._answer_delay)
        # A background task runs after the 201 is written, so Herald sees the sid before any
        # callback about it.
        return JSONResponse(
            message_.data, status_code=201, background=BackgroundTask(self._launch, message_)
        )

    def _addressed(self, request: Request) -> StoredMessage | Response:
        """The message the path names, or Twilio's answer when there is none to give (401, 404)."""
        denied = self._authenticate(request, request.path_params["account_sid"])
        if denied is not None:
            return denied
        message = self._find(request.path_params["account_sid"], request.path_params["sid"])
        return not_found(request.url.path) if message is None else message

    async def _fetch(self, request: Request) -> Response:
        message = self._addressed(request)
        if not isinstance(message, Response) or message.status_code != 401:
            with self._lock:  # every authenticated fetch, found or not
                self.fetches.append(request.path_params["sid"])
        if isinstance(message, Response):
            return message
        return JSONResponse(message.data)

    async def _update(self, request: Request) -> Response:
        message = self._addressed(request)
        if isinstance(message, Response):
            return message
        params = parse_form(request.headers.get("content-type", ""), await request.body())
        status = first(params, "Status")
        if status is not None:
            # Only a scheduled message can be canceled, and this fake never schedules.
            if status == "canceled":
                return error(400, 30409, "Message cannot be canceled")
            return error(400, 20001, f"Invalid Status: {status}")
        body = first(params, "Body")
        if body is not None:
            if body:
                return error(400, 20001, "Body can only be redacted (set to an empty string)")
            self._replace_data(message, {**message.data, "body": ""})
        return JSONResponse(message.data)

    async def _delete(self, request: Request) -> Response:
        message = self._addressed(request)
        if isinstance(message, Response):
            return message
        self._remove(message)
        return Response(status_code=204)

    async def _list(self, request: Request) -> Response:
        account_sid: str = request.path_params["account_sid"]
        denied = self._authenticate(request, account_sid)
        if denied is not None:
            return denied
        query = parse_qs(request.url.query, keep_blank_values=True)
        with self._lock:
            self.lists.append(query)
        filters: list[tuple[str, str]] = [
            (key, query[key][0])
            for key in ("To", "From", "DateSent", "DateSent<", "DateSent>")
            if key in query
        ]
        wanted = dict(filters)
        try:
            on = parse_day(wanted.get("DateSent"))
            not_after = parse_day(wanted.get("DateSent<"))
            not_before = parse_day(wanted.get("DateSent>"))
            page_size = min(max(int(first(query, "PageSize") or 50), 1), 1000)
            page = max(int(first(query, "Page") or 0), 0)
            token = first(query, "PageToken")
            # The PageToken is the list position of the last message served, so messages
            # created (or sent) between two page fetches do not shift what the next page holds.
            after = parse_page_token(token) if token else None
        except ValueError:
            return error(400, 20001, "Invalid paging or DateSent parameter")

        skip = 0 if after is not None else page * page_size
        dates = (on, not_before, not_after)
        items, more = self._select(account_sid, wanted, dates, after, skip, page_size)

        base = f"/2010-04-01/Accounts/{account_sid}/Messages.json"

        def page_uri(extra: list[tuple[str, str]]) -> str:
            return f"{base}?{urlencode([*filters, ('PageSize', str(page_size)), *extra])}"

        current = [("Page", str(page))] + ([("PageToken", token)] if token else [])
        start = page * page_size
        return JSONResponse(
            {
                "end": start + len(items) - 1 if items else start,
                "first_page_uri": page_uri([("Page", "0")]),
                "messages": [message.data for message in items],
                "next_page_uri": (
                    page_uri(
                        [("Page", str(page + 1)), ("PageToken", page_token(list_key(items[-1])))]
                    )
                    if more
                    else None
                ),
                "page": page,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": start,
                "uri": page_uri(current),
            }
        )

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _times(self, request: Request) -> Response:
        """Wall-clock time of every accepted create, for benchmarks that measure lateness."""
        with self._lock:
            times = [r.wall for r in self.requests if r.response_status == 201]
        return JSONResponse(times)

    # -- status progression and callbacks ----------------------------------------------------

    async def _launch(self, message: StoredMessage) -> None:
        # Spawned rather than awaited so the request cycle ends now and stop() can cancel it.
        self._callbacks.spawn(self._progress(message))

    async def _progress(self, message: StoredMessage) -> None:
        url = message.status_callback if self.send_callbacks else None
        for status in message.steps:
            if self.callback_delay > 0:
                await asyncio.sleep(self.callback_delay)
            self._advance(message, status)
            if url is not None:
                params = callback_params(message, status)
                token = self._accounts[message.account_sid]
                self._record_callback(message, await self._callbacks.deliver(url, params, token))
