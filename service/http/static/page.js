// The translation page: calls /v1/models and /v1/translate, shows n-best lists and attention heatmaps.
"use strict";

const $ = (id) => document.getElementById(id);
const CELL_COLOR = [37, 99, 235]; // heatmap cells
const MARK_COLOR = [245, 158, 11]; // words tied to the hovered one

const rgba = ([r, g, b], alpha) => `rgba(${r}, ${g}, ${b}, ${alpha.toFixed(3)})`;
const shown = (token) => token.replace(/^\u2581/, "") || "\u2581"; // SentencePiece's word-start mark

function headers() {
  const result = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function call(path, body) {
  const init = body === undefined ? { headers: headers() } : { method: "POST", headers: headers(), body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(`${response.status} ${data.error.status}: ${data.error.message}`);
  return data;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadModels() {
  try {
    const { models } = await call("/v1/models");
    const label = (m) => `${m.name} (${m.source_language} \u2192 ${m.target_language})`;
    $("model").replaceChildren(...models.map((m) => new Option(label(m), m.name)));
  } catch (error) {
    setStatus(`Could not list the models: ${error.message}`, true);
  }
}

async function translate(event) {
  event.preventDefault();
  const texts = $("source").value.split("\n").map((t) => t.trim()).filter((t) => t);
  if (!texts.length) return;
  const request = {
    texts,
    model: $("model").value,
    beam_size: Number($("beam-size").value),
    n_best: Number($("n-best").value),
    return_scores: true,
    return_attention: true,
  };
  if ($("attention-detail").checked) request.attention_detail = true;
  setStatus("Translating\u2026");
  $("translate").disabled = true;
  try {
    const response = await call("/v1/translate", request);
    $("results").replaceChildren(...response.translations.map(showTranslation));
    setStatus(`Translated by ${response.model} (request ${response.request_id}).`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("translate").disabled = false;
  }
}

function showTranslation(translation) {
  const node = $("result-template").content.firstElementChild.cloneNode(true);
  const best = translation.hypotheses[0];
  node.querySelector(".translation").textContent = best.text;
  node.querySelector(".n-best").replaceChildren(...translation.hypotheses.map(hypothesisItem));
  if (best.attention && best.attention.rows) showAttention(node, best.attention);
  if (translation.attention_detail) showDetail(node.querySelector(".detail"), translation.attention_detail);
  return node;
}

function hypothesisItem(hypothesis) {
  const item = document.createElement("li");
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = Number(hypothesis.score).toFixed(3);
  item.append(score, hypothesis.text);
  return item;
}

function labelled(tag, token, side, index) {
  const element = document.createElement(tag);
  element.textContent = shown(token);
  element.dataset.side = side;
  element.dataset.index = index;
  return element;
}

// A table of rowTokens x colTokens cells colored by weight(i, j); headers carry data-side sides[0] / sides[1].
function fillHeatmap(table, rowTokens, colTokens, weight, sides) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  head.append(document.createElement("th"), ...colTokens.map((t, j) => labelled("th", t, sides[1], j)));
  const body = table.createTBody();
  rowTokens.forEach((rowToken, i) => {
    const row = body.insertRow();
    row.append(labelled("th", rowToken, sides[0], i));
    colTokens.forEach((colToken, j) => {
      const cell = row.insertCell();
      cell.style.backgroundColor = rgba(CELL_COLOR, weight(i, j));
      cell.dataset.weight = weight(i, j).toFixed(4);
      cell.title = `${shown(rowToken)} \u2192 ${shown(colToken)}: ${weight(i, j).toFixed(3)}`;
    });
  });
}

function showAttention(node, attention) {
  const { rows, cols, weights } = attention;
  const weight = (i, j) => weights[i * cols + j];
  const tokens = { source: attention.source_tokens, target: attention.target_tokens };
  const spans = {};
  for (const side of ["source", "target"]) {
    spans[side] = tokens[side].map((t, k) => labelled("span", t, side, k));
    spans[side].forEach((span) => span.classList.add("token"));
    node.querySelector(`.${side}-tokens`).append(...spans[side]);
  }
  fillHeatmap(node.querySelector(".heatmap"), tokens.target, tokens.source, weight, ["target", "source"]);
  const clear = () => {
    for (const span of [...spans.source, ...spans.target]) {
      delete span.dataset.weight;
      span.style.backgroundColor = "";
    }
    node.querySelectorAll(".hovered").forEach((element) => element.classList.remove("hovered"));
  };
  const highlight = (side, index) => {
    const other = side === "target" ? "source" : "target";
    const tied = spans[other].map((_, k) => (side === "target" ? weight(index, k) : weight(k, index)));
    const strongest = Math.max(...tied) || 1;
    spans[other].forEach((span, k) => {
      span.dataset.weight = tied[k].toFixed(4);
      span.style.backgroundColor = rgba(MARK_COLOR, tied[k] / strongest);
    });
    node.querySelectorAll(`[data-side="${side}"][data-index="${index}"]`).forEach((e) => e.classList.add("hovered"));
  };
  node.querySelectorAll("[data-side]").forEach((element) => {
    element.addEventListener("mouseenter", () => {
      clear();
      highlight(element.dataset.side, Number(element.dataset.index));
    });
    element.addEventListener("mouseleave", clear);
  });
}

// Inside the model: one small map per layer and head, for each kind of attention; a click shows one with words.
function showDetail(section, detail) {
  section.hidden = false;
  const source = detail.source_tokens;
  const target = detail.target_tokens;
  const kinds = [
    ["Encoder self-attention", "encoder_self_attention", source, source],
    ["Decoder masked self-attention (the future hidden)", "decoder_self_attention", target, target],
    ["Encoder-decoder attention", "cross_attention", target, source],
  ];
  section.querySelector(".kinds").replaceChildren(
    ...kinds.map(([title, key, rowTokens, colTokens]) => {
      const kind = document.createElement("div");
      kind.className = `kind ${key}`;
      const heading = document.createElement("h4");
      heading.textContent = title;
      const maps = document.createElement("div");
      maps.className = "maps";
      const zoom = (map, canvas) => {
        section.querySelectorAll("canvas.selected").forEach((c) => c.classList.remove("selected"));
        canvas.classList.add("selected");
        section.querySelector(".zoom-title").textContent = `${title}, layer ${map.layer + 1}, head ${map.head + 1}`;
        const weight = (i, j) => map.weights[i * map.cols + j];
        fillHeatmap(section.querySelector(".zoom"), rowTokens, colTokens, weight, ["zoom-row", "zoom-col"]);
        section.querySelector(".zoom-title").scrollIntoView({ block: "start" });
      };
      const layers = new Map();
      for (const map of detail[key]) {
        if (!layers.has(map.layer)) {
          const layer = document.createElement("div");
          layer.className = "layer";
          const label = document.createElement("span");
          label.textContent = `layer ${map.layer + 1}`;
          layer.append(label);
          layers.set(map.layer, layer);
          maps.append(layer);
        }
        const figure = document.createElement("figure");
        const canvas = mapCanvas(map);
        canvas.addEventListener("click", () => zoom(map, canvas));
        const caption = document.createElement("figcaption");
        caption.textContent = `head ${map.head + 1}`;
        figure.append(canvas, caption);
        layers.get(map.layer).append(figure);
      }
      kind.append(heading, maps);
      return kind;
    }),
  );
}

function mapCanvas(map) {
  const cell = Math.max(2, Math.min(8, Math.floor(96 / Math.max(map.rows, map.cols))));
  const canvas = document.createElement("canvas");
  canvas.width = map.cols * cell;
  canvas.height = map.rows * cell;
  canvas.dataset.cell = cell;
  canvas.title = `layer ${map.layer + 1}, head ${map.head + 1}`;
  const context = canvas.getContext("2d");
  for (let i = 0; i < map.rows; i++) {
    for (let j = 0; j < map.cols; j++) {
      context.fillStyle = rgba(CELL_COLOR, map.weights[i * map.cols + j]);
      context.fillRect(j * cell, i * cell, cell, cell);
    }
  }
  return canvas;
}

$("translate-form").addEventListener("submit", translate);
$("token").addEventListener("change", loadModels);
loadModels();
