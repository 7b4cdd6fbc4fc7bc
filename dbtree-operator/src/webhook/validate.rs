//! A `DBInstance` spec checked with the same `dbtree-core` validators the HTTP API uses.

use std::str::FromStr;

use dbtree_adapters::kube::{DBInstanceSpec, EngineKind, PresetKind};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{
    Engine, InstanceName, InstancePolicy, InstanceSpec, InvalidName, NodePort, NodePortError,
    PresetSize, Resources, SpecError, preset,
};

use super::Refusal;

/// A spec that passed every check, in `dbtree-core`'s terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidSpec {
    /// The name.
    pub name: InstanceName,
    /// The engine with its preset or custom resources.
    pub spec: InstanceSpec,
    /// The NodePort.
    pub node_port: NodePort,
}

/// The longest owner the CRD accepts.
const MAX_OWNER_LEN: usize = 64;

/// Checks a spec field by field, in this order: `spec.displayName`, `spec.resources` (against the
/// preset, or the custom bounds), `spec.nodePort` (range and reserved ports), `spec.instanceId`,
/// `spec.owner`, `spec.secretRef.name`.
///
/// # Errors
/// [`Refusal::Invalid`] naming the first bad field.
pub fn validate_spec(spec: &DBInstanceSpec, policy: &InstancePolicy) -> Result<ValidSpec, Refusal> {
    let name = InstanceName::parse(&spec.display_name)
        .map_err(|e| invalid("spec.displayName", name_message(e)))?;
    let shape = instance_spec(spec)?;
    let node_port = u16::try_from(spec.node_port)
        .map_err(|_| NodePortError::OutOfRange {
            port: 0,
            first: policy.node_ports.first,
            last: policy.node_ports.last,
        })
        .and_then(|p| policy.node_ports.check(p))
        .map_err(|e| invalid("spec.nodePort", port_message(spec.node_port, e)))?;
    InstanceId::from_str(&spec.instance_id).map_err(|_| {
        invalid(
            "spec.instanceId",
            "must be a UUID (8-4-4-4-12 hexadecimal digits)".to_owned(),
        )
    })?;
    let owner_len = spec.owner.chars().count();
    if owner_len == 0 || owner_len > MAX_OWNER_LEN {
        return Err(invalid(
            "spec.owner",
            format!("must be 1 to {MAX_OWNER_LEN} characters"),
        ));
    }
    if spec.secret_ref.name.is_empty() {
        return Err(invalid(
            "spec.secretRef.name",
            "must name the Secret holding the credentials".to_owned(),
        ));
    }
    Ok(ValidSpec {
        name,
        spec: shape,
        node_port,
    })
}

/// The engine with its resources: a preset's must be exactly the preset's, a custom spec must lie
/// within the custom bounds.
fn instance_spec(spec: &DBInstanceSpec) -> Result<InstanceSpec, Refusal> {
    let engine = engine(spec.engine);
    let r = spec.resources;
    match spec.preset {
        Some(kind) => {
            let size = size(kind);
            let want = preset(engine, size).resources;
            let matches = i64::from(r.cpu_millis) == i64::from(want.cpu.0)
                && i64::from(r.memory_mib) == i64::from(want.memory_mib)
                && i64::from(r.disk_gib) == i64::from(want.disk_gib);
            if !matches {
                return Err(invalid(
                    "spec.resources",
                    format!(
                        "the {size} {engine} preset is {} cores, {} MiB and {} GiB \
                         (cpuMillis {}, memoryMib {}, diskGib {}); set exactly these, \
                         or remove spec.preset for a custom size",
                        want.cpu,
                        want.memory_mib,
                        want.disk_gib,
                        want.cpu.0,
                        want.memory_mib,
                        want.disk_gib
                    ),
                ));
            }
            Ok(InstanceSpec::Preset { engine, size })
        }
        None => {
            let resources = Resources::custom(
                f64::from(r.cpu_millis) / 1000.0,
                i64::from(r.memory_mib),
                i64::from(r.disk_gib),
            )
            .map_err(spec_refusal)?;
            Ok(InstanceSpec::Custom { engine, resources })
        }
    }
}

fn spec_refusal(e: SpecError) -> Refusal {
    match e {
        SpecError::Cpu { min, max } => invalid(
            "spec.resources.cpuMillis",
            format!(
                "must be between {} and {} ({min} to {max} cores)",
                min.0, max.0
            ),
        ),
        SpecError::CpuStep { step } => invalid(
            "spec.resources.cpuMillis",
            format!("must be a multiple of {} ({step} cores)", step.0),
        ),
        SpecError::Memory { min, max } => invalid(
            "spec.resources.memoryMib",
            format!("must be between {min} and {max}"),
        ),
        SpecError::Disk { min, max } => invalid(
            "spec.resources.diskGib",
            format!("must be between {min} and {max}"),
        ),
    }
}

fn name_message(e: InvalidName) -> String {
    match e {
        InvalidName::Length { min, max } => format!("must be {min} to {max} characters long"),
        InvalidName::Characters => {
            "may contain only lower-case letters, digits and '-' (a DNS label)".to_owned()
        }
        InvalidName::Edge => "must start and end with a letter or a digit".to_owned(),
    }
}

fn port_message(port: i32, e: NodePortError) -> String {
    match e {
        NodePortError::OutOfRange { first, last, .. } => {
            format!("{port} is outside the NodePort range {first}-{last}")
        }
        NodePortError::Reserved { port } => {
            format!("{port} is reserved for the platform; choose another port")
        }
        NodePortError::Exhausted { first, last } => {
            format!("every NodePort in {first}-{last} is taken")
        }
    }
}

fn invalid(field: &str, message: String) -> Refusal {
    Refusal::Invalid {
        field: field.to_owned(),
        message,
    }
}

/// The engine in `dbtree-core`'s terms.
pub(crate) fn engine(kind: EngineKind) -> Engine {
    match kind {
        EngineKind::Postgresql => Engine::Postgresql,
        EngineKind::Redis => Engine::Redis,
        EngineKind::Mongodb => Engine::Mongodb,
    }
}

fn size(kind: PresetKind) -> PresetSize {
    match kind {
        PresetKind::Tiny => PresetSize::Tiny,
        PresetKind::Small => PresetSize::Small,
        PresetKind::Medium => PresetSize::Medium,
        PresetKind::Large => PresetSize::Large,
    }
}
