// docextract playground: plain browser JavaScript, no build step, no other host.
// Every call goes to this service's public routes (relative URLs, so a route prefix works)
// with the key the user typed; the key lives in this variable only.
"use strict";

const $ = (id) => document.getElementById(id);
const BASE = new URL(".", location.href).href.replace(/\/$/, "");
const state = { tasks: {}, file: null, response: null, objectUrl: null, snippet: "curl", checkTimer: null, checkSeq: 0 };

const WHAT = {
  400: "The request was refused",
  401: "API key missing or wrong",
  404: "Not found",
  413: "Too large",
  415: "Unsupported type: send an image or a PDF",
  422: "Invalid input or schema",
  503: "The model is busy: try again shortly",
  504: "The request took too long",
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  let response;
  try {
    response = await fetch(BASE + path, Object.assign({}, options, { headers }));
  } catch (err) {
    throw { status: 0, message: "the service did not answer (" + err.message + ")" };
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const e = (body && body.error) || {};
    throw { status: response.status, message: e.message || text || response.statusText, kind: e.kind, param: e.param };
  }
  return body;
}

function showError(err) {
  const box = $("error");
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const title = (err.status ? err.status + " " : "") + (WHAT[err.status] || "Error");
  box.append(el("strong", { text: title }), el("span", { text: ": " + err.message }));
  if (err.kind) box.append(" ", el("code", { class: "kind", text: err.kind }));
  box.hidden = false;
}

// --- service: models and tasks -------------------------------------------------------------

async function connect(event) {
  const quiet = !event;  // on load: a keyed service answers 401 until the key is typed
  showError(null);
  try {
    const [models, tasks] = await Promise.all([api("/v1/models"), api("/v1/tasks")]);
    fillSelect($("model"), models.data.map((m) => [m.id, m.id]));
    state.tasks = Object.fromEntries(tasks.map((t) => [t.name, t]));
    fillSelect($("task"), tasks.map((t) => [t.name, t.name + " (v" + t.version + ")"]));
    describeTask();
    $("connect").textContent = "Reconnect";
    updateSnippet();
    if (sourceKind() === "schema") scheduleCheck();
  } catch (err) {
    if (quiet && err.status === 401) $("busy").textContent = "Type the API key and press Connect.";
    else showError(err);
  }
}

function fillSelect(select, options) {
  select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
  select.disabled = options.length === 0;
}

function describeTask() {
  const task = state.tasks[$("task").value];
  $("task-description").textContent = task ? task.description : "";
}

// --- schema: pasted JSON Schema or labelr config.json, checked as the user types -------------

function sourceKind() {
  return document.querySelector('input[name="source"]:checked').value;
}

function pastedSchema() {
  const text = $("schema").value.trim();
  if (!text) return { error: "paste a JSON Schema" };
  let value;
  try { value = JSON.parse(text); } catch (err) { return { error: "not valid JSON: " + err.message }; }
  // labelr's config.json: {"instructions", "json_schema"}.
  if (value && typeof value === "object" && !Array.isArray(value) && "json_schema" in value && "instructions" in value) {
    return { schema: value.json_schema, instructions: value.instructions, labelr: true };
  }
  return { schema: value };
}

function scheduleCheck() {
  clearTimeout(state.checkTimer);
  state.checkTimer = setTimeout(checkSchema, 350);
}

async function checkSchema() {
  const box = $("coverage");
  const pasted = pastedSchema();
  const seq = ++state.checkSeq;
  if (pasted.error) {
    box.replaceChildren(el("p", { class: "bad", text: pasted.error }));
    return;
  }
  try {
    const report = await api("/v1/schema/check", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ schema: pasted.schema, model: $("model").value || undefined }),
    });
    if (seq === state.checkSeq) renderCoverage(report, pasted.labelr);
  } catch (err) {
    if (seq !== state.checkSeq) return;
    const note = err.status === 404
      ? "This service has no schema check (POST /v1/schema/check): a refused schema shows as the extraction's error."
      : (err.status ? err.status + " " : "") + err.message;
    box.replaceChildren(el("p", { class: "bad", text: note }));
  }
}

function renderCoverage(report, labelr) {
  const box = $("coverage");
  const head = el("p", { class: report.accepted ? "good" : "bad", id: "coverage-verdict" });
  head.textContent = (report.accepted ? "Accepted" : "Refused") + " for " + report.backend +
    (labelr ? " (labelr config.json)" : "") + (report.refused_reason ? ": " + report.refused_reason : "");
  const counts = Object.entries(report.counts || {}).map(([k, v]) => k + " " + v).join(", ");
  const children = [head, el("p", { class: "hint", text: counts })];
  if ((report.coverage || []).length) {
    const rows = report.coverage.map((c) => el("tr", { class: "status-" + c.status },
      el("td", {}, el("code", { text: c.path })), el("td", {}, el("code", { text: c.keyword })),
      el("td", { text: c.status }), el("td", { text: c.reason || "" })));
    const table = el("table", { class: "coverage" },
      el("thead", {}, el("tr", {}, ...["path", "keyword", "status", "why"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows));
    children.push(el("div", { class: "scroll" }, table));
  }
  box.replaceChildren(...children);
}

// --- the document -----------------------------------------------------------------------------

function setFile(file) {
  state.file = file || null;
  $("drop-text").textContent = file ? file.name + " (" + Math.ceil(file.size / 1024) + " KiB)" : "Drop an image or PDF here, or choose one:";
  updateSnippet();
}

function isPdf(file) {
  return file && (file.type === "application/pdf" || /\.pdf$/i.test(file.name));
}

// Page images: the service sends each page as the model saw it (after EXIF rotation, resizing
// and PDF rendering; include_images=true). A service without that option answers without
// `pages`: then an image is shown as the browser decodes it and a PDF's pages as their numbers.
function renderPages(response) {
  const view = $("pages-view");
  const results = response.results;
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  const cards = [];
  const seen = response.pages || [];
  if (seen.length) {
    const paged = results.some((r) => r.pages.length) || seen.length > 1;
    for (const p of seen) {
      const label = paged ? "page " + p.page : state.file.name;
      cards.push(el("figure", { class: "page", "data-page": paged ? String(p.page) : "0" },
        el("img", { src: p.image, alt: label + " as the model saw it" }), el("figcaption", { text: label })));
    }
    cards.push(el("p", { class: "hint", text: "As the model saw them: rotated, resized and rendered by the service." }));
  } else if (state.file && !isPdf(state.file)) {
    state.objectUrl = URL.createObjectURL(state.file);
    cards.push(el("figure", { class: "page", "data-page": "0" },
      el("img", { src: state.objectUrl, alt: "the uploaded image" }), el("figcaption", { text: state.file.name })));
  } else {
    const pages = [...new Set(results.flatMap((r) => r.pages))].sort((a, b) => a - b);
    for (const p of pages) {
      cards.push(el("figure", { class: "page numbered", "data-page": String(p) },
        el("div", { class: "page-number", text: String(p) }), el("figcaption", { text: "page " + p })));
    }
    cards.push(el("p", { class: "hint", text: "PDF pages are rendered by the service and shown here as numbers only." }));
  }
  view.replaceChildren(...cards);
}

// --- extraction ------------------------------------------------------------------------------

function requestFields() {
  const fields = { model: $("model").value || undefined, mode: $("mode").value };
  const pages = $("pages").value.trim();
  if (pages) fields.pages = pages;
  const maxTokens = $("max-tokens").value.trim();
  if (maxTokens) fields.max_tokens = maxTokens;
  if (sourceKind() === "task") {
    fields.task = $("task").value || undefined;
  } else {
    const pasted = pastedSchema();
    if (pasted.error) throw { status: 0, message: pasted.error };
    fields.json_schema = JSON.stringify(pasted.schema);
    const instructions = $("instructions").value.trim() || pasted.instructions;
    if (instructions) fields.instructions = instructions;
  }
  return fields;
}

async function extract(event) {
  event.preventDefault();
  showError(null);
  if (!state.file) { showError({ status: 0, message: "choose an image or PDF first" }); $("file").focus(); return; }
  const button = $("run");
  try {
    const form = new FormData();
    form.append("file", state.file, state.file.name);
    for (const [k, v] of Object.entries(requestFields())) if (v !== undefined) form.append(k, v);
    form.append("include_images", "true");  // the pages as the model saw them, for the page column
    button.disabled = true;
    $("busy").textContent = "Extracting…";
    const started = performance.now();
    const response = await api("/v1/extract", { method: "POST", body: form });
    state.response = response;
    $("busy").textContent = "Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s";
    renderPages(response);
    renderResults(response);
    $("output").hidden = false;
  } catch (err) {
    $("busy").textContent = "";
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function confidenceColor(value) {
  // Red (0) to green (1) through amber.
  return "hsl(" + Math.round(120 * value) + ", 70%, 42%)";
}

function leaves(value, path = "", out = []) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [path + "[" + i + "]", v])
      : Object.entries(value).map(([k, v]) => [path ? path + "." + k : k, v]);
    if (!entries.length) out.push([path, value]);
    for (const [p, v] of entries) leaves(v, p, out);
  } else {
    out.push([path, value]);
  }
  return out;
}

function renderResults(response) {
  const box = $("results");
  box.replaceChildren(el("p", { class: "hint", text: "model " + response.model + " · task " + response.task + " v" + response.task_version }));
  response.results.forEach((r, index) => box.append(resultCard(r, index)));
}

function resultCard(r, index) {
  const valid = r.valid === true ? "valid" : r.valid === false ? "invalid" : "no schema";
  const card = el("article", { class: "result", "data-valid": String(r.valid), "aria-label": "result " + r.id });
  card.append(el("h3", {}, el("span", { text: r.id + " " }),
    el("span", { class: "badge " + (r.valid ? "good" : "bad"), text: valid })));
  const facts = [
    r.pages.length ? "pages " + r.pages.join(", ") : null,
    r.finish_reason ? "finish " + r.finish_reason : null,
    r.backend ? "backend " + r.backend : null,
    "tokens " + r.usage.prompt_tokens + " in / " + r.usage.completion_tokens + " out",
    "preprocess " + r.timings.preprocess_s.toFixed(2) + " s",
    r.timings.first_token_s != null ? "first token " + r.timings.first_token_s.toFixed(2) + " s" : null,
    "total " + r.timings.total_s.toFixed(2) + " s",
  ].filter(Boolean);
  card.append(el("p", { class: "facts", text: facts.join(" · ") }));
  if (r.error) card.append(el("p", { class: "bad", text: "error (" + (r.error_kind || "?") + "): " + r.error }));
  if (r.errors.length) {
    card.append(el("h4", { text: "Validation errors" }),
      el("ul", { class: "errors" }, ...r.errors.map((e) => el("li", {}, el("code", { text: e.path || "(root)" }), el("span", { text: " " + e.message })))));
  }
  if (r.warnings && r.warnings.length) {
    card.append(el("h4", { text: "Warnings" }),
      el("ul", { class: "warnings" }, ...r.warnings.map((w) => el("li", { text: w.kind + ": " + w.message }))));
  }
  if (r.validated_after && r.validated_after.length) {
    card.append(el("p", { class: "hint", text: "checked after generation: " + r.validated_after.join(", ") }));
  }
  if (r.data !== null && r.data !== undefined) card.append(fieldTable(r));
  if (r.conflicts && r.conflicts.length) {
    card.append(el("h4", { text: "Chunks disagreed" }), el("ul", {}, ...r.conflicts.map((c) =>
      el("li", { text: c.path + ": " + JSON.stringify(c.values) + " (kept " + JSON.stringify(c.chosen) + ")" }))));
  }
  const details = el("details", {}, el("summary", { text: "Result JSON" }), el("pre", { text: JSON.stringify(r, null, 2) }));
  if (index === 0) details.open = true;
  card.append(details);
  card.addEventListener("mouseenter", () => highlight(r.pages));
  card.addEventListener("mouseleave", () => highlight([]));
  return card;
}

function fieldTable(r) {
  const confidence = r.confidence || {};
  const review = new Set(r.review || []);
  const forced = new Set(r.forced || []);
  const sources = r.sources || null;
  const head = ["field", "value", "confidence"].concat(sources ? ["pages"] : []);
  const rows = leaves(r.data).map(([path, value]) => {
    const score = confidence[path];
    const cell = el("td", { class: "confidence" });
    if (typeof score === "number") {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round(score * 100) + "%";
      bar.style.background = confidenceColor(score);
      cell.append(el("span", { class: "meter" }, bar), el("span", { text: score.toFixed(2) }));
    }
    if (forced.has(path)) cell.append(el("span", { class: "tag", title: "the schema allowed one value: its score says nothing", text: "forced" }));
    const row = el("tr", { tabindex: "0" }, el("td", {}, el("code", { text: path || "(root)" })),
      el("td", { text: JSON.stringify(value) }), cell);
    if (review.has(path)) {
      row.classList.add("review");
      row.cells[0].append(el("span", { class: "tag review-tag", text: "review" }));
    }
    if (sources) {
      const pages = sources[path] || [];
      row.append(el("td", { text: pages.join(", ") }));
      const on = () => highlight(pages);
      row.addEventListener("mouseenter", on);
      row.addEventListener("focus", on);
    }
    return row;
  });
  const summary = r.min_confidence != null ? "lowest confidence " + r.min_confidence.toFixed(2) +
    (review.size ? " · " + review.size + " field(s) to review" : "") : "no confidence computed";
  return el("div", { class: "fields" }, el("p", { class: "hint", text: summary }),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))), el("tbody", {}, ...rows))));
}

function highlight(pages) {
  const set = new Set(pages.map(String));
  for (const fig of document.querySelectorAll("#pages-view .page")) {
    fig.classList.toggle("lit", set.has(fig.dataset.page));
  }
}

function download() {
  if (!state.response) return;
  // The page images were asked for this page's column only: the download is the extraction.
  const answer = Object.assign({}, state.response);
  delete answer.pages;
  const blob = new Blob([JSON.stringify(answer, null, 2)], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: (state.file ? state.file.name : "result") + ".json" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// --- hand the work on: the same request as curl, Python and a batch job ----------------------

function quote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

function pyString(s) {
  return JSON.stringify(String(s));
}

function snippetText(kind) {
  const name = state.file ? state.file.name : "document.pdf";
  let fields;
  try { fields = requestFields(); } catch (err) { return "# " + err.message; }
  const schemaFile = fields.json_schema ? "schema.json" : null;
  const writeSchema = schemaFile
    ? "cat > schema.json <<'EOF'\n" + JSON.stringify(JSON.parse(fields.json_schema), null, 2) + "\nEOF\n" : "";
  const pdf = isPdf(state.file) || !state.file;
  if (kind === "curl") {
    const parts = ["curl -s " + quote(BASE + "/v1/extract"), '-H "Authorization: Bearer $DOCEXTRACT_API_KEY"', "-F " + quote("file=@" + name)];
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      parts.push(k === "json_schema" ? "-F 'json_schema=<schema.json'" : "-F " + quote(k + "=" + v));
    }
    return writeSchema + parts.join(" \\\n  ");
  }
  if (kind === "httpx") {
    const data = Object.entries(fields).filter(([, v]) => v !== undefined)
      .map(([k, v]) => "        " + pyString(k) + ": " + pyString(v) + ",");
    return "import os\nimport httpx\n\nwith open(" + pyString(name) + ", \"rb\") as f:\n" +
      "    response = httpx.post(\n        " + pyString(BASE + "/v1/extract") + ",\n" +
      '        headers={"Authorization": f"Bearer {os.environ[\'DOCEXTRACT_API_KEY\']}"},\n' +
      "        files={\"file\": (" + pyString(name) + ", f)},\n        data={\n" + data.map((l) => "    " + l).join("\n") +
      "\n        },\n        timeout=300,\n    )\nresponse.raise_for_status()\nfor result in response.json()[\"results\"]:\n" +
      "    print(result[\"id\"], result[\"valid\"], result[\"data\"])";
  }
  if (kind === "openai") {
    const schema = fields.json_schema ? JSON.parse(fields.json_schema) : (state.tasks[fields.task] || {}).json_schema;
    const instructions = fields.instructions || (state.tasks[fields.task] || {}).instructions || "Extract the fields.";
    const head = "import base64, json, os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=" + pyString(BASE + "/v1") +
      ", api_key=os.environ[\"DOCEXTRACT_API_KEY\"])\n";
    if (pdf) {
      // Chat takes images; a PDF goes to /v1/extract through the same client.
      const body = Object.assign({}, fields, { json_schema: schema && fields.json_schema ? schema : undefined });
      const lines = Object.entries(body).filter(([, v]) => v !== undefined)
        .map(([k, v]) => "        " + pyString(k) + ": " + (k === "json_schema" ? "json.loads(" + pyString(JSON.stringify(v)) + ")" : pyString(v)) + ",");
      return head + "with open(" + pyString(name) + ", \"rb\") as f:\n    document = \"data:application/pdf;base64,\" + base64.b64encode(f.read()).decode()\n" +
        "# Chat completions take images; a PDF goes to /v1/extract through the same client.\n" +
        "answer = client.post(\n    \"/extract\",\n    cast_to=object,\n    body={\n        \"document\": document,\n        \"filename\": " + pyString(name) + ",\n" +
        lines.join("\n") + "\n    },\n)\nfor result in answer[\"results\"]:\n    print(result[\"id\"], result[\"valid\"], result[\"data\"])";
    }
    const type = state.file && state.file.type ? state.file.type : "image/png";
    return head + "with open(" + pyString(name) + ", \"rb\") as f:\n    image = \"data:" + type + ";base64,\" + base64.b64encode(f.read()).decode()\n" +
      "schema = json.loads(" + pyString(JSON.stringify(schema || {})) + ")\n" +
      "r = client.chat.completions.create(\n    model=" + pyString(fields.model || "") + ",\n" +
      "    messages=[{\"role\": \"user\", \"content\": [\n        {\"type\": \"image_url\", \"image_url\": {\"url\": image}},\n" +
      "        {\"type\": \"text\", \"text\": " + pyString(instructions) + "},\n    ]}],\n" +
      "    response_format={\"type\": \"json_schema\", \"json_schema\": {\"name\": \"extraction\", \"schema\": schema}},\n)\n" +
      "print(json.loads(r.choices[0].message.content))";
  }
  // docextract batch runs its own engine: --model is the Hugging Face id or path the service loads.
  const parts = ["docextract batch", "--input " + quote(name), "--output results/"];
  parts.push(fields.task ? "--task " + quote(fields.task) : "--schema schema.json");
  if (fields.instructions) parts.push("--instructions " + quote(fields.instructions));
  parts.push("--mode " + fields.mode);
  if (fields.pages) parts.push("--pages " + quote(fields.pages));
  if (fields.max_tokens) parts.push("--max-tokens " + fields.max_tokens);
  parts.push("--model MODEL_ID  # the model the service serves as " + quote(fields.model || "?"));
  return writeSchema + parts.join(" \\\n  ");
}

function updateSnippet() {
  $("snippet").textContent = snippetText(state.snippet);
}

function chooseSnippet(kind) {
  state.snippet = kind;
  for (const tab of document.querySelectorAll("[data-snippet]")) tab.setAttribute("aria-selected", String(tab.dataset.snippet === kind));
  updateSnippet();
}

async function copySnippet() {
  const text = $("snippet").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copy").textContent = "Copied";
  } catch (_) {
    // No clipboard (a page served over plain HTTP from another host than localhost): select the text for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($("snippet"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("copy").textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { $("copy").textContent = "Copy"; }, 2000);
}

// --- wiring ---------------------------------------------------------------------------------

function init() {
  $("connect").addEventListener("click", connect);
  $("api-key").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); connect(); } });
  $("task").addEventListener("change", () => { describeTask(); updateSnippet(); });
  for (const radio of document.querySelectorAll('input[name="source"]')) {
    radio.addEventListener("change", () => {
      const schema = sourceKind() === "schema";
      $("schema-box").hidden = !schema;
      $("task-box").hidden = schema;
      if (schema) scheduleCheck();
      updateSnippet();
    });
  }
  $("schema").addEventListener("input", () => { scheduleCheck(); updateSnippet(); });
  $("model").addEventListener("change", () => { if (sourceKind() === "schema") scheduleCheck(); updateSnippet(); });
  for (const id of ["instructions", "mode", "pages", "max-tokens"]) $(id).addEventListener("input", updateSnippet);
  $("file").addEventListener("change", () => setFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });
  $("request").addEventListener("submit", extract);
  $("download").addEventListener("click", download);
  $("copy").addEventListener("click", copySnippet);
  for (const tab of document.querySelectorAll("[data-snippet]")) tab.addEventListener("click", () => chooseSnippet(tab.dataset.snippet));
  updateSnippet();
  $("busy").textContent = "";
  connect();  // works at once on a service without a key; else says 401 until the key is typed
}

document.addEventListener("DOMContentLoaded", init);
