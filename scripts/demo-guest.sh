#!/bin/bash
# Runs in the guest for `make demo`. Shows each step and what the user sees; a step that the
# current unionrs cannot do yet says so instead of failing the whole demo.
set -u
d=/tmp/demo
mkdir -p $d/lower $d/upper $d/work $d/merged $d/ovl $d/ovl-upper $d/ovl-work
echo "from the lower layer" > $d/lower/readme.txt
echo "will be deleted" > $d/lower/old.txt
mkdir -p $d/lower/etc && echo "lower config" > $d/lower/etc/app.conf
echo "only in upper" > $d/upper/new.txt

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; eval "$@"; }
try() { printf '\n\033[1m$ %s\033[0m\n' "$*"; if ! eval "$@"; then echo "  -> not supported by this unionrs yet"; fi; }

echo "=== unionrs demo: kernel $(uname -r) ==="
step "grep unionrs /proc/filesystems"
step "find $d/lower $d/upper | sort"
step "mount -t unionrs -o lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work none $d/merged"
step "grep unionrs /proc/self/mounts"
step "stat -c '%n: %A %U %y' $d/upper $d/merged"
try "ls -l $d/merged"
try "cat $d/merged/readme.txt"
try "echo appended >> $d/merged/readme.txt && cat $d/merged/readme.txt && ls -l $d/upper"
try "rm $d/merged/old.txt && ls -l $d/merged && ls -l $d/upper/old.txt"
try "mv $d/merged/etc/app.conf $d/merged/etc/app.conf.bak && ls -l $d/merged/etc $d/upper/etc"
try "rm -r $d/merged/etc && mkdir $d/merged/etc && getfattr -d -m - $d/upper/etc && ls -la $d/merged/etc"
step "cat $d/lower/readme.txt; find $d/lower | sort  # the lower layer is unchanged"
echo
echo "For comparison, overlayfs on the same kind of layers:"
cp -a $d/lower $d/ovl-lower; rm -f $d/ovl-lower/.keep
echo "only in upper" > $d/ovl-upper/new.txt
step "mount -t overlay -o lowerdir=$d/ovl-lower,upperdir=$d/ovl-upper,workdir=$d/ovl-work none $d/ovl"
step "ls -l $d/ovl"
step "echo appended >> $d/ovl/readme.txt; rm $d/ovl/old.txt; ls -l $d/ovl-upper"
step "umount $d/ovl $d/merged"
step "rmmod unionrs && ! grep -q unionrs /proc/filesystems && echo 'module unloaded cleanly'"
