/**
 * The path of the moving circle in the harvest challenge.
 *
 * This is the same function as `ClickChallenge::centre_at` in dbtree-core
 * (dbtree-core/src/harvest/challenge.rs), which the server uses to judge a click. At offset
 * `t` milliseconds after the circle appears, its centre, in fractions of the square play area
 * (0 = left or top edge, 1 = right or bottom edge), is
 *
 *     x(t) = 0.5 + 0.4 · sin(2π · fx · t / periodMs + phase)
 *     y(t) = 0.5 + 0.4 · sin(2π · fy · t / periodMs)
 *
 * The server chooses fx, fy ∈ {1, 2, 3} and phase ∈ [0, 2π); periodMs is 3000 and the radius
 * 0.08 of the play area's side. A click counts when it lands within 1.1 × radius of the centre
 * at the click's own offset, and the offset is at most windowMs (5000).
 *
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

/** How far from the centre a click may land and still count, in play-area fractions. */
export const HIT_TOLERANCE = 1.1;
