"""imgcdn_infra's public API is curated and sorted, and importing it starts no jsii."""

from __future__ import annotations

import imgcdn_infra


def test_exported_members() -> None:
    assert imgcdn_infra.__all__ == sorted(imgcdn_infra.__all__)
    assert set(imgcdn_infra.__all__) == {
        "AssetError",
        "BuiltAssets",
        "ConfigError",
        "InfraConfig",
        "load_config",
    }
    for name in imgcdn_infra.__all__:
        assert getattr(imgcdn_infra, name).__module__.startswith("imgcdn_infra.")


def test_entry_points_register_synth_and_cache_keys() -> None:
    from importlib.metadata import entry_points

    commands = {e.name: e.value for e in entry_points(group="imgcdn.commands")}
    assert commands["synth"] == "imgcdn_infra.cli:configure_synth"
    assert commands["cache-keys"] == "imgcdn_infra.cli:configure_cache_keys"
