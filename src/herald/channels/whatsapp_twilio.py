"""WhatsApp through Twilio: the SMS adapter's Messages API with ``whatsapp:`` addresses.

Credentials and sender fields are Twilio's (Account SID, ``authToken``, base URL); the
sender's ``from_address`` is the approved WhatsApp number in E.164. Free text goes as
``Body`` (+ ``MediaUrl`` for an image or TWIN's ``mediaUrl``); an approved template goes as
``ContentSid`` with ``ContentVariables`` and no Body, which is the only thing Twilio
delivers outside the 24-hour window. Statuses, ``read`` included, arrive through the same
Twilio status callback as SMS.
"""

from __future__ import annotations

import json
from typing import Any

from herald.channels.base import OutboundMessage, PermanentError, SenderAccount
from herald.channels.twilio import TwilioSms

PREFIX = "whatsapp:"


def _text(message: OutboundMessage) -> str:
    if not message.button_url:
        return message.body
    # Free-form WhatsApp through Twilio has no buttons (those need a Content template): the
    # link goes in the text instead.
    label = f"{message.button_text}: " if message.button_text else ""
    link = f"{label}{message.button_url}"
    return f"{message.body}\n\n{link}" if message.body else link


def whatsapp_address(number: str) -> str:
    """``+14155550123`` or ``whatsapp:+14155550123`` as Twilio's ``whatsapp:+14155550123``."""
    return PREFIX + number.strip().removeprefix(PREFIX)


class TwilioWhatsApp(TwilioSms):
    """WhatsApp messages through Twilio's Messages API (reference twilio.md §7)."""

    name = "twilio-whatsapp"

    def _addresses(self, account: SenderAccount, message: OutboundMessage) -> tuple[str, str]:
        return whatsapp_address(message.to), whatsapp_address(account.from_address)

    def _form(self, account: SenderAccount, message: OutboundMessage) -> dict[str, str]:
        to, sender = self._addresses(account, message)
        form = {"To": to, "From": sender}
        template = message.template
        if template is not None:
            if not template.content_sid:
                raise PermanentError(
                    "template_incomplete", "A WhatsApp template through Twilio needs a ContentSid."
                )
            form["ContentSid"] = template.content_sid
            if template.variables:
                form["ContentVariables"] = json.dumps(template.variables, ensure_ascii=False)
            return self._with_delivery_options(form, message)
        body = _text(message)
        if body:
            form["Body"] = body
        # TWIN's mediaUrl (any file) goes as Twilio's MediaUrl, like an image does.
        media = message.media_url or message.image_url
        if media:
            form["MediaUrl"] = media
        if not body and not media:
            raise PermanentError("text_empty", "WhatsApp cannot send an empty message.")
        return self._with_delivery_options(form, message)

    def _matches(self, item: dict[str, Any], message: OutboundMessage) -> bool:
        if message.template is not None:
            # Twilio stores the rendered template text, which Herald never sees: any message
            # to this person from this sender in the window is taken as the one sent.
            return True
        return bool(item.get("body") == _text(message))
