#!/bin/sh
# Runs inside the guest (started by qemu-tests/run through scripts/vm): mounts the fixture
# images attached as disks (ext4, labelled fx-NAME, read-only at /fixtures/NAME), runs the
# guest tests, then prints the reports that the host checks for kernel problems (kmemleak,
# taint) and an end marker.
#   guest-run.sh fast|full [filter ...]
tier=$1
shift
bin=/host/qemu-tests/guest/target/release/unionrs-guest-tests
for dev in /dev/vd[b-z]; do
  [ -b "$dev" ] || continue
  label=$(blkid -o value -s LABEL "$dev" 2>/dev/null)
  case "$label" in
    fx-*) name=${label#fx-}
      mkdir -p "/fixtures/$name"
      mount -o ro "$dev" "/fixtures/$name" || echo "unionrs-fixture: cannot mount $dev ($label)";;
  esac
done
"$bin" --tier "$tier" "$@"
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
echo "unionrs-guest-run: end"
exit $status
