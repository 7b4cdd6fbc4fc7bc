//! The preset sizes per engine, with their fixed prices.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Engine, MilliCpu, Price, Resources};
use crate::lemons::Lemons;

/// A preset size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetSize {
    /// The smallest.
    Tiny,
    /// Small.
    Small,
    /// Medium.
    Medium,
    /// The largest.
    Large,
}

/// A preset name dbtree does not offer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset `{0}` (expected tiny, small, medium or large)")]
pub struct UnknownPreset(pub String);

impl PresetSize {
    /// Every size, smallest first.
    pub const ALL: [PresetSize; 4] = [
        PresetSize::Tiny,
        PresetSize::Small,
        PresetSize::Medium,
        PresetSize::Large,
    ];

    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PresetSize::Tiny => "tiny",
            PresetSize::Small => "small",
            PresetSize::Medium => "medium",
            PresetSize::Large => "large",
        }
    }
}

impl fmt::Display for PresetSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for PresetSize {
    type Err = UnknownPreset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PresetSize::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPreset(s.chars().take(40).collect()))
    }
}

/// One entry of the preset catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// The engine.
    pub engine: Engine,
    /// The size.
    pub size: PresetSize,
    /// What it gets.
    pub resources: Resources,
    /// What it costs.
    pub price: Price,
}

/// (millicores, MiB, GiB, creation lemons, hourly lemons) per size, tiny to large.
type Row = [(u32, u32, u32, u32, u32); 4];

const REDIS: Row = [
    (100, 128, 1, 3, 1),
    (250, 256, 2, 6, 1),
    (500, 512, 4, 12, 2),
    (750, 1024, 8, 20, 3),
];
const POSTGRESQL: Row = [
    (100, 256, 2, 5, 1),
    (250, 512, 5, 10, 2),
    (500, 1024, 10, 20, 3),
    (750, 1536, 20, 30, 5),
];
const MONGODB: Row = [
    (100, 512, 5, 5, 1),
    (250, 768, 10, 10, 2),
    (500, 1024, 20, 20, 3),
    (750, 1536, 30, 30, 5),
];

/// The preset of `engine` in `size`.
pub fn preset(engine: Engine, size: PresetSize) -> Preset {
    let row = match engine {
        Engine::Redis => &REDIS,
        Engine::Postgresql => &POSTGRESQL,
        Engine::Mongodb => &MONGODB,
    };
    let (cpu, memory_mib, disk_gib, creation, hourly) = row[size as usize];
    Preset {
        engine,
        size,
        resources: Resources {
            cpu: MilliCpu(cpu),
            memory_mib,
            disk_gib,
        },
        price: Price::from_rates(Lemons::new(creation), Lemons::new(hourly)),
    }
}

/// The whole catalogue: every engine in every size.
pub fn catalogue() -> Vec<Preset> {
    Engine::ALL
        .into_iter()
        .flat_map(|e| PresetSize::ALL.into_iter().map(move |s| preset(e, s)))
        .collect()
}
