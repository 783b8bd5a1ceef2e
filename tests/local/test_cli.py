"""The `imgcdn` command line walked with a user's mistakes: one line each, no traceback.

Also: every option of every subcommand is described in `--help`, `--version` answers, and
`render -o x.png` writes PNG bytes (or refuses a `--fmt` that disagrees).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imgcore.cli import build_parser, main

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there on a test machine


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli")
    photo = folder / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo, "JPEG")
    text = folder / "notes.jpg"
    text.write_text("not an image")
    return {"photo": str(photo), "text": str(text), "dir": str(folder)}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `imgcdn argv` in this process; any exception escaping it fails the test."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's usage errors; `SystemExit("message")` is status 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)  # noqa: T201 - as the interpreter would print it
            return 1, capsys.readouterr().err
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


MISTAKES = [
    ["dev", "--port", "99999"],
    ["dev", "--port", "-1"],
    ["dev", "--port", "eighty"],
    ["dev", "--render-workers", "0"],
    ["dev", "--s3-endpoint", "localhost:5000"],
    ["upload", "{dir}/missing.jpg", "--tenant", "demo"],
    ["upload", "{photo}", "--tenant", "Not A Tenant", "--url", CLOSED],
    ["upload", "{photo}", "--tenant", "demo", "--url", CLOSED],
    ["upload", "{photo}", "{photo}", "--tenant", "demo", "--id", "one"],
    ["render", "{dir}/missing.jpg", "--w", "320"],
    ["render", "{text}", "--w", "320", "-o", "{dir}/"],
    ["render", "{photo}", "--w", "wide", "-o", "{dir}/"],
    ["render", "{photo}", "--fmt", "gif", "-o", "{dir}/"],
    ["render", "{photo}", "--fmt", "webp", "-o", "{dir}/out.png"],
    ["probe", "{dir}/missing.jpg"],
    ["probe", "{text}"],
    ["url", "demo", "x.jpg", "not-a-version"],
    ["url", "Bad Tenant", "x.jpg", "0123456789abcdef"],
    ["url", "demo", "x.jpg", "0123456789abcdef", "--fmt", "gif"],
    ["backfill", "--originals", "{dir}/missing", "--derivatives", "{dir}/out", "--workers", "0"],
    ["backfill", "--originals", "{dir}", "--derivatives", "{dir}/out", "--workers", "-1"],
    ["takedown", "demo/x.jpg", "--reason", "r", "--actor", "me", "--url", CLOSED],
    ["takedown", "no-slash", "--reason", "r", "--actor", "me", "--url", CLOSED],
    ["takedown", "--from-file", "{dir}/missing.txt", "--actor", "me", "--url", CLOSED],
    ["simulate", "--requests", "-5"],
    ["edge-function", "--policy", "{text}"],
    ["verify", "--distribution-id", "E123", "--template", "{dir}/missing.json"],
    ["logs", "scan", "{dir}/missing.log"],
]


@pytest.mark.parametrize("argv", MISTAKES, ids=" ".join)
def test_a_mistake_is_one_line_and_exit_2_never_a_traceback(
    argv: list[str], files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _run([a.format(**files) for a in argv], capsys)
    # 2 as main() answers a user's error; simulate exits 1 through SystemExit("message").
    assert status == (1 if argv[0] == "simulate" else 2), err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"imgcdn {argv[0]}"), err
    if "error: argument" not in last and "usage:" not in err:
        assert len(err.strip().splitlines()) == 1, err  # the command's own one-line error


def test_a_busy_port_names_the_port_and_how_to_pick_another(
    busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _run(["dev", "--port", str(busy_port), "--data", str(tmp_path)], capsys)
    assert status == 2
    assert err.strip() == (
        f"imgcdn dev: port {busy_port} on 127.0.0.1 is already in use (another imgcdn dev?); "
        "pick another with --port N, or --port 0 for any free port"
    )


def test_an_unreachable_s3_endpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dev", "--port", "0", "--data", str(tmp_path), "--s3-endpoint", CLOSED]
    status, err = _run(argv, capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"imgcdn dev: --s3-endpoint {CLOSED}: ")


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_an_unknown_option_is_a_usage_error(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _run([name, "--no-such-option"], capsys)
    assert status == 2
    assert "Traceback" not in err
    assert "unrecognized arguments: --no-such-option" in err or "required" in err, err


def _undescribed(parser: argparse.ArgumentParser, prefix: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _undescribed(sub, f"{prefix} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            yield f"{prefix} {'/'.join(action.option_strings) or action.dest}"


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_is_described_in_help(name: str) -> None:
    assert list(_undescribed(_subcommands()[name], name)) == []


def test_version_names_each_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("imgcdn 0.")
    assert "imgcdn-local" in out
    assert len(out.splitlines()) == 1


def test_render_to_a_png_name_writes_png_bytes(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.png"
    assert main(["render", files["photo"], "--w", "160", "-o", str(out)]) == 0
    with Image.open(out) as image:
        assert (image.format, image.width) == ("PNG", 64)  # never upscaled past the source
