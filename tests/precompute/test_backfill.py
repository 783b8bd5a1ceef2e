"""`imgcdn backfill`: a catalogue on disk or in S3, worker processes, resume after interruption."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from imgcdn_precompute import backfill as backfill_module
from imgcdn_precompute.backfill import Backfill
from imgcore.cli import build_parser, main
from imgcore.keys import content_version, parse_source_key
from imgcore.manifest import Manifest
from imgcore.policy import Policy
from imgcore.storage import LocalStore, StorageFault

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalogue(tmp_path: Path, photo_factory: Any) -> dict[str, bytes]:
    """A folder of originals as a tenant might have it, with one broken file and one stray."""
    originals = {
        "img/acme/shoes/red shoe+1.jpg": photo_factory(1, (800, 600)),
        "img/acme/shoes/blue.jpg": photo_factory(2, (800, 600)),
        "ugc/acme/u/caf\u00e9.png": photo_factory(3, (400, 300), "PNG"),
        "img/globex/logo.jpg": photo_factory(4, (800, 600)),
        "img/acme/broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
        "stray/README.txt": b"not an original",
    }
    for key, data in originals.items():
        path = tmp_path.joinpath("catalogue", *key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return originals


@pytest.fixture
def policy_file(tmp_path: Path, policy: Policy) -> str:
    path = tmp_path / "policy.json"
    path.write_text(policy.to_json())
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    status = main(["backfill", *args, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out)


def test_backfill_is_an_imgcdn_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["backfill", "--originals", "a", "--derivatives", "b"])
    assert args.command == "backfill"
    assert args.workers == (os.cpu_count() or 1)


def test_a_folder_catalogue_with_worker_processes_then_a_rerun_that_skips_it_all(
    tmp_path: Path, catalogue: dict[str, bytes], policy_file: str, policy: Policy, capsys: Any
) -> None:
    args = [
        "--originals",
        str(tmp_path / "catalogue"),
        "--derivatives",
        str(tmp_path / "derived"),
        "--workers",
        "2",
        "--policy",
        policy_file,
    ]
    status, summary = run_cli(capsys, *args)

    assert status == 1  # one original failed and one key was rejected: not all rendered
    assert summary["total"] == 6
    assert (summary["rendered"], summary["failed"], summary["rejected"]) == (4, 1, 1)
    assert (summary["errors"], summary["skipped"], summary["interrupted"]) == (0, 0, False)
    problems = {p["key"]: p["action"] for p in summary["problems"]}
    assert problems == {"img/acme/broken.jpg": "failed", "stray/README.txt": "rejected"}
    derived = LocalStore(tmp_path / "derived")
    for key, data in catalogue.items():
        if key.startswith(("img/", "ugc/")):
            image = parse_source_key(key)
            manifest = Manifest.model_validate_json(
                derived.get(image.manifest_key(content_version(data))).data
            )
            assert manifest.status == ("failed" if "broken" in key else "complete")
            for record in manifest.variants:
                decoded = Image.open(io.BytesIO(derived.get(record.key).data))
                assert decoded.size == (record.width, record.height)
                assert len(manifest.variants) == len(policy.standard.widths) * 3

    status, again = run_cli(capsys, *args)

    assert status == 1  # the stray key is still rejected
    assert (again["rendered"], again["skipped"], again["rejected"]) == (0, 5, 1)


def test_one_tenant_only(
    tmp_path: Path, catalogue: dict[str, bytes], policy_file: str, capsys: Any
) -> None:
    status, summary = run_cli(
        capsys,
        "--originals",
        str(tmp_path / "catalogue"),
        "--derivatives",
        str(tmp_path / "derived"),
        "--tenant",
        "acme",
        "--workers",
        "0",
        "--policy",
        policy_file,
    )
    assert status == 1  # acme/broken.jpg failed
    assert summary["total"] == 4  # img/acme (3) and ugc/acme (1); not globex, not the stray
    keys = {i.key.split("/")[1] for i in LocalStore(tmp_path / "derived").list()}
    assert keys == {"acme"}


def test_an_interrupted_run_resumes_without_duplicating_anything(
    tmp_path: Path,
    catalogue: dict[str, bytes],
    policy: Policy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = Backfill(str(tmp_path / "catalogue"), str(tmp_path / "derived"), None, policy.to_json())
    # In key order: broken.jpg (a failed manifest), shoes/blue.jpg (6 variants + manifest),
    # then Ctrl-C in the middle of shoes/red shoe+1.jpg's derivative writes.
    puts = {"n": 0}
    real_put = LocalStore.put

    def put(self: LocalStore, key: str, data: bytes, **kwargs: Any) -> bool:
        if not key.endswith("manifest.json"):
            puts["n"] += 1
            if puts["n"] == 6 + 3:
                raise KeyboardInterrupt
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(LocalStore, "put", put)
    first = job.run(workers=0)
    monkeypatch.setattr(LocalStore, "put", real_put)

    assert first.interrupted
    assert (first.rendered, first.failed) == (1, 1)
    derived = LocalStore(tmp_path / "derived")
    half = parse_source_key("img/acme/shoes/red shoe+1.jpg").prefix
    assert [i.key for i in derived.list(half) if i.key.endswith("manifest.json")] == []
    assert len(list(derived.list(half))) >= 2  # derivatives without a manifest: not "done"

    second = job.run(workers=0)

    assert not second.interrupted
    assert second.skipped == 2  # nothing done twice
    assert second.rendered == 3
    manifests = [i.key for i in derived.list() if i.key.endswith("manifest.json")]
    assert len(manifests) == 5 == len(set(manifests))
    assert not list((tmp_path / "derived").rglob(".tmp-*"))


def test_a_task_that_raises_is_an_error_and_the_run_goes_on(
    tmp_path: Path, catalogue: dict[str, bytes], policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = Backfill(str(tmp_path / "catalogue"), str(tmp_path / "derived"), None, policy.to_json())
    real = backfill_module.PrecomputeService.created
    msg = "S3 imgcdn-derivatives: SlowDown"

    def created(self: Any, key: str, **kwargs: Any) -> Any:
        if key == "img/acme/shoes/blue.jpg":
            raise StorageFault(msg)
        return real(self, key, **kwargs)

    monkeypatch.setattr(backfill_module.PrecomputeService, "created", created)
    summary = job.run(workers=0)
    assert (summary.errors, summary.rendered, summary.failed, summary.rejected) == (1, 3, 1, 1)
    assert {
        "key": "img/acme/shoes/blue.jpg",
        "action": "error",
        "reason": f"StorageFault: {msg}",
    } in summary.problems


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--originals", "s3://bucket/prefix"], "whole bucket"),
        (["--workers", "-1"], "--workers"),
        (["--tenant", "Not A Tenant"], "tenant"),
        (["--s3-endpoint", "localhost:9000"], "--s3-endpoint"),
        (["--originals", "/nonexistent/imgcdn"], "no such directory"),
    ],
)
def test_bad_arguments_say_what_is_allowed(
    tmp_path: Path, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "o").mkdir()
    base = ["--originals", str(tmp_path / "o"), "--derivatives", str(tmp_path / "d")]
    assert main(["backfill", *base, "--workers", "0", *args]) == 2  # the last flag wins
    assert says in capsys.readouterr().err


def test_derivatives_never_go_into_a_folder_that_is_not_a_store(
    tmp_path: Path, catalogue: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "backfill",
            "--originals",
            str(tmp_path / "catalogue"),
            "--derivatives",
            str(tmp_path / "catalogue"),
            "--workers",
            "0",
        ]
    )
    assert status == 2
    assert "not an imgcdn store" in capsys.readouterr().err


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_an_s3_catalogue_with_worker_processes(
    endpoint: str, catalogue: dict[str, bytes], policy_file: str, capsys: Any
) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="bf-originals")
    s3.create_bucket(Bucket="bf-derivatives")
    for key, data in catalogue.items():
        s3.put_object(Bucket="bf-originals", Key=key, Body=data)
    args = [
        "--originals",
        "s3://bf-originals",
        "--derivatives",
        "s3://bf-derivatives",
        "--s3-endpoint",
        endpoint,
        "--workers",
        "2",
        "--policy",
        policy_file,
    ]
    status, summary = run_cli(capsys, *args)
    assert status == 1  # one failed, one rejected
    assert (summary["rendered"], summary["failed"], summary["rejected"]) == (4, 1, 1)
    listed = s3.list_objects_v2(Bucket="bf-derivatives")["Contents"]
    assert len([o for o in listed if o["Key"].endswith("manifest.json")]) == 5
    assert len(listed) == 5 + 4 * 6
    status, again = run_cli(capsys, *args)
    assert (again["rendered"], again["skipped"]) == (0, 5)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path: Path, photo_factory: Any) -> None:
    catalogue = tmp_path / "catalogue"
    for index in range(8):
        path = catalogue / "img" / "acme" / f"photo-{index:02}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo_factory(100 + index))
    derived = tmp_path / "derived"
    argv = [
        sys.executable,
        "-m",
        "imgcore.cli",
        "backfill",
        "--originals",
        str(catalogue),
        "--derivatives",
        str(derived),
        "--workers",
        "2",
        "--json",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if derived.exists() and any(
            derived.rglob("manifest.json%")
        ):  # LocalStore: file = key + "%"
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    first = json.loads(out)
    assert first["interrupted"]
    assert 1 <= first["rendered"] < 8

    rerun = subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    second = json.loads(rerun.stdout)
    assert second["skipped"] == first["rendered"]
    assert second["rendered"] == 8 - first["rendered"]
    manifests = list(derived.rglob("manifest.json%"))
    assert len(manifests) == 8
