"""TWIN's provider names in a channel, read as Herald's providers.

TWIN's clients name the provider a channel goes through (``"provider": "INFOBIP"``, its SDK's
example). Herald has adapters of its own; a name it has no adapter for maps through the
project's alias table (``PATCH /api/v1/project {"providerAliases": {"INFOBIP": "twilio"}}``).
``TWIN`` means "whichever Herald chooses". A family name matches each of its adapters:
``twilio`` is also ``twilio-whatsapp``, ``meta`` is ``meta-whatsapp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.errors import ValidationFailed
from herald.services.sender_accounts import PROVIDERS

ANY_PROVIDER = "twin"
# Every name a channel's provider may say directly: the adapters and their families.
HERALD_PROVIDERS = frozenset(
    {name for names in PROVIDERS.values() for name in names}
    | {name.split("-")[0] for names in PROVIDERS.values() for name in names}
)
MAX_ALIASES = 100
MAX_ALIAS_LENGTH = 50
SETTING_HINT = (
    'map it to one of Herald\'s providers with PATCH /api/v1/project {"providerAliases": '
    '{"NAME": "twilio"}}'
)


class UnknownProvider(ValueError):
    """A channel names a provider that is neither Herald's nor in the project's aliases."""


def herald_provider(given: str, aliases: Mapping[str, str]) -> str:
    """The Herald provider (or family) a channel's ``provider`` stands for.

    Raises UnknownProvider with the sentence to show when nothing maps it.
    """
    name = given.strip().lower()
    if name in HERALD_PROVIDERS or name == ANY_PROVIDER:
        return name
    target = aliases.get(given.strip().upper())
    if target is not None:
        return target
    raise UnknownProvider(
        f"Herald has no adapter for the provider {given!r}: {SETTING_HINT.replace('NAME', given)}"
        f", or leave 'provider' out. Herald's providers: {', '.join(sorted(HERALD_PROVIDERS))}"
    )


def serves(provider: str, sender_provider: str) -> bool:
    """Whether a sender's adapter is the provider (or one of the family) a channel asks for."""
    return provider in (ANY_PROVIDER, sender_provider) or sender_provider.startswith(f"{provider}-")


def checked_aliases(value: Any) -> dict[str, str]:
    """An alias table as given to PATCH /api/v1/project, keys in upper case."""
    if not isinstance(value, dict):
        raise ValidationFailed(
            "providerAliases is an object of TWIN provider name → Herald provider, e.g. "
            '{"INFOBIP": "twilio"} (null removes them all).',
            code="invalid_provider_alias",
        )
    if len(value) > MAX_ALIASES:
        raise ValidationFailed(
            f"At most {MAX_ALIASES} provider aliases may be set.", code="invalid_provider_alias"
        )
    table: dict[str, str] = {}
    for key, target in value.items():
        name = key.strip().upper()
        if not name or len(name) > MAX_ALIAS_LENGTH:
            raise ValidationFailed(
                f"A provider alias is a name of 1 to {MAX_ALIAS_LENGTH} characters, e.g. INFOBIP.",
                code="invalid_provider_alias",
                details={"alias": key},
            )
        if name.lower() in HERALD_PROVIDERS or name.lower() == ANY_PROVIDER:
            raise ValidationFailed(
                f"{key!r} is already a name Herald knows; an alias maps only other providers.",
                code="invalid_provider_alias",
                details={"alias": key},
            )
        mapped = target.strip().lower() if isinstance(target, str) else ""
        if mapped not in HERALD_PROVIDERS:
            raise ValidationFailed(
                f"The alias {key!r} must map to one of Herald's providers: "
                f"{', '.join(sorted(HERALD_PROVIDERS))}.",
                code="invalid_provider_alias",
                details={"alias": key, "providers": sorted(HERALD_PROVIDERS)},
            )
        table[name] = mapped
    return table
