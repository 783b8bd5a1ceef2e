"""Builds the Lambda code and the generated Function from the workspace, without Docker.

Each Lambda asset is the locked third-party dependencies of its package (`uv export`), installed
as `manylinux_2_28` wheels for the target architecture and Python, plus the workspace packages'
own wheels; tests, caches and install bookkeeping are stripped. The viewer-request Function and
the policy JSON come from the packages' own commands. Everything lands under
`.cache/lambda-assets/`, keyed by a fingerprint of the lock export and the sources, so a second
build with nothing changed does nothing and synth (here, offline) reuses what was built.

The app reads these files; it never imports the packages that produced them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ARCHITECTURES",
    "FUNCTIONS",
    "AssetError",
    "BuiltAssets",
    "LambdaFunction",
    "build_all",
    "build_edge_function",
    "build_lambda",
    "workspace_root",
]

Architecture = Literal["arm64", "x86_64"]
ARCHITECTURES: tuple[Architecture, ...] = ("arm64", "x86_64")
PYTHON_VERSION = "3.12"
"""The Lambda runtime's Python; wheels are chosen for it (cp312 / abi3)."""
BUILD_FORMAT = "imgcdn-lambda-assets/1"
"""Part of every fingerprint: bump it when the build or strip rules change."""

SOURCE_BUILT: frozenset[str] = frozenset({"pyvips"})
"""Requirements allowed to be built from an sdist: pyvips is pure Python (it loads libvips
through cffi's ABI mode from pyvips-binary) and is published as an sdist only. Every other
requirement must come as a wheel, and `_check_wheel_tags` rejects any installed wheel that is
not pure or built for the target platform, so a host build can never slip in."""

_PLATFORM = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
_STRIP_DIRS = frozenset({"__pycache__", "tests", "test"})
_STRIP_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_UNZIPPED_LIMIT = 250 * 1024 * 1024
"""Lambda's limit on a function's unzipped code (with layers)."""
Log = Callable[[str], None]


class AssetError(RuntimeError):
    """An asset is missing, stale or could not be built; the message says what to run."""


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    """One Lambda whose code is built from a workspace package."""

    name: str
    """Folder name under `.cache/lambda-assets/<arch>/`."""
    package: str
    """The workspace package (distribution name) whose lock closure is installed."""
    handler: str
    """The handler, `module.function`, inside the asset."""

    @property
    def handler_module(self) -> str:
        """The handler's module as a path inside the asset."""
        return self.handler.rpartition(".")[0].replace(".", "/") + ".py"


FUNCTIONS: tuple[LambdaFunction, ...] = (
    LambdaFunction("precompute", "imgcdn-precompute", "imgcdn_precompute.handler.handler"),
    LambdaFunction("edge", "imgcdn-edge", "imgcdn_edge.handler.handler"),
    LambdaFunction("ops", "imgcdn-ops", "imgcdn_ops.handler.takedown"),
)


def workspace_root(start: Path | None = None) -> Path:
    """The uv workspace root: the nearest folder up from `start` whose pyproject declares it.

    Raises:
        AssetError: `start` is not inside the imgcdn workspace.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            if "workspace" in data.get("tool", {}).get("uv", {}):
                return folder
    msg = (
        f"{here} is not inside the imgcdn uv workspace (no pyproject.toml with [tool.uv.workspace])"
    )
    raise AssetError(msg)


def _assets_dir(root: Path) -> Path:
    return root / ".cache" / "lambda-assets"


def _run(args: list[str], cwd: Path, *, capture: bool = True) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists of our own tools
            args, cwd=cwd, check=True, text=True, capture_output=capture
        )
    except FileNotFoundError as exc:
        msg = f"{args[0]} is not installed: {exc}"
        raise AssetError(msg) from None
    except subprocess.CalledProcessError as exc:
        msg = f"`{' '.join(args)}` failed with status {exc.returncode}:\n{exc.stderr or ''}"
        raise AssetError(msg) from None
    return done.stdout or ""


def _export(root: Path, package: str, *, workspace: bool) -> str:
    args = ["uv", "export", "--package", package, "--no-hashes", "--frozen", "--no-dev"]
    # Plain requirement lines only: no header, no "# via" notes, and no colour even when a
    # parent (the CDK CLI) forces it, so the same lock always gives the same text.
    args += ["--no-header", "--no-annotate", "--color", "never"]
    if not workspace:
        args.append("--no-emit-workspace")
    return _run(args, root)


def _workspace_members(root: Path, package: str) -> list[Path]:
    members = []
    for line in _export(root, package, workspace=True).splitlines():
        entry = line.strip().removeprefix("-e ").strip()
        if entry.startswith("./packages/"):
            members.append(root / entry)
    return sorted(members)


def _hash_tree(digest: hashlib._Hash, folder: Path, root: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")


def _fingerprint(root: Path, parts: Iterable[str], members: Iterable[Path]) -> str:
    digest = hashlib.sha256(BUILD_FORMAT.encode())
    for part in parts:
        digest.update(part.encode() + b"\0")
    for member in members:
        digest.update((member / "pyproject.toml").read_bytes())
        _hash_tree(digest, member / "src", root)
    return digest.hexdigest()


def _stamp(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _strip(target: Path) -> None:
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _STRIP_DIRS and path.exists():
            is_suite = path.name == "__pycache__" or any(
                p.name == "conftest.py" or p.name.startswith("test_") for p in path.rglob("*.py")
            )
            if is_suite:
                shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in {".pyc", ".pyo"}
            or (path.parent.name.endswith(".dist-info") and path.name in _STRIP_DIST_INFO)
        ):
            path.unlink()
    shutil.rmtree(target / "bin", ignore_errors=True)


def _requirement_names(requirements: str) -> list[str]:
    names = []
    for line in requirements.splitlines():
        spec = line.split(";")[0].split("#")[0].strip()
        if spec and not spec.startswith("-"):
            names.append(re.split(r"[=<>!~\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _check_wheel_tags(target: Path, arch: Architecture) -> None:
    machine = _PLATFORM[arch].split("-")[0]
    for wheel_file in sorted(target.glob("*.dist-info/WHEEL")):
        tags = [
            line.removeprefix("Tag:").strip()
            for line in wheel_file.read_text("utf-8").splitlines()
            if line.startswith("Tag:")
        ]
        if not any(_tag_runs_on(tag, machine) for tag in tags):
            msg = (
                f"{wheel_file.parent.name} was installed as {', '.join(tags)}, which does not "
                f"run on Python {PYTHON_VERSION} {_PLATFORM[arch]}"
            )
            raise AssetError(msg)


def _tag_runs_on(tag: str, machine: str) -> bool:
    python, abi, platform = tag.split("-")
    cpython = f"cp{PYTHON_VERSION.replace('.', '')}"
    ok_python = python.startswith("py3") or python == cpython or abi == "abi3"
    return ok_python and (platform == "any" or ("linux" in platform and platform.endswith(machine)))


def _lambda_fingerprint(root: Path, function: LambdaFunction, arch: Architecture) -> str:
    export = _export(root, function.package, workspace=False)
    members = _workspace_members(root, function.package)
    return _fingerprint(root, [function.name, arch, PYTHON_VERSION, export], members)


def build_lambda(
    root: Path, function: LambdaFunction, arch: Architecture, *, force: bool = False, log: Log
) -> Path:
    """Build one Lambda's code folder, or reuse it when its fingerprint is unchanged.

    Returns:
        The folder (`.cache/lambda-assets/<arch>/<name>/`).

    Raises:
        AssetError: A tool failed, or the result exceeds Lambda's unzipped size limit.
    """
    out = _assets_dir(root) / arch / function.name
    stamp = out.with_name(function.name + ".sha256")
    fingerprint = _lambda_fingerprint(root, function, arch)
    if not force and out.is_dir() and _stamp(stamp) == fingerprint:
        log(f"{arch}/{function.name}: up to date ({_tree_size(out) / 2**20:.1f} MiB)")
        return out
    log(f"{arch}/{function.name}: building {function.package} for {_PLATFORM[arch]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{function.name}-") as tmp:
        work = Path(tmp)
        requirements = work / "requirements.txt"
        requirements.write_text(_export(root, function.package, workspace=False), "utf-8")
        wheels = work / "wheels"
        for member in _workspace_members(root, function.package):
            name = tomllib.loads((member / "pyproject.toml").read_text("utf-8"))["project"]["name"]
            _run(["uv", "build", "--package", name, "--wheel", "--out-dir", str(wheels)], root)
        target = work / "code"
        platform = ["--python-platform", _PLATFORM[arch], "--python-version", PYTHON_VERSION]
        install = ["uv", "pip", "install", "--quiet", "--target", str(target), *platform]
        install += ["--no-deps", "--no-compile", "--link-mode", "copy"]
        no_build = [
            arg
            for name in _requirement_names(requirements.read_text("utf-8"))
            if name not in SOURCE_BUILT
            for arg in ("--only-binary", name)
        ]
        _run([*install, *no_build, "-r", str(requirements)], root)
        _run(
            [*install, "--only-binary", ":all:", *sorted(str(w) for w in wheels.glob("*.whl"))],
            root,
        )
        _check_wheel_tags(target, arch)
        _strip(target)
        size = _tree_size(target)
        if size >= _UNZIPPED_LIMIT:
            msg = f"{arch}/{function.name} is {size / 2**20:.0f} MiB unzipped; Lambda allows 250"
            raise AssetError(msg)
        shutil.rmtree(out, ignore_errors=True)
        target.rename(out)
    stamp.write_text(fingerprint + "\n", encoding="utf-8")
    log(f"{arch}/{function.name}: built ({_tree_size(out) / 2**20:.1f} MiB unzipped)")
    return out


def _edge_function_fingerprint(root: Path) -> str:
    export = _export(root, "imgcdn-edge", workspace=False)
    return _fingerprint(root, ["edge-function", export], _workspace_members(root, "imgcdn-edge"))


def build_edge_function(root: Path, *, force: bool = False, log: Log) -> Path:
    """Generate the viewer-request Function, the policy JSON and the key layout's classes.

    Returns:
        The folder (`.cache/lambda-assets/edge-function/`).
    """
    out = _assets_dir(root) / "edge-function"
    info_path = out / "build-info.json"
    fingerprint = _edge_function_fingerprint(root)
    if not force and info_path.is_file():
        info = json.loads(info_path.read_text("utf-8"))
        if info.get("fingerprint") == fingerprint:
            log("edge-function: up to date")
            return out
    out.mkdir(parents=True, exist_ok=True)
    run = ["uv", "run", "--no-sync", "--frozen"]
    js = out / "viewer-request.js"
    _run([*run, "imgcdn", "edge-function", "--out", str(js)], root)
    (out / "policy.json").write_text(_run([*run, "imgcdn", "policy", "--compact"], root), "utf-8")
    layout = _run(
        [
            *run,
            "python",
            "-c",
            "import json; from imgcore.keys import ContentClass as C; "
            "print(json.dumps({'standard': C.STANDARD.value, 'takedown': C.TAKEDOWN.value}))",
        ],
        root,
    )
    (out / "layout.json").write_text(layout, encoding="utf-8")
    info = {"fingerprint": fingerprint}
    info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log("edge-function: generated")
    return out


def build_all(
    root: Path, arches: Iterable[Architecture], *, force: bool = False, log: Log = print
) -> None:
    """Build the generated Function and every Lambda for every architecture in `arches`."""
    build_edge_function(root, force=force, log=log)
    for arch in arches:
        for function in FUNCTIONS:
            build_lambda(root, function, arch, force=force, log=log)


@dataclass(frozen=True, slots=True)
class BuiltAssets:
    """Paths of the built assets one synth uses, checked to exist and to be current."""

    code: dict[str, Path]
    """Lambda code folder by function name (`precompute`, `edge`)."""
    fingerprints: dict[str, str]
    """Fingerprint by function name: the asset hash, so synth need not re-hash 100 MB."""
    viewer_request_js: Path
    policy: dict[str, object]
    layout: dict[str, str]

    @classmethod
    def locate(cls, root: Path, arch: Architecture, *, check_current: bool = True) -> BuiltAssets:
        """Find the assets built for `arch`.

        Args:
            root: The workspace root.
            arch: The Lambda architecture.
            check_current: Recompute the fingerprints and refuse stale assets (default), so a
                deploy never ships code older than the sources.

        Raises:
            AssetError: Something is missing or stale; the message says which script to run.
        """
        rebuild = f"run packages/infra/scripts/build-assets.sh --arch {arch}"
        base = _assets_dir(root)
        code: dict[str, Path] = {}
        fingerprints: dict[str, str] = {}
        for function in FUNCTIONS:
            folder = base / arch / function.name
            stamp = _stamp(folder.with_name(function.name + ".sha256"))
            if not folder.is_dir() or stamp is None:
                msg = f"the {function.name} Lambda is not built for {arch} ({folder}); {rebuild}"
                raise AssetError(msg)
            if check_current and stamp != (current := _lambda_fingerprint(root, function, arch)):
                msg = (
                    f"the {function.name} Lambda for {arch} is older than its sources (built "
                    f"{stamp[:12]}, sources {current[:12]}); {rebuild}"
                )
                raise AssetError(msg)
            code[function.name] = folder
            fingerprints[function.name] = stamp
        generated = base / "edge-function"
        info_path = generated / "build-info.json"
        if not info_path.is_file():
            msg = f"the viewer-request Function is not generated ({generated}); {rebuild}"
            raise AssetError(msg)
        info = json.loads(info_path.read_text("utf-8"))
        if check_current and info.get("fingerprint") != _edge_function_fingerprint(root):
            msg = f"the viewer-request Function is older than its sources; {rebuild}"
            raise AssetError(msg)
        return cls(
            code=code,
            fingerprints=fingerprints,
            viewer_request_js=generated / "viewer-request.js",
            policy=json.loads((generated / "policy.json").read_text("utf-8")),
            layout=json.loads((generated / "layout.json").read_text("utf-8")),
        )
