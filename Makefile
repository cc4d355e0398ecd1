# aigw — one Makefile drives every module of the workspace.
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export GOTOOLCHAIN ?= local
export GOFLAGS ?= -buildvcs=false

# Every module of the workspace (root first), as directories.
MODULES := $(shell go list -f '{{.Dir}}' -m 2>/dev/null)
BIN := $(CURDIR)/bin
# The release version from the commits (scripts/semver); binaries carry it as
# main.version and print it with `<binary> version`.
VERSION ?= $(shell scripts/semver 2>/dev/null || echo 0.0.0-dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## download every module's dependencies once
	@for d in $(MODULES); do (cd $$d && go mod download); done

.PHONY: build
build: ## build every binary into bin/
	@mkdir -p $(BIN)
	@for d in $(MODULES); do \
		(cd $$d && if go list ./cmd/... >/dev/null 2>&1; then go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...; fi; go build ./...); \
	done
	@for m in algorithms/*/main.go; do a=$$(basename $$(dirname $$m)); go build -o $(BIN)/aigw-$$a ./algorithms/$$a; done

.PHONY: version
version: ## print the version the next release gets (scripts/semver)
	@echo $(VERSION)

.PHONY: up
up: build ## run the whole system here: servers, gateway, functions, workers, demo client
	@scripts/up.sh up

.PHONY: down
down: ## stop everything `make up` started
	@scripts/up.sh down

.PHONY: status
status: ## show what `make up` runs
	@scripts/up.sh status

.PHONY: test
test: lint services system-deps build test-go test-deploy test-monitoring ## every test: lint, Go tests against real servers, deployment and monitoring checks

.PHONY: services
services:
	@scripts/services.sh up

.PHONY: system-deps
system-deps: ## Debian packages the tests need: python3-torch for the reference algorithms, prometheus for promtool, chromium for the console (idempotent)
	@scripts/python-torch.sh
	@scripts/promtool.sh
	@scripts/chromium.sh

# Fault tests kill servers of the local cluster (and heal it afterwards), so they
# run on their own before the other tests, one package at a time (-p 1): two
# packages killing masters at once would leave the cluster without a majority.
FAULT_TESTS := TestFailover

.PHONY: test-go
test-go: ## unit and integration tests of every module (servers must be up)
	@source scripts/env.sh; \
	echo "== fault tests"; go test -count=1 -p 1 -run '$(FAULT_TESTS)' -v ./internal/queue/ ./internal/fairq/ 2>&1 | grep -v 'pool.go.*failed to dial'; \
	for d in $(MODULES); do echo "== go test $$d"; (cd $$d && go test -count=1 -race -skip '$(FAULT_TESTS)' -timeout 15m ./...); done

.PHONY: test-deploy
test-deploy: ## Terraform, cloud-init, workflow and semver checks (scripts/check-deploy.sh)
	@scripts/check-deploy.sh

.PHONY: test-monitoring
test-monitoring: ## promtool checks of monitoring/: scrape config, alert rules and their unit tests, dashboard queries
	@scripts/check-monitoring.sh

.PHONY: lint
lint: ## go vet, gofmt and go mod tidy checks in every module
	@fail=0; \
	for d in $(MODULES); do \
		(cd $$d && go vet ./...) || fail=1; \
		out=$$(cd $$d && gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; fail=1; fi; \
		(cd $$d && go mod tidy -diff >/dev/null) || { echo "go mod tidy needed in $$d (run: cd $$d && go mod tidy)"; fail=1; }; \
	done; exit $$fail

.PHONY: bench
bench: services ## benchmarks: aigw beside its peers, same run, same servers
	@mkdir -p bench/results
	@source scripts/env.sh; cd bench && go run ./cmd/aigw-bench -out results/latest.json
