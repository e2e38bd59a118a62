#!/bin/bash
# Guest side of qemu-tests/crash-test: one phase per boot, on the extra disk /dev/vdb.
#   crash-guest.sh crash copy-up|rename   build layers, start the operation, and kill the
#                                         machine (sysrq b: no sync) in the middle of it
#   crash-guest.sh verify copy-up|rename  remount and check that the view is whole
# Prints "crash-test: ok <what>" / "crash-test: FAIL <what>: <why>".
set -u
phase=$1 case=$2
M=/mnt/crash
mkdir -p $M
ok() { echo "crash-test: ok $case.$1"; }
fail() { echo "crash-test: FAIL $case.$1: $2"; }

if [ "$phase" = crash ]; then
  mkfs.ext4 -q -F /dev/vdb || exit 1
  mount /dev/vdb $M || exit 1
  mkdir -p $M/lower/dir $M/upper $M/work $M/union
  # Big enough that copying it up takes a while under emulation.
  dd if=/dev/zero bs=1M count=96 status=none > $M/lower/dir/big
  echo small > $M/lower/dir/small
  md5sum $M/lower/dir/big | cut -d' ' -f1 > $M/big.md5
  sync
  mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work none $M/union || exit 1
  case $case in
    copy-up) (echo appended >> $M/union/dir/big) & ;;
    rename) (mv $M/union/dir/big $M/union/dir/renamed) & ;;
  esac
  # Wait until the copy is being built in the work directory, then crash.
  for _ in $(seq 1 2000); do
    [ -n "$(ls -A $M/work/work 2>/dev/null)" ] && break
    sleep 0.01
  done
  echo "crash-test: crashing with work/work = $(ls -A $M/work/work | tr '\n' ' ')"
  echo 1 > /proc/sys/kernel/sysrq
  echo b > /proc/sysrq-trigger
  sleep 30
  exit 1
fi

# verify
mount /dev/vdb $M || { fail mount "cannot mount the disk"; exit 1; }
mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work none $M/union \
  || { fail remount "union does not mount after the crash"; exit 1; }
left=$(ls -A $M/work/work)
[ -z "$left" ] && ok workdir_cleaned || fail workdir_cleaned "left in work/work: $left"
want=$(cat $M/big.md5)
lower=$(md5sum < $M/lower/dir/big | cut -d' ' -f1)
[ "$lower" = "$want" ] && ok lower_untouched || fail lower_untouched "lower file changed"
case $case in
  copy-up)
    # Either no copy (old view) or the whole new file, never a partial one.
    got=$(md5sum < $M/union/dir/big | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then ok view_whole
    elif [ "$(stat -c %s $M/union/dir/big)" = $((96 * 1024 * 1024 + 9)) ] && [ "$(tail -c 9 $M/union/dir/big)" = appended ]; then ok view_whole
    else fail view_whole "union shows a partial file ($(stat -c %s $M/union/dir/big) bytes)"; fi
    if [ -e $M/upper/dir/big ]; then
      [ "$(stat -c %s $M/upper/dir/big)" -ge $((96 * 1024 * 1024)) ] && ok upper_whole \
        || fail upper_whole "partial copy in upper: $(stat -c %s $M/upper/dir/big) bytes"
    else ok upper_whole; fi
    ;;
  rename)
    old=$([ -e $M/union/dir/big ] && echo y || echo n)
    new=$([ -e $M/union/dir/renamed ] && echo y || echo n)
    if [ "$old$new" = yn ] || [ "$old$new" = ny ]; then ok one_name
    else fail one_name "old name present: $old, new name present: $new"; fi
    f=$M/union/dir/big; [ "$new" = y ] && f=$M/union/dir/renamed
    got=$(md5sum < $f | cut -d' ' -f1)
    [ "$got" = "$want" ] && ok view_whole || fail view_whole "content differs ($(stat -c %s $f) bytes)"
    ;;
esac
echo small | cmp -s - $M/union/dir/small && ok others_intact || fail others_intact "dir/small changed"
umount $M/union
umount $M
