/**
 * The signed-in user's dashboard: figures, the daily harvest chart, the transaction history
 * with pagination (optionally for one instance), a support form and the account actions.
 */

import { api, session } from './api.js';
import { cooldownLeftMs, cooldownText, currentProfile, onProfile, signOutEverywhere } from './auth.js';
import { confirm } from './instances.js';
import { runwaySentence } from './runway.js';
import { $, busy, fill, h, lemons, perHour, plural, showError, toast, when } from './ui.js';

const KINDS = {
  welcome_bonus: 'Welcome bonus',
  harvest: 'Harvest',
  streak_bonus: 'Streak bonus',
  instance_create: 'Instance created',
  instance_hourly: 'Hourly running cost',
  instance_refund: 'Refund',
  admin_grant: 'Grant',
};
const SVG = 'http://www.w3.org/2000/svg';

let offset = 0;
let visible = false;

function renderFigures(p) {
  if (!p) {
    fill($('profile-figures'));
    return;
  }
  const figure = (label, value, className = '') => h('div', { className: `figure card ${className}` }, h('dt', {}, label), h('dd', {}, value));
  const runs = p.runwayHours === undefined || p.runwayHours === null
    ? 'nothing running'
    : `${perHour(p.hourlyBurn)}: lasts ${plural(p.runwayHours, 'hour', 'hours')}`;
  // the address may break after its @, never in the middle of a word
  const [local, domain] = p.email.split('@');
  fill($('profile-figures'),
    figure('Balance', `${lemons(p.balance)} (cap ${p.balanceCap})`),
    figure('Running cost', runs, p.lowBalance ? 'low' : ''),
    figure('Earned in total', lemons(p.earnedTotal)),
    figure('Spent in total', lemons(p.spentTotal)),
    figure('Harvest streak', plural(p.streakDays, 'day', 'days')),
    figure('Next harvest', cooldownLeftMs() > 0 ? `in ${cooldownText()}` : 'now'),
    figure('Member since', new Date(p.createdAt).toLocaleDateString()),
    figure('Signed in as', h('span', { className: 'email' }, local, h('wbr'), `@${domain ?? ''}`)));
  const sentence = runwaySentence(p);
  $('runway-explained').textContent = sentence ?? 'No database runs now, so your lemons are not being spent.';
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function loadChart() {
  const days = Number($('chart-days').value);
  let history;
  try {
    history = await api('GET', '/me/harvests', { auth: true, query: { days } });
  } catch (error) {
    fill($('chart'), h('p', { className: 'error' }, error.message));
    return;
  }
  const list = history.days;
  const max = Math.max(1, ...list.map((d) => d.lemons));
  const width = 600;
  const height = 180;
  const pad = 24;
  const barW = (width - pad) / Math.max(1, list.length);
  const bars = list.map((d, i) => {
    const barH = ((height - pad * 2) * d.lemons) / max;
    return svg('g', { class: 'bar' },
      svg('title', {}, `${d.date}: ${lemons(d.lemons)}`),
      svg('rect', { x: pad + i * barW + 1, y: height - pad - barH, width: Math.max(1, barW - 2), height: barH }));
  });
  const total = list.reduce((s, d) => s + d.lemons, 0);
  const best = list.reduce((b, d) => (d.lemons > (b?.lemons ?? 0) ? d : b), null);
  const summary = `${lemons(total)} from harvests over the last ${list.length} days${best ? `; best day ${best.date} with ${lemons(best.lemons)}` : ''}.`;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `Daily harvest chart: ${summary}`, class: 'bars' },
    svg('line', { x1: pad, y1: height - pad, x2: width, y2: height - pad, class: 'axis' }),
    svg('text', { x: 2, y: pad, class: 'tick' }, String(max)),
    svg('text', { x: 2, y: height - pad, class: 'tick' }, '0'),
    list.length ? svg('text', { x: pad, y: height - 6, class: 'tick' }, list[0].date) : '',
    list.length ? svg('text', { x: width, y: height - 6, class: 'tick end' }, list[list.length - 1].date) : '',
    ...bars);
  fill($('chart'), chart);
  $('chart-caption').textContent = summary;
}

async function loadTransactions() {
  const limit = Number($('tx-limit').value);
  let page;
  try {
    page = await api('GET', '/me/transactions', { auth: true, query: { limit, offset } });
  } catch (error) {
    fill($('tx-body'), h('tr', {}, h('td', { colSpan: 4, className: 'error' }, error.message)));
    return;
  }
  fill($('tx-body'), page.items.length === 0
    ? h('tr', {}, h('td', { colSpan: 4, className: 'muted' }, 'No transactions yet.'))
    : page.items.map((t) => h('tr', { 'data-kind': t.kind },
      h('td', {}, when(t.createdAt)),
      h('td', {}, KINDS[t.kind] ?? t.kind, t.instanceName ? h('span', { className: 'muted' }, ` · ${t.instanceName}`) : null),
      h('td', { className: `num ${t.amount < 0 ? 'minus' : 'plus'}` }, `${t.amount > 0 ? '+' : ''}${t.amount}`),
      h('td', { className: 'num' }, String(t.balanceAfter)))));
  const first = page.total === 0 ? 0 : page.offset + 1;
  const last = page.offset + page.items.length;
  $('tx-range').textContent = `${first}–${last} of ${page.total}`;
  $('tx-prev').disabled = page.offset === 0;
  $('tx-next').disabled = last >= page.total;
}

function reload() {
  if (!visible || !session.signedIn) return;
  loadChart();
  loadTransactions();
}

/** Wires the controls. */
export function init() {
  onProfile((p) => {
    renderFigures(p);
    if (visible) loadTransactions();
  });
  $('chart-days').addEventListener('change', loadChart);
  $('tx-limit').addEventListener('change', () => {
    offset = 0;
    loadTransactions();
  });
  $('tx-prev').addEventListener('click', () => {
    offset = Math.max(0, offset - Number($('tx-limit').value));
    loadTransactions();
  });
  $('tx-next').addEventListener('click', () => {
    offset += Number($('tx-limit').value);
    loadTransactions();
  });
  $('signout-all').addEventListener('click', (e) => busy(e.currentTarget, () =>
    signOutEverywhere().catch((error) => toast(error.message, 'error'))));
  $('delete-account').addEventListener('click', async () => {
    const yes = await confirm('Delete your account?',
      'Your instances are deleted and you are signed out everywhere. Your lemons are lost, and signing up again with the same address gives no new welcome bonus.',
      'Delete my account');
    if (!yes) return;
    try {
      await api('DELETE', '/me', { auth: true });
      session.clear();
      toast('Your account was deleted.');
      location.hash = '#tree';
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  $('support-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const slot = $('support-error');
    const subject = $('support-subject').value.trim();
    const message = $('support-message').value.trim();
    if (subject.length < 3 || message.length < 10) {
      showError(slot, new Error('Give a subject (at least 3 characters) and a message (at least 10).'));
      return;
    }
    showError(slot, null);
    await busy($('support-send'), async () => {
      try {
        const received = await api('POST', '/support', { auth: true, body: { category: $('support-category').value, subject, message } });
        $('support-form').reset();
        toast(`Thanks: inquiry #${received.id} received. We answer by email.`);
      } catch (error) {
        showError(slot, error);
      }
    });
  });
}

/** The dashboard view. */
export function show() {
  visible = true;
  const signedIn = session.signedIn;
  $('dashboard-signin').hidden = signedIn;
  $('dashboard-body').hidden = !signedIn;
  renderFigures(currentProfile());
  reload();
}

/** Leaving the view. */
export function hide() {
  visible = false;
}
