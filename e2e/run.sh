#!/usr/bin/env bash
# End-to-end test of infmon on a real Kubernetes cluster: installs the Prometheus Operator CRDs
# and the Helm chart, applies every example, waits for its conditions, checks `kubectl describe`,
# RBAC and cleanup, then uninstalls. See e2e/README.md. Not run in CI (no cluster there), but CI
# lints this script with shellcheck and validates e2e/values.yaml through the chart.
#
# Environment:
#   E2E_CREATE_CLUSTER=1   create a kind cluster (and delete it at the end); needs kind and docker.
#                          Otherwise the current kubectl context is used: on success the release
#                          and the examples are removed again (the CRDs stay); on failure they are
#                          left in place for inspection.
#   E2E_CLUSTER            kind cluster name (default infmon-e2e).
#   E2E_IMAGE              operator image (default infmon:e2e). With E2E_CREATE_CLUSTER=1 it is
#                          built from the Dockerfile and loaded into kind; otherwise it must be
#                          pullable by the cluster.
#   E2E_KEEP=1             keep the cluster, release and resources for debugging.
#   E2E_TIMEOUT            wait timeout per step (default 180s).
#   PROMETHEUS_OPERATOR_VERSION  Prometheus Operator release whose CRDs are installed (default v0.86.0).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLUSTER=${E2E_CLUSTER:-infmon-e2e}
IMAGE=${E2E_IMAGE:-infmon:e2e}
TIMEOUT=${E2E_TIMEOUT:-180s}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.86.0}
RELEASE=infmon
RELEASE_NAMESPACE=infmon-system
CRD=inferencemonitorings.monitoring.inference.dev
OWNER_LABEL=monitoring.inference.dev/owner-name
# Examples that need CRDs this script does not install.
SKIP_EXAMPLES=(examples/grafana-operator.yaml)

step() { printf '\n==> %s\n' "$*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required (${2})"; }

skipped() {
    local file=$1 skip
    for skip in "${SKIP_EXAMPLES[@]}"; do
        [ "$file" = "$skip" ] && return 0
    done
    return 1
}

cleanup() {
    local status=$?
    if [ "${E2E_KEEP:-}" = 1 ]; then
        echo "E2E_KEEP=1: leaving everything in place"
        return "$status"
    fi
    if [ "${E2E_CREATE_CLUSTER:-}" = 1 ]; then
        kind delete cluster --name "$CLUSTER" || true
    fi
    return "$status"
}
trap cleanup EXIT

need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/ or make tools (.tools/bin)"

if [ "${E2E_CREATE_CLUSTER:-}" = 1 ]; then
    need kind "https://kind.sigs.k8s.io/"
    need docker "a running Docker engine"
    step "Create kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 120s
    step "Build $IMAGE and load it into kind"
    docker build -t "$IMAGE" .
    kind load docker-image "$IMAGE" --name "$CLUSTER"
fi
kubectl cluster-info >/dev/null || fail "no reachable cluster in the current kubectl context"

step "Install the Prometheus Operator CRDs ($PROMETHEUS_OPERATOR_VERSION)"
kubectl apply --server-side -f \
    "https://github.com/prometheus-operator/prometheus-operator/releases/download/${PROMETHEUS_OPERATOR_VERSION}/stripped-down-crds.yaml"
kubectl wait --for=condition=Established --timeout="$TIMEOUT" \
    crd/podmonitors.monitoring.coreos.com crd/servicemonitors.monitoring.coreos.com \
    crd/prometheusrules.monitoring.coreos.com crd/prometheuses.monitoring.coreos.com

step "Install the chart"
helm upgrade --install "$RELEASE" charts/infmon \
    --namespace "$RELEASE_NAMESPACE" --create-namespace \
    --values e2e/values.yaml \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --wait --timeout "$TIMEOUT"
kubectl wait --for=condition=Established --timeout="$TIMEOUT" "crd/$CRD"
kubectl -n "$RELEASE_NAMESPACE" rollout status "deployment/$RELEASE" --timeout="$TIMEOUT"

step "RBAC is least privilege"
SERVICE_ACCOUNT="system:serviceaccount:${RELEASE_NAMESPACE}:${RELEASE}"
for denied in "delete pods" "create deployments" "get nodes" "create clusterroles" \
    "create daemonsets.apps" "create services"; do
    # shellcheck disable=SC2086 # word splitting into verb and resource is intended
    if kubectl auth can-i $denied --all-namespaces --as="$SERVICE_ACCOUNT" >/dev/null 2>&1; then
        fail "the operator may $denied"
    fi
done
kubectl auth can-i patch podmonitors.monitoring.coreos.com -n llm --as="$SERVICE_ACCOUNT" >/dev/null ||
    fail "the operator may not patch podmonitors"
kubectl auth can-i patch daemonsets.apps -n "$RELEASE_NAMESPACE" --as="$SERVICE_ACCOUNT" >/dev/null ||
    fail "the operator may not patch the DCGM exporter's DaemonSet in its namespace"

examples=()
for file in examples/*.yaml; do
    skipped "$file" || examples+=("$file")
done

step "Create the examples' namespaces"
namespaces=$(awk '$1 == "namespace:" {print $2}' "${examples[@]}" | sort -u)
for namespace in $namespaces; do
    kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
done

step "Apply ${#examples[@]} examples"
for file in "${examples[@]}"; do
    kubectl apply -f "$file"
done

step "Wait for ResourcesApplied"
for namespace in $namespaces; do
    if kubectl get inferencemonitorings -n "$namespace" -o name | grep -q .; then
        kubectl wait --for=condition=ResourcesApplied --timeout="$TIMEOUT" \
            inferencemonitorings --all -n "$namespace"
    fi
done
kubectl get inferencemonitorings -A -o wide

step "kubectl describe shows the conditions"
description=$(kubectl describe inferencemonitoring vllm -n llm)
echo "$description"
for expected in "Ready" "ResourcesApplied" "Observed Generation"; do
    grep -q "$expected" <<<"$description" || fail "kubectl describe lacks $expected"
done

step "Children exist and carry the owner label"
children=$(kubectl get podmonitors,prometheusrules,configmaps -n llm -l "$OWNER_LABEL=vllm" -o name)
echo "$children"
grep -q '^podmonitor' <<<"$children" || fail "no PodMonitor for llm/vllm"

if [ "${E2E_KEEP:-}" = 1 ]; then
    exit 0
fi

step "Deleting the resources removes their children"
for file in "${examples[@]}"; do
    kubectl delete -f "$file" --cascade=foreground --wait --timeout="$TIMEOUT"
done
left=$(kubectl get podmonitors,prometheusrules,configmaps,daemonsets,services -A -l "$OWNER_LABEL" -o name)
[ -z "$left" ] || fail "children left behind: $left"

step "With the last resource gone, the shared objects go too"
shared=""
for _ in $(seq 30); do
    shared=$(kubectl get configmaps,daemonsets,services,secrets -A -l monitoring.inference.dev/shared=true -o name)
    [ -z "$shared" ] && break
    sleep 2
done
[ -z "$shared" ] || fail "shared objects left behind: $shared"

step "Uninstall keeps the CRD"
helm uninstall "$RELEASE" --namespace "$RELEASE_NAMESPACE" --wait
kubectl get "crd/$CRD" >/dev/null || fail "helm uninstall removed the CRD"

step "PASS"
