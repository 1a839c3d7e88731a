# The documented entry points: `make up` runs the platform locally, `make test` runs every check.
# Both install what they need first and are safe to run again.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
UV_VERSION := 0.13.9
UV ?= uv
export UV_LINK_MODE := copy
export DEBIAN_FRONTEND := noninteractive
APT_PACKAGES := redis-server postgresql nix-bin containerd runc containernetworking-plugins iptables nftables ipset conntrack tini python3.11 ca-certificates binutils
BENCH_APT_PACKAGES := wrk
# Browser tests: Debian's Chromium (Playwright's own browser download does not work here) and a CJK font for chats
# in Chinese or Japanese; axe-core comes from npm (Debian's npm when no npm is on PATH).
BROWSER_APT_PACKAGES := chromium fonts-wqy-zenhei
PYTEST_ARGS ?=

.PHONY: up down status chat test deps apt python binaries browser images lint typecheck pytest unit crds bench-operator bench-proxy bench-control-api bench-site bench-dashboard bench-real-gateway bench-apt

up: deps images ## start the local platform (cluster, Redis, PostgreSQL, CRDs) and print how to reach it
	@echo "==> starting the local platform"
	$(UV) run --frozen python -m clawhost_localcluster up

down: ## stop the local platform and delete its data
	$(UV) run --frozen python -m clawhost_localcluster down

status:
	$(UV) run --frozen python -m clawhost_localcluster status

chat: ## talk to a Customer's agent without Telegram: make chat CUSTOMER=alice [MESSAGE="hello"]
	@if [ -z "$(CUSTOMER)" ]; then echo "usage: make chat CUSTOMER=<name> [MESSAGE=\"...\"]" >&2; exit 2; fi
	$(UV) run --frozen python -m clawhost_localcluster chat "$(CUSTOMER)" $(if $(MESSAGE),"$(MESSAGE)")

test: deps browser images lint typecheck pytest ## install everything, then lint, type-check and run the whole suite

deps: apt python binaries

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  for s in redis-server postgresql containerd; do $$SUDO systemctl disable --now $$s >/dev/null 2>&1 || true; done; \
	else echo "==> Debian packages present: $(APT_PACKAGES)"; fi

python:
	@if ! command -v $(UV) >/dev/null || [ "$$($(UV) --version | cut -d' ' -f2)" != "$(UV_VERSION)" ]; then \
	  echo "==> installing uv $(UV_VERSION)"; python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; fi
	@echo "==> syncing the locked Python environment (.venv)"
	$(UV) sync --frozen --quiet

binaries: python ## build etcd, Kubernetes, kwok, kstatus and the real node (kubelet, kube-proxy, CoreDNS, kube-router, pause) once (cached in ~/.cache/clawhost)
	@echo "==> ensuring the control-plane binaries (first run builds them from Go modules, ~20-40 min on 2 cores)"
	$(UV) run --frozen python -m clawhost_localcluster build

browser: python ## Chromium and axe-core (pinned, from npm, cached in ~/.cache/clawhost) for the browser tests
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BROWSER_APT_PACKAGES) $$(command -v npm >/dev/null || echo npm)"
	$(UV) run --frozen python -m clawhost_localcluster browser

images: apt python ## assemble the gateway and platform images as OCI tars (cached in ~/.cache/clawhost/images; cold ~2-4 min)
	@echo "==> ensuring the gateway and platform images (first run installs OpenClaw from npm)"
	$(UV) run --frozen python -m clawhost_localcluster.images

lint:
	@echo "==> ruff"
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	@echo "==> import-linter (services import clawhost_api, never each other)"
	$(UV) run --frozen lint-imports

typecheck:
	@echo "==> mypy (strict)"
	$(UV) run --frozen mypy -p clawhost_api -p clawhost_operator -p clawhost_proxy -p clawhost_control_api -p clawhost_onboarding -p clawhost_localcluster
	$(UV) run --frozen mypy tests

pytest:
	@echo "==> pytest (real control plane, Redis, PostgreSQL)"
	$(UV) run --frozen pytest $(PYTEST_ARGS)

unit:
	$(UV) run --frozen pytest -m "not cluster and not services and not images and not node" $(PYTEST_ARGS)

crds: ## regenerate crds/customer.crd.yaml from crds/clawhost_api
	$(UV) run --frozen python -m clawhost_api.crd > crds/customer.crd.yaml

bench-apt: ## Debian packages only the benchmarks use (load generators)
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BENCH_APT_PACKAGES)"

bench-operator: deps ## N Customers to Ready vs. a plain client's floor; steady-state writes and RSS (BENCH_ARGS="--customers 1000")
	$(UV) run --frozen python tests/bench/bench_operator.py $(BENCH_ARGS)

bench-control-api: deps bench-apt ## dashboard read p50/p99/RPS at 100 concurrency with 1,000 Customers, vs. a naive API-server read
	$(UV) run --frozen python tests/bench/bench_control_api.py $(BENCH_ARGS)

bench-site: deps browser ## each page's first load in Chromium against the platform as make up runs it: transfer, third-party requests, LCP
	$(UV) run --frozen python tests/bench/bench_site.py $(BENCH_ARGS)

bench-dashboard: deps browser ## a Customer's status change to the dashboard open in Chromium (goal: within 1 s)
	$(UV) run --frozen python tests/bench/bench_dashboard_live.py $(BENCH_ARGS)

bench-real-gateway: deps images ## real OpenClaw gateways on the real node: create -> Ready cold/warm vs. the same pod with a trivial server, memory vs. request, how many fit (root; BENCH_ARGS="--max-gateways 12")
	$(UV) run --frozen python tests/bench/bench_real_gateway.py $(BENCH_ARGS)

bench-proxy: apt python ## token proxy vs. upstream direct vs. LiteLLM (one worker each, 200 connections); BENCH_ARGS=--duration 20
	$(UV) run --frozen python tests/bench/bench_proxy.py $(BENCH_ARGS)
