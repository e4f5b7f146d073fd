"""Every model, imported in one place so metadata (and Alembic) sees the whole schema."""

from herald.store.base import Base
from herald.store.bots import Bot, ContactActivity, Conversation, ConversationMessage, Suppression
from herald.store.callbacks import ClientCallback, ClientCallbackAttempt
from herald.store.idempotency import IdempotentRequest
from herald.store.messages import Attempt, Delivery, Message, StatusEvent
from herald.store.projects import Project
from herald.store.senders import Sender
from herald.store.short_links import LinkClick, ShortLink
from herald.store.tasks import Task, TaskRow
from herald.store.templates import Template, TemplateVersion
from herald.store.users import IamSession, RefreshToken, SigningKey, SignInLink, User, WebSession

__all__ = [
    "Attempt",
    "Base",
    "Bot",
    "ClientCallback",
    "ClientCallbackAttempt",
    "ContactActivity",
    "Conversation",
    "ConversationMessage",
    "Delivery",
    "IamSession",
    "IdempotentRequest",
    "LinkClick",
    "Message",
    "Project",
    "RefreshToken",
    "Sender",
    "ShortLink",
    "SignInLink",
    "SigningKey",
    "StatusEvent",
    "Suppression",
    "Task",
    "TaskRow",
    "Template",
    "TemplateVersion",
    "User",
    "WebSession",
]
