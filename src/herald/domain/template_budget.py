"""The budget a template render may spend: loop iterations, characters produced, time.

Jinja's sandbox stops a template from reaching Python's internals, not from spending the
machine: two nested ``range`` loops, ``'x' * 100000`` in a loop or ``'x'|center(10**9)`` each
freeze a process or fill its memory. A render therefore carries a :class:`Meter` (one per
render, found through a context variable so the hooks need no plumbing), charged by:

* every iteration of a ``{% for %}`` loop (its inline ``if`` included), every macro and
  ``caller()`` call, and the loop's literal text each time it is written: a step is
  charged at the start of each body, which the template is rewritten to do when compiled;
* every string the template builds: ``*``, ``+``, ``%``, ``~``, ``str.format``, string
  methods and the filters that turn values into text, each refused *before* it runs when its
  result would not fit what is left (``'x'|center(10**9)`` never allocates), and each
  ``{{ … }}`` written out;
* the clock, read at every charge and step: a thread cannot be killed, so the render itself
  stops once its time is up.

Everything here is pure: the clock is injected through :class:`RenderBudget`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from functools import update_wrapper
from itertools import chain
from string import Formatter
from types import BuiltinMethodType
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

__all__ = [
    "LIMIT_LOOPS",
    "LIMIT_OUTPUT",
    "LIMIT_TIME",
    "BudgetExceeded",
    "BudgetedSandbox",
    "Meter",
    "RenderBudget",
    "instrument",
    "metered",
    "unmetered",
]

#: The :class:`RenderBudget` field each exhausted limit is named by.
LIMIT_OUTPUT = "max_output_characters"
LIMIT_LOOPS = "max_loop_iterations"
LIMIT_TIME = "timeout_seconds"


@dataclass(frozen=True, slots=True)
class RenderBudget:
    """What one render may spend. The defaults leave any real notification far inside."""

    #: Characters a render may produce, the strings it builds on the way included.
    max_output_characters: int = 1_000_000
    #: Loop iterations plus macro calls (recursion is a loop too).
    max_loop_iterations: int = 10_000
    #: Wall-clock seconds, checked from inside the render.
    timeout_seconds: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


class BudgetExceeded(Exception):
    """Raised from inside a render; ``limit`` is the :class:`RenderBudget` field exhausted."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


class _Unmetered(Exception):
    """A hook ran outside a render: Jinja folding a constant at compile time.

    Raising makes Jinja give up folding that node, so the check happens when it renders.
    """


class Meter:
    """One render's budget, counted down."""

    __slots__ = ("budget", "characters", "deadline", "steps")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self.characters = budget.max_output_characters
        self.steps = budget.max_loop_iterations
        self.deadline = budget.clock() + budget.timeout_seconds

    def _in_time(self) -> None:
        if self.budget.clock() > self.deadline:
            raise BudgetExceeded(
                LIMIT_TIME, f"it was still running after {self.budget.timeout_seconds:g} s"
            )

    def _too_much(self) -> BudgetExceeded:
        return BudgetExceeded(
            LIMIT_OUTPUT,
            f"it would produce more than {self.budget.max_output_characters} characters",
        )

    def afford(self, characters: int) -> None:
        """Refuse an operation that would produce more than what is left, without charging."""
        if characters > self.characters:
            raise self._too_much()
        if characters > _CLOCK_AFTER:
            self._in_time()

    def charge(self, characters: int) -> None:
        """Count ``characters`` as produced."""
        if characters > self.characters:
            raise self._too_much()
        self.characters -= characters
        if characters > _CLOCK_AFTER:
            self._in_time()

    def step(self, literal: int) -> None:
        """One loop iteration or macro call, which writes ``literal`` characters of text."""
        self.steps -= 1
        if self.steps < 0:
            raise BudgetExceeded(
                LIMIT_LOOPS,
                f"it would loop or call macros more than {self.budget.max_loop_iterations} times",
            )
        self.charge(literal)
        self._in_time()


# Small operations do not read the clock: without a loop (whose every step does) there are
# only as many of them as the source has characters.
_CLOCK_AFTER = 10_000

_CURRENT: ContextVar[Meter | None] = ContextVar("herald_render_meter", default=None)


def metered(budget: RenderBudget) -> Token[Meter | None]:
    """Start metering a render on this thread; give the token back to :func:`unmetered`."""
    return _CURRENT.set(Meter(budget))


def unmetered(token: Token[Meter | None]) -> None:
    """End the render :func:`metered` started."""
    _CURRENT.reset(token)


def _meter() -> Meter:
    meter = _CURRENT.get()
    if meter is None:
        raise _Unmetered
    return meter


# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------


def _size(value: Any, limit: int) -> int:
    """About how many characters ``str(value)`` has; counts no further than ``limit``.

    A list of a thousand references to one long string is small in memory and huge as text,
    so containers are walked, never turned into text to be measured.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return 24
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2
    if isinstance(value, bytes | bytearray):
        return 4 * len(value) + 3
    items: Iterable[Any]
    if isinstance(value, Mapping):
        items = chain.from_iterable(value.items())
    elif isinstance(value, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
        items = value
    elif isinstance(value, Namespace):
        items = chain.from_iterable(value._Namespace__attrs.items())
    else:
        return len(str(value))
    total = 2
    for item in items:
        total += _size(item, limit - total) + 2
        if total > limit:
            break
    return total


# Python will not even print an integer longer than 4300 digits; computing one much longer
# (``9**9**9``, or squaring in a loop) only burns CPU.
MAX_DIGITS = 10_000


def _number(meter: Meter, bits: int) -> None:
    digits = bits * 3 // 10
    if digits > MAX_DIGITS:
        raise BudgetExceeded(
            LIMIT_OUTPUT, f"it would compute a number of more than {MAX_DIGITS} digits"
        )
    meter.afford(digits)


def _ints(args: Iterable[Any]) -> int:
    return sum(abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool))


def _sizes(args: Iterable[Any], limit: int) -> int:
    return sum(_size(a, limit) for a in args)


# ``%`` conversions: a width or precision can ask for any length of padding.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _percent_size(meter: Meter, fmt: str, args: Any) -> int:
    values = args if isinstance(args, tuple) else (args,)
    padding = 0
    for width, precision in _PERCENT.findall(fmt):
        for number in (width, precision):
            padding += _ints(values) if number == "*" else int(number or 0)
    return len(fmt) + padding + _sizes(values, meter.characters)


def _brace_size(meter: Meter, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    padding = 0
    for _literal, _name, spec, _conversion in Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:  # the width is itself an argument
            padding += _ints(chain(args, kwargs.values()))
        padding += sum(int(n) for n in re.findall(r"\d+", spec))
    return len(fmt) + padding + _sizes(chain(args, kwargs.values()), meter.characters)


# ---------------------------------------------------------------------------
# String methods called from templates
# ---------------------------------------------------------------------------


def _method_args(
    meter: Meter, owner: str | bytes | int, name: str, args: tuple[Any, ...], kw: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse a string method whose result would not fit; the args to call it with."""
    if isinstance(owner, str | bytes):
        if name == "join" and args:
            items = list(args[0])
            meter.afford(_sizes(items, meter.characters) + len(owner) * max(len(items) - 1, 0))
            return (items, *args[1:])
        if name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kw.get("count", -1)
            found = len(owner) + 1 if not old else owner.count(old)
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            meter.afford(len(owner) + found * max(len(new) - len(old), 0))
            return args
        if name == "expandtabs":
            tab = args[0] if args else kw.get("tabsize", 8)
            tabs = owner.count("\t" if isinstance(owner, str) else b"\t")  # type: ignore[arg-type]
            meter.afford(len(owner) + tabs * (tab if isinstance(tab, int) else 0))
            return args
        if name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((_size(v, meter.characters) for v in args[0].values()), default=1)
            meter.afford(len(owner) * max(longest, 1))
            return args
    # center, ljust, rjust, zfill, int.to_bytes...: the numbers they are given are lengths.
    meter.afford(
        _size(owner, meter.characters)
        + _ints(chain(args, kw.values()))
        + _sizes((a for a in chain(args, kw.values()) if not isinstance(a, int)), meter.characters)
    )
    return args


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------

FilterFunc = Callable[..., Any]

# Jinja's filters that turn their value into text (str() of a list of a million references
# is a million strings long). Herald's own (date, number, money) refuse containers.
_TEXT_FILTERS = frozenset(
    {
        "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "int",
        "float", "lower", "upper", "title", "trim", "striptags", "truncate", "urlize",
        "wordcount", "wordwrap", "replace", "safe", "string", "tojson", "pprint",
        "urlencode", "xmlattr", "join",
    }
)  # fmt: skip


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _precheck(
    meter: Meter, name: str, value: Any, args: tuple[Any, ...], kw: dict[str, Any]
) -> Any:
    """Refuse a filter call whose result would not fit; the value to call it with."""
    if name == "join" and not isinstance(value, str):
        value = list(value)  # a generator would be spent by measuring it
    size = _size(value, meter.characters) if name in _TEXT_FILTERS else 0
    meter.afford(size)
    if name == "center":
        width = _arg(args, kw, 0, "width", 80)
        size = max(size, width if isinstance(width, int) else 0)
    elif name == "indent":
        width = _arg(args, kw, 0, "width", 4)
        pad = width if isinstance(width, int) else _size(width, meter.characters)
        size += (str(value).count("\n") + 1) * pad
    elif name == "wordwrap":
        width = _arg(args, kw, 0, "width", 79)
        wrap = _arg(args, kw, 2, "wrapstring", None)
        # Every line but the last is followed by one that would not fit beside it, so two
        # lines hold more than ``width``: at most 2 * size / width + 1 lines.
        lines = 2 * size // max(width if isinstance(width, int) else 1, 1) + 1
        size += lines * (len(wrap) if isinstance(wrap, str) else 1)
    elif name == "join":
        sep = _arg(args, kw, 0, "d", "")
        size += len(sep) * max(len(value) - 1, 0) if isinstance(sep, str) else 0
    elif name == "replace":
        old, new = _arg(args, kw, 0, "old", ""), _arg(args, kw, 1, "new", "")
        if isinstance(value, str) and isinstance(old, str) and isinstance(new, str):
            found = len(value) + 1 if not old else value.count(old)
            size += found * max(len(new) - len(old), 0)
    elif name == "format" and isinstance(value, str):
        size = _percent_size(meter, value, kw or args)
    elif name in ("batch", "slice"):
        count = _arg(args, kw, 0, "linecount" if name == "batch" else "slices", 0)
        if name == "slice" or _arg(args, kw, 1, "fill_with", None) is not None:
            size = count if isinstance(count, int) else 0
    elif name == "sum":
        start = _arg(args, kw, 1, "start", 0)
        if not isinstance(start, int | float):
            # Adding lists one by one copies each sum again: quadratic time in C.
            raise TemplateRuntimeError("sum adds numbers only; use join for texts and lists")
    meter.afford(size)
    return value


# Filters whose arguments can make their result much longer than their value.
_GROWING = frozenset({"center", "indent", "wordwrap", "join", "replace", "format"})
_GROWING |= {"batch", "slice", "sum", "list"}
_SCALARS = (str, int, float, type(None))


def _metered_filter(name: str, func: FilterFunc) -> FilterFunc:
    # Filters taking a context, eval context or environment get it first.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def growing_filter(*args: Any, **kwargs: Any) -> Any:
        meter = _meter()
        value = _precheck(meter, name, args[skip], args[skip + 1 :], kwargs)
        result = func(*args[:skip], value, *args[skip + 1 :], **kwargs)
        if isinstance(result, str | list):  # a list: its items are already counted
            meter.charge(len(result))
        return result

    def text_filter(*args: Any, **kwargs: Any) -> Any:
        # Its result is about as long as its value's text: only a container, whose text can
        # be far longer than its size in memory, is measured. Whoever uses the result (an
        # operator, another filter, the output) pays for it.
        value = args[skip]
        if not isinstance(value, _SCALARS):
            meter = _meter()
            meter.afford(_size(value, meter.characters))
        return func(*args, **kwargs)

    return update_wrapper(growing_filter if name in _GROWING else text_filter, func)


_METERED_FILTERS = _TEXT_FILTERS | {"list", "batch", "slice", "sum"}

# Names templates cannot spell (they hold a space): only the compiler's rewrite uses them.
_STEP = "herald step"
_PIECE = "herald piece"


@pass_context
def _step_filter(_context: Context, literal: int) -> bool:
    # Takes the context only so that Jinja never runs it at compile time.
    _meter().step(literal)
    return True


def _piece_filter(value: Any) -> Any:
    meter = _meter()
    meter.charge(len(value) if isinstance(value, str) else _size(value, meter.characters))
    return value


def _finalize(value: Any) -> Any:
    # Runs for every {{ … }} of every render: Meter.charge inlined.
    meter = _CURRENT.get()
    if meter is None:
        raise _Unmetered
    if value is None:
        return ""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, int):
        size = value.bit_length() * 3 // 10 + 2
    else:
        size = _size(value, meter.characters)
    if size > meter.characters:
        raise meter._too_much()
    meter.characters -= size
    if size > _CLOCK_AFTER:
        meter._in_time()
    return value


# ---------------------------------------------------------------------------
# Rewriting the template so its loops pay
# ---------------------------------------------------------------------------

_BODIES = (nodes.For, nodes.Macro, nodes.CallBlock)


def _literal_size(node: nodes.Node) -> int:
    """Characters of literal text ``node`` writes, outside loops and macros of its own."""
    if isinstance(node, nodes.TemplateData):
        return len(node.data)
    return sum(
        _literal_size(child) for child in node.iter_child_nodes() if not isinstance(child, _BODIES)
    )


def _step_call(literal: int, lineno: int) -> nodes.Filter:
    return nodes.Filter(nodes.Const(literal), _STEP, [], [], None, None, lineno=lineno)


def instrument(ast: nodes.Template) -> None:
    """Make every loop iteration and macro call charge a step, and every ``~`` its parts."""
    for body in list(ast.find_all(_BODIES)):
        assert isinstance(body, nodes.For | nodes.Macro | nodes.CallBlock)
        literal = sum(_literal_size(n) for n in body.body if not isinstance(n, _BODIES))
        body.body.insert(0, nodes.ExprStmt(_step_call(literal, body.lineno), lineno=body.lineno))
        if isinstance(body, nodes.For) and body.test is not None:
            # Items the inline ``if`` drops never reach the body: count them here.
            body.test = nodes.And(_step_call(0, body.lineno), body.test, lineno=body.lineno)
    for concat in list(ast.find_all(nodes.Concat)):
        concat.nodes = [
            nodes.Filter(part, _PIECE, [], [], None, None, lineno=part.lineno)
            for part in concat.nodes
        ]


# ---------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox whose operators, calls, filters and output pay the meter.

    Intercepting the operators also stops Jinja from folding them at compile time, where
    ``{{ 'x' * 10**10 }}`` would be computed when the template is saved.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        for name in _METERED_FILTERS & set(self.filters):
            self.filters[name] = _metered_filter(name, self.filters[name])
        self.filters[_STEP] = _step_filter
        self.filters[_PIECE] = _piece_filter

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        meter = _meter()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(times, int) and isinstance(seq, str | bytes | list | tuple):
                    meter.charge(_size(seq, meter.characters) * max(times, 0))
                    break
            else:
                if isinstance(left, int) and isinstance(right, int):
                    _number(meter, left.bit_length() + right.bit_length())
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                _number(meter, left.bit_length() * right)
        elif operator == "+":
            if isinstance(left, str | bytes | list | tuple):
                meter.charge(_size(left, meter.characters) + _size(right, meter.characters))
        elif isinstance(left, str):  # "%": formatting, not modulo
            meter.charge(_percent_size(meter, left, right))
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__

        def metered_format(*args: Any, **kwargs: Any) -> str:
            meter = _meter()
            spread = args[0] if value.__name__ == "format_map" and args else kwargs
            meter.afford(_brace_size(meter, fmt, args, spread))
            out = wrapper(*args, **kwargs)
            meter.charge(len(out))
            return out

        return update_wrapper(metered_format, value)

    def call(
        __self,  # Jinja's own signature: no keyword of the callee's can clash
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        meter = _meter()
        owner = getattr(__obj, "__self__", None)
        if isinstance(__obj, BuiltinMethodType) and isinstance(owner, str | bytes | int):
            args = _method_args(meter, owner, __obj.__name__, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        # Macros and loop() are not charged here: their bodies paid for what they wrote.
        if owner is not None and isinstance(result, str | bytes):
            meter.charge(len(result))
        return result
