// Overview: activity per hour over the last 24 h, the rules in force and how they fare, what
// waits (outbox, dead actions, parked events) and the last reload.

import { api } from '../api.js';
import { hourlyChart } from '../chart.js';
import { badge, h, link, problem, replace, section, table, time } from '../dom.js';

export async function render(main) {
  const [hourly, rules, status, queues] = await Promise.allSettled([
    api('/stats/hourly', { query: { hours: 24 } }),
    api('/rules'),
    api('/rules/status'),
    api('/stats/queues'),
  ]);
  const part = (result, draw) => (result.status === 'fulfilled' ? draw(result.value) : problem(result.reason));
  replace(main,
    h('h1', {}, 'Overview'),
    h('div', { class: 'tiles' },
      part(queues, (q) => [
        tile('Outbox', q.outbox_pending, 'actions waiting', '#/actions?status=pending'),
        tile('Dead actions', q.dead_actions, 'out of attempts', '#/actions?status=dead', q.dead_actions > 0),
        tile('Parked events', q.parked_events, 'processing failed', '#/events?state=failed', q.parked_events > 0),
        tile('Pending events', q.pending_events, 'not yet processed', '#/events?state=pending'),
      ]),
      part(status, (s) => tile('Rules in force', s.in_force ? s.rules : 0,
        s.rejected_reload ? 'last reload refused' : `loaded ${new Date(s.loaded_at).toLocaleString()}`,
        '#/rules', !s.in_force || !!s.rejected_reload))),
    section('Last 24 hours',
      part(hourly, (d) => hourlyChart(d.hours, [
        ['events', 'Events received', 's-events'],
        ['evaluations', 'Rule outcomes recorded', 's-evaluations'],
        ['attempts', 'Delivery attempts', 's-attempts'],
      ]))),
    section('Rule set', part(status, reload)),
    section('Rules (last 24 h)', part(rules, (r) => rulesTable(r.rules))));
}

function tile(title, value, note, href, alarm = false) {
  return h('a', { class: `tile${alarm ? ' alarm' : ''}`, href },
    h('span', { class: 'tile-title' }, title),
    h('span', { class: 'tile-value' }, String(value ?? '—')),
    h('span', { class: 'tile-note' }, note));
}

function reload(s) {
  return [
    h('dl', { class: 'facts' },
      h('dt', {}, 'Folder'), h('dd', {}, h('code', {}, s.dir)),
      h('dt', {}, 'In force'), h('dd', {}, s.in_force ? `${s.rules} rules from ${s.files} files` : 'no rule set in force'),
      h('dt', {}, 'Loaded'), h('dd', {}, time(s.loaded_at)),
      h('dt', {}, 'Set'), h('dd', {}, h('code', {}, s.set_id || '—')),
      s.fallback && [h('dt', {}, 'Fallback'), h('dd', {}, `running the last good set ${s.fallback}`)]),
    s.rejected_reload
      ? h('div', { class: 'problem' }, h('p', {}, 'The last reload was refused:'),
        h('ul', {}, s.rejected_reload.map((p) => h('li', {}, h('code', {}, p)))))
      : h('p', { class: 'ok' }, 'The last reload was accepted.'),
  ];
}

export function rulesTable(rules) {
  return table([
    ['Rule', (r) => link(`#/rules/${encodeURIComponent(r.id)}`, r.id)],
    ['State', (r) => badge(r.enabled ? 'enabled' : 'disabled')],
    ['Fired', (r) => String(r.stats.fired ?? 0)],
    ['Throttled', (r) => String(r.stats.throttled ?? 0)],
    ['Waiting', (r) => String(r.stats.waiting ?? 0)],
    ['Failed', (r) => (r.stats.failed ? h('strong', { class: 'bad' }, String(r.stats.failed)) : '0')],
    ['Last fired', (r) => time(r.stats.last_fired)],
  ], rules, 'No rules in force.');
}
