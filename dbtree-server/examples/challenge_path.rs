//! Prints, as JSON, where dbtree-core puts the harvest circle for a grid of challenge parameters
//! and offsets: the reference the browser test compares the web app's `centreAt` (web/js/path.js)
//! against.
//!
//! `cargo run -q -p dbtree-server --example challenge_path`

use dbtree_core::harvest::{ChallengeShape, ClickChallenge};
use serde_json::json;

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
    let mut cases = Vec::new();
    for fx in 1..=3u8 {
        for fy in 1..=3u8 {
            for phase in phases {
                let challenge = ClickChallenge {
                    window_ms: shape.window_ms,
                    period_ms: shape.period_ms,
                    fx,
                    fy,
                    phase,
                    radius: shape.radius,
                };
                for t_ms in offsets_ms {
                    let (x, y) = challenge.centre_at(t_ms);
                    cases.push(json!({ "challenge": challenge, "tMs": t_ms, "x": x, "y": y }));
                }
            }
        }
    }
    println!("{}", serde_json::to_string(&cases)?);
    Ok(())
}
