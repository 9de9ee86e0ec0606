// A tiny YAML highlighter for rule files: comments, keys, quoted strings, numbers, booleans,
// template braces and list dashes get a class each. It colours; it does not parse or check
// (that is the API's `rules/validate`). Text goes into the page as text, never as HTML.

import { h } from './dom.js';

const TOKEN = new RegExp([
  '(#.*$)', // 1 comment (at line start or after a space, checked below)
  '("(?:[^"\\\\]|\\\\.)*"|\'(?:[^\']|\'\')*\')', // 2 quoted string
  '(\\{\\{.*?\\}\\})', // 3 template
  '(^\\s*-(?=\\s|$))', // 4 list dash
  '(^\\s*(?:- +)?[A-Za-z_][\\w.-]*(?=\\s*:(?:\\s|$)))', // 5 key
  '(\\b(?:true|false|null|yes|no)\\b)', // 6 boolean / null
  '(-?\\b\\d+(?:\\.\\d+)?\\b)', // 7 number
].join('|'), 'g');

const CLASSES = [null, 'y-comment', 'y-string', 'y-template', 'y-dash', 'y-key', 'y-bool', 'y-number'];

/** One highlighted line as nodes. */
export function highlightLine(line) {
  const out = [];
  let last = 0;
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(line); m; m = TOKEN.exec(line)) {
    if (m[0] === '') {
      TOKEN.lastIndex++;
      continue;
    }
    const group = m.findIndex((g, i) => i > 0 && g !== undefined);
    if (group === 1 && m.index > 0 && !/\s/.test(line[m.index - 1])) continue;
    if (m.index > last) out.push(line.slice(last, m.index));
    out.push(h('span', { class: CLASSES[group] }, m[0]));
    last = m.index + m[0].length;
    if (group === 1) break;
  }
  if (last < line.length) out.push(line.slice(last));
  return out;
}

/** A rule file's text as a highlighted block with line numbers. */
export function highlight(text) {
  const lines = String(text ?? '').split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return h('pre', { class: 'yaml', tabindex: '0', 'aria-label': 'Rule file' },
    h('code', {}, lines.map((line, i) => h('span', { class: 'y-line' },
      h('span', { class: 'y-no', 'aria-hidden': 'true' }, String(i + 1)), highlightLine(line), '\n'))));
}
