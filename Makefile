# The README's two commands: `make demo` and `make test`. Both install the
# Debian packages the build needs first (as root, or through sudo).

SWIFT ?= swift
APT_PACKAGES := pkg-config libserialport-dev libsystemd-dev libsqlite3-dev sqlite3 systemd libsodium-dev libzint-dev zbar-tools poppler-utils fonts-dejavu-core
# Without their recommends: promtool is wanted from prometheus (the metrics test), not its exporters
# and services; chromium runs headless for the dashboard test, without desktop integration;
# postgresql gives the central-record tests initdb and pg_ctl (each test starts its own cluster).
APT_PACKAGES_BARE := prometheus chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SCENARIO ?= simulator/scenarios/normal-boy-10y.toml

.PHONY: deps build demo test clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@for p in $(APT_PACKAGES_BARE); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || { \
	    echo "Installing Debian package $$p (without recommends)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$p; }; \
	done

build: deps
	$(SWIFT) build

# The daemon with no configuration: the bundled simulator plays a pediatric
# CMNC collection over a pseudo-terminal (a new run every time one ends), and
# everything is stored per user in $XDG_STATE_HOME/apheresisd-demo (by default
# ~/.local/state/apheresisd-demo), never in the repository. Ctrl-C stops it.
demo: build
	@bin=$$($(SWIFT) build --show-bin-path); \
	echo "apheresisd demo: store in $${XDG_STATE_HOME:-$$HOME/.local/state}/apheresisd-demo, Ctrl-C to stop"; \
	$$bin/apheresisd --demo-scenario $(SCENARIO)

# Package.swift's dependencies equal to the imports, checked before anything is built.
.PHONY: check-imports
check-imports:
	python3 scripts/check-package-imports.py

# The independent HL7 receiver the hospital-interface tests talk to (scripts/hl7/receiver.py): PyPI's
# hl7 and hl7apy in a venv of the project's, never in the system's Python.
HL7_VENV := $(CURDIR)/.build-hl7venv
.PHONY: hl7-venv
hl7-venv:
	@python3 -c 'import ensurepip' 2>/dev/null || { echo "Installing Debian package python3-venv"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }
	@test -x $(HL7_VENV)/bin/python || python3 -m venv $(HL7_VENV)
	@$(HL7_VENV)/bin/python -c 'import hl7, hl7apy' 2>/dev/null || $(HL7_VENV)/bin/pip install -q -r scripts/hl7/requirements.txt

test: deps check-imports hl7-venv openapi-venv
	$(SWIFT) build --build-tests
	APHERESISD_HL7_PYTHON=$(HL7_VENV)/bin/python APHERESISD_OPENAPI_PYTHON=$(OPENAPI_VENV)/bin/python $(SWIFT) test --skip-build

clean:
	rm -rf .build

# Benchmarks (docs/performance.md): a package of their own in Benchmarks/, so that `build` and
# `test` never compile package-benchmark. Scratch space and results go to .build-bench.
BENCH_SCRATCH := $(CURDIR)/.build-bench
BENCH_RESULTS := $(BENCH_SCRATCH)/results
# The decode stream (from simulator/captures) that ProtocolDecode and the astm anchor both read.
BENCH_STREAM := $(BENCH_SCRATCH)/decode-stream.bin
BENCH_PACKAGE := cd Benchmarks && APHERESISD_BENCH_STREAM=$(BENCH_STREAM) $(SWIFT) package --scratch-path $(BENCH_SCRATCH)
BENCH_BUILD := cd Benchmarks && $(SWIFT) build -c release --scratch-path $(BENCH_SCRATCH)
BENCH_COUNTS := python3 scripts/bench/counts.py --bench-count $(BENCH_SCRATCH)/release/bench-count
# valgrind counts instructions and allocations where the machine has no hardware counters;
# the astm anchor makes a venv (Debian's python3 needs python3-venv for that).
BENCH_TOOLS := command -v valgrind >/dev/null || { echo "Installing Debian package valgrind"; \
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind; }
BENCH_VENV := python3 -c 'import ensurepip' 2>/dev/null || { echo "Installing Debian package python3-venv"; \
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }

.PHONY: bench bench-check bench-smoke

# Every benchmark in release, the astm anchor, the valgrind counts, and a table of figures
# with their ratios against the anchors measured in the same run.
bench: deps
	@$(BENCH_TOOLS)
	@$(BENCH_VENV)
	$(BENCH_BUILD) --product bench-stream
	$(BENCH_BUILD) --product bench-count
	$(BENCH_SCRATCH)/release/bench-stream $(BENCH_STREAM)
	$(BENCH_PACKAGE) --allow-writing-to-package-directory benchmark baseline update bench-latest --no-progress
	$(BENCH_PACKAGE) benchmark baseline read bench-latest --no-progress
	$(BENCH_PACKAGE) --allow-writing-to-directory $(BENCH_RESULTS) benchmark baseline read bench-latest \
		--no-progress --format jmh --path $(BENCH_RESULTS)
	python3 scripts/bench/astm_anchor.py --stream $(BENCH_STREAM) --json $(BENCH_RESULTS)/astm.json
	$(BENCH_COUNTS) --json $(BENCH_RESULTS)/counts.json
	@echo
	@python3 scripts/bench/report.py --jmh $(BENCH_RESULTS)/bench-latest.jmh.json --astm $(BENCH_RESULTS)/astm.json \
		--counts $(BENCH_RESULTS)/counts.json --stream $(BENCH_STREAM)

# Allocations (package-benchmark, against Benchmarks/Thresholds) and instructions and
# allocations per pass (valgrind, against Benchmarks/Thresholds/counts.json); never time.
# Fails on a regression past the tolerances. `make bench-check UPDATE=1` writes new baselines.
bench-check: deps
	@$(BENCH_TOOLS)
	$(BENCH_BUILD) --product bench-stream
	$(BENCH_BUILD) --product bench-count
	$(BENCH_SCRATCH)/release/bench-stream $(BENCH_STREAM)
ifeq ($(UPDATE),1)
	$(BENCH_PACKAGE) --allow-writing-to-package-directory benchmark thresholds update --target ProtocolDecode --target IngestPath \
		--metric mallocCountTotal --metric mallocBytesCount --path $(CURDIR)/Benchmarks/Thresholds --no-progress
	$(BENCH_COUNTS) --update
else
	@# Exit 4 is package-benchmark's "only improvements": a pass, with a hint to update.
	$(BENCH_PACKAGE) benchmark thresholds check --target ProtocolDecode --target IngestPath \
		--metric mallocCountTotal --metric mallocBytesCount --path $(CURDIR)/Benchmarks/Thresholds --no-progress; \
	status=$$?; if [ $$status = 4 ]; then echo "Allocations improved: make bench-check UPDATE=1 to keep the new figures."; \
	elif [ $$status != 0 ]; then exit $$status; fi
	$(BENCH_COUNTS) --check
endif

# The short form for CI: only the valgrind counts (instructions and allocations per pass)
# against Benchmarks/Thresholds/counts.json. Builds the protocol module and one small tool,
# not package-benchmark and none of the Debian libraries, so it takes about a minute from a
# clean checkout.
bench-smoke:
	@$(BENCH_TOOLS)
	$(BENCH_BUILD) --product bench-count
	$(BENCH_COUNTS) --check

# The daemon's figures from outside (docs/performance.md, "Daemon figures"): start to READY=1,
# 64 separators at the real rate and at 10x, RSS over an accelerated run, SIGTERM to exit.
# Two builds: `swift build --product A --product B` builds only B.
.PHONY: bench-daemon bench-daemon-quick
DAEMON_FIGURES = $(SWIFT) build -c release --product apheresisd && $(SWIFT) build -c release --product optia-sim && \
	python3 scripts/bench/daemon_figures.py --bin "$$($(SWIFT) build -c release --show-bin-path)"
bench-daemon: deps
	$(DAEMON_FIGURES)
bench-daemon-quick: deps
	$(DAEMON_FIGURES) --quick

# The fault campaigns of docs/reliability.md (fuzzing, sanitizers, kill -9, disk, clocks, soak,
# two daemons on one store): one file each under mk/, every target printing its result table.
include $(sort $(wildcard mk/*.mk))
