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
# A private apt state under the cache (Debian trixie-backports, where the kernel packages we
# use come from, and sid), so that nothing of the machine's apt configuration changes:
# private_apt_setup once, then apt-get "${PRIVATE_APT[@]}" ...
APT_ROOT="$CACHE/apt"
PRIVATE_APT=(-o Dir::Etc::sourcelist="$APT_ROOT/sources.list" -o Dir::Etc::sourceparts=/nonexistent
  -o Dir::State::Lists="$APT_ROOT/lists" -o Dir::Cache::Archives="$APT_ROOT/archives"
  -o Dir::Cache::pkgcache="$APT_ROOT/pkgcache.bin" -o Dir::Cache::srcpkgcache="$APT_ROOT/srcpkgcache.bin"
  -o APT::Get::List-Cleanup=0 -o Acquire::Languages=none)
private_apt_setup() {
  mkdir -p "$APT_ROOT/lists/partial" "$APT_ROOT/archives/partial" "$APT_ROOT/dl"
  # No sid key in an old keyring must not stop trixie-backports from working.
  cat > "$APT_ROOT/sources.list" <<EOS
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
EOS
}
