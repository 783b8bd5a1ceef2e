"""`imgcdn synth`, the pinned CDK CLI's `cdk synth`, and what the app may import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imgcdn_infra.node import bundled_node, bundled_npm
from imgcore.cli import main

CLI_TIMEOUT = 240


def test_synth_writes_the_templates_without_the_cdk_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], synths: Any
) -> None:
    out = tmp_path / "assembly"
    assert main(["synth", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stacks"] == ["Imgcdn"]
    template = json.loads((out / "Imgcdn.template.json").read_text("utf-8"))
    assert _comparable(template) == _comparable(synths.default.templates["Imgcdn"])


def test_synth_names_the_bad_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["synth", "--out", str(tmp_path), "-c", "imgcdn:precompute.batch_size=50"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "imgcdn.precompute.batch_size" in err
    assert "less than or equal to 10" in err
    assert not list(tmp_path.iterdir())


def _comparable(template: dict[str, Any]) -> dict[str, Any]:
    resources = json.loads(json.dumps(template["Resources"]))
    for resource in resources.values():
        resource.pop("Metadata", None)
        code = resource.get("Properties", {}).get("Code", {})
        if isinstance(code, dict) and "S3Key" in code:
            code["S3Key"] = "<asset>"
    return dict(resources)


def _isolated_network() -> list[str]:
    """`unshare --net` where allowed: the CLI then has only a loopback interface, and it is down."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, check=False)
    return [unshare, "--net"] if probe.returncode == 0 else []


@pytest.mark.slow
def test_pinned_cdk_cli_synthesizes_the_app_offline(
    tmp_path: Path, workspace: Path, synths: Any
) -> None:
    infra = workspace / "packages" / "infra"
    if not (infra / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the CDK CLI is not installed; run packages/infra/scripts/build-assets.sh")
    npx = bundled_npm("npx")
    node = bundled_node()
    assert npx is not None
    assert node is not None
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{node.parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),  # no ~/.cdk, ~/.aws or ~/.npmrc of whoever runs the tests
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # The CLI asks STS for the default account: send it to a closed loopback port.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "NPM_CONFIG_OFFLINE": "true",
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
    }
    out = tmp_path / "cdk.out"
    command = [
        *_isolated_network(),
        *npx,
        "--offline",
        "cdk",
        "synth",
        "--no-notices",
        "--no-version-reporting",
        "--quiet",
        "--output",
        str(out),
    ]
    done = subprocess.run(
        command,
        cwd=infra,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    template = json.loads((out / "Imgcdn.template.json").read_text("utf-8"))
    # The documented deploy path and `imgcdn synth` produce the same resources (the CLI adds
    # construct-path metadata; asset hashes move whenever a workspace package is rebuilt).
    assert _comparable(template) == _comparable(synths.default.templates["Imgcdn"])
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["artifacts"]["Imgcdn"]["type"] == "aws:cloudformation:stack"


@pytest.mark.parametrize(
    ("module", "banned"),
    [
        # `imgcdn` loads the entry points of every command: they must not boot jsii.
        ("imgcdn_infra.cli", ("aws_cdk", "jsii", "imgcore", "imgcdn_precompute", "imgcdn_edge")),
        # The app reads built files; it never imports the packages that produced them.
        ("imgcdn_infra.app", ("imgcore", "imgcdn_precompute", "imgcdn_edge", "boto3")),
    ],
)
def test_import_hygiene(module: str, banned: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(banned)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
