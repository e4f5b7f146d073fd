"""The fake Twilio standalone: ``python -m tests.fakes.twilio`` serves until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import tests.fakes.twilio
from tests.fakes.harness import serve_until_signal
from tests.fakes.twilio.app import FakeTwilio
from tests.fakes.twilio.wire import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


def _parse_accounts(values: Sequence[str]) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for value in values:
        for pair in filter(None, value.split(",")):
            sid, sep, token = pair.partition(":")
            if not sep or not sid or not token:
                raise ValueError(pair)
            accounts[sid] = token
    return accounts


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fake Twilio until SIGTERM/SIGINT, after printing `READY <base_url>`."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.twilio", description=tests.fakes.twilio.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--accounts",
        action="append",
        default=[],
        metavar="SID:TOKEN[,SID:TOKEN]",
        help=f"repeatable; default {DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}",
    )
    parser.add_argument("--callback-delay", type=float, default=0.0)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args(argv)
    try:
        accounts = _parse_accounts(args.accounts)
    except ValueError as exc:
        parser.error(f"--accounts expects SID:TOKEN, got {exc}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    fake = FakeTwilio(
        accounts=accounts or None,
        callback_delay=args.callback_delay,
        send_callbacks=not args.no_callbacks,
        host=args.host,
        port=args.port,
    )
    serve_until_signal(fake)


if __name__ == "__main__":
    main()
