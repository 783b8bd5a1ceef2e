"""The benchmark corpus: real photographs and odd files from public packages, with a manifest.

Debian's wallpaper packages give 6-20 MP camera JPEGs; Pillow's source distribution and
scikit-image's wheel give PNG with alpha, CMYK JPEG, EXIF-rotated, 16-bit and animated files.
Everything lands in `.cache/bench/corpus/` (git-ignored) with `manifest.tsv`: one row per file
with its format, size, dimensions and origin. Nothing large is committed.
"""

from __future__ import annotations

import csv
import io
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
CACHE: Final = ROOT / ".cache" / "bench"
DOWNLOADS: Final = CACHE / "downloads"
CORPUS: Final = CACHE / "corpus"
MANIFEST_NAME: Final = "manifest.tsv"
# uv has no `pip download` and the workspace venv has no pip: a pinned pip run by uv, once.
PIP: Final = ("uv", "tool", "run", "--from", "pip==25.3", "pip")

# Pinned sources; the versions are printed with every result.
DEBS: Final = {
    "mate-backgrounds": "1.26.0-1",
    "desktop-base": "12.0.6+nmu1~deb12u1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "lomiri-wallpapers": "20.04.0-2",
}
PILLOW_SDIST: Final = ("pillow", "13.0.0")
SKIMAGE_WHEEL: Final = ("scikit-image", "0.26.0")


@dataclass(frozen=True, slots=True)
class Source:
    """Where one corpus file comes from: a package and a member path inside it."""

    name: str
    kind: str  # "deb", "sdist", "wheel" or "derived"
    package: str
    member: str
    note: str = ""


SOURCES: Final = (
    Source("alpha-Gulp.png", "deb", "mate-backgrounds", "mate/abstract/Gulp.png"),
    Source(
        "alpha-MATE-Stripes-Dark.png",
        "deb",
        "mate-backgrounds",
        "mate/desktop/MATE-Stripes-Dark.png",
    ),
    Source("alpha-logo_emerald.png", "deb", "desktop-base", "emerald/logo+emerald.png"),
    Source("alpha-skimage_logo.png", "wheel", "scikit-image", "skimage/data/logo.png"),
    Source("anim-pillow_iss634.gif", "sdist", "pillow", "Tests/images/iss634.gif"),
    Source("cmyk-pil_sample_cmyk.jpg", "sdist", "pillow", "Tests/images/pil_sample_cmyk.jpg"),
    Source(
        "exif6-Wood_DiMAGE_Z5_DERIVED.jpg",
        "derived",
        "mate-backgrounds",
        "mate/nature/Wood.jpg",
        "EXIF Orientation 1->6, 1 byte",
    ),
    Source(
        "exif6-hopper_orientation_6.jpg", "sdist", "pillow", "Tests/images/hopper_orientation_6.jpg"
    ),
    Source(
        "photo-Bridge_by_Sander_Klootwijk.jpg",
        "deb",
        "lomiri-wallpapers-16.04",
        "backgrounds/Bridge_by_Sander_Klootwijk.jpg",
    ),
    Source(
        "photo-Dragonfly_by_Bolly.jpg",
        "deb",
        "lomiri-wallpapers-16.04",
        "backgrounds/Dragonfly_by_Bolly.jpg",
    ),
    Source(
        "photo-Elephants_RX100M4_edited.jpg",
        "deb",
        "mate-backgrounds",
        "mate/abstract/Elephants_5640x3172.jpg",
    ),
    Source(
        "photo-Kleiber_by_Lukas_Baubkus.jpg",
        "deb",
        "lomiri-wallpapers-20.04",
        "backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
    ),
    Source(
        "photo-Wine_by_Jakkub_Mede.jpg",
        "deb",
        "lomiri-wallpapers-16.04",
        "backgrounds/Wine_by_Jakkub_Mede.jpg",
    ),
    *(
        Source(
            f"photo-{stem}_by_Aitzol_Berasategi.jpg",
            "deb",
            "lomiri-wallpapers-16.04",
            f"backgrounds/{stem}_by_Aitzol_Berasategi.jpg",
        )
        for stem in ("aitzgorri", "friends", "life", "picosdeeuropa", "sunset")
    ),
    Source(
        "photo-seeding_by_Clements_Engelhardt.jpg",
        "deb",
        "lomiri-wallpapers-16.04",
        "backgrounds/seeding_by_Clements_Engelhardt.jpg",
    ),
    Source(
        "png-warty-final-ubuntu.png",
        "deb",
        "lomiri-wallpapers",
        "backgrounds/warty-final-ubuntu.png",
    ),
    Source("png16-pillow_i_trns.png", "sdist", "pillow", "Tests/images/i_trns.png"),
    Source(
        "png16-skimage_chessboard_RGB.png",
        "wheel",
        "scikit-image",
        "skimage/data/chessboard_RGB.png",
    ),
)

MANIFEST_FIELDS: Final = ("file", "format", "width", "height", "bytes", "notes", "origin")


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the manifest."""

    file: str
    format: str
    width: int
    height: int
    bytes: int
    notes: str
    origin: str

    @property
    def megapixels(self) -> float:
        """Pixels of one frame, in millions."""
        return self.width * self.height / 1e6

    @property
    def is_photo(self) -> bool:
        """A real camera photograph (the corpus of the per-job timing tables)."""
        return self.file.startswith("photo-")


def parse_manifest(text: str) -> list[Entry]:
    """Parse `manifest.tsv` (a header row, then one tab-separated row per file).

    Raises:
        ValueError: A row is missing a column or a number does not parse.
    """
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    if tuple(reader.fieldnames or ()) != MANIFEST_FIELDS:
        msg = f"manifest header is {reader.fieldnames}; expected {list(MANIFEST_FIELDS)}"
        raise ValueError(msg)
    entries = []
    for line, row in enumerate(reader, start=2):
        if any(row.get(name) is None for name in MANIFEST_FIELDS):
            msg = f"manifest line {line} has {len(row)} columns; expected {len(MANIFEST_FIELDS)}"
            raise ValueError(msg)
        entries.append(
            Entry(
                file=row["file"],
                format=row["format"],
                width=int(row["width"]),
                height=int(row["height"]),
                bytes=int(row["bytes"]),
                notes=row["notes"],
                origin=row["origin"],
            )
        )
    return entries


def format_manifest(entries: list[Entry]) -> str:
    """The inverse of `parse_manifest`."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for e in entries:
        writer.writerow([e.file, e.format, e.width, e.height, e.bytes, e.notes, e.origin])
    return out.getvalue()


def load(corpus: Path = CORPUS) -> list[Entry]:
    """The manifest of an assembled corpus."""
    return parse_manifest((corpus / MANIFEST_NAME).read_text())


def _run(*cmd: str, cwd: Path | None = None) -> None:
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL)  # noqa: S603


def _download_debs() -> dict[str, Path]:
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    found = {}
    missing = []
    for name, version in DEBS.items():
        quoted = version.replace(":", "%3a")
        path = DOWNLOADS / f"{name}_{quoted}_all.deb"
        if path.exists():
            found[name] = path
        else:
            missing.append(f"{name}={version}")
    if missing:
        try:
            _run("apt-get", "download", *missing, cwd=DOWNLOADS)
        except subprocess.CalledProcessError:
            _run("apt-get", "update", "-qq")
            _run("apt-get", "download", *missing, cwd=DOWNLOADS)
        return _download_debs()
    return found


def _download_python() -> tuple[Path, Path]:
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    name, version = PILLOW_SDIST
    sdist = DOWNLOADS / f"{name}-{version}.tar.gz"
    if not sdist.exists():
        pip = (*PIP, "download", "--quiet", "--no-deps", "-d", str(DOWNLOADS))
        _run(*pip, "--no-binary", ":all:", f"{name}=={version}")
    name, version = SKIMAGE_WHEEL
    wheels = sorted(DOWNLOADS.glob(f"scikit_image-{version}-*.whl"))
    if not wheels:
        # Only the data files matter: any CPython/Linux wheel of this version holds the same.
        pip = (*PIP, "download", "--quiet", "--no-deps", "-d", str(DOWNLOADS))
        platforms = [
            f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28)
        ]  # the wheel's tags
        _run(
            *pip,
            "--only-binary",
            ":all:",
            "--python-version",
            "3.12",
            *platforms,
            f"{name}=={version}",
        )
        wheels = sorted(DOWNLOADS.glob(f"scikit_image-{version}-*.whl"))
    return sdist, wheels[0]


def _set_exif_orientation(data: bytes, value: int) -> bytes:
    """Rewrite the EXIF Orientation tag of a JPEG in place (the tag must exist)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\0\0":
            tiff = pos + 10
            endian = "<" if data[tiff : tiff + 2] == b"II" else ">"
            ifd = tiff + struct.unpack(endian + "I", data[tiff + 4 : tiff + 8])[0]
            (count,) = struct.unpack(endian + "H", data[ifd : ifd + 2])
            for i in range(count):
                entry = ifd + 2 + 12 * i
                tag, kind = struct.unpack(endian + "HH", data[entry : entry + 4])
                if tag == 0x0112 and kind == 3:
                    patched = bytearray(data)
                    patched[entry + 8 : entry + 10] = struct.pack(endian + "H", value)
                    return bytes(patched)
        pos += 2 + length
    msg = "no EXIF Orientation tag to rewrite"
    raise ValueError(msg)


def _describe(path: Path) -> tuple[str, int, int, str]:
    """Format, width, height and notes of an image, read with Pillow."""
    from PIL import Image  # noqa: PLC0415 - only the corpus build needs Pillow here

    with Image.open(path) as im:
        fmt = im.format or "?"
        notes = []
        if fmt == "PNG":
            raw = path.read_bytes()
            bit_depth, colour_type = raw[24], raw[25]
            depth = f"{bit_depth}-bit"
            kinds = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}
            notes.append(f"{kinds.get(colour_type, '?')} {depth}")
            if colour_type in (4, 6) or "transparency" in im.info:
                notes.append("alpha")
        else:
            notes.append(im.mode if im.mode != "RGB" else "RGB")
        if fmt == "JPEG":
            notes.append("progressive" if im.info.get("progressive") else "baseline")
            exif = im.getexif()
            orientation = exif.get(0x0112)
            if orientation and orientation != 1:
                notes.append(f"EXIF orientation={orientation}")
            if exif.get(0x010F):
                notes.append(f"camera={exif.get(0x010F)} {exif.get(0x0110, '')}".strip())
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            notes.append(f"{frames} frames")
        return fmt, im.width, im.height, ", ".join(notes)


def ensure(corpus: Path = CORPUS, *, names: set[str] | None = None) -> list[Entry]:
    """Assemble the corpus (idempotent) and return its manifest.

    Args:
        corpus: The folder to fill.
        names: Only these files (the quick mode's subset); None for all of them.
    """
    wanted = [s for s in SOURCES if names is None or s.name in names]
    manifest = corpus / MANIFEST_NAME
    if manifest.exists():
        have = {e.file: e for e in load(corpus)}
        if all(s.name in have and (corpus / s.name).exists() for s in wanted):
            return [have[s.name] for s in wanted]
    corpus.mkdir(parents=True, exist_ok=True)
    debs = _download_debs() if any(s.package in DEBS for s in wanted) else {}
    sdist, wheel = _download_python()
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        unpacked: dict[str, Path] = {}
        for source in SOURCES:
            target = corpus / source.name
            if not target.exists():
                target.write_bytes(
                    _extract(
                        source,
                        debs=debs,
                        sdist=sdist,
                        wheel=wheel,
                        tmp=Path(tmp),
                        unpacked=unpacked,
                    )
                )
            fmt, width, height, notes = _describe(target)
            if source.note:
                notes = f"{notes}, {source.note}"
            origin = {
                "deb": f"deb:{source.package} {source.member}",
                "derived": f"DERIVED from deb:{source.package} {source.member}",
                "sdist": f"pypi:{source.package}-sdist {source.member}",
                "wheel": f"pypi:{source.package}-wheel {source.member}",
            }[source.kind]
            entries.append(
                Entry(source.name, fmt, width, height, target.stat().st_size, notes, origin)
            )
    manifest.write_text(format_manifest(entries))
    return [e for e in entries if names is None or e.file in names]


def _extract(
    source: Source,
    *,
    debs: dict[str, Path],
    sdist: Path,
    wheel: Path,
    tmp: Path,
    unpacked: dict[str, Path],
) -> bytes:
    if source.kind in ("deb", "derived"):
        if source.package not in unpacked:
            dest = tmp / source.package
            _run("dpkg-deb", "-x", str(debs[source.package]), str(dest))
            unpacked[source.package] = dest
        matches = [
            p for p in unpacked[source.package].rglob("*") if p.as_posix().endswith(source.member)
        ]
        if not matches:
            msg = f"{source.member} is not in {debs[source.package].name}"
            raise FileNotFoundError(msg)
        data = matches[0].read_bytes()
        return _set_exif_orientation(data, 6) if source.kind == "derived" else data
    if source.kind == "sdist":
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if member.name.endswith("/" + source.member):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
        msg = f"{source.member} is not in {sdist.name}"
        raise FileNotFoundError(msg)
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(source.member)


def versions() -> str:
    """The package versions the corpus came from, for the report."""
    debs = ", ".join(f"deb:{name} {version}" for name, version in DEBS.items())
    return (
        f"{debs}, pypi:{PILLOW_SDIST[0]}-sdist {PILLOW_SDIST[1]}, "
        f"pypi:{SKIMAGE_WHEEL[0]}-wheel {SKIMAGE_WHEEL[1]}"
    )


def clean(corpus: Path = CORPUS) -> None:
    """Remove the assembled corpus (downloads are kept)."""
    shutil.rmtree(corpus, ignore_errors=True)


if __name__ == "__main__":
    for entry in ensure():
        print(f"{entry.file}\t{entry.format}\t{entry.width}x{entry.height}\t{entry.notes}")  # noqa: T201
