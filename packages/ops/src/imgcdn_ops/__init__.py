"""imgcdn after deploy: takedown and erasure with an audit record, drift checks and probes."""

from __future__ import annotations

__all__: list[str] = []
