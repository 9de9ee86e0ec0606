// Building the page from data without ever parsing data as HTML: every text goes in as text.

/**
 * `h('a', {href: '#/x', class: 'y'}, 'text', child)`: an element with attributes and children
 * (strings become text nodes; null and false are skipped; arrays are flattened).
 * `on: {click: fn}` adds listeners.
 */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [type, fn] of Object.entries(v)) el.addEventListener(type, fn);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** A time as people read it here (local time), with the exact UTC value on hover. */
export function time(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return h('span', {}, String(value));
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, formatTime(d));
}

export function formatTime(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A table: `columns` are `[heading, (row) => cell]`; an empty list says so. */
export function table(columns, rows, empty = 'Nothing to show.') {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, columns.map(([heading]) => h('th', { scope: 'col' }, heading)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(row))))))));
}

/** Pretty JSON in a block. */
export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** A word with a colour by what it means (`fired`, `dead`, `delivered` ...). */
export function badge(word) {
  const w = String(word ?? '');
  return h('span', { class: `badge badge-${w.replace(/[^a-z_]/g, '')}` }, w || '—');
}

/** A link inside the console. */
export function link(href, text) {
  return h('a', { href }, text);
}

/** A titled section. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

/** The message of an API error, in the page. */
export function problem(error) {
  const status = error.status ? ` (${error.status}${error.code ? ` ${error.code}` : ''})` : '';
  return h('p', { class: 'problem', role: 'alert' }, `${error.message}${status}`);
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A label with its input. */
export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}
