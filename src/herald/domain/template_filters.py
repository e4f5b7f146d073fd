"""The filters Herald's templates have on top of Jinja's builtins (``upper``, ``round``...).

* ``date(value, format="%d.%m.%Y", tz=None)``: a ``date``/``datetime``, an ISO 8601 string or a
  Unix timestamp, formatted with a ``strftime`` pattern; ``tz`` (an IANA name such as
  ``"Europe/Moscow"``) converts aware values (naive ones are taken as UTC) to that zone.
* ``number(value, decimals=None, sep=" ", point=".")``: thousands grouped by ``sep``,
  rounded half-up to ``decimals`` (``None`` keeps the value's own decimals):
  ``{{ 1234.5|number(2) }}`` is ``1 234.50``. The format is locale-neutral on purpose and
  the default separator is a plain space, not a no-break space: U+00A0 is not in GSM-7 and
  would turn a whole SMS into UCS-2 (70 characters a segment instead of 160).
* ``money(value, currency="", decimals=2, sep=" ", point=".")``: ``number`` with two decimals
  and the currency code after a space: ``{{ 1234.5|money("RUB") }}`` is ``1 234.50 RUB``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Undefined


def _check_defined(value: Any) -> None:
    if isinstance(value, Undefined):
        # Touching a strict undefined raises the UndefinedError that names the variable.
        str(value)


def _shown(value: Any) -> str:
    """``value`` as an error message quotes it: never a container's (unbounded) text."""
    if not isinstance(value, str | int | float | Decimal | date):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _to_datetime(value: Any) -> datetime | date:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip())
    raise TypeError


def date_filter(value: Any, format: str = "%d.%m.%Y", tz: str | None = None) -> str:
    """Format a date, datetime, ISO 8601 string or Unix timestamp with a strftime pattern."""
    _check_defined(value)
    try:
        when = _to_datetime(value)
    except (TypeError, ValueError, OverflowError, OSError) as e:
        raise TemplateRuntimeError(
            f"date: {_shown(value)} is not a date; give an ISO 8601 date such as 2026-01-31 or "
            "2026-01-31T09:30:00+00:00, or a Unix timestamp."
        ) from e
    if tz is not None and isinstance(when, datetime):
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise TemplateRuntimeError(f"date: unknown time zone {_shown(tz)}.") from e
        when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(zone)
    return when.strftime(format)


def _to_decimal(value: Any, name: str) -> Decimal:
    _check_defined(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise TemplateRuntimeError(f"{name}: {_shown(value)} is not a number.")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as e:
        raise TemplateRuntimeError(f"{name}: {_shown(value)} is not a number.") from e
    if not number.is_finite():
        raise TemplateRuntimeError(f"{name}: {_shown(value)} is not a finite number.")
    return number


def _format_decimal(number: Decimal, decimals: int | None, sep: str, point: str) -> str:
    if decimals is not None:
        if not 0 <= decimals <= 20:
            raise TemplateRuntimeError("number: decimals must be between 0 and 20.")
        number = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
        text = f"{number:,.{decimals}f}"
    else:
        text = f"{number:,f}"
    whole, dot, fraction = text.partition(".")
    return whole.replace(",", sep) + (point + fraction if dot else "")


def number_filter(value: Any, decimals: int | None = None, sep: str = " ", point: str = ".") -> str:
    """Group thousands with ``sep`` and round half-up to ``decimals``: 1234.5 → ``1 234.50``."""
    return _format_decimal(_to_decimal(value, "number"), decimals, sep, point)


def money_filter(
    value: Any, currency: str = "", decimals: int = 2, sep: str = " ", point: str = "."
) -> str:
    """An amount with two decimals and an optional currency code: ``1 234.50 RUB``."""
    text = _format_decimal(_to_decimal(value, "money"), decimals, sep, point)
    return f"{text} {currency}" if currency else text
