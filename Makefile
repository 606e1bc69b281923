# srlm: the two commands.
#   make demo   set up, build, and run the self-rewarding loop end to end on a bundled task (CPU)
#   make test   set up, build, and run the whole test suite
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup configure build test demo bench clean format
# A recipe that fails removes the file it was making (build.ninja of a configure that failed late).
.DELETE_ON_ERROR:

all: build

setup:
	@bash deploy/setup.sh

# Configured = build.ninja exists: a configure that fails leaves CMakeCache.txt but no build.ninja,
# so the next make configures again (keyed on CMakeCache.txt, it went straight to `ninja: error:
# loading 'build.ninja'`). Once configured, ninja re-runs cmake itself when a CMakeLists changes.
# setup is order-only: it runs first and to its end, also under make -j (cmake finds the libtorch
# that setup puts in .venv), without making a configured tree configure again.
$(BUILD_DIR)/build.ninja: | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

demo: build
	bash deploy/demo/run_demo.sh $(BUILD_DIR)

bench: build
	cmake --build $(BUILD_DIR) --target benchmarks -j $(JOBS)

format:
	find common coordinator worker tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
