# Shared settings for the scripts in scripts/ (sourced, not executed).
CACHE="${UNIONRS_CACHE:-$HOME/.cache/unionrs}"
# The toolchain pins (kernel version, compilers); the Makefile reads the same file.
. "$(dirname "${BASH_SOURCE[0]}")/toolchain.env"
export LIBCLANG_PATH
export PATH="$HOME/.cargo/bin:$PATH"
BINDGEN="$HOME/.cargo/bin/bindgen"
# What kbuild needs to build the kernel or the module with the pinned compilers.
KBUILD_TOOLCHAIN=(LLVM="$LLVM_SUFFIX" RUSTC="$RUSTC" BINDGEN="$BINDGEN")
log()  { printf '[unionrs] %s\n' "$*" >&2; }
warn() { printf '[unionrs] warning: %s\n' "$*" >&2; }
die()  { printf '[unionrs] error: %s\n' "$*" >&2; exit 1; }
