"""A fake Twilio Messages API: a real HTTP server on loopback, speaking Twilio's wire format.

Herald's end-to-end tests and benchmarks point the Twilio adapter's base URL at it. It follows
`shared/reference/twilio.md`: form-encoded creates with HTTP Basic auth, Twilio's error bodies
(never `type`/`title`, which would switch twilio-python to its RFC 9457 exception), the test
credentials' magic numbers, list paging (newest `DateSent` first, the `DateSent` filters on
the date sent), and signed status callbacks.

In-process use::

    with FakeTwilio() as fake:
        ...  # point Herald at fake.base_url, then inspect fake.requests / fake.callbacks_sent

Standalone (benchmarks)::

    python -m tests.fakes.twilio --port 0 --accounts AC...:token   # prints "READY http://..."

The package: `wire` (Twilio's formats: signatures, segments, validation, error bodies),
`state` (records, knobs, stored messages), `callbacks` (the status-callback sender),
`app` (the HTTP routes: `FakeTwilio`), `__main__` (the standalone CLI).
"""

from tests.fakes.twilio.app import FakeTwilio
from tests.fakes.twilio.state import OUTCOMES, CallbackRecord, CreateRecord, InboundResult
from tests.fakes.twilio.wire import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    num_segments,
    twilio_signature,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "OUTCOMES",
    "CallbackRecord",
    "CreateRecord",
    "FakeTwilio",
    "InboundResult",
    "num_segments",
    "twilio_signature",
]
