"""One request message as a plan: its channels in cascade order, and each recipient's content.

Channels are tried in the order the request (or, without one, the template) lists them; a
recipient only gets the channels it has an address for: SMS and WhatsApp need ``phone``,
e-mail ``email``, Telegram ``messengerUserId`` (the chat id), the web chat
``messengerUserId`` (the visitor's id). A ``chat`` channel (a session with a bot) becomes one
of those per person: see :mod:`herald.services.bots.chat_sessions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from herald.domain.email import validate_email_address
from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.templates import DEFAULT_BUDGET, RenderBudget
from herald.errors import ValidationFailed
from herald.schemas.messages import (
    ChatChannelIn,
    DestinationIn,
    MessageIn,
    RichChannelIn,
    SmsChannelIn,
    pydantic_code,
)
from herald.services.bots.chat_sessions import BOT_KEY, resolve_chat
from herald.services.messages.composition import CompositionProblem, compose_rich, compose_sms
from herald.services.messages.provider_aliases import UnknownProvider, herald_provider, serves
from herald.services.problems import Problems
from herald.services.senders import SenderDirectory
from herald.services.short_links import PlannedLink
from herald.services.templates.rendering import TemplateSnapshot, merge_variables
from herald.store.senders import Sender

SUPPORTED_CHANNELS = ("sms", "email", "telegram", "whatsapp", "chat")
ADDRESS_FIELD = {
    "sms": "phone",
    "whatsapp": "phone",
    "email": "email",
    "telegram": "messengerUserId",
    "chat": "messengerUserId",
}
DESTINATION_FIELDS = {"phone", "email", "messengerUserId", "variables"}

ChannelSpec = SmsChannelIn | RichChannelIn | ChatChannelIn


# A field list, alike in shape only with sender_accounts.NewSender.
@dataclass(frozen=True, slots=True)
class Step:
    """One channel of the request's cascade, with the sender it goes out through."""

    channel: str
    spec: ChannelSpec
    sender: Sender
    # A chat session: the bot that talks. A request's chat step holds the messengers to
    # choose from and the one each address last used; a person gets one of them.
    bot_id: str | None = None
    choices: tuple[Step, ...] = ()
    last_used: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepContent:
    """What one recipient gets on one channel: the address and the rendered content."""

    step: Step
    address: str
    body: str
    content: dict[str, Any] | None
    segments: int | None
    links: list[PlannedLink]
    index: int = 0  # the request's channel this is (a chat session's messenger included)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One destination of a message, with its content on each channel it can be reached on."""

    destination: dict[str, str]
    phone: str | None
    variables: dict[str, Any]
    contents: list[StepContent]


def channel_specs(
    msg: MessageIn, template: TemplateSnapshot | None, path: str, problems: Problems
) -> list[tuple[str, ChannelSpec]]:
    """The message's channels in order, each parsed into its request model."""
    raw: dict[str, Any] = {}
    for given, value in msg.channels.items():
        key = given.lower()
        if key in raw:
            problems.add(
                f"{path}.channels.{given}",
                f"The channel '{key}' is given twice (channel keys ignore case).",
                "duplicate_channel",
            )
            continue
        raw[key] = value
    if not raw and template is not None:
        raw = {key: {} for key in template.channels if key in SUPPORTED_CHANNELS}
    if not raw:
        problems.add(
            f"{path}.channels",
            "Give at least one channel, e.g. 'sms' with a 'text'.",
            "missing_channel",
        )
        return []
    specs: list[tuple[str, ChannelSpec]] = []
    for key, given_value in raw.items():
        value = _with_template_settings(template, key, given_value)
        if key not in SUPPORTED_CHANNELS:
            problems.add(
                f"{path}.channels.{key}",
                f"Channel '{key}' is not supported yet; supported: "
                f"{', '.join(SUPPORTED_CHANNELS)}.",
                "unsupported_channel",
            )
            continue
        models: dict[str, type[ChannelSpec]] = {"sms": SmsChannelIn, "chat": ChatChannelIn}
        model = models.get(key, RichChannelIn)
        try:
            spec = model.model_validate(value or {})
        except ValidationError as e:
            for err in e.errors():
                where = ".".join(str(part) for part in err["loc"])
                problems.add(
                    f"{path}.channels.{key}.{where}", err["msg"], pydantic_code(err["type"])
                )
            continue
        if isinstance(spec, RichChannelIn):
            foreign = _foreign_fields(key, spec)
            if foreign:
                problems.add(
                    f"{path}.channels.{key}.{foreign[0]}",
                    f"The {key} channel does not take '{foreign[0]}'; its own fields are: "
                    f"{', '.join(_RICH_FIELDS[key])}, besides text, from, provider, "
                    "validityPeriod and required.",
                    "unsupported_field",
                )
                continue
        problem = _field_problem(key, spec) if isinstance(spec, RichChannelIn) else None
        if problem is not None:
            problems.add(f"{path}.channels.{key}.{problem[0]}", problem[1], problem[2])
            continue
        if key == "sms" and spec.text is None and template is None:
            problems.add(f"{path}.channels.sms.text", "Field required", "missing_field")
            continue
        specs.append((key, spec))
    return specs


# TWIN's channel fields that reach the provider as they are (see channels.base.OutboundMessage).
EMAIL_AUTHOR = ("fromEmail", "fromName", "replyTo")
WHATSAPP_FILE = ("templateNamespace", "mediaUrl", "documentFilename")
# Twilio's WhatsApp has neither: a file is named by its URL, a template by its ContentSid.
_NOT_THROUGH_TWILIO = {
    "templateNamespace": "template_namespace",
    "documentFilename": "document_filename",
}

# A template's delivery settings, applied as if the request's channel object had them (the
# request's own win, field by field). Content fields are merged later, when rendering.
_TEMPLATE_SETTINGS: dict[str, tuple[str, ...]] = {
    "email": EMAIL_AUTHOR,
    "whatsapp": (*WHATSAPP_FILE, "templateData"),
}


def _with_template_settings(template: TemplateSnapshot | None, key: str, value: Any) -> Any:
    if template is None or key == "chat" or not isinstance(value, dict | None):
        return value
    stored = template.channels.get(key) or {}
    names = ("from", "provider", "validityPeriod", "required", *_TEMPLATE_SETTINGS.get(key, ()))
    merged = {name: stored[name] for name in names if stored.get(name) is not None}
    if isinstance(merged.get("templateData"), list):
        del merged["templateData"]  # TWIN's list form has no meaning Herald knows
    merged.update({name: v for name, v in (value or {}).items() if v is not None})
    return merged


# What each channel sharing RichChannelIn does with its content (wire names). Anything
# else given would be dropped on the way to the provider.
_RICH_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "imageUrl", "buttonUrl", "buttonText", *EMAIL_AUTHOR),
    "telegram": ("imageUrl", "buttonUrl", "buttonText"),
    "whatsapp": ("contentSid", "templateName", "language", "templateData", *WHATSAPP_FILE),
}
_COMMON_FIELDS = ("text", "from", "provider", "validityPeriod", "required")


def _field_problem(channel: str, spec: RichChannelIn) -> tuple[str, str, str] | None:
    """The first of TWIN's channel fields that cannot reach the provider as given."""
    for name, value in (("fromEmail", spec.from_email), ("replyTo", spec.reply_to)):
        if channel == "email" and value is not None:
            try:
                validate_email_address(value)
            except ValueError as e:
                return name, f"{e}.", "invalid_email"
    if spec.document_filename is not None and spec.media_url is None:
        return (
            "documentFilename",
            "documentFilename names the file at mediaUrl: give mediaUrl too.",
            "missing_field",
        )
    return None


def _foreign_fields(channel: str, spec: RichChannelIn) -> list[str]:
    """Fields given with a value that ``channel`` has no use for."""
    given = spec.model_dump(by_alias=True, exclude_none=True)
    own = (*_COMMON_FIELDS, *_RICH_FIELDS.get(channel, ()))
    return [name for name in given if name not in own]


async def resolve_steps(
    specs: list[tuple[str, ChannelSpec]],
    senders: SenderDirectory,
    path: str,
    problems: Problems,
    destinations: Sequence[DestinationIn] = (),
    aliases: Mapping[str, str] | None = None,
) -> list[Step]:
    """Each channel with the sender it goes out through.

    ``aliases``: the project's TWIN provider names → Herald providers (see
    :mod:`herald.services.messages.provider_aliases`).
    """
    aliases = aliases or {}
    steps = []
    for key, spec in specs:
        if isinstance(spec, ChatChannelIn):
            chat = await resolve_chat(spec, senders, destinations, path, problems)
            if chat is not None:
                bot_id, choices, last_used = chat
                steps.append(
                    Step(
                        key,
                        spec,
                        choices[0][2],
                        bot_id=bot_id,
                        choices=tuple(Step(c, s, snd, bot_id=bot_id) for c, s, snd in choices),
                        last_used=last_used,
                    )
                )
            continue
        try:
            sender = await senders.resolve(key, spec.from_)
        except ValidationFailed as e:
            problems.add(f"{path}.channels.{key}.from", e.message, e.code)
            continue
        if spec.provider:
            try:
                provider = herald_provider(spec.provider, aliases)
            except UnknownProvider as e:
                problems.add(f"{path}.channels.{key}.provider", f"{e}.", "unknown_provider")
                continue
            if not serves(provider, sender.provider):
                direct = provider == spec.provider.strip().lower()
                mapped = "" if direct else f" ({spec.provider} maps to {provider})"
                problems.add(
                    f"{path}.channels.{key}.provider",
                    f"The sender {sender.from_address} uses {sender.provider}, not "
                    f"{spec.provider}{mapped}: give the 'from' of a {provider} sender, or "
                    "leave 'provider' out.",
                    "provider_mismatch",
                )
                continue
        if isinstance(spec, RichChannelIn) and sender.provider == "twilio-whatsapp":
            given = [wire for wire, attr in _NOT_THROUGH_TWILIO.items() if getattr(spec, attr)]
            if given:
                problems.add(
                    f"{path}.channels.{key}.{given[0]}",
                    f"WhatsApp through Twilio takes no '{given[0]}' (Twilio names a file by its "
                    "URL and a template by its contentSid): leave it out, or send through a "
                    "meta-whatsapp sender.",
                    "unsupported_field",
                )
                continue
        steps.append(Step(key, spec, sender))
    return steps


def _addresses(dest: DestinationIn, dpath: str, problems: Problems) -> dict[str, str] | None:
    checks: tuple[tuple[str, str | None, Callable[[str], str], type[ValueError], str], ...] = (
        ("phone", dest.phone, to_e164, InvalidPhone, "invalid_phone"),
        ("email", dest.email, validate_email_address, ValueError, "invalid_email"),
    )
    addresses: dict[str, str] = {}
    ok = True
    for name, given, parse, refused, code in checks:
        if not given:
            continue
        try:
            addresses[name] = parse(given)
        except refused as e:
            problems.add(f"{dpath}.{name}", f"{e}.", code)
            ok = False
    if dest.messenger_user_id:
        addresses["messengerUserId"] = dest.messenger_user_id.strip()
    return addresses if ok else None


def recipient_for(
    dest: DestinationIn,
    dpath: str,
    msg: MessageIn,
    steps: list[Step],
    template: TemplateSnapshot | None,
    problems: Problems,
    *,
    short_link_base: str,
    budget: RenderBudget = DEFAULT_BUDGET,
) -> Recipient | None:
    """One destination's content on each channel it has an address for."""
    for key, value in dest.model_dump(by_alias=True).items():
        if key not in DESTINATION_FIELDS and value not in (None, {}, ""):
            problems.add(
                f"{dpath}.{key}",
                f"'{key}' is not supported by this Herald yet.",
                "unsupported_field",
            )
    addresses = _addresses(dest, dpath, problems)
    if addresses is None:
        return None
    reachable = [
        (i, chosen) for i, step in enumerate(steps) if (chosen := _choose(step, addresses))
    ]
    if not reachable:
        needed = sorted({ADDRESS_FIELD[c.channel] for s in steps for c in (s.choices or (s,))})
        code = "missing_phone" if needed == ["phone"] else "missing_address"
        problems.add(
            f"{dpath}",
            f"The destination has no address for any of the message's "
            f"channels: give {' or '.join(needed)}.",
            code,
        )
        return None
    variables = merge_variables(msg.variables, dest.variables)
    contents = []
    for index, step in reachable:
        try:
            content = _content(step, addresses, msg, template, variables, short_link_base, budget)
            contents.append(replace(content, index=index))
        except CompositionProblem as e:
            # A literal text is the request's own problem; a rendered one depends on this
            # destination's variables, so point there.
            rendered = template is not None or bool(variables)
            where = (
                dpath
                if rendered
                else f"{dpath.rsplit('.destinations', 1)[0]}.channels.{step.channel}.text"
            )
            problems.add(where, f"{e.message}.", e.code)
            return None
    return Recipient(addresses, addresses.get("phone"), variables, contents)


def _choose(step: Step, addresses: dict[str, str]) -> Step | None:
    """The step itself if the person has its address; for a chat session, the messenger
    the person last used with the bot, else the first one they can be reached on."""
    if not step.choices:
        return step if ADDRESS_FIELD[step.channel] in addresses else None
    usable = [c for c in step.choices if ADDRESS_FIELD[c.channel] in addresses]
    for choice in usable:
        if step.last_used.get(addresses[ADDRESS_FIELD[choice.channel]]) == choice.channel:
            return choice
    return usable[0] if usable else None


def _content(
    step: Step,
    addresses: dict[str, str],
    msg: MessageIn,
    template: TemplateSnapshot | None,
    variables: dict[str, Any],
    short_link_base: str,
    budget: RenderBudget,
) -> StepContent:
    address = addresses[ADDRESS_FIELD[step.channel]]
    if isinstance(step.spec, SmsChannelIn):
        overrides = {"text": step.spec.text} if step.spec.text is not None else {}
        if step.bot_id:  # a chat session over SMS: the chat text, rendered once
            chat = compose_rich(template, "chat", overrides, variables, budget=budget)
            overrides = {"text": chat.text}
            template, variables = None, {}
        sms = compose_sms(
            template,
            overrides,
            variables,
            short_links_base=short_link_base if msg.use_short_links else None,
            smart_encoding=step.sender.smart_encoding,
            budget=budget,
        )
        session = {BOT_KEY: step.bot_id} if step.bot_id else None
        return StepContent(step, address, sms.text, session, sms.segments, sms.links)
    overrides = step.spec.model_dump(
        by_alias=True,
        exclude_none=True,
        include={
            "text",
            "subject",
            "html",
            "image_url",
            "button_url",
            "button_text",
            "content_sid",
            "template_name",
            "language",
            "from_email",
            "from_name",
            "reply_to",
            "template_namespace",
            "media_url",
            "document_filename",
        },
    )
    # A chat session's text comes from the template's chat content, whatever the messenger.
    rich = compose_rich(
        template, "chat" if step.bot_id else step.channel, overrides, variables, budget=budget
    )
    content: dict[str, Any] = dict(rich.content)
    if step.bot_id:
        content[BOT_KEY] = step.bot_id
    if isinstance(step.spec, RichChannelIn) and step.spec.template_data:
        content["templateData"] = {k: str(v) for k, v in step.spec.template_data.items()}
    return StepContent(step, address, rich.text, content or None, None, [])
