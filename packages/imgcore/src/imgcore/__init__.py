"""imgcore: the imgcdn contract (policy, canonical params, key layout) and the pixels.

The pixel functions (`probe`, `transform`, `render_variants`) load libvips on first use, so a
service that only builds URLs never pays for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from imgcore.errors import (
    CorruptInput,
    ImgcoreError,
    InputRejected,
    InputTooLarge,
    InvalidKey,
    InvalidRequest,
    UnsupportedInput,
)
from imgcore.keys import (
    ContentClass,
    DerivativeKey,
    ImageRef,
    content_version,
    derivative_key,
    parse_derivative_key,
    parse_derivative_uri,
    parse_public_path,
    parse_source_key,
    source_key,
)
from imgcore.params import TransformParams, canonicalize, resolve_format
from imgcore.policy import DEFAULT_POLICY, InputFormat, OutputFormat, Policy
from imgcore.responses import cache_control, derivative_headers
from imgcore.signing import Keyring, SignatureRejected, SigningKey, sign_url, verify_signed_url
from imgcore.urls import build_url, srcset, srcset_entries
from imgcore.viewer import rewrite

if TYPE_CHECKING:
    from imgcore.pixels import (
        Rendered,
        SourceInfo,
        probe,
        render_variants,
        standard_params,
        transform,
    )

__all__ = [
    "DEFAULT_POLICY",
    "ContentClass",
    "CorruptInput",
    "DerivativeKey",
    "ImageRef",
    "ImgcoreError",
    "InputFormat",
    "InputRejected",
    "InputTooLarge",
    "InvalidKey",
    "InvalidRequest",
    "Keyring",
    "OutputFormat",
    "Policy",
    "Rendered",
    "SignatureRejected",
    "SigningKey",
    "SourceInfo",
    "TransformParams",
    "UnsupportedInput",
    "build_url",
    "cache_control",
    "canonicalize",
    "content_version",
    "derivative_headers",
    "derivative_key",
    "parse_derivative_key",
    "parse_derivative_uri",
    "parse_public_path",
    "parse_source_key",
    "placeholder",
    "probe",
    "render_variants",
    "resolve_format",
    "rewrite",
    "sign_url",
    "source_key",
    "srcset",
    "srcset_entries",
    "standard_params",
    "transform",
    "verify_signed_url",
]

_PIXELS = frozenset(
    {
        "Rendered",
        "SourceInfo",
        "placeholder",
        "probe",
        "render_variants",
        "standard_params",
        "transform",
    }
)


def __getattr__(name: str) -> Any:
    if name in _PIXELS:
        return getattr(import_module("imgcore.pixels"), name)
    msg = f"module 'imgcore' has no attribute {name!r}"
    raise AttributeError(msg)
