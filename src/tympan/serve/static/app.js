// The page of `tympan serve`: microphone -> /stream (float32 PCM) -> live labels, timeline and events;
// a dropped file -> POST /tag -> its labels. Query options: ?window=&hop= (the stream's), ?autostart=1.
"use strict";

const options = new URLSearchParams(location.search);
const SEND_SECONDS = 0.1; // PCM per WebSocket message
const HISTORY = 120; // updates kept on the timeline
const ROWS = 6; // labels drawn on the timeline

const $ = (id) => document.getElementById(id);
let capture = null; // {context, source, node, stream, socket}
const history = []; // [{end, scores: Map(label -> score)}]
const rowLabels = []; // labels on the timeline, most recently in the top first

function showLabels(list, labels) {
  list.replaceChildren(
    ...labels.map(({ label, score }) => {
      const item = document.createElement("li");
      item.dataset.label = label;
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = label;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${Math.round(100 * Math.min(Math.max(score, 0), 1))}%`;
      const value = document.createElement("span");
      value.className = "score";
      value.textContent = score.toFixed(3);
      item.append(name, bar, value);
      return item;
    })
  );
}

function addEvent(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("events").prepend(item);
}

function drawTimeline() {
  const canvas = $("timeline");
  const context = canvas.getContext("2d");
  context.fillStyle = "#11151a";
  context.fillRect(0, 0, canvas.width, canvas.height);
  const rowHeight = canvas.height / ROWS;
  const column = canvas.width / HISTORY;
  const left = canvas.width - history.length * column;
  rowLabels.forEach((label, row) => {
    history.forEach((update, index) => {
      const score = update.scores.get(label) || 0;
      context.fillStyle = `rgba(255, 176, 59, ${score.toFixed(3)})`;
      context.fillRect(left + index * column, row * rowHeight + 1, Math.ceil(column), rowHeight - 2);
    });
    context.fillStyle = "#dfe5ec";
    context.font = "12px system-ui, sans-serif";
    context.fillText(label, 6, row * rowHeight + rowHeight / 2 + 4);
  });
}

function onUpdate(update) {
  showLabels($("live-labels"), update.labels);
  $("level").style.width = `${Math.max(0, Math.min(100, 100 + update.level_db))}%`;
  history.push({ end: update.end, scores: new Map(update.labels.map((l) => [l.label, l.score])) });
  if (history.length > HISTORY) history.shift();
  for (const { label } of update.labels.slice(0, 3).reverse()) {
    const at = rowLabels.indexOf(label);
    if (at >= 0) rowLabels.splice(at, 1);
    rowLabels.unshift(label);
  }
  rowLabels.length = Math.min(rowLabels.length, ROWS);
  drawTimeline();
  for (const event of update.began) addEvent(`${event.onset.toFixed(1)} s  ${event.label} on`);
  for (const event of update.ended)
    addEvent(`${event.onset.toFixed(1)}–${event.offset.toFixed(1)} s  ${event.label} (${event.score.toFixed(2)})`);
  $("status").textContent =
    `listening · ${update.end.toFixed(1)} s · ${update.level_db.toFixed(1)} dBFS · latency ${update.latency_ms.toFixed(0)} ms`;
}

async function start() {
  $("start").disabled = true;
  $("status").textContent = "starting…";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    const context = new AudioContext();
    await context.audioWorklet.addModule("/static/capture-worklet.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "capture");
    const query = new URLSearchParams({ sample_rate: String(context.sampleRate), format: "float32" });
    for (const key of ["window", "hop", "top_k"]) if (options.has(key)) query.set(key, options.get(key));
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/stream?${query}`);
    socket.binaryType = "arraybuffer";
    const block = new Float32Array(Math.round(SEND_SECONDS * context.sampleRate));
    let filled = 0;
    node.port.onmessage = ({ data }) => {
      let offset = 0;
      while (offset < data.length) {
        const take = Math.min(block.length - filled, data.length - offset);
        block.set(data.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === block.length) {
          if (socket.readyState === WebSocket.OPEN) socket.send(block.slice(0).buffer);
          filled = 0;
        }
      }
    };
    socket.onmessage = ({ data }) => {
      const message = JSON.parse(data);
      if (message.type === "update") onUpdate(message);
      else if (message.type === "error") $("status").textContent = `error: ${message.error}`;
      else if (message.type === "ready") $("status").textContent = `listening (window ${message.window} s, hop ${message.hop} s)`;
    };
    socket.onclose = () => stop();
    source.connect(node);
    capture = { context, source, node, stream, socket };
    $("stop").disabled = false;
  } catch (error) {
    $("status").textContent = `cannot record: ${error.message}`;
    $("start").disabled = false;
  }
}

function stop() {
  if (!capture) return;
  const { context, source, node, stream, socket } = capture;
  capture = null;
  source.disconnect();
  node.port.onmessage = null;
  stream.getTracks().forEach((track) => track.stop());
  context.close();
  if (socket.readyState === WebSocket.OPEN) socket.send("end");
  $("start").disabled = false;
  $("stop").disabled = true;
  $("status").textContent = "stopped";
}

async function tagFile(file) {
  $("file-name").textContent = `${file.name}: tagging…`;
  const body = new FormData();
  body.append("file", file);
  const response = await fetch("/tag", { method: "POST", body });
  const answer = await response.json();
  if (!response.ok) {
    $("file-name").textContent = `${file.name}: ${answer.error}`;
    $("file-labels").replaceChildren();
    return;
  }
  $("file-name").textContent = `${answer.file} · ${answer.duration} s`;
  showLabels($("file-labels"), answer.labels);
}

function setUp() {
  fetch("/health")
    .then((response) => response.json())
    .then((health) => ($("model").textContent = `${health.model} · ${health.sample_rate} Hz`));
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("file-input").addEventListener("change", (event) => event.target.files[0] && tagFile(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) tagFile(event.dataTransfer.files[0]);
  });
  drawTimeline();
  if (options.get("autostart") === "1") start();
}

setUp();
