# The "Disk" and "Clocks" fault campaigns (issue 13), each printing its Markdown result table:
#
#   make disk-smoke      each disk case once, short (CI; about 2 minutes)
#   make disk-campaign   several faults per case, longer runs
#   make clock-smoke     each clock case once, short (CI; about 2 minutes)
#   make clock-campaign  two steps per case, longer runs
#
# The disk campaign mounts (tmpfs, and faultfs: scripts/faults/faultfs.c, a passthrough FUSE file
# system that fails writes, fsyncs and reads on command), so it runs as root; a case that may not
# mount says "not run" and fails the target unless DISK_ARGS=--allow-skip. The clock campaign runs
# the daemon under Debian's libfaketime. Extra options for either script: FAULTS_ARGS="--keep-logs DIR".

FAULTS_SCRATCH := $(CURDIR)/.build-faults
FAULTS_FAULTFS := $(FAULTS_SCRATCH)/tools/faultfs
FAULTS_SHIM := $(FAULTS_SCRATCH)/tools/faketime_monotonic.so
FAULTS_ARGS ?=
# Options for the disk campaign only (--allow-skip: a case the machine may not mount for says "not run").
DISK_ARGS ?=
# faultfs needs libfuse 3 (headers to build it; fuse3 for /etc/fuse.conf and fusermount3); the clock
# campaign needs libfaketime (package faketime).
FAULTS_DISK_APT := libfuse3-dev fuse3 pkg-config
FAULTS_CLOCK_APT := faketime
FAULTS_APT_INSTALL = missing=""; \
	for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
# The two executables the campaigns drive, in the default build (one product per `swift build`:
# naming two builds only the last).
FAULTS_PRODUCTS = $(SWIFT) build --product apheresisd && $(SWIFT) build --product optia-sim
FAULTS_BIN = "$$($(SWIFT) build --show-bin-path)"

.PHONY: faults-disk-deps faults-clock-deps disk-smoke disk-campaign clock-smoke clock-campaign

faults-disk-deps:
	@$(call FAULTS_APT_INSTALL,$(FAULTS_DISK_APT))

faults-clock-deps:
	@$(call FAULTS_APT_INSTALL,$(FAULTS_CLOCK_APT))

$(FAULTS_FAULTFS): scripts/faults/faultfs.c | faults-disk-deps
	@mkdir -p $(dir $@)
	cc -O2 -Wall -o $@ $< $$(pkg-config --cflags --libs fuse3)

# Keeps the daemon's monotonic timers monotonic under libfaketime (see the file's comment).
$(FAULTS_SHIM): scripts/faults/faketime_monotonic.c
	@mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -Wall -o $@ $< -ldl

disk-smoke: deps faults-disk-deps $(FAULTS_FAULTFS)
	$(FAULTS_PRODUCTS)
	python3 scripts/faults/disk_campaign.py --smoke --bin $(FAULTS_BIN) --faultfs $(FAULTS_FAULTFS) $(DISK_ARGS) $(FAULTS_ARGS)

disk-campaign: deps faults-disk-deps $(FAULTS_FAULTFS)
	$(FAULTS_PRODUCTS)
	python3 scripts/faults/disk_campaign.py --bin $(FAULTS_BIN) --faultfs $(FAULTS_FAULTFS) $(DISK_ARGS) $(FAULTS_ARGS)

clock-smoke: deps faults-clock-deps $(FAULTS_SHIM)
	$(FAULTS_PRODUCTS)
	python3 scripts/faults/clock_campaign.py --smoke --bin $(FAULTS_BIN) --shim $(FAULTS_SHIM) $(FAULTS_ARGS)

clock-campaign: deps faults-clock-deps $(FAULTS_SHIM)
	$(FAULTS_PRODUCTS)
	python3 scripts/faults/clock_campaign.py --bin $(FAULTS_BIN) --shim $(FAULTS_SHIM) $(FAULTS_ARGS)
