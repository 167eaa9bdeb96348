// mvsam serve: the page. Talks only to the documented /api/ routes; all coordinates sent are full-resolution
// image pixels with pixel (0, 0) at the centre of the top-left pixel.

const $ = (id) => document.getElementById(id);
const ui = {
  views: [],
  objects: [],
  selected: null, // object id
  current: 0, // view shown large
  overlayVersion: 0,
  busy: 0,
  ready: false,
  panel: null, // the 3D panel, when WebGL works
  video: false,
};

function setBusy(delta) {
  ui.busy += delta;
  document.body.dataset.busy = String(ui.busy);
}

function message(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

// Changes run one after another, in the order the user made them.
let queue = Promise.resolve();
function enqueue(label, task) {
  setBusy(1);
  message(`${label}…`);
  const run = queue.then(task).then(
    () => message(""),
    (error) => message(`${label}: ${error.message}`, true),
  ).finally(() => setBusy(-1));
  queue = run;
  return run;
}

// --- preparation progress -------------------------------------------------------------------------

const STAGES = ["loading", "geometry", "model", "embeddings", "indexing", "restoring"];

function renderStatus(status) {
  const box = $("stages");
  box.innerHTML = "";
  for (const stage of STAGES) {
    const done = status.stages_done.includes(stage) || status.ready;
    const fraction = done ? 1 : stage === status.stage ? status.progress : 0;
    const el = document.createElement("div");
    el.className = "stage" + (done ? " done" : "");
    el.dataset.stage = stage;
    el.innerHTML = `<div>${stage}</div><div class="bar"><div style="width:${Math.round(fraction * 100)}%"></div></div>`;
    box.appendChild(el);
  }
  if (status.ready) box.hidden = true;
  if (status.error) message(`preparing the scene failed: ${status.error}`, true);
}

async function pollStatus() {
  for (;;) {
    let status;
    try {
      status = await api("GET", "/api/status");
    } catch (error) {
      message(error.message, true);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    renderStatus(status);
    if (status.scene) $("scene-name").textContent = status.scene;
    if (!ui.views.length && status.stage !== "loading") await loadViews();
    if (status.error) return;
    if (status.ready) {
      $("everything").hidden = !status.auto;
      ui.video = status.mode === "video";
      for (const note of status.notes) message(note, true);
      return onReady();
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

// --- views ----------------------------------------------------------------------------------------

async function loadViews() {
  try {
    ui.views = await api("GET", "/api/views");
  } catch {
    return;
  }
  const strip = $("thumbs");
  strip.innerHTML = "";
  ui.views.forEach((view) => {
    const div = document.createElement("div");
    div.className = "thumb";
    div.dataset.index = view.index;
    div.innerHTML =
      `<img class="image" loading="lazy" alt="${view.name}" src="/api/views/${view.index}/thumb">` +
      `<img class="overlay" alt="" hidden><span></span>`;
    div.querySelector("span").textContent = view.name;
    div.addEventListener("click", () => showView(view.index));
    strip.appendChild(div);
  });
  const scrubber = $("scrubber");
  scrubber.max = String(ui.views.length - 1);
  scrubber.addEventListener("input", () => showView(Number(scrubber.value)));
  showView(0);
}

function showView(index) {
  ui.current = index;
  $("scrubber").value = String(index);
  const view = ui.views[index];
  $("big-image").src = `/api/views/${index}/image`;
  $("big-name").textContent = `${view.name} (${view.width}x${view.height})`;
  document.querySelectorAll(".thumb").forEach((el) => el.classList.toggle("current", Number(el.dataset.index) === index));
  refreshBigOverlay();
}

function refreshOverlays(views) {
  if (!ui.ready) return;
  ui.overlayVersion += 1;
  const version = ui.overlayVersion;
  for (const index of views ?? ui.views.map((v) => v.index)) {
    const img = document.querySelector(`.thumb[data-index="${index}"] img.overlay`);
    if (!img) continue;
    img.onload = () => {
      img.hidden = false;
      img.dataset.version = String(version);
    };
    img.src = `/api/views/${index}/overlay.png?v=${version}`;
  }
  document.body.dataset.overlayVersion = String(version);
  refreshBigOverlay();
}

function refreshBigOverlay() {
  if (!ui.ready) return;
  const img = $("big-overlay");
  img.onload = () => (img.dataset.version = String(ui.overlayVersion));
  img.src = `/api/views/${ui.current}/overlay.png?full=1&v=${ui.overlayVersion}`;
  drawMarks();
}

// --- prompts on the big view ----------------------------------------------------------------------

function toImage(event) {
  // displayed pixels -> full-resolution pixel coordinates (pixel centres at integers)
  const canvas = $("big-marks");
  const rect = canvas.getBoundingClientRect();
  const view = ui.views[ui.current];
  const x = ((event.clientX - rect.left) / rect.width) * view.width - 0.5;
  const y = ((event.clientY - rect.top) / rect.height) * view.height - 0.5;
  return [Math.min(Math.max(x, -0.5), view.width - 0.5), Math.min(Math.max(y, -0.5), view.height - 0.5)];
}

let dragStart = null;

function drawMarks(dragEnd = null) {
  const canvas = $("big-marks");
  const view = ui.views[ui.current];
  if (!view) return;
  canvas.width = view.width;
  canvas.height = view.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const radius = Math.max(4, view.width / 140);
  const obj = ui.objects.find((o) => o.id === ui.selected);
  for (const prompt of obj ? obj.prompts : []) {
    if (prompt.view !== ui.current) continue;
    if (prompt.box) {
      const [x0, y0, x1, y1] = prompt.box;
      ctx.strokeStyle = obj.color;
      ctx.lineWidth = radius / 2;
      ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0);
    } else {
      ctx.beginPath();
      ctx.arc(prompt.x + 0.5, prompt.y + 0.5, radius, 0, 2 * Math.PI);
      ctx.fillStyle = prompt.label === 1 ? "#28dc28" : "#e61e1e";
      ctx.fill();
      ctx.lineWidth = radius / 3;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }
  if (dragStart && dragEnd) {
    ctx.setLineDash([8, 6]);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.strokeRect(dragStart[0], dragStart[1], dragEnd[0] - dragStart[0], dragEnd[1] - dragStart[1]);
  }
}

function setupBigView() {
  const canvas = $("big-marks");
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("pointerdown", (event) => {
    if (!ui.ready) return;
    dragStart = toImage(event);
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (dragStart) drawMarks(toImage(event));
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!dragStart) return;
    const start = dragStart;
    const end = toImage(event);
    dragStart = null;
    drawMarks();
    const scale = canvas.getBoundingClientRect().width / ui.views[ui.current].width;
    const moved = Math.hypot(end[0] - start[0], end[1] - start[1]) * scale;
    if (moved > 6) {
      const box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]), Math.max(start[1], end[1])];
      addPrompt({ view: ui.current, box });
    } else {
      const label = event.button === 2 || event.shiftKey ? 0 : 1;
      addPrompt({ view: ui.current, x: start[0], y: start[1], label });
    }
  });
}

async function ensureObject() {
  if (ui.selected !== null) return ui.selected;
  const created = await api("POST", "/api/objects", {});
  ui.selected = created.id;
  return created.id;
}

function showUpdate(result, what) {
  $("timing").textContent = `${what}: ${result.views_changed.length} views updated in ${result.seconds.toFixed(2)} s`;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function addPrompt(prompt) {
  enqueue("segmenting", async () => {
    const id = await ensureObject();
    const result = await api("POST", `/api/objects/${id}/prompts`, prompt);
    showUpdate(result, "click");
    await afterChange(result.views_changed);
  });
}

async function afterChange(views) {
  await loadObjects();
  refreshOverlays(views && views.length ? views : undefined);
  ui.panel?.showObject(ui.selected, ui.objects.find((o) => o.id === ui.selected)?.color);
}

// --- objects --------------------------------------------------------------------------------------

async function loadObjects() {
  ui.objects = await api("GET", "/api/objects");
  if (ui.selected !== null && !ui.objects.some((o) => o.id === ui.selected)) ui.selected = null;
  if (ui.selected === null && ui.objects.length) ui.selected = ui.objects[0].id;
  const list = $("objects");
  list.innerHTML = "";
  for (const obj of ui.objects) {
    const li = document.createElement("li");
    li.dataset.id = obj.id;
    li.className = obj.id === ui.selected ? "selected" : "";
    li.innerHTML = `<span class="swatch"></span><span class="name"></span>` +
      `<button class="rename" title="rename">✎</button><button class="delete" title="delete">✕</button>`;
    li.querySelector(".swatch").style.background = obj.color;
    li.querySelector(".name").textContent = `${obj.name} (${obj.visible_views.length} views)`;
    li.addEventListener("click", () => selectObject(obj.id));
    li.querySelector(".rename").addEventListener("click", (event) => {
      event.stopPropagation();
      const name = prompt("Object name", obj.name);
      if (name) enqueue("renaming", async () => { await api("PATCH", `/api/objects/${obj.id}`, { name }); await loadObjects(); });
    });
    li.querySelector(".delete").addEventListener("click", (event) => {
      event.stopPropagation();
      enqueue("deleting", async () => { await api("DELETE", `/api/objects/${obj.id}`); await afterChange(); });
    });
    list.appendChild(li);
  }
  const obj = ui.objects.find((o) => o.id === ui.selected);
  $("undo").disabled = !obj?.can_undo;
  $("redo").disabled = !obj?.can_redo;
  $("clear").disabled = !obj?.steps;
  $("track").disabled = !obj?.steps || obj.tracked;
  $("export").classList.toggle("disabled", !ui.objects.some((o) => o.steps));
  drawMarks();
}

function selectObject(id) {
  ui.selected = id;
  loadObjects();
  ui.panel?.showObject(id, ui.objects.find((o) => o.id === id)?.color);
}

function objectAction(action) {
  if (ui.selected === null) return;
  enqueue(action, async () => {
    const result = await api("POST", `/api/objects/${ui.selected}/${action}`);
    showUpdate(result, action);
    await afterChange(result.views_changed);
  });
}

function setupTools() {
  $("add-object").addEventListener("click", () =>
    enqueue("adding an object", async () => {
      const created = await api("POST", "/api/objects", {});
      ui.selected = created.id;
      await loadObjects();
    }),
  );
  $("everything").addEventListener("click", () =>
    enqueue("segmenting everything", async () => {
      const result = await api("POST", "/api/auto");
      $("timing").textContent = `everything: ${result.objects} objects in ${result.seconds.toFixed(1)} s`;
      refreshOverlays();
    }),
  );
  $("undo").addEventListener("click", () => objectAction("undo"));
  $("redo").addEventListener("click", () => objectAction("redo"));
  $("clear").addEventListener("click", () => objectAction("clear"));
  $("track").addEventListener("click", () => {
    objectAction("track");
    watchTask();
  });
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey)) return;
    if (event.key === "z") objectAction("undo");
    if (event.key === "y") objectAction("redo");
  });
}

async function watchTask() {
  // the tracking request runs long; its progress comes with the status
  while (ui.busy) {
    const status = await api("GET", "/api/status").catch(() => null);
    if (status?.task) message(`${status.task.name} ${Math.round(status.task.progress * 100)}%`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// --- start ----------------------------------------------------------------------------------------

async function onReady() {
  ui.ready = true;
  document.body.dataset.ready = "true";
  $("add-object").disabled = false;
  $("everything").disabled = false;
  await loadObjects();
  refreshOverlays();
  if (ui.video) {
    document.querySelector("main").classList.add("video");
    $("panel3d").hidden = true;
    $("track").hidden = false;
    $("scrubber").hidden = false;
    return;
  }
  try {
    const { ThreePanel } = await import("/static/three_panel.js");
    ui.panel = new ThreePanel($("three"), $("show-scene"));
    await ui.panel.loadScene();
    const cameras = await api("GET", "/api/scene/cameras");
    ui.panel.lookFrom(cameras[ui.current]);
    ui.panel.showObject(ui.selected, ui.objects.find((o) => o.id === ui.selected)?.color);
  } catch (error) {
    $("three-note").textContent = `3D view unavailable: ${error.message}`;
  }
}

setupBigView();
setupTools();
pollStatus();
