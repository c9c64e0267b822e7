#!/usr/bin/env bash
# `make demo`: infmon end to end on one machine, loopback only, in under two minutes.
#
# 1. installs Prometheus from Debian if it is missing, builds infmon;
# 2. starts demo stand-ins for GPU servers (two vLLM, one TGI, one DCGM exporter) that serve
#    the engines' real metric formats on 127.0.0.1 (tests/support/src/bin/infmon-demo-exporter.rs);
# 3. writes an InferenceMonitoring with staticTargets, renders its prometheus.yml with
#    `infmon render --format prometheus`, starts Prometheus with it;
# 4. runs `infmon check` until healthy, stops one vLLM stand-in, shows the diagnosis change;
# 5. stops every process it started (also on Ctrl-C or failure).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/infmon-demo.XXXXXX")
pids=()
declare -A pid_of

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\ndemo failed: %s\n' "$*" >&2; exit 1; }

# --- 1. tools ---------------------------------------------------------------------------
if ! command -v prometheus >/dev/null; then
    step "Installing Prometheus from Debian (apt-get)"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends prometheus
fi
# INFMON_DEMO_BIN_DIR: already-built binaries (the test that runs this script sets it).
bin_dir=${INFMON_DEMO_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    step "Building infmon"
    cargo build --quiet -p infmon -p infmon-devkit --bin infmon --bin infmon-demo-exporter
    bin_dir="$repo/target/debug"
fi
infmon="$bin_dir/infmon"
exporter="$bin_dir/infmon-demo-exporter"

# --- 2. demo stand-ins for GPU servers ---------------------------------------------------
# start_exporter NAME KIND: starts a stand-in on a free loopback port; sets $addr.
start_exporter() {
    "$exporter" "$2" 127.0.0.1:0 >"$work/$1.addr" 2>"$work/$1.log" &
    pids+=("$!")
    pid_of[$1]=$!
    for _ in $(seq 50); do
        addr=$(head -n1 "$work/$1.addr" 2>/dev/null || true)
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    fail "the $2 stand-in did not start: $(cat "$work/$1.log")"
}
step "Starting demo stand-ins for GPU servers (loopback only)"
start_exporter vllm_a vllm; vllm_a=$addr
start_exporter vllm_b vllm; vllm_b=$addr
start_exporter tgi tgi; tgi=$addr
start_exporter dcgm dcgm; dcgm=$addr
echo "vLLM on $vllm_a and $vllm_b, TGI on $tgi, DCGM exporter on $dcgm"

# --- 3. resource, rendered config, Prometheus ---------------------------------------------
cat >"$work/demo.yaml" <<YAML
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: chat, namespace: demo}
spec:
  engine: vllm
  staticTargets: ['$vllm_a', '$vllm_b']
  endpoint: {interval: 2s, scrapeTimeout: 1s}
---
apiVersion: monitoring.inference.dev/v1alpha1
kind: InferenceMonitoring
metadata: {name: summarize, namespace: demo}
spec:
  engine: tgi
  staticTargets: ['$tgi']
  endpoint: {interval: 2s, scrapeTimeout: 1s}
YAML
step "The resources (demo.yaml)"
cat "$work/demo.yaml"

step "infmon render -f demo.yaml --format prometheus > prometheus.yml"
"$infmon" render -f "$work/demo.yaml" --format prometheus >"$work/prometheus.yml"
# infmon renders GPU exporters for Kubernetes nodes only; on this host the DCGM stand-in is
# scraped by one plain job appended to the list that ends the rendered file.
cat >>"$work/prometheus.yml" <<YAML
- job_name: demo-dcgm-exporter
  scrape_interval: 2s
  static_configs: [{targets: ['$dcgm']}]
YAML
cat "$work/prometheus.yml"

port=""
for candidate in $(seq 19090 19190); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || fail "no free loopback port for Prometheus in 19090-19190"
url="http://127.0.0.1:$port"
step "Starting Prometheus on $url"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
pids+=("$!")

# --- 4. check, break, check again -------------------------------------------------------
step "infmon check -f demo.yaml --prometheus $url --wait 60s"
"$infmon" check -f "$work/demo.yaml" --prometheus "$url" --wait 60s ||
    fail "not healthy within 60s; Prometheus log: $(tail -n 20 "$work/prometheus.log")"

step "Stopping the vLLM stand-in on $vllm_b"
kill "${pid_of[vllm_b]}"

step "infmon check again, until the diagnosis changes (exit code 1 = unhealthy)"
for _ in $(seq 30); do
    set +e
    output=$("$infmon" check -f "$work/demo.yaml" --prometheus "$url")
    code=$?
    set -e
    if [ "$code" -eq 1 ] && grep -q TargetsDown <<<"$output"; then
        printf '%s\n' "$output"
        echo "exit code: $code"
        step "Done: every process the demo started is stopped on exit"
        exit 0
    fi
    sleep 1
done
printf '%s\n' "$output"
fail "the stopped stand-in was not reported as TargetsDown within 30s"
