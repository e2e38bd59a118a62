#!/bin/sh
# Runs inside the guest (started by qemu-tests/run through scripts/vm): the guest tests, then
# the reports that the host checks for kernel problems (kmemleak, taint).
bin=/host/qemu-tests/guest/target/release/unionrs-guest-tests
"$bin" "$@"
status=$?
if [ -w /sys/kernel/debug/kmemleak ]; then
  # kmemleak only reports objects older than 5 s that stayed unreferenced across a scan.
  sleep 6
  echo scan > /sys/kernel/debug/kmemleak
  echo scan > /sys/kernel/debug/kmemleak
  sed 's/^/kmemleak-report: /' /sys/kernel/debug/kmemleak
  echo "unionrs-kmemleak: checked"
fi
echo "unionrs-taint: $(cat /proc/sys/kernel/tainted)"
exit $status
