# The Debian package (docs/packaging.md; installing it: docs/service.md):
#
#   make deb          the release build (swift build -c release --static-swift-stdlib), packaged with
#                     debhelper, checked with lintian: .build-deb/release/apheresisd_VERSION_ARCH.deb
#   make deb-test     that, then installed on this machine and tested (scripts/deb/test-deb.py; root)
#   make deb DEB_CONFIG=debug
#                     the same from the shared debug build: a smoke package whose executables need the
#                     Swift toolchain (its runtime stays dynamic); .build-deb/debug/
#   make deb-smoke    the debug package, installed and tested the same way (quick; for CI)
#
# Everything is made under .build-deb/ (gitignored): the release build's SwiftPM scratch path, a copy
# of the files the package needs, dpkg-buildpackage's output. The tools come from Debian (deb-deps,
# as root or through sudo); the Swift toolchain must be installed, as for `make build`.

DEB_CONFIG ?= release
# debian/control's Build-Depends, the checks' tools, and systemd for systemd-analyze (the install test).
# Not `make deps`: a machine that only packages needs no Chromium, PostgreSQL or Prometheus.
DEB_APT := debhelper dpkg-dev lintian go-md2man man-db groff-base systemd \
	pkg-config libserialport-dev libsystemd-dev libsqlite3-dev libsodium-dev libzint-dev
DEB_OUT = $(CURDIR)/.build-deb/$(DEB_CONFIG)
DEB_VERSION = $(shell sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/ApheresisVersion/Version.swift)
DEB_FILE = $(DEB_OUT)/apheresisd_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb
DEB_TEST_ARGS ?=

.PHONY: deb-deps deb deb-test deb-smoke

deb-deps:
	@missing=""; \
	for p in $(DEB_APT); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deb: deb-deps
	SWIFT="$(SWIFT)" bash scripts/deb/build-deb.sh $(DEB_CONFIG)

deb-test: deb
	$(SUDO) python3 scripts/deb/test-deb.py --config $(DEB_CONFIG) $(DEB_TEST_ARGS) $(DEB_FILE)

deb-smoke:
	$(MAKE) deb-test DEB_CONFIG=debug
