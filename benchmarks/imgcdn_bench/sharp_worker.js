// One sharp benchmark cell in a fresh node process: `node sharp_worker.js SPEC_JSON`.
// Same protocol as worker.py: read the image into memory, one warm-up render, `runs` timed
// renders; print wall/CPU ms per run, base and peak RSS (KiB) as one JSON line.
"use strict";

const fs = require("fs");
const path = require("path");
const sharp = require("sharp");

// libvips at one thread (the per-CPU cost a Lambda bills), no operation cache: as for pyvips.
sharp.concurrency(Number(process.env.VIPS_CONCURRENCY || 1));
sharp.cache(false);

const JOBS = {
  webp320: [["webp", 320, 80]],
  jpeg640: [["jpeg", 640, 80]],
  avif1280: [["avif", 1280, 60]],
  set8: [2560, 1920, 1280, 960, 640, 480, 320, 160].map((w) => ["webp", w, 80]),
};

function statusKiB(field) {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const match = new RegExp(`${field}:\\s+(\\d+)`).exec(status);
  return match ? Number(match[1]) : 0;
}

async function render(data, outputs) {
  const out = [];
  for (const [fmt, width, quality] of outputs) {
    const pipeline = sharp(data).autoOrient().resize({ width, withoutEnlargement: true });
    out.push(await pipeline[fmt]({ quality }).toBuffer());
  }
  return out;
}

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const outputs = JOBS[spec.job];
  if (!outputs) throw new Error(`unknown job ${spec.job}`);
  const data = fs.readFileSync(spec.image);
  const baseRss = statusKiB("VmRSS");
  const warmup = spec.warmup ?? 1;
  const wall = [];
  const cpu = [];
  let last = [];
  for (let i = 0; i < warmup + spec.runs; i++) {
    const started = process.hrtime.bigint();
    const startedCpu = process.cpuUsage();
    last = await render(data, outputs);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    const used = process.cpuUsage(startedCpu);
    if (i >= warmup) {
      wall.push(elapsed);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  if (spec.out) {
    fs.mkdirSync(spec.out, { recursive: true });
    last.forEach((blob, i) => fs.writeFileSync(path.join(spec.out, `${i}.bin`), blob));
  }
  process.stdout.write(
    JSON.stringify({
      wall_ms: wall,
      cpu_ms: cpu,
      base_rss_kb: baseRss,
      // VmHWM, not maxRSS: the latter also counts the parent's memory at fork/exec time.
      peak_rss_kb: statusKiB("VmHWM"),
      out_bytes: last.map((b) => b.length),
    }) + "\n",
  );
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
