//! What a user asks for: a preset or a custom specification of one engine.

use serde::{Deserialize, Serialize};

use super::{Engine, PresetSize, Price, Resources, preset, price};

/// A requested instance shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InstanceSpec {
    /// One of the catalogue's presets.
    Preset {
        /// The engine.
        engine: Engine,
        /// The size.
        size: PresetSize,
    },
    /// Custom resources, validated by [`Resources::custom`].
    Custom {
        /// The engine.
        engine: Engine,
        /// The resources.
        resources: Resources,
    },
}

impl InstanceSpec {
    /// The engine.
    pub fn engine(&self) -> Engine {
        match *self {
            InstanceSpec::Preset { engine, .. } | InstanceSpec::Custom { engine, .. } => engine,
        }
    }

    /// The preset size, if any.
    pub fn size(&self) -> Option<PresetSize> {
        match *self {
            InstanceSpec::Preset { size, .. } => Some(size),
            InstanceSpec::Custom { .. } => None,
        }
    }

    /// The resources it gets.
    pub fn resources(&self) -> Resources {
        match *self {
            InstanceSpec::Preset { engine, size } => preset(engine, size).resources,
            InstanceSpec::Custom { resources, .. } => resources,
        }
    }

    /// Its price.
    pub fn price(&self) -> Price {
        price(self)
    }
}
