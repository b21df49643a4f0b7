# Coverage-guided fuzzing with libFuzzer (issue 13): the targets of Fuzz/, one per
# surface that reads untrusted input, each calling Sources/FuzzEntries. Everything goes to
# .build-fuzz (the instrumented build, corpora, dictionaries, logs); what is found goes to
# Tests/FuzzRegressionTests/Inputs/<target>/, which `make test` replays.
#
#   make fuzz                          every target, 10^7 executions each
#   make fuzz FUZZ_TIME=600            or 600 s per target, whichever ends first
#   make fuzz FUZZ_TARGETS="e1381 config"
#   make fuzz-smoke                    each target 20 000 executions or 20 s (CI)
#
# FUZZ_JOBS targets run at a time (the machine has 2 cores). FUZZ_OPTIA_SIM names an optia-sim to
# write the export-file seeds with; by default the one of the default build (which `make test` builds).

FUZZ_SCRATCH := $(CURDIR)/.build-fuzz
FUZZ_TARGETS ?=
FUZZ_TIME ?=
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 2
FUZZ_OPTIA_SIM ?=
# SwiftPM's --sanitize=fuzzer links libFuzzer's main in place of the program's (and adds
# -parse-as-library); it passes -sanitize=fuzzer and -sanitize=address to swiftc as two flags, of
# which the last wins, so the combined flag comes after them: coverage and ASan in every module.
FUZZ_BUILD := cd Fuzz && $(SWIFT) build -c debug --scratch-path $(FUZZ_SCRATCH) \
	--sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds

fuzz-build: deps
	$(FUZZ_BUILD)

fuzz-seeds: deps
	@sim="$(FUZZ_OPTIA_SIM)"; \
	if [ -z "$$sim" ]; then \
	  $(SWIFT) build --product optia-sim && sim="$$($(SWIFT) build --show-bin-path)/optia-sim"; \
	fi; \
	python3 scripts/fuzz/seed_corpora.py --out $(FUZZ_SCRATCH) --optia-sim "$$sim" $(FUZZ_TARGETS)

fuzz: fuzz-build fuzz-seeds
	python3 scripts/fuzz/run_fuzz.py --work $(FUZZ_SCRATCH) --runs $(FUZZ_RUNS) --jobs $(FUZZ_JOBS) \
		$(if $(FUZZ_TIME),--max-time $(FUZZ_TIME)) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build fuzz-seeds
	python3 scripts/fuzz/run_fuzz.py --work $(FUZZ_SCRATCH) --runs 20000 --max-time 20 --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)
