"""The manifest beside each version's derivatives: what precompute made, for edge and stack."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imgcore.keys import ContentClass, ImageRef
from imgcore.policy import InputFormat, OutputFormat

__all__ = ["Manifest", "Placeholder", "VariantRecord"]

_Frozen = ConfigDict(frozen=True, extra="forbid")


class VariantRecord(BaseModel):
    """One stored derivative."""

    model_config = _Frozen

    key: str
    variant: str
    fmt: OutputFormat
    width: int
    height: int
    bytes: int


class Placeholder(BaseModel):
    """What a page shows before the image arrives."""

    model_config = _Frozen

    color: str = Field(pattern=r"^#[0-9a-f]{6}$")
    """The dominant colour, `#rrggbb`."""
    lqip: str = Field(pattern=r"^data:image/[a-z]+;base64,[A-Za-z0-9+/=]*$")
    """A tiny blurred preview as a `data:` URI (a few hundred bytes)."""


class Manifest(BaseModel):
    """The record of one version of one image: its source, its variants, its status.

    `status` is `complete` when every standard variant is stored, `failed` when the original can
    never be rendered (a permanent failure: `failure` says why and what is allowed).
    """

    model_config = _Frozen

    schema_version: Literal[1] = 1
    tenant: str
    image_id: str
    content_class: ContentClass
    version: str
    status: Literal["complete", "failed"]
    failure: str | None = None
    source_key: str
    source_version_id: str | None = None
    """The original's S3 version id, so the fallback can read exactly this version (R7)."""
    source_bytes: int
    source_format: InputFormat | None = None
    source_width: int | None = None
    """Displayed width (EXIF orientation applied)."""
    source_height: int | None = None
    variants: tuple[VariantRecord, ...] = ()
    placeholder: Placeholder | None = None
    created_at: datetime

    @property
    def image(self) -> ImageRef:
        """The image this manifest describes."""
        return ImageRef(self.tenant, self.image_id, self.content_class)

    def to_json(self) -> bytes:
        """The manifest as stored (UTF-8 JSON)."""
        return self.model_dump_json(indent=1).encode("utf-8")
