//! Compute, memory and disk of an instance, and the bounds of a custom specification.

use std::fmt;

use serde::{Deserialize, Serialize};

/// CPU in thousandths of a core.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MilliCpu(pub u32);

impl MilliCpu {
    /// The amount in cores (`250` → `0.25`).
    pub fn cores(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Converts cores to millicores, if `cores` is finite, non-negative and a whole number of
    /// millicores (within floating-point noise).
    pub fn from_cores(cores: f64) -> Option<MilliCpu> {
        if !cores.is_finite() || !(0.0..=1_000_000.0).contains(&cores) {
            return None;
        }
        let milli = (cores * 1000.0).round();
        ((cores * 1000.0 - milli).abs() < 1e-6).then_some(MilliCpu(milli as u32))
    }
}

impl fmt::Display for MilliCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        let text = if frac == 0 {
            whole.to_string()
        } else {
            let digits = format!("{frac:03}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        };
        f.pad(&text)
    }
}

/// What an instance gets from the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU.
    pub cpu: MilliCpu,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Disk, GiB.
    pub disk_gib: u32,
}

/// Why a custom specification is refused. Each variant names its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// CPU outside the bounds, or not a number.
    #[error("resources.cpu must be between {min} and {max} cores")]
    Cpu {
        /// Minimum.
        min: MilliCpu,
        /// Maximum.
        max: MilliCpu,
    },
    /// CPU not a multiple of the step.
    #[error("resources.cpu must be a multiple of {step} cores")]
    CpuStep {
        /// The step.
        step: MilliCpu,
    },
    /// Memory outside the bounds.
    #[error("resources.memoryMib must be between {min} and {max}")]
    Memory {
        /// Minimum MiB.
        min: u32,
        /// Maximum MiB.
        max: u32,
    },
    /// Disk outside the bounds.
    #[error("resources.diskGib must be between {min} and {max}")]
    Disk {
        /// Minimum GiB.
        min: u32,
        /// Maximum GiB.
        max: u32,
    },
}

impl Resources {
    /// Smallest custom CPU (0.1 core).
    pub const MIN_CPU: MilliCpu = MilliCpu(100);
    /// Largest custom CPU (2 cores).
    pub const MAX_CPU: MilliCpu = MilliCpu(2000);
    /// Custom CPU comes in steps of 0.05 core.
    pub const CPU_STEP: MilliCpu = MilliCpu(50);
    /// Custom memory bounds, MiB.
    pub const MEMORY_MIB: (u32, u32) = (128, 4096);
    /// Custom disk bounds, GiB.
    pub const DISK_GIB: (u32, u32) = (1, 50);

    /// Validates a custom specification as a client sends it (cores as a decimal number).
    ///
    /// # Errors
    /// [`SpecError`] for the first field out of bounds, in the order cpu, memory, disk.
    pub fn custom(cpu_cores: f64, memory_mib: i64, disk_gib: i64) -> Result<Resources, SpecError> {
        let cpu_bounds = SpecError::Cpu {
            min: Self::MIN_CPU,
            max: Self::MAX_CPU,
        };
        let in_bounds = cpu_cores.is_finite()
            && cpu_cores >= Self::MIN_CPU.cores() - 1e-9
            && cpu_cores <= Self::MAX_CPU.cores() + 1e-9;
        if !in_bounds {
            return Err(cpu_bounds);
        }
        let cpu = MilliCpu::from_cores(cpu_cores)
            .filter(|m| m.0 % Self::CPU_STEP.0 == 0)
            .ok_or(SpecError::CpuStep {
                step: Self::CPU_STEP,
            })?;
        let (min, max) = Self::MEMORY_MIB;
        let memory_mib = u32::try_from(memory_mib)
            .ok()
            .filter(|m| (min..=max).contains(m))
            .ok_or(SpecError::Memory { min, max })?;
        let (min, max) = Self::DISK_GIB;
        let disk_gib = u32::try_from(disk_gib)
            .ok()
            .filter(|d| (min..=max).contains(d))
            .ok_or(SpecError::Disk { min, max })?;
        Ok(Resources {
            cpu,
            memory_mib,
            disk_gib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millicores_convert_exactly() {
        assert_eq!(MilliCpu::from_cores(0.1), Some(MilliCpu(100)));
        assert_eq!(MilliCpu::from_cores(0.15 + 0.1), Some(MilliCpu(250)));
        assert_eq!(MilliCpu::from_cores(0.0001), None);
        assert_eq!(MilliCpu::from_cores(f64::NAN), None);
        assert_eq!(MilliCpu::from_cores(-1.0), None);
        assert_eq!(MilliCpu(250).to_string(), "0.25");
        assert_eq!(MilliCpu(1500).to_string(), "1.5");
        assert_eq!(MilliCpu(2000).to_string(), "2");
    }

    #[test]
    fn custom_bounds() {
        assert!(Resources::custom(0.1, 128, 1).is_ok());
        assert!(Resources::custom(2.0, 4096, 50).is_ok());
        assert!(Resources::custom(0.35, 300, 7).is_ok());
        let cpu = SpecError::Cpu {
            min: MilliCpu(100),
            max: MilliCpu(2000),
        };
        assert_eq!(Resources::custom(0.05, 128, 1), Err(cpu));
        assert_eq!(Resources::custom(2.05, 128, 1), Err(cpu));
        assert_eq!(Resources::custom(f64::INFINITY, 128, 1), Err(cpu));
        assert_eq!(
            Resources::custom(0.33, 128, 1),
            Err(SpecError::CpuStep { step: MilliCpu(50) })
        );
        assert_eq!(
            Resources::custom(0.5, 127, 1),
            Err(SpecError::Memory {
                min: 128,
                max: 4096
            })
        );
        assert_eq!(
            Resources::custom(0.5, 4097, 1),
            Err(SpecError::Memory {
                min: 128,
                max: 4096
            })
        );
        assert_eq!(
            Resources::custom(0.5, 256, 0),
            Err(SpecError::Disk { min: 1, max: 50 })
        );
        assert_eq!(
            Resources::custom(0.5, 256, -3),
            Err(SpecError::Disk { min: 1, max: 50 })
        );
        assert_eq!(
            Resources::custom(0.5, 256, 51),
            Err(SpecError::Disk { min: 1, max: 50 })
        );
    }
}
