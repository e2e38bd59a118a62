# SPDX-License-Identifier: GPL-2.0
# unionrs: module build, and the targets that drive the QEMU guest.
#
#   make            build unionrs.ko (against our cached debug kernel, or KDIR=...; a Debian
#                   kernel's headers: scripts/debian-kbuild)
#   make check      set up what is missing, then the fast tier: lints, guest tests, boots
#   make check-full the full tier: full sizes, more seeds, the benchmark smoke run
#   make lint       rustfmt, clippy, checkpatch and the docs only
#   make mutants    deliberate breakages of the union logic: make check must catch each
#   make demo       boot the guest and show a union at work
#   make oci-layer  the tool that writes an upper directory as an OCI layer (scripts/oci-layer)
#   make setup      only install/build the toolchain, kernel and guest image
#   make install-initramfs-tools  the union root for Debian's initramfs-tools
#   make bench      benchmarks on a non-debug kernel (see README; BENCH_ARGS=...)
# CHECK_ARGS passes options and test-name filters to qemu-tests/run (e.g. CHECK_ARGS=crash).

# (kbuild itself reads ./Kbuild, not this file.)

# The toolchain pins (kernel version, compilers), shared with scripts/.
include scripts/toolchain.env

# Our own kernel is built with clang (KASAN + Rust need it), so the module must be too.
# Building against your own kernel: make KDIR=/path/to/build KFLAGS="LLVM=1" (or whatever
# compiler that kernel was built with). CLIPPY=1 builds through clippy-driver.
KFLAGS ?= LLVM=$(LLVM_SUFFIX) RUSTC=$(RUSTC)
export PATH := $(HOME)/.cargo/bin:$(PATH)
export LIBCLANG_PATH

.PHONY: all module setup check check-full lint mutants demo bench oci-layer clean install-initramfs-tools

all: module

# A Debian kernel's headers (KDIR=/lib/modules/$(uname -r)/build) go through scripts/debian-kbuild:
# they lack the kernel's Rust crates, which it rebuilds with the kernel's own compilers. A RUSTC,
# CC or BINDGEN given on the command line is passed on (and refused if it is not the kernel's).
DEBIAN_KBUILD_ENV = $(foreach v,RUSTC CC BINDGEN,$(if $(filter command line,$(origin $(v))),'$(v)=$($(v))'))

module:
	@kdir="$(KDIR)"; \
	if [ -z "$$kdir" ]; then scripts/setup --packages-only && kdir=$$(scripts/build-kernel debug) || exit 1; \
	elif [ -f "$$kdir/.kernelvariables" ]; then exec env $(DEBIAN_KBUILD_ENV) scripts/debian-kbuild "$$kdir"; fi; \
	$(MAKE) -C "$$kdir" M=$(CURDIR) $(KFLAGS) $(if $(CLIPPY),CLIPPY=1 CLIPPY_DRIVER=$(CLIPPY_DRIVER)) modules

setup:
	scripts/setup

# The union root for initramfs-tools (Debian's update-initramfs): a hook, a local-bottom boot
# script and the union-root logic they share with scripts/mkinitramfs.
install-initramfs-tools:
	install -D -m 0755 scripts/initramfs-tools/hook $(DESTDIR)/etc/initramfs-tools/hooks/unionrs
	install -D -m 0755 scripts/initramfs-tools/local-bottom $(DESTDIR)/etc/initramfs-tools/scripts/local-bottom/unionrs
	install -D -m 0644 scripts/initramfs/union-root.sh $(DESTDIR)/usr/share/unionrs/union-root.sh

# target/release/unionrs-oci-layer under scripts/oci-layer.
oci-layer:
	cargo build --release --quiet --manifest-path scripts/oci-layer/Cargo.toml

check:
	qemu-tests/run $(CHECK_ARGS)

check-full:
	qemu-tests/run --full $(CHECK_ARGS)

lint:
	scripts/lint

mutants:
	scripts/mutants $(MUTANTS_ARGS)

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
