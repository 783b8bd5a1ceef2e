"""The CI tier of the hostile-input corpus: every crafted file through every stage.

Each file must come out as its class's row of `EXPECTATIONS` says: a decoded image, or the typed
imgcore error with its status (R13, R16). The whole corpus, large files and installed wheels'
images included, with peak RSS and time per file: `scripts/hostile-corpus.sh`.
"""

from __future__ import annotations

import logging

import pytest
import structlog
from tests.hostile.corpus import EXPECTATIONS, STAGES, Case, Stage, cases, run_stage

CI_CASES = [case for case in cases() if case.tier == "ci"]


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    # The services log each refusal as a warning; the outcome is what these tests check.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def test_every_case_has_an_expectation_and_every_row_is_used() -> None:
    classes = {case.file_class for case in cases()}
    assert classes <= set(EXPECTATIONS)
    assert set(EXPECTATIONS) - classes == {"installed"}  # the wheels' images, full tier only


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("case", CI_CASES, ids=lambda case: case.name)
def test_a_hostile_file_gets_its_documented_outcome(case: Case, stage: Stage) -> None:
    expected = EXPECTATIONS[case.file_class]
    result = run_stage(stage, case.name, case.build())

    assert result.outcome in expected.allowed(stage), result
    if stage == "fallback":
        assert result.status == (200 if result.outcome == "ok" else expected.status), result
    if result.outcome == "ok" and stage in ("transform", "fallback"):
        # Decoded from the output: a real image came out, in the requested format.
        assert result.detail.startswith("heifload"), result
