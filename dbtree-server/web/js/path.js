/**
 * The moving circle of the harvest challenge, and whether a click hits it.
 *
 * These are the same functions as `ClickChallenge::centre_at` and `ClickChallenge::judge` in
 * dbtree-core (dbtree-core/src/harvest/challenge.rs), which the server uses to judge a click.
 * At offset `t` milliseconds after the circle appears, its centre, in fractions of the square
 * play area (0 = left or top edge, 1 = right or bottom edge), is
 *
 *     x(t) = 0.5 + 0.4 · sin(2π · fx · t / periodMs + phase)
 *     y(t) = 0.5 + 0.4 · sin(2π · fy · t / periodMs)
 *
 * The server chooses fx, fy from the quiz's difficulty (easy {1, 1}, normal {1, 2} or {2, 1},
 * hard {2, 3} or {3, 2}) and phase ∈ [0, 2π); periodMs is 3000 and the radius 0.08 of the play
 * area's side. A click at offset c counts when it lands within hitTolerance × radius of the
 * centre at some whole millisecond between c − lagAllowanceMs and c (display and input lag),
 * and c is at most windowMs. The challenge carries hitTolerance and lagAllowanceMs: nothing here
 * is hard-coded.
 */

/**
 * @param {{periodMs: number, fx: number, fy: number, phase: number}} challenge
 * @param {number} tMs milliseconds since the circle appeared
 * @returns {{x: number, y: number}} the centre, in play-area fractions
 */
export function centreAt(challenge, tMs) {
  const base = (2 * Math.PI * tMs) / Math.max(1, challenge.periodMs);
  return {
    x: 0.5 + 0.4 * Math.sin(challenge.fx * base + challenge.phase),
    y: 0.5 + 0.4 * Math.sin(challenge.fy * base),
  };
}

/** The largest distance from the centre that hits, in play-area fractions. */
export function allowedDistance(challenge) {
  return challenge.hitTolerance * challenge.radius;
}

/**
 * The smallest distance between (x, y) and the centre over the whole milliseconds of
 * [offset − lagAllowanceMs, offset] (never before 0).
 */
export function closestDistance(challenge, offsetMs, x, y) {
  const first = Math.max(0, offsetMs - challenge.lagAllowanceMs);
  let best = Infinity;
  for (let t = first; t <= Math.max(first, offsetMs); t += 1) {
    const c = centreAt(challenge, t);
    best = Math.min(best, Math.hypot(x - c.x, y - c.y));
  }
  return best;
}

/**
 * Whether core would accept the click `{clickOffsetMs, x, y}` (an integer offset).
 * @returns {boolean}
 */
export function hits(challenge, click) {
  const inArea = (v) => Number.isFinite(v) && v >= 0 && v <= 1;
  if (!inArea(click.x) || !inArea(click.y)) return false;
  if (click.clickOffsetMs < 0 || click.clickOffsetMs > challenge.windowMs) return false;
  return closestDistance(challenge, click.clickOffsetMs, click.x, click.y) <= allowedDistance(challenge);
}

/** The circle's speed in words, from the quiz's `circleSpeed`. */
export const SPEEDS = {
  slow: 'slow',
  medium: 'medium speed',
  fast: 'fast',
};
