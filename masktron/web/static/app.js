// masktron serve: the labelling page. Plain JavaScript, no build step, no network but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [255, 170, 0], [0, 130, 200], [145, 30, 180], [70, 240, 240],
  [240, 50, 230], [210, 245, 60], [250, 160, 190], [0, 128, 128], [170, 110, 40], [128, 0, 0],
];
const CURRENT_COLOR = [41, 98, 255];
const DRAG_PIXELS = 5; // a press that moves farther than this (screen pixels) draws a box

// Everything the page knows; `window.masktron` lets tests and curious users read it.
const S = {
  images: [], categories: [], index: -1, category: null, objects: [], selected: null,
  points: [], box: null, mask: null, score: null, decodeMs: null, replace: null,
  embedded: false, request: 0, decoded: 0, drag: null, hasSam: false, hasDetector: false,
};
window.masktron = S;

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!isError);
}

async function api(method, path, body) {
  const options = { method, headers: { "X-Masktron": "1" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const colorOf = (categoryId) => PALETTE[(categoryId - 1 + PALETTE.length) % PALETTE.length];
const currentImage = () => S.images[S.index];
const categoryName = (id) => (S.categories.find((c) => c.id === id) || { name: "?" }).name;

// ------------------------------------------------------------------ drawing
// Masks come as row-major runs starting with a run of 0s: paint them into an RGBA layer.
function paintRuns(pixels, runs, rgb, alpha) {
  let pos = 0;
  const value = (alpha << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]; // little-endian RGBA
  for (let k = 0; k < runs.length; k++) {
    if (k % 2 === 1) pixels.fill(value, pos, pos + runs[k]);
    pos += runs[k];
  }
}

let objectsLayer = null; // an offscreen canvas of the accepted objects, redrawn when they change

function redrawObjects() {
  const image = currentImage();
  if (!image) return;
  objectsLayer = document.createElement("canvas");
  objectsLayer.width = image.width;
  objectsLayer.height = image.height;
  const ctx = objectsLayer.getContext("2d");
  const data = ctx.createImageData(image.width, image.height);
  const pixels = new Uint32Array(data.data.buffer);
  for (const obj of S.objects) {
    if (obj.id === S.replace) continue; // being edited: shown as the current mask
    const alpha = obj.id === S.selected ? 190 : 110;
    paintRuns(pixels, obj.mask.runs, colorOf(obj.category_id), alpha);
  }
  ctx.putImageData(data, 0, 0);
  draw();
}

// Show the photo as large as the viewer allows (small photos are enlarged too).
function fitPhoto() {
  const image = currentImage();
  if (!image) return;
  const viewer = $("viewer");
  const room = [viewer.clientWidth - 16, viewer.clientHeight - 40];
  const scale = Math.min(room[0] / image.width, room[1] / image.height);
  $("photo").style.width = `${Math.max(1, Math.floor(image.width * scale))}px`;
  $("photo").style.height = `${Math.max(1, Math.floor(image.height * scale))}px`;
}

function draw() {
  const canvas = $("overlay");
  const image = currentImage();
  if (!image) return;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (objectsLayer) ctx.drawImage(objectsLayer, 0, 0);
  if (S.mask) {
    const layer = new ImageData(image.width, image.height);
    paintRuns(new Uint32Array(layer.data.buffer), S.mask.runs, CURRENT_COLOR, 140);
    const tmp = document.createElement("canvas");
    tmp.width = image.width;
    tmp.height = image.height;
    tmp.getContext("2d").putImageData(layer, 0, 0);
    ctx.drawImage(tmp, 0, 0);
  }
  const scale = image.width / Math.max(canvas.getBoundingClientRect().width, 1);
  ctx.lineWidth = 2 * scale;
  const box = S.drag && S.drag.moved ? S.drag.box : S.box;
  if (box) {
    ctx.setLineDash([6 * scale, 4 * scale]);
    ctx.strokeStyle = "#ffeb3b";
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    ctx.setLineDash([]);
  }
  for (const [x, y, label] of S.points) {
    ctx.beginPath();
    ctx.arc(x, y, 6 * scale, 0, 2 * Math.PI);
    ctx.fillStyle = label === 1 ? "#00e676" : "#ff1744";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
}

// ------------------------------------------------------------------ prompts
function imagePoint(event) {
  const rect = $("overlay").getBoundingClientRect();
  const image = currentImage();
  const round = (v) => Math.round(v * 100) / 100;
  const x = ((event.clientX - rect.left) * image.width) / rect.width;
  const y = ((event.clientY - rect.top) * image.height) / rect.height;
  return [round(Math.min(Math.max(x, 0), image.width)), round(Math.min(Math.max(y, 0), image.height))];
}

function updatePromptButtons() {
  const hasPrompt = S.points.length > 0 || S.box !== null;
  $("accept").disabled = !hasPrompt || !S.mask;
  $("clear").disabled = !hasPrompt;
  $("mask-info").textContent = S.mask
    ? `predicted IoU ${S.score.toFixed(3)}, decoded in ${S.decodeMs} ms` +
      (S.replace !== null ? ` (replaces object ${S.replace})` : "")
    : hasPrompt ? "decoding..." : "click the image, or drag a box";
}

async function decode() {
  const image = currentImage();
  const request = ++S.request;
  updatePromptButtons();
  if (S.points.length === 0 && S.box === null) {
    S.mask = null;
    draw();
    updatePromptButtons();
    return;
  }
  try {
    const result = await api("POST", "/api/decode", { image: image.name, points: S.points, box: S.box });
    if (request !== S.request) return; // a newer click is on its way
    S.mask = result.mask;
    S.score = result.score;
    S.decodeMs = result.ms;
    S.decoded++;
    setStatus(`mask in ${result.ms} ms`);
  } catch (error) {
    setStatus(error.message, true);
  }
  draw();
  updatePromptButtons();
}

function clearPrompt() {
  const wasEditing = S.replace !== null;
  S.points = [];
  S.box = null;
  S.mask = null;
  S.replace = null;
  S.request++;
  if (wasEditing) redrawObjects();
  draw();
  updatePromptButtons();
}

function onPointerDown(event) {
  if (!currentImage() || event.button > 2) return;
  event.preventDefault();
  if (!S.hasSam) return setStatus("no SAM model: start the server with --checkpoint", true);
  if (!S.embedded) return setStatus("wait: the image embedding is being computed");
  const [x, y] = imagePoint(event);
  S.drag = { x0: event.clientX, y0: event.clientY, start: [x, y], moved: false, box: null,
    negative: event.button === 2 || event.shiftKey };
  $("overlay").setPointerCapture(event.pointerId);
}

function onPointerMove(event) {
  if (!S.drag) return;
  const far = Math.hypot(event.clientX - S.drag.x0, event.clientY - S.drag.y0) > DRAG_PIXELS;
  if (!far && !S.drag.moved) return;
  const [x, y] = imagePoint(event);
  const [sx, sy] = S.drag.start;
  S.drag.moved = true;
  S.drag.box = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
  draw();
}

function onPointerUp(event) {
  if (!S.drag) return;
  const drag = S.drag;
  S.drag = null;
  if (drag.moved) {
    const b = drag.box;
    if (b[2] - b[0] >= 1 && b[3] - b[1] >= 1) S.box = b;
  } else {
    S.points.push([drag.start[0], drag.start[1], drag.negative ? 0 : 1]);
  }
  draw();
  decode();
}

// ------------------------------------------------------------------ objects and classes
async function loadObjects() {
  const image = currentImage();
  const result = await api("GET", `/api/objects/${encodeURIComponent(image.name)}`);
  if (image !== currentImage()) return;
  S.objects = result.objects;
  image.objects = S.objects.length;
  renderObjects();
  renderThumbnailCounts();
  redrawObjects();
}

function renderClasses() {
  const list = $("classes");
  list.replaceChildren();
  if (S.category === null && S.categories.length) S.category = S.categories[0].id;
  for (const c of S.categories) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "class";
    radio.value = c.id;
    radio.checked = c.id === S.category;
    radio.addEventListener("change", () => { S.category = c.id; });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colorOf(c.id).join(",")})`;
    label.append(radio, swatch, document.createTextNode(c.name));
    li.append(label);
    list.append(li);
  }
}

function renderObjects() {
  const list = $("objects");
  list.replaceChildren();
  $("object-count").textContent = `(${S.objects.length})`;
  for (const obj of S.objects) {
    const li = document.createElement("li");
    li.dataset.id = obj.id;
    li.classList.toggle("selected", obj.id === S.selected);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colorOf(obj.category_id).join(",")})`;
    const select = document.createElement("select");
    for (const c of S.categories) select.add(new Option(c.name, c.id, false, c.id === obj.category_id));
    select.addEventListener("change", () => change(() =>
      api("PATCH", `/api/object/${obj.id}`, { category_id: Number(select.value) })));
    const edit = document.createElement("button");
    edit.textContent = "edit";
    edit.title = "load this object's prompt to fix it; Accept replaces the object";
    edit.addEventListener("click", () => editObject(obj));
    const remove = document.createElement("button");
    remove.textContent = "\u2715";
    remove.title = "delete (Delete key when selected)";
    remove.className = "delete";
    remove.addEventListener("click", () => change(() => api("DELETE", `/api/object/${obj.id}`)));
    li.addEventListener("click", (e) => {
      if (e.target.tagName === "SELECT" || e.target.tagName === "BUTTON") return;
      S.selected = S.selected === obj.id ? null : obj.id;
      renderObjects();
      redrawObjects();
    });
    li.append(swatch, select, edit, remove);
    list.append(li);
  }
}

function editObject(obj) {
  const prompt = obj.prompt || { points: [], box: [obj.bbox[0], obj.bbox[1], obj.bbox[0] + obj.bbox[2], obj.bbox[1] + obj.bbox[3]] };
  S.points = prompt.points.map((p) => [...p]);
  S.box = prompt.box ? [...prompt.box] : null;
  S.replace = obj.id;
  S.category = obj.category_id;
  renderClasses();
  redrawObjects();
  decode();
}

// Run a change on the server, then show the objects as the server has them.
async function change(action, message) {
  try {
    await action();
    await loadObjects();
    setStatus(message || `saved to ${S.annotations}`);
    return true;
  } catch (error) {
    setStatus(error.message, true);
    return false;
  }
}

async function accept() {
  if ($("accept").disabled) return;
  if (S.category === null) return setStatus("add a class first (Classes, on the right)", true);
  const body = { image: currentImage().name, points: S.points, box: S.box, category_id: S.category };
  if (S.replace !== null) body.replace = S.replace;
  await change(async () => {
    await api("POST", "/api/accept", body);
    clearPrompt();
  }, `accepted as ${categoryName(S.category)}; saved`);
}

async function undo() {
  if (S.points.length || S.box) {
    if (S.points.length) S.points.pop(); else S.box = null;
    draw();
    return decode();
  }
  await change(async () => {
    const result = await api("POST", "/api/undo", { image: currentImage().name });
    if (!result.undone) throw new Error("nothing to undo on this image");
  }, "undone; saved");
}

async function addClass(event) {
  event.preventDefault();
  const name = $("new-class").value.trim();
  if (!name) return;
  $("new-class").value = ""; // now: the next name may be typed while this one is saved
  try {
    const result = await api("POST", "/api/categories", { name });
    S.categories = result.categories;
    S.category = result.id;
    renderClasses();
    renderObjects();
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function renameClass() {
  if (S.category === null) return;
  const name = window.prompt("New name of the class", categoryName(S.category));
  if (!name) return;
  try {
    S.categories = (await api("PATCH", `/api/category/${S.category}`, { name })).categories;
    renderClasses();
    renderObjects();
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function deleteClass() {
  if (S.category === null) return;
  try {
    S.categories = (await api("DELETE", `/api/category/${S.category}`)).categories;
    S.category = S.categories.length ? S.categories[0].id : null;
    renderClasses();
    renderObjects();
  } catch (error) {
    setStatus(error.message, true);
  }
}

// ------------------------------------------------------------------ images
function renderThumbnails() {
  const nav = $("thumbnails");
  nav.replaceChildren();
  S.images.forEach((image, i) => {
    const figure = document.createElement("figure");
    figure.dataset.name = image.name;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = `/api/thumbnail/${encodeURIComponent(image.name)}`;
    img.alt = image.name;
    const caption = document.createElement("figcaption");
    figure.append(img, caption);
    figure.addEventListener("click", () => openImage(i));
    nav.append(figure);
  });
  renderThumbnailCounts();
}

function renderThumbnailCounts() {
  document.querySelectorAll("#thumbnails figure").forEach((figure, i) => {
    const image = S.images[i];
    figure.classList.toggle("current", i === S.index);
    figure.querySelector("figcaption").textContent = `${image.name} (${image.objects})`;
  });
}

async function embed(image) {
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  let done = false;
  const poll = async () => {
    while (!done) {
      try {
        const p = await api("GET", "/api/progress");
        if (!done && p.image === image.name) progress.value = p.done / p.total;
      } catch (error) { /* the embedding request reports errors */ }
      await new Promise((r) => setTimeout(r, 150));
    }
  };
  setStatus("computing the image embedding...");
  poll();
  try {
    const result = await api("POST", "/api/embed", { image: image.name });
    if (image !== currentImage()) return;
    S.embedded = true;
    document.body.dataset.state = "ready";
    setStatus(`embedding ready (${result.ms} ms): click an object`);
  } finally {
    done = true;
    progress.hidden = true;
  }
}

async function openImage(index) {
  if (index < 0 || index >= S.images.length) return;
  S.index = index;
  S.selected = null;
  S.objects = [];
  S.embedded = false;
  objectsLayer = null;
  clearPrompt();
  const image = currentImage();
  document.body.dataset.state = "embedding";
  $("image-name").textContent = `${image.name} (${index + 1}/${S.images.length})`;
  $("prev").disabled = index === 0;
  $("next").disabled = index === S.images.length - 1;
  const canvas = $("overlay");
  canvas.width = image.width;
  canvas.height = image.height;
  fitPhoto();
  const photo = $("photo");
  const loaded = new Promise((resolve) => { photo.onload = resolve; photo.onerror = resolve; });
  photo.src = `/api/image/${encodeURIComponent(image.name)}`;
  renderThumbnailCounts();
  try {
    await Promise.all([loaded, loadObjects(), S.hasSam ? embed(image) : Promise.resolve()]);
    if (!S.hasSam && image === currentImage()) document.body.dataset.state = "ready";
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function uploadImage() {
  const file = $("upload").files[0];
  if (!file) return;
  try {
    const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`,
      { method: "POST", headers: { "X-Masktron": "1" }, body: file });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error);
    await loadState();
    await openImage(S.images.findIndex((i) => i.name === result.name));
  } catch (error) {
    setStatus(error.message, true);
  }
  $("upload").value = "";
}

async function loadState() {
  const state = await api("GET", "/api/state");
  S.images = state.images;
  S.categories = state.categories;
  S.hasSam = state.sam;
  S.hasDetector = state.detector;
  S.annotations = state.annotations;
  $("saved-to").textContent = `labels: ${state.annotations}`;
  $("detect").disabled = !state.detector;
  $("segment-everything").disabled = !state.sam;
  renderThumbnails();
  renderClasses();
}

async function runTool(path, what) {
  if (what === "segment everything" && S.category === null) {
    return setStatus("add a class first: the masks become objects of the chosen class", true);
  }
  setStatus(`${what}...`);
  let added = 0;
  const ok = await change(async () => {
    added = (await api("POST", path, { image: currentImage().name, category_id: S.category })).added;
    S.categories = (await api("GET", "/api/state")).categories; // detect may add classes
    renderClasses();
  });
  if (ok) setStatus(`${what}: ${added} object${added === 1 ? "" : "s"} added; saved`);
}

function onKey(event) {
  const target = event.target;
  const typing = target.tagName === "INPUT" && target.type !== "radio";
  if (typing || target.tagName === "SELECT" || target.tagName === "TEXTAREA") return;
  const key = event.key;
  if (key === "Enter") accept();
  else if (key === "Escape") clearPrompt();
  else if (key === "z" || key === "Z") undo();
  else if (key === "n" || key === "ArrowRight") openImage(S.index + 1);
  else if (key === "p" || key === "ArrowLeft") openImage(S.index - 1);
  else if ((key === "Delete" || key === "Backspace") && S.selected !== null) {
    const id = S.selected;
    S.selected = null;
    change(() => api("DELETE", `/api/object/${id}`));
  } else return;
  event.preventDefault();
}

async function start() {
  const overlay = $("overlay");
  overlay.addEventListener("pointerdown", onPointerDown);
  overlay.addEventListener("pointermove", onPointerMove);
  overlay.addEventListener("pointerup", onPointerUp);
  overlay.addEventListener("contextmenu", (e) => e.preventDefault());
  $("prev").addEventListener("click", () => openImage(S.index - 1));
  $("next").addEventListener("click", () => openImage(S.index + 1));
  $("accept").addEventListener("click", accept);
  $("clear").addEventListener("click", clearPrompt);
  $("undo").addEventListener("click", undo);
  $("class-form").addEventListener("submit", addClass);
  $("rename-class").addEventListener("click", renameClass);
  $("delete-class").addEventListener("click", deleteClass);
  $("upload").addEventListener("change", uploadImage);
  $("segment-everything").addEventListener("click", () => runTool("/api/segment-everything", "segment everything"));
  $("detect").addEventListener("click", () => runTool("/api/detect", "detect"));
  $("save").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/save");
      setStatus(`saved ${r.annotations} objects of ${r.images} images to ${r.path}`);
    } catch (error) {
      setStatus(error.message, true);
    }
  });
  window.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => { fitPhoto(); draw(); });
  try {
    await loadState();
    if (S.images.length) await openImage(0);
    else setStatus("no images in the folder: add one on the right", true);
  } catch (error) {
    setStatus(error.message, true);
  }
}

start();
