//! The dbtree Kubernetes operator: a kube-rs controller that turns each `DBInstance`
//! (`dbinstances.dbtree.cloud/v1`) into a running, isolated PostgreSQL, Redis or MongoDB, and
//! a validating admission webhook that enforces dbtree's quota, capacity and NodePort rules on
//! every `DBInstance`, however it was created.
//!
//! # The controller
//! For each instance it applies, by server-side apply as `dbtree-operator` and with a
//! controller owner reference to the instance: a ConfigMap the engine loads (memory limits,
//! persistence), a PVC sized from `spec.resources.diskGib`, a NodePort Service on
//! `spec.nodePort`, a NetworkPolicy admitting only the database port, and a StatefulSet of one
//! replica (zero while `spec.runState` is `Stopped` or `Paused`) that reads the credentials
//! Secret. It reports `status.phase`, `status.message` and the `Ready` and `Provisioned`
//! conditions with `observedGeneration`, emits Events, retries failures with exponential
//! backoff and jitter, and holds a finalizer until the Service, the workload and the data
//! volume are gone.
//!
//! Before applying anything it asks the [`arbiter::Arbiter`], which re-checks the per-owner
//! limit and NodePort uniqueness under one lock: webhook replicas answer from separate caches,
//! so two simultaneous creations can each pass one of them.
//!
//! The decisions are pure functions tested directly: [`children::desired_children`] (what to
//! apply), [`status::desired_status`] (what to report), [`backoff::Backoff::delay`] (when to
//! retry) and [`leader::decide`] (whether to take the leader lease). [`controller`] only talks
//! to the API server around them; its paths are tested against a fake API server.
//!
//! # Binaries
//! - `dbtree-operator`: the controller, with leader election over a `coordination.k8s.io`
//!   Lease, and `/healthz` and `/metrics` (Prometheus) on `--metrics-listen`.
//! - `dbtree-webhook`: the admission webhook over TLS ([`webhook`]).
//! - `crdgen`: prints the `DBInstance` CustomResourceDefinition (committed as
//!   `deploy/crd.yaml`; CI fails when they differ).

pub mod arbiter;
pub mod backoff;
pub mod children;
pub mod controller;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod ops;
pub mod status;
pub mod webhook;
