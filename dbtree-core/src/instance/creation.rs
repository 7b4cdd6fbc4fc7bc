//! Whether an instance may be created (or started): limit, name, balance, capacity, in that order.

use super::{CapacityExceeded, InstancePolicy, Price, Resources, Usage, check_capacity};
use crate::lemons::Lemons;

/// What the store knows about the owner when it decides, inside its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerSnapshot {
    /// Live instances the owner has.
    pub live_instances: u32,
    /// Whether a live instance of the owner already has the requested name.
    pub name_taken: bool,
    /// The owner's balance.
    pub balance: Lemons,
}

/// Why an instance may not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateRefusal {
    /// The owner already has the maximum number of live instances.
    #[error("instance limit reached: {used} of {limit} live instances")]
    InstanceLimit {
        /// Live instances.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// A live instance of the owner has this name.
    #[error("you already have an instance with this name")]
    NameTaken,
    /// The balance does not cover the creation cost plus one hour.
    #[error("not enough lemons: {required} required (creation + 1 h), {available} available")]
    InsufficientLemons {
        /// Creation cost plus one hour.
        required: Lemons,
        /// The balance.
        available: Lemons,
    },
    /// The node has no room for it.
    #[error(transparent)]
    Capacity(#[from] CapacityExceeded),
}

/// Checks a creation in precedence order.
///
/// # Errors
/// [`CreateRefusal::InstanceLimit`], then [`CreateRefusal::NameTaken`], then
/// [`CreateRefusal::InsufficientLemons`], then [`CreateRefusal::Capacity`].
pub fn check_creation(
    owner: &OwnerSnapshot,
    used: Usage,
    request: &Resources,
    price: &Price,
    policy: &InstancePolicy,
) -> Result<(), CreateRefusal> {
    if owner.live_instances >= policy.max_live_per_user {
        return Err(CreateRefusal::InstanceLimit {
            used: owner.live_instances,
            limit: policy.max_live_per_user,
        });
    }
    if owner.name_taken {
        return Err(CreateRefusal::NameTaken);
    }
    let required = price.required_to_create();
    if owner.balance < required {
        return Err(CreateRefusal::InsufficientLemons {
            required,
            available: owner.balance,
        });
    }
    check_capacity(&policy.budget, used, request)?;
    Ok(())
}

/// Why a stopped or paused instance may not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartRefusal {
    /// The balance does not cover one hour.
    #[error("not enough lemons: {required} required (1 h), {available} available")]
    InsufficientLemons {
        /// One hour.
        required: Lemons,
        /// The balance.
        available: Lemons,
    },
    /// The node has no room for it.
    #[error(transparent)]
    Capacity(#[from] CapacityExceeded),
}

/// Checks that an instance may start again: one hour affordable, then capacity.
///
/// # Errors
/// [`StartRefusal::InsufficientLemons`], then [`StartRefusal::Capacity`].
pub fn check_start(
    balance: Lemons,
    used: Usage,
    request: &Resources,
    price: &Price,
    policy: &InstancePolicy,
) -> Result<(), StartRefusal> {
    if balance < price.hourly_cost {
        return Err(StartRefusal::InsufficientLemons {
            required: price.hourly_cost,
            available: balance,
        });
    }
    check_capacity(&policy.budget, used, request)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::{Engine, InstanceSpec, PresetSize, Scarce};

    fn tiny_pg() -> (Resources, Price) {
        let spec = InstanceSpec::Preset {
            engine: Engine::Postgresql,
            size: PresetSize::Tiny,
        };
        (spec.resources(), spec.price())
    }

    fn owner(live: u32, taken: bool, balance: u32) -> OwnerSnapshot {
        OwnerSnapshot {
            live_instances: live,
            name_taken: taken,
            balance: Lemons::new(balance),
        }
    }

    #[test]
    fn second_instance_allowed_third_refused() {
        let p = InstancePolicy::default();
        let (r, price) = tiny_pg();
        assert_eq!(
            check_creation(&owner(1, false, 100), Usage::default(), &r, &price, &p),
            Ok(())
        );
        assert_eq!(
            check_creation(&owner(2, false, 100), Usage::default(), &r, &price, &p),
            Err(CreateRefusal::InstanceLimit { used: 2, limit: 2 })
        );
    }

    #[test]
    fn precedence_and_the_one_hour_margin() {
        let p = InstancePolicy::default();
        let (r, price) = tiny_pg(); // 5 + 1
        let full = Usage {
            cpu_milli: 1500,
            memory_mib: 0,
            instances: 3,
        };
        assert_eq!(
            check_creation(&owner(2, true, 0), full, &r, &price, &p),
            Err(CreateRefusal::InstanceLimit { used: 2, limit: 2 })
        );
        assert_eq!(
            check_creation(&owner(0, true, 0), full, &r, &price, &p),
            Err(CreateRefusal::NameTaken)
        );
        assert_eq!(
            check_creation(&owner(0, false, 5), full, &r, &price, &p),
            Err(CreateRefusal::InsufficientLemons {
                required: Lemons::new(6),
                available: Lemons::new(5)
            })
        );
        assert!(matches!(
            check_creation(&owner(0, false, 6), full, &r, &price, &p),
            Err(CreateRefusal::Capacity(CapacityExceeded {
                resource: Scarce::Cpu,
                ..
            }))
        ));
        assert_eq!(
            check_creation(&owner(0, false, 6), Usage::default(), &r, &price, &p),
            Ok(())
        );
    }

    #[test]
    fn starting_needs_one_hour_and_room() {
        let p = InstancePolicy::default();
        let (r, price) = tiny_pg();
        assert_eq!(
            check_start(Lemons::new(1), Usage::default(), &r, &price, &p),
            Ok(())
        );
        assert!(matches!(
            check_start(Lemons::ZERO, Usage::default(), &r, &price, &p),
            Err(StartRefusal::InsufficientLemons { .. })
        ));
        let full = Usage {
            cpu_milli: 1500,
            memory_mib: 0,
            instances: 3,
        };
        assert!(matches!(
            check_start(Lemons::new(9), full, &r, &price, &p),
            Err(StartRefusal::Capacity(_))
        ));
    }
}
