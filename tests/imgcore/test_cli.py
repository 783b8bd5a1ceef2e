"""`imgcdn render`: where it writes, and that each option stays one query value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import pyvips

from imgcore.cli import main


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    image = pyvips.Image.black(400, 200, bands=3).linear(1, [200, 60, 20]).cast("uchar")
    path = tmp_path / "photo.jpg"
    path.write_bytes(image.jpegsave_buffer(Q=90))
    return path


def _render(photo: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["render", str(photo), "--w", "160", "--fmt", "webp", "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_a_trailing_slash_means_a_folder_created_on_demand(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "nested"
    result = _render(photo, "-o", f"{out}/", capsys=capsys)
    written = out / "photo.w160-q80.webp"
    assert result["output"] == str(written)
    assert out.is_dir()
    assert pyvips.Image.new_from_buffer(written.read_bytes(), "").width == 160


def test_an_existing_directory_is_a_folder(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "existing").mkdir()
    result = _render(photo, "-o", str(tmp_path / "existing"), capsys=capsys)
    assert result["output"] == str(tmp_path / "existing" / "photo.w160-q80.webp")


def test_any_other_path_is_the_output_file(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _render(photo, "-o", str(tmp_path / "thumb"), capsys=capsys)
    assert result["output"] == str(tmp_path / "thumb")
    assert (tmp_path / "thumb").is_file()
    # No -o: beside the source.
    result = _render(photo, capsys=capsys)
    assert result["output"] == str(photo.parent / "photo.w160-q80.webp")


@pytest.mark.parametrize(
    "case",
    [
        ("--fmt", "webp&q=5", r"fmt 'webp&q=5' is not supported; allowed: avif, webp"),
        ("--w", "320&h=2", r"w must be written with the digits 0-9 only \(got '320&h=2'\)"),
        ("--q", "5%", r"q must be written with the digits 0-9 only \(got '5%'\)"),
    ],
)
def test_each_option_is_one_encoded_value(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, str, str]
) -> None:
    option, value, message = case
    argv = ["render", str(photo), "--fmt", "webp", option, value, "-o", str(tmp_path / "x")]
    assert main(argv) == 2
    assert not (tmp_path / "x").exists()
    err = capsys.readouterr().err
    assert err.startswith("imgcdn render: ")
    assert re.search(message, err), err


def test_a_closed_pipe_ends_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`imgcdn upload ... | head -1`: no 'Broken pipe: None', no traceback, the SIGPIPE status."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes
    with os.fdopen(write_end, "w") as closed:
        monkeypatch.setattr("sys.stdout", closed)
        assert main(["policy"]) == 141
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_policy_keys_prints_the_key_space_of_one_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--keys", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "keys_per_image": 9443,
        "boxes": 497,
        "encodings": 19,
    }
    assert main(["policy", "--keys"]) == 0
    assert capsys.readouterr().out.startswith("one image version has at most 9,443 distinct")
