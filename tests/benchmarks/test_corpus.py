"""The corpus manifest: parsing, round trip, and the one-byte EXIF rewrite."""

from __future__ import annotations

import io

import pytest
from imgcdn_bench import corpus
from PIL import Image

MANIFEST = (
    "file\tformat\twidth\theight\tbytes\tnotes\torigin\n"
    "photo-a.jpg\tJPEG\t4352\t2448\t914024\tRGB, progressive\tdeb:pkg backgrounds/a.jpg\n"
    "alpha-b.png\tPNG\t500\t500\t179723\trgba 8-bit, alpha\tpypi:scikit-image-wheel logo.png\n"
)


def test_parse_manifest() -> None:
    photo, png = corpus.parse_manifest(MANIFEST)
    assert (photo.file, photo.width, photo.height, photo.bytes) == (
        "photo-a.jpg",
        4352,
        2448,
        914024,
    )
    assert photo.is_photo
    assert not png.is_photo
    assert png.megapixels == pytest.approx(0.25)


def test_manifest_round_trips() -> None:
    entries = corpus.parse_manifest(MANIFEST)
    assert corpus.parse_manifest(corpus.format_manifest(entries)) == entries


def test_wrong_header_is_refused() -> None:
    with pytest.raises(ValueError, match="manifest header"):
        corpus.parse_manifest("file\tformat\nx\ty\n")


def test_short_row_is_refused() -> None:
    with pytest.raises(ValueError, match="line 2"):
        corpus.parse_manifest(MANIFEST.splitlines()[0] + "\nphoto-a.jpg\tJPEG\t1\n")


def test_bad_number_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        corpus.parse_manifest(MANIFEST.replace("4352", "wide"))


def test_every_source_has_a_unique_name_and_a_known_kind() -> None:
    names = [s.name for s in corpus.SOURCES]
    assert len(names) == len(set(names)) == 22
    assert {s.kind for s in corpus.SOURCES} <= {"deb", "sdist", "wheel", "derived"}


def test_exif_orientation_is_rewritten_in_place() -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), "red").save(buf, format="JPEG", exif=exif.tobytes())
    original = buf.getvalue()
    patched = corpus._set_exif_orientation(original, 6)
    assert len(patched) == len(original)
    assert sum(a != b for a, b in zip(original, patched, strict=True)) == 1
    with Image.open(io.BytesIO(patched)) as im:
        assert im.getexif()[0x0112] == 6


def test_exif_rewrite_needs_the_tag() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    with pytest.raises(ValueError, match="no EXIF Orientation"):
        corpus._set_exif_orientation(buf.getvalue(), 6)
