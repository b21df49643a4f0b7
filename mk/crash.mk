# The kill -9 campaign (issue 13): scripts/faults/crash_campaign.py kills the daemon, the simulator
# and apheresisctl's product steps with SIGKILL at random points, then checks against a reference
# played without kills that nothing was lost, stored twice or changed (messages 1..last per run,
# byte for byte, limit alarms, runs closed, DINs 1..P, complete products, audit trail, integrity),
# and prints its Markdown table. A finding fails the target and keeps the part's directory.
#
#   make crash-campaign   100 kills per part (daemon, simulator, product)
#   make crash-smoke      5 kills per part (CI)
#
# More options through CRASH_ARGS, e.g. CRASH_ARGS="--seed 7 --parts daemon --speed 300".

CRASH_ARGS ?=
# The three executables the campaign drives, in the default (debug) build: one product per
# `swift build` (naming two builds only the last).
CRASH_PRODUCTS = $(SWIFT) build --product apheresisd && $(SWIFT) build --product optia-sim && \
	$(SWIFT) build --product apheresisctl
CRASH_BIN = "$$($(SWIFT) build --show-bin-path)"

.PHONY: crash-campaign crash-smoke

crash-campaign: deps
	$(CRASH_PRODUCTS)
	python3 scripts/faults/crash_campaign.py --kills 100 --bin $(CRASH_BIN) $(CRASH_ARGS)

crash-smoke: deps
	$(CRASH_PRODUCTS)
	python3 scripts/faults/crash_campaign.py --kills 5 --bin $(CRASH_BIN) $(CRASH_ARGS)
