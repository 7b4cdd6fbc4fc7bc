//! The one pricing function, used by the API, the quote endpoint, the webhook and the UI.

use serde::{Deserialize, Serialize};

use super::{Engine, InstanceSpec, PresetSize, Resources, preset};
use crate::lemons::Lemons;

/// What an instance costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// Paid once at creation.
    pub creation_cost: Lemons,
    /// Paid every hour while running.
    pub hourly_cost: Lemons,
    /// 24 × hourly.
    pub daily_cost: Lemons,
    /// 720 × hourly (30 days).
    pub monthly_cost: Lemons,
}

impl Price {
    /// A price from its creation and hourly rates.
    pub const fn from_rates(creation_cost: Lemons, hourly_cost: Lemons) -> Price {
        let hourly = hourly_cost.get();
        Price {
            creation_cost,
            hourly_cost,
            daily_cost: Lemons::new(hourly.saturating_mul(24)),
            monthly_cost: Lemons::new(hourly.saturating_mul(720)),
        }
    }

    /// The balance needed to create the instance: its creation cost plus one hour.
    pub fn required_to_create(&self) -> Lemons {
        Lemons::new(
            self.creation_cost
                .get()
                .saturating_add(self.hourly_cost.get()),
        )
    }
}

/// The hourly cost of a custom specification:
/// `max(1, floor(mem_GiB × k + max(0, cpu − 0.5) × 2 + max(0, disk − 10) / 10))`,
/// with `k` = 2 for Redis and 3 for PostgreSQL and MongoDB. Computed in exact integer arithmetic
/// (everything over a common denominator of 128 000), so no rounding error can shift a price.
pub fn custom_hourly_cost(engine: Engine, resources: &Resources) -> Lemons {
    const DENOMINATOR: u64 = 128_000;
    let k: u64 = match engine {
        Engine::Redis => 2,
        Engine::Postgresql | Engine::Mongodb => 3,
    };
    // mem_MiB/1024 × k  = mem_MiB × k × 125 / 128000
    let memory = u64::from(resources.memory_mib) * k * 125;
    // (milli − 500)/1000 × 2 = (milli − 500) × 256 / 128000
    let cpu = u64::from(resources.cpu.0.saturating_sub(500)) * 256;
    // (disk − 10)/10 = (disk − 10) × 12800 / 128000
    let disk = u64::from(resources.disk_gib.saturating_sub(10)) * 12_800;
    let hourly = ((memory + cpu + disk) / DENOMINATOR).max(1);
    Lemons::new(u32::try_from(hourly).unwrap_or(u32::MAX))
}

/// The price of a specification: the preset table for presets, [`custom_price`] for custom
/// specifications.
pub fn price(spec: &InstanceSpec) -> Price {
    match *spec {
        InstanceSpec::Preset { engine, size } => preset(engine, size).price,
        InstanceSpec::Custom { engine, resources } => custom_price(engine, &resources),
    }
}

/// Whether `spec` has at least `other`'s cpu, memory and disk.
fn contains(spec: &Resources, other: &Resources) -> bool {
    spec.cpu >= other.cpu && spec.memory_mib >= other.memory_mib && spec.disk_gib >= other.disk_gib
}

/// The price of custom resources. **A spec never costs less than a preset it contains**:
/// resources equal to a preset's cost exactly that preset's price; any other resources cost,
/// component by component (creation, hourly), the maximum of the formula
/// ([`custom_hourly_cost`], creation = 10 × hourly) and the price of every preset of the engine
/// whose cpu, memory and disk they all equal or exceed.
pub fn custom_price(engine: Engine, resources: &Resources) -> Price {
    let presets = PresetSize::ALL.map(|size| preset(engine, size));
    if let Some(same) = presets.iter().find(|p| p.resources == *resources) {
        return same.price;
    }
    let hourly = custom_hourly_cost(engine, resources);
    let formula = (Lemons::new(hourly.get().saturating_mul(10)), hourly);
    let (creation, hourly) = presets
        .iter()
        .filter(|p| contains(resources, &p.resources))
        .fold(formula, |(creation, hourly), p| {
            (
                creation.max(p.price.creation_cost),
                hourly.max(p.price.hourly_cost),
            )
        });
    Price::from_rates(creation, hourly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::{MilliCpu, PresetSize};

    fn custom(engine: Engine, cpu: u32, memory_mib: u32, disk_gib: u32) -> (u32, u32) {
        let p = price(&InstanceSpec::Custom {
            engine,
            resources: Resources {
                cpu: MilliCpu(cpu),
                memory_mib,
                disk_gib,
            },
        });
        (p.creation_cost.get(), p.hourly_cost.get())
    }

    #[test]
    fn every_preset_has_its_table_price() {
        use Engine::*;
        use PresetSize::*;
        let table = [
            (Redis, Tiny, 3, 1),
            (Redis, Small, 6, 1),
            (Redis, Medium, 12, 2),
            (Redis, Large, 20, 3),
            (Postgresql, Tiny, 5, 1),
            (Postgresql, Small, 10, 2),
            (Postgresql, Medium, 20, 3),
            (Postgresql, Large, 30, 5),
            (Mongodb, Tiny, 5, 1),
            (Mongodb, Small, 10, 2),
            (Mongodb, Medium, 20, 3),
            (Mongodb, Large, 30, 5),
        ];
        for (engine, size, creation, hourly) in table {
            let p = price(&InstanceSpec::Preset { engine, size });
            assert_eq!(
                (p.creation_cost.get(), p.hourly_cost.get()),
                (creation, hourly),
                "{engine} {size}"
            );
            assert_eq!(p.daily_cost.get(), 24 * hourly);
            assert_eq!(p.monthly_cost.get(), 720 * hourly);
            assert_eq!(p.required_to_create().get(), creation + hourly);
        }
    }

    #[test]
    fn custom_formula_edges() {
        // minimum is 1 lemon an hour
        assert_eq!(custom(Engine::Redis, 100, 129, 1), (10, 1));
        // exactly 1 GiB redis = 2 (it contains redis medium, 12/2)
        assert_eq!(custom(Engine::Redis, 500, 1024, 10), (20, 2));
        // just under 1 GiB postgres: 1023/1024 × 3 = 2.997 → 2
        assert_eq!(custom(Engine::Postgresql, 500, 1023, 10), (20, 2));
        assert_eq!(custom(Engine::Postgresql, 500, 1024, 11), (30, 3));
        // cpu above 0.5 counts double: 1.0 cpu → +1
        assert_eq!(custom(Engine::Mongodb, 1000, 1024, 10), (40, 4));
        // 0.55 cpu → +0.1, not enough alone
        assert_eq!(custom(Engine::Mongodb, 550, 1024, 10), (30, 3));
        // disk above 10 GiB: every 10 GiB → +1
        assert_eq!(custom(Engine::Mongodb, 500, 1024, 21), (40, 4));
        assert_eq!(custom(Engine::Mongodb, 500, 1024, 19), (30, 3));
        // fractions add up before flooring: 0.375×3=1.125 + 0.5×2=1 (cpu 1.0) - but 0.8 + ...
        assert_eq!(custom(Engine::Postgresql, 900, 384, 15), (20, 2)); // 1.125 + 0.8 + 0.5 = 2.425
        // the largest custom spec
        assert_eq!(custom(Engine::Postgresql, 2000, 4096, 50), (190, 19)); // 12 + 3 + 4
    }

    /// The rule of §4.3 in a table: a spec equal to a preset costs exactly the preset; a spec
    /// containing presets costs at least each of them, component by component.
    #[test]
    fn no_spec_costs_less_than_a_preset_it_contains() {
        use Engine::*;
        let table = [
            // equal to a preset: exactly its price, even where the formula says otherwise
            (Postgresql, 250, 512, 5, (10, 2)), // formula 15/1.5 -> 10/1
            (Postgresql, 100, 256, 2, (5, 1)),  // formula 10/1
            (Postgresql, 500, 1024, 10, (20, 3)), // formula 30/3
            (Redis, 100, 128, 1, (3, 1)),
            (Redis, 750, 1024, 8, (20, 3)), // formula 20/2
            (Mongodb, 250, 768, 10, (10, 2)),
            // just above small: the formula (10/1) is below small's hourly, so small's 2/h
            // and the formula's creation 10 = small's creation
            (Postgresql, 250, 512, 6, (10, 2)),
            (Postgresql, 300, 512, 5, (10, 2)),
            // above redis medium: the formula gives 10/1, medium 12/2
            (Redis, 500, 512, 5, (12, 2)),
            // above redis large in disk: formula 20/2, large 20/3
            (Redis, 750, 1024, 9, (20, 3)),
            // above pg medium: the formula 30/3 beats medium's 20
            (Postgresql, 500, 1024, 11, (30, 3)),
            // contains nothing bigger than tiny: the formula
            (Postgresql, 100, 300, 50, (40, 4)),
            // contains no preset at all (less disk than tiny): the formula alone
            (Mongodb, 2000, 4096, 1, (150, 15)),
        ];
        for (engine, cpu, memory, disk, want) in table {
            assert_eq!(
                custom(engine, cpu, memory, disk),
                want,
                "{engine} {cpu}m {memory} MiB {disk} GiB"
            );
        }
        for size in PresetSize::ALL {
            for engine in Engine::ALL {
                let p = preset(engine, size);
                assert_eq!(
                    custom_price(engine, &p.resources),
                    p.price,
                    "{engine} {size}"
                );
            }
        }
    }
}
