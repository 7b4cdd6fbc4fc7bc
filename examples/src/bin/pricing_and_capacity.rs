//! Pricing and capacity planning with `dbtree-core` alone: no storage, no runtime.
//!
//! Prints the preset catalogue with every price, quotes a few custom specifications, and plans
//! how many instances of each preset fit on the default node. Exits non-zero if any figure
//! disagrees with the published rules.

use std::process::ExitCode;

use dbtree_core::instance::{
    Engine, InstanceSpec, MilliCpu, NodeBudget, PresetSize, Resources, Usage, catalogue,
    check_capacity, price, sizes_that_fit,
};

fn main() -> ExitCode {
    let mut failures = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            failures.push(what.to_owned());
        }
    };

    println!(
        "{:<11} {:<7} {:>5} {:>6} {:>5} {:>8} {:>6} {:>6} {:>8}",
        "engine", "size", "vCPU", "MiB", "GiB", "creation", "hourly", "daily", "monthly"
    );
    for preset in catalogue() {
        let p = preset.price;
        println!(
            "{:<11} {:<7} {:>5} {:>6} {:>5} {:>8} {:>6} {:>6} {:>8}",
            preset.engine,
            preset.size,
            preset.resources.cpu,
            preset.resources.memory_mib,
            preset.resources.disk_gib,
            p.creation_cost,
            p.hourly_cost,
            p.daily_cost,
            p.monthly_cost
        );
        expect(
            "daily is 24 hours",
            p.daily_cost.get() == 24 * p.hourly_cost.get(),
        );
        expect(
            "monthly is 720 hours",
            p.monthly_cost.get() == 720 * p.hourly_cost.get(),
        );
    }
    expect("12 presets", catalogue().len() == 12);

    println!("\ncustom specifications (creation = 10 × hourly):");
    let customs = [
        (Engine::Redis, 0.1, 128, 1, 1),
        (Engine::Postgresql, 0.5, 1024, 10, 3),
        (Engine::Postgresql, 1.0, 2048, 20, 8),
        (Engine::Mongodb, 2.0, 4096, 50, 19),
    ];
    for (engine, cpu, memory, disk, hourly) in customs {
        let resources = match Resources::custom(cpu, memory, disk) {
            Ok(r) => r,
            Err(e) => {
                expect(
                    &format!("{engine} {cpu}/{memory}/{disk} is valid: {e}"),
                    false,
                );
                continue;
            }
        };
        let p = price(&InstanceSpec::Custom { engine, resources });
        println!(
            "  {engine:<11} {cpu:>4} vCPU {memory:>5} MiB {disk:>3} GiB → {} + {}/h",
            p.creation_cost, p.hourly_cost
        );
        expect(
            &format!("{engine} {cpu}/{memory}/{disk} costs {hourly}/h"),
            p.hourly_cost.get() == hourly,
        );
    }
    expect(
        "0.33 vCPU is refused (steps of 0.05)",
        Resources::custom(0.33, 256, 1).is_err(),
    );

    let budget = NodeBudget::default();
    println!(
        "\ncapacity plan for a node of {} vCPU / {} MiB ({} / {} MiB usable):",
        budget.total_cpu,
        budget.total_memory_mib,
        budget.usable_cpu(),
        budget.usable_memory_mib()
    );
    for engine in Engine::ALL {
        for size in PresetSize::ALL {
            let resources = InstanceSpec::Preset { engine, size }.resources();
            let mut used = Usage::default();
            let mut count = 0;
            while check_capacity(&budget, used, &resources).is_ok() {
                used = used.plus(&resources);
                count += 1;
            }
            println!("  {engine:<11} {size:<7} fits {count:>2} at once");
            expect(
                "at least one of every preset fits an empty node",
                count >= 1,
            );
        }
    }
    let two_large = Usage {
        cpu_milli: 1500,
        memory_mib: 3072,
        instances: 2,
    };
    expect(
        "nothing fits beside two large instances",
        sizes_that_fit(&budget, two_large, Engine::Redis).is_empty(),
    );
    let half = Usage {
        cpu_milli: u64::from(MilliCpu(750).0),
        memory_mib: 1536,
        instances: 1,
    };
    expect(
        "a large PostgreSQL still fits beside one",
        sizes_that_fit(&budget, half, Engine::Postgresql).contains(&PresetSize::Large),
    );

    if failures.is_empty() {
        println!("\nall figures agree with the published rules");
        ExitCode::SUCCESS
    } else {
        for f in failures {
            eprintln!("MISMATCH: {f}");
        }
        ExitCode::FAILURE
    }
}
