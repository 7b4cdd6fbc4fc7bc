/** Global figures and the leaderboard (top balances, today's quiz masters; emails masked). */

import { api } from './api.js';
import { $, fill, h, lemons } from './ui.js';

function ranking(list, unit) {
  if (list.length === 0) return [h('li', { className: 'muted empty' }, 'Nobody yet.')];
  return list.map((r) => h('li', {}, h('span', { className: 'who' }, r.maskedEmail), ' ', h('b', {}, unit(r.score))));
}

async function load() {
  try {
    const [stats, board] = await Promise.all([api('GET', '/stats'), api('GET', '/leaderboard')]);
    const figure = (label, value) => h('div', { className: 'figure card' }, h('dt', {}, label), h('dd', {}, value));
    fill($('global-stats'),
      figure('Lemons harvested', String(stats.lemonsHarvested)),
      figure('Players', String(stats.liveUsers)),
      figure('Databases created', String(stats.instancesCreated)));
    fill($('richest'), ranking(board.richest, lemons));
    fill($('masters'), ranking(board.quizMastersToday, (n) => `${n} right answer${n === 1 ? '' : 's'}`));
  } catch (error) {
    fill($('global-stats'), h('p', { className: 'error' }, error.message));
  }
}

/** Nothing to wire. */
export function init() {}

/** The leaderboard view: fresh figures each time. */
export function show() {
  load();
}
