//! The decision: one admission request against the live `DBInstance`s.
//!
//! Pure and synchronous: no IO, no clock, no randomness, so a dry run and a real request get the
//! same answer and the webhook can declare `sideEffects: None`.

use dbtree_adapters::kube::{DBInstance, OWNER_LABEL};
use dbtree_core::instance::{Usage, check_capacity};
use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use super::snapshot::{held_resources, is_at};
use super::{LiveInstances, Refusal, WebhookConfig, instance_status, validate_spec};

/// The warning an allowed dry run carries: passing now reserves nothing.
pub const DRY_RUN_WARNING: &str =
    "dry run: allowed now, but nothing is reserved; the real request is checked again";

/// The warning an allowed object with `spec.backupSchedule` carries: the field is accepted so
/// that manifests written for backups keep applying, but nothing acts on it yet.
pub const BACKUPS_NOT_IMPLEMENTED_WARNING: &str =
    "spec.backupSchedule is accepted but backups are not implemented yet: no backup will be taken";

/// Reviews one request: [`decide`], then [`respond`].
pub fn review<L: LiveInstances + ?Sized>(
    request: &AdmissionRequest<DBInstance>,
    snapshot: &L,
    config: &WebhookConfig,
) -> AdmissionResponse {
    respond(request, decide(request, snapshot, config))
}

/// The response to `request` for a decision: allowed (with [`DRY_RUN_WARNING`] on a dry run and
/// [`BACKUPS_NOT_IMPLEMENTED_WARNING`] when the object asks for backups), or denied with the
/// refusal's code, message and field.
pub fn respond(
    request: &AdmissionRequest<DBInstance>,
    decision: Result<(), Refusal>,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    match decision {
        Ok(()) => {
            let mut warnings = Vec::new();
            if request.dry_run {
                warnings.push(DRY_RUN_WARNING.to_owned());
            }
            let writes = matches!(request.operation, Operation::Create | Operation::Update);
            let asks_for_backups = request
                .object
                .as_ref()
                .is_some_and(|o| o.spec.backup_schedule.is_some());
            if writes && asks_for_backups && request.sub_resource.is_none() {
                warnings.push(BACKUPS_NOT_IMPLEMENTED_WARNING.to_owned());
            }
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
        }
        Err(refusal) => {
            response.allowed = false;
            response.result = refusal.status();
        }
    }
    response
}

/// Whether `request` may go ahead.
///
/// DELETE and CONNECT always may; so may an update of the `status` subresource (the operator's)
/// and an update that leaves the spec and the owner label alone (finalizers, annotations). A
/// CREATE is checked in this order: owner, spec, per-owner limit, name, NodePort, capacity; an
/// UPDATE: who may change it, immutable fields, owner label, spec, name, capacity when it grows.
///
/// # Errors
/// The first [`Refusal`] that applies.
pub fn decide<L: LiveInstances + ?Sized>(
    request: &AdmissionRequest<DBInstance>,
    snapshot: &L,
    config: &WebhookConfig,
) -> Result<(), Refusal> {
    match request.operation {
        Operation::Delete | Operation::Connect => Ok(()),
        Operation::Create => {
            let new = object(request.object.as_ref(), "CREATE", "object")?;
            create(request, new, snapshot, config)
        }
        Operation::Update => {
            if request.sub_resource.is_some() {
                return Ok(());
            }
            let new = object(request.object.as_ref(), "UPDATE", "object")?;
            let old = object(request.old_object.as_ref(), "UPDATE", "oldObject")?;
            update(request, new, old, snapshot, config)
        }
    }
}

fn object<'a>(
    object: Option<&'a DBInstance>,
    operation: &str,
    field: &str,
) -> Result<&'a DBInstance, Refusal> {
    object.ok_or_else(|| Refusal::Malformed {
        reason: format!("a {operation} review must carry request.{field}"),
    })
}

fn create<L: LiveInstances + ?Sized>(
    request: &AdmissionRequest<DBInstance>,
    new: &DBInstance,
    snapshot: &L,
    config: &WebhookConfig,
) -> Result<(), Refusal> {
    check_owner(username(request), new, config)?;
    let valid = validate_spec(&new.spec, &config.instances)?;
    let status = instance_status(new);
    let census = Census::take(snapshot, request, new);
    let limit = config.instances.max_live_per_user;
    if status.is_live() && census.owner_live >= limit {
        return Err(Refusal::InstanceLimit {
            owner: new.spec.owner.clone(),
            used: census.owner_live,
            limit,
        });
    }
    if status.is_live() && census.name_taken {
        return Err(Refusal::NameTaken {
            owner: new.spec.owner.clone(),
            name: new.spec.display_name.clone(),
        });
    }
    if census.port_taken {
        return Err(Refusal::NodePortTaken {
            port: new.spec.node_port,
        });
    }
    if status.holds_resources() {
        check_capacity(
            &config.instances.budget,
            census.usage,
            &valid.spec.resources(),
        )
        .map_err(Refusal::Capacity)?;
    }
    Ok(())
}

fn update<L: LiveInstances + ?Sized>(
    request: &AdmissionRequest<DBInstance>,
    new: &DBInstance,
    old: &DBInstance,
    snapshot: &L,
    config: &WebhookConfig,
) -> Result<(), Refusal> {
    if new.spec == old.spec && owner_label(new) == owner_label(old) {
        return Ok(());
    }
    let user = username(request);
    if !config.is_trusted(user) && old.spec.owner != user {
        return Err(Refusal::NotTheOwner {
            owner: old.spec.owner.clone(),
            user: user.to_owned(),
        });
    }
    check_immutable(old, new)?;
    check_owner(user, new, config)?;
    let valid = validate_spec(&new.spec, &config.instances)?;
    let (before, after) = (instance_status(old), instance_status(new));
    let census = Census::take(snapshot, request, new);
    if after.is_live() && census.name_taken && new.spec.display_name != old.spec.display_name {
        return Err(Refusal::NameTaken {
            owner: new.spec.owner.clone(),
            name: new.spec.display_name.clone(),
        });
    }
    let wanted = valid.spec.resources();
    let held = held_resources(&old.spec.resources);
    let grows =
        !before.holds_resources() || wanted.cpu > held.cpu || wanted.memory_mib > held.memory_mib;
    if after.holds_resources() && grows {
        check_capacity(&config.instances.budget, census.usage, &wanted)
            .map_err(Refusal::Capacity)?;
    }
    Ok(())
}

/// Engine, owner, instance id and NodePort never change; disk never shrinks. The NodePort is
/// immutable because dbtree records which instance holds which port and frees a port only once
/// the old Service is gone: moving it in place would bypass that.
fn check_immutable(old: &DBInstance, new: &DBInstance) -> Result<(), Refusal> {
    let (o, n) = (&old.spec, &new.spec);
    let immutable = |field: &'static str, old: String, new: String| {
        if old == new {
            Ok(())
        } else {
            Err(Refusal::Immutable { field, old, new })
        }
    };
    immutable(
        "spec.engine",
        format!("{:?}", o.engine),
        format!("{:?}", n.engine),
    )?;
    immutable(
        "spec.owner",
        format!("{:?}", o.owner),
        format!("{:?}", n.owner),
    )?;
    immutable(
        "spec.instanceId",
        format!("{:?}", o.instance_id),
        format!("{:?}", n.instance_id),
    )?;
    immutable(
        "spec.nodePort",
        o.node_port.to_string(),
        n.node_port.to_string(),
    )?;
    if n.resources.disk_gib < o.resources.disk_gib {
        return Err(Refusal::Invalid {
            field: "spec.resources.diskGib".to_owned(),
            message: format!(
                "a disk cannot shrink: it is {} GiB, the update asks for {} GiB",
                o.resources.disk_gib, n.resources.disk_gib
            ),
        });
    }
    Ok(())
}

/// Untrusted users own what they create: `spec.owner` and the owner label (when set) must be their
/// own user name. Trusted accounts may name anyone, but the label must agree with `spec.owner`.
fn check_owner(user: &str, object: &DBInstance, config: &WebhookConfig) -> Result<(), Refusal> {
    const LABEL_FIELD: &str = "metadata.labels[dbtree.cloud/owner]";
    let label = owner_label(object);
    if config.is_trusted(user) {
        return match label {
            Some(l) if l != object.spec.owner => Err(Refusal::Invalid {
                field: LABEL_FIELD.to_owned(),
                message: format!(
                    "is {l:?} but spec.owner is {:?}; they must agree",
                    object.spec.owner
                ),
            }),
            _ => Ok(()),
        };
    }
    if object.spec.owner != user {
        return Err(Refusal::OwnerNotRequester {
            field: "spec.owner",
            owner: object.spec.owner.clone(),
            user: user.to_owned(),
        });
    }
    match label {
        Some(l) if l != user => Err(Refusal::OwnerNotRequester {
            field: LABEL_FIELD,
            owner: l.to_owned(),
            user: user.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn owner_label(object: &DBInstance) -> Option<&str> {
    object.labels().get(OWNER_LABEL).map(String::as_str)
}

fn username<T: kube::Resource>(request: &AdmissionRequest<T>) -> &str {
    request.user_info.username.as_deref().unwrap_or_default()
}

/// What the other objects mean for the one under review, gathered in one pass.
#[derive(Debug, Default)]
struct Census {
    /// Live instances of the same owner.
    owner_live: u32,
    /// Whether a live instance of the same owner has the same name.
    name_taken: bool,
    /// Whether any other object (deleting ones included) has the same NodePort.
    port_taken: bool,
    /// Capacity held by the others.
    usage: Usage,
}

impl Census {
    fn take<L: LiveInstances + ?Sized>(
        snapshot: &L,
        request: &AdmissionRequest<DBInstance>,
        new: &DBInstance,
    ) -> Census {
        let namespace = request
            .namespace
            .as_deref()
            .or(new.metadata.namespace.as_deref());
        let name = match request.name.as_str() {
            "" => new.metadata.name.as_deref().unwrap_or_default(),
            name => name,
        };
        let mut census = Census::default();
        snapshot.for_each_instance(&mut |other| {
            if is_at(other, namespace, name) {
                return;
            }
            let status = instance_status(other);
            if status.is_live() && other.spec.owner == new.spec.owner {
                census.owner_live = census.owner_live.saturating_add(1);
                census.name_taken |= other.spec.display_name == new.spec.display_name;
            }
            census.port_taken |= other.spec.node_port == new.spec.node_port;
            if status.holds_resources() {
                census.usage = census.usage.plus(&held_resources(&other.spec.resources));
            }
        });
        census
    }
}
