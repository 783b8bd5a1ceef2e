"""The Lambda assets as built by packages/infra/scripts/build-assets.sh, inspected on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgcdn_infra import assets
from imgcdn_infra.assets import FUNCTIONS, AssetError, BuiltAssets, LambdaFunction

UNZIPPED_LIMIT = 250 * 1024 * 1024
ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}
SOURCE = {
    "precompute": "packages/precompute/src",
    "edge": "packages/edge/src",
    "ops": "packages/ops/src",
}


def _built(assets_dir: Path) -> list[tuple[str, LambdaFunction, Path]]:
    found = [
        (arch, function, assets_dir / arch / function.name)
        for arch in assets.ARCHITECTURES
        for function in FUNCTIONS
        if (assets_dir / arch / f"{function.name}.sha256").is_file()
    ]
    assert found, "no Lambda asset is built; run packages/infra/scripts/build-assets.sh"
    return found


@pytest.fixture(params=[(a, f.name) for a in assets.ARCHITECTURES for f in FUNCTIONS], ids="/".join)
def built(
    request: pytest.FixtureRequest, assets_dir: Path, workspace: Path
) -> tuple[str, LambdaFunction, Path]:
    arch, name = request.param
    for entry in _built(assets_dir):
        if entry[0] == arch and entry[1].name == name:
            stamp = (assets_dir / arch / f"{name}.sha256").read_text("utf-8").strip()
            if stamp != assets._lambda_fingerprint(workspace, entry[1], arch):
                pytest.skip(
                    f"{arch}/{name} is older than its sources, so it proves nothing about them "
                    f"(build-assets.sh --arch {arch} rebuilds it)"
                )
            return entry
    pytest.skip(f"{arch}/{name} is not built here (build-assets.sh --arch {arch} builds it)")


def test_handler_and_imgcore_are_in_the_asset(
    built: tuple[str, LambdaFunction, Path], workspace: Path
) -> None:
    _, function, folder = built
    source_handler = workspace / SOURCE[function.name] / function.handler_module
    if not source_handler.is_file():
        pytest.skip(
            f"{function.handler_module} does not exist in the workspace yet (its package is "
            "being written); the asset can only contain it once it does"
        )
    assert (folder / function.handler_module).is_file()
    for module in (
        "imgcore/__init__.py",
        "imgcore/policy.py",
        "imgcore/keys.py",
        "pyvips/__init__.py",
    ):
        assert (folder / module).is_file(), module
    assert list(folder.glob("_libvips*.so")), "pyvips-binary's libvips binding is missing"


def test_each_bundle_holds_the_shared_adapters_and_not_the_other_lambda(
    built: tuple[str, LambdaFunction, Path],
) -> None:
    _, function, folder = built
    assert (folder / "imgcdn_aws" / "s3.py").is_file()
    others = {
        "edge": ("imgcdn_precompute", "imgcdn_ops"),
        "precompute": ("imgcdn_edge", "imgcdn_ops"),
        "ops": ("imgcdn_precompute", "imgcdn_edge"),
    }[function.name]
    for other in others:
        assert not (folder / other).exists(), f"the {function.name} bundle carries {other}"


def test_no_tests_caches_or_install_bookkeeping(built: tuple[str, LambdaFunction, Path]) -> None:
    _, _, folder = built
    offenders = [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name in {"__pycache__", "conftest.py", "RECORD", "INSTALLER", "direct_url.json"}
        or p.suffix in {".pyc", ".pyo"}
        or (p.is_dir() and p.name in {"tests", "test"} and any(p.rglob("test_*.py")))
    ]
    assert offenders == []
    assert not (folder / "bin").exists()


def test_size_is_within_lambdas_unzipped_limit(built: tuple[str, LambdaFunction, Path]) -> None:
    _, _, folder = built
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert 10 * 1024 * 1024 < size < UNZIPPED_LIMIT


def test_every_native_library_is_built_for_the_target_machine(
    built: tuple[str, LambdaFunction, Path],
) -> None:
    arch, _, folder = built
    machines = {}
    for path in folder.rglob("*.so*"):
        with path.open("rb") as file:
            header = file.read(20)
        if header[:4] == b"\x7fELF":
            machines[str(path.relative_to(folder))] = int.from_bytes(header[18:20], "little")
    assert machines, "no native library found; pydantic-core and libvips should be there"
    assert {name for name, machine in machines.items() if machine != ELF_MACHINE[arch]} == set()
    python_tagged = [name for name in machines if ".cpython-" in name]
    assert all(".cpython-312-" in name for name in python_tagged), python_tagged


def test_the_generated_function_and_policy(assets_dir: Path) -> None:
    from imgcore import DEFAULT_POLICY

    generated = assets_dir / "edge-function"
    assert json.loads((generated / "policy.json").read_text("utf-8")) == json.loads(
        DEFAULT_POLICY.to_json()
    )
    assert json.loads((generated / "layout.json").read_text("utf-8")) == {
        "standard": "img",
        "takedown": "ugc",
    }
    code = (generated / "viewer-request.js").read_text("utf-8")
    assert "function handler(" in code
    assert len(code.encode()) <= 10 * 1024


def test_strip_removes_suites_caches_and_bookkeeping(tmp_path: Path) -> None:
    keep = ["pkg/__init__.py", "pkg/testing.py", "pkg/test/data.json", "pkg-1.0.dist-info/METADATA"]
    drop = [
        "pkg/__pycache__/x.cpython-312.pyc",
        "pkg/tests/test_pkg.py",
        "pkg/tests/conftest.py",
        "pkg/y.pyc",
        "pkg-1.0.dist-info/RECORD",
        "pkg-1.0.dist-info/INSTALLER",
        "bin/pkg",
    ]
    for name in keep + drop:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assets._strip(tmp_path)
    remaining = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert remaining == sorted(keep)


@pytest.mark.parametrize(
    ("tag", "arch", "runs"),
    [
        ("py3-none-any", "arm64", True),
        ("cp312-cp312-manylinux_2_17_aarch64", "arm64", True),
        ("cp39-abi3-manylinux_2_28_x86_64", "x86_64", True),
        ("cp312-cp312-manylinux_2_17_x86_64", "arm64", False),
        ("cp311-cp311-manylinux_2_17_aarch64", "arm64", False),
        ("cp312-cp312-macosx_11_0_arm64", "arm64", False),
    ],
)
def test_wheel_tags_must_run_on_the_lambda(tag: str, arch: str, runs: bool) -> None:
    machine = assets._PLATFORM[arch].split("-")[0]
    assert assets._tag_runs_on(tag, machine) is runs


def test_locate_refuses_what_is_missing_or_stale(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AssetError, match=r"build-assets\.sh"):
        BuiltAssets.locate(tmp_path, "arm64")
    monkeypatch.setattr(assets, "_lambda_fingerprint", lambda *_: "0" * 64)
    with pytest.raises(AssetError, match="older than its sources"):
        BuiltAssets.locate(workspace, "arm64")
