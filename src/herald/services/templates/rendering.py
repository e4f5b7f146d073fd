"""Where templates are rendered: off the event loop, within the installation's budget.

The seam message creation uses: a :class:`TemplateSnapshot` (one version, frozen, as
:func:`~herald.services.templates.resource.load_template` gives it), :func:`merge_variables`
(message-level and per-destination variables) and :func:`render_channel` (the template's channel
content merged with the request's per-channel fields, every content field rendered).

A render may legitimately take a while (a big batch of recipients) or be made to (a template
written to loop), and while it runs on the event loop nothing else is served: not other
requests, not the dispatcher, not ``/healthz``. So renders and compile checks run in a small
pool of threads of their own, never the loop's default executor, which SQLite's driver uses
(a slow render must not stall the database). A thread cannot be stopped from outside; the
render stops itself when its :class:`~herald.domain.templates.RenderBudget` runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from herald.config import Settings
from herald.domain import templates as tpl
from herald.domain.template_budget import LIMIT_LOOPS, LIMIT_OUTPUT, LIMIT_TIME
from herald.schemas.messages import Scalar

__all__ = [
    "TemplateSnapshot",
    "budget_from_settings",
    "merge_variables",
    "off_loop",
    "render_channel",
    "variables_in",
    "with_setting",
]

T = TypeVar("T")

#: The setting that raises each limit of the budget.
SETTING_OF = {
    LIMIT_OUTPUT: "HERALD_TEMPLATE_MAX_OUTPUT_CHARACTERS",
    LIMIT_LOOPS: "HERALD_TEMPLATE_MAX_LOOP_ITERATIONS",
    LIMIT_TIME: "HERALD_TEMPLATE_RENDER_TIMEOUT_SECONDS",
}

# Rendering holds the GIL, so more threads would not render faster; a few let a short render
# start while a long one is running.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="herald-render")


def budget_from_settings(settings: Settings) -> tpl.RenderBudget:
    """The budget of one render, as the installation configured it."""
    return tpl.RenderBudget(
        max_output_characters=settings.template_max_output_characters,
        max_loop_iterations=settings.template_max_loop_iterations,
        timeout_seconds=settings.template_render_timeout_seconds,
    )


def with_setting(problem: tpl.TemplateTooExpensive) -> tpl.TemplateTooExpensive:
    """The same problem, its sentence saying what to do (and which setting to raise)."""
    setting = SETTING_OF.get(problem.limit or "")
    hint = (
        f"Make the template do less, or raise {setting}."
        if setting
        else "Make the template shorter or simpler."
    )
    return tpl.TemplateTooExpensive(problem.limit, problem.detail, hint=hint, field=problem.field)


async def off_loop(work: Callable[[], T]) -> T:
    """Run ``work`` (a render, a compile check) in the rendering threads and wait for it."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, work)


@dataclass(frozen=True)
class TemplateSnapshot:
    """One version of a template, as messages are rendered from it."""

    id: str
    name: str
    version: int
    channels: dict[str, dict[str, Any]]
    allowed_time_ranges: list[list[str]]


def variables_in(channels: Mapping[str, Mapping[str, Any]], *, required: bool = False) -> list[str]:
    """Every variable any content field of ``channels`` uses, sorted; with ``required``, only
    those rendering cannot go without."""
    names: set[str] = set()
    read = tpl.required_variables_of if required else tpl.variables_of
    for key, content in channels.items():
        for name in tpl.CHANNEL_FIELDS.get(key, ()):
            value = content.get(name)
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if isinstance(source, str) and tpl.has_markup(source):
                    try:
                        names |= read(source, html=name in tpl.HTML_FIELDS)
                    except tpl.TemplateProblem:
                        continue  # stored before a rule tightened; rendering will say why
    return sorted(names)


def merge_variables(
    message_vars: Mapping[str, Scalar] | None, destination_vars: Mapping[str, Scalar] | None
) -> dict[str, Scalar]:
    """Message-level variables overridden by the destination's own."""
    return {**(message_vars or {}), **(destination_vars or {})}


def render_channel(
    snapshot: TemplateSnapshot | None,
    channel: str,
    overrides: Mapping[str, Any],
    variables: Mapping[str, Scalar],
    *,
    budget: tpl.RenderBudget = tpl.DEFAULT_BUDGET,
) -> dict[str, Any]:
    """One channel's content: template fields, overridden per field, every content field rendered.

    Delivery settings (``from``, ``provider``...) pass through unrendered; ``None`` in
    ``overrides`` means "not given". Raises :class:`~herald.domain.templates.MissingVariables`
    naming every variable missing across all the channel's fields (``by_field`` tells which
    field needs which), or another ``TemplateProblem`` whose ``field`` names the culprit
    (:class:`~herald.domain.templates.TemplateTooExpensive` when a field spends more than
    ``budget``). Runs on the calling thread: callers on the event loop use ``off_loop``.
    """
    key = channel.lower()
    fields = tpl.CHANNEL_FIELDS.get(key)
    if fields is None:
        raise ValueError(f"unknown channel {channel!r}")
    merged: dict[str, Any] = dict(snapshot.channels.get(key, {})) if snapshot else {}
    merged.update({name: value for name, value in overrides.items() if value is not None})
    sources: dict[str, str] = {}
    for name in fields:
        value = merged.get(name)
        if isinstance(value, str):
            sources[name] = value
        elif name in tpl.LIST_FIELDS and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    sources[f"{name}[{i}]"] = item
    try:
        rendered = tpl.render_many(sources, variables, html_fields=tpl.HTML_FIELDS, budget=budget)
    except tpl.TemplateTooExpensive as e:
        raise with_setting(e) from e
    for name in fields:
        if name in tpl.LIST_FIELDS and isinstance(merged.get(name), list):
            merged[name] = [
                rendered.get(f"{name}[{i}]", item) for i, item in enumerate(merged[name])
            ]
        elif name in rendered:
            merged[name] = rendered[name]
    return merged
