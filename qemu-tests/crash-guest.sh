#!/bin/bash
# Guest side of qemu-tests/crash-test: one phase per boot, on the extra disk /dev/vdb, whose
# writes the host throttles (QEMU block throttling) so that flushing a copy-up takes seconds
# whatever the host's speed.
#   crash-guest.sh crash copy-up|rename MB   build the layers (a lower file of MB MiB), start
#        the operation, and as soon as it is seen in flight (still running, and something of
#        it on the upper filesystem: a temporary in work/work, the copy in upper/, or 1 MiB
#        of space taken, for a copy still unnamed in an O_TMPFILE) kill the
#        machine (sysrq b: no sync). Prints "crash-test: in-flight ..." just before;
#        "crash-test: missed ..." if the operation finished before it was seen in flight (the
#        host then retries with a bigger file and a slower disk).
#   crash-guest.sh crash volatile MB   mount a union with "volatile" and another with
#        "fsync=strict" (their own upper and work directories), write through both (the
#        strict one's file with fsync), and kill the machine at once.
#   crash-guest.sh verify copy-up|rename     remount and check that the view is whole
#   crash-guest.sh verify volatile   the volatile union's upper is refused by unionrs and by
#        overlayfs, with overlayfs' message, until work/work/incompat/volatile is removed; the
#        strict union's fsynced file is whole
# Prints "crash-test: ok <what>" / "crash-test: FAIL <what>: <why>", and "crash-test: end"
# when a verify boot got to its end.
set -u
phase=$1 case=$2 mb=${3:-32}
M=/mnt/crash
mkdir -p $M
ok() { echo "crash-test: ok $case.$1"; }
fail() { echo "crash-test: FAIL $case.$1: $2"; }

if [ "$phase" = crash ]; then
  # Small inode tables and a small, lazily initialised journal: the disk is throttled.
  mkfs.ext4 -q -F -N 4096 -J size=8 -E lazy_itable_init=1,lazy_journal_init=1 /dev/vdb || exit 1
  mount /dev/vdb $M || exit 1
  mkdir -p $M/lower/dir $M/upper $M/work $M/union
  head -c $((mb * 1024 * 1024)) /dev/urandom > $M/lower/dir/big
  echo small > $M/lower/dir/small
  md5sum < $M/lower/dir/big | cut -d' ' -f1 > $M/big.md5
  stat -c %s $M/lower/dir/big > $M/big.size
  sync
  if [ "$case" = volatile ]; then
    mkdir -p $M/upper2 $M/work2 $M/union2
    head -c $((1 << 20)) /dev/urandom > $M/strict-data
    md5sum < $M/strict-data | cut -d' ' -f1 > $M/strict.md5
    sync
    mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work,volatile none $M/union || exit 1
    mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper2,workdir=$M/work2,fsync=strict none $M/union2 || exit 1
    echo volatile > $M/union/dir/new
    echo appended >> $M/union/dir/small
    dd if=$M/strict-data of=$M/union2/dir/new bs=64k conv=fsync status=none || exit 1
    echo "crash-test: in-flight volatile: written through a volatile union and (fsynced) a strict one"
    echo 1 > /proc/sys/kernel/sysrq
    echo b > /proc/sysrq-trigger
    sleep 30
    exit 1
  fi
  mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work none $M/union || exit 1
  case $case in
    copy-up) (echo appended >> $M/union/dir/big) & ;;
    rename) (mv $M/union/dir/big $M/union/dir/renamed) & ;;
    *) echo "crash-test: unknown case $case"; exit 1;;
  esac
  op=$!
  free_before=$(stat -f -c %f $M) block=$(stat -f -c %S $M)
  while kill -0 $op 2>/dev/null; do
    seen=$(cd $M && ls -Ad work/work/* upper/dir/big upper/dir/renamed 2>/dev/null | tr '\n' ' ')
    taken=$(( (free_before - $(stat -f -c %f $M)) * block ))
    [ -z "$seen" ] && [ $taken -ge $((1 << 20)) ] && seen="$((taken >> 10)) KiB taken (an unnamed copy)"
    if [ -n "$seen" ] && kill -0 $op 2>/dev/null; then
      echo "crash-test: in-flight $case: operation running; on the upper filesystem: $seen"
      echo 1 > /proc/sys/kernel/sysrq
      echo b > /proc/sysrq-trigger
      sleep 30
      exit 1
    fi
    sleep 0.005
  done
  echo "crash-test: missed $case: the operation finished before it was seen in flight ($mb MiB)"
  exit 3
fi

# verify
mount /dev/vdb $M || { fail mount "cannot mount the disk"; exit 1; }
if [ "$case" = volatile ]; then
  opts="lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work"
  # Each must refuse, with overlayfs' message (the kernel log's last lines).
  for fstype in unionrs overlay; do
    if mount -t $fstype -o "$opts" none $M/union 2>/dev/null; then
      umount $M/union; fail "refused_by_$fstype" "mounted the upper of a volatile union after a crash"
    elif dmesg | tail -n 5 | grep -q "overlay with incompat feature 'volatile' cannot be mounted"; then
      ok "refused_by_$fstype"
    else
      fail "refused_by_$fstype" "refused, but without overlayfs' message: $(dmesg | tail -n 2 | tr '\n' ' ')"
    fi
  done
  # The documented cleanup, after which the union mounts.
  rm -rf $M/work/work/incompat/volatile
  if mount -t unionrs -o "$opts" none $M/union; then ok mounts_after_cleanup; umount $M/union
  else fail mounts_after_cleanup "still refused after work/work/incompat/volatile was removed"; fi
  mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper2,workdir=$M/work2,fsync=strict none $M/union2 \
    || { fail strict_remount "the strict union does not mount after the crash"; exit 1; }
  got=$(md5sum < $M/union2/dir/new 2>/dev/null | cut -d' ' -f1)
  [ "$got" = "$(cat $M/strict.md5)" ] && ok strict_data_survived \
    || fail strict_data_survived "the fsynced file reads back as $(stat -c %s $M/union2/dir/new 2>&1) bytes, other content"
  umount $M/union2
  umount $M
  e2fsck -fn /dev/vdb >/tmp/fsck.out 2>&1 && ok filesystem_clean \
    || fail filesystem_clean "e2fsck -fn: $(grep -v '^Pass\|^e2fsck' /tmp/fsck.out | head -3 | tr '\n' ' ')"
  echo "crash-test: end"
  exit 0
fi
mount -t unionrs -o lowerdir=$M/lower,upperdir=$M/upper,workdir=$M/work none $M/union \
  || { fail remount "union does not mount after the crash"; exit 1; }
left=$(ls -A $M/work/work)
[ -z "$left" ] && ok workdir_cleaned || fail workdir_cleaned "left in work/work: $left"
want=$(cat $M/big.md5) size=$(cat $M/big.size)
lower=$(md5sum < $M/lower/dir/big | cut -d' ' -f1)
[ "$lower" = "$want" ] && ok lower_untouched || fail lower_untouched "lower file changed"
case $case in
  copy-up)
    # Either no copy (old view) or the whole new file, never a partial one.
    got=$(md5sum < $M/union/dir/big | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then ok view_whole
    elif [ "$(stat -c %s $M/union/dir/big)" = $((size + 9)) ] && [ "$(tail -c 9 $M/union/dir/big)" = appended ] \
         && [ "$(head -c "$size" $M/union/dir/big | md5sum | cut -d' ' -f1)" = "$want" ]; then ok view_whole
    else fail view_whole "union shows a partial file ($(stat -c %s $M/union/dir/big) bytes)"; fi
    if [ -e $M/upper/dir/big ]; then
      [ "$(stat -c %s $M/upper/dir/big)" -ge "$size" ] && ok upper_whole \
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
# An unnamed copy the crash cut short is an orphan the filesystem frees at mount: nothing
# leaks.
e2fsck -fn /dev/vdb >/tmp/fsck.out 2>&1 && ok filesystem_clean \
  || fail filesystem_clean "e2fsck -fn: $(grep -v '^Pass\|^e2fsck' /tmp/fsck.out | head -3 | tr '\n' ' ')"
echo "crash-test: end"
