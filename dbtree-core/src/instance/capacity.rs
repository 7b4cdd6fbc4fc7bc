//! The node's capacity: its budget, what instances use, and which preset sizes fit now.

use serde::{Deserialize, Serialize};

use super::{Engine, InstanceStatus, MilliCpu, PresetSize, Resources, preset};

/// The node's size and what the system keeps for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBudget {
    /// Node CPU (default 2.0 cores).
    pub total_cpu: MilliCpu,
    /// Node memory, MiB (default 8192).
    pub total_memory_mib: u32,
    /// CPU reserved for the system (default 0.5 core).
    pub reserved_cpu: MilliCpu,
    /// Memory reserved for the system, MiB (default 1536).
    pub reserved_memory_mib: u32,
}

impl Default for NodeBudget {
    fn default() -> Self {
        Self {
            total_cpu: MilliCpu(2000),
            total_memory_mib: 8192,
            reserved_cpu: MilliCpu(500),
            reserved_memory_mib: 1536,
        }
    }
}

impl NodeBudget {
    /// CPU instances may use.
    pub fn usable_cpu(&self) -> MilliCpu {
        MilliCpu(self.total_cpu.0.saturating_sub(self.reserved_cpu.0))
    }

    /// Memory instances may use, MiB.
    pub fn usable_memory_mib(&self) -> u32 {
        self.total_memory_mib
            .saturating_sub(self.reserved_memory_mib)
    }
}

/// Resources held by instances right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Millicores held.
    pub cpu_milli: u64,
    /// MiB held.
    pub memory_mib: u64,
    /// Instances holding resources.
    pub instances: u32,
}

impl Usage {
    /// Sums the resources of the instances whose state holds resources.
    pub fn of<'a>(instances: impl IntoIterator<Item = (InstanceStatus, &'a Resources)>) -> Usage {
        instances
            .into_iter()
            .filter(|(status, _)| status.holds_resources())
            .fold(Usage::default(), |u, (_, r)| u.plus(r))
    }

    /// This usage plus one instance.
    pub fn plus(self, r: &Resources) -> Usage {
        Usage {
            cpu_milli: self.cpu_milli + u64::from(r.cpu.0),
            memory_mib: self.memory_mib + u64::from(r.memory_mib),
            instances: self.instances.saturating_add(1),
        }
    }
}

/// Which resource ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scarce {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
}

/// A request that does not fit the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not enough {resource:?} capacity left: {requested} requested, {free} free")]
pub struct CapacityExceeded {
    /// The resource that ran out.
    pub resource: Scarce,
    /// Amount requested (millicores or MiB).
    pub requested: u64,
    /// Amount free (millicores or MiB).
    pub free: u64,
}

/// Whether `request` fits next to `used` within `budget`.
///
/// # Errors
/// [`CapacityExceeded`] naming CPU first, then memory.
pub fn check_capacity(
    budget: &NodeBudget,
    used: Usage,
    request: &Resources,
) -> Result<(), CapacityExceeded> {
    let free_cpu = u64::from(budget.usable_cpu().0).saturating_sub(used.cpu_milli);
    if u64::from(request.cpu.0) > free_cpu {
        return Err(CapacityExceeded {
            resource: Scarce::Cpu,
            requested: u64::from(request.cpu.0),
            free: free_cpu,
        });
    }
    let free_memory = u64::from(budget.usable_memory_mib()).saturating_sub(used.memory_mib);
    if u64::from(request.memory_mib) > free_memory {
        return Err(CapacityExceeded {
            resource: Scarce::Memory,
            requested: u64::from(request.memory_mib),
            free: free_memory,
        });
    }
    Ok(())
}

/// The preset sizes of `engine` that could be created right now.
pub fn sizes_that_fit(budget: &NodeBudget, used: Usage, engine: Engine) -> Vec<PresetSize> {
    PresetSize::ALL
        .into_iter()
        .filter(|size| check_capacity(budget, used, &preset(engine, *size).resources).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cpu: u32, mem: u32) -> Resources {
        Resources {
            cpu: MilliCpu(cpu),
            memory_mib: mem,
            disk_gib: 1,
        }
    }

    #[test]
    fn budget_minus_reserve() {
        let b = NodeBudget::default();
        assert_eq!(b.usable_cpu(), MilliCpu(1500));
        assert_eq!(b.usable_memory_mib(), 6656);
    }

    #[test]
    fn only_holding_states_count() {
        let big = r(500, 1024);
        let usage = Usage::of([
            (InstanceStatus::Running, &big),
            (InstanceStatus::Provisioning, &big),
            (InstanceStatus::Deleting, &big),
            (InstanceStatus::Stopped, &big),
            (InstanceStatus::Paused, &big),
            (InstanceStatus::Error, &big),
            (InstanceStatus::Deleted, &big),
        ]);
        assert_eq!(
            usage,
            Usage {
                cpu_milli: 1500,
                memory_mib: 3072,
                instances: 3
            }
        );
    }

    #[test]
    fn exact_fit_and_one_over() {
        let b = NodeBudget::default();
        let used = Usage {
            cpu_milli: 1000,
            memory_mib: 6000,
            instances: 2,
        };
        assert_eq!(check_capacity(&b, used, &r(500, 656)), Ok(()));
        assert_eq!(
            check_capacity(&b, used, &r(550, 100)),
            Err(CapacityExceeded {
                resource: Scarce::Cpu,
                requested: 550,
                free: 500
            })
        );
        assert_eq!(
            check_capacity(&b, used, &r(100, 657)),
            Err(CapacityExceeded {
                resource: Scarce::Memory,
                requested: 657,
                free: 656
            })
        );
    }

    #[test]
    fn sizes_that_fit_shrink_as_the_node_fills() {
        let b = NodeBudget::default();
        assert_eq!(
            sizes_that_fit(&b, Usage::default(), Engine::Postgresql),
            PresetSize::ALL.to_vec()
        );
        let used = Usage {
            cpu_milli: 1000,
            memory_mib: 0,
            instances: 2,
        };
        assert_eq!(
            sizes_that_fit(&b, used, Engine::Postgresql),
            vec![PresetSize::Tiny, PresetSize::Small, PresetSize::Medium]
        );
        let used = Usage {
            cpu_milli: 1400,
            memory_mib: 6656 - 256,
            instances: 2,
        };
        assert_eq!(
            sizes_that_fit(&b, used, Engine::Postgresql),
            vec![PresetSize::Tiny]
        );
        assert_eq!(sizes_that_fit(&b, used, Engine::Mongodb), vec![]);
    }
}
