"""imgcore's public surface: the exported names, the dependency rule, and the console script."""

from __future__ import annotations

import json
import subprocess
import sys

import imgcore

EXPECTED_EXPORTS = [
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


def test_exported_members_are_locked() -> None:
    assert imgcore.__all__ == EXPECTED_EXPORTS
    for name in imgcore.__all__:
        assert getattr(imgcore, name) is not None, name


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out))


def test_importing_imgcore_loads_no_aws_sdk() -> None:
    loaded = _modules_after("import imgcore; imgcore.transform; imgcore.canonicalize('w=1')")
    assert "imgcore.pixels" in loaded
    assert not {
        m for m in loaded if m.split(".")[0] in {"boto3", "botocore", "aws_cdk", "s3transfer"}
    }


def test_url_building_does_not_load_libvips() -> None:
    loaded = _modules_after("import imgcore; imgcore.build_url('a', 'b', '0123456789abcdef', w=3)")
    assert "pyvips" not in loaded


def test_console_script_lists_its_commands() -> None:
    out = subprocess.run(["imgcdn", "--help"], check=True, capture_output=True, text=True).stdout
    for command in ("render", "probe", "policy", "url"):
        assert command in out


def test_policy_command_prints_the_policy_json() -> None:
    out = subprocess.run(
        ["imgcdn", "policy", "--compact"], check=True, capture_output=True, text=True
    ).stdout
    assert imgcore.Policy.model_validate_json(out) == imgcore.DEFAULT_POLICY
