"""A fake Telegram Bot API: a real HTTP server on loopback, speaking the Bot API's wire format.

It follows `shared/reference/channels.md` §2: the token in the path (``/bot<TOKEN>/<method>``),
JSON (or form) bodies, ``{"ok":true,"result":…}`` answers, and errors shaped
``{"ok":false,"error_code":N,"description":"…","parameters":{"retry_after":N}}`` with the
HTTP status equal to ``error_code``.

In-process use::

    with FakeTelegram() as fake:
        ...  # sender.base_url = fake.base_url, botToken = fake.token; then inspect fake.sent

Standalone (benchmarks)::

    python -m tests.fakes.telegram --port 0     # prints "READY http://..."
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import HttpFake, ServerThread, serve_until_signal, take_next

DEFAULT_TOKEN: Final = "123456789:AAHerald-fake-bot-token_0123456789ab"
MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024

_TOKEN: Final = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_USERNAME: Final = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,}$")
_BUTTON_URL: Final = re.compile(r"^(?:https?|tg)://\S+$")


@dataclass(frozen=True, slots=True)
class TelegramRequest:
    """One Bot API call the fake received, and the HTTP status it answered."""

    method: str
    token: str
    payload: dict[str, Any]
    status: int
    at: float


@dataclass(slots=True)
class _Failure:
    remaining: int
    status: int
    retry_after: int | None
    header: bool


def _error(
    status: int,
    description: str,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status, headers=headers)


def _bad_request(description: str) -> JSONResponse:
    return _error(400, f"Bad Request: {description}")


def _payload(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The call's parameters from JSON or a form (Telegram takes both); None if unreadable."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    if kind == "application/x-www-form-urlencoded":
        form: dict[str, Any] = {
            k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()
        }
        if isinstance(form.get("reply_markup"), str):
            # Form bodies carry reply_markup as a JSON string.
            try:
                form["reply_markup"] = json.loads(form["reply_markup"])
            except ValueError:
                return None
        return form
    return None


def _markup_problem(markup: Any) -> str | None:
    if markup is None:
        return None
    keyboard = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        return "can't parse inline keyboard button: InlineKeyboardMarkup is invalid"
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                return "can't parse inline keyboard button: Text buttons are unallowed"
            if not button["text"]:
                return "BUTTON_TEXT_EMPTY"
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not _BUTTON_URL.match(url)):
                return "BUTTON_URL_INVALID"
    return None


class FakeTelegram(HttpFake):
    """A fake Bot API served on a background thread.

    Knobs may be turned from any thread; `requests` and `sent` are appended by the server
    thread and meant to be read by the test.
    """

    def __init__(
        self, *, tokens: Iterable[str] | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._tokens = list(tokens) if tokens is not None else [DEFAULT_TOKEN]
        if not self._tokens or not all(_TOKEN.match(t) for t in self._tokens):
            raise ValueError("tokens must look like 123456:ABC-def")
        self.requests: list[TelegramRequest] = []
        # Messages the fake accepted: the Bot API's Message objects, in order.
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._blocked: set[str] = set()
        self._unknown: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._message_ids: dict[int, int] = {}
        app = Starlette(
            routes=[Route("/bot{token}/{method}", self._call, methods=["GET", "POST"])],
            exception_handlers={404: self._not_found, 405: self._not_found},
        )
        self._server = ServerThread(app, name="fake-telegram", host=host, port=port)

    @property
    def token(self) -> str:
        """The first configured bot token."""
        return self._tokens[0]

    @property
    def base_url(self) -> str:
        """Scheme, host and port: a sender's base URL."""
        return self._server.base_url

    # -- lifecycle (start, stop and `with` are HttpFake's) -----------------------------------

    def reset(self) -> None:
        """Forget records and knobs."""
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self._blocked.clear()
            self._unknown.clear()
            self._failures.clear()
            self._message_ids.clear()

    # -- knobs -------------------------------------------------------------------------------

    def block_chat(self, chat_id: int | str) -> None:
        """The user behind `chat_id` blocked the bot: 403 from now on."""
        with self._lock:
            self._blocked.add(str(chat_id))

    def unknown_chat(self, chat_id: int | str) -> None:
        """`chat_id` never talked to the bot: 400 chat not found."""
        with self._lock:
            self._unknown.add(str(chat_id))

    def throttle_next(self, count: int, retry_after: int, *, header: bool = False) -> None:
        """Answer the next `count` calls with 429 and ``parameters.retry_after``.

        With `header`, a ``Retry-After`` header is sent too (the reference could not
        confirm whether Telegram sends one).
        """
        with self._lock:
            self._failures.append(_Failure(count, 429, retry_after, header))

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` calls with this HTTP status (a server-side failure)."""
        with self._lock:
            self._failures.append(_Failure(count, status, None, False))

    # -- HTTP --------------------------------------------------------------------------------

    def _take_failure(self) -> _Failure | None:
        return take_next(self._failures, self._lock)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error(404, "Not Found")

    def _record(self, method: str, token: str, payload: dict[str, Any], status: int) -> None:
        with self._lock:
            self.requests.append(TelegramRequest(method, token, payload, status, time.monotonic()))

    async def _call(self, request: Request) -> Response:
        token: str = request.path_params["token"]
        method: str = request.path_params["method"]
        body = await request.body()
        payload = _payload(request.headers.get("content-type", ""), body)
        if payload is not None and request.query_params:
            # Telegram reads parameters from the query string too; the body wins.
            payload = {**request.query_params, **payload}
        response = self._answer(token, method, payload)
        self._record(method, token, payload or {}, response.status_code)
        return response

    def _answer(self, token: str, method: str, payload: dict[str, Any] | None) -> Response:
        failure = self._take_failure()
        if failure is not None:
            if failure.status == 429:
                retry = failure.retry_after or 1
                headers = {"Retry-After": str(retry)} if failure.header else None
                return _error(
                    429,
                    f"Too Many Requests: retry after {retry}",
                    retry_after=retry,
                    headers=headers,
                )
            return _error(failure.status, "Internal Server Error")
        if not _TOKEN.match(token):
            return _error(404, "Not Found")
        if token not in self._tokens:
            return _error(401, "Unauthorized")
        if payload is None:
            return _bad_request("can't parse request body")
        bot_id = int(token.partition(":")[0])
        if method == "getMe":
            return JSONResponse({"ok": True, "result": self._bot(bot_id)})
        if method not in ("sendMessage", "sendPhoto"):
            return _error(404, "Not Found")
        problem = self._validate(method, payload)
        if problem is not None:
            return _bad_request(problem)
        chat_key = str(payload["chat_id"])
        if chat_key in self._blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat_key in self._unknown:
            return _bad_request("chat not found")
        return JSONResponse({"ok": True, "result": self._accept(method, bot_id, payload)})

    @staticmethod
    def _validate(method: str, payload: dict[str, Any]) -> str | None:
        chat_id = payload.get("chat_id")
        if chat_id is None or chat_id == "":
            return "chat_id is empty"
        if isinstance(chat_id, bool) or not isinstance(chat_id, int | str):
            return "chat_id is invalid"
        if isinstance(chat_id, str) and not (
            _USERNAME.match(chat_id) or re.fullmatch(r"-?\d+", chat_id)
        ):
            return "chat not found"
        if method == "sendMessage":
            text = payload.get("text")
            if not isinstance(text, str) or not text.strip():
                return "message text is empty"
            if len(text) > MAX_TEXT:
                return "message is too long"
        else:
            photo = payload.get("photo")
            if not isinstance(photo, str) or not photo:
                return "there is no photo in the request"
            caption = payload.get("caption")
            if caption is not None and (not isinstance(caption, str) or len(caption) > MAX_CAPTION):
                return "message caption is too long"
        return _markup_problem(payload.get("reply_markup"))

    @staticmethod
    def _bot(bot_id: int) -> dict[str, Any]:
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Herald Fake",
            "username": "herald_fake_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _accept(self, method: str, bot_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        raw_chat = payload["chat_id"]
        chat: dict[str, Any]
        if isinstance(raw_chat, str) and raw_chat.startswith("@"):
            # A channel addressed by name answers with its numeric -100… id.
            chat_id = -1_000_000_000_000 - (uuid.uuid5(uuid.NAMESPACE_DNS, raw_chat).int % 10**9)
            name = raw_chat[1:]
            chat = {"id": chat_id, "title": name, "username": name, "type": "channel"}
        else:
            chat_id = int(raw_chat)
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
            if chat_id > 0:
                chat["first_name"] = "Test"
        with self._lock:
            message_id = self._message_ids.get(chat_id, 0) + 1
            self._message_ids[chat_id] = message_id
            message: dict[str, Any] = {
                "message_id": message_id,
                "from": {k: v for k, v in self._bot(bot_id).items() if not k.startswith("can_")},
                "chat": chat,
                "date": int(time.time()),
            }
            if method == "sendMessage":
                message["text"] = payload["text"]
            else:
                file_id = uuid.uuid4().hex
                message["photo"] = [
                    {"file_id": file_id, "file_unique_id": file_id[:16], "width": 90, "height": 90}
                ]
                if payload.get("caption"):
                    message["caption"] = payload["caption"]
            if payload.get("reply_markup") is not None:
                message["reply_markup"] = payload["reply_markup"]
            self.sent.append(message)
        return message


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fake Telegram until SIGTERM/SIGINT, after printing `READY <base_url>`."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.telegram", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], help=f"default {DEFAULT_TOKEN}")
    args = parser.parse_args(argv)
    serve_until_signal(FakeTelegram(tokens=args.token or None, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
