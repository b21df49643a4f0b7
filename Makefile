# The README's two commands: `make demo` and `make test`. Both install the
# Debian packages the build needs first (as root, or through sudo).

SWIFT ?= swift
APT_PACKAGES := pkg-config libserialport-dev libsystemd-dev libsqlite3-dev sqlite3 systemd libsodium-dev libzint-dev zbar-tools poppler-utils fonts-dejavu-core
# Without their recommends: promtool is wanted from prometheus (the metrics test), not its exporters
# and services; chromium runs headless for the dashboard test, without desktop integration.
APT_PACKAGES_BARE := prometheus chromium
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

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build
