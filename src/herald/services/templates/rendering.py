"""Where templates are rendered: off the event loop, within the installation's budget.

A render may legitimately take a while (a big batch of recipients) or be made to (a template
written to loop), and while it runs on the event loop nothing else is served: not other
requests, not the dispatcher, not ``/healthz``. So renders and compile checks run in a small
pool of threads of their own, never the loop's default executor, which SQLite's driver uses
(a slow render must not stall the database). A thread cannot be stopped from outside; the
render stops itself when its :class:`~herald.domain.templates.RenderBudget` runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from herald.config import Settings
from herald.domain import templates as tpl
from herald.domain.template_budget import LIMIT_LOOPS, LIMIT_OUTPUT, LIMIT_TIME

__all__ = ["budget_from_settings", "off_loop", "with_setting"]

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
