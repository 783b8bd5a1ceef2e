"""One benchmark cell in a fresh process: `python -m imgcdn_bench.worker SPEC_JSON`.

The spec names a tool, a job and an image. The worker imports only that tool's library, reads
the image into memory (what a Lambda has after its S3 GET), renders once to warm up, then times
`runs` renders: wall and CPU time per run, peak RSS of the process, and the base RSS after the
imports. It prints one JSON line and writes the last output(s) where the spec says, for the
quality columns. libvips' thread count comes from `VIPS_CONCURRENCY`, set by the caller.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

# job -> (format, width, quality)
JOBS: Final = {
    "webp320": ("webp", 320, 80),
    "jpeg640": ("jpeg", 640, 80),
    "avif1280": ("avif", 1280, 60),
}
SET_WIDTHS: Final = (2560, 1920, 1280, 960, 640, 480, 320, 160)
SET_FORMATS: Final = (("avif", 60), ("webp", 80), ("jpeg", 80))
HUGE: Final = 10_000_000

Render = Callable[[], list[bytes]]


def _status_kb(field: str) -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _rss_kb() -> int:
    return _status_kb("VmRSS")


def _peak_rss_kb() -> int:
    # VmHWM, not ru_maxrss: the latter also counts the parent's memory at fork/exec time.
    return _status_kb("VmHWM")


def _outputs_for(job: str) -> list[tuple[str, int, int]]:
    """(format, width, quality) of every output a job renders."""
    if job in JOBS:
        return [JOBS[job]]
    if job == "set8":
        return [("webp", w, 80) for w in SET_WIDTHS]
    if job == "set24":
        return [(fmt, w, q) for fmt, q in SET_FORMATS for w in SET_WIDTHS]
    msg = f"unknown job {job!r}"
    raise ValueError(msg)


# --- tools -----------------------------------------------------------------------------------


def _imgcore(data: bytes, job: str, variant: str) -> Render:
    from imgcore.params import canonicalize  # noqa: PLC0415 - each tool imports only its own
    from imgcore.pixels import render_variants, transform  # noqa: PLC0415

    params = [canonicalize(f"w={w}&fmt={fmt}&q={q}") for fmt, w, q in _outputs_for(job)]
    if variant == "variants":
        return lambda: [r.data for r in render_variants(data, params)]
    return lambda: [transform(data, p).data for p in params]


def _pyvips_save(image: Any, fmt: str, q: int, **options: Any) -> bytes:
    match fmt:
        case "webp":
            return bytes(image.webpsave_buffer(Q=q, **options))
        case "jpeg":
            return bytes(image.jpegsave_buffer(Q=q, **options))
        case "avif":
            return bytes(image.heifsave_buffer(Q=q, compression="av1", **options))
    msg = f"unknown format {fmt}"
    raise ValueError(msg)


def _pyvips(data: bytes, job: str, variant: str) -> Render:
    import pyvips  # noqa: PLC0415

    pyvips.cache_set_max(0)
    outputs = _outputs_for(job)

    def thumb() -> list[bytes]:
        return [
            _pyvips_save(pyvips.Image.thumbnail_buffer(data, w, height=HUGE, size="down"), fmt, q)
            for fmt, w, q in outputs
        ]

    def naive() -> list[bytes]:
        out = []
        for fmt, w, q in outputs:
            image = pyvips.Image.new_from_buffer(data, "").autorot()
            scale = min(1.0, w / image.width)
            out.append(_pyvips_save(image.resize(scale, kernel="lanczos3"), fmt, q))
        return out

    return {"thumb": thumb, "naive": naive}[variant]


def _pillow(data: bytes, job: str, variant: str) -> Render:
    from PIL import Image, ImageOps  # noqa: PLC0415

    outputs = _outputs_for(job)
    names = {"webp": "WEBP", "jpeg": "JPEG", "avif": "AVIF"}

    def load(width: int) -> Image.Image:
        im = Image.open(io.BytesIO(data))
        if im.format == "JPEG":
            sw, sh = im.size
            orientation = im.getexif().get(0x0112, 1)
            if orientation >= 5:  # draft works on stored pixels; the target is displayed ones
                sw, sh = sh, sw
            tw = min(width, sw)
            th = max(1, round(sh * tw / sw))
            im.draft("RGB", (th, tw) if orientation >= 5 else (tw, th))
        im = ImageOps.exif_transpose(im) or im
        if im.mode not in ("RGB", "RGBA", "L"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
        return im

    def save(im: Image.Image, fmt: str, q: int) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format=names[fmt], quality=q)
        return buf.getvalue()

    def each() -> list[bytes]:
        out = []
        for fmt, w, q in outputs:
            im = load(w)
            im.thumbnail((w, HUGE), Image.Resampling.LANCZOS)
            out.append(save(im, fmt, q))
        return out

    def fanout() -> list[bytes]:
        master = load(max(w for _, w, _ in outputs))
        master.load()
        out = []
        for fmt, w, q in outputs:
            im = master.copy()
            im.thumbnail((w, HUGE), Image.Resampling.LANCZOS)
            out.append(save(im, fmt, q))
        return out

    return {"each": each, "fanout": fanout}[variant]


def _knob(data: bytes, job: str, variant: str) -> Render:
    """imgcore's single-transform pipeline rebuilt with plain pyvips, one setting changed.

    `ref` is imgcore's own choices (to check the rebuild matches): a JPEG decoded at the largest
    DCT scale that keeps twice the output's size, then thumbnail's lanczos3. The others change
    one knob: `tight` decodes at the largest DCT scale that merely covers the output (Pillow's
    `draft()` to the output size, no margin), `kernel-<name>` swaps the reduce kernel,
    `effort<N>` sets the WebP/AVIF effort, `baseline` writes baseline instead of progressive
    JPEG, `noopt` skips Huffman optimisation.
    """
    import pyvips  # noqa: PLC0415

    pyvips.cache_set_max(0)
    parts = variant.split("+")
    kernel = next((p.removeprefix("kernel-") for p in parts if p.startswith("kernel-")), None)
    effort = next((int(p.removeprefix("effort")) for p in parts if p.startswith("effort")), None)
    outputs = _outputs_for(job)

    def load(w: int) -> Any:
        header = pyvips.Image.jpegload_buffer(data, access="sequential", fail_on="error")
        rotated = header.get_typeof("orientation") and header.get("orientation") >= 5
        sw, sh = (header.height, header.width) if rotated else (header.width, header.height)
        tw = min(w, sw)
        th = max(1, round(sh * tw / sw))
        margin = 1 if "tight" in parts else 2
        shrink = next(
            (s for s in (8, 4, 2) if sw // s >= margin * tw and sh // s >= margin * th), 1
        )
        image = pyvips.Image.jpegload_buffer(
            data, shrink=shrink, access="sequential", fail_on="error"
        )
        if kernel:
            image = image.autorot()
            image = image.resize(tw / image.width, vscale=th / image.height, kernel=kernel)
        else:
            image = image.thumbnail_image(tw, height=th, size="down", linear=False)
        if image.interpretation != "srgb" or image.format != "uchar":
            image = image.colourspace("srgb").cast("uchar")
        return image.copy_memory()

    def encode(image: Any, fmt: str, q: int) -> bytes:
        keep = pyvips.enums.ForeignKeep.NONE
        match fmt:
            case "webp":
                return bytes(
                    image.webpsave_buffer(
                        Q=q,
                        effort=4 if effort is None else effort,
                        smart_subsample=False,
                        keep=keep,
                    )
                )
            case "jpeg":
                return bytes(
                    image.jpegsave_buffer(
                        Q=q,
                        optimize_coding="noopt" not in parts,
                        interlace="baseline" not in parts,
                        keep=keep,
                    )
                )
            case _:
                return bytes(
                    image.heifsave_buffer(
                        Q=q,
                        compression="av1",
                        effort=2 if effort is None else effort,
                        bitdepth=8,
                        keep=keep,
                    )
                )

    return lambda: [encode(load(w), fmt, q) for fmt, w, q in outputs]


def _stages(data: bytes, job: str, runs: int) -> dict[str, list[float]]:
    """Time imgcore.transform's stages one by one (its private steps, in its own order)."""
    from imgcore import pixels  # noqa: PLC0415
    from imgcore.params import canonicalize  # noqa: PLC0415
    from imgcore.policy import DEFAULT_POLICY  # noqa: PLC0415

    fmt, w, q = JOBS[job]
    params = canonicalize(f"w={w}&fmt={fmt}&q={q}")
    stages: dict[str, list[float]] = {"probe": [], "decode+resize": [], "encode": []}
    for index in range(runs + 1):
        t0 = time.process_time()
        info = pixels.probe(data, DEFAULT_POLICY)
        geometry = pixels._plan(info, params, DEFAULT_POLICY)
        t1 = time.process_time()
        image = pixels._decode(data, info, geometry, pixels._jpeg_shrink(info, geometry))
        t2 = time.process_time()
        pixels._render(image, params, DEFAULT_POLICY, time.perf_counter())
        t3 = time.process_time()
        if index:
            for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                stages[name].append(value * 1000)
    return stages


def _decoders(data: bytes, job: str, runs: int) -> dict[str, Any]:
    """CPU ms of the JPEG decode alone, libvips' against Pillow's, at imgcore's DCT scale."""
    import re  # noqa: PLC0415

    import pyvips  # noqa: PLC0415
    from PIL import Image, features  # noqa: PLC0415

    from imgcore import pixels  # noqa: PLC0415
    from imgcore.params import canonicalize  # noqa: PLC0415
    from imgcore.policy import DEFAULT_POLICY  # noqa: PLC0415

    pyvips.cache_set_max(0)
    width = JOBS[job][1]
    info = pixels.probe(data, DEFAULT_POLICY)
    shrink = pixels._jpeg_shrink(
        info, pixels._plan(info, canonicalize(f"w={width}"), DEFAULT_POLICY)
    )

    def vips() -> None:
        pyvips.Image.jpegload_buffer(data, shrink=shrink, access="sequential").copy_memory()

    def pillow() -> None:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (im.width // shrink, im.height // shrink))
            im.load()

    times: dict[str, list[float]] = {"libvips": [], "pillow": []}
    for index in range(runs + 1):
        for name, decode in (("libvips", vips), ("pillow", pillow)):
            started = time.process_time()
            decode()
            if index:
                times[name].append((time.process_time() - started) * 1000)
    # libvips reports no JPEG library version; the wheel's shared object names it.
    found = [
        m.group(0).decode()
        for so in Path(pyvips.__file__).parents[1].glob("pyvips_binary.libs/libvips*.so*")
        if (m := re.search(rb"(mozjpeg|libjpeg-turbo) version [0-9.]+", so.read_bytes()))
    ]
    return {
        **times,
        "shrink": shrink,
        "libvips_jpeg": found[0] if found else "unknown",
        "pillow_jpeg": f"libjpeg-turbo {features.version('libjpeg_turbo')}",
    }


def _fallback(data: bytes, job: str, _variant: str) -> Render:
    """The fallback handler on a Function URL event, over in-memory stores (row 3)."""
    import base64  # noqa: PLC0415

    from imgcdn_edge.handler import build_handler  # noqa: PLC0415
    from imgcore import DEFAULT_POLICY, DerivativeKey, ImageRef, content_version  # noqa: PLC0415
    from imgcore.params import canonicalize  # noqa: PLC0415
    from imgcore.storage import MemoryStore  # noqa: PLC0415

    fmt, w, q = JOBS[job]
    originals, derivatives = MemoryStore(), MemoryStore()
    ref = ImageRef("bench", "photos/original.jpg")
    originals.put(ref.source_key, data, content_type="image/jpeg")
    params = canonicalize(f"w={w}&fmt={fmt}&q={q}")
    uri = DerivativeKey(ref, content_version(data), params).uri
    handler = build_handler(originals=originals, derivatives=derivatives, policy=DEFAULT_POLICY)
    try:
        from imgcdn_local.stack import function_url_event  # noqa: PLC0415 - the stack's own

        def event() -> dict[str, Any]:
            return dict(function_url_event("GET", uri, {"accept": "*/*"}))
    except ImportError:

        def event() -> dict[str, Any]:
            return {
                "version": "2.0",
                "rawPath": uri,
                "rawQueryString": "",
                "headers": {"accept": "*/*", "host": "fallback.lambda-url.test"},
                "requestContext": {"http": {"method": "GET", "path": uri}},
                "isBase64Encoded": False,
            }

    def render() -> list[bytes]:
        for info in list(derivatives.list()):  # a miss every time: forget the last render
            derivatives.delete(info.key)
        answer = handler(event())
        if int(answer.get("statusCode", 0)) != 200:
            msg = f"fallback answered {answer.get('statusCode')}: {str(answer.get('body'))[:200]}"
            raise RuntimeError(msg)
        body = answer.get("body") or ""
        return [base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()]

    return render


TOOLS: Final[dict[str, Callable[[bytes, str, str], Render]]] = {
    "fallback": _fallback,
    "imgcore": _imgcore,
    "pyvips": _pyvips,
    "pillow": _pillow,
    "knob": _knob,
}


def main(argv: list[str]) -> int:
    """Run the cell described by the JSON spec in argv[1]; print the result as JSON."""
    spec = json.loads(argv[1])
    tool, _, variant = spec["tool"].partition(":")
    data = Path(spec["image"]).read_bytes()
    if tool == "stages":
        sys.stdout.write(json.dumps(_stages(data, spec["job"], spec["runs"])) + "\n")
        return 0
    if tool == "decoders":
        sys.stdout.write(json.dumps(_decoders(data, spec["job"], spec["runs"])) + "\n")
        return 0
    render = TOOLS[tool](data, spec["job"], variant)
    base_rss = _rss_kb()
    wall, cpu = [], []
    outputs: list[bytes] = []
    for index in range(spec.get("warmup", 1) + spec["runs"]):
        started, started_cpu = time.perf_counter(), time.process_time()
        outputs = render()
        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        if index >= spec.get("warmup", 1):
            wall.append(elapsed * 1000)
            cpu.append(elapsed_cpu * 1000)
    out_dir = spec.get("out")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for i, blob in enumerate(outputs):
            (Path(out_dir) / f"{i}.bin").write_bytes(blob)
    result = {
        "wall_ms": wall,
        "cpu_ms": cpu,
        "base_rss_kb": base_rss,
        "peak_rss_kb": _peak_rss_kb(),
        "out_bytes": [len(b) for b in outputs],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
