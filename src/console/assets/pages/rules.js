// Rules: the rules in force with what they did in the last 24 h; one rule with its file
// (highlighted), its trigger and actions, and its recent firings.

import { api, seg } from '../api.js';
import { badge, h, link, problem, replace, section, table, time } from '../dom.js';
import { highlight } from '../yaml.js';
import { rulesTable } from './overview.js';

export async function render(main, { args }) {
  if (args[0]) return one(main, args[0]);
  const data = await api('/rules');
  replace(main,
    h('h1', {}, 'Rules'),
    h('p', { class: 'muted' }, 'What each rule in force did since ', time(data.since), '. Set ', h('code', {}, data.rule_set || '—'), '.'),
    rulesTable(data.rules),
    h('p', {}, link('#/playground', 'Try a change in the playground')));
}

async function one(main, id) {
  const [rule, firings] = await Promise.allSettled([
    api(`/rules/${seg(id)}`),
    api('/evaluations', { query: { rule: id, limit: 20 } }),
  ]);
  if (rule.status === 'rejected') {
    replace(main, h('h1', {}, `Rule ${id}`), problem(rule.reason));
    return;
  }
  const r = rule.value;
  const trigger = r.trigger.on ? `on ${r.trigger.on.join(', ')}` : `schedule ${r.trigger.schedule || ''}`;
  replace(main,
    h('h1', {}, `Rule ${r.id}`),
    r.description && h('p', {}, r.description),
    section('Summary',
      h('dl', { class: 'facts' },
        h('dt', {}, 'Name'), h('dd', {}, r.name || '—'),
        h('dt', {}, 'State'), h('dd', {}, badge(r.enabled ? 'enabled' : 'disabled')),
        h('dt', {}, 'Trigger'), h('dd', {}, trigger,
          r.trigger.sources && r.trigger.sources.length ? ` from ${r.trigger.sources.join(', ')}` : ''),
        r.waits_for && [h('dt', {}, 'Unless'), h('dd', {}, `followed by ${r.waits_for.join(' or ')}`)],
        h('dt', {}, 'Actions'), h('dd', {}, r.actions.join(', ') || '—'),
        h('dt', {}, 'File'), h('dd', {}, h('code', {}, r.file)),
        h('dt', {}, 'Version'), h('dd', {}, h('code', {}, r.version))),
      h('ul', { class: 'stats' }, Object.entries(r.stats).filter(([k]) => !k.startsWith('last_'))
        .map(([k, v]) => h('li', {}, badge(k), ` ${v}`))),
      h('p', { class: 'muted' }, 'Since ', time(r.since), '; last fired ', time(r.stats.last_fired), '.')),
    section('Source', r.source ? highlight(r.source) : h('p', { class: 'muted' }, 'The file\u2019s text is not available.'),
      h('p', {}, h('a', { href: `#/playground?rule=${seg(r.id)}`, class: 'button' }, 'Edit a copy in the playground'))),
    section('Versions', table([
      ['Version', (v) => h('code', {}, v.version)],
      ['Last in force', (v) => time(v.last_in_force_at)],
      ['Rule set', (v) => h('code', {}, v.rule_set)],
      ['As written', (v) => h('details', {}, h('summary', {}, v.version === r.version ? 'in force now' : 'earlier'), highlight(v.source))],
    ], r.versions || [], 'No version of this rule is recorded yet.')),
    section('Recent firings and failures', firings.status === 'fulfilled'
      ? table([
        ['When', (e) => time(e.evaluated_at)],
        ['Outcome', (e) => badge(e.outcome)],
        ['Event', (e) => link(`#/events/${seg(e.event_id)}`, e.event_id)],
        ['Actions', (e) => (Array.isArray(e.actions) ? e.actions.map((a) => a.type).join(', ') : '')],
        ['Error', (e) => e.error || ''],
      ], firings.value.evaluations, 'This rule has not fired yet.')
      : problem(firings.reason)));
}
