//! The validating admission webhook for `DBInstance`: dbtree's quota, capacity and NodePort rules
//! enforced on every object, whether the dbtree server or `kubectl apply` wrote it.
//!
//! The decision is [`review`], a pure function of the [`AdmissionRequest`], the live
//! `DBInstance`s ([`LiveInstances`]: the reflector's store itself, read in place, or a
//! [`Snapshot`] of it) and the [`WebhookConfig`]. It calls the same
//! `dbtree-core` validators the HTTP API uses. Around it, [`parse`] turns a request body into a
//! typed request (or a clear refusal), and [`server`] serves `POST /validate` and `GET /healthz`
//! over TLS from a reflector cache, with no API call per request.
//!
//! Denials are values: an [`AdmissionResponse`] with `allowed: false` and a `status` whose `code`
//! says what kind of refusal it is, and whose message a person can act on:
//!
//! | code | when |
//! |---:|---|
//! | 400 | the body or the object cannot be read as a `DBInstance` review |
//! | 403 | a quota holds: the owner is not the requester, a 3rd live instance, no capacity left |
//! | 409 | the NodePort or the name is already used by another live `DBInstance` |
//! | 422 | the spec is invalid or an immutable field changed; `details.causes[0].field` names it |
//! | 503 | the cache has not synced yet (retry) |
//!
//! [`AdmissionRequest`]: kube::core::admission::AdmissionRequest
//! [`AdmissionResponse`]: kube::core::admission::AdmissionResponse

mod body;
mod config;
mod refusal;
mod review;
pub mod server;
mod settings;
mod snapshot;
mod validate;

pub use body::{Rejection, parse};
pub use config::WebhookConfig;
pub use refusal::Refusal;
pub use review::{BACKUPS_NOT_IMPLEMENTED_WARNING, DRY_RUN_WARNING, decide, respond, review};
pub use settings::{InvalidSetting, WebhookSettings};
pub use snapshot::{LiveInstances, Snapshot, instance_status};
pub use validate::{ValidSpec, validate_spec};
