#!/usr/bin/env bash
# The cluster end-to-end test. It runs on a real control plane built from source (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok; no container runtime needed)
# with deploy/'s CRD, RBAC and webhook registration applied, and the operator and webhook of this
# checkout running under deploy/'s ServiceAccounts. CI runs it as `.ci/kube-e2e`; this is the
# same command, kept here beside the manifests it checks.
#
# To try the manifests by hand instead: `.ci/kube-cluster up` prints a KUBECONFIG for an admin
# and one for alice (a plain user allowed to create DBInstances in namespace `alice`);
# `.ci/kube-cluster down` removes everything.
set -euo pipefail
exec "$(dirname "$0")/../.ci/kube-e2e" "$@"
