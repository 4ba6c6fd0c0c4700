// The shopper's page: a photo (cropped) and/or words -> a grid of products, facets, more like this.
import { ApiError, el, formatPrice, leaf, request, search, sized } from "./api.js";
import { CropBox, downscale, imageFrom } from "./photo.js";

const PAGE = 20;
const $ = (id) => document.getElementById(id);

const state = {
  q: "",
  category: null,
  photo: null, // the downscaled JPEG File
  crop: null,
  offset: 0,
  total: 0,
  facets: null, // counts of the query without its category filter, so a chip can be swapped
  similarTo: null, // {id, title} while showing "more like this"
  controller: null,
  last: null, // what to retry
};

const cropBox = new CropBox($("crop-img"));

// ---------------------------------------------------------------- status + states

function setStatus(text, { error = false, retry = null } = {}) {
  const box = $("status");
  box.className = error ? "status error" : "status";
  box.replaceChildren(text);
  if (retry) {
    box.append(" ", el("button", { class: "btn small", type: "button", onclick: retry }, "Retry"));
  }
}

function skeleton(n) {
  return Array.from({ length: n }, () =>
    el("div", { class: "card skeleton", "aria-hidden": "true" },
      el("div", { class: "thumb" }),
      el("div", { class: "body" }, el("div", { class: "line" }), el("div", { class: "line" }))),
  );
}

// ---------------------------------------------------------------- rendering

function card(result) {
  const base = result.image_url;
  const img = base
    ? el("img", {
        src: sized(base, 320),
        srcset: `${sized(base, 160)} 160w, ${sized(base, 320)} 320w, ${sized(base, 640)} 640w`,
        sizes: "(min-width: 1180px) 20vw, (min-width: 960px) 25vw, (min-width: 700px) 33vw, 50vw",
        alt: result.title,
        loading: "lazy",
        decoding: "async",
      })
    : el("span", { class: "meta" }, "no photo");
  // which of its photos the shopper's photo matched (a typed query's matches say little)
  const matched = state.photo ? (result.matched_image_urls || []).slice(0, 4) : [];
  return el("article", { class: "card", "data-product-id": result.product_id },
    el("div", { class: "thumb" }, img),
    el("div", { class: "body" },
      result.exact_match ? el("span", { class: "badge" }, "This exact product") : null,
      el("h3", {}, result.title),
      el("div", { class: "meta" }, leaf(result.category),
        result.price !== null && result.price !== undefined ? el("span", { class: "price" }, ` · ${formatPrice(result.price)}`) : null),
      matched.length
        ? el("div", { class: "matched" }, `Matched photo${matched.length > 1 ? "s" : ""}:`,
            matched.map((u, i) => el("img", { src: sized(u, 160), alt: `${result.title}, matched photo ${i + 1}`, loading: "lazy" })))
        : null,
      el("button", {
        class: "btn small", type: "button",
        "aria-label": `More like ${result.title}`,
        onclick: () => showSimilar(result.product_id, result.title),
      }, "More like this"),
    ),
  );
}

function renderFacets() {
  const nav = $("facets");
  const values = (state.facets && state.facets.category) || [];
  if (state.similarTo || values.length === 0) {
    nav.hidden = true;
    return;
  }
  const chip = (label, value, count) =>
    el("button", {
      class: "chip", type: "button",
      "aria-pressed": String((state.category || null) === value),
      title: value || "All categories",
      onclick: () => {
        state.category = state.category === value ? null : value;
        run({ push: true, keepFacets: true });
      },
    }, count === null ? label : `${label} (${count})`);
  const tops = values.filter((v) => !v.value.includes("/"));
  const total = tops.reduce((s, v) => s + v.count, 0);
  // each top-level category, then its subcategories: "Apparel (13) Topwear (8) Bottomwear (5)"
  const ordered = tops.flatMap((top) => [top, ...values.filter((v) => v.value.startsWith(`${top.value}/`))]);
  nav.replaceChildren(
    chip("All", null, total || null),
    ...ordered.map((v) => chip(v.value.includes("/") ? leaf(v.value) : v.value, v.value, v.count)),
  );
  nav.hidden = false;
}

function renderResults(response, append) {
  const grid = $("results");
  const cards = response.results.map(card);
  if (append) {
    grid.querySelectorAll(".skeleton").forEach((n) => n.remove());
    grid.append(...cards);
  } else {
    grid.replaceChildren(...cards);
  }
  state.total = grid.querySelectorAll(".card").length;
  $("more").hidden = state.similarTo !== null || response.results.length < PAGE;
  if (state.total === 0) {
    const hints = [];
    if (state.crop) hints.push("widen the crop box");
    if (state.category) hints.push("remove the category filter");
    if (state.q) hints.push("use fewer or other words");
    if (!hints.length) hints.push("try another photo or a few words");
    setStatus(`No products found. Try to ${hints.join(", or ")}.`);
  } else {
    const what = state.similarTo ? `Products like “${state.similarTo.title}”` : "Results";
    setStatus(`${what}: ${state.total} shown.`);
  }
}

function renderContext() {
  const bar = $("context");
  if (!state.similarTo) {
    bar.hidden = true;
    bar.replaceChildren();
    return;
  }
  bar.replaceChildren(
    el("span", {}, `More like “${state.similarTo.title}”`),
    el("button", { class: "btn small", type: "button", onclick: () => run({}) }, "Back to results"),
  );
  bar.hidden = false;
}

// ---------------------------------------------------------------- actions

function syncUrl(push) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.category) params.set("category", state.category);
  const url = params.toString() ? `/?${params}` : "/";
  if (url === location.pathname + location.search) return;
  (push ? history.pushState : history.replaceState).call(history, null, "", url);
}

async function run({ more = false, push = false, keepFacets = false } = {}) {
  if (!state.q && !state.photo) {
    setStatus("Type what you are looking for, or take or choose a photo.");
    return;
  }
  state.similarTo = null;
  renderContext();
  if (!more) state.offset = 0;
  syncUrl(push);
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const wantFacets = !more && !(keepFacets && state.facets);
  const body = {
    q: state.q || null,
    k: PAGE,
    offset: state.offset,
    filters: state.category ? { category: state.category } : null,
    crop: state.photo ? state.crop : null,
    facets: wantFacets,
  };
  state.last = () => run({ more, keepFacets });
  setStatus(state.photo ? "Searching with your photo…" : "Searching…");
  const grid = $("results");
  if (more) grid.append(...skeleton(4));
  else grid.replaceChildren(...skeleton(8));
  $("more").hidden = true;
  try {
    const started = performance.now();
    const response = await search(body, state.photo, { signal: controller.signal });
    if (wantFacets) {
      // counts of the unfiltered query keep every chip on screen while one is chosen
      state.facets = state.category ? state.facets || response.facets : response.facets;
    }
    renderFacets();
    renderResults(response, more);
    document.body.dataset.lastSearchMs = String(Math.round(performance.now() - started));
  } catch (err) {
    if (err.name === "AbortError") return;
    grid.querySelectorAll(".skeleton").forEach((n) => n.remove());
    const message = err instanceof ApiError ? err.message : String(err.message || err);
    setStatus(`Search failed: ${message}`, { error: true, retry: state.last });
  } finally {
    if (state.controller === controller) state.controller = null;
  }
}

async function showSimilar(productId, title) {
  state.similarTo = { id: productId, title };
  renderContext();
  renderFacets();
  $("more").hidden = true;
  setStatus(`Finding products like “${title}”…`);
  $("results").replaceChildren(...skeleton(8));
  try {
    const response = await request(`/v1/products/${encodeURIComponent(productId)}/similar?k=${PAGE}`);
    renderResults(response, false);
    $("context").querySelector("button")?.focus();
  } catch (err) {
    setStatus(`Could not load similar products: ${err.message}`, {
      error: true, retry: () => showSimilar(productId, title),
    });
  }
}

async function usePhoto(file) {
  if (!file) return;
  setStatus("Preparing your photo…");
  try {
    const photo = await downscale(file);
    state.photo = photo.blob;
    state.crop = null;
    state.category = null;
    state.facets = null;
    $("picker").hidden = true;
    $("cropper").hidden = false;
    await cropBox.show(photo.blob);
    const kb = Math.round(photo.blob.size / 1024);
    $("photo-note").textContent =
      `${photo.originalWidth}×${photo.originalHeight} photo, sent as ${photo.width}×${photo.height} (${kb} KB). ` +
      "Drag the box corners around the product, then search.";
    setStatus("Frame the product with the box, then choose “Search this area”.");
    $("crop-search").focus();
  } catch (err) {
    setStatus(String(err.message || err), { error: true });
  }
}

function removePhoto() {
  cropBox.destroy();
  state.photo = null;
  state.crop = null;
  state.facets = null;
  $("cropper").hidden = true;
  $("picker").hidden = false;
  if (state.q) run({});
  else {
    $("results").replaceChildren();
    $("facets").hidden = true;
    $("more").hidden = true;
    setStatus("");
  }
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  state.q = (params.get("q") || "").trim();
  state.category = params.get("category") || null;
  $("q").value = state.q;
}

// ---------------------------------------------------------------- wiring

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("q").value.trim();
  if (q !== state.q) {
    state.facets = null;
    state.category = null;
  }
  state.q = q;
  if (state.photo) state.crop = cropBox.crop();
  run({ push: true });
});
$("camera").addEventListener("change", (e) => usePhoto(e.target.files[0]));
$("file").addEventListener("change", (e) => usePhoto(e.target.files[0]));
$("crop-search").addEventListener("click", () => {
  state.crop = cropBox.crop();
  state.facets = null;
  state.category = null;
  run({});
});
$("photo-remove").addEventListener("click", removePhoto);
$("more").addEventListener("click", () => {
  state.offset = state.total;
  run({ more: true, keepFacets: true });
});

const picker = $("picker");
for (const type of ["dragenter", "dragover"]) {
  picker.addEventListener(type, (e) => {
    e.preventDefault();
    picker.classList.add("dragover");
  });
}
picker.addEventListener("dragleave", () => picker.classList.remove("dragover"));
// a photo dropped anywhere is used; the browser must not navigate away to it
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  picker.classList.remove("dragover");
  usePhoto(imageFrom(e.dataTransfer));
});
document.addEventListener("paste", (e) => {
  const file = imageFrom(e.clipboardData);
  if (file) {
    e.preventDefault();
    usePhoto(file);
  }
});
window.addEventListener("popstate", () => {
  fromUrl();
  state.facets = null;
  if (state.q || state.photo) run({});
});

fromUrl();
if (state.q) run({});
else setStatus("Type what you are looking for, or take or choose a photo.");
