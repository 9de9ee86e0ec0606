// A bar chart drawn as inline SVG: one group of bars per hour, one bar per series, with the
// numbers in each bar's tooltip and in a table below for screen readers and exact values.

import { h } from './dom.js';

/**
 * `hours`: `[{start, events, evaluations, attempts}]`; `series`: `[[key, label, cssClass]]`.
 */
export function hourlyChart(hours, series) {
  const width = 1100;
  const height = 240;
  const left = 36;
  const bottom = 22;
  const top = 8;
  const plotW = width - left - 4;
  const plotH = height - bottom - top;
  const max = Math.max(1, ...hours.flatMap((hr) => series.map(([k]) => hr[k] || 0)));
  const step = niceStep(max);
  const ceiling = Math.ceil(max / step) * step;
  const groupW = plotW / Math.max(1, hours.length);
  const barW = Math.max(1, (groupW - 2) / series.length);
  const y = (v) => top + plotH - (v / ceiling) * plotH;
  const svg = h('svg:svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': `Per hour: ${series.map(([, label]) => label).join(', ')}; the table below has the numbers`,
  });
  for (let v = 0; v <= ceiling; v += step) {
    svg.appendChild(h('svg:line', { x1: left, x2: width - 4, y1: y(v), y2: y(v), class: 'grid' }));
    svg.appendChild(h('svg:text', { x: left - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, String(v)));
  }
  hours.forEach((hr, i) => {
    const x0 = left + i * groupW + 1;
    const start = new Date(hr.start);
    series.forEach(([key, label, cls], j) => {
      const v = hr[key] || 0;
      const bar = h('svg:rect', {
        x: x0 + j * barW, y: y(v), width: Math.max(0.5, barW - 0.5), height: Math.max(0, top + plotH - y(v)),
        class: `bar ${cls}`,
      }, h('svg:title', {}, `${label}: ${v} in the hour from ${start.toLocaleString()}`));
      svg.appendChild(bar);
    });
    if (i % Math.ceil(hours.length / 12) === 0) {
      svg.appendChild(h('svg:text', { x: x0 + groupW / 2, y: height - 6, class: 'axis', 'text-anchor': 'middle' },
        `${String(start.getHours()).padStart(2, '0')}h`));
    }
  });
  const legend = h('ul', { class: 'legend' },
    series.map(([key, label, cls]) => h('li', {}, h('span', { class: `swatch ${cls}` }),
      `${label}: ${hours.reduce((n, hr) => n + (hr[key] || 0), 0)}`)));
  const numbers = h('details', { class: 'numbers' }, h('summary', {}, 'Numbers per hour'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Hour from'), series.map(([, label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', {}, hours.map((hr) => h('tr', {}, h('td', {}, new Date(hr.start).toLocaleString()),
        series.map(([key]) => h('td', {}, String(hr[key] || 0)))))))));
  return h('figure', { class: 'chart-box' }, svg, legend, numbers);
}

function niceStep(max) {
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return Math.max(1, m * power);
  return Math.max(1, 10 * power);
}
