// The console's shell: who is signed in, the hash routes (#/timeline/claim/C-1), and the page
// each route draws into <main>.

import { api, setToken, token } from './api.js';
import { h, problem, replace } from './dom.js';
import * as signin from './pages/signin.js';
import * as overview from './pages/overview.js';
import * as timeline from './pages/timeline.js';
import * as events from './pages/events.js';
import * as rules from './pages/rules.js';
import * as playground from './pages/playground.js';
import * as actions from './pages/actions.js';

/** Who is signed in: `GET /v1/whoami` (`name`, `roles`, `may: {read, operate, ...}`). */
export const session = { me: null };

const pages = { overview, timeline, events, rules, playground, actions };

/** `#/events/evt_1?type=x` as `{page: 'events', args: ['evt_1'], query: URLSearchParams}`. */
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || 'overview', args: parts.slice(1), query: new URLSearchParams(search) };
}

/** Goes to a route built from a page, its args and query parameters. */
export function go(page, args = [], query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const path = [page, ...args].map(encodeURIComponent).join('/');
  const next = `#/${path}${q.toString() ? `?${q}` : ''}`;
  if (location.hash === next) route();
  else location.hash = next;
}

async function identify() {
  try {
    session.me = await api('/whoami');
  } catch (e) {
    session.me = null;
    if (e.status !== 401) throw e;
  }
  return session.me;
}

function showIdentity() {
  const me = session.me;
  document.getElementById('nav').hidden = !me;
  document.getElementById('who').hidden = !me;
  if (!me) return;
  const roles = me.open ? 'open API: no tokens exist' : me.roles.join(', ');
  document.getElementById('who-name').textContent = me.open ? roles : `${me.name} (${roles})`;
  document.getElementById('sign-out').hidden = me.open;
}

let drawing = 0;

async function route() {
  const main = document.getElementById('main');
  const here = parseHash(location.hash);
  const mine = ++drawing;
  if (!session.me) {
    try {
      await identify();
    } catch (e) {
      replace(main, h('h1', {}, 'Signalbox'), problem(e));
      return;
    }
  }
  showIdentity();
  if (!session.me) {
    document.title = 'Sign in · Signalbox';
    await signin.render(main, { onSignedIn: async () => { await identify(); route(); } });
    return;
  }
  const page = pages[here.page];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === here.page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!page) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Go to the overview.')));
    return;
  }
  replace(main, h('p', { class: 'loading' }, 'Loading…'));
  try {
    await page.render(main, here, { me: session.me, go, stale: () => mine !== drawing });
  } catch (e) {
    if (mine === drawing) replace(main, h('h1', {}, 'Something went wrong'), problem(e));
  }
  if (mine === drawing) {
    const heading = main.querySelector('h1');
    document.title = `${heading ? heading.textContent : 'Console'} · Signalbox`;
  }
}

window.addEventListener('hashchange', () => {
  route();
  document.getElementById('main').focus({ preventScroll: true });
});

window.addEventListener('signalbox:unauthenticated', () => {
  if (token() === null && session.me && session.me.open) return;
  session.me = null;
});

document.getElementById('sign-out').addEventListener('click', () => {
  setToken(null);
  session.me = null;
  location.hash = '#/';
  route();
});

route();
