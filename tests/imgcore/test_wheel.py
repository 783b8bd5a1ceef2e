"""imgcore installs on its own, from its wheel, into a plain venv: how other services consume it."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"  # filled by scripts/bootstrap.sh, before the tests


def _run(args: list[str], **kwargs: object) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


@pytest.mark.slow
def test_wheel_installs_and_transforms_in_a_plain_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # Offline: imgcore's pinned dependencies wait in the bootstrap's wheelhouse, and tests never
    # send a packet beyond loopback.
    env = {**os.environ, "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never"}
    _run(
        ["uv", "build", "--wheel", "--package", "imgcore", "--out-dir", str(dist)],
        cwd=ROOT,
        env=env,
    )
    wheels = list(dist.glob("imgcore-*.whl"))
    assert len(wheels) == 1
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    _run(
        [
            "uv",
            "pip",
            "install",
            "--python",
            str(python),
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            str(wheels[0]),
        ],
        env=env,
        cwd=tmp_path,  # outside the workspace: a plain venv, no uv project around it
    )
    code = (
        "import imgcore, pyvips\n"
        "src = pyvips.Image.black(64, 48, bands=3).add(90).cast('uchar').jpegsave_buffer()\n"
        "r = imgcore.transform(src, imgcore.canonicalize('w=20&fmt=webp'))\n"
        "print(imgcore.__file__, r.media_type, r.width, r.height)\n"
    )
    where, media_type, width, height = _run([str(python), "-c", code], cwd=tmp_path).split()
    assert where.startswith(str(target))  # the venv's copy, not the workspace's
    assert (media_type, width, height) == ("image/webp", "64", "48")  # never upscaled
