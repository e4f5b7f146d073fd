"""What a template may hold: its name, allowed time ranges and channels, each field compile-checked.

Every problem of a request is collected (:func:`template_problems`) so the client can fix them
all in one go; :func:`template_error` is the 422 of one problem met while rendering.
"""

from __future__ import annotations

import re
from typing import Any

from herald.domain import templates as tpl
from herald.errors import ValidationFailed
from herald.services.problems import Problems

__all__ = [
    "MAX_BUTTONS",
    "MAX_FIELD_LENGTH",
    "MAX_NAME_LENGTH",
    "check_name",
    "check_ranges",
    "template_error",
    "template_problems",
    "validate_channels",
]

MAX_NAME_LENGTH = 200
MAX_FIELD_LENGTH = 20_000
MAX_BUTTONS = 10
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def template_problems() -> Problems:
    """A collector with the templates' rules: every occurrence listed, a shared code kept."""
    return Problems(repeats=True, shared_code=True)


def template_error(problem: tpl.TemplateProblem, path: str) -> ValidationFailed:
    """The API's 422 for a template problem found at ``path`` (e.g. ``channels.sms.text``)."""
    details: dict[str, Any] = {"field": path}
    line = getattr(problem, "line", None)
    if line is not None:
        details.update(line=line, column=getattr(problem, "column", None))
        where = f"{path}: line {line}, column {details['column']}: "
    else:
        where = f"{path}: "
    if isinstance(problem, tpl.MissingVariables):
        details["missing"] = problem.names
    if isinstance(problem, tpl.TemplateTooExpensive):
        details["limit"] = problem.limit
    return ValidationFailed(where + problem.message, code=problem.code, details=details)


def check_name(name: Any, problems: Problems) -> str:
    """The name, stripped; ``""`` after noting a problem when it is missing or too long."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        problems.add(
            "name",
            f"A template needs a 'name' of 1 to {MAX_NAME_LENGTH} characters.",
            "invalid_template_name",
        )
        return ""
    return name.strip()


def check_ranges(ranges: Any, problems: Problems) -> list[list[str]]:
    """The valid ``[from, to]`` pairs as ``HH:MM:SS``, noting a problem for each other one."""
    if not isinstance(ranges, list):
        problems.add(
            "allowedTimeRanges",
            'Give a list of [from, to] pairs such as [["09:00:00", "21:00:00"]].',
            "invalid_time_range",
        )
        return []
    out: list[list[str]] = []
    for i, pair in enumerate(ranges):
        ok = isinstance(pair, list) and len(pair) == 2
        times: list[str] = []
        for value in pair if ok else []:
            m = _TIME.match(value) if isinstance(value, str) else None
            if m is None:
                ok = False
                break
            times.append(f"{m.group(1)}:{m.group(2)}:{m.group(3) or '00'}")
        if not ok:
            problems.add(
                f"allowedTimeRanges[{i}]",
                'Each range is a pair of times "HH:MM:SS" (or "HH:MM"), e.g. '
                '["09:00:00", "21:00:00"].',
                "invalid_time_range",
            )
            continue
        out.append(times)
    return out


def _check_source(source: str, path: str, problems: Problems, *, html: bool = False) -> None:
    if len(source) > MAX_FIELD_LENGTH:
        problems.add(path, f"At most {MAX_FIELD_LENGTH} characters are allowed.", "field_too_long")
        return
    try:
        tpl.compile_check(source, html=html)
    except tpl.TemplateSyntaxProblem as e:
        problems.add(
            path,
            f"line {e.line}, column {e.column}: {e.message}",
            e.code,
            line=e.line,
            column=e.column,
        )
    except tpl.TemplateSecurityProblem as e:
        problems.add(path, e.message, e.code, line=e.line, column=e.column)
    except tpl.TemplateTooExpensive as e:
        problems.add(path, e.message, e.code)


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names.get(t, "an object") for t in types)


def _is_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a number
    return isinstance(value, types)


def _check_channel(key: str, content: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        problems.add(
            path, 'A channel is an object of fields, e.g. {"text": "…"}.', "invalid_channel"
        )
        return None
    fields = tpl.CHANNEL_FIELDS[key]
    settings = tpl.SETTINGS_FIELDS[key]
    out: dict[str, Any] = {}
    for name, value in content.items():
        where = f"{path}.{name}"
        if value is None:
            continue  # TWIN clients send null for keys they were given as null
        if name in fields:
            if name in tpl.LIST_FIELDS:
                if (
                    not isinstance(value, list)
                    or len(value) > MAX_BUTTONS
                    or not all(isinstance(v, str) and v for v in value)
                ):
                    problems.add(
                        where,
                        f"'{name}' is a list of up to {MAX_BUTTONS} non-empty texts.",
                        "invalid_field",
                    )
                    continue
                for i, item in enumerate(value):
                    _check_source(item, f"{where}[{i}]", problems)
                out[name] = value
            elif not isinstance(value, str):
                problems.add(where, f"'{name}' must be a string.", "invalid_field")
            else:
                _check_source(value, where, problems, html=name in tpl.HTML_FIELDS)
                out[name] = value
        elif name in settings:
            if not _is_type(value, settings[name]):
                problems.add(
                    where, f"'{name}' must be {_type_name(settings[name])}.", "invalid_field"
                )
                continue
            out[name] = value
        else:
            allowed = ", ".join([*fields, *settings])
            problems.add(
                where,
                f"The {key} channel has no field '{name}'; its fields are: {allowed}.",
                "unknown_field",
            )
    return out


def validate_channels(
    channels: Any, *, path: str = "channels", problems: Problems | None = None
) -> dict[str, dict[str, Any]]:
    """Channel keys known, fields known and typed, every content field compile-checked.

    Keys are lower-cased (TWIN's channel keys are case-insensitive). Raises a 422 naming every
    problem unless ``problems`` is given to collect them.
    """
    own = problems is None
    collect = problems if problems is not None else template_problems()
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(channels, dict):
        collect.add(
            path, 'Give an object of channels, e.g. {"sms": {"text": "…"}}.', "invalid_field"
        )
    else:
        for raw_key, content in channels.items():
            key = str(raw_key).lower()
            where = f"{path}.{raw_key}"
            if key not in tpl.CHANNEL_FIELDS:
                known = ", ".join(tpl.CHANNEL_FIELDS)
                collect.add(
                    where, f"Unknown channel '{raw_key}'; channels are: {known}.", "unknown_channel"
                )
                continue
            if key in out:
                collect.add(where, f"The channel '{key}' is given twice.", "duplicate_channel")
                continue
            checked = _check_channel(key, content, where, collect)
            if checked is not None:
                out[key] = checked
    if own:
        collect.raise_if_any()
    return out
