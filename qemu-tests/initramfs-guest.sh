#!/bin/bash
# Guest side of qemu-tests/initramfs-test: runs in a guest whose root is unionrs, assembled
# by the initramfs (scripts/initramfs/init) over a squashfs of the guest image.
#   initramfs-guest.sh change LOWER_MD5 VARIANT  make changes in /etc and check the upper layer
#   initramfs-guest.sh verify LOWER_MD5   after a reboot (persistent upper): changes still there
# Prints "initramfs-test: ok NAME" / "initramfs-test: FAIL NAME: WHY", and "initramfs-test: end"
# when it got to its end.
set -u
phase=$1 lower_md5=$2 variant=$3
ok() { echo "initramfs-test: ok $variant.$1"; }
fail() { echo "initramfs-test: FAIL $variant.$1: $2"; }
U=/media/root-rw/upper

grep -q '^unionrs / unionrs ' /proc/mounts && ok "root_is_unionrs" \
  || fail "root_is_unionrs" "$(grep ' / ' /proc/mounts | tr '\n' ' ')"
grep -q ' /media/root-ro squashfs ro' /proc/mounts && ok "lower_exposed" \
  || fail "lower_exposed" "no read-only squashfs at /media/root-ro"

if [ "$phase" = change ]; then
  echo "written through the union" > /etc/unionrs-new
  echo "changed" >> /etc/issue.net           # copy-up
  rm /etc/hostname                            # whiteout
  mv /etc/issue /etc/issue.renamed            # copy-up + whiteout at the old name
  mkdir /etc/unionrs-dir && touch /etc/unionrs-dir/f
  sync
fi

# The view.
v=ok
[ "$(cat /etc/unionrs-new 2>/dev/null)" = "written through the union" ] || v="new file missing"
tail -n1 /etc/issue.net | grep -q '^changed$' || v="issue.net not changed"
[ ! -e /etc/hostname ] || v="deleted hostname is back"
[ ! -e /etc/issue ] && [ -f /etc/issue.renamed ] || v="rename not visible"
[ -f /etc/unionrs-dir/f ] || v="new dir missing"
[ "$v" = ok ] && ok "view" || fail "view" "$v"

# The upper layer holds exactly the changes (and the mount points /init made).
want='d media
d media/root-ro
d media/root-rw
d etc
f etc/unionrs-new
f etc/issue.net
c etc/hostname
c etc/issue
f etc/issue.renamed
d etc/unionrs-dir
f etc/unionrs-dir/f'
got=$(cd $U && find . -mindepth 1 \( -path ./root -o -path ./tmp \) -prune -o -printf '%y %P\n' | sort)
# busybox reboot at the end of the previous boot logs to wtmp.
[ "$phase" = verify ] && want+=$'\nd var\nd var/log\nf var/log/wtmp'
want=$(sort <<<"$want")
[ "$got" = "$want" ] && ok "upper_has_exactly_the_changes" \
  || { echo "$want" > /tmp/want; echo "$got" > /tmp/got
       fail "upper_has_exactly_the_changes" "$(diff /tmp/want /tmp/got | grep '^[<>]' | tr '\n' ' ')"; }
bad=""
for w in etc/hostname etc/issue; do
  [ "$(stat -c '%F %t:%T' $U/$w 2>/dev/null)" = "character special file 0:0" ] || bad+="$w "
done
[ -z "$bad" ] && ok "whiteouts" || fail "whiteouts" "not a 0/0 character device: $bad"

md5=$(md5sum < /dev/vdb | cut -d' ' -f1)
[ "$md5" = "$lower_md5" ] && ok "lower_image_unchanged" || fail "lower_image_unchanged" "md5 $md5"
echo "initramfs-test: end"
