"""The API's wire types (pydantic), defined once; the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

__all__ = ["PublicNoticeOut", "PublicWindowOut", "SourceAnswerOut"]


class PublicWindowOut(BaseModel):
    """An announced window (UTC) and the timezone it was announced in."""

    model_config = ConfigDict(from_attributes=True)
    start: datetime
    end: datetime
    timezone: str


class PublicNoticeOut(BaseModel):
    """The public part of a notice."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    object_id: str
    object_name: str
    organ: str | None
    announced_at: datetime
    probing_from: datetime
    windows: list[PublicWindowOut]
    sources: list[str]
    contact_name: str
    contact_email: str | None
    scope_sha256: str


class SourceAnswerOut(BaseModel):
    """Whether traffic from an address at an instant belongs to an announced inspection."""

    source: str
    at: datetime
    announced: bool
    why: str
    runs_active: int
    notices: list[PublicNoticeOut]
