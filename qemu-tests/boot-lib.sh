# Shared by the boot-level suites (qemu-tests/crash-test, qemu-tests/initramfs-test); sourced.
# Their guest sides print "TAG: ok NAME", "TAG: FAIL NAME: WHY" and, at their end, "TAG: end".

# A console log without CRs and the kernel's timestamps, so that lines can be matched.
clean_log() { tr -d '\r' < "$1" | sed -E 's/^\[ *[0-9]+\.[0-9]+\] ?//'; }

# Turns the results of a boot's log into "PASS PREFIX.NAME" / "FAIL PREFIX.NAME" (then
# "     why") lines for qemu-tests/run. The end marker is no check of its own: its absence
# means that checks were lost, which fails as PREFIX.BOOT.reached_end.
#   report_boot LOG TAG PREFIX BOOT
report_boot() {
  local log=$1 tag=$2 prefix=$3 boot=$4 l r cleaned
  # Read whole first: `grep -q` ending early would kill the writer of a pipe with SIGPIPE,
  # which `pipefail` turns into "no match".
  cleaned=$(clean_log "$log")
  grep -aq "^$tag: end\$" <<<"$cleaned" \
    || { echo "FAIL $prefix.$boot.reached_end"; echo "     the boot stopped before its end (see $log)"; }
  while IFS= read -r l; do
    case "$l" in
      "$tag: ok "*) echo "PASS $prefix.${l#"$tag: ok "}";;
      "$tag: FAIL "*) r=${l#"$tag: FAIL "}; echo "FAIL $prefix.${r%%: *}"; echo "     ${r#*: }";;
    esac
  done < <(grep -aE "^$tag: (ok|FAIL) " <<<"$cleaned")
}

# --fail-fast of qemu-tests/run: stop between boots once something failed elsewhere.
stopping() { [ -n "${UNIONRS_STOP_FILE:-}" ] && [ -f "$UNIONRS_STOP_FILE" ]; }
