'use strict';
// The page of `pixelcnn serve`: reads the model's header, streams draws (server-sent events
// over fetch, so that a POST body can say what to draw and an abort cancels it), and paints
// levels into canvases at the model's resolution, enlarged by CSS.

const $ = (id) => document.getElementById(id);
let model = null;
let drawing = null; // levels of the drawing, channel planes after each other, row by row

function setStatus(id, text, error = false) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle('error', error);
}

async function errorOf(response) {
  try {
    return (await response.json()).error;
  } catch {
    return response.statusText;
  }
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

// POSTs `body` to `path` and calls onEvent(name, data) for each server-sent event.
async function drawStream(path, body, signal, onEvent) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw new Error(await errorOf(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

// The colour of pixel `index` of a plane in `levels` (channel planes of `plane` values each).
function rgbAt(levels, plane, index) {
  const scale = 255 / (model.levels - 1);
  if (model.colours === 1) {
    const v = levels[index] * scale;
    return [v, v, v];
  }
  return [0, 1, 2].map((c) => levels[c * plane + index] * scale);
}

// A grid of images at the model's resolution, one pixel apart, shown `scale` times larger.
class Grid {
  constructor(canvas, count, columns, scale) {
    this.canvas = canvas;
    this.columns = columns;
    const rows = Math.ceil(count / columns);
    canvas.width = columns * (model.width + 1) - 1;
    canvas.height = rows * (model.height + 1) - 1;
    canvas.style.width = `${canvas.width * scale}px`; // at most the page's width (page.css)
    this.context = canvas.getContext('2d');
    this.context.fillStyle = '#333';
    this.context.fillRect(0, 0, canvas.width, canvas.height);
  }

  origin(image) {
    return [
      (image % this.columns) * (model.width + 1),
      Math.floor(image / this.columns) * (model.height + 1),
    ];
  }

  // `levels`: the row's W levels of each channel, channel after channel.
  paintRow(image, row, levels) {
    const data = this.context.createImageData(model.width, 1);
    for (let x = 0; x < model.width; x++) {
      data.data.set([...rgbAt(levels, model.width, x), 255], 4 * x);
    }
    const [x0, y0] = this.origin(image);
    this.context.putImageData(data, x0, y0 + row);
  }
}

function columnsFor(count) {
  return Math.min(count, Math.ceil(Math.sqrt(count)));
}

// Streams a draw into `grid`, with progress in `statusId`; resolves when it ends.
async function streamInto(path, body, grid, statusId, signal) {
  const started = performance.now();
  let images = 0;
  await drawStream(path, body, signal, (name, data) => {
    if (name === 'start') images = data.images;
    if (name === 'row') {
      data.images.forEach((levels, image) => grid.paintRow(image, data.row, levels));
      setStatus(statusId, `row ${data.row + 1} of ${model.height}`);
    }
    if (name === 'done') {
      const seconds = (performance.now() - started) / 1000;
      setStatus(statusId, `${images} images in ${seconds.toFixed(2)} s`);
    }
  });
}

function classBody(select) {
  if (model.conditioning.kind !== 'class') return {};
  const value = select.value;
  return { class: value === 'all' ? 'all' : Number(value) };
}

// ---- Generate ----
let generation = null;

async function generate() {
  const n = Number($('gen-n').value);
  const body = {
    n,
    seed: Number($('gen-seed').value),
    temperature: Number($('gen-temperature').value),
    ...classBody($('gen-class')),
  };
  const classes = model.conditioning.classes;
  const columns = body.class === 'all' && n >= classes ? classes : columnsFor(n);
  const grid = new Grid($('gen-grid'), n, columns, 4);
  generation = new AbortController();
  $('gen-start').disabled = true;
  $('gen-stop').disabled = false;
  document.body.dataset.generation = 'running';
  try {
    await streamInto('/api/generate', body, grid, 'gen-status', generation.signal);
    document.body.dataset.generation = 'done';
  } catch (error) {
    document.body.dataset.generation = 'stopped';
    setStatus('gen-status', generation.signal.aborted ? 'stopped' : error.message, !generation.signal.aborted);
  } finally {
    $('gen-start').disabled = false;
    $('gen-stop').disabled = true;
  }
}

// ---- Draw, complete, and where the model is surprised ----
function plane() {
  return model.height * model.width;
}

function renderDrawing() {
  const canvas = $('draw-canvas');
  const context = canvas.getContext('2d');
  const data = context.createImageData(model.width, model.height);
  const kept = Number($('draw-rows').value) * model.width;
  for (let i = 0; i < plane(); i++) {
    let [r, g, b] = rgbAt(drawing, plane(), i);
    if (i >= kept) [r, g, b] = [r * 0.5, g * 0.5, b * 0.5 + 60]; // the rows the model redraws
    data.data.set([r, g, b, 255], 4 * i);
  }
  context.putImageData(data, 0, 0);
}

// The drawing's cell under a pointer event.
function cellOf(event) {
  const box = $('draw-canvas').getBoundingClientRect();
  return [
    Math.floor(((event.clientX - box.left) / box.width) * model.width),
    Math.floor(((event.clientY - box.top) / box.height) * model.height),
  ];
}

// Inks a 2×2 brush at every cell on the line from `from` to `to`.
function paintLine(from, to) {
  const steps = Math.max(Math.abs(to[0] - from[0]), Math.abs(to[1] - from[1]), 1);
  for (let s = 0; s <= steps; s++) {
    const x = Math.round(from[0] + ((to[0] - from[0]) * s) / steps);
    const y = Math.round(from[1] + ((to[1] - from[1]) * s) / steps);
    for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
      const [px, py] = [x + dx, y + dy];
      if (px < 0 || py < 0 || px >= model.width || py >= model.height) continue;
      for (let c = 0; c < model.colours; c++) drawing[c * plane() + py * model.width + px] = model.levels - 1;
    }
  }
  renderDrawing();
}

let scoring = null;
function scoreSoon() {
  clearTimeout(scoring);
  scoring = setTimeout(score, 150);
}

async function score() {
  const body = { image: drawing };
  if (model.conditioning.kind === 'class') body.class = Number($('draw-class').value);
  try {
    const surprise = await postJson('/api/nll', body);
    paintHeat(surprise.pixels);
    const text = `${surprise.nll_nats.toFixed(2)} nats, ${surprise.bits_per_dim.toFixed(4)} bits/dim`;
    setStatus('surprise', `negative log-likelihood of the drawing: ${text}`);
    document.body.dataset.surprise = String(surprise.nll_nats);
  } catch (error) {
    setStatus('surprise', error.message, true);
  }
}

// Black → red → yellow → white, on one scale from 0 to the drawing's largest value.
function paintHeat(pixels) {
  const canvas = $('heat-canvas');
  const context = canvas.getContext('2d');
  const data = context.createImageData(model.width, model.height);
  const max = Math.max(...pixels, 1e-6);
  pixels.forEach((value, i) => {
    const t = value / max;
    const rgb = [Math.min(1, 3 * t), Math.min(1, Math.max(0, 3 * t - 1)), Math.max(0, 3 * t - 2)];
    data.data.set([...rgb.map((v) => v * 255), 255], 4 * i);
  });
  context.putImageData(data, 0, 0);
}

async function loadTestImage(index) {
  const response = await fetch(`/api/test-image/${index}`);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

async function loadIntoDrawing() {
  try {
    const test = await loadTestImage(Number($('draw-index').value));
    drawing = test.image;
    if (test.label !== null && model.conditioning.kind === 'class') $('draw-class').value = test.label;
    setStatus('draw-status', test.label === null ? '' : `test image ${test.index}, label ${test.label}`);
    renderDrawing();
    score();
  } catch (error) {
    setStatus('draw-status', error.message, true);
  }
}

async function complete() {
  const n = Number($('draw-n').value);
  const body = {
    image: drawing,
    rows: Number($('draw-rows').value),
    n,
    seed: Number($('gen-seed').value),
    temperature: Number($('gen-temperature').value),
  };
  if (model.conditioning.kind === 'class') body.class = Number($('draw-class').value);
  const grid = new Grid($('completions'), n, Math.min(n, 8), 4);
  document.body.dataset.completion = 'running';
  $('draw-complete').disabled = true;
  try {
    await streamInto('/api/complete', body, grid, 'draw-status');
    document.body.dataset.completion = 'done';
  } catch (error) {
    document.body.dataset.completion = 'failed';
    setStatus('draw-status', error.message, true);
  } finally {
    $('draw-complete').disabled = false;
  }
}

// ---- Auto-encoders: decode a test image's code ----
async function decode() {
  const index = Number($('dec-index').value);
  const n = Number($('dec-n').value);
  try {
    const test = await loadTestImage(index);
    const original = new Grid($('dec-original'), 1, 1, 10);
    for (let row = 0; row < model.height; row++) {
      const levels = [];
      for (let c = 0; c < model.colours; c++) {
        const start = c * plane() + row * model.width;
        levels.push(...test.image.slice(start, start + model.width));
      }
      original.paintRow(0, row, levels);
    }
    const grid = new Grid($('dec-grid'), n, columnsFor(n), 4);
    const body = { index, n, seed: Number($('gen-seed').value), temperature: Number($('gen-temperature').value) };
    await streamInto('/api/reconstruct', body, grid, 'dec-status');
  } catch (error) {
    setStatus('dec-status', error.message, true);
  }
}

// ---- Start ----
function describeModel(m) {
  const kind = m.colours === 1 ? 'grayscale' : 'RGB';
  const conditioning = m.conditioning.kind === 'class' ? `, conditioned on ${m.conditioning.classes} classes` : '';
  let text = `${m.name}: ${m.arch} (${m.layers} layers × ${m.channels} channels, ` +
    `${m.parameters.toLocaleString('en')} parameters), K = ${m.levels} levels, ${m.height}×${m.width} ${kind}${conditioning}.`;
  if (m.score) {
    text += ` Test NLL ${m.score.nll_nats.toFixed(2)} nats/image (${m.score.bits_per_dim.toFixed(4)} bits/dim) ` +
      `on ${m.score.images.toLocaleString('en')} test images (${m.score.source}).`;
  }
  return text;
}

function fillClasses(select, withAll) {
  if (withAll) select.add(new Option('all (one column per class)', 'all'));
  const names = model.class_names;
  for (let c = 0; c < model.conditioning.classes; c++) {
    const label = names && names[c] !== String(c) ? `${c}: ${names[c]}` : String(c);
    select.add(new Option(label, String(c)));
  }
}

async function start() {
  const response = await fetch('/api/model');
  model = await response.json();
  $('model').textContent = describeModel(model);
  const classConditional = model.conditioning.kind === 'class';
  for (const element of document.querySelectorAll('.class-only')) element.hidden = !classConditional;
  if (classConditional) {
    fillClasses($('gen-class'), true);
    fillClasses($('draw-class'), false);
    $('gen-n').value = String(2 * model.conditioning.classes);
  }
  for (const id of ['gen-n', 'draw-n', 'dec-n']) $(id).max = String(model.limits.max_images);
  for (const id of ['draw-index', 'dec-index']) $(id).max = String(Math.max(0, model.test_images - 1));
  $('draw-rows').max = String(model.height - 1);
  $('draw-rows').value = String(Math.floor(model.height / 2));
  $('draw-rows-value').textContent = $('draw-rows').value;
  for (const id of ['draw-canvas', 'heat-canvas']) {
    $(id).width = model.width;
    $(id).height = model.height;
  }
  drawing = new Array(model.colours * plane()).fill(0);
  renderDrawing();
  if (model.autoencoder) {
    $('generate-section').hidden = true;
    for (const id of ['draw-rows', 'draw-n', 'draw-complete']) $(id).closest('label, button').hidden = true;
    $('decode-section').hidden = false;
  }

  $('gen-temperature').addEventListener('input', () => {
    $('gen-temperature-value').textContent = Number($('gen-temperature').value).toFixed(2);
  });
  $('gen-start').addEventListener('click', generate);
  $('gen-stop').addEventListener('click', () => generation && generation.abort());
  $('draw-rows').addEventListener('input', () => {
    $('draw-rows-value').textContent = $('draw-rows').value;
    renderDrawing();
  });
  const canvas = $('draw-canvas');
  let last = null; // the cell of the pointer while pressed
  canvas.addEventListener('pointerdown', (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = cellOf(event);
    paintLine(last, last);
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!last) return;
    const cell = cellOf(event);
    paintLine(last, cell);
    last = cell;
  });
  const release = () => {
    if (last) scoreSoon();
    last = null;
  };
  canvas.addEventListener('pointerup', release);
  canvas.addEventListener('pointercancel', release);
  $('draw-clear').addEventListener('click', () => {
    drawing.fill(0);
    renderDrawing();
    score();
  });
  $('draw-class').addEventListener('change', score);
  $('draw-load').addEventListener('click', loadIntoDrawing);
  $('draw-complete').addEventListener('click', complete);
  $('dec-start').addEventListener('click', decode);
  score();
  document.body.dataset.ready = 'yes';
}

start().catch((error) => setStatus('model', `cannot load the model: ${error.message}`, true));
