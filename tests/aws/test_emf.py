"""The EMF helper writes documents CloudWatch accepts: one directive, declared metrics present."""

from __future__ import annotations

import io
import json
import time

import pytest

from imgcdn_aws.emf import Metrics, Unit


def test_a_line_is_a_valid_emf_document() -> None:
    out = io.StringIO()
    Metrics(out, defaults={"service": "precompute"}).emit(
        {"Renders": (1, Unit.COUNT), "BytesWritten": (2048, Unit.BYTES)},
        dimensions={"tenant": "acme"},
        properties={"key": "img/acme/x.jpg"},
    )
    (line,) = out.getvalue().splitlines()
    document = json.loads(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "imgcdn",
        "Dimensions": [["tenant"]],
        "Metrics": [
            {"Name": "Renders", "Unit": "Count"},
            {"Name": "BytesWritten", "Unit": "Bytes"},
        ],
    }
    # Every declared metric and dimension is a top-level member, as the spec requires.
    assert (document["Renders"], document["BytesWritten"], document["tenant"]) == (1, 2048, "acme")
    assert document["key"] == "img/acme/x.jpg"
    assert document["service"] == "precompute"
    assert abs(document["_aws"]["Timestamp"] / 1000 - time.time()) < 60


def test_no_dimension_is_an_empty_dimension_set() -> None:
    document = Metrics(io.StringIO()).line({"PoisonedMessages": (1, Unit.COUNT)})
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]


@pytest.mark.parametrize("count", [0, 101])
def test_a_line_carries_1_to_100_metrics(count: int) -> None:
    values = {f"M{i}": (1.0, Unit.COUNT) for i in range(count)}
    with pytest.raises(ValueError, match="1-100"):
        Metrics(io.StringIO()).line(values)
