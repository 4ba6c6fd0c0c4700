// Talks to snapshop's public /v1 API; shared by the shopper page and the console.

/** An API failure with the server's own reason (the problem's `detail`), ready to show a person. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function reason(status, body) {
  // Every error is RFC 9457 problem+json: `detail` is one line written for a person.
  const detail = body && body.detail;
  if (typeof detail === "string" && detail) return detail;
  return `the server answered ${status}`;
}

/** fetch + JSON + a readable error; `key` adds the admin key header. */
export async function request(path, { method = "GET", json, form, key, signal } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  if (key) headers["X-API-Key"] = key;
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the server could not be reached; check your connection and retry");
  }
  const type = res.headers.get("content-type") || "";
  // application/json, and application/problem+json for errors
  const data = /\bjson\b/.test(type) ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new ApiError(res.status, reason(res.status, data));
  return data;
}

/** POST /v1/search as JSON, or as multipart when a photo is sent. */
export function search(body, photo, { signal } = {}) {
  if (!photo) return request("/v1/search", { method: "POST", json: body, signal });
  const form = new FormData();
  form.append("image", photo, photo.name || "photo.jpg");
  for (const [name, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    form.append(name, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  return request("/v1/search", { method: "POST", form, signal });
}

/** A thumbnail URL of another width from a ready image URL (`?w=` 160, 320 or 640). */
export function sized(url, width) {
  if (!url) return "";
  const u = new URL(url, location.origin);
  u.searchParams.set("w", String(width));
  return u.pathname + u.search;
}

/** Element builder: el("p", {class: "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatPrice(price) {
  if (price === null || price === undefined) return "";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" }).format(price);
}

/** Last segment of a category path ("Apparel/Topwear/Shirts" -> "Shirts"). */
export function leaf(path) {
  const parts = String(path || "").split("/").filter(Boolean);
  return parts.length ? parts[parts.length - 1] : "";
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
