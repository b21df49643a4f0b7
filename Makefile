# The README's two commands: `make demo` and `make test`. Both install the
# Debian packages the build needs first (as root, or through sudo).

SWIFT ?= swift
APT_PACKAGES := pkg-config libserialport-dev libsystemd-dev libsqlite3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SCENARIO ?= simulator/scenarios/normal-boy-10y.toml
SPEED ?= 120

.PHONY: deps build demo test clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

# Until the daemon lands, the demo plays a scenario over a pseudo-terminal
# into the simulator's own minimal host, which prints every message.
demo: build
	@bin=$$($(SWIFT) build --show-bin-path); dir=$$(mktemp -d); \
	$$bin/optia-sim run $(SCENARIO) --pty --link $$dir/optia --speed $(SPEED) --state $$dir/sim.state & sim=$$!; \
	trap "kill $$sim 2>/dev/null; rm -rf $$dir" EXIT INT TERM; \
	while [ ! -e $$dir/optia ]; do sleep 0.1; done; \
	$$bin/optia-sim monitor --terminal $$dir/optia & mon=$$!; \
	wait $$sim; sleep 0.5; kill $$mon 2>/dev/null; true

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build
