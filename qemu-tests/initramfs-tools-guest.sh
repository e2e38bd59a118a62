#!/bin/sh
# In the guest booted by qemu-tests/debian-kernel-test through the initramfs that Debian's
# update-initramfs made with unionrs' hook: the root must be a unionrs union over the base
# layer (read-only, of type BASE_FSTYPE) with a tmpfs upper, writes must go to the upper only.
#   initramfs-tools-guest.sh BOOT BASE_FSTYPE
tag=initramfs-tools-test boot=$1 base_type=$2
ok() { echo "$tag: ok $boot.$1"; }
fail() { echo "$tag: FAIL $boot.$1: $2"; }
fstype=$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)
[ "$fstype" = unionrs ] && ok root_is_unionrs || fail root_is_unionrs "/ is $fstype: $(grep ' / ' /proc/mounts | tr '\n' ';')"
ro=$(awk '$2 == "/media/root-ro" { print $3 " " $4 }' /proc/mounts)
case "$ro" in "$base_type ro,"* | "$base_type ro") ok base_is_read_only ;; *) fail base_is_read_only "/media/root-ro: '$ro', want $base_type ro" ;; esac
rw=$(awk '$2 == "/media/root-rw" { print $3 }' /proc/mounts)
[ "$rw" = tmpfs ] && ok upper_is_tmpfs || fail upper_is_tmpfs "/media/root-rw: '$rw'"
echo changed > /etc/unionrs-itools && rm -f /etc/hostname
if [ "$(cat /media/root-rw/upper/etc/unionrs-itools 2>/dev/null)" = changed ] && [ ! -e /media/root-ro/etc/unionrs-itools ] \
   && [ -e /media/root-ro/etc/hostname ] && [ ! -e /etc/hostname ]; then ok writes_go_to_the_upper
else fail writes_go_to_the_upper "upper: $(ls -la /media/root-rw/upper/etc 2>&1 | tr '\n' ';')"; fi
echo "$tag: end"
