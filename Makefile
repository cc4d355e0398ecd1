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
		(cd $$d && if go list ./cmd/... >/dev/null 2>&1; then go build -o $(BIN)/ ./cmd/...; fi; go build ./...); \
	done

.PHONY: up
up: ## run aigw on this machine (local Redis Cluster + MongoDB-wire server)
	@scripts/services.sh up

.PHONY: down
down: ## stop everything `make up` started
	@scripts/services.sh down

.PHONY: status
status: ## show the local services
	@scripts/services.sh status

.PHONY: test
test: lint services test-go ## every test: lint, then unit and integration tests against real servers

.PHONY: services
services:
	@scripts/services.sh up

.PHONY: test-go
test-go: ## unit and integration tests of every module (servers must be up)
	@source scripts/env.sh; \
	for d in $(MODULES); do echo "== go test $$d"; (cd $$d && go test -count=1 -race -timeout 15m ./...); done

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
