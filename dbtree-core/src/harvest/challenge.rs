//! The click challenge: a circle moving on a Lissajous path that the player must click.

use std::f64::consts::TAU;

use serde::{Deserialize, Serialize};

/// The fixed shape of every challenge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChallengeShape {
    /// Length of the window the circle moves in, ms (default 5000).
    pub window_ms: u32,
    /// Period of the base oscillation, ms (default 3000).
    pub period_ms: u32,
    /// Radius of the circle, as a fraction of the play area (default 0.08).
    pub radius: f64,
}

impl Default for ChallengeShape {
    fn default() -> Self {
        Self {
            window_ms: 5000,
            period_ms: 3000,
            radius: 0.08,
        }
    }
}

/// The server-chosen parameters of one moving circle.
///
/// At offset `t` ms after the challenge is shown, the circle's centre, in fractions of a square
/// play area, is
/// `x = 0.5 + 0.4·sin(2π·fx·t/periodMs + phase)`, `y = 0.5 + 0.4·sin(2π·fy·t/periodMs)`.
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
        /// Distance from the centre.
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
    /// Draws frequencies and phase from a source of uniformly random `u32`s.
    pub fn generate(mut next_u32: impl FnMut() -> u32, shape: &ChallengeShape) -> ClickChallenge {
        let fx = 1 + below(next_u32(), 3) as u8;
        let fy = 1 + below(next_u32(), 3) as u8;
        let phase = f64::from(next_u32()) / (f64::from(u32::MAX) + 1.0) * TAU;
        ClickChallenge {
            window_ms: shape.window_ms,
            period_ms: shape.period_ms,
            fx,
            fy,
            phase,
            radius: shape.radius,
        }
    }

    /// The circle's centre `t_ms` milliseconds after it appeared.
    pub fn centre_at(&self, t_ms: f64) -> (f64, f64) {
        let base = TAU * t_ms / f64::from(self.period_ms.max(1));
        let x = 0.5 + 0.4 * (f64::from(self.fx) * base + self.phase).sin();
        let y = 0.5 + 0.4 * (f64::from(self.fy) * base).sin();
        (x, y)
    }

    /// Judges a click: inside the play area, within the window, and within `tolerance × radius`
    /// of the centre at the click's offset.
    ///
    /// # Errors
    /// In order: [`ClickRefusal::OutsidePlayArea`], [`ClickRefusal::NegativeOffset`],
    /// [`ClickRefusal::AfterWindow`], [`ClickRefusal::Missed`].
    pub fn judge(&self, click: &Click, tolerance: f64) -> Result<(), ClickRefusal> {
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
        let (cx, cy) = self.centre_at(click.click_offset_ms as f64);
        let distance = (click.x - cx).hypot(click.y - cy);
        let allowed = tolerance * self.radius;
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

    fn challenge() -> ClickChallenge {
        ClickChallenge {
            window_ms: 5000,
            period_ms: 3000,
            fx: 2,
            fy: 3,
            phase: 1.0,
            radius: 0.08,
        }
    }

    fn click(t: i64, x: f64, y: f64) -> Click {
        Click {
            click_offset_ms: t,
            x,
            y,
        }
    }

    #[test]
    fn the_path_matches_the_published_formula() {
        let c = challenge();
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
        let c = challenge();
        let (x, y) = c.centre_at(1234.0);
        assert_eq!(c.judge(&click(1234, x, y), 1.1), Ok(()));
        // 1.1 × radius is the edge
        let edge = 0.08 * 1.1 - 1e-9;
        let inside = click(1234, (x + edge).min(1.0), y);
        if x + edge <= 1.0 {
            assert_eq!(c.judge(&inside, 1.1), Ok(()));
        }
        assert!(matches!(
            c.judge(&click(1234, x, (y + 0.2).min(1.0)), 1.1),
            Err(ClickRefusal::Missed { .. })
        ));
        assert_eq!(
            c.judge(&click(1234, f64::NAN, y), 1.1),
            Err(ClickRefusal::OutsidePlayArea)
        );
        assert_eq!(
            c.judge(&click(1234, 1.5, y), 1.1),
            Err(ClickRefusal::OutsidePlayArea)
        );
        assert_eq!(
            c.judge(&click(-1, x, y), 1.1),
            Err(ClickRefusal::NegativeOffset)
        );
        let (x5, y5) = c.centre_at(5000.0);
        assert_eq!(c.judge(&click(5000, x5, y5), 1.1), Ok(()));
        let (x6, y6) = c.centre_at(5001.0);
        assert_eq!(
            c.judge(&click(5001, x6, y6), 1.1),
            Err(ClickRefusal::AfterWindow {
                offset_ms: 5001,
                window_ms: 5000
            })
        );
    }

    #[test]
    fn generated_parameters_stay_in_range() {
        for draw in [0u32, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
            let c = ClickChallenge::generate(|| draw, &ChallengeShape::default());
            assert!((1..=3).contains(&c.fx) && (1..=3).contains(&c.fy));
            assert!((0.0..TAU).contains(&c.phase), "{}", c.phase);
            assert_eq!((c.window_ms, c.period_ms, c.radius), (5000, 3000, 0.08));
        }
        let mut seq = [0u32, u32::MAX, 0].into_iter();
        let c = ClickChallenge::generate(|| seq.next().unwrap_or(0), &ChallengeShape::default());
        assert_eq!((c.fx, c.fy), (1, 3));
    }
}
