//! Prints, as JSON, where dbtree-core puts the harvest circle for a grid of challenge parameters
//! and offsets (`path`), and how core judges clicks that land where the circle was a little
//! earlier (`hits`): the reference the browser test compares the web app's `centreAt` and
//! `hits` (web/js/path.js) against.
//!
//! `cargo run -q -p dbtree-server --example challenge_path`

use dbtree_core::harvest::{ChallengeShape, Click, ClickChallenge};
use serde_json::json;

fn challenge(shape: &ChallengeShape, fx: u8, fy: u8, phase: f64) -> ClickChallenge {
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

fn main() -> Result<(), serde_json::Error> {
    let shape = ChallengeShape::default();
    let phases = [
        0.0,
        0.5,
        1.234_567_89,
        std::f64::consts::PI,
        5.9,
        std::f64::consts::TAU - 1e-9,
    ];
    let offsets_ms = [
        0.0, 1.0, 137.0, 750.0, 1000.0, 1499.5, 2500.0, 3000.0, 4321.0, 5000.0,
    ];
    let mut path = Vec::new();
    for fx in 1..=3u8 {
        for fy in 1..=3u8 {
            for phase in phases {
                let challenge = challenge(&shape, fx, fy, phase);
                for t_ms in offsets_ms {
                    let (x, y) = challenge.centre_at(t_ms);
                    path.push(json!({ "challenge": challenge, "tMs": t_ms, "x": x, "y": y }));
                }
            }
        }
    }
    // clicks where the circle was `late_ms` earlier, on every speed: inside the lag allowance
    // they hit, well beyond it they mostly miss
    let mut hits = Vec::new();
    for (fx, fy) in [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2)] {
        for phase in [0.3, 2.0, 4.4] {
            let challenge = challenge(&shape, fx, fy, phase);
            for offset in [0i64, 60, 500, 1234, 2500, 4999, 5000] {
                for late_ms in [0i64, 40, 100, 120, 200, 400] {
                    let (x, y) = challenge.centre_at((offset - late_ms).max(0) as f64);
                    let click = Click {
                        click_offset_ms: offset,
                        x,
                        y,
                    };
                    let hit = challenge.judge(&click).is_ok();
                    hits.push(json!({ "challenge": challenge, "click": click, "hit": hit }));
                }
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string(&json!({ "path": path, "hits": hits }))?
    );
    Ok(())
}
