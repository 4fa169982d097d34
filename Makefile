# SPDX-License-Identifier: Apache-2.0
# A thin wrapper: meson and ninja do the work; tools/ holds the scripts.
BUILD ?= build

.PHONY: all deps build check demo lint fuzz bench clean

all: build

deps:
	tools/install-deps.sh

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

# Installs, builds with -Werror, runs every suite, then again under ASan+UBSan, then the lint.
check:
	tools/check.sh

# The demo on a simulated cluster (docs/demo.md); DEMO_ARGS="--nodes 6 --fault never-ready" passes flags.
DEMO_ARGS ?=
demo: build
	tools/demo.sh $(BUILD) $(DEMO_ARGS)

lint:
	tools/lint.sh

# Timed libFuzzer runs of every tests/fuzz target (clang, ASan+UBSan; FUZZ_SECONDS each, default 180),
# one line per target; FUZZ_ARGS="--merge procnet" passes options. See docs/reliability.md.
FUZZ_ARGS ?=
fuzz:
	tools/fuzz.sh $(FUZZ_ARGS)

# Builds, then runs every benchmark at full size (minutes; the simulator needs a few GiB)
# and writes the report to bench/RESULTS.md. See docs/benchmarks.md.
bench: build
	ninja -C $(BUILD) bench/bench-kubesim bench/bench-agent
	$(BUILD)/bench/bench-kubesim --output bench/RESULTS.md
	$(BUILD)/bench/bench-agent --output bench/RESULTS-agent.md

clean:
	rm -rf $(BUILD) build-asan build-fuzz
