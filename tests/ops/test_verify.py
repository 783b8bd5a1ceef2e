"""`imgcdn verify` and the scheduled drift check: the live distribution against the template.

The deployment is built from the session's synthesized template (tests/ops/deployment.py says
what moto holds and what the narrow substitute serves), then changed one thing at a time.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from tests.ops.deployment import ACCOUNT, REGION, Deployment

from imgcdn_ops import verify, verify_cli
from imgcdn_ops.verify import NOT_SET, Difference, compare, deployed, expected_from_template
from imgcore.cli import main
from imgcore.params import PARAM_NAMES

TAKEDOWN_POLICY = "TakedownCachePolicy"


@pytest.fixture
def live(template: dict[str, Any]) -> Iterator[Deployment]:
    with mock_aws():
        yield Deployment(template)


def _policy(live: Deployment, name: str) -> str:
    return next(k for k in live.logical("AWS::CloudFront::CachePolicy") if name in k)


def _differences(live: Deployment, *, resources: bool = False) -> list[Difference]:
    expected = expected_from_template(live.template, live.physical if resources else None)
    return compare(expected, deployed(live.client, live.distribution_id))


def test_an_unchanged_deployment_has_no_difference(live: Deployment) -> None:
    assert _differences(live) == []
    # With the stack's physical ids, the domain names and OAC ids are compared exactly too.
    assert _differences(live, resources=True) == []


def test_a_cache_policy_min_ttl_is_reported(live: Deployment) -> None:
    live.policy_config(_policy(live, TAKEDOWN_POLICY))["MinTTL"] = 1

    assert _differences(live) == [
        Difference("CacheBehaviors[/ugc/acme/*].CachePolicy.MinTTL", 1, 0),
        Difference("CacheBehaviors[/ugc/*].CachePolicy.MinTTL", 1, 0),
    ]


def test_a_failover_status_code_is_reported(live: Deployment) -> None:
    group = live.config["OriginGroups"]["Items"][0]
    codes = group["FailoverCriteria"]["StatusCodes"]
    codes["Items"] = [c for c in codes["Items"] if c != 403]
    codes["Quantity"] = len(codes["Items"])

    (difference,) = _differences(live)
    assert difference.path == f"OriginGroups[{group['Id']}].FailoverCriteria.StatusCodes"
    assert difference.deployed == [404, 500, 502, 503, 504]
    assert difference.expected == [403, 404, 500, 502, 503, 504]


def test_the_function_code_is_reported(live: Deployment) -> None:
    (function,) = live.logical("AWS::CloudFront::Function")
    code = live.resources[function]["Properties"]["FunctionCode"]
    live.create_function(function, code.replace("cloudfront-js-2.0", "edited in the console"))

    found = _differences(live)
    paths = sorted(d.path for d in found)
    behaviors = ["DefaultCacheBehavior"] + [
        f"CacheBehaviors[{b['PathPattern']}]" for b in live.config["CacheBehaviors"]["Items"]
    ]
    assert paths == sorted(
        f"{b}.FunctionAssociations[viewer-request].Function.FunctionCode" for b in behaviors
    )
    assert all(d.deployed != d.expected for d in found)
    assert all(str(d.expected).startswith("sha256:") for d in found)


def test_an_allowlisted_query_string_is_reported(live: Deployment) -> None:
    policy = _policy(live, "StandardCachePolicy")
    strings = live.policy_config(policy)["ParametersInCacheKeyAndForwardedToOrigin"][
        "QueryStringsConfig"
    ]["QueryStrings"]
    strings["Items"] = [*strings["Items"], "utm_source"]
    strings["Quantity"] += 1

    found = _differences(live)
    assert {d.path for d in found} == {
        "DefaultCacheBehavior.CachePolicy.ParametersInCacheKeyAndForwardedToOrigin"
        ".QueryStringsConfig.QueryStrings",
        "CacheBehaviors[/img/acme/*].CachePolicy.ParametersInCacheKeyAndForwardedToOrigin"
        ".QueryStringsConfig.QueryStrings",
    }
    for difference in found:
        assert difference.deployed == sorted([*PARAM_NAMES, "utm_source"])
        assert difference.expected == sorted(PARAM_NAMES)


def test_query_strings_in_another_order_are_the_same_cache_key(live: Deployment) -> None:
    strings = live.policy_config(_policy(live, "StandardCachePolicy"))[
        "ParametersInCacheKeyAndForwardedToOrigin"
    ]["QueryStringsConfig"]["QueryStrings"]
    strings["Items"] = list(reversed(strings["Items"]))

    assert _differences(live) == []


def test_a_setting_the_code_never_made_is_reported(live: Deployment) -> None:
    # The seed: TTLs and settings nobody wrote in the CDK app, added in the console.
    live.config["DefaultCacheBehavior"]["SmoothStreaming"] = True
    live.config["DefaultRootObject"] = "index.html"

    assert sorted(_differences(live), key=lambda d: d.path) == [
        Difference("DefaultCacheBehavior.SmoothStreaming", True, NOT_SET),
        Difference("DefaultRootObject", "index.html", ""),
    ]


def test_cache_behaviours_are_compared_in_order(live: Deployment) -> None:
    items = live.config["CacheBehaviors"]["Items"]
    items.reverse()
    expected = [b["PathPattern"] for b in reversed(items)]

    assert _differences(live) == [Difference("CacheBehaviors.order", expected[::-1], expected)]


def test_origin_shield_and_key_groups_are_compared(live: Deployment) -> None:
    origin = live.config["Origins"]["Items"][0]
    origin["OriginShield"] = {"Enabled": False}
    (key,) = live.public_keys.values()
    key["PublicKeyConfig"]["Comment"] = "rotated by hand"

    found = {d.path: d for d in _differences(live)}
    shield = found.pop(f"Origins[{origin['Id']}].OriginShield.Enabled")
    assert (shield.deployed, shield.expected) == (False, True)
    assert found.pop(f"Origins[{origin['Id']}].OriginShield.OriginShieldRegion").deployed == NOT_SET
    assert set(found) == {
        f"CacheBehaviors[{p}].TrustedKeyGroups[{g}].Items[{k}].Comment"
        for p in ("/img/acme/*", "/ugc/acme/*")
        for g in [c["KeyGroupConfig"]["Name"] for c in live.key_groups.values()]
        for k in [key["PublicKeyConfig"]["Name"]]
    }


def test_a_web_acl_attached_by_hand_is_reported(live: Deployment) -> None:
    acl = f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/manual/0000"
    live.config["WebACLId"] = acl

    assert _differences(live) == [Difference("WebACLId", acl, "")]


def test_a_template_without_a_distribution_is_refused() -> None:
    with pytest.raises(verify.DriftError, match="exactly one AWS::CloudFront::Distribution"):
        expected_from_template({"Resources": {}})


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def template_file(template: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "Imgcdn.template.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    return path


@pytest.fixture
def command(live: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setattr(verify_cli, "cloudfront_client", lambda region: live.client)
    return live


def _verify(*extra: str, template_file: Path, live: Deployment) -> list[str]:
    return [
        "verify",
        "--distribution-id",
        live.distribution_id,
        "--template",
        str(template_file),
        *extra,
    ]


def test_the_command_passes_in_sync(
    command: Deployment, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_verify(template_file=template_file, live=command)) == 0
    assert (
        capsys.readouterr().out
        == f"distribution {command.distribution_id}: in sync with the code\n"
    )

    assert main(_verify("--json", template_file=template_file, live=command)) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_command_prints_the_drift_and_exits_1(
    command: Deployment, template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command.policy_config(_policy(command, TAKEDOWN_POLICY))["MinTTL"] = 1

    assert main(_verify(template_file=template_file, live=command)) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["PATH", "DEPLOYED", "EXPECTED"]
    assert lines[1].split() == ["CacheBehaviors[/ugc/acme/*].CachePolicy.MinTTL", "1", "0"]
    assert lines[2].split() == ["CacheBehaviors[/ugc/*].CachePolicy.MinTTL", "1", "0"]
    assert err == "imgcdn verify: 2 field(s) drifted from the code\n"

    assert main(_verify("--json", template_file=template_file, live=command)) == 1
    assert json.loads(capsys.readouterr().out) == [
        {"path": "CacheBehaviors[/ugc/acme/*].CachePolicy.MinTTL", "deployed": 1, "expected": 0},
        {"path": "CacheBehaviors[/ugc/*].CachePolicy.MinTTL", "deployed": 1, "expected": 0},
    ]


def test_an_unknown_distribution_is_one_line_and_exit_2(
    template_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws():  # moto itself answers NoSuchDistribution
        status = main(["verify", "--distribution-id", "E0NOSUCH", "--template", str(template_file)])
    assert status == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "imgcdn verify: distribution E0NOSUCH not found in this account; allowed: the "
        "DistributionId output of the imgcdn stack\n"
    )


def test_a_file_that_is_not_a_template_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"version": "48.0.0"}', encoding="utf-8")

    assert main(["verify", "--distribution-id", "E1", "--template", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"imgcdn verify: {path}: not a CloudFormation template (no Resources); allowed: a "
        "cdk.out stack file\n"
    )


# --- the scheduled check ------------------------------------------------------------------------


class _Stack:
    """GetTemplate, ListStackResources (in pages) and DescribeStacks of the deployed stack, on a
    real boto3 client."""

    def __init__(self, live: Deployment) -> None:
        import boto3
        from botocore.awsrequest import AWSResponse
        from botocore.validate import validate_parameters

        self.stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/ImgcdnVerify/1"
        resources = [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": live.physical[logical],
                "ResourceType": resource["Type"],
                "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
                "ResourceStatus": "CREATE_COMPLETE",
            }
            for logical, resource in live.resources.items()
            if logical in live.physical
        ]
        # Pages of 5, the distribution on a later one: a reader of the first page only misses it.
        pages = [resources[i : i + 5] for i in range(0, len(resources), 5)]
        assert len(pages) > 2
        assert all(r["ResourceType"] != "AWS::CloudFront::Distribution" for r in pages[0])
        self.pages_read = 0
        answers = {
            # boto3 returns TemplateBody parsed; the API sends it as text.
            "GetTemplate": {"TemplateBody": json.dumps(live.template), "StagesAvailable": []},
            "DescribeStacks": {
                "Stacks": [
                    {
                        "StackName": "ImgcdnVerify",
                        "StackId": self.stack_id,
                        "CreationTime": "2026-12-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                    }
                ]
            },
        }

        def answer(model: Any, params: Any, **_: Any) -> Any:
            if model.name == "ListStackResources":
                index = self.pages_read % len(pages)  # the pages in order, again for each check
                self.pages_read += 1
                response: dict[str, Any] = {"StackResourceSummaries": pages[index]}
                if index + 1 < len(pages):
                    response["NextToken"] = str(index + 1)
            else:
                response = answers[model.name]
            validate_parameters(response, model.output_shape)
            # botocore decodes TemplateBody in place: hand out a copy each time.
            return AWSResponse(None, 200, {}, None), copy.deepcopy(response)

        self.client = boto3.client("cloudformation", region_name=REGION)
        self.client.meta.events.register("before-call.cloudformation.*", answer)


def test_the_stack_check_reads_its_own_template_and_ids(live: Deployment) -> None:
    stack = _Stack(live)
    assert verify.check_stack(stack.client, live.client, "ImgcdnVerify") == []
    assert stack.pages_read > 2  # every page, not the first only

    live.config["Origins"]["Items"][0]["DomainName"] = "someone-elses.s3.us-east-1.amazonaws.com"
    (difference,) = verify.check_stack(stack.client, live.client, "ImgcdnVerify")
    assert difference.path.endswith("].DomainName")
    assert difference.deployed == "someone-elses.s3.us-east-1.amazonaws.com"


def test_the_handler_writes_drifted_fields(
    live: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _Stack(live)
    clients = {"cloudformation": stack.client, "cloudfront": live.client}
    monkeypatch.setattr(verify.boto3, "client", lambda name, **_: clients[name])
    monkeypatch.setenv(verify.STACK_NAME_ENV, "ImgcdnVerify")
    live.policy_config(_policy(live, TAKEDOWN_POLICY))["MinTTL"] = 5

    result = verify.handler({"source": "aws.events"}, None)

    assert result == {"stack": "ImgcdnVerify", "drifted_fields": 2}
    lines = [json.loads(line) for line in io.StringIO(capsys.readouterr().out)]
    metric = next(line for line in lines if "_aws" in line)
    assert metric[verify.METRIC] == 2
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "DriftedFields", "Unit": "Count"}
    ]
    drift = [line for line in lines if line.get("event") == "drift"]
    assert {line["path"] for line in drift} == {
        "CacheBehaviors[/ugc/acme/*].CachePolicy.MinTTL",
        "CacheBehaviors[/ugc/*].CachePolicy.MinTTL",
    }
