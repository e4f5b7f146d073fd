"""Herald's settings: one typed object, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from herald.domain.urls import UrlPolicy, policy_of


class Settings(BaseSettings):
    """Everything configurable about a Herald process."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'herald.db'}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL providers and browsers use to reach this Herald (callbacks, links).",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts provider credentials at rest. When unset, a key "
        "is generated once into secret_key_file.",
    )
    secret_key_file: Path = Field(default_factory=lambda: Path.cwd() / "herald.key")
    data_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "herald-data",
        description="Where uploaded send-task files are kept, so an interrupted import resumes.",
    )

    # Short links
    short_link_base_url: str | None = Field(
        default=None,
        description="Base URL of short links in SMS (a short domain pointing at this Herald); "
        "public_url when unset.",
    )
    short_link_retention_days: float = Field(
        default=90.0, description="Short links answer 410 Gone this many days after creation."
    )

    # Dispatcher
    dispatch_batch_size: int = 200
    dispatch_concurrency: int = 100
    dispatch_idle_sleep: float = 0.05
    lease_seconds: float = 60.0
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    provider_timeout_seconds: float = 15.0
    # After a send whose outcome is unknown (timeout, dropped connection), wait this long
    # before asking the provider whether it has the message.
    reconcile_delay_seconds: float = 5.0
    # An attempt whose outcome is unknown (worker died mid-call) and never reconciled fails
    # after this long; a message's own validity period shortens it.
    unknown_outcome_timeout_seconds: float = 36000.0

    # Whether time spent waiting outside allowed time ranges extends a message's validity
    # (off: validity is wall-clock time from when the message, or its cascade channel, became
    # due). HERALD_QUIET_HOURS_PAUSE_VALIDITY is this setting's name before 2026-12.
    allowed_time_ranges_pause_validity: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "allowed_time_ranges_pause_validity",
            "HERALD_ALLOWED_TIME_RANGES_PAUSE_VALIDITY",
            "HERALD_QUIET_HOURS_PAUSE_VALIDITY",
        ),
    )

    # A cascade channel without its own validityPeriod waits this long for a delivery
    # report before the next channel is tried.
    cascade_wait_minutes: int = 60

    # Twilio sets a message's price some time after its final status; fetch it then (and, if
    # it is not there yet, again at growing intervals for a day).
    price_fetch_delay_seconds: float = Field(default=60.0, gt=0)
    # A message with the provider and no final report this long after its last status change
    # is read back from the provider (its status callback may have been lost), then again at
    # growing intervals, until report_poll_horizon_seconds: Twilio advises polling a message
    # not delivered or undelivered within 12 hours; one still "sent" then may well stay so.
    report_poll_delay_seconds: float = Field(default=600.0, gt=0)
    report_poll_horizon_seconds: float = Field(default=43200.0, gt=0)

    # Web chat visitor tokens travel in the socket's URL (and so in proxies' logs): each
    # carries its expiry, this many days after it was made.
    webchat_token_days: int = Field(default=30, ge=1, le=3650)

    # Client callbacks (outbound webhooks)
    callback_max_attempts: int = 8
    callback_timeout_seconds: float = 10.0

    # Scheduling and allowed time ranges
    default_timezone: str = Field(
        default="UTC", description="Zone for recipients without one (a project may override)."
    )
    schedule_horizon_days: float = Field(
        default=35.0, description="How far ahead sendAt may be (Twilio's own limit is 35 days)."
    )

    idempotency_hours: float = Field(
        default=24.0,
        gt=0,
        description="How long an Idempotency-Key's first answer is kept and replayed.",
    )

    # Request bodies. The JSON cap fits the largest 10,000-destination POST /api/v1/messages:
    # 1,000 messages each with a 1,600-character Cyrillic text, JSON-escaped as PHP's
    # json_encode writes it, are 9.9 MB (10 messages of 1,000 destinations with variables,
    # a more usual shape, are 1.5 MB).
    max_json_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body of the API's JSON routes; larger ones get 413.",
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024,
        gt=0,
        description="Largest send-task upload (POST /api/v1/tasks/{id}, /api/v1/messages/bulk), "
        "multipart framing included; it is streamed to disk, never held in memory.",
    )

    # Failed authentication, per client address and process: a burst, then a slow trickle.
    # (Settings below look alike, Field(default, bound, description): each is its own knob.)
    failed_auth_burst: int = Field(
        default=10,
        ge=1,
        description="Wrong API keys one address may send before it is slowed down (429).",
    )
    failed_auth_per_minute: float = Field(
        default=10.0,
        gt=0,
        description="After the burst, wrong API keys one address may try per minute.",
    )
    api_key_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a checked API key is trusted without asking the database; a "
        "deleted project's key stops working after this.",
    )

    run_dispatcher: bool = Field(
        default=True, description="Run the dispatcher inside `herald serve` (off when scaled out)."
    )

    # Template rendering budget, per render of one field for one recipient: a template that
    # would spend more is refused with 422 template_too_expensive.
    template_max_output_characters: int = Field(
        default=1_000_000,
        ge=1,
        description="Characters one render may produce, strings built on the way included.",
    )
    template_max_loop_iterations: int = Field(
        default=10_000,
        ge=1,
        description="Loop iterations and macro calls one render may make.",
    )
    template_render_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Seconds one render may run before it stops itself."
    )

    # NoDecode: the variable is a plain comma-separated list, not JSON.
    allowed_private_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated hosts or CIDRs (127.0.0.1,::1,localhost) that tenant URLs "
        "may point at although they are private or loopback; every other private, loopback or "
        "link-local address stays refused.",
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # The usual ways of writing a database URL name no async driver; SQLAlchemy's own
        # words for that ("Can't load plugin", "requires an async driver") do not say what to do.
        scheme = value.split("://", 1)[0].lower()
        if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
            raise ValueError(f"write postgresql+asyncpg://… instead of {scheme}://…")
        if scheme in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"write sqlite+aiosqlite:///path instead of {scheme}:///path")
        return value

    @field_validator("allowed_private_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_private_hosts")
    @classmethod
    def _known_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        policy_of(value)  # a bad CIDR stops the start with one line, not the first callback
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # Checked now: a bad zone would otherwise surface as a 500 on the first send to a
        # country with several zones.
        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as e:
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Paris") from e
        return value

    @property
    def url_policy(self) -> UrlPolicy:
        """Which private hosts tenants' URLs may reach (allowed_private_hosts, parsed)."""
        return policy_of(self.allowed_private_hosts)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, when the database is one."""
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None

    @property
    def shown_database_url(self) -> str:
        """The database URL with its password masked, for banners, logs and errors."""
        from sqlalchemy.engine import make_url  # not at import: every CLI command reads settings

        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy can read: nothing to mask reliably
            return "(unreadable HERALD_DATABASE_URL)"


# Read by the CLI's commands that talk to a running Herald, not settings of the server.
_CLIENT_VARIABLES = ("HERALD_URL", "HERALD_API_KEY")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """HERALD_* variables Herald does not read, each with the closest it does, if any.

    A misspelt one (HERALD_DATABSE_URL) is otherwise ignored without a word, and Herald runs
    on its default instead.
    """
    known = [f"HERALD_{name.upper()}" for name in Settings.model_fields] + list(_CLIENT_VARIABLES)
    found = []
    for name in sorted(environ):
        if name.startswith("HERALD_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found
