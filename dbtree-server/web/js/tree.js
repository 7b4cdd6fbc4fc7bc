/**
 * The tree: ten lemons at fixed places, ripe or regrowing with a countdown, kept live from the
 * server-sent events of `/api/v1/tree/events` (each event is one lemon's new state). Until the
 * first answer arrives the lemons show as unknown, never as ripe. While the signed-in user's
 * harvest cooldown runs, ripe lemons show as resting, counted down from the one cooldown source
 * (auth.js). Signed out, the landing block says what dbtree is.
 */

import { api, session } from './api.js';
import { cooldownLeftMs, cooldownText, onProfile } from './auth.js';
import { play } from './harvest.js';
import { $, clock, duration, fill, h, lemons as lemonsText, toast } from './ui.js';

/** Lemons by position, as last heard from the server. */
const lemons = new Map();
/** Server clock minus ours, ms, so countdowns follow the server. */
let skewMs = 0;
let events = null;
let ticking = null;

function serverNow() {
  return Date.now() + skewMs;
}

function resting() {
  return session.signedIn && cooldownLeftMs() > 0;
}

function describe(lemon) {
  const n = lemon.position + 1;
  if (lemon.state === 'ripe' && resting()) {
    return { state: 'resting', label: 'resting', aria: `Lemon ${n}, ripe, but your lemons rest for ${duration(cooldownLeftMs())}` };
  }
  if (lemon.state === 'ripe') return { state: 'ripe', label: 'ripe', aria: `Lemon ${n}, ripe: play for it` };
  const left = lemon.regrowsAt ? Date.parse(lemon.regrowsAt) - serverNow() : 0;
  const text = left > 0 ? `back in ${clock(left)}` : 'ripening…';
  return { state: 'regrowing', label: text, aria: `Lemon ${n}, regrowing, ${left > 0 ? 'back in ' + duration(left) : 'ripening now'}` };
}

function slot(position) {
  let button = document.querySelector(`.lemon[data-position="${position}"]`);
  if (!button) {
    button = h('button', {
      type: 'button', className: 'lemon', 'data-position': position, 'data-state': 'unknown',
      'aria-label': `Lemon ${position + 1}, loading`, 'aria-disabled': 'true', onclick: () => pick(position),
    },
    h('span', { className: 'fruit', 'aria-hidden': 'true' }),
    h('span', { className: 'lemon-label' }, '…'));
    $('lemons').append(h('li', { className: `lemon-slot pos-${position}` }, button));
  }
  return button;
}

function render(lemon) {
  const button = slot(lemon.position);
  const { state, label, aria } = describe(lemon);
  button.dataset.state = state;
  button.setAttribute('aria-label', aria);
  button.setAttribute('aria-disabled', String(state !== 'ripe'));
  button.querySelector('.lemon-label').textContent = label;
}

function renderAll() {
  for (const lemon of [...lemons.values()].sort((a, b) => a.position - b.position)) render(lemon);
  $('landing').hidden = session.signedIn;
  const rest = resting();
  $('rest-banner').hidden = !rest;
  if (rest) $('rest-left').textContent = cooldownText();
  if (lemons.size === 0) {
    $('tree-hint').textContent = 'Loading the tree…';
    return;
  }
  const ripe = [...lemons.values()].filter((l) => l.state === 'ripe').length;
  let hint = `${ripe} of 10 lemons are ripe.`;
  if (!session.signedIn) hint += ' Sign in to play.';
  $('tree-hint').textContent = hint;
}

function update(lemon) {
  const before = lemons.get(lemon.position);
  lemons.set(lemon.position, lemon);
  render(lemon);
  if (before && before.state === 'ripe' && lemon.state !== 'ripe') {
    document.dispatchEvent(new CustomEvent('dbtree:lemon-gone', { detail: lemon }));
  }
  renderAll();
}

function setLive(state, text) {
  const el = $('live-state');
  el.dataset.live = state;
  el.textContent = text;
}

function connect() {
  events?.close();
  events = new EventSource('/api/v1/tree/events');
  events.addEventListener('open', () => setLive('live', 'Live'));
  events.addEventListener('message', (event) => {
    try {
      update(JSON.parse(event.data));
    } catch {
      // an event we cannot read is skipped; the next one carries the lemon's full state
    }
  });
  events.addEventListener('error', () => setLive('reconnecting', 'Reconnecting…'));
}

async function load() {
  try {
    const tree = await api('GET', '/tree');
    skewMs = Date.parse(tree.serverTime) - Date.now();
    for (const lemon of tree.lemons) lemons.set(lemon.position, lemon);
    renderAll();
  } catch (error) {
    toast(error, 'error');
  }
}

async function loadWelcome() {
  try {
    const stats = await api('GET', '/stats');
    if (Number.isFinite(stats.welcomeBonus)) {
      $('welcome-line').textContent = `New accounts start with ${lemonsText(stats.welcomeBonus)}: enough for a small database right away.`;
    }
  } catch {
    // the generic sentence stays
  }
}

/** The lemon at `position`, as last seen. */
export function lemonAt(position) {
  return lemons.get(position);
}

function pick(position) {
  const lemon = lemons.get(position);
  if (!lemon) return;
  if (lemon.state !== 'ripe') {
    toast('That lemon is regrowing. Pick a ripe one.');
    return;
  }
  if (!session.signedIn) {
    toast('Sign in to play for lemons.');
    location.hash = '#signin';
    return;
  }
  if (resting()) {
    toast(`Your lemons are resting after your harvest: you can play again in ${cooldownText()}.`);
    return;
  }
  play(position);
}

/** Loads the tree and subscribes to live changes. */
export function init() {
  fill($('lemons'));
  for (let p = 0; p < 10; p += 1) slot(p);
  renderAll();
  load();
  loadWelcome();
  connect();
  onProfile(renderAll);
  document.addEventListener('dbtree:cooldown-tick', () => {
    if (resting() || !$('rest-banner').hidden) renderAll();
  });
  ticking = setInterval(() => {
    for (const lemon of lemons.values()) if (lemon.state !== 'ripe') render(lemon);
  }, 1000);
  addEventListener('pagehide', () => {
    events?.close();
    clearInterval(ticking);
  });
}

/** The tree view. */
export function show() {
  renderAll();
}
