"""Refusing tenants' URLs that point where Herald must not connect (see domain/urls.py)."""

from __future__ import annotations

from herald.domain.urls import UrlPolicy, UrlRefused
from herald.errors import UrlNotAllowed


def url_problem(
    policy: UrlPolicy, url: str, field: str, schemes: tuple[str, ...] = ("http", "https")
) -> str | None:
    """The sentence saying why Herald will not call ``url`` given as ``field``, or None."""
    try:
        policy.check_url(url, schemes)
    except UrlRefused as e:
        return e.sentence(field)
    return None


def host_problem(policy: UrlPolicy, host: str, field: str) -> str | None:
    """As url_problem, for a host Herald connects to without a URL of its own (SMTP)."""
    try:
        policy.check_host(host)
    except UrlRefused as e:
        return e.sentence(field)
    return None


def refuse_url(
    policy: UrlPolicy, url: str, field: str, schemes: tuple[str, ...] = ("http", "https")
) -> None:
    """Raise 422 url_not_allowed unless Herald may call ``url`` given as ``field``."""
    problem = url_problem(policy, url, field, schemes)
    if problem is not None:
        raise UrlNotAllowed(problem, details={"field": field})
