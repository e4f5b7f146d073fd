"""Message templates: Jinja2 in its immutable sandbox, with strict undefined variables.

A template is stored once (per channel: its fields, see :data:`CHANNEL_FIELDS`) and rendered
for every recipient with that recipient's variables. Rendering runs in Jinja's
``ImmutableSandboxedEnvironment``: templates cannot reach Python internals (``__class__``,
``__globals__``, ...) nor mutate anything, and an undefined variable is an error rather than
an empty string, so a notification never goes out with a hole in it. Every render also has a
:class:`RenderBudget` (loop iterations, characters produced, time; see
:mod:`herald.domain.template_budget`): a template that would spend more is a
:class:`TemplateTooExpensive`, and the render stops itself, wherever it was.

Filters on top of Jinja's builtins (``upper``, ``default``, ``round``, ``truncate``...) are
in :mod:`herald.domain.template_filters`: ``date``, ``number`` and ``money``.

``None`` renders as the empty string, so a variable explicitly sent as ``null`` is blank.

Syntax errors are reported with a line and a column. Jinja only knows the line; the column
(1-based) is where the token the lexer or parser stopped at starts, found by lexing the
source again and tracking offsets. When the error is not about a token on the reported line
(an unclosed block is reported at the end of the template, an unknown filter at compile
time), the column is where the name quoted in Jinja's message appears on that line, else the
line's first non-blank character.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.lexer import Token, TokenStream
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser

from herald.domain import template_filters
from herald.domain.template_budget import (
    LIMIT_OUTPUT,
    BudgetedSandbox,
    BudgetExceeded,
    RenderBudget,
    instrument,
    metered,
    unmetered,
)

__all__ = [
    "CHANNEL_FIELDS",
    "DEFAULT_BUDGET",
    "HTML_FIELDS",
    "LIST_FIELDS",
    "SETTINGS_FIELDS",
    "MissingVariables",
    "RenderBudget",
    "TemplateProblem",
    "TemplateRenderProblem",
    "TemplateSecurityProblem",
    "TemplateSyntaxProblem",
    "TemplateTooExpensive",
    "compile_check",
    "has_markup",
    "render",
    "variables_of",
]

#: The content of each channel: the fields a template stores and renders, camelCase as in
#: TWIN's channel object. Every field is a string except WhatsApp's ``buttons`` (a list of
#: quick-reply texts, see :data:`LIST_FIELDS`).
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "sms": ("text",),
    "email": ("subject", "text", "html"),
    "push": ("title", "body", "imageUrl"),
    "whatsapp": ("header", "text", "buttons", "templateName", "contentSid", "language"),
    "viber": ("text", "imageUrl", "buttonUrl", "buttonText"),
    "telegram": ("text", "imageUrl", "buttonUrl", "buttonText"),
    "vk": ("text", "imageUrl", "buttonUrl", "buttonText"),
    "ok": ("text", "imageUrl", "buttonUrl", "buttonText"),
    "chat": ("text", "imageUrl", "buttonUrl", "buttonText"),
}

#: Fields holding a list of strings (each item is rendered) instead of a string.
LIST_FIELDS: frozenset[str] = frozenset({"buttons"})

#: Fields rendered with HTML autoescaping: variables are escaped, the template's own markup
#: is kept.
HTML_FIELDS: frozenset[str] = frozenset({"html"})

#: Delivery settings a channel object may also carry (TWIN's own keys: its example template
#: stores ``from``, ``provider`` and ``validityPeriod``). They are stored and passed through,
#: never rendered. Each maps to the JSON type it must have.
_COMMON_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "from": str,
    "provider": str,
    "validityPeriod": int,
    "required": bool,
}
SETTINGS_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    channel: dict(_COMMON_SETTINGS) for channel in CHANNEL_FIELDS
}
SETTINGS_FIELDS["email"].update({"fromEmail": str, "fromName": str, "replyTo": str})
SETTINGS_FIELDS["whatsapp"].update(
    {
        "templateNamespace": str,
        "mediaUrl": str,
        "documentFilename": str,
        "templateData": (dict, list),
    }
)
SETTINGS_FIELDS["vk"]["attachments"] = list
SETTINGS_FIELDS["ok"]["attachments"] = list
SETTINGS_FIELDS["chat"].update(
    {
        "chatId": str,
        "botId": str,
        "messengerType": str,
        "chatSessionName": str,
        "continueLastOrStartNewSession": bool,
    }
)

#: Longest source with markup that is compiled: compiling takes about 10 ms per 1,000
#: characters of dense markup, and a compiled template is cached.
MAX_SOURCE_CHARACTERS = 100_000

DEFAULT_BUDGET = RenderBudget()


class TemplateProblem(ValueError):
    """A template that cannot be saved or rendered. ``code`` is the API's machine code."""

    code = "template_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The channel field the problem is in, when known (filled in by callers).
        self.field = field


class TemplateSyntaxProblem(TemplateProblem):
    """Jinja cannot parse the template; ``line`` and ``column`` are 1-based."""

    code = "template_syntax_error"

    def __init__(self, message: str, line: int, column: int, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line
        self.column = column


class TemplateSecurityProblem(TemplateProblem):
    """The template reaches for something the sandbox forbids (``__class__`` and friends)."""

    code = "template_unsafe"

    def __init__(
        self, message: str, line: int | None = None, column: int | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.line = line
        self.column = column


class TemplateRenderProblem(TemplateProblem):
    """Rendering failed for another reason (a filter given a value it cannot format...)."""

    code = "template_render_error"


class TemplateTooExpensive(TemplateProblem):
    """Rendering would spend more than its budget; ``limit`` names the budget exhausted.

    ``limit`` is a :class:`RenderBudget` field, or ``None`` for a limit no setting changes
    (the length and nesting of the source). ``hint`` (what to do) is added by callers that
    know which setting raises ``limit``.
    """

    code = "template_too_expensive"

    def __init__(
        self, limit: str | None, detail: str, *, hint: str = "", field: str | None = None
    ) -> None:
        sentence = f"The template is too expensive to render: {detail}."
        super().__init__(f"{sentence} {hint}" if hint else sentence, field=field)
        self.limit = limit
        self.detail = detail


class MissingVariables(TemplateProblem):
    """Variables the template needs were not given; ``names`` lists every one of them."""

    code = "missing_variables"

    def __init__(
        self,
        names: Iterable[str],
        *,
        field: str | None = None,
        by_field: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.names: list[str] = sorted(set(names))
        #: Which field lacks which variables, when several fields were rendered together.
        self.by_field: dict[str, list[str]] = dict(by_field or {})
        listed = ", ".join(self.names)
        plural = "s" if len(self.names) > 1 else ""
        super().__init__(f"Missing template variable{plural}: {listed}.", field=field)


# ---------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------


def _make_env(autoescape: bool) -> BudgetedSandbox:
    # The budget's finalize also turns None into the empty string.
    env = BudgetedSandbox(undefined=StrictUndefined, autoescape=autoescape, cache_size=0)
    env.filters["date"] = template_filters.date_filter
    env.filters["number"] = template_filters.number_filter
    env.filters["money"] = template_filters.money_filter
    # Lorem ipsum has no place in notifications; the other globals (range, dict, cycler,
    # joiner, namespace) are harmless inside the sandbox.
    env.globals.pop("lipsum", None)
    return env


_TEXT_ENV = _make_env(autoescape=False)
_HTML_ENV = _make_env(autoescape=True)
_GLOBALS = frozenset(_TEXT_ENV.globals)

_MARKUP = ("{{", "{%", "{#")


def has_markup(source: str) -> bool:
    """Whether ``source`` contains any Jinja syntax (plain text renders as itself)."""
    return any(mark in source for mark in _MARKUP)


# ---------------------------------------------------------------------------
# Compilation, with line and column for errors
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    template: Template
    #: Every variable the template reads from its context.
    variables: frozenset[str]
    #: Variables read at least once without a ``default`` filter or ``is defined`` test.
    required: frozenset[str]


def _offset_to_line_column(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - source.rfind("\n", 0, offset)


def _line_column_fallback(source: str, line: int, message: str) -> int:
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        return 1
    text = lines[line - 1]
    for quoted in re.findall(r"'([^']+)'", message):
        at = text.find(quoted)
        if at >= 0:
            return at + 1
    stripped = len(text) - len(text.lstrip())
    return stripped + 1 if stripped < len(text) else 1


def _syntax_column(env: BudgetedSandbox, source: str, error: TemplateSyntaxError) -> int:
    """The 1-based column of a syntax error Jinja reported only by line."""
    line = error.lineno
    unexpected_char = re.search(r" at (\d+)$", error.message or "")
    if unexpected_char:
        return _offset_to_line_column(source, int(unexpected_char.group(1)))[1]

    # Lex again, remembering where each token starts. The parser sees the tokens that
    # survive ``wrap`` (whitespace and comments dropped), one for one.
    offsets: list[int] = []
    tokens: list[Token] = []
    cursor = 0
    try:
        for lineno, kind, value in env.lexer.tokeniter(source, None):
            at = source.find(value, cursor) if value else -1
            start = at if at >= 0 else cursor
            cursor = start + len(value)
            for token in env.lexer.wrap([(lineno, kind, value)]):
                tokens.append(token)
                offsets.append(start)
    except TemplateSyntaxError:
        # The lexer stopped right after the last token it produced.
        stop_line, column = _offset_to_line_column(source, cursor)
        if stop_line == line:
            return column
        return _line_column_fallback(source, line, error.message or "")

    parser = Parser(env, source)
    parser.stream = TokenStream(iter(tokens), None, None)
    try:
        parser.parse()
    except TemplateSyntaxError:
        current = parser.stream.current
        index = next((i for i, t in enumerate(tokens) if t is current), None)
        offset = offsets[index] if index is not None else len(source)
        token_line, column = _offset_to_line_column(source, offset)
        if token_line == line:
            return column
    return _line_column_fallback(source, line, error.message or "")


def _unsafe_access(ast: nodes.Template, source: str) -> tuple[str, int, int] | None:
    """The first ``x._attr`` or ``x['_attr']`` (name, line, column), caught before rendering.

    The sandbox refuses these at render time anyway; refusing them when the template is
    saved tells its author at once.
    """
    found: list[tuple[int, int, str]] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            name = node.arg.value
        else:
            continue
        if name.startswith("_"):
            found.append(
                (node.lineno, _line_column_fallback(source, node.lineno, f"'{name}'"), name)
            )
    if not found:
        return None
    line, column, name = min(found)
    return name, line, column


def _required(ast: nodes.Template, variables: frozenset[str]) -> frozenset[str]:
    guarded: set[int] = set()
    for f in ast.find_all(nodes.Filter):
        if f.name in ("default", "d") and isinstance(f.node, nodes.Name):
            guarded.add(id(f.node))
    for t in ast.find_all(nodes.Test):
        if t.name in ("defined", "undefined", "none") and isinstance(t.node, nodes.Name):
            guarded.add(id(t.node))
    return frozenset(
        n.name
        for n in ast.find_all(nodes.Name)
        if n.ctx == "load" and n.name in variables and id(n) not in guarded
    )


@functools.lru_cache(maxsize=2048)
def _compile(source: str, html: bool) -> _Compiled:
    env = _HTML_ENV if html else _TEXT_ENV
    if len(source) > MAX_SOURCE_CHARACTERS:
        raise TemplateTooExpensive(
            None,
            f"it is {len(source)} characters long, and a template may have at most "
            f"{MAX_SOURCE_CHARACTERS}",
        )
    try:
        ast = env.parse(source)
        unsafe = _unsafe_access(ast, source)
        if unsafe is not None:
            name, line, column = unsafe
            raise TemplateSecurityProblem(
                f"Templates may not use attributes starting with an underscore ({name!r}).",
                line,
                column,
            )
        variables = frozenset(find_undeclared_variables(ast)) - _GLOBALS
        required = _required(ast, variables)
        instrument(ast)
        template = env.from_string(ast)
        # Jinja keeps a template's globals as a ChainMap and copies it into every render's
        # context; a plain dict copies several times faster, and the globals never change.
        template.globals = dict(template.globals)
    except TemplateSyntaxError as e:
        line = e.lineno or 1
        message = re.sub(r" at \d+$", "", e.message or "invalid template syntax")
        raise TemplateSyntaxProblem(message, line, _syntax_column(env, source, e)) from e
    except RecursionError as e:
        raise TemplateTooExpensive(None, "it nests expressions too deeply to compile") from e
    return _Compiled(template, variables, required)


def compile_check(source: str, *, html: bool = False) -> None:
    """Raise :class:`TemplateSyntaxProblem` (with line and column) unless ``source`` compiles.

    Also refuses, as :class:`TemplateSecurityProblem`, templates that name private attributes.
    """
    _compile(source, html)


def variables_of(source: str, *, html: bool = False) -> set[str]:
    """Every variable the template reads (Jinja's own globals such as ``range`` excluded)."""
    return set(_compile(source, html).variables)


def required_variables_of(source: str, *, html: bool = False) -> set[str]:
    """The variables rendering ``source`` refuses to go without (no ``default`` guard)."""
    return set(_compile(source, html).required)


_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


def _render_problem(detail: str | None) -> TemplateRenderProblem:
    detail = (detail or "unknown error").rstrip(".")
    return TemplateRenderProblem(f"The template could not be rendered: {detail}.")


def render(
    source: str,
    variables: Mapping[str, Any],
    *,
    html: bool = False,
    budget: RenderBudget = DEFAULT_BUDGET,
) -> str:
    """Render ``source`` with ``variables`` in the sandbox, spending at most ``budget``.

    Raises :class:`MissingVariables` naming every variable the template needs and was not
    given (the ones the render touched, plus every other one the template uses without a
    ``default``/``is defined`` guard, so one round trip is enough to fix them all);
    :class:`TemplateSecurityProblem` on a sandbox violation; :class:`TemplateTooExpensive` when
    the budget runs out (the render stops itself then, wherever it was);
    :class:`TemplateRenderProblem` for any other failure.
    """
    if not has_markup(source):
        return source
    compiled = _compile(source, html)
    token = metered(budget)
    try:
        out = compiled.template.render(variables)
    except BudgetExceeded as e:
        raise TemplateTooExpensive(e.limit, e.detail) from e
    except SecurityError as e:
        detail = str(e).rstrip(".")
        raise TemplateSecurityProblem(
            f"The template tried something templates may not do: {detail}."
        ) from e
    except UndefinedError as e:
        missing = set(compiled.required.difference(variables))
        touched = _UNDEFINED_NAME.match(e.message or "")
        if touched and touched.group(1) in compiled.variables and touched.group(1) not in variables:
            missing.add(touched.group(1))
        if missing:
            raise MissingVariables(missing) from e
        raise _render_problem(e.message) from e
    except TemplateError as e:
        raise _render_problem(e.message) from e
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as e:
        raise _render_problem(str(e)) from e
    finally:
        unmetered(token)
    if len(out) > budget.max_output_characters:  # top-level literal text is not metered
        raise TemplateTooExpensive(
            LIMIT_OUTPUT, f"it would produce more than {budget.max_output_characters} characters"
        )
    return out


def render_many(
    sources: Mapping[str, str],
    variables: Mapping[str, Any],
    *,
    html_fields: Iterable[str] = (),
    budget: RenderBudget = DEFAULT_BUDGET,
) -> dict[str, str]:
    """Render several named sources; one :class:`MissingVariables` names what all of them lack.

    Each source has its own ``budget``.
    """
    html = frozenset(html_fields)
    out: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for name, source in sources.items():
        try:
            out[name] = render(source, variables, html=name in html, budget=budget)
        except MissingVariables as e:
            missing[name] = e.names
        except TemplateProblem as e:
            e.field = e.field or name
            raise
    if missing:
        raise MissingVariables((n for names in missing.values() for n in names), by_field=missing)
    return out
