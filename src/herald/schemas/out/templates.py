"""Templates on the wire: TWIN's Template, its versions, and previews."""

from __future__ import annotations

from pydantic import Field

from herald.schemas.out.base import Free, OutModel, Timestamp


class TemplateOut(OutModel):
    """TWIN's Template, with Herald's ``version``, ``currentVersion`` and ``variables``."""

    id: str
    name: str
    channels: dict[str, Free] = Field(description="Channel key (sms, email...) to its content.")
    allowed_time_ranges: list[list[str]]
    created_at: Timestamp
    updated_at: Timestamp | None
    version: int
    current_version: int
    variables: list[str] = Field(description="Every variable the content uses.")


class TemplateList(OutModel):
    count: int
    items: list[TemplateOut]


class VersionOut(OutModel):
    version: int
    current: bool
    created_at: Timestamp
    created_by: str | None = Field(
        description="The e-mail of the user who saved this version; null for an API key."
    )
    variables: list[str]


class VersionList(OutModel):
    count: int
    items: list[VersionOut]


class Preview(OutModel):
    """Each channel rendered; an SMS also says its encoding, length and segments."""

    template_id: str | None
    version: int | None
    variables: list[str]
    channels: dict[str, Free]
