"""The base of every response model, and the value types they share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

# Services format timestamps with isoformat(); kept as the strings they are, so the bytes on
# the wire do not change (pydantic would write a UTC offset as "Z").
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
# A figure stored as a float that may also be an int (5 stays 5, never becomes 5.0).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
# Content whose keys are the client's own (channels, destinations, template variables).
Free = dict[str, Any]


class OutModel(BaseModel):
    """A response body: camelCase on the wire, and no key the model does not declare.

    ``extra="forbid"`` makes a field a service adds without declaring it a response
    validation error in the tests, instead of a key silently dropped from the answer or left
    out of the OpenAPI document. ``strict`` keeps values as the service gave them (no 1 turned
    into true, no 5 into 5.0).
    """

    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True
    )


class IdOut(OutModel):
    id: str


class ErrorBody(OutModel):
    """Every 4xx and 5xx answer: a sentence for people, a stable code for programs."""

    error: str
    code: str
    details: Free
