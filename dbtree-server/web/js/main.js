/**
 * The dbtree web app: a hash router over five views (tree, databases, dashboard, leaderboard,
 * sign-in), the account chips in the header and the light/dark theme.
 */

import { session } from './api.js';
import * as auth from './auth.js';
import * as dashboard from './dashboard.js';
import * as databases from './databases.js';
import * as leaderboard from './leaderboard.js';
import * as runway from './runway.js';
import * as tree from './tree.js';
import { $ } from './ui.js';

const VIEWS = { tree, databases, dashboard, leaderboard, signin: auth };
const TITLES = {
  tree: 'The lemon tree',
  databases: 'Databases',
  dashboard: 'Dashboard',
  leaderboard: 'Leaderboard',
  signin: 'Sign in',
};
let current = null;

function show(name) {
  if (current === name) {
    VIEWS[name].show?.();
    return;
  }
  if (current) VIEWS[current].hide?.();
  const first = current === null;
  current = name;
  closeMenu();
  // a new view opens at its top, not at the previous view's scroll position
  if (!first) window.scrollTo(0, 0);
  for (const section of document.querySelectorAll('main > .view')) {
    section.hidden = section.id !== `view-${name}`;
  }
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${TITLES[name]} · dbtree`;
  VIEWS[name].show?.();
}

function route(event) {
  const name = location.hash.slice(1);
  if (name in VIEWS) {
    show(name);
    // after a navigation, start reading (and tabbing) at the new view
    if (event) $('main').focus({ preventScroll: true });
  } else if (name === '' || current === null) {
    show('tree');
  }
}

const THEME_KEY = 'dbtree.theme';
const darkQuery = matchMedia('(prefers-color-scheme: dark)');

function storedTheme() {
  try {
    return localStorage.getItem(THEME_KEY);
  } catch {
    return null;
  }
}

function applyTheme() {
  const chosen = storedTheme();
  const dark = chosen ? chosen === 'dark' : darkQuery.matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const toggle = $('theme-toggle');
  toggle.setAttribute('aria-pressed', String(dark));
  // the button says what it does
  toggle.textContent = dark ? 'Light theme' : 'Dark theme';
  toggle.title = dark ? 'Switch to the light theme' : 'Switch to the dark theme';
}

function closeMenu() {
  $('menu-toggle').setAttribute('aria-expanded', 'false');
  $('menu-panel').classList.remove('open');
}

function toggleMenu() {
  const open = $('menu-toggle').getAttribute('aria-expanded') !== 'true';
  $('menu-toggle').setAttribute('aria-expanded', String(open));
  $('menu-panel').classList.toggle('open', open);
  if (open) $('menu-panel').querySelector('a, button')?.focus();
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme === 'dark';
  localStorage.setItem(THEME_KEY, dark ? 'light' : 'dark');
  applyTheme();
}

function sessionChanged() {
  $('signin-link').hidden = session.signedIn;
  $('signout').hidden = !session.signedIn;
  auth.sessionChanged();
  if (current) VIEWS[current].show?.();
}

function start() {
  applyTheme();
  darkQuery.addEventListener('change', applyTheme);
  $('theme-toggle').addEventListener('click', toggleTheme);
  $('menu-toggle').addEventListener('click', toggleMenu);
  $('menu-panel').addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      closeMenu();
      $('menu-toggle').focus();
    }
  });
  document.addEventListener('click', (event) => {
    if (!event.target.closest('#menu-panel, #menu-toggle')) closeMenu();
  });
  $('signout').addEventListener('click', () => auth.signOut());
  document.addEventListener('dbtree:session', sessionChanged);
  auth.init();
  runway.init();
  tree.init();
  databases.init();
  dashboard.init();
  leaderboard.init();
  $('loading').remove();
  sessionChanged();
  addEventListener('hashchange', route);
  route();
}

start();
