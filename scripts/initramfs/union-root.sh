# The union root, shared by the two initramfs flavours (sourced by busybox sh): /init of
# scripts/mkinitramfs (scripts/initramfs/init) and the initramfs-tools boot script
# (scripts/initramfs-tools/local-bottom). The caller defines msg and rescue (what to do when
# the root cannot be assembled), calls union_root_params, union_root_assemble TARGET and,
# before switching to TARGET, union_root_move_layers TARGET.
# Kernel command line (the same for both):
#
#   unionrs.lower=SPEC        the read-only base image (required; without it there is no union)
#   unionrs.extra=SPEC[,...]  more read-only layers above the base, top first
#   unionrs.upper=tmpfs|DEV   the writable layer: a tmpfs (default; changes are lost at
#                             reboot) or a block device with a filesystem (persistent;
#                             uses its upper/ and work/ directories, made if missing)
#   unionrs.tmpfs_size=SIZE   size of the tmpfs upper (default 50%)
#   unionrs.init=PATH         init to run in the new root (default: init=, else /sbin/init;
#                             scripts/mkinitramfs only: initramfs-tools runs init=)
#   unionrs.rescue=shell|reboot|poweroff   what to do if the root cannot be assembled
#                             (default shell: a rescue shell on the console)
#
# SPEC is a block device (/dev/vdb), an image file on one (/dev/vda:/images/root.sqfs), or
# `root`: the filesystem of root= (mounted read-only); squashfs, ext4 or anything else the
# kernel can mount read-only. The layers stay reachable in the new root: /media/root-ro
# (base), /media/root-ro.N (extras, N = 1 is the top), /media/root-rw (the upper filesystem:
# upper/ and work/).

union_root_params() {
  lower= extra= upper=tmpfs size=50% init= rescue=shell root_spec=
  for arg in $(cat /proc/cmdline); do
    case "$arg" in
      unionrs.lower=*) lower=${arg#*=} ;;
      unionrs.extra=*) extra=${arg#*=} ;;
      unionrs.upper=*) upper=${arg#*=} ;;
      unionrs.tmpfs_size=*) size=${arg#*=} ;;
      unionrs.init=*) init=${arg#*=} ;;
      unionrs.rescue=*) rescue=${arg#*=} ;;
      init=*) [ -n "$init" ] || init=${arg#*=} ;;
      root=*) root_spec=${arg#*=} ;;
    esac
  done
  [ -n "$init" ] || init=/sbin/init
}

# Block devices may show up a moment after init starts.
wait_dev() {
  for _ in $(seq 1 50); do [ -b "$1" ] && return 0; sleep 0.1; done
  msg "device $1 does not exist"; return 1
}

# Mounts SPEC read-only on DIR. With root_mounted set (initramfs-tools: where it mounted
# root=, with its rootfstype= and rootflags=, such as a btrfs subvol=), `root` is that mount,
# made read-only and moved.
image_n=0
root_mounted=${root_mounted:-}
mount_ro() {
  spec=$1 dir=$2
  mkdir -p "$dir"
  if [ "$spec" = root ] && [ -n "$root_mounted" ]; then
    mount -o remount,ro "$root_mounted" || { msg "cannot make $root_mounted read-only"; return 1; }
    mount --move "$root_mounted" "$dir" || { msg "cannot move $root_mounted to $dir"; return 1; }
    root_mounted=
    return 0
  fi
  [ "$spec" = root ] && spec=$root_spec
  case "$spec" in
    /dev/*:*)
      dev=${spec%%:*} file=${spec#*:}
      image_n=$((image_n + 1))
      wait_dev "$dev" || return 1
      mkdir -p /media/dev.$image_n
      mount -o ro "$dev" /media/dev.$image_n || { msg "cannot mount $dev"; return 1; }
      [ -f "/media/dev.$image_n$file" ] || { msg "no image $file on $dev"; return 1; }
      mount -o ro,loop "/media/dev.$image_n$file" "$dir" || { msg "cannot mount image $file"; return 1; }
      ;;
    /dev/*)
      wait_dev "$spec" || return 1
      mount -o ro "$spec" "$dir" || { msg "cannot mount $spec"; return 1; }
      ;;
    *) msg "bad layer '$1' (want /dev/X, /dev/X:/path/to/image or root with root=/dev/X)"; return 1 ;;
  esac
}

# Mounts the layers on /media/... and the union on TARGET.
union_root_assemble() {
  target=$1
  mount_ro "$lower" /media/root-ro || rescue "cannot mount the base image '$lower'"
  lowers=/media/root-ro
  i=0
  for e in $(echo "$extra" | tr ',' ' '); do
    i=$((i + 1))
    mount_ro "$e" /media/root-ro.$i || rescue "cannot mount extra layer '$e'"
  done
  # Extras go above the base, the first one on top.
  while [ $i -gt 0 ]; do lowers=/media/root-ro.$i:$lowers; i=$((i - 1)); done

  mkdir -p /media/root-rw
  case "$upper" in
    tmpfs) mount -t tmpfs -o mode=0755,size="$size" upper /media/root-rw || rescue "cannot mount the tmpfs upper" ;;
    /dev/*)
      wait_dev "$upper" || rescue "no upper device $upper"
      mount -o rw "$upper" /media/root-rw || rescue "cannot mount the upper device $upper"
      ;;
    *) rescue "bad unionrs.upper='$upper' (want tmpfs or /dev/X)" ;;
  esac
  mkdir -p /media/root-rw/upper /media/root-rw/work || rescue "cannot make upper/ and work/ on $upper"

  mkdir -p "$target"
  mount -t unionrs -o lowerdir=$lowers,upperdir=/media/root-rw/upper,workdir=/media/root-rw/work unionrs "$target" \
    || rescue "mounting the union failed: $(dmesg | grep unionrs | tail -n 1)"
  msg "root is unionrs: lower $lowers, upper $upper"
}

# Moves the layers' mounts (not the devices that hold image files) into the new root TARGET.
union_root_move_layers() {
  for d in /media/*; do
    case "$d" in /media/dev.*) continue ;; esac
    grep -q " $d " /proc/mounts || continue
    mkdir -p "$1$d" && mount --move "$d" "$1$d"
  done
}
