# infmon developer entry points. `make test` is what CI runs (through .ci/run).
CARGO ?= cargo
SHELL := /bin/bash
# Tools installed into the repository (helm, kubernetes-validate, ...) come first on PATH.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: all build test test-offline lint fmt crds golden dashboards tools release demo e2e

all: build

## build: debug build of the infmon binary
build:
	$(CARGO) build

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## test: installs the real tools if missing (idempotent), lints, then runs every test: unit,
##       offline (golden, mock API), and real Prometheus/promtool/helm/schema tests
test: tools lint
	$(CARGO) build --quiet -p infmon-devkit --bins
	$(CARGO) test --workspace --all-targets --no-fail-fast
	$(CARGO) test --doc

## test-offline: the quick loop while editing: unit tests and the tests that need no external tool
test-offline:
	$(CARGO) test --lib --test offline

## crds: regenerate the committed CRD from src/api
crds:
	$(CARGO) run --quiet -- crd > crds/monitoring.inference.dev_inferencemonitorings.yaml
	cp crds/monitoring.inference.dev_inferencemonitorings.yaml charts/infmon/crds/

## golden: regenerate every generated artifact (crds/, dashboards/*.json, tests/promtool/*.rules.yml,
##         tests/golden/ of `infmon render`); review the diff before committing
golden: crds
	INFMON_UPDATE_GOLDEN=1 $(CARGO) test --test offline -- dashboards:: render_golden:: metrics_overrides::
	INFMON_UPDATE_GOLDEN=1 $(CARGO) test --test tools -- rules::committed_rule_files

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
##        Grafana's dashboard types with TypeScript, lua, shellcheck); idempotent, quick when
##        everything is there
tools:
	.ci/install-tools

## demo: Prometheus + demo stand-ins for GPU servers on loopback; shows infmon check turn healthy, then diagnose a stopped target
demo:
	scripts/demo.sh

## e2e: end-to-end test on a real cluster (E2E_CREATE_CLUSTER=1 for a throw-away kind cluster; see e2e/README.md)
e2e:
	e2e/run.sh
