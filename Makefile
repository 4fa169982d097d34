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

# Builds, then runs every benchmark at full size, one at a time (tens of minutes; the simulator
# needs a few GiB), each writing bench/results/NAME.md, and assembles bench/RESULTS.md (machine,
# commit, a summary of every target, one section per benchmark). BENCH_ONLY="drain rollout" runs
# only those. See docs/benchmarks.md.
bench: build
	tools/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
