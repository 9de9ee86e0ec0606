// A subject's timeline: search a claim, account or debtor reference; everything that happened
// to it in time order (events, what rules did, actions and their attempts, checks), each
// linking to its detail.

import { api, seg } from '../api.js';
import { badge, field, h, json, link, problem, replace, time } from '../dom.js';

const KEYS = ['claim', 'account', 'debtor'];

export async function render(main, { args }, { go }) {
  const [key = 'claim', value = ''] = args;
  const select = h('select', { name: 'key', id: 'timeline-key' },
    KEYS.map((k) => h('option', { value: k, selected: k === key }, k)));
  const input = h('input', { name: 'value', id: 'timeline-value', value, required: true, placeholder: 'C-1', spellcheck: 'false' });
  const form = h('form', { class: 'search', role: 'search', on: { submit: (e) => { e.preventDefault(); go('timeline', [select.value, input.value.trim()]); } } },
    field('Subject', select), field('Reference', input), h('button', { type: 'submit', class: 'primary' }, 'Show timeline'));
  const results = h('div', { id: 'timeline-results' });
  replace(main, h('h1', {}, value ? `Timeline of ${key} ${value}` : 'Timeline'), form, results);
  if (!value) {
    input.focus();
    replace(results, h('p', { class: 'muted' }, 'Search a claim, account or debtor reference to see what happened to it, in time order.'));
    return;
  }
  try {
    const data = await api(`/subjects/${seg(key)}/${seg(value)}/timeline`, { query: { limit: 200 } });
    replace(results, entries(data.entries, key, value));
  } catch (e) {
    replace(results, problem(e));
  }
}

function entries(list, key, value) {
  if (list.length === 0) return h('p', { class: 'empty' }, `Nothing stored about ${key} ${value}.`);
  return h('ol', { class: 'timeline' }, list.map((entry) => h('li', { class: `entry entry-${entry.kind}` },
    h('div', { class: 'entry-head' },
      time(entry.at),
      badge(entry.kind),
      h('span', { class: 'entry-summary' }, entry.summary),
      h('span', { class: 'entry-links' }, links(entry))),
    h('details', {}, h('summary', {}, 'Detail'), json(entry.detail)))));
}

function links(entry) {
  const out = [link(`#/events/${seg(entry.event_id)}`, 'event')];
  if (entry.rule_id) out.push(link(`#/rules/${seg(entry.rule_id)}`, `rule ${entry.rule_id}`));
  const d = entry.detail || {};
  if (entry.kind === 'action' && d.id) out.push(link(`#/actions/${seg(d.id)}`, 'action'));
  if (entry.kind === 'attempt' && d.action_id) out.push(link(`#/actions/${seg(d.action_id)}`, 'action'));
  return out.flatMap((a, i) => (i ? [' · ', a] : [a]));
}
