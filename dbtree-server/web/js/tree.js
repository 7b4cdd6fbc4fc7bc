/**
 * The tree: ten lemons at fixed places, ripe or regrowing with a countdown, kept live from the
 * server-sent events of `/api/v1/tree/events` (each event is one lemon's new state).
 */

import { api, session } from './api.js';
import { cooldownLeftMs, onProfile } from './auth.js';
import { play } from './harvest.js';
import { $, clock, duration, fill, h, toast } from './ui.js';

/** Lemons by position, as last heard from the server. */
const lemons = new Map();
/** Server clock minus ours, ms, so countdowns follow the server. */
let skewMs = 0;
let events = null;
let ticking = null;

function serverNow() {
  return Date.now() + skewMs;
}

function describe(lemon) {
  if (lemon.state === 'ripe') return { label: 'ripe', aria: `Lemon ${lemon.position + 1}, ripe: play for it` };
  const left = lemon.regrowsAt ? Date.parse(lemon.regrowsAt) - serverNow() : 0;
  const text = left > 0 ? `back in ${clock(left)}` : 'ripening…';
  return { label: text, aria: `Lemon ${lemon.position + 1}, regrowing, ${left > 0 ? 'back in ' + duration(left) : 'ripening now'}` };
}

function slot(position) {
  let button = document.querySelector(`.lemon[data-position="${position}"]`);
  if (!button) {
    button = h('button', { type: 'button', className: 'lemon', 'data-position': position, onclick: () => pick(position) },
      h('span', { className: 'fruit', 'aria-hidden': 'true' }),
      h('span', { className: 'lemon-label' }));
    $('lemons').append(h('li', { className: `lemon-slot pos-${position}` }, button));
  }
  return button;
}

function render(lemon) {
  const button = slot(lemon.position);
  const { label, aria } = describe(lemon);
  button.dataset.state = lemon.state;
  button.setAttribute('aria-label', aria);
  button.setAttribute('aria-disabled', String(lemon.state !== 'ripe'));
  button.querySelector('.lemon-label').textContent = label;
}

function renderAll() {
  for (const lemon of [...lemons.values()].sort((a, b) => a.position - b.position)) render(lemon);
  const ripe = [...lemons.values()].filter((l) => l.state === 'ripe').length;
  const cooling = cooldownLeftMs();
  let hint = `${ripe} of 10 lemons are ripe.`;
  if (!session.signedIn) hint += ' Sign in to play.';
  else if (cooling > 0) hint += ` You can harvest again in ${duration(cooling)}.`;
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
    toast(error.message, 'error');
  }
}

/** The lemon at `position`, as last seen. */
export function lemonAt(position) {
  return lemons.get(position);
}

function pick(position) {
  const lemon = lemons.get(position);
  if (!lemon || lemon.state !== 'ripe') {
    toast('That lemon is regrowing. Pick a ripe one.');
    return;
  }
  if (!session.signedIn) {
    toast('Sign in to play for lemons.');
    location.hash = '#signin';
    return;
  }
  const cooling = cooldownLeftMs();
  if (cooling > 0) {
    toast(`You harvested recently: you can play again in ${duration(cooling)}.`);
    return;
  }
  play(position);
}

/** Loads the tree and subscribes to live changes. */
export function init() {
  fill($('lemons'));
  for (let p = 0; p < 10; p += 1) slot(p);
  load();
  connect();
  onProfile(renderAll);
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
