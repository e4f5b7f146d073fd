"""Logging for ``herald serve``: uvicorn's own configuration, with secrets taken out.

A web chat visitor's token travels in the WebSocket's query string (browsers cannot set
headers on a WebSocket), and uvicorn writes that URL into its "WebSocket … [accepted]" and
access lines. Anyone reading the logs could then chat as that visitor, so every handler
redacts it before a line is written.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_SECRET_PARAM = re.compile(r"(?i)([?&](?:token)=)[^&#\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced."""
    return _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Redacts secrets in a record's message and in each of its arguments.

    The arguments are redacted in place, not merged into the message: uvicorn's access
    formatter reads them as a tuple.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with every handler (Herald's loggers' too) redacting."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactSecrets"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    # Herald's own loggers (herald.*) reach the root logger: give it a redacting handler too,
    # at the level Python's last-resort handler printed them before.
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
