"""The try-it page at ``GET /``: one self-contained HTML file (inline CSS and JS, no CDN).

The page is a static shell; it reads the served models from ``/ui/models`` (with the
bearer token the person types, when the server has one) and calls the OIP v2 infer route.
Tabular models get one number field per feature; image models a drawing canvas scaled
to the input size; text classifiers a text box (sent as the BYTES input ``text``, which the
server tokenizes). The answer is a bar chart of class probabilities. A generator (a model
whose ``sampler`` is its own graph) gets a "Generate" button instead, with a count and,
when conditional, a class picker: the page draws standard normal noise, sends it (and the
class) to the infer route and paints the images it gets back. A language model (one with a
``generator`` in its signature) gets a prompt box with max tokens, temperature and seed: the
page posts to ``/v1/completions`` with ``stream: true`` and appends each server-sent event's
text to the answer as it arrives (``fetch`` and a ``ReadableStream``, no EventSource, which
cannot POST).
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>canon serve</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}
main{padding:16px 24px;display:grid;gap:16px}
section.model{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 3px #0002}
h2{margin:0 0 12px;font-size:18px}h2 small{color:#667;font-weight:normal}
.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
form.features{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:6px;
max-width:820px}
form.features label{font-size:12px;color:#445;display:flex;flex-direction:column}
form.features input{font:inherit;padding:3px 5px}
canvas{border:1px solid #99a;background:#000;touch-action:none;cursor:crosshair}
button{font:inherit;padding:6px 16px;margin:10px 8px 0 0;cursor:pointer}
.result{min-width:280px}.result .headline{font-weight:600;margin-bottom:6px}
.bar{display:grid;grid-template-columns:110px 180px 60px;gap:6px;align-items:center;
font-size:13px}
.bar .track{background:#e3e6ec;height:14px;border-radius:3px;overflow:hidden}
.bar .fill{background:#5b7bd5;height:100%}.bar.top .fill{background:#d5705b}
.bar .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.error{color:#b3261e}#auth{display:none;gap:8px;align-items:center}
.gen label{margin-right:12px;font-size:13px}.gen input{width:4em}
canvas.samples{background:#fff;cursor:default}
form.lm textarea,form.text textarea{font:inherit;width:min(640px,90vw);padding:4px}
form.lm label{margin-right:12px;font-size:13px}form.lm input{width:5em}
pre.answer{white-space:pre-wrap;font:inherit;max-width:720px;margin:0}
pre.answer .prompt{color:#667}
</style></head>
<body><header><h1>canon serve</h1></header>
<main><form id="auth"><span>This server needs a token:</span>
<input type="password" id="token" autocomplete="off"><button>Use token</button></form>
<div id="models"></div></main>
<script>
"use strict";
const $ = (sel, el = document) => el.querySelector(sel);
const esc = s => String(s).replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
let token = sessionStorage.getItem("canon-token") || "";

async function api(path, body) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers.Authorization = "Bearer " + token;
  const opts = body === undefined ? {headers}
    : {method: "POST", headers, body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({error: r.statusText}));
  if (r.status === 401) $("#auth").style.display = "flex";
  if (!r.ok) throw new Error(errorText(data, r));
  return data;
}

function errorText(data, r) {  // OIP v2 says {"error": "..."}; OpenAI {"error": {"message"}}
  const e = data && data.error;
  return (e && (e.message || e)) || r.statusText;
}

$("#auth").addEventListener("submit", e => {
  e.preventDefault();
  token = $("#token").value;
  sessionStorage.setItem("canon-token", token);
  $("#auth").style.display = "none";
  load();
});

async function load() {
  const root = $("#models");
  root.innerHTML = "";
  try {
    for (const m of await api("/ui/models")) root.appendChild(render(m));
  } catch (e) {
    root.innerHTML = '<p class="error">' + esc(e.message) + "</p>";
  }
}

function render(m) {
  const sec = document.createElement("section");
  sec.className = "model";
  sec.dataset.model = m.name;
  sec.innerHTML = "<h2>" + esc(m.name) + " <small>" + esc(m.task) + " \\u00b7 version " +
    esc(m.versions[0]) + '</small></h2><div class="row"><div class="input"></div>' +
    '<div class="result" aria-live="polite"></div></div>';
  const box = $(".input", sec);
  if (m.generator) {
    languageInput(m, box, sec);
    return sec;
  }
  if (m.sampler) {
    generatorInput(m, box, sec);
    return sec;
  }
  const read = m.kind === "image" ? canvasInput(m, box)
    : m.kind === "text" ? textInput(box) : formInput(m, box);
  const go = document.createElement("button");
  go.className = "predict";
  go.textContent = "Predict";
  go.addEventListener("click", e => { e.preventDefault(); predict(m, read, sec); });
  box.appendChild(go);
  return sec;
}

function formInput(m, el) {
  const n = m.inputs[0].shape[1];
  const names = m.features.length ? m.features : Array.from({length: n}, (_, i) => "x" + i);
  el.innerHTML = '<form class="features">' + names.map((f, i) =>
    "<label>" + esc(f) + '<input type="number" step="any" value="0" data-index="' + i +
    '" name="' + esc(f) + '"></label>').join("") + "</form>";
  return () => names.map((f, i) => {
    const v = parseFloat($('[data-index="' + i + '"]', el).value);
    if (!Number.isFinite(v)) throw new Error("feature '" + f + "' needs a number");
    return v;
  });
}

function textInput(el) {  // a text classifier: one text, tokenized by the server
  el.innerHTML = '<form class="text"><textarea class="text" rows="3" ' +
    'placeholder="a text to classify"></textarea></form>';
  return () => {
    const text = $("textarea", el).value;
    if (!text.trim()) throw new Error("type a text to classify");
    return [text];
  };
}

function canvasInput(m, el) {
  const [c, h, w] = m.image_shape;
  const cell = Math.max(4, Math.floor(256 / Math.max(h, w)));
  const grid = new Float32Array(h * w);
  const cv = document.createElement("canvas");
  cv.width = w * cell; cv.height = h * cell;
  const ctx = cv.getContext("2d");
  const draw = () => grid.forEach((v, i) => {
    const g = Math.round(v * 255);
    ctx.fillStyle = "rgb(" + g + "," + g + "," + g + ")";
    ctx.fillRect((i % w) * cell, Math.floor(i / w) * cell, cell, cell);
  });
  const paint = e => {
    const r = cv.getBoundingClientRect();
    const x = (e.clientX - r.left) / cell - 0.5, y = (e.clientY - r.top) / cell - 0.5;
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const d = Math.hypot(j - x, i - y);  // a soft round brush about 1.5 cells wide
      if (d < 1.5) grid[i * w + j] = Math.max(grid[i * w + j], Math.min(1, 1.5 - d));
    }
    draw();
  };
  cv.addEventListener("pointerdown", e => { cv.setPointerCapture(e.pointerId); paint(e); });
  cv.addEventListener("pointermove", e => { if (e.buttons) paint(e); });
  const clear = document.createElement("button");
  clear.textContent = "Clear";
  clear.addEventListener("click", e => { e.preventDefault(); grid.fill(0); draw(); });
  el.append(cv, document.createElement("br"), clear);
  draw();
  // Pixels in the data's own range (0..pixel_max), repeated over the channels.
  return () => Array.from({length: c}, () => Array.from(grid, v => v * m.pixel_max)).flat();
}

function generatorInput(m, el, sec) {
  const s = m.sampler, labels = m.labels || [];
  let html = '<form class="gen"><label>images <input type="number" class="count" min="1" ' +
    'max="100" value="20"></label>';
  if (s.conditional) {
    const k = s.classes || labels.length;
    html += '<label>class <select class="class"><option value="-1">every class</option>' +
      Array.from({length: k}, (_, i) => '<option value="' + i + '">' + esc(labels[i] ?? i) +
      "</option>").join("") + "</select></label>";
  }
  el.innerHTML = html + "</form>";
  const go = document.createElement("button");
  go.className = "generate";
  go.textContent = "Generate";
  go.addEventListener("click", e => { e.preventDefault(); generate(m, sec); });
  el.appendChild(go);
}

function languageInput(m, el, sec) {
  const most = m.generator.context - 1;
  el.innerHTML = '<form class="lm"><textarea class="prompt" rows="3" ' +
    'placeholder="a prompt to continue"></textarea><br><label>max tokens ' +
    '<input type="number" class="max-tokens" min="1" max="' + most + '" value="' +
    Math.min(64, most) + '"></label><label>temperature <input type="number" ' +
    'class="temperature" min="0" step="0.1" value="0.8"></label><label>seed ' +
    '<input type="number" class="seed" min="0" placeholder="random"></label></form>';
  const go = document.createElement("button");
  go.className = "complete";
  go.textContent = "Generate";
  go.addEventListener("click", e => { e.preventDefault(); complete(m, sec, go); });
  el.appendChild(go);
}

async function complete(m, sec, go) {
  const out = $(".result", sec), num = sel => parseFloat($(sel, sec).value);
  const body = {model: m.name, prompt: $(".prompt", sec).value, stream: true,
    max_tokens: parseInt($(".max-tokens", sec).value, 10), temperature: num(".temperature")};
  if ($(".seed", sec).value !== "") body.seed = parseInt($(".seed", sec).value, 10);
  sec.dataset.request = JSON.stringify(body);
  out.innerHTML = '<pre class="answer"><span class="prompt"></span><span class="completion">' +
    "</span></pre>";
  $(".prompt", out).textContent = body.prompt;
  const text = $(".completion", out);
  delete out.dataset.finish;
  go.disabled = true;
  try {
    const headers = {"Content-Type": "application/json"};
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch("/v1/completions", {method: "POST", headers,
      body: JSON.stringify(body)});
    if (r.status === 401) $("#auth").style.display = "flex";
    if (!r.ok) throw new Error(errorText(await r.json().catch(() => ({})), r));
    await readEvents(r.body, chunk => {
      if (chunk.error) throw new Error(chunk.error.message);
      for (const c of chunk.choices) {
        text.textContent += c.text;
        if (c.finish_reason) out.dataset.finish = c.finish_reason;
      }
    });
  } catch (e) {
    out.insertAdjacentHTML("beforeend", '<p class="error">' + esc(e.message) + "</p>");
  } finally {
    go.disabled = false;
  }
}

async function readEvents(stream, onChunk) {  // server-sent events: "data: JSON\\n\\n"
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\\n\\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\\n")) {
        const data = line.startsWith("data: ") ? line.slice(6) : "";
        if (data && data !== "[DONE]") onChunk(JSON.parse(data));
      }
    }
  }
}

function gaussian(n) {  // standard normal numbers (Box-Muller): the generator's prior
  const out = new Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random())), t = 2 * Math.PI * Math.random();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

async function generate(m, sec) {
  const s = m.sampler, out = $(".result", sec), names = s.inputs || {};
  try {
    const n = Math.max(1, Math.min(100, parseInt($(".count", sec).value, 10) || 1));
    const inputs = [{name: names.noise || s.input, shape: [n, s.latent], datatype: "FP32",
      data: gaussian(n * s.latent)}];
    if (s.conditional) {
      const k = parseInt($(".class", sec).value, 10), classes = s.classes;
      inputs.push({name: names.label || "label", shape: [n], datatype: "INT64",
        data: Array.from({length: n}, (_, i) => k < 0 ? i % classes : k)});
    }
    const body = {id: "page", inputs: inputs, outputs: [{name: s.output}]};
    sec.dataset.request = JSON.stringify(body);
    const res = await api("/v2/models/" + encodeURIComponent(m.name) + "/infer", body);
    paint(m, res.outputs.find(o => o.name === s.output) || res.outputs[0], out);
  } catch (e) {
    out.innerHTML = '<p class="error">' + esc(e.message) + "</p>";
  }
}

function paint(m, images, out) {
  // images: (N, C, H, W) in the data's units (0..pixel_max); grey or RGB on a grid.
  const [n, c, h, w] = images.shape, cols = Math.ceil(Math.sqrt(n));
  const cell = Math.max(2, Math.floor(48 / Math.max(h, w))), gap = 2;
  const cv = document.createElement("canvas");
  cv.className = "samples";
  cv.width = cols * (w * cell + gap);
  cv.height = Math.ceil(n / cols) * (h * cell + gap);
  const ctx = cv.getContext("2d"), d = images.data, top = m.pixel_max || 255, px = h * w;
  const level = v => Math.round(255 * Math.min(1, Math.max(0, v / top)));
  for (let k = 0; k < n; k++) {
    const x0 = (k % cols) * (w * cell + gap), y0 = Math.floor(k / cols) * (h * cell + gap);
    for (let i = 0; i < px; i++) {
      const at = k * c * px + i, g = level(d[at]);
      const rgb = c >= 3 ? [g, level(d[at + px]), level(d[at + 2 * px])] : [g, g, g];
      ctx.fillStyle = "rgb(" + rgb.join(",") + ")";
      ctx.fillRect(x0 + (i % w) * cell, y0 + Math.floor(i / w) * cell, cell, cell);
    }
  }
  out.dataset.images = String(n);
  out.innerHTML = '<div class="headline">' + n + " generated images</div>";
  out.appendChild(cv);
}

async function predict(m, read, sec) {
  const out = $(".result", sec);
  try {
    const data = read();
    const shape = [1].concat(m.inputs[0].shape.slice(1).map(d => d < 0 ? data.length : d));
    const body = {id: "page", inputs: [{name: m.inputs[0].name, shape: shape,
      datatype: m.inputs[0].datatype, data: data}]};
    sec.dataset.request = JSON.stringify(body);
    const res = await api("/v2/models/" + encodeURIComponent(m.name) + "/infer", body);
    show(m, res, out);
  } catch (e) {
    out.innerHTML = '<p class="error">' + esc(e.message) + "</p>";
  }
}

function show(m, res, out) {
  const byName = Object.fromEntries(res.outputs.map(o => [o.name, o.data]));
  const probs = byName.probabilities;
  if (!probs) {
    const [name, data] = Object.entries(byName)[0];
    out.innerHTML = '<div class="headline">' + esc(name) + ": <span class=\\"value\\">" +
      esc(Number(data[0]).toPrecision(6)) + "</span></div>";
    return;
  }
  const labels = m.labels || probs.map((_, i) => String(i));
  const top = probs.indexOf(Math.max(...probs));
  out.dataset.label = labels[top];
  out.innerHTML = '<div class="headline">Predicted: <span class="label">' + esc(labels[top]) +
    "</span> (" + (100 * probs[top]).toFixed(1) + "%)</div>" + probs.map((p, i) =>
      '<div class="bar' + (i === top ? " top" : "") + '" data-label="' + esc(labels[i]) +
      '" data-p="' + p + '"><span class="name">' + esc(labels[i]) +
      '</span><span class="track"><span class="fill" style="display:block;width:' +
      (100 * p).toFixed(1) + '%"></span></span><span>' + (100 * p).toFixed(1) +
      "%</span></div>").join("");
}

load();
</script></body></html>
"""
