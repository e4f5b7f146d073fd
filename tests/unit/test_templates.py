"""Template rendering in the sandbox: variables, filters, errors, escapes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from herald.domain.templates import (
    CHANNEL_FIELDS,
    MissingVariables,
    RenderBudget,
    TemplateProblem,
    TemplateRenderProblem,
    TemplateSecurityProblem,
    TemplateSyntaxProblem,
    TemplateTooExpensive,
    compile_check,
    has_markup,
    render,
    render_many,
    variables_of,
)
from herald.services.templates.rendering import TemplateSnapshot, merge_variables, render_channel

# --- rendering ------------------------------------------------------------


def test_placeholders_and_plain_text() -> None:
    assert render("Hi {{name}}!", {"name": "Ann"}) == "Hi Ann!"
    assert render("Hi {{ name }}, {{ n }} new", {"name": "Bo", "n": 3}) == "Hi Bo, 3 new"
    # Text without Jinja markup is returned as is, even with lone braces.
    assert render("a { b } c", {}) == "a { b } c"
    assert not has_markup("a { b } c") and has_markup("{{ x }}")


def test_none_renders_empty_and_no_autoescape_in_text() -> None:
    assert render("[{{ x }}]", {"x": None}) == "[]"
    assert render("{{ x }}", {"x": "<b>&</b>"}) == "<b>&</b>"


def test_html_autoescapes_variables_not_markup() -> None:
    out = render("<p>Hi <b>{{ name }}</b></p>", {"name": "<script>x</script>"}, html=True)
    assert out == "<p>Hi <b>&lt;script&gt;x&lt;/script&gt;</b></p>"


def test_conditionals_loops_and_builtin_filters() -> None:
    source = (
        "{% if vip %}Dear {{ name|title }}{% else %}Hi {{ name }}{% endif %}"
        "{% for i in range(n) %}.{% endfor %}{{ missing|default('!') }}"
    )
    assert render(source, {"vip": True, "name": "ann lee", "n": 3}) == "Dear Ann Lee...!"
    assert render(source, {"vip": False, "name": "ann", "n": 0}) == "Hi ann!"


def test_guarded_variables_are_optional() -> None:
    source = "{% if nick is defined %}{{ nick }}{% else %}friend{% endif %}"
    assert render(source, {}) == "friend"
    assert render("{{ a|d('x') }}", {}) == "x"
    # Not needed on the path taken: a false condition hides the missing variable.
    assert render("{% if vip %}{{ discount }}{% endif %}ok", {"vip": False}) == "ok"


# --- filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        ("{{ v|number }}", 1234567, "1 234 567"),
        ("{{ v|number }}", 1234.5, "1 234.5"),
        ("{{ v|number(2) }}", 1234.5, "1 234.50"),
        ("{{ v|number(2) }}", "1234.005", "1 234.01"),  # half-up, not banker's
        ("{{ v|number(0) }}", 2.5, "3"),
        ("{{ v|number(2) }}", -9876543.219, "-9 876 543.22"),
        ("{{ v|number(1, ',', '.') }}", 1234.56, "1,234.6"),
        ("{{ v|number(2, '.', ',') }}", 1234.5, "1.234,50"),
        ("{{ v|number }}", 0, "0"),
        ("{{ v|money }}", 1234.5, "1 234.50"),
        ("{{ v|money('RUB') }}", 1234.5, "1 234.50 RUB"),
        ("{{ v|money('USD', 0) }}", 99.5, "100 USD"),
    ],
)
def test_number_and_money(source: str, value: object, expected: str) -> None:
    assert render(source, {"v": value}) == expected


def test_number_separator_is_gsm7_space() -> None:
    # A no-break space would force UCS-2 on a whole SMS.
    assert "\u00a0" not in render("{{ v|number }}", {"v": 10**9})


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        ("{{ d|date }}", "2026-01-31", "31.01.2026"),
        ("{{ d|date }}", date(2026, 1, 31), "31.01.2026"),
        ("{{ d|date('%Y-%m-%d %H:%M') }}", datetime(2026, 1, 31, 9, 5), "2026-01-31 09:05"),
        ("{{ d|date('%H:%M') }}", "2026-01-31T09:30:00+00:00", "09:30"),
        ("{{ d|date('%H:%M', 'Europe/Moscow') }}", "2026-01-31T09:30:00Z", "12:30"),
        ("{{ d|date('%H:%M', 'Asia/Tokyo') }}", "2026-01-31T09:30:00", "18:30"),  # naive = UTC
        ("{{ d|date('%d.%m.%Y %H:%M') }}", 0, "01.01.1970 00:00"),
        (
            "{{ d|date('%d %b') }}",
            datetime(2026, 3, 8, tzinfo=UTC),
            "08 Mar",
        ),
    ],
)
def test_date(source: str, value: object, expected: str) -> None:
    assert render(source, {"d": value}) == expected


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("{{ v|number }}", "abc"),
        ("{{ v|number }}", True),
        ("{{ v|number }}", "nan"),
        ("{{ v|money }}", "1,5"),
        ("{{ v|date }}", "31/01/2026"),
        ("{{ v|date }}", True),
        ("{{ v|date('%H', 'Mars/Olympus') }}", "2026-01-31T00:00:00"),
        ("{{ v|number(99) }}", 1),
    ],
)
def test_filters_refuse_bad_values(source: str, value: object) -> None:
    with pytest.raises(TemplateRenderProblem) as e:
        render(source, {"v": value})
    assert e.value.code == "template_render_error"
    assert "could not be rendered" in e.value.message


def test_other_runtime_errors_are_render_problems() -> None:
    with pytest.raises(TemplateRenderProblem, match="division by zero"):
        render("{{ 1 / n }}", {"n": 0})
    with pytest.raises(TemplateRenderProblem, match="no attribute"):
        render("{{ user.name }}", {"user": "ann"})


# --- missing variables -------------------------------------------------------


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(MissingVariables) as e:
        render("Hi {{ name }}, order {{ order }} on {{ when|date }} {{ opt|default(1) }}", {})
    assert e.value.names == ["name", "order", "when"]
    assert e.value.code == "missing_variables"
    assert e.value.message == "Missing template variables: name, order, when."


def test_missing_variables_include_those_behind_conditions() -> None:
    with pytest.raises(MissingVariables) as e:
        render("{% if vip %}{{ discount }}{% endif %}{{ name }}", {"name": None})
    assert e.value.names == ["discount", "vip"]


def test_missing_in_a_filter_argument_and_loop() -> None:
    with pytest.raises(MissingVariables) as e:
        render("{{ amount|money(currency) }}{% for x in items %}{{ x }}{% endfor %}", {})
    assert e.value.names == ["amount", "currency", "items"]


def test_render_many_names_missing_variables_per_field() -> None:
    with pytest.raises(MissingVariables) as e:
        render_many({"subject": "{{ a }}", "text": "{{ b }} {{ a }}", "html": "ok"}, {})
    assert e.value.names == ["a", "b"]
    assert e.value.by_field == {"subject": ["a"], "text": ["a", "b"]}


def test_variables_of_excludes_locals_and_globals() -> None:
    source = (
        "{% set greeting = 'hi' %}{{ greeting }} {{ name }}"
        "{% for i in range(n) %}{{ i }}{{ loop.index }}{% endfor %}{{ cycler('a').next() }}"
    )
    assert variables_of(source) == {"name", "n"}


# --- syntax errors: line and column ----------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    # A table of cases: its rows are alike by design.
    [
        ("Hi {{ name }", 1, 12, "unexpected '}'"),
        ("line one\nHello, {{ name }", 2, 16, "unexpected '}'"),
        ("{{ a b }}", 1, 6, "got 'b'"),
        ("x {% endif %}", 1, 6, "unknown tag 'endif'"),
        ("Hello {{ name !}}", 1, 15, "unexpected char '!'"),
        ("{% for %}", 1, 8, "Expected an expression"),
        ("{{ 'abc }}", 1, 4, "unexpected char"),
        ("{% if a %}\n{% else %}\n{% else %}{% endif %}", 3, 4, "unknown tag 'else'"),
        ("a\nb {{ x|nope }}", 2, 8, "No filter named 'nope'"),
        ("ok {{ (1 }}", 1, 10, "expected ')'"),
        ("Привет, {{ имя }", 1, 16, "unexpected '}'"),
        ("Hi {{ name }}!\n{% if x %}yes", 2, 14, "Unexpected end of template"),
    ],
)
def test_syntax_errors_have_line_and_column(
    source: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(TemplateSyntaxProblem) as e:
        compile_check(source)
    assert (e.value.line, e.value.column) == (line, column)
    assert words in e.value.message
    assert " at " not in e.value.message  # Jinja's raw offset is turned into the column
    assert e.value.code == "template_syntax_error"


def test_valid_templates_compile() -> None:
    compile_check("Hi {{ name|upper }}{% if x %}!{% endif %}")
    compile_check("<b>{{ x }}</b>", html=True)
    compile_check("no markup at all { }")


# --- the sandbox --------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ ''['__class__'] }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ x[key] }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ x.__globals__ }}",
    "{{ (1).__class__.__base__ }}",
    "{{ [].append(1) }}{{ x }}",
    "{{ {}.update(a=1) }}",
    "{{ 'a' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 10 ** 100000000 }}",
    "{{ ''.format_map }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    variables = {"x": "v", "key": "__class__"}
    try:
        out = render(source, variables)
    except TemplateProblem as e:
        assert isinstance(
            e, TemplateSecurityProblem | TemplateRenderProblem | TemplateTooExpensive
        ), e
        out = e.message
    for leak in ("<class", "<module", "subprocess", "os.popen", "uid=", "builtins", "<built-in"):
        assert leak not in out, out


@pytest.mark.parametrize("source", ESCAPES[:13])
def test_private_attributes_are_refused_when_saved(source: str) -> None:
    with pytest.raises(TemplateSecurityProblem) as e:
        compile_check(source)
    assert e.value.code == "template_unsafe"
    assert e.value.line == 1 and e.value.column is not None and e.value.column >= 1


def test_unsafe_runtime_access_is_a_security_problem() -> None:
    with pytest.raises(TemplateSecurityProblem, match="unsafe"):
        render("{{ ''|attr('__class__') }}", {})
    with pytest.raises(TemplateSecurityProblem):
        render("{{ x[k] }}", {"x": "", "k": "__class__"})
    with pytest.raises(TemplateSecurityProblem):
        render("{{ [].append(1) }}", {})


def test_range_is_bounded() -> None:
    with pytest.raises(TemplateProblem):
        render("{% for i in range(10**9) %}{% endfor %}", {})


# --- the rendering seam -------------------------------------------------------


SNAPSHOT = TemplateSnapshot(
    id="t1",
    name="order",
    version=3,
    channels={
        "sms": {"text": "Hi {{ name }}, order {{ order }}", "from": "Shop"},
        "email": {
            "subject": "Order {{ order }}",
            "text": "Hi {{ name }}",
            "html": "<p>Hi {{ name }}</p>",
        },
        "whatsapp": {"text": "Hi {{ name }}", "buttons": ["Track {{ order }}", "Stop"]},
    },
    allowed_time_ranges=[],
)


def test_render_channel_merges_and_renders() -> None:
    sms = render_channel(SNAPSHOT, "SMS", {}, {"name": "Ann", "order": 7})
    assert sms == {"text": "Hi Ann, order 7", "from": "Shop"}
    # The request's per-channel fields win per field; None means "not given".
    sms = render_channel(
        SNAPSHOT, "sms", {"text": "Code {{ code }}", "from": None}, {"code": "1234"}
    )
    assert sms == {"text": "Code 1234", "from": "Shop"}
    email = render_channel(SNAPSHOT, "email", {}, {"name": "<Ann>", "order": 7})
    assert email["html"] == "<p>Hi &lt;Ann&gt;</p>"
    assert email["text"] == "Hi <Ann>"
    wa = render_channel(SNAPSHOT, "whatsapp", {}, {"name": "Ann", "order": 7})
    assert wa["buttons"] == ["Track 7", "Stop"]
    # Without a template, the request's own content is rendered.
    assert render_channel(None, "sms", {"text": "Hi {{ n }}"}, {"n": 1}) == {"text": "Hi 1"}


def test_render_channel_names_all_missing_across_fields() -> None:
    with pytest.raises(MissingVariables) as e:
        render_channel(SNAPSHOT, "email", {}, {})
    assert e.value.names == ["name", "order"]
    assert e.value.by_field == {"subject": ["order"], "text": ["name"], "html": ["name"]}


def test_render_channel_reports_the_field_of_other_problems() -> None:
    with pytest.raises(TemplateSyntaxProblem) as e:
        render_channel(SNAPSHOT, "email", {"subject": "{{ x"}, {"name": 1, "order": 2})
    assert e.value.field == "subject"
    with pytest.raises(ValueError, match="unknown channel"):
        render_channel(SNAPSHOT, "fax", {}, {})


def test_merge_variables_destination_wins() -> None:
    assert merge_variables({"a": 1, "b": 2}, {"b": 3, "c": None}) == {"a": 1, "b": 3, "c": None}
    assert merge_variables(None, None) == {}
    assert merge_variables({"a": 1}, None) == {"a": 1}


def test_channel_fields_are_twin_camel_case() -> None:
    assert CHANNEL_FIELDS["sms"] == ("text",)
    assert "imageUrl" in CHANNEL_FIELDS["viber"] and "buttonText" in CHANNEL_FIELDS["telegram"]
    assert {"templateName", "contentSid", "buttons"} <= set(CHANNEL_FIELDS["whatsapp"])


# --- the render budget -------------------------------------------------------------------

TOO_MUCH_OUTPUT = [
    "{% for a in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'.center(1000000000) }}",
    "{{ 'x'.rjust(1000000000) }}",
    "{{ (1).to_bytes(1000000000, 'big') }}",
    "{{ '%1000000000s' % 'x' }}",
    "{{ '%*s' % (1000000000, 'x') }}",
    "{{ '%1000000000s'|format('x') }}",
    "{{ '{:>1000000000}'.format('x') }}",
    "{{ '{:>{w}}'.format('x', w=1000000000) }}",
    "{{ ('a\nb\n' * 300000)|indent(1000) }}",
    "{{ ('a ' * 400000)|wordwrap(1, wrapstring='-' * 1000) }}",
    "{{ range(100000)|join('x' * 10000) }}",
    "{{ ('x' * 999999)|replace('', 'yy') }}",
    "{{ 'x' * 999999 ~ 'y' * 999999 }}",
    "{{ [1]|batch(1000000000, 'x')|list }}",
    "{{ [1]|slice(1000000000)|list }}",
    "{{ range(100000)|map('center', 100000)|list|length }}",
    # References to one string are small in memory and huge as text.
    "{% set s = 'x' * 900000 %}{% set l = [s, s, s, s, s, s, s, s, s, s] %}{{ l }}",
    "{% set s = 'x' * 900000 %}{% set l = [s, s, s, s, s, s, s, s, s, s] %}{{ l|join }}",
    "{% set s = 'x' * 900000 %}{% set l = [s, s, s, s, s, s, s, s, s, s] %}{{ l|tojson }}",
    "{% set s = 'x' * 900000 %}{% set l = [s, s, s, s, s, s, s, s, s, s] %}{{ l ~ '' }}",
    # Doubling a string in a loop: few iterations, exponential output.
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    # Literal text inside a block that is only written out once finished.
    "{% set x %}{% for i in range(9000) %}" + "L" * 1000 + "{% endfor %}{% endset %}{{ x|length }}",
    "{% filter upper %}{% for i in range(9000) %}{{ 'x' * 1000 }}{% endfor %}{% endfilter %}",
    "{{ 9 ** 99999 }}",
    "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}"
    "{% endfor %}{{ ns.n > 0 }}",
]


TOO_MANY_ITERATIONS = [
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) if b < 0 %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% for x in range(3) recursive %}{% if loop.depth < 30 %}{{ loop(range(3)) }}{% endif %}"
    "{% endfor %}",
]


@pytest.mark.parametrize(
    ("source", "limit", "said"),
    [(source, "max_output_characters", "") for source in TOO_MUCH_OUTPUT]
    + [(source, "max_loop_iterations", "more than 10000 times") for source in TOO_MANY_ITERATIONS],
)
def test_renders_are_bounded(source: str, limit: str, said: str) -> None:
    with pytest.raises(TemplateTooExpensive) as e:
        render(source, {})
    assert e.value.code == "template_too_expensive"
    assert e.value.limit == limit
    assert said in e.value.message


def test_budgets_are_exact() -> None:
    loops = RenderBudget(max_loop_iterations=3)
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}", {}, budget=loops) == "012"
    with pytest.raises(TemplateTooExpensive, match="more than 3 times"):
        render("{% for i in range(4) %}{{ i }}{% endfor %}", {}, budget=loops)
    output = RenderBudget(max_output_characters=10)
    assert render("{{ x }}", {"x": "0123456789"}, budget=output) == "0123456789"
    with pytest.raises(TemplateTooExpensive, match="more than 10 characters"):
        render("{{ x }}", {"x": "0123456789A"}, budget=output)
    with pytest.raises(TemplateTooExpensive):  # text written by a loop counts too
        render("{% for i in range(3) %}abcd{% endfor %}", {}, budget=output)


def test_a_render_stops_itself_when_its_time_is_up() -> None:
    ticks = iter(range(1_000_000))
    budget = RenderBudget(
        max_loop_iterations=10**9, timeout_seconds=100, clock=lambda: float(next(ticks))
    )
    with pytest.raises(TemplateTooExpensive, match="still running after 100 s") as e:
        render(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            {},
            budget=budget,
        )
    assert e.value.limit == "timeout_seconds"
    # The clock is read once a step: the render stopped right after its deadline.
    assert 100 <= next(ticks) <= 103


def test_ordinary_templates_fit_the_default_budget() -> None:
    source = (
        "{% macro line(n) %}[{{ n }}]{% endmacro %}{% for i in range(100) %}{{ line(i) }}"
        "{% endfor %} {{ 'a,b,c'.split(',')|join(', ') }} {{ name|center(9) }} "
        "{{ 1234.5|money('RUB') }} {{ '%05.1f'|format(3.14159) }} {{ '{:>4}'.format(n) }}"
        "{{ ' ' ~ name * 2 }} {{ 2 ** 10 + 7 % 3 }} {{ [1, 2] + [3] }}"
    )
    out = render(source, {"name": "Ann", "n": 7})
    assert out.startswith("[0][1]") and out.endswith(
        "a, b, c    Ann    1 234.50 RUB 003.1    7 AnnAnn 1025 [1, 2, 3]"
    )


def test_constants_are_not_folded_at_compile_time() -> None:
    # Saving the template must not compute it; rendering refuses it.
    compile_check("{{ 'x'|center(1000000000) }}{{ 'x' ~ 'y' }}")
    with pytest.raises(TemplateTooExpensive):
        render("{{ 'x'|center(1000000000) }}{{ 'x' ~ 'y' }}", {})


def test_long_or_deeply_nested_sources_are_refused_not_crashed() -> None:
    with pytest.raises(TemplateTooExpensive, match="at most 100000") as e:
        compile_check("{{ x }}" * 20_000)
    assert e.value.limit is None
    with pytest.raises(TemplateTooExpensive, match="nests"):
        compile_check("{{ " + "(" * 400 + "1" + ")" * 400 + " }}")


def test_render_channel_says_which_setting_raises_the_limit() -> None:
    with pytest.raises(TemplateTooExpensive) as e:
        render_channel(None, "sms", {"text": "{% for i in range(n) %}{% endfor %}"}, {"n": 10**5})
    assert e.value.field == "text"
    assert e.value.message == (
        "The template is too expensive to render: it would loop or call macros more than "
        "10000 times. Make the template do less, or raise HERALD_TEMPLATE_MAX_LOOP_ITERATIONS."
    )
