// SpinalSAM image panel: draws the slice, maps the pointer to image pixels itself and sends
// prompts to Python. Runs as gr.HTML's js_on_load (element, trigger, props, watch are given).
//
// Why our own mapping: a browser may show the slice at any size (a 128² DICOM on a 1500 px
// screen, a 512×41 slab stretched to square pixels, zoomed or panned), so the only exact
// answer is the image's on-screen rectangle from getBoundingClientRect, which includes every
// CSS size and transform. Coordinates go to Python as fractions of the image (0 ≤ f < 1), and
// Python multiplies them by the slice's own pixel grid: no rounding happens on this side.
const viewer = element.querySelector(".ssam-viewer");
const stage = element.querySelector(".ssam-stage");
const img = element.querySelector(".ssam-img");
const preview = element.querySelector(".ssam-box");
const info = element.querySelector(".ssam-info");
const buttons = Array.from(element.querySelectorAll("button[data-mode]"));
const MIN_STAGE_PX = 220; // as .ssam-stage's min-height
const CHROME_PX = 236; // title, toolbar and a two-line status; app.css bounds #image-column alike
const state = { mode: "positive", zoom: 1, tx: 0, ty: 0, drag: null, grid: "", sent: null };

function setMode(mode) {
  state.mode = mode;
  buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
  stage.dataset.mode = mode;
}

function fit() {
  // The largest size that fits the panel's width and the window's height less the title,
  // toolbar and status line, keeping the image's aspect (so the whole image is on screen with
  // its answer below it); small slices are scaled up (the mapping below does not care).
  const v = props.value;
  if (!v || !v.src) return;
  const width = stage.clientWidth || element.clientWidth || 512;
  const maxH = Math.max(MIN_STAGE_PX, window.innerHeight - CHROME_PX);
  const aspect = v.height / v.width;
  const w = Math.min(width, maxH / aspect);
  const h = w * aspect;
  img.style.width = `${w}px`;
  img.style.height = `${h}px`;
  const stageH = Math.max(h, MIN_STAGE_PX);
  img.style.left = `${(width - w) / 2}px`;
  img.style.top = `${(stageH - h) / 2}px`; // thin slabs sit in the middle of the panel
  stage.style.height = `${stageH}px`;
  img.classList.toggle("ssam-pixelated", w / v.cols >= 2);
  transform();
}

function transform() {
  img.style.transform = `translate(${state.tx}px, ${state.ty}px) scale(${state.zoom})`;
}

function zoomBy(factor) {
  // Zoom about the stage centre.
  const z = Math.min(16, Math.max(1, state.zoom * factor));
  const cx = stage.clientWidth / 2 - parseFloat(img.style.left || "0");
  const cy = stage.clientHeight / 2 - parseFloat(img.style.top || "0");
  state.tx = cx - ((cx - state.tx) * z) / state.zoom;
  state.ty = cy - ((cy - state.ty) * z) / state.zoom;
  state.zoom = z;
  if (z === 1) state.tx = state.ty = 0;
  transform();
}

function fraction(event) {
  // Where the pointer is, as a fraction of the image's on-screen rectangle.
  const r = img.getBoundingClientRect();
  return { x: (event.clientX - r.left) / r.width, y: (event.clientY - r.top) / r.height };
}

function inside(f) {
  return f.x >= 0 && f.x < 1 && f.y >= 0 && f.y < 1;
}

function show() {
  const v = props.value;
  const has = Boolean(v && v.src);
  viewer.classList.toggle("ssam-has-image", has);
  viewer.dataset.work = has && v.has_work ? "1" : "";
  viewer.classList.toggle("ssam-volume", has && v.count > 1);
  if (!has) {
    img.removeAttribute("src");
    info.textContent = "";
    return;
  }
  const grid = `${v.cols}x${v.rows}:${v.width}x${v.height}`;
  if (grid !== state.grid) {
    state.grid = grid;
    state.zoom = 1;
    state.tx = state.ty = 0;
  }
  img.onload = fit;
  img.src = v.src;
  viewer.dataset.seq = String(v.seq); // lets tests (and people) see that an answer arrived
  info.textContent = v.count > 1 ? `slice ${v.index}/${v.count - 1}` : ""; // as the status
  state.sent = null;
  stage.classList.remove("ssam-busy");
  fit();
}

function step(delta) {
  const v = props.value;
  if (!v || !v.src || v.count <= 1) return;
  const base = state.sent === null ? v.index : state.sent;
  const target = Math.min(v.count - 1, Math.max(0, base + delta));
  if (target === base) return;
  state.sent = target;
  info.textContent = `slice ${target}/${v.count - 1}`;
  trigger("step", { index: target });
}

buttons.forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
element
  .querySelectorAll("[data-step]")
  .forEach((b) => b.addEventListener("click", () => step(Number(b.dataset.step))));
element.querySelectorAll("[data-zoom]").forEach((b) =>
  b.addEventListener("click", () => {
    const z = b.dataset.zoom;
    if (z === "fit") {
      state.zoom = 1;
      state.tx = state.ty = 0;
      transform();
    } else zoomBy(z === "in" ? 1.25 : 0.8);
  })
);

stage.addEventListener("click", () => {
  // Nothing open yet: the panel is where people tap first (on a phone the upload box is two
  // screens below it), so a tap here opens the upload box's file chooser.
  if (!img.getAttribute("src")) document.querySelector("#upload input[type=file]")?.click();
});

stage.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || !img.getAttribute("src")) return;
  const f = fraction(event);
  if (state.mode !== "pan" && !inside(f)) return;
  event.preventDefault(); // no text selection or native drag; it also keeps the focus where it was…
  stage.focus({ preventScroll: true }); // …so take it: the keys (Enter, ↑/↓, N…) act on the image
  stage.setPointerCapture(event.pointerId);
  state.drag = { x: event.clientX, y: event.clientY, f, tx: state.tx, ty: state.ty };
});

stage.addEventListener("pointermove", (event) => {
  const d = state.drag;
  if (!d) return;
  if (state.mode === "pan") {
    state.tx = d.tx + event.clientX - d.x;
    state.ty = d.ty + event.clientY - d.y;
    transform();
  } else if (state.mode === "box") {
    const s = stage.getBoundingClientRect();
    const r = img.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX, r.left), r.right);
    const y = Math.min(Math.max(event.clientY, r.top), r.bottom);
    Object.assign(preview.style, {
      display: "block",
      left: `${Math.min(d.x, x) - s.left}px`,
      top: `${Math.min(d.y, y) - s.top}px`,
      width: `${Math.abs(x - d.x)}px`,
      height: `${Math.abs(y - d.y)}px`,
    });
  }
});

function endDrag(event, cancelled) {
  const d = state.drag;
  state.drag = null;
  preview.style.display = "none";
  if (!d || cancelled || state.mode === "pan") return;
  const moved = Math.hypot(event.clientX - d.x, event.clientY - d.y) > 4;
  if (state.mode === "box" && moved) {
    const f = fraction(event);
    const clamp = (t) => Math.min(Math.max(t, 0), 0.999999);
    trigger("prompt", { kind: "box", x: d.f.x, y: d.f.y, x1: clamp(f.x), y1: clamp(f.y) });
  } else if (!moved) {
    trigger("prompt", { kind: state.mode, x: d.f.x, y: d.f.y });
  } else return;
  stage.classList.add("ssam-busy");
}

stage.addEventListener("pointerup", (event) => endDrag(event, false));
stage.addEventListener("pointercancel", (event) => endDrag(event, true));

stage.addEventListener(
  "wheel",
  (event) => {
    if (!img.getAttribute("src")) return;
    event.preventDefault();
    if (event.ctrlKey || state.mode === "pan") zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15);
    else step(event.deltaY < 0 ? 1 : -1);
  },
  { passive: false }
);

// The session lives on the server and a reload starts a new one: with masks on the image, the
// browser asks before leaving (its own "Leave site?" question; the text cannot be set).
window.addEventListener("beforeunload", (event) => {
  if (document.querySelector(".ssam-viewer")?.dataset.work !== "1") return;
  event.preventDefault();
  event.returnValue = ""; // what browsers before the standard preventDefault read
});

// Keyboard, as in radiology viewers; ignored while the user types in a field.
if (!window.__spinalsamKeys) {
  window.__spinalsamKeys = true;
  document.addEventListener("keydown", (event) => {
    const tag = document.activeElement?.tagName;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || event.altKey || event.metaKey) return;
    if (tag === "BUTTON" && (event.key === "Enter" || event.key === " ")) return; // its own click
    const viewer = document.querySelector(".ssam-viewer");
    const api = viewer && viewer.__spinalsam;
    if (!api) return;
    if (event.ctrlKey) {
      if (event.key === "z") api.click("#undo", event);
      return;
    }
    const actions = {
      ArrowUp: () => api.step(1),
      PageUp: () => api.step(1),
      ArrowDown: () => api.step(-1),
      PageDown: () => api.step(-1),
      p: () => api.setMode("positive"),
      n: () => api.setMode("negative"),
      b: () => api.setMode("box"),
      m: () => api.setMode("pan"),
      s: () => api.setMode("select"),
      "+": () => api.zoomBy(1.25),
      "=": () => api.zoomBy(1.25),
      "-": () => api.zoomBy(0.8),
      0: () => api.fit0(),
      Enter: () => api.click("#segment", event),
      u: () => api.click("#undo", event),
      Escape: () => api.cancel(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}
viewer.__spinalsam = {
  step,
  setMode,
  zoomBy,
  fit0: () => {
    state.zoom = 1;
    state.tx = state.ty = 0;
    transform();
  },
  click: (selector) => document.querySelector(selector)?.click(),
  cancel: () => {
    state.drag = null;
    preview.style.display = "none";
  },
};

new ResizeObserver(fit).observe(element);
watch("value", show);
setMode("positive");
show();
