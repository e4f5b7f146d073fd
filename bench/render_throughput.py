"""Single-core throughput of the per-message SMS work: render, shorten links, count segments.

    .venv/bin/python bench/render_throughput.py [--messages 100000]

Each message gets its own variables (a name, an order number, an amount, a date) and goes
through exactly what message creation does for a templated SMS with ``useShortLinks``:
``render_channel`` (sandboxed Jinja2), ``shorten_text`` (find the link, draw a code) and
``analyze`` (encoding and segments). No database: storage is measured by the API benchmarks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from herald.domain.segments import analyze
from herald.services.short_links import shorten_text
from herald.services.templates.rendering import TemplateSnapshot, render_channel

TEXT = (
    "Hi {{ name }}, your order {{ order }} of {{ total|money('RUB') }} ships on "
    "{{ when|date }}.{% if vip %} VIP delivery is free.{% endif %} Track it: "
    "https://shop.example.com/account/orders/{{ order }}/tracking?utm_source=sms&utm_campaign=ship"
)
SNAPSHOT = TemplateSnapshot("bench", "shipped", 1, {"sms": {"text": TEXT}}, [])
BASE = "https://hrld.example"


def _variables(n: int) -> list[dict[str, Any]]:
    names = ["Anna", "Boris", "Zoë", "Олег", "Chen", "María"]
    start = date(2026, 1, 1)
    return [
        {
            "name": names[i % len(names)],
            "order": 100_000 + i,
            "total": 990 + (i % 5000) * 1.5,
            "when": (start + timedelta(days=i % 365)).isoformat(),
            "vip": i % 7 == 0,
        }
        for i in range(n)
    ]


def _timed(label: str, n: int, repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best of ``repeat`` runs (the least disturbed by other processes), and fn's result."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<34} {n / best:>10,.0f} messages/s  ({best * 1e6 / n:6.1f} µs each)")
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best counts")
    args = parser.parse_args()
    n, repeat = args.messages, args.repeat
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, honestly
    variables = _variables(n)
    render_channel(SNAPSHOT, "sms", {}, variables[0])  # compile once, as a warm server has

    print(f"{n:,} messages, one core, Python {sys.version.split()[0]}, best of {repeat}:")
    _, texts = _timed(
        "render (sandboxed Jinja2)",
        n,
        repeat,
        lambda: [render_channel(SNAPSHOT, "sms", {}, v)["text"] for v in variables],
    )
    _, shortened = _timed(
        "shorten links", n, repeat, lambda: [shorten_text(t, BASE)[0] for t in texts]
    )
    _, segments = _timed(
        "count segments", n, repeat, lambda: [analyze(t).segments for t in shortened]
    )

    def pipeline() -> None:
        for v in variables:
            text = render_channel(SNAPSHOT, "sms", {}, v)["text"]
            short, _links = shorten_text(text, BASE)
            analyze(short)

    total, _ = _timed("render + shorten + segments", n, repeat, pipeline)
    before = sum(analyze(t).segments for t in texts)
    after = sum(segments)
    print(
        f"segments billed: {before:,} without short links, {after:,} with "
        f"({100 * (before - after) / before:.0f}% fewer); pipeline {n / total:,.0f} messages/s"
    )
    print(f"sample: {shortened[0]!r}")


if __name__ == "__main__":
    main()
