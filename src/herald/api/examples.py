"""One working example per request body, shown by ``/docs`` and ``/redoc``.

Each is accepted as it stands by a new project's Herald (tests/e2e/test_first_minutes.py
posts every one), so "Try it out" in Swagger UI works without editing. None names a host
outside the machine, and none needs more than the sandbox sender. A body for a path with an
id works once that id exists (the template, task, bot or sender of the examples before it).
"""

from __future__ import annotations

from typing import Any

_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2  # the form Twilio's account SIDs have
_TEMPLATE = {"name": "otp", "channels": {"sms": {"text": "Your code is {{ code }}"}}}
_BOT_CHANGE = {"defaultReply": "Thanks! A person will answer soon."}
_ROWS = "phone,text\n+15005550006,Hello from a file\n"

#: (method, path) → the example body of that operation.
REQUEST_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/messages"): {
        "messages": [
            {
                "destinations": [{"phone": "+15005550006"}],
                "channels": {"sms": {"text": "Your order has shipped", "validityPeriod": 60}},
                "callbackData": "order-77",
                "groupId": "order-77",
            }
        ]
    },
    ("DELETE", "/api/v1/messages"): {"groupId": "order-77"},
    ("POST", "/api/v1/tasks"): {
        "name": "July newsletter",
        "policy": "send_valid",
        "defaultRegion": "US",
        "settings": {"channels": {"sms": {"validityPeriod": 120}}, "groupId": "july"},
    },
    ("PUT", "/api/v1/tasks/{task_id}"): {"name": "July newsletter (final)"},
    ("POST", "/api/v1/tasks/{task_id}"): {"messages": _ROWS},
    ("POST", "/api/v1/messages/bulk"): {"messages": [_ROWS], "name": "Shipping notices"},
    ("POST", "/api/v1/senders"): {
        "channel": "sms",
        "provider": "twilio",
        "from": "+14155550123",
        "accountSid": _ACCOUNT_SID,
        "authToken": "your-twilio-auth-token",
        "rateLimit": 1,
    },
    ("PATCH", "/api/v1/senders/{sender_id}"): {"rateLimit": 5},
    ("PATCH", "/api/v1/project"): {"defaultTimezone": "Europe/Moscow", "rateLimit": 50},
    ("PUT", "/api/v1/bandwidth/{company_id}"): {"bandwidthList": [{"bandwidth": 50}]},
    ("POST", "/api/v1/templates"): _TEMPLATE,
    ("PUT", "/api/v1/templates/{template_id}"): {
        "channels": {"sms": {"text": "Your code is {{ code }}. It expires in 10 minutes."}}
    },
    ("POST", "/api/v1/templates/{template_id}/preview"): {"variables": {"code": "1234"}},
    ("POST", "/api/v1/templates/preview"): {
        "channels": {
            "sms": {"text": "Hi {{ name }}, your order ships today: https://example.com/o/77"}
        },
        "variables": {"name": "Ann"},
        "useShortLinks": True,
    },
    ("POST", "/api/v1/bots"): {
        "name": "Support",
        "accountSid": _ACCOUNT_SID,
        "authToken": "your-twilio-auth-token",
        "phone": "+14155550199",
        "rules": [
            {"match": "exact", "pattern": "hours", "reply": "We are open 9-17."},
            {"match": "regex", "pattern": "order \\d+", "reply": "Looking it up…"},
        ],
        "defaultReply": "Thanks! A person will answer soon.",
        "helpText": "Acme support. Reply STOP to opt out.",
    },
    ("PUT", "/api/v1/bots/{bot_id}"): _BOT_CHANGE,
    ("PATCH", "/api/v1/bots/{bot_id}"): _BOT_CHANGE,
    ("POST", "/api/v1/bots/{bot_id}"): _BOT_CHANGE,
    ("POST", "/api/v1/bots/{bot_id}/conversations/{conversation_id}/messages"): {
        "text": "We are on it: your order leaves today."
    },
    ("POST", "/api/v1/bots/{bot_id}/webchat/visitors"): {"visitorId": "user-42"},
    ("POST", "/api/v1/suppressions"): {
        "channel": "sms",
        "from": "+14155550199",
        "to": "+14155552671",
    },
    ("POST", "/webhooks/twilio/status/{attempt_id}"): {
        "MessageSid": "SM" + "0123456789abcdef" * 2,
        "MessageStatus": "delivered",
    },
    # A user comes from `herald users create`; these are the fields TWIN's SDK sends.
    ("POST", "/api/v1/auth/login"): {
        "email": "anna@example.com",
        "password": "a long passphrase",
        "ttl": 3600,
        "companyId": None,
        "extra": [],
    },
    ("POST", "/api/v1/auth/refresh"): {"refreshToken": "the refreshToken login gave", "ttl": 3600},
}
