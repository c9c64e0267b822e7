# infmon developer entry points. `make test` is what CI runs (through .ci/run).
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build test lint fmt crds golden dashboards tools release

all: build

## build: debug build of the infmon binary
build:
	$(CARGO) build

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## test: lint, then every test (unit, golden, real Prometheus/promtool/helm/schema tests)
test: lint
	$(CARGO) test --all-targets --no-fail-fast
	$(CARGO) test --doc

## crds: regenerate the committed CRD from src/api
crds:
	$(CARGO) run --quiet -- crd > crds/monitoring.inference.dev_inferencemonitorings.yaml
	cp crds/monitoring.inference.dev_inferencemonitorings.yaml charts/infmon/crds/

## golden: regenerate every generated artifact (crds/, dashboards/*.json, tests/promtool/*.rules.yml,
##         tests/golden/ of `infmon render`); review the diff before committing
golden: crds
	INFMON_UPDATE_GOLDEN=1 $(CARGO) test --test dashboards --test rules --test render_golden --test metrics_overrides

## dashboards: same as golden (named in the dashboards' drift message)
dashboards: golden

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## release: optimised, stripped binary (target/release/infmon)
release:
	$(CARGO) build --release
	@ls -l target/release/infmon

## tools: install the real tools tests need (Prometheus, promtool, helm, kubernetes-validate, Checkov,
##        Grafana's dashboard types with TypeScript, lua, shellcheck)
tools:
	.ci/install-tools

## demo: Prometheus + demo stand-ins for GPU servers on loopback; shows infmon check turn healthy, then diagnose a stopped target
demo:
	scripts/demo.sh

## e2e: end-to-end test on a real cluster (E2E_CREATE_CLUSTER=1 for a throw-away kind cluster; see e2e/README.md)
e2e:
	e2e/run.sh
