# SPDX-License-Identifier: GPL-2.0
# unionrs: module build, and the targets that drive the QEMU guest.
#
#   make            build unionrs.ko (against our cached debug kernel, or KDIR=...)
#   make check      set up what is missing, boot the debug kernel, run all tests
#   make demo       boot the guest and show a union at work
#   make setup      only install/build the toolchain, kernel and guest image
#   make bench      benchmarks on a non-debug kernel (see README; BENCH_ARGS=...)

# (kbuild itself reads ./Kbuild, not this file.)

# Our own kernel is built with clang (KASAN + Rust need it), so the module must be too.
# Building against your own kernel: make KDIR=/path/to/build KFLAGS="LLVM=1" (or whatever
# compiler that kernel was built with).
KFLAGS ?= LLVM=-19 RUSTC=/usr/bin/rustc
export PATH := $(HOME)/.cargo/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib

.PHONY: all module setup check demo bench clean

all: module

module:
	@kdir="$(KDIR)"; \
	if [ -z "$$kdir" ]; then scripts/setup --packages-only && kdir=$$(scripts/build-kernel debug) || exit 1; fi; \
	$(MAKE) -C "$$kdir" M=$(CURDIR) $(KFLAGS) modules

setup:
	scripts/setup

check: setup module
	qemu-tests/run

demo: setup module
	scripts/demo

# BENCH_ARGS: options of scripts/bench, e.g. BENCH_ARGS="--runs 3 --perf" or "--smoke".
bench:
	scripts/setup --packages-only
	scripts/bench $(BENCH_ARGS)

clean:
	@kdir="$(KDIR)"; [ -n "$$kdir" ] || kdir=$$(ls -d $(HOME)/.cache/unionrs/kernel/debug-* 2>/dev/null | head -n1); \
	if [ -n "$$kdir" ]; then $(MAKE) -C "$$kdir" M=$(CURDIR) $(KFLAGS) clean; fi
	rm -rf qemu-tests/guest/target logs

