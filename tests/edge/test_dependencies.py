"""Dependency direction (DESIGN: packages): the fallback bundle carries no precompute code.

`imgcdn_edge` may import imgcore, imgcdn_aws, boto3 and structlog; `imgcdn_aws`, the adapters
both Lambdas share, imports neither Lambda's package. Checked on the sources (every import
statement, also those inside functions), so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imgcdn_aws
import imgcdn_edge
import imgcdn_ops
import imgcdn_sim

RULES = {
    "imgcdn_edge": (
        Path(imgcdn_edge.__file__).resolve().parent,
        ("imgcdn_precompute", "imgcdn_ops"),
    ),
    "imgcdn_aws": (
        Path(imgcdn_aws.__file__).resolve().parent,
        ("imgcdn_precompute", "imgcdn_edge", "imgcdn_local", "imgcdn_infra", "imgcdn_ops"),
    ),
    # Operations run after deploy: they use the shared adapters, never a Lambda's package, and
    # nothing of the request path imports them.
    "imgcdn_ops": (
        Path(imgcdn_ops.__file__).resolve().parent,
        ("imgcdn_precompute", "imgcdn_edge", "imgcdn_local", "imgcdn_infra"),
    ),
    # The simulator models CloudFront over imgcore's canonicalizer alone: no AWS, no stack.
    "imgcdn_sim": (
        Path(imgcdn_sim.__file__).resolve().parent,
        (
            "imgcdn_aws",
            "imgcdn_precompute",
            "imgcdn_edge",
            "imgcdn_local",
            "imgcdn_infra",
            "imgcdn_ops",
            "boto3",
            "botocore",
        ),
    ),
}


def imported_modules(source: str, filename: str = "<source>") -> set[str]:
    """Every module an `import` or `from ... import` statement in `source` names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import stays inside the package being scanned.
                continue
            if node.module:
                found.add(node.module)
    return found


def _forbidden(name: str, banned: tuple[str, ...]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in banned)


def test_the_scan_finds_lazy_and_from_imports() -> None:
    source = (
        "import os\n"
        "from imgcdn_precompute.s3 import S3Store\n"
        "def f():\n"
        "    import imgcdn_precompute.emf as emf\n"
    )
    found = imported_modules(source)
    assert {"imgcdn_precompute.s3", "imgcdn_precompute.emf", "os"} <= found
    assert _forbidden("imgcdn_precompute.s3", ("imgcdn_precompute",))
    assert not _forbidden("imgcdn_precompute_like", ("imgcdn_precompute",))


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_imports_nothing_it_must_not(package: str) -> None:
    folder, banned = RULES[package]
    sources = sorted(folder.rglob("*.py"))
    assert sources, f"no sources found for {package} under {folder}"
    offenders = {
        str(path.relative_to(folder)): sorted(
            name
            for name in imported_modules(path.read_text(encoding="utf-8"), str(path))
            if _forbidden(name, banned)
        )
        for path in sources
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_edge_distribution_does_not_depend_on_precompute() -> None:
    import re
    from importlib.metadata import requires

    # A requirement line starts with the distribution name (PEP 508).
    names = {re.split(r"[\s\[;~=<>!]", r, maxsplit=1)[0] for r in requires("imgcdn-edge") or []}
    assert "imgcdn-aws" in names
    assert "imgcdn-precompute" not in names
