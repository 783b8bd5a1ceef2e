"""cdk-nag's AwsSolutions pack and cfn-lint over every synthesized template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint_file

IGNORED_LINT_CHECKS = {
    # CDK writes an explicit DependsOn beside the GetAtt that already implies it (Lambda -> role,
    # notifications -> queue); the duplicate is harmless and not ours to remove.
    "W3005": "obsolete DependsOn emitted by CDK",
}


def _acknowledgements(app: Any) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                # CDK stores ids without a known prefix as annotation ids; cdk-nag strips it too.
                found.setdefault(construct.node.path, {}).update(
                    {re.sub(r"(?i)^annotation::", "", k): v for k, v in entry.data.items()}
                )
    return found


@pytest.mark.parametrize("name", ["default", "full"])
def test_aws_solutions_pack_has_no_unacknowledged_finding(synths: Any, name: str) -> None:
    app = getattr(synths, name).app
    report = AwsSolutionsChecks(app).validate_scope(app)
    findings = [
        f"{violation.rule_name} @ {resource.construct_path}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]
    assert findings == []
    assert report.success


@pytest.mark.parametrize("name", ["default", "full"])
def test_every_acknowledgement_carries_its_reason(synths: Any, name: str) -> None:
    acknowledged = _acknowledgements(getattr(synths, name).app)
    rules = {rule for rules in acknowledged.values() for rule in rules}
    # The expected, deliberate ones are there (and only AwsSolutions rules are acknowledged).
    assert {"AwsSolutions-L1", "AwsSolutions-CFR1"} <= {r.split("[")[0] for r in rules}
    for path, entries in acknowledged.items():
        for rule, reason in entries.items():
            assert rule.startswith("AwsSolutions-"), (path, rule)
            assert len(reason.split()) >= 8, (path, rule, reason)


def test_optional_features_remove_their_acknowledgements(synths: Any) -> None:
    default = {r for rs in _acknowledgements(synths.default.app).values() for r in rs}
    full = {r for rs in _acknowledgements(synths.full.app).values() for r in rs}
    assert {"AwsSolutions-CFR2", "AwsSolutions-CFR4"} <= default
    assert not {"AwsSolutions-CFR2", "AwsSolutions-CFR4"} & full


# The Region of each helper stack of the full synth (CloudFront's, the replica's); the rest are
# linted for eu-west-1.
_STACK_REGIONS = {"-Waf": "us-east-1", "-EdgeAlarms": "us-east-1", "-Replica": "eu-central-1"}


def _templates(synths: Any) -> list[tuple[Path, str]]:
    found = []
    for synth in synths.each():
        for path in sorted(synth.outdir.glob("*.template.json")):
            stack = path.name.removesuffix(".template.json")
            region = next(
                (r for suffix, r in _STACK_REGIONS.items() if stack.endswith(suffix)), "eu-west-1"
            )
            found.append((path, region))
    return found


def test_cfn_lint_passes_on_every_template(synths: Any) -> None:
    templates = _templates(synths)
    # default; full, and its us-east-1 WAF and CloudFront-alarm stacks and its replica stack.
    assert len(templates) == 5
    problems = []
    for path, region in templates:
        config = ManualArgs(regions=[region], ignore_checks=sorted(IGNORED_LINT_CHECKS))
        problems += [f"{path.name}: {match}" for match in lint_file(path, config=config)]
    assert problems == []
