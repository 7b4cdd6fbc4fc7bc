#!/usr/bin/env bash
# ============================================================================================
#  NOT RUN HERE. This workplace has no Kubernetes cluster and reaches no container registry,
#  so this script has never been executed. It is written for a developer machine with Docker,
#  k3d (https://k3d.io), kubectl and helm, and is kept in step with deploy/ by hand; treat a
#  failure as a bug in the script or in dbtree, and fix whichever is wrong.
# ============================================================================================
#
# End to end on a throw-away k3d cluster (K3s in Docker):
#   1. build the two images and import them into the cluster;
#   2. install cert-manager, then deploy/ (CRD, namespace, RBAC, operator, webhook, policies);
#   3. create a Redis DBInstance with kubectl as a plain user and wait for phase Ready;
#   4. connect through the NodePort with the Secret's credentials (redis-cli PING);
#   5. Stop → 0 replicas, phase Stopped; Running → Ready again; the data survived;
#   6. delete a child (the Service) and see it re-created;
#   7. the webhook refuses a NodePort out of range;
#   8. delete the instance: its Service, StatefulSet and PVC are gone when it is.
# Usage: deploy/e2e.sh            (KEEP_CLUSTER=1 to leave the cluster running afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-dbtree-e2e}
NS=e2e-team
CERT_MANAGER_VERSION=${CERT_MANAGER_VERSION:-v1.16.2}
NODE_PORT=30500

log() { printf '\n==> %s\n' "$*"; }
fail() { printf 'E2E FAILED: %s\n' "$*" >&2; exit 1; }
phase() { kubectl -n "$NS" get dbi "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
wait_phase() { # name phase timeout-seconds
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(phase "$1")" = "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || {
      kubectl -n "$NS" describe dbi "$1" || true
      fail "$1 did not reach phase $2 within $3 s (phase: $(phase "$1"))"
    }
    sleep 3
  done
  echo "$1 is $2"
}
cleanup() { [ "${KEEP_CLUSTER:-0}" = 1 ] || k3d cluster delete "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

log "cluster"
k3d cluster create "$CLUSTER" --agents 0 --wait \
  -p "${NODE_PORT}:${NODE_PORT}@server:0" -p "30080:30080@server:0"

log "images"
docker build -f deploy/Dockerfile --target operator -t dbtree/dbtree-operator:dev .
docker build -f deploy/Dockerfile --target server -t dbtree/dbtree-server:dev .
k3d image import -c "$CLUSTER" dbtree/dbtree-operator:dev dbtree/dbtree-server:dev

log "cert-manager"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=180s

log "dbtree (without the server: this test plays the user with kubectl)"
kubectl apply -f deploy/namespace.yaml
kubectl apply -f deploy/crd.yaml
kubectl wait --for=condition=Established crd/dbinstances.dbtree.cloud --timeout=60s
kubectl apply -f deploy/rbac.yaml -f deploy/networkpolicies.yaml -f deploy/operator.yaml -f deploy/webhook.yaml
kubectl -n dbtree wait --for=condition=Ready certificate/dbtree-webhook --timeout=120s
kubectl -n dbtree rollout status deploy/dbtree-webhook --timeout=180s
kubectl -n dbtree rollout status deploy/dbtree-operator --timeout=180s
holder=$(kubectl -n dbtree get lease dbtree-operator -o jsonpath='{.spec.holderIdentity}')
[ -n "$holder" ] || fail "no operator replica holds the leader lease"
echo "leader: $holder"

log "a Redis instance, created with kubectl"
kubectl create namespace "$NS"
password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
kubectl -n "$NS" create secret generic cache-credentials \
  --from-literal=username=app --from-literal=password="$password"
me=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
example() { sed -e "s/namespace: team-a/namespace: $NS/" -e "s/owner: system:admin/owner: \"$me\"/" \
  deploy/examples/dbinstance-redis.yaml; }
example | sed -e "s/nodePort: 30500/nodePort: $NODE_PORT/" | kubectl apply -f -
wait_phase cache Ready 300
kubectl -n "$NS" get dbi cache -o jsonpath='{.status.conditions}' | grep -q '"type":"Provisioned"' \
  || fail "no Provisioned condition"
for kind in statefulset service configmap networkpolicy pvc; do
  owner=$(kubectl -n "$NS" get "$kind" -l app.kubernetes.io/managed-by=dbtree \
    -o jsonpath='{.items[0].metadata.ownerReferences[0].kind}')
  [ "$owner" = DBInstance ] || fail "$kind is not owned by the DBInstance"
done
kubectl -n "$NS" get dbi cache -o jsonpath='{.metadata.finalizers}' | grep -q dbtree.cloud/cleanup \
  || fail "no finalizer"

log "connect through the NodePort"
redis() { docker run --rm --network host docker.io/library/redis:7.4.6 \
  redis-cli -h 127.0.0.1 -p "$NODE_PORT" --user app --pass "$password" --no-auth-warning "$@"; }
[ "$(redis PING)" = PONG ] || fail "PING through the NodePort"
redis SET e2e-key kept >/dev/null
[ "$(redis CONFIG GET maxmemory-policy | tail -1)" = allkeys-lru ] \
  || fail "the ConfigMap's maxmemory-policy is not in effect"
if docker run --rm --network host docker.io/library/redis:7.4.6 \
     redis-cli -h 127.0.0.1 -p "$NODE_PORT" PING 2>/dev/null | grep -q PONG; then
  fail "the default user must be off"
fi

log "stop and start"
kubectl -n "$NS" patch dbi cache --type merge -p '{"spec":{"runState":"Stopped"}}'
wait_phase cache Stopped 180
[ "$(kubectl -n "$NS" get sts -l app.kubernetes.io/managed-by=dbtree -o jsonpath='{.items[0].spec.replicas}')" = 0 ] \
  || fail "Stopped did not scale to 0"
kubectl -n "$NS" patch dbi cache --type merge -p '{"spec":{"runState":"Running"}}'
wait_phase cache Ready 300
[ "$(redis GET e2e-key)" = kept ] || fail "data lost across stop/start"

log "a deleted child is re-created"
svc=$(kubectl -n "$NS" get svc -l app.kubernetes.io/managed-by=dbtree -o jsonpath='{.items[0].metadata.name}')
kubectl -n "$NS" delete svc "$svc" --wait=true
for _ in $(seq 1 30); do kubectl -n "$NS" get svc "$svc" >/dev/null 2>&1 && break; sleep 2; done
kubectl -n "$NS" get svc "$svc" >/dev/null || fail "the Service was not re-created"

log "the webhook refuses what breaks the rules"
if example | sed -e "s/name: cache$/name: badport/" -e "s/nodePort: 30500/nodePort: 32500/" \
     | kubectl apply -f - 2>/tmp/e2e-denied; then
  fail "a NodePort outside 30000-31999 was admitted"
fi
cat /tmp/e2e-denied

log "deletion cleans up before the object goes"
kubectl -n "$NS" delete dbi cache --wait=true --timeout=180s
for kind in statefulset service pvc; do
  left=$(kubectl -n "$NS" get "$kind" -l app.kubernetes.io/managed-by=dbtree -o name)
  [ -z "$left" ] || fail "$kind left behind: $left"
done

log "metrics"
kubectl -n dbtree port-forward svc/dbtree-operator-metrics 18080:8080 >/dev/null 2>&1 &
pf=$!
sleep 2
curl -fsS http://127.0.0.1:18080/metrics | grep -q dbtree_operator_reconciles_total || fail "metrics"
kill "$pf"

printf '\nE2E passed.\n'
