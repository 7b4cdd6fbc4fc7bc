//! End to end against a real control plane: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok, with dbtree's CRD, RBAC and webhook registration from `deploy/`,
//! and the webhook and two operator replicas from this checkout running under deploy/'s
//! ServiceAccounts. Every assertion is about what the real API server answered or stored.
//!
//! `.ci/kube-e2e` brings the cluster up (`.ci/kube-cluster up`), runs this target with
//! `--ignored`, and takes the cluster down. Plain `cargo test` skips it: it needs the cluster.
//! The kubeconfig paths come from `DBTREE_E2E_*` variables (or the `env` file of a cluster that
//! is up, see [`support::Env`]).
//!
//! kwok marks pods Running and Ready without running containers, so the engines themselves
//! never start here: what this tier proves is the Kubernetes side (schemas, admission, RBAC,
//! the objects the operator renders and how it follows them), not PostgreSQL, Redis or MongoDB
//! inside a pod.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
mod crd;
mod isolation;
mod operator;
mod rbac;
mod server;
mod support;
