/**
 * One round for a lemon: the quiz dialog with its countdown and the circle's speed said up front,
 * then (after a right answer) the moving circle drawn with the same path function as dbtree-core
 * (see path.js) and a visible 5-second bar, then the click sent with its offset and position,
 * and the outcome (a win is celebrated).
 *
 * Closing the dialog (or running out of time) before answering abandons the quiz on the server
 * (`DELETE /quiz-attempts/{id}`), which frees the one-quiz lock at once: another lemon can be
 * played right away. A new round waits for that to finish.
 */

import { api } from './api.js';
import { refreshProfile, setBalance } from './auth.js';
import { SPEEDS, allowedDistance, centreAt } from './path.js';
import { $, fill, h, lemons, toast } from './ui.js';

/** The round in progress, or null. */
let round = null;
/** The abandon request of the last round, while it runs. */
let abandoning = Promise.resolve();

function stage(name) {
  $('quiz-stage').hidden = name !== 'quiz';
  $('challenge-stage').hidden = name !== 'challenge';
  $('outcome-stage').hidden = name !== 'outcome';
  $('quiz-close-hint').hidden = name !== 'quiz';
  $('quiz-dialog').dataset.stage = name;
  if (round) round.stage = name;
}

function stopTimers() {
  if (!round) return;
  cancelAnimationFrame(round.frame);
  clearInterval(round.quizTimer);
  round.frame = 0;
  round.quizTimer = 0;
}

/** Gives the round's quiz up on the server if it was never answered. */
function abandon(current) {
  if (!current || current.answered) return;
  current.answered = true;
  abandoning = api('DELETE', `/quiz-attempts/${current.quiz.attemptId}`, { auth: true }).catch(() => {
    // the server frees the lock at the deadline anyway
  });
}

/** Ends the round with an outcome: `won`, `faster`, `late`, `missed`, `wrong` or `error`. */
function finish(kind, headline, detail = '') {
  if (!round) return;
  stopTimers();
  round.done = true;
  stage('outcome');
  const outcome = $('outcome');
  outcome.dataset.outcome = kind;
  outcome.textContent = headline;
  $('outcome-detail').textContent = detail;
  $('outcome-explanation').textContent = round.explanation ? `Why: ${round.explanation}` : '';
  $('win-art').hidden = kind !== 'won';
  $('quiz-close').focus();
}

function quizTick() {
  const left = round.quiz.timeLimitMs - (performance.now() - round.quizShownAt);
  $('quiz-timer').value = Math.max(0, (left / round.quiz.timeLimitMs) * 1000);
  $('quiz-time-left').textContent = `${Math.max(0, Math.ceil(left / 1000))} s left`;
  $('quiz-time-left').dataset.urgent = String(left < 5000);
  if (left <= 0 && round.stage === 'quiz' && !round.answering) {
    abandon(round);
    finish('late', 'Too late: the time to answer ran out.', 'Pick another lemon: you can play again right away.');
  }
}

const DIFFICULTY = { easy: 'An easy question', normal: 'A question of normal difficulty', hard: 'A hard question' };

/** Starts a round on the lemon at `position` (the caller checked it is ripe). */
export async function play(position) {
  if (round) return;
  round = { position, starting: true };
  await abandoning;
  let quiz;
  try {
    quiz = await api('POST', `/tree/${position}/quiz`, { auth: true });
  } catch (error) {
    round = null;
    toast(error, 'error');
    if (error.code === 'harvest_cooldown') refreshProfile();
    return;
  }
  round = { position, quiz, stage: 'quiz', quizShownAt: performance.now(), answering: false, answered: false, done: false };
  $('quiz-title').textContent = `Lemon ${position + 1}: quiz`;
  const speed = SPEEDS[quiz.circleSpeed] ?? quiz.circleSpeed;
  $('quiz-speed').textContent = `${DIFFICULTY[quiz.difficulty] ?? 'A question'}: answer right and a ${speed} circle appears for 5 seconds.`;
  $('quiz-speed').dataset.speed = quiz.circleSpeed;
  $('quiz-question').textContent = quiz.question;
  fill($('quiz-options'), quiz.options.map((text, index) =>
    h('button', { type: 'button', className: 'option', 'data-option': index, onclick: () => answer(index) }, text)));
  stage('quiz');
  $('win-art').hidden = true;
  const dialog = $('quiz-dialog');
  dialog.showModal();
  $('quiz-options').querySelector('button')?.focus();
  round.quizTimer = setInterval(quizTick, 100);
  quizTick();
}

async function answer(option) {
  if (!round || round.stage !== 'quiz' || round.answering) return;
  round.answering = true;
  for (const button of $('quiz-options').querySelectorAll('button')) button.disabled = true;
  const current = round;
  let result;
  try {
    result = await api('POST', `/quiz-attempts/${current.quiz.attemptId}/answer`, { auth: true, body: { option } });
  } catch (error) {
    current.answered = true;
    if (round !== current) return;
    if (error.code === 'quiz_time_expired') finish('late', 'Too late: the time to answer ran out.', 'Pick another lemon: you can play again right away.');
    else finish('error', error.message);
    return;
  }
  current.answered = true;
  if (round !== current) return;
  clearInterval(current.quizTimer);
  current.explanation = result.explanation;
  for (const button of $('quiz-options').querySelectorAll('button')) {
    const index = Number(button.dataset.option);
    if (index === result.correctOption) button.classList.add('right');
    else if (index === option) button.classList.add('wrong');
  }
  if (result.correct && result.challenge) {
    startChallenge(result.challenge);
  } else if (result.correct) {
    finish('late', 'Right, but too late to open the harvest window.');
  } else {
    finish('wrong', 'Not quite.', `The right answer: ${current.quiz.options[result.correctOption] ?? '—'}.`);
  }
}

function place(el, fx, fy, size) {
  const area = $('play-area').clientWidth;
  el.style.width = `${size * area}px`;
  el.style.height = `${size * area}px`;
  el.style.transform = `translate(${fx * area - (size * area) / 2}px, ${fy * area - (size * area) / 2}px)`;
}

function startChallenge(challenge) {
  const area = $('play-area');
  round.challenge = challenge;
  round.crosshair = { x: 0.5, y: 0.5 };
  round.clicked = false;
  $('crosshair').hidden = true;
  $('window-bar').max = challenge.windowMs;
  stage('challenge');
  $('quiz-title').textContent = `Lemon ${round.position + 1}: harvest`;
  for (const [key, value] of Object.entries(challenge)) area.dataset[key] = String(value);
  area.focus();
  round.shownAt = performance.now();
  area.dataset.shownAt = String(round.shownAt);
  const circle = $('circle');
  const frame = (now) => {
    if (!round || round.stage !== 'challenge' || round.clicked) return;
    const t = now - round.shownAt;
    const { x, y } = centreAt(challenge, Math.min(t, challenge.windowMs));
    place(circle, x, y, challenge.radius * 2);
    $('window-bar').value = Math.max(0, challenge.windowMs - t);
    $('window-left').textContent = `${(Math.max(0, challenge.windowMs - t) / 1000).toFixed(1)} s`;
    if (t > challenge.windowMs) {
      finish('late', 'Too late: the 5 seconds ran out before a click.', 'Pick another lemon and try again.');
      return;
    }
    round.frame = requestAnimationFrame(frame);
  };
  round.frame = requestAnimationFrame(frame);
}

async function harvestAt(timeStamp, x, y) {
  if (!round || round.stage !== 'challenge' || round.clicked) return;
  const current = round;
  current.clicked = true;
  cancelAnimationFrame(current.frame);
  const clickOffsetMs = Math.max(0, Math.round(timeStamp - current.shownAt));
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const body = { clickOffsetMs, x: clamp(x), y: clamp(y) };
  $('window-left').textContent = 'Checking…';
  try {
    const won = await api('POST', `/quiz-attempts/${current.quiz.attemptId}/harvest`, { auth: true, body });
    if (round !== current) return;
    setBalance(won.balance);
    const bonus = won.streakBonus > 0 ? ` Streak bonus: +${lemons(won.streakBonus)}.` : '';
    $('win-amount').textContent = `+${won.reward + won.streakBonus}`;
    finish('won', `You won lemon ${current.position + 1}! +${lemons(won.reward)}.`,
      `Balance: ${lemons(won.balance)}.${bonus} This lemon regrows in an hour, and your lemons rest for an hour before your next harvest.`);
    refreshProfile();
  } catch (error) {
    if (round !== current) return;
    switch (error.code) {
      case 'lemon_already_harvested':
        finish('faster', 'Someone was faster: the lemon was already harvested.');
        break;
      case 'harvest_window_closed':
      case 'click_after_window':
        finish('late', 'Too late: the click came after the 5-second window.');
        break;
      case 'click_missed': {
        const off = Number(error.details?.distance);
        const allowed = Number(error.details?.allowed);
        const by = Number.isFinite(off) && Number.isFinite(allowed)
          ? `The click was ${(off * 100).toFixed(1)} % of the play area from the circle's centre; up to ${(allowed * 100).toFixed(1)} % counts.`
          : '';
        finish('missed', 'Missed the circle.', by);
        break;
      }
      default:
        finish('error', error.message);
    }
  }
}

function onPointer(event) {
  if (!round || round.stage !== 'challenge') return;
  if (event.button !== 0) return;
  const rect = $('play-area').getBoundingClientRect();
  harvestAt(event.timeStamp, (event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height);
}

function onKey(event) {
  if (!round || round.stage !== 'challenge') return;
  const step = event.shiftKey ? 0.01 : 0.04;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (event.key in moves) {
    event.preventDefault();
    const [dx, dy] = moves[event.key];
    const c = round.crosshair;
    c.x = Math.min(1, Math.max(0, c.x + dx));
    c.y = Math.min(1, Math.max(0, c.y + dy));
    const cross = $('crosshair');
    cross.hidden = false;
    place(cross, c.x, c.y, allowedDistance(round.challenge) * 2);
  } else if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    harvestAt(event.timeStamp, round.crosshair.x, round.crosshair.y);
  }
}

function onLemonGone(event) {
  if (!round || round.done || round.clicked || !round.quiz) return;
  if (event.detail.position !== round.position) return;
  if (round.stage === 'quiz' && round.answering) return;
  abandon(round);
  finish('faster', 'Someone was faster: this lemon was just harvested.', 'Pick another ripe lemon.');
}

/** Wires the dialog. */
function init() {
  const dialog = $('quiz-dialog');
  $('play-area').addEventListener('pointerdown', onPointer);
  $('play-area').addEventListener('keydown', onKey);
  $('quiz-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    const position = round?.position;
    abandon(round);
    stopTimers();
    round = null;
    if (position !== undefined) document.querySelector(`.lemon[data-position="${position}"]`)?.focus();
  });
  document.addEventListener('dbtree:lemon-gone', onLemonGone);
}

init();
