# Issue 13's campaigns that are not fuzzing, kill -9, disk or clocks (those are in mk/fuzz.mk,
# mk/crash.mk and mk/faults.mk); each prints its Markdown table. Figures: docs/reliability.md.
#
#   make soak                 8 separators, 24 simulated hours at 120x (release build, 12 min)
#   make soak-smoke           8 separators, 2 simulated hours at 120x (debug build, 60 s; CI)
#   make two-daemons          a second daemon on a store in use, 10 rounds of three cases
#   make two-daemons-smoke    the same, 1 round (CI)
#   make check-asan           every test under AddressSanitizer (and LeakSanitizer), the daemon too
#   make check-tsan           every test under ThreadSanitizer, the daemon too
#   make faults-smoke         every campaign's short form, as CI runs them

SOAK_ARGS ?=
SANITIZER_FILTER ?=

.PHONY: soak soak-smoke two-daemons two-daemons-smoke check-asan check-tsan faults-smoke

soak: deps
	$(SWIFT) build -c release --product apheresisd && $(SWIFT) build -c release --product optia-sim
	python3 scripts/faults/soak.py --bin "$$($(SWIFT) build -c release --show-bin-path)" $(SOAK_ARGS)

soak-smoke: deps
	$(SWIFT) build --product apheresisd && $(SWIFT) build --product optia-sim
	python3 scripts/faults/soak.py --bin "$$($(SWIFT) build --show-bin-path)" --hours 2 --speed 120 $(SOAK_ARGS)

two-daemons: deps
	$(SWIFT) build --product apheresisd && $(SWIFT) build --product optia-sim
	python3 scripts/faults/two_daemons.py --bin "$$($(SWIFT) build --show-bin-path)" --rounds 10

two-daemons-smoke: deps
	$(SWIFT) build --product apheresisd && $(SWIFT) build --product optia-sim
	python3 scripts/faults/two_daemons.py --bin "$$($(SWIFT) build --show-bin-path)" --rounds 1

# Every test is a Swift Testing test: the XCTest pass is skipped, since XCTest's runner keeps its
# suite tree until exit and LeakSanitizer would report that as the project's leak. Swift's own
# backtracer is off so that the sanitizer's report is the one written.
SANITIZED_TEST = $(SWIFT) test --skip-build --disable-xctest
# Each sanitizer builds in its own scratch path (every module instrumented, the executables the
# integration tests start included) and runs the whole suite; any report fails the run.
# SANITIZER_FILTER="Suite" runs a part. The summary table: scripts/faults/sanitizer_report.py.
check-asan: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path $(CURDIR)/.build-asan
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/faults/lsan.supp SWIFT_BACKTRACE=enable=no \
	python3 scripts/faults/sanitizer_report.py --sanitizer address -- \
		$(SANITIZED_TEST) --sanitize=address --scratch-path $(CURDIR)/.build-asan $(if $(SANITIZER_FILTER),--filter "$(SANITIZER_FILTER)")

check-tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path $(CURDIR)/.build-tsan
	TSAN_OPTIONS=halt_on_error=1:suppressions=$(CURDIR)/scripts/faults/tsan.supp SWIFT_BACKTRACE=enable=no \
	python3 scripts/faults/sanitizer_report.py --sanitizer thread -- \
		$(SANITIZED_TEST) --sanitize=thread --scratch-path $(CURDIR)/.build-tsan $(if $(SANITIZER_FILTER),--filter "$(SANITIZER_FILTER)")

faults-smoke: fuzz-smoke crash-smoke disk-smoke clock-smoke soak-smoke two-daemons-smoke
