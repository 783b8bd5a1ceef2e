"""Every test file belongs to one layer, and the layer lists name only files that exist."""

from __future__ import annotations

from tests.conftest import E2E_FILES, INTEGRATION_FILES, ROOT, layer_of


def test_the_layer_lists_name_existing_test_files_once() -> None:
    tests = ROOT / "tests"
    existing = {p.relative_to(tests).as_posix() for p in tests.glob("*/test_*.py")}
    assert existing >= E2E_FILES, sorted(E2E_FILES - existing)
    assert existing >= INTEGRATION_FILES, sorted(INTEGRATION_FILES - existing)
    assert not E2E_FILES & INTEGRATION_FILES


def test_a_file_in_no_list_is_a_unit_test() -> None:
    assert layer_of("imgcore/test_keys.py") == "unit"
    assert layer_of("precompute/test_e2e.py") == "e2e"
    assert layer_of("infra/test_stack.py") == "integration"
