# Shared settings for the scripts in scripts/ (sourced, not executed).
CACHE="${UNIONRS_CACHE:-$HOME/.cache/unionrs}"
# The Debian package version we build against; fetch-kernel-source falls back
# to the newest 7.2.x if this one has left the archive.
KERNEL_PIN="${KERNEL_PIN:-7.2.12-1~bpo13+1}"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
export PATH="$HOME/.cargo/bin:$PATH"
log()  { printf '[unionrs] %s\n' "$*" >&2; }
warn() { printf '[unionrs] warning: %s\n' "$*" >&2; }
die()  { printf '[unionrs] error: %s\n' "$*" >&2; exit 1; }
