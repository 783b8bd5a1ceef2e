// imgcdn dev console: uploads, live stats, the URL playground and takedown. Vanilla JS, no build.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, { dataset = {}, ...props } = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
};
const data = JSON.parse(document.body.dataset.console || "{}");
const number = new Intl.NumberFormat("en");

// The path segment as imgcore.percent.encode_path writes it: UTF-8, unreserved bytes and '/' kept.
function encodePath(text) {
  return Array.from(new TextEncoder().encode(text), (b) => {
    const c = String.fromCharCode(b);
    return b < 128 && /[A-Za-z0-9\-._~/]/.test(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }).join("");
}

function bytes(n) {
  if (n == null) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

// ---- live stats -------------------------------------------------------------------------------
const STATS = [
  ["requests", "requests", number.format],
  ["hits", "hits", number.format],
  ["misses", "misses", number.format],
  ["hit_ratio", "hit ratio", (v) => (v == null ? "–" : `${(v * 100).toFixed(1)} %`)],
  ["renders", "renders", number.format],
  ["render_ms_mean", "render time", (v) => (v == null ? "–" : `${number.format(v)} ms`)],
  ["stored_variants", "variants", number.format],
  ["stored_bytes", "stored", bytes],
  ["queue_depth", "queue", number.format],
  ["dead_letters", "dead letters", number.format],
];

async function refreshStats() {
  const target = $("#stats");
  if (!target) return;
  try {
    const response = await fetch("/_console/api/stats", { cache: "no-store" });
    if (!response.ok) return;
    const stats = await response.json();
    target.replaceChildren(
      ...STATS.map(([key, label, format]) =>
        el("div", { dataset: { stat: key } }, el("dt", { textContent: label }), el("dd", { textContent: format(stats[key]) })),
      ),
    );
  } catch {
    // The stack is stopping or restarting: the next tick tries again.
  }
}

// ---- uploads (gallery) ------------------------------------------------------------------------
async function refreshGrid() {
  const response = await fetch("/_console/cards", { cache: "no-store" });
  if (response.ok) $("#grid").innerHTML = await response.text();
}

function uploadOne(file, tenant, cls) {
  const progress = el("progress", { max: 1, value: 0 });
  const state = el("span", { className: "state", textContent: "uploading" });
  const row = el("li", { dataset: { file: file.name } }, el("b", { textContent: file.name }), progress, state);
  $("#uploads").append(row);
  const set = (name, text, href) => {
    row.dataset.state = name;
    state.className = `state state-${name}`;
    state.replaceChildren(text);
    if (href) state.append(" ", el("a", { href, textContent: "open" }));
  };
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    // The same endpoint and the same wait as `imgcdn upload`: stored, queued as an S3 event,
    // rendered by the real worker; the answer comes once the manifest exists.
    xhr.open("PUT", `/_admin/originals/${cls}/${tenant}/${encodePath(file.name)}?wait=1`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = e.loaded / e.total;
    };
    xhr.upload.onload = () => {
      progress.value = 1;
      set("rendering", "rendering");
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        const result = JSON.parse(xhr.responseText);
        if (result.status === "complete") {
          set("complete", `complete: ${result.variants} variants, version ${result.version}`, new URL(result.page).pathname);
        } else {
          set("rejected", `rejected: ${result.failure || result.status}`);
        }
      } else {
        set("rejected", `rejected (${xhr.status}): ${xhr.responseText.trim()}`);
      }
      resolve();
    };
    xhr.onerror = () => {
      set("rejected", "the stack did not answer");
      resolve();
    };
    xhr.send(file);
  });
}

async function uploadAll(files) {
  const tenant = $("#tenant").value.trim();
  const cls = $("#cls").value;
  if (!$("#tenant").checkValidity() || !tenant) {
    $("#uploads").append(el("li", { className: "state-rejected", textContent: "tenant: allowed a-z, 0-9 and '-'" }));
    return;
  }
  const queue = Array.from(files);
  // Two at a time: the stack renders one original per worker, so more only wait in its queue.
  const lane = async () => {
    while (queue.length) {
      await uploadOne(queue.shift(), tenant, cls);
      await refreshGrid();
    }
  };
  await Promise.all([lane(), lane()]);
}

function setUpGallery() {
  const zone = $("#upload");
  $("#files").addEventListener("change", (e) => {
    uploadAll(e.target.files);
    e.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    uploadAll(e.dataTransfer.files);
  });
}

// ---- URL playground (image page) --------------------------------------------------------------
let previewUrl = null;

async function renderPlayground(form, accepts) {
  const query = new URLSearchParams({ path: data.path });
  for (const field of form.querySelectorAll("[data-param]")) {
    if (field.value !== "") query.set(field.dataset.param, field.value);
  }
  const accept = form.querySelector("[name=accept]").value;
  const result = $("#result");
  const answer = await (await fetch(`/_console/api/url?${query}`)).json();
  const rows = [];
  const row = (label, value, className = "") => rows.push(el("dt", { textContent: label }), el("dd", { className }, value));
  if (answer.error) {
    row("refused", `400 (${answer.field}): ${answer.error}`, "error");
    result.replaceChildren(...rows);
    $("#preview").removeAttribute("src");
    return;
  }
  const chosen = answer.rewrites.find((r) => r.accept === accept) || answer.rewrites[0];
  row("canonical URL", el("a", { href: answer.url, textContent: answer.url, id: "canonical" }));
  row("Accept", `${chosen.accept} → ${chosen.resolves}`);
  row("rewritten URI", el("code", { textContent: chosen.uri, id: "rewritten" }));
  row("S3 key", el("code", { textContent: chosen.key, id: "s3key" }));
  const image = await fetch(answer.url, { headers: { accept: chosen.accept } });
  const blob = await image.blob();
  row(
    "answer",
    `${image.status} ${image.headers.get("content-type")} · ${bytes(blob.size)} · X-Cache ${image.headers.get("x-cache")}`,
  );
  result.replaceChildren(...rows);
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(blob);
  const preview = $("#preview");
  preview.dataset.url = answer.url;
  preview.src = previewUrl;
}

async function setUpPlayground() {
  const form = $("#params");
  const described = await (await fetch("/_console/api/params")).json();
  for (const param of described.params) {
    const initial = (data.initial || {})[param.name] ?? "";
    let field;
    if (param.values.length) {
      field = el("select", {}, el("option", { value: "", textContent: "(none)" }));
      for (const value of param.values) field.append(el("option", { value: String(value), textContent: String(value) }));
    } else {
      field = el("input", { placeholder: "(none)" });
    }
    field.dataset.param = param.name;
    field.name = param.name;
    field.value = String(initial);
    form.append(el("label", { title: param.help }, param.name, field));
  }
  const accept = el("select", { name: "accept" });
  for (const option of described.accept) {
    accept.append(el("option", { value: option.accept, textContent: `${option.accept} (→ ${option.resolves})` }));
  }
  form.append(el("label", { title: "the Accept header the request is sent with" }, "Accept", accept));
  form.addEventListener("change", () => renderPlayground(form, described.accept));
  form.addEventListener("submit", (e) => e.preventDefault());
  await renderPlayground(form, described.accept);
}

function setUpCopy() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = $(`#${button.dataset.copy}`).textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        const range = document.createRange();
        range.selectNodeContents($(`#${button.dataset.copy}`));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        document.execCommand("copy");
      }
      button.textContent = "copied";
    });
  }
}

function setUpTakedown() {
  const form = $("#takedown");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#takedown-result");
    const button = form.querySelector("button");
    button.disabled = true;
    out.textContent = "taking down: deleting, invalidating, waiting out the render window…";
    const body = {
      target: data.target,
      class: data.class,
      reason: form.elements.reason.value,
      actor: form.elements.actor.value,
    };
    const response = await fetch("/_console/api/takedown", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      const report = await response.json();
      form.dataset.state = report.complete ? "complete" : "incomplete";
      out.textContent = report.summary;
    } else {
      form.dataset.state = "refused";
      out.textContent = await response.text();
      button.disabled = false;
    }
  });
}

refreshStats();
setInterval(refreshStats, 1000);
if (document.body.dataset.page === "gallery") setUpGallery();
if (document.body.dataset.page === "image") {
  setUpPlayground();
  setUpCopy();
  setUpTakedown();
}
