/**
 * Small DOM helpers. Text always goes in through textContent: nothing received from the server is
 * ever parsed as HTML.
 */

/** h("td", { className: "num", dataset: { symbol } }, "text", childNode) */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node;
}

/** Set text only when it changed (cheap to call on every update). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** Restart a CSS animation class (e.g. a price flash) even if it is already running. */
export function flash(node, className) {
  node.classList.remove("flash-up", "flash-down");
  void node.offsetWidth; // force a reflow so the animation starts again
  node.classList.add(className);
}

/** Batch DOM work to one call per animation frame, however often `schedule` is called. */
export function frameBatcher(render) {
  let pending = false;
  return function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  };
}

const TOAST_LIFETIME_MS = 8000;

/** A toast in the corner: kind "info" | "success" | "warning" | "danger". */
export function toast(title, body = "", kind = "info", lifetime = TOAST_LIFETIME_MS) {
  const container = byId("toasts");
  const close = h("button", { type: "button", className: "toast-close", "aria-label": "Dismiss" }, "×");
  const node = h("div", { className: `toast toast-${kind}`, role: "status" }, close, h("strong", {}, title), body ? h("p", {}, body) : null);
  const remove = () => node.remove();
  close.addEventListener("click", remove);
  container.prepend(node);
  while (container.children.length > 5) container.lastElementChild.remove();
  if (lifetime > 0) setTimeout(remove, lifetime);
  return node;
}
