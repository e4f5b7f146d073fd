"""Addresses as providers write them: ``whatsapp:+1…`` is ``+1…`` on the WhatsApp channel."""

from __future__ import annotations


def bare(address: str) -> str:
    """An address without its channel prefix (``whatsapp:+1…`` → ``+1…``)."""
    prefix, sep, rest = address.partition(":")
    return rest if sep and prefix.isalpha() else address
