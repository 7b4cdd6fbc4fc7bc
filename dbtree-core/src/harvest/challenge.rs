//! The click challenge: a circle moving on a Lissajous path that the player must click.

use std::f64::consts::TAU;

use serde::{Deserialize, Serialize};

use crate::quiz::Difficulty;

/// The fixed shape of every challenge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChallengeShape {
    /// Length of the window the circle moves in, ms (default 5000).
    pub window_ms: u32,
    /// Period of the base oscillation, ms (default 3000).
    pub period_ms: u32,
    /// Radius of the circle, as a fraction of the play area (default 0.08).
    pub radius: f64,
    /// Clicks within `hit_tolerance × radius` of the centre hit (default 1.1).
    pub hit_tolerance: f64,
    /// How far before the click's own offset the circle may have been where the player clicked:
    /// display and input lag, ms (default 120).
    pub lag_allowance_ms: u32,
}

impl Default for ChallengeShape {
    fn default() -> Self {
        Self {
            window_ms: 5000,
            period_ms: 3000,
            radius: 0.08,
            hit_tolerance: DEFAULT_HIT_TOLERANCE,
            lag_allowance_ms: DEFAULT_LAG_ALLOWANCE_MS,
        }
    }
}

const DEFAULT_HIT_TOLERANCE: f64 = 1.1;
const DEFAULT_LAG_ALLOWANCE_MS: u32 = 120;

fn default_hit_tolerance() -> f64 {
    DEFAULT_HIT_TOLERANCE
}

fn default_lag_allowance_ms() -> u32 {
    DEFAULT_LAG_ALLOWANCE_MS
}

/// The circle's speed: its frequencies, tied to the quiz's difficulty so that every round of
/// one difficulty is equally hard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircleSpeed {
    /// `fx = fy = 1` (easy quizzes).
    Slow,
    /// `{fx, fy}` = `{1, 2}` (normal quizzes).
    Medium,
    /// `{fx, fy}` = `{2, 3}` (hard quizzes).
    Fast,
}

impl CircleSpeed {
    /// The speed of a quiz's round.
    pub const fn for_difficulty(difficulty: Difficulty) -> CircleSpeed {
        match difficulty {
            Difficulty::Easy => CircleSpeed::Slow,
            Difficulty::Normal => CircleSpeed::Medium,
            Difficulty::Hard => CircleSpeed::Fast,
        }
    }

    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircleSpeed::Slow => "slow",
            CircleSpeed::Medium => "medium",
            CircleSpeed::Fast => "fast",
        }
    }

    /// The two frequencies of this speed; `swap` picks which axis gets the higher one.
    const fn frequencies(self, swap: bool) -> (u8, u8) {
        let (low, high) = match self {
            CircleSpeed::Slow => (1, 1),
            CircleSpeed::Medium => (1, 2),
            CircleSpeed::Fast => (2, 3),
        };
        if swap { (high, low) } else { (low, high) }
    }
}

/// The server-chosen parameters of one moving circle.
///
/// At offset `t` ms after the challenge is shown, the circle's centre, in fractions of a square
/// play area, is
/// `x = 0.5 + 0.4·sin(2π·fx·t/periodMs + phase)`, `y = 0.5 + 0.4·sin(2π·fy·t/periodMs)`.
/// A click at offset `c` counts when it lies within `hitTolerance × radius` of the centre at
/// some whole millisecond `t` in `[c − lagAllowanceMs, c]` (see [`ClickChallenge::judge`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClickChallenge {
    /// How long the circle moves, ms.
    pub window_ms: u32,
    /// Base period, ms.
    pub period_ms: u32,
    /// Horizontal frequency multiplier, 1–3.
    pub fx: u8,
    /// Vertical frequency multiplier, 1–3.
    pub fy: u8,
    /// Horizontal phase, radians in `[0, 2π)`.
    pub phase: f64,
    /// Circle radius, play-area fraction.
    pub radius: f64,
    /// Clicks within `hit_tolerance × radius` of the centre hit.
    #[serde(default = "default_hit_tolerance")]
    pub hit_tolerance: f64,
    /// Display and input lag allowed, ms.
    #[serde(default = "default_lag_allowance_ms")]
    pub lag_allowance_ms: u32,
}

/// A player's click: when (ms after the challenge was shown) and where (play-area fractions).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Click {
    /// Milliseconds after the challenge appeared.
    pub click_offset_ms: i64,
    /// Horizontal position, 0 (left) to 1 (right).
    pub x: f64,
    /// Vertical position, 0 (top) to 1 (bottom).
    pub y: f64,
}

/// Why a click does not count.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ClickRefusal {
    /// Coordinates outside `[0, 1]` or not finite.
    #[error("click coordinates must be numbers between 0 and 1")]
    OutsidePlayArea,
    /// Negative offset.
    #[error("clickOffsetMs must not be negative")]
    NegativeOffset,
    /// The click's offset is after the window.
    #[error("the click at {offset_ms} ms came after the {window_ms} ms window")]
    AfterWindow {
        /// The click's offset.
        offset_ms: i64,
        /// The window.
        window_ms: u32,
    },
    /// The click was not on the circle.
    #[error("the click missed the circle by {distance:.3} (needed ≤ {allowed:.3})")]
    Missed {
        /// Smallest distance from the centre over the lag allowance.
        distance: f64,
        /// Largest distance that hits.
        allowed: f64,
    },
}

/// A uniform draw in `0..n` from a random `u32` (multiply-shift; bias below 10⁻⁹).
fn below(draw: u32, n: u32) -> u32 {
    ((u64::from(draw) * u64::from(n)) >> 32) as u32
}

impl ClickChallenge {
    /// Draws the phase (and which axis is faster) from a source of uniformly random `u32`s; the
    /// frequencies follow `speed`.
    pub fn generate(
        mut next_u32: impl FnMut() -> u32,
        shape: &ChallengeShape,
        speed: CircleSpeed,
    ) -> ClickChallenge {
        let swap = below(next_u32(), 2) == 1;
        let (fx, fy) = speed.frequencies(swap);
        let phase = f64::from(next_u32()) / (f64::from(u32::MAX) + 1.0) * TAU;
        ClickChallenge {
            window_ms: shape.window_ms,
            period_ms: shape.period_ms,
            fx,
            fy,
            phase,
            radius: shape.radius,
            hit_tolerance: shape.hit_tolerance,
            lag_allowance_ms: shape.lag_allowance_ms,
        }
    }

    /// The circle's centre `t_ms` milliseconds after it appeared.
    pub fn centre_at(&self, t_ms: f64) -> (f64, f64) {
        let base = TAU * t_ms / f64::from(self.period_ms.max(1));
        let x = 0.5 + 0.4 * (f64::from(self.fx) * base + self.phase).sin();
        let y = 0.5 + 0.4 * (f64::from(self.fy) * base).sin();
        (x, y)
    }

    /// The largest distance from the centre that hits: `hit_tolerance × radius`.
    pub fn allowed_distance(&self) -> f64 {
        self.hit_tolerance * self.radius
    }

    /// The smallest distance between `(x, y)` and the circle's centre over the whole
    /// milliseconds `t` in `[offset − lag_allowance_ms, offset]` (never before 0).
    pub fn closest_distance(&self, offset_ms: i64, x: f64, y: f64) -> f64 {
        let first = offset_ms
            .saturating_sub(i64::from(self.lag_allowance_ms))
            .max(0);
        (first..=offset_ms.max(first))
            .map(|t| {
                let (cx, cy) = self.centre_at(t as f64);
                (x - cx).hypot(y - cy)
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Judges a click: inside the play area, within the window, and within
    /// `hit_tolerance × radius` of the centre at some whole millisecond in
    /// `[offset − lag_allowance_ms, offset]` (the display and input lag a player cannot avoid).
    ///
    /// # Errors
    /// In order: [`ClickRefusal::OutsidePlayArea`], [`ClickRefusal::NegativeOffset`],
    /// [`ClickRefusal::AfterWindow`], [`ClickRefusal::Missed`].
    pub fn judge(&self, click: &Click) -> Result<(), ClickRefusal> {
        let in_area = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !in_area(click.x) || !in_area(click.y) {
            return Err(ClickRefusal::OutsidePlayArea);
        }
        if click.click_offset_ms < 0 {
            return Err(ClickRefusal::NegativeOffset);
        }
        if click.click_offset_ms > i64::from(self.window_ms) {
            return Err(ClickRefusal::AfterWindow {
                offset_ms: click.click_offset_ms,
                window_ms: self.window_ms,
            });
        }
        let distance = self.closest_distance(click.click_offset_ms, click.x, click.y);
        let allowed = self.allowed_distance();
        if distance <= allowed {
            Ok(())
        } else {
            Err(ClickRefusal::Missed { distance, allowed })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(fx: u8, fy: u8) -> ClickChallenge {
        ClickChallenge {
            window_ms: 5000,
            period_ms: 3000,
            fx,
            fy,
            phase: 1.0,
            radius: 0.08,
            hit_tolerance: 1.1,
            lag_allowance_ms: 120,
        }
    }

    fn click(t: i64, (x, y): (f64, f64)) -> Click {
        Click {
            click_offset_ms: t,
            x,
            y,
        }
    }

    #[test]
    fn the_path_matches_the_published_formula() {
        let c = challenge(2, 3);
        assert_eq!(c.centre_at(0.0), (0.5 + 0.4 * 1.0f64.sin(), 0.5));
        let (x, y) = c.centre_at(750.0);
        assert!((x - (0.5 + 0.4 * (2.0 * TAU * 0.25 + 1.0).sin())).abs() < 1e-12);
        assert!((y - (0.5 + 0.4 * (3.0 * TAU * 0.25f64).sin())).abs() < 1e-12);
        // periodic
        let (x1, y1) = c.centre_at(100.0);
        let (x2, y2) = c.centre_at(3100.0);
        assert!((x1 - x2).abs() < 1e-9 && (y1 - y2).abs() < 1e-9);
    }

    #[test]
    fn clicks_are_judged_in_order() {
        let c = challenge(2, 3);
        let (x, y) = c.centre_at(1234.0);
        assert_eq!(c.judge(&click(1234, (x, y))), Ok(()));
        assert!(matches!(
            c.judge(&click(1234, (x, (y + 0.3).min(1.0)))),
            Err(ClickRefusal::Missed { .. }) | Ok(())
        ));
        assert_eq!(
            c.judge(&click(1234, (f64::NAN, y))),
            Err(ClickRefusal::OutsidePlayArea)
        );
        assert_eq!(
            c.judge(&click(1234, (1.5, y))),
            Err(ClickRefusal::OutsidePlayArea)
        );
        assert_eq!(
            c.judge(&click(-1, (x, y))),
            Err(ClickRefusal::NegativeOffset)
        );
        assert_eq!(c.judge(&click(5000, c.centre_at(5000.0))), Ok(()));
        assert_eq!(
            c.judge(&click(5001, c.centre_at(5001.0))),
            Err(ClickRefusal::AfterWindow {
                offset_ms: 5001,
                window_ms: 5000
            })
        );
    }

    /// Where the circle was `lag` ms before the click, on the fastest path, in a table:
    /// inside the allowance it hits, beyond it (far enough to be off the circle) it misses.
    #[test]
    fn lag_within_the_allowance_hits_on_every_speed() {
        for (fx, fy) in [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2)] {
            let c = challenge(fx, fy);
            for t in [0i64, 90, 100, 119, 120, 1000, 2345, 4999, 5000] {
                for lag in [0i64, 1, 50, 100, 119, 120] {
                    let at = (t - lag).max(0);
                    assert_eq!(
                        c.judge(&click(t, c.centre_at(at as f64))),
                        Ok(()),
                        "fx {fx} fy {fy} click at {t} where the circle was at {at}"
                    );
                }
            }
        }
        // 100 ms late on the fastest path is far off the circle's current place, yet it counts
        let fast = challenge(3, 2);
        let (t, lag) = (2000, 100);
        let then = fast.centre_at((t - lag) as f64);
        let now = fast.centre_at(t as f64);
        let apart = (then.0 - now.0).hypot(then.1 - now.1);
        assert!(
            apart > fast.allowed_distance(),
            "the test point is really late: {apart}"
        );
        assert_eq!(fast.judge(&click(t, then)), Ok(()));
        // 300 ms late is not lag any more
        let stale = fast.centre_at((t - 300) as f64);
        assert!(matches!(
            fast.judge(&click(t, stale)),
            Err(ClickRefusal::Missed { .. })
        ));
        // the allowance is the challenge's own: without it the late click misses
        let strict = ClickChallenge {
            lag_allowance_ms: 0,
            ..fast
        };
        assert!(matches!(
            strict.judge(&click(t, then)),
            Err(ClickRefusal::Missed { .. })
        ));
    }

    #[test]
    fn the_tolerance_is_the_edge() {
        let c = ClickChallenge {
            lag_allowance_ms: 0,
            ..challenge(1, 1)
        };
        let (x, y) = c.centre_at(1000.0);
        let edge = c.allowed_distance();
        let dir = if x > 0.5 { -1.0 } else { 1.0 };
        assert_eq!(c.judge(&click(1000, (x + dir * (edge - 1e-9), y))), Ok(()));
        assert!(matches!(
            c.judge(&click(1000, (x + dir * (edge + 1e-6), y))),
            Err(ClickRefusal::Missed { .. })
        ));
    }

    #[test]
    fn frequencies_follow_the_difficulty() {
        let table = [
            (Difficulty::Easy, [(1, 1)].as_slice()),
            (Difficulty::Normal, [(1, 2), (2, 1)].as_slice()),
            (Difficulty::Hard, [(2, 3), (3, 2)].as_slice()),
        ];
        for (difficulty, allowed) in table {
            let speed = CircleSpeed::for_difficulty(difficulty);
            let mut seen = Vec::new();
            for draw in [0u32, 1, u32::MAX / 2, u32::MAX / 2 + 1, u32::MAX] {
                let c = ClickChallenge::generate(|| draw, &ChallengeShape::default(), speed);
                assert!(allowed.contains(&(c.fx, c.fy)), "{difficulty}: {c:?}");
                assert!((0.0..TAU).contains(&c.phase), "{}", c.phase);
                assert_eq!(
                    (
                        c.window_ms,
                        c.period_ms,
                        c.radius,
                        c.hit_tolerance,
                        c.lag_allowance_ms
                    ),
                    (5000, 3000, 0.08, 1.1, 120)
                );
                seen.push((c.fx, c.fy));
            }
            for pair in allowed {
                assert!(seen.contains(pair), "{difficulty} can draw {pair:?}");
            }
        }
        assert_eq!(CircleSpeed::Fast.as_str(), "fast");
    }

    #[test]
    fn challenges_stored_before_the_allowance_read_with_the_defaults() {
        let old = r#"{"windowMs":5000,"periodMs":3000,"fx":3,"fy":1,"phase":0.5,"radius":0.08}"#;
        let c: ClickChallenge = serde_json::from_str(old).unwrap();
        assert_eq!((c.hit_tolerance, c.lag_allowance_ms), (1.1, 120));
    }
}
