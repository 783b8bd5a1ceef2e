"""scripts/coverage.py: branch coverage is summed per package and held to each floor."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_floors", ROOT / "scripts/coverage.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _file(lines: int, covered: int, branches: int, covered_branches: int) -> dict[str, object]:
    return {
        "summary": {
            "num_statements": lines,
            "covered_lines": covered,
            "num_branches": branches,
            "covered_branches": covered_branches,
        }
    }


REPORT = {
    "files": {
        "packages/core/src/imgcore/keys.py": _file(80, 80, 20, 10),
        "packages/core/src/imgcore/urls.py": _file(20, 10, 0, 0),
        "packages/sim/src/imgcdn_sim/economics.py": _file(10, 10, 0, 0),
        "tests/imgcore/test_keys.py": _file(50, 0, 0, 0),
    }
}


def test_statements_and_branches_are_summed_per_package() -> None:
    measured = _script().per_package(REPORT)
    assert measured == {"imgcdn_sim": 100.0, "imgcore": pytest.approx(100 * 100 / 120)}


def test_a_package_under_its_floor_or_without_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    report = tmp_path / "coverage.json"
    report.write_text(json.dumps(REPORT))
    monkeypatch.setattr(script, "floors", lambda: {"imgcore": 80.0, "imgcdn_sim": 99.0})
    assert script.main([str(report)]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(script, "floors", lambda: {"imgcore": 85.0, "imgcdn_sim": 99.0})
    assert script.main([str(report)]) == 1
    assert "imgcore is at 83.3%, under its floor of 85%" in capsys.readouterr().err
    monkeypatch.setattr(script, "floors", lambda: {"imgcore": 80.0})
    assert script.main([str(report)]) == 1
    assert "imgcdn_sim has no floor" in capsys.readouterr().err


def test_every_package_has_a_floor() -> None:
    packages = {p.name for p in ROOT.glob("packages/*/src/*") if (p / "__init__.py").is_file()}
    assert set(_script().floors()) == packages
