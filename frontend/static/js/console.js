// The product manager's console: edit a fusion profile and see saved vs edited side by side,
// evaluate both on a stored query set, save a new version, record judgements.
import { ApiError, debounce, el, leaf, request, search, sized } from "./api.js";

const $ = (id) => document.getElementById(id);
const KNOWN_LEGS = ["image", "image_instance", "image_text", "text_image", "text_text", "bm25"];
const SLIDER_STEPS = 60; // position 0 = off; 1..60 = 1/32 .. 32 on a log scale
const K = 10;

const state = {
  key: sessionStorage.getItem("snapshop-admin-key") || "",
  profiles: [],
  saved: null, // the profile version picked (what the "saved" column runs)
  legs: [...KNOWN_LEGS],
  query: { text: "", photo: null, queryKey: null, label: "" },
  savedIds: [],
  seq: 0, // drops answers to outdated edited searches
};

// ---------------------------------------------------------------- helpers

function status(text, error = false) {
  const box = $("status");
  box.className = error ? "status toast error" : "status toast";
  box.textContent = text;
}

function api(path, options = {}) {
  return request(path, { ...options, key: state.key });
}

function keyMessage(err) {
  if (err instanceof ApiError && err.status === 401) return "That admin key was refused (401): check it and enter it again.";
  if (err instanceof ApiError && err.status === 403) return `The admin API is off on this server (403): ${err.message}.`;
  return err.message;
}

const toWeight = (pos) => (pos <= 0 ? 0 : 2 ** (((pos - 1) / (SLIDER_STEPS - 1)) * 10 - 5));
const toPos = (w) => (w <= 0 ? 0 : Math.max(1, Math.min(SLIDER_STEPS, Math.round(((Math.log2(w) + 5) / 10) * (SLIDER_STEPS - 1) + 1))));
const fmt = (w) => (w === 0 ? "off" : w >= 10 ? w.toFixed(0) : w >= 1 ? w.toFixed(1) : w.toFixed(2));

// ---------------------------------------------------------------- fusion editor

function buildLegControls() {
  const weights = $("weights");
  const floors = $("floors");
  weights.replaceChildren();
  floors.replaceChildren();
  for (const leg of state.legs) {
    const id = `w-${leg}`;
    const out = el("output", { id: `${id}-out`, for: id });
    const range = el("input", {
      id, type: "range", min: "0", max: String(SLIDER_STEPS), step: "1", "data-leg": leg,
      "aria-describedby": `${id}-out`,
    });
    range.addEventListener("input", () => {
      range.dataset.weight = String(toWeight(Number(range.value)));
      out.textContent = fmt(Number(range.dataset.weight));
      editedChanged();
    });
    weights.append(el("div", { class: "leg" }, el("label", { for: id }, leg), range, out));
    const fid = `f-${leg}`;
    const floor = el("input", { id: fid, type: "number", step: "0.01", placeholder: "none", "data-leg": leg });
    floor.addEventListener("input", editedChanged);
    floors.append(el("div", { class: "leg" }, el("label", { for: fid }, leg), floor, el("span")));
  }
}

function setWeight(leg, w) {
  const range = $(`w-${leg}`);
  range.value = String(toPos(w));
  range.dataset.weight = String(w); // the exact saved weight until the slider is moved
  $(`w-${leg}-out`).textContent = fmt(w);
}

function loadEditor(profile) {
  const legs = new Set([...KNOWN_LEGS, ...Object.keys(profile.weights || {}), ...Object.keys(profile.floors || {})]);
  state.legs = [...legs];
  buildLegControls();
  $("method").value = profile.method;
  $("rrf-k").value = String(profile.k);
  for (const leg of state.legs) {
    const w = profile.weights[leg];
    setWeight(leg, w === undefined ? 1 : w);
    const f = profile.floors[leg];
    $(`f-${leg}`).value = f === undefined ? "" : String(f);
  }
}

function specOf(profile) {
  return { method: profile.method, k: profile.k, weights: profile.weights, floors: profile.floors };
}

function editedSpec() {
  const weights = {};
  const floors = {};
  for (const leg of state.legs) {
    weights[leg] = Number($(`w-${leg}`).dataset.weight);
    const f = $(`f-${leg}`).value.trim();
    if (f !== "") floors[leg] = Number(f);
  }
  return { method: $("method").value, k: Number($("rrf-k").value) || 60, weights, floors };
}

// ---------------------------------------------------------------- profiles

async function loadProfiles(select) {
  const data = await request("/v1/fusion/profiles");
  state.profiles = data.profiles;
  const current = select || $("profile").value || "default";
  $("profile").replaceChildren(...state.profiles.map((p) => el("option", { value: p.name }, p.name)));
  $("profile").value = state.profiles.some((p) => p.name === current) ? current : state.profiles[0].name;
  await pickProfile();
}

async function pickProfile(version) {
  const name = $("profile").value;
  const latest = state.profiles.find((p) => p.name === name);
  const versions = [];
  for (let v = latest.version; v >= (latest.version === 0 ? 0 : 1); v--) versions.push(v);
  $("version").replaceChildren(...versions.map((v) => el("option", { value: String(v) }, v === latest.version ? `${v} (current)` : String(v))));
  $("version").value = String(version ?? latest.version);
  await pickVersion();
  renderHistory(name, latest.version);
}

async function pickVersion() {
  const name = $("profile").value;
  const v = Number($("version").value);
  state.saved = await request(`/v1/fusion/profiles/${encodeURIComponent(name)}?version=${v}`);
  $("saved-title").textContent = `Saved: ${state.saved.name} v${state.saved.version}`;
  loadEditor(state.saved);
  compare();
}

async function renderHistory(name, latest) {
  const list = $("history");
  list.replaceChildren();
  if (latest === 0) {
    list.append(el("li", {}, "v0: built-in default (never saved)"));
    return;
  }
  const bodies = await Promise.all(
    Array.from({ length: latest }, (_, i) => request(`/v1/fusion/profiles/${encodeURIComponent(name)}?version=${i + 1}`)),
  );
  for (let i = bodies.length - 1; i >= 0; i--) {
    const p = bodies[i];
    const prev = bodies[i - 1];
    const changes = prev ? diff(prev, p) : ["first version"];
    list.append(el("li", {},
      el("strong", {}, `v${p.version}`), ` · ${(p.updated_at || "").slice(0, 16).replace("T", " ")} · `,
      p.description || "(no description)",
      el("div", { class: "meta" }, changes.join("; ") || "no change in the blend")));
  }
}

function diff(a, b) {
  const out = [];
  if (a.method !== b.method) out.push(`method ${a.method} → ${b.method}`);
  if (a.k !== b.k) out.push(`k ${a.k} → ${b.k}`);
  const legs = new Set([...Object.keys(a.weights), ...Object.keys(b.weights)]);
  for (const leg of legs) {
    const wa = a.weights[leg] ?? 1;
    const wb = b.weights[leg] ?? 1;
    if (wa !== wb) out.push(`${leg} ${wa} → ${wb}`);
  }
  const floors = new Set([...Object.keys(a.floors), ...Object.keys(b.floors)]);
  for (const leg of floors) {
    if (a.floors[leg] !== b.floors[leg]) out.push(`${leg} floor ${a.floors[leg] ?? "none"} → ${b.floors[leg] ?? "none"}`);
  }
  return out;
}

async function save(event) {
  event.preventDefault();
  if (!state.key) return status("Enter the admin key first: saving needs it.", true);
  const name = $("profile").value;
  const body = { ...state.saved, ...editedSpec(), description: $("description").value.trim() };
  for (const field of ["name", "version", "updated_at"]) delete body[field];
  try {
    const stored = await api(`/v1/fusion/profiles/${encodeURIComponent(name)}`, { method: "PUT", json: body });
    status(`Saved ${stored.name} as version ${stored.version}.`);
    $("description").value = "";
    await loadProfiles(name);
  } catch (err) {
    status(`Not saved: ${keyMessage(err)}`, true);
  }
}

// ---------------------------------------------------------------- side by side

function searchBody(fusion) {
  return { q: state.query.text || null, k: K, profile: state.saved ? state.saved.name : null, fusion, explain: true };
}

function moveOf(id, pos) {
  const before = state.savedIds.indexOf(id);
  if (before < 0) return el("span", { class: "move new" }, "new");
  const d = before + 1 - pos;
  if (d > 0) return el("span", { class: "move up", "aria-label": `up ${d}` }, `↑${d}`);
  if (d < 0) return el("span", { class: "move down", "aria-label": `down ${-d}` }, `↓${-d}`);
  return el("span", { class: "move", "aria-label": "same place" }, "=");
}

function explainBars(explain) {
  const entries = Object.entries(explain || {});
  const top = Math.max(1e-9, ...entries.map(([, e]) => e.contribution));
  return el("div", { class: "explain-bars" },
    entries.map(([leg, e]) => el("div", { class: "bar" },
      el("span", {}, leg),
      el("div", { title: `rank ${e.rank}, score ${e.score}, contribution ${e.contribution}` },
        el("div", { class: "fill", style: `width:${Math.round((100 * e.contribution) / top)}%` }),
        `rank ${e.rank} · score ${Number(e.score).toFixed(3)} · +${Number(e.contribution).toFixed(4)}`))));
}

function judgeButtons(result) {
  const mark = (relevant) => async (event) => {
    const judge = $("judge").value.trim();
    if (!judge) return status("Type your name in “Judge” first: every mark names who made it.", true);
    localStorage.setItem("snapshop-judge", judge);
    const body = { product_id: result.product_id, relevant, judge };
    if (state.query.queryKey) body.query_key = state.query.queryKey;
    else if (state.query.photoSha) body.image_sha256 = state.query.photoSha;
    else body.query = state.query.text;
    try {
      await api("/v1/judgements", { method: "POST", json: body });
      const group = event.target.closest(".judge");
      group.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", "false"));
      event.target.setAttribute("aria-pressed", "true");
      status(`Marked ${result.title} as ${relevant ? "relevant" : "not relevant"}.`);
      loadMarks();
    } catch (err) {
      status(`Mark not recorded: ${keyMessage(err)}`, true);
    }
  };
  return el("span", { class: "judge" },
    el("button", { class: "btn small yes", type: "button", "aria-pressed": "false", "aria-label": `${result.title}: relevant`, onclick: mark(true) }, "✓ relevant"),
    el("button", { class: "btn small no", type: "button", "aria-pressed": "false", "aria-label": `${result.title}: not relevant`, onclick: mark(false) }, "✗ not"));
}

function renderList(target, response, withMoves) {
  const items = response.results.map((r, i) => {
    const details = el("details", {}, el("summary", {}, "explain"), explainBars(r.explain));
    return el("li", { "data-product-id": r.product_id },
      el("span", { class: "pos" }, String(i + 1)),
      r.image_url ? el("img", { src: sized(r.image_url, 160), alt: r.title, loading: "lazy" }) : el("span"),
      el("div", {},
        el("div", { class: "title" }, r.title),
        el("div", { class: "sub" },
          withMoves ? moveOf(r.product_id, i + 1) : null,
          el("span", {}, `${leaf(r.category)} · ${r.score.toFixed(4)}`),
          r.exact_match ? el("span", { class: "move new" }, "exact") : null),
        el("div", { class: "sub" }, judgeButtons(r)),
        details));
  });
  target.replaceChildren(...(items.length ? items : [el("li", {}, "no results")]));
}

async function compare() {
  if (!state.saved || (!state.query.text && !state.query.photo)) return;
  try {
    const saved = await search(searchBody(specOf(state.saved)), state.query.photo);
    state.savedIds = saved.results.map((r) => r.product_id);
    renderList($("saved"), saved, false);
    await runEdited();
    loadMarks();
  } catch (err) {
    status(`Search failed: ${err.message}`, true);
  }
}

async function runEdited() {
  if (!state.saved || (!state.query.text && !state.query.photo)) return;
  const seq = ++state.seq;
  try {
    const edited = await search(searchBody(editedSpec()), state.query.photo);
    if (seq !== state.seq) return; // a newer slider position is already on its way
    renderList($("edited"), edited, true);
    status("");
  } catch (err) {
    if (seq === state.seq) status(`Edited blend not usable: ${err.message}`, true);
  }
}

const editedChanged = debounce(runEdited, 200);

// ---------------------------------------------------------------- queries

async function setPhoto(file, queryKey = null, label = "") {
  state.query.photo = file;
  state.query.queryKey = queryKey;
  state.query.photoSha = null;
  if (file && !queryKey && window.crypto && crypto.subtle) {
    // judgements key a photo by the SHA-256 of its bytes, the same as `snapshop eval` does
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    state.query.photoSha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  $("query-note").textContent = file ? `Photo: ${label || file.name}` : "";
}

async function loadQuerySets() {
  if (!state.key) return;
  const data = await api("/v1/eval/query-sets");
  const names = data.query_sets.map((s) => s.name);
  $("qset").replaceChildren(el("option", { value: "" }, "(none)"), ...names.map((n) => el("option", { value: n }, n)));
  $("eset").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  if (!names.length) $("eval-status").textContent = "No stored query set: add one with `snapshop queryset add NAME DIR`.";
}

async function pickSet() {
  const name = $("qset").value;
  const pick = $("qpick");
  if (!name) {
    pick.hidden = true;
    return;
  }
  const data = await api(`/v1/eval/query-sets/${encodeURIComponent(name)}/queries`);
  state.setQueries = data.queries;
  pick.replaceChildren(el("option", { value: "" }, "pick a query…"),
    ...data.queries.map((q, i) => el("option", { value: String(i) }, `${q.kind === "image" ? "📷" : "⌨"} ${q.label}`)));
  pick.hidden = false;
}

async function pickQuery() {
  const q = state.setQueries[Number($("qpick").value)];
  if (!q) return;
  if (q.kind === "image") {
    const res = await fetch(q.image_url, { headers: { "X-API-Key": state.key } });
    if (!res.ok) return status(`Could not load that query's photo (${res.status}).`, true);
    const blob = await res.blob();
    $("cq").value = "";
    state.query.text = "";
    await setPhoto(new File([blob], `${q.query_id}.jpg`, { type: blob.type || "image/jpeg" }), q.query_key, q.label);
  } else {
    $("cq").value = q.text;
    state.query.text = q.text;
    await setPhoto(null);
    state.query.queryKey = q.query_key;
  }
  compare();
}

async function loadMarks() {
  const list = $("marks");
  if (!state.key) return list.replaceChildren(el("li", {}, "Enter the admin key to see marks."));
  const params = new URLSearchParams({ limit: "50" });
  // the server turns typed text into its key, so the page never re-implements the normalising
  if (state.query.queryKey) params.set("query_key", state.query.queryKey);
  else if (state.query.photoSha) params.set("query_key", `image:${state.query.photoSha}`);
  else if (state.query.text) params.set("query", state.query.text);
  else return list.replaceChildren(el("li", {}, "Compare a query to see its marks."));
  try {
    const data = await api(`/v1/judgements?${params}`);
    const marks = data.judgements || [];
    list.replaceChildren(...(marks.length
      ? marks.map((m) => el("li", {}, `${m.relevant ? "✓" : "✗"} ${m.product_id} by ${m.judge}`, m.note ? ` (${m.note})` : ""))
      : [el("li", {}, "No marks for this query yet.")]));
  } catch (err) {
    list.replaceChildren(el("li", {}, `Marks not loaded: ${keyMessage(err)}`));
  }
}

async function exportMarks() {
  try {
    const res = await fetch("/v1/judgements/export", { headers: { "X-API-Key": state.key } });
    if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => ({}))).detail || res.statusText);
    const url = URL.createObjectURL(await res.blob());
    const a = el("a", { href: url, download: "judgements.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    URL.revokeObjectURL(url);
  } catch (err) {
    status(`Export failed: ${keyMessage(err)}`, true);
  }
}

// ---------------------------------------------------------------- evaluation

const METRICS = [["ndcg@10", "nDCG@10"], ["recall@10", "R@10"], ["mrr", "MRR"]];

function deltaCell(a, b) {
  const d = b - a;
  const cls = Math.abs(d) < 5e-4 ? "" : d > 0 ? "up" : "down";
  return el("td", { class: "num" }, `${a.toFixed(3)} → ${b.toFixed(3)} `, el("span", { class: `delta ${cls}` }, d === 0 ? "" : `${d > 0 ? "▲" : "▼"}${Math.abs(d).toFixed(3)}`));
}

function evalTable(doc) {
  const edited = (doc.variants && doc.variants.fusion) || {};
  const rows = [];
  for (const [kind, label] of [["image", "photos"], ["text", "typed"]]) {
    if (!doc[kind]) continue;
    rows.push(el("tr", {}, el("th", { scope: "row" }, `${label} (fused, ${doc[kind].n} queries)`),
      METRICS.map(([m]) => deltaCell(doc[kind][m], edited[kind] ? edited[kind][m] : doc[kind][m]))));
  }
  for (const [leg, block] of Object.entries(doc.legs || {})) {
    rows.push(el("tr", {}, el("th", { scope: "row" }, `${leg} alone`),
      METRICS.map(([m]) => el("td", { class: "num" }, block[m].toFixed(3)))));
  }
  return el("table", {},
    el("caption", { class: "visually-hidden" }, "Saved versus edited fusion, and each leg alone"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, ""), METRICS.map(([, h]) => el("th", { scope: "col", class: "num" }, `${h} (saved → edited)`)))),
    el("tbody", {}, rows));
}

function evalChart(doc) {
  // grouped bars of nDCG@10: saved vs edited for each kind, and each leg alone
  const edited = (doc.variants && doc.variants.fusion) || {};
  const bars = [];
  for (const [kind, label] of [["image", "photos"], ["text", "typed"]]) {
    if (!doc[kind]) continue;
    bars.push({ label: `${label} saved`, value: doc[kind]["ndcg@10"], color: "#7a8795" });
    bars.push({ label: `${label} edited`, value: (edited[kind] || doc[kind])["ndcg@10"], color: "#0b5cad" });
  }
  for (const [leg, block] of Object.entries(doc.legs || {})) bars.push({ label: leg, value: block["ndcg@10"], color: "#b9c3ce" });
  const W = 640, H = 220, pad = 28, bw = (W - pad) / bars.length;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 34}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `nDCG@10: ${bars.map((b) => `${b.label} ${b.value.toFixed(3)}`).join(", ")}`);
  bars.forEach((b, i) => {
    const h = Math.max(1, b.value * (H - 20));
    const x = pad + i * bw + 4;
    const rect = document.createElementNS(ns, "rect");
    Object.entries({ x, y: H - h, width: bw - 8, height: h, fill: b.color }).forEach(([k, v]) => rect.setAttribute(k, String(v)));
    const value = document.createElementNS(ns, "text");
    Object.entries({ x: x + (bw - 8) / 2, y: H - h - 4, "text-anchor": "middle", "font-size": "11" }).forEach(([k, v]) => value.setAttribute(k, String(v)));
    value.textContent = b.value.toFixed(2);
    const name = document.createElementNS(ns, "text");
    Object.entries({ "text-anchor": "middle", "font-size": "11" }).forEach(([k, v]) => name.setAttribute(k, String(v)));
    // one word a line, so neighbouring labels never run into each other
    b.label.split(" ").forEach((word, line) => {
      const span = document.createElementNS(ns, "tspan");
      span.setAttribute("x", String(x + (bw - 8) / 2));
      span.setAttribute("y", String(H + 14 + line * 13));
      span.textContent = word;
      name.append(span);
    });
    svg.append(rect, value, name);
  });
  return el("figure", {}, svg, el("figcaption", { class: "meta" }, "nDCG@10: fused saved vs edited, and each leg alone"));
}

function evalWorst(doc) {
  const worst = (doc.variants && doc.variants.fusion && doc.variants.fusion.worst) || doc.worst || [];
  if (!worst.length) return el("p", { class: "meta" }, "No query scored below 1.");
  return el("details", { open: true }, el("summary", {}, `Worst ${worst.length} queries of the edited fusion`),
    el("ol", { class: "history" }, worst.map((w) => el("li", {},
      el("strong", {}, w.label), ` · nDCG@10 ${w["ndcg@10"].toFixed(3)} · expected ${w.relevant.slice(0, 3).join(", ")}`,
      el("div", { class: "meta" }, `top: ${w.results.slice(0, 3).map((r) => r.title).join(" | ") || "nothing"}`)))));
}

async function runEval(event) {
  event.preventDefault();
  const box = $("eval-status");
  if (!state.key) return (box.textContent = "Enter the admin key first: evaluation needs it.");
  box.className = "status";
  box.textContent = "Evaluating saved and edited blends… (every query runs once per leg too)";
  try {
    const doc = await api("/v1/eval/run", {
      method: "POST",
      json: { query_set: $("eset").value, profile: state.saved.name, judgements: $("ejudge").checked, fusion: editedSpec(), worst: 10 },
    });
    // the server grades the profile's current version; a past version is compared through its spec
    box.textContent = `Evaluated ${doc.profile} vs edited on “${doc.query_set}”.`;
    $("eval-table").replaceChildren(evalTable(doc));
    $("eval-chart").replaceChildren(evalChart(doc));
    $("eval-worst").replaceChildren(evalWorst(doc));
  } catch (err) {
    box.className = "status error";
    box.textContent = `Evaluation failed: ${keyMessage(err)}`;
  }
}

// ---------------------------------------------------------------- key + wiring

async function useKey(key) {
  state.key = key;
  const badge = $("key-state");
  try {
    await api("/v1/eval/query-sets");
    sessionStorage.setItem("snapshop-admin-key", key);
    badge.className = "key-state ok";
    badge.textContent = "● key accepted";
    await loadQuerySets();
    loadMarks();
  } catch (err) {
    sessionStorage.removeItem("snapshop-admin-key");
    state.key = "";
    badge.className = "key-state bad";
    badge.textContent = keyMessage(err);
  }
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  useKey($("key").value.trim());
});
$("profile").addEventListener("change", () => pickProfile());
$("version").addEventListener("change", pickVersion);
$("method").addEventListener("change", editedChanged);
$("rrf-k").addEventListener("input", editedChanged);
$("reset").addEventListener("click", () => {
  loadEditor(state.saved);
  runEdited();
});
$("save-form").addEventListener("submit", save);
$("query-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.query.text = $("cq").value.trim();
  if (!state.query.photo) state.query.queryKey = null;
  compare();
});
$("cphoto").addEventListener("change", async (e) => {
  await setPhoto(e.target.files[0] || null);
  compare();
});
$("qset").addEventListener("change", pickSet);
$("qpick").addEventListener("change", pickQuery);
$("export").addEventListener("click", exportMarks);
$("eval-form").addEventListener("submit", runEval);
$("judge").value = localStorage.getItem("snapshop-judge") || "";

loadProfiles().catch((err) => status(`Could not load profiles: ${err.message}`, true));
if (state.key) useKey(state.key);
else loadMarks();
