// Events: filter by type, source and state and page through them (newest first); one event
// with its payload, what the rules recorded for it, and each rule's "why (not)" from explain.

import { api, seg } from '../api.js';
import { badge, field, h, json, link, problem, replace, section, table, time } from '../dom.js';

export async function render(main, { args, query }, ctx) {
  if (args[0]) return one(main, args[0]);
  return list(main, query, ctx);
}

async function list(main, query, { go }) {
  const filters = { type: query.get('type') || '', source: query.get('source') || '', state: query.get('state') || '' };
  const before = query.get('before') || '';
  const type = h('input', { name: 'type', id: 'events-type', value: filters.type, placeholder: 'promise_to_pay.expired', spellcheck: 'false' });
  const source = h('input', { name: 'source', id: 'events-source', value: filters.source, placeholder: 'receeve', spellcheck: 'false' });
  const state = h('select', { name: 'state', id: 'events-state' },
    ['', 'pending', 'processed', 'failed'].map((s) => h('option', { value: s, selected: s === filters.state }, s || 'any')));
  const form = h('form', { class: 'search', on: { submit: (e) => { e.preventDefault(); go('events', [], { type: type.value.trim(), source: source.value.trim(), state: state.value }); } } },
    field('Type', type), field('Source', source), field('State', state), h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const results = h('div', {});
  replace(main, h('h1', {}, 'Events'), form, results);
  try {
    const page = await api('/events', { query: { ...filters, before, limit: 50 } });
    replace(results,
      table([
        ['Event', (e) => link(`#/events/${seg(e.id)}`, e.id)],
        ['Type', (e) => e.type],
        ['Source', (e) => e.source],
        ['Subject', (e) => subjectLinks(e.subject)],
        ['Occurred', (e) => time(e.occurred_at)],
        ['State', (e) => badge(e.state)],
      ], page.events, 'No events match.'),
      h('p', { class: 'pager' },
        before && link(`#/events?${new URLSearchParams({ ...clean(filters) })}`, 'Newest'),
        before && ' ',
        page.next_before && link(`#/events?${new URLSearchParams({ ...clean(filters), before: page.next_before })}`, 'Older →')));
  } catch (e) {
    replace(results, problem(e));
  }
}

function clean(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v));
}

/** Each subject reference, linking to its timeline where it has one. */
export function subjectLinks(subject) {
  const out = [];
  for (const [k, v] of Object.entries(subject || {})) {
    if (v === null || v === undefined || typeof v === 'object') continue;
    const text = `${k} ${v}`;
    out.push(['claim', 'account', 'debtor'].includes(k) ? link(`#/timeline/${seg(k)}/${seg(v)}`, text) : h('span', {}, text));
  }
  return out.flatMap((a, i) => (i ? [', ', a] : [a]));
}

async function one(main, id) {
  const [event, explain] = await Promise.allSettled([api(`/events/${seg(id)}`), api(`/events/${seg(id)}/explain`)]);
  if (event.status === 'rejected') {
    replace(main, h('h1', {}, `Event ${id}`), problem(event.reason));
    return;
  }
  const e = event.value;
  const { payload, data, ...facts } = e;
  replace(main,
    h('h1', {}, `Event ${e.type}`),
    h('p', { class: 'muted' }, h('code', {}, e.id)),
    section('Event',
      h('dl', { class: 'facts' },
        h('dt', {}, 'Type'), h('dd', {}, e.type, e.source_type ? ` (${e.source_type} at the source)` : ''),
        h('dt', {}, 'Source'), h('dd', {}, e.source, ' · ', h('code', {}, e.source_event_id)),
        h('dt', {}, 'Subject'), h('dd', {}, subjectLinks(e.subject)),
        e.amount && [h('dt', {}, 'Amount'), h('dd', {}, `${e.amount.value} ${e.amount.currency}`)],
        h('dt', {}, 'Occurred'), h('dd', {}, time(e.occurred_at)),
        h('dt', {}, 'Received'), h('dd', {}, time(e.received_at)),
        h('dt', {}, 'State'), h('dd', {}, badge(e.state), e.failure ? ` ${e.failure.error}` : ''),
        h('dt', {}, 'Processed'), h('dd', {}, time(e.processed_at))),
      h('details', {}, h('summary', {}, 'Data'), json(data)),
      h('details', {}, h('summary', {}, 'Payload as received'), json(payload)),
      h('details', {}, h('summary', {}, 'All fields'), json(facts))),
    section('What the rules did', explain.status === 'fulfilled' ? explained(explain.value) : problem(explain.reason)),
    h('p', {}, link(`#/playground?event=${seg(e.id)}`, 'Try a rule change on this event in the playground')));
}

function explained(x) {
  const recorded = new Map((x.recorded || []).map((r) => [r.rule_id, r]));
  return [
    h('p', { class: 'muted' }, 'Every rule in force now, against this event at ', time(x.at),
      ', beside what was recorded when it was processed.'),
    table([
      ['Rule', (r) => link(`#/rules/${seg(r.rule_id)}`, r.rule_id)],
      ['Now', (r) => badge(r.outcome)],
      ['Why', (r) => why(r)],
      ['Recorded then', (r) => (recorded.has(r.rule_id) ? badge(recorded.get(r.rule_id).outcome) : h('span', { class: 'muted' }, 'nothing'))],
    ], x.rules, 'No rules in force.'),
  ];
}

function why(r) {
  switch (r.outcome) {
    case 'fired': return `plans ${(r.actions || []).map((a) => a.type).join(', ') || 'no action'}`;
    case 'waiting': return `waits for ${(r.awaits || []).join(' or ')} until ${new Date(r.deadline).toLocaleString()}`;
    case 'skipped': return `the script skipped: ${r.reason}`;
    case 'not_matched': return r.reason;
    case 'failed': return `error${r.line ? ` at line ${r.line}` : ''}: ${r.error}`;
    default: return JSON.stringify(r);
  }
}
