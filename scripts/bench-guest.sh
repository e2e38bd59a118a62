#!/bin/bash
# Inside the guest (started by scripts/bench through scripts/vm): build the layers on fresh
# scratch disks, then run every workload on every setup, several times, interleaved run by run.
#   bench-guest.sh smoke|full RUNS OUTFILE [WORKLOAD ...]
# Disks: /dev/vdb scratch (ext4), /dev/vdc scratch (xfs, reflink), /dev/vdd a tar archive.
# Records "run <workload> <setup> <run> <seconds>" lines in OUTFILE; "fail ..." lines on errors.
# With BENCH_PERF=1, one extra unionrs and overlayfs run of each workload is profiled with
# perf and the report written next to OUTFILE.
set -u
mode=$1 runs=$2 out=$3; shift 3
only=" $* "
tool=/host/qemu-tests/guest/target/release/bench
setups="${BENCH_SETUPS:-native overlayfs unionrs fuse-overlayfs}"
outdir=$(dirname "$out")
union_opts=""

if [ "$mode" = full ]; then
  # BENCH_SCALE (percent, default 100) shrinks every size of the full mode alike.
  p=${BENCH_SCALE:-100}
  sc() { local v=$(( $1 * p / 100 )); [ $v -ge 1 ] && echo $v || echo 1; }
  tree_dirs=200 tree_per=$(sc 1000) flat=$(sc 100000) small=$(sc 50000) big=$(sc 2048) rand=$(sc 256)
  cu_n=$(sc 1000) cu_big=$big churn=$(sc 100000) mv_n=$(sc 10000) chm_n=$(sc 4000) chm_size=262144
else
  tree_dirs=5 tree_per=100 flat=1000 small=200 big=16 rand=4 cu_n=10 cu_big=16 churn=300 mv_n=300
  chm_n=40 chm_size=16384
fi

say() { echo "bench-guest: $*"; }
record() { echo "$*" >> "$out"; echo "bench-result: $*"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print('%.6f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
# Times a shell command; prints seconds=<t>, or fails.
timed() { local t0 t1; t0=$(now); "$@" > /dev/null || return 1; t1=$(now); echo "seconds=$(elapsed "$t0" "$t1")"; }

# --- scratch filesystems and layers ----------------------------------------------------------
E=/bench X=/xbench
mkdir -p $E $X /mnt/u
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/vdb && mount /dev/vdb $E || { say "no ext4 scratch disk"; exit 1; }
mkfs.xfs -q -f -m reflink=1 /dev/vdc && mount /dev/vdc $X || { say "no xfs scratch disk"; exit 1; }

say "building layers ($mode)"
t0=$(now)
# needs WORKLOAD...: whether one of them is selected; only their layers are built (a few
# workloads at full size then fit an emulated guest's time).
needs() { local w; [ "$only" = "  " ] && return 0; for w; do [[ "$only" == *" $w "* ]] && return 0; done; return 1; }
for fs in $E $X; do mkdir -p $fs/layers/l1 $fs/layers/l2 $fs/layers/l3 $fs/native; done
if needs stat_cold stat_warm; then
  for l in 0 1 2; do $tool gen-tree $E/layers/l$((l + 1))/tree $tree_dirs $tree_per $l 3 || exit 1; done
  $tool gen-tree $E/native/tree $tree_dirs $tree_per all 3 || exit 1
fi
if needs readdir_cold readdir_warm; then
  for l in 0 1 2; do $tool gen-flat $E/layers/l$((l + 1))/flat $flat $l 3 || exit 1; done
  $tool gen-flat $E/native/flat $flat all 3 || exit 1
fi
if needs rename_dir; then
  for l in 0 1 2; do
    # The move's target directory is merged from all layers (the stat tree, when built).
    mkdir -p $E/layers/l$((l + 1))/tree
    $tool gen-flat $E/layers/l$((l + 1))/mvdir $mv_n $l 3 || exit 1
  done
  mkdir -p $E/native/tree
  $tool gen-flat $E/native/mvdir $mv_n all 3 || exit 1
fi
if needs smallfiles_cold smallfiles_warm; then
  $tool gen-files $E/layers/l3/small $small 4096 || exit 1
  cp -a $E/layers/l3/small $E/native/small
fi
if needs chmod_tree chmod_tree_copy; then
  $tool gen-files $E/layers/l3/chmtree $chm_n $chm_size || exit 1
  cp -a $E/layers/l3/chmtree $E/native/chmtree
fi
if needs stream_seq stream_rand copyup_files copyup_big copyup_files_xfs copyup_big_xfs; then
  for fs in $E $X; do
    $tool gen-files $fs/layers/l3/copyup $cu_n 1048576 || exit 1
    $tool gen-big $fs/layers/l3/big.bin $cu_big || exit 1
    cp -a $fs/layers/l3/copyup $fs/native/copyup
    cp --reflink=never $fs/layers/l3/big.bin $fs/native/big.bin
  done
fi
if [ "$big" != "$cu_big" ]; then say "stream and copy-up file sizes differ"; exit 1; fi
sync
say "layers built in $(elapsed "$t0" "$(now)") s"
lower_cksum=$(find $E/layers $X/layers -type f \( -name 'f0000*' -o -name big.bin \) -print0 | sort -z | xargs -0 cat | md5sum)

# --- setups ----------------------------------------------------------------------------------
# mount_setup SETUP FS: the union over FS's layers with a fresh upper; prints its root.
mount_setup() {
  local s=$1 fs=$2 m=/mnt/u/$1
  if [ "$s" = native ]; then echo $fs/native; return 0; fi
  mkdir -p $m
  rm -rf $fs/up-$s $fs/wk-$s; mkdir -p $fs/up-$s $fs/wk-$s
  local o=lowerdir=$fs/layers/l1:$fs/layers/l2:$fs/layers/l3,upperdir=$fs/up-$s,workdir=$fs/wk-$s
  case $s in
    overlayfs) mount -t overlay overlay -o "$o$union_opts" $m;;
    unionrs) mount -t unionrs none -o "$o$union_opts" $m;;
    fuse-overlayfs) fuse-overlayfs -o "$o" $m;;
  esac || { echo "mount $s failed" >&2; return 1; }
  echo $m
}
umount_setup() {
  [ "$1" = native ] || umount /mnt/u/$1 || { sleep 1; umount /mnt/u/$1; }
}
scrub_native() { rm -rf "$1"/native/job "$1"/native/churn; [ -d "$1"/native/tree/moved ] && mv "$1"/native/tree/moved "$1"/native/mvdir; true; }

# --- workloads: w_<name> ROOT; print key=seconds lines ------------------------------------
# Read-only ones run on a union mounted once per run; writable ones get a fresh upper.
w_stat_cold() { drop_caches; $tool stat-tree $1/tree $tree_dirs $tree_per; }
w_stat_warm() { $tool stat-tree $1/tree $tree_dirs $tree_per >/dev/null && $tool stat-tree $1/tree $tree_dirs $tree_per; }
w_readdir_cold() { drop_caches; $tool readdir $1/flat $flat; }
w_readdir_warm() { $tool readdir $1/flat $flat >/dev/null && $tool readdir $1/flat $flat; }
w_smallfiles_cold() { drop_caches; $tool read-files $1/small $small 4096; }
w_smallfiles_warm() { $tool read-files $1/small $small 4096 >/dev/null && $tool read-files $1/small $small 4096; }
# fio_read FILE RW BS BYTES [fio options]: one synchronous fio job reading FILE (never writing:
# --readonly); prints fio's own runtime as seconds=, and fails unless fio read exactly BYTES.
fio_read() {
  local f=$1 rw=$2 bs=$3 bytes=$4; shift 4
  fio --name="$rw" --filename="$f" --readonly --rw="$rw" --bs="$bs" --ioengine=psync \
      --invalidate=0 --output-format=json "$@" > /tmp/fio.json 2> /tmp/fio.err \
    || { cat /tmp/fio.err >&2; return 1; }
  python3 - "$bytes" /tmp/fio.json <<'PY'
import json, sys
want = int(sys.argv[1])
job = json.load(open(sys.argv[2]))["jobs"][0]
got = job["read"]["io_bytes"]
if job["error"] or got != want:
    sys.exit("fio: error %d, read %d bytes of %d" % (job["error"], got, want))
print("seconds=%.6f" % (job["read"]["runtime"] / 1000.0))
PY
}
# The streaming file is in the lowest layer; fio's randrepeat seed makes every setup read the
# same offsets.
w_stream_seq() { drop_caches; fio_read $1/big.bin read 1M $((big << 20)) && $tool verify-big $1/big.bin; }
w_stream_rand() {
  drop_caches
  fio_read $1/big.bin randread 4k $((rand << 20)) --io_size=${rand}M --randrepeat=1 --norandommap
}
w_copyup_files() { drop_caches; $tool append-files $1/copyup $cu_n; }
w_copyup_big() { drop_caches; $tool append $1/big.bin; }
w_churn() { $tool churn $1/churn $churn; }
# A merged directory of mv_n names moved into another directory (the unions with
# redirect_dir=on: a redirect, no copy), then listed through the move.
w_rename_dir() { drop_caches; timed sh -c "mv $1/mvdir $1/tree/moved && find $1/tree/moved > /dev/null"; }
# chmod -R of a lower tree of chm_n files (1 GiB in 4 000 files at full size): with
# metacopy=on (chmod_tree) only metadata is copied up, without it (chmod_tree_copy) the data
# too. Then every file must show the new mode.
w_chmod_tree() {
  drop_caches
  timed chmod -R g+w $1/chmtree || return 1
  [ "$(find $1/chmtree -type f ! -perm -g+w | wc -l)" = 0 ] || { echo "chmod_tree: modes not changed" >&2; return 1; }
}
w_chmod_tree_copy() { w_chmod_tree "$@"; }
# The unions' options besides the layers, for workload $1.
union_opts_for() {
  case $1 in
    rename_dir) echo ",redirect_dir=on";;
    chmod_tree) echo ",metacopy=on";;
    chmod_tree_copy) echo ",metacopy=off";;
  esac
}
w_job() {
  local d=$1/job t0 t1
  mkdir -p $d; drop_caches
  t0=$(now); tar -xf /dev/vdd -C $d || return 1; sync; t1=$(now); echo "extract=$(elapsed $t0 $t1)"
  drop_caches
  t0=$(now); find $d > /dev/null || return 1; t1=$(now); echo "find=$(elapsed $t0 $t1)"
  t0=$(now); du -s $d > /dev/null || return 1; t1=$(now); echo "du=$(elapsed $t0 $t1)"
  drop_caches
  t0=$(now); grep -r -l 'unionrs-benchmark-no-such-string' $d; [ $? -le 1 ] || return 1; t1=$(now)
  echo "grep=$(elapsed $t0 $t1)"
}

# name fs writable
workloads="stat_cold:E:0 stat_warm:E:0 readdir_cold:E:0 readdir_warm:E:0 smallfiles_cold:E:0
smallfiles_warm:E:0 stream_seq:E:0 stream_rand:E:0 copyup_files:E:1 copyup_big:E:1
copyup_files_xfs:X:1 copyup_big_xfs:X:1 churn:E:1 job:E:1 rename_dir:E:1 chmod_tree:E:1
chmod_tree_copy:E:1"
w_copyup_files_xfs() { w_copyup_files "$@"; }
w_copyup_big_xfs() { w_copyup_big "$@"; }

# rotate N WORD...: the words, starting at the N-th (mod their number).
rotate() { local n=$1; shift; local a=("$@"); local k=$((n % ${#a[@]})); echo "${a[@]:k}" "${a[@]:0:k}"; }

# run_once WORKLOAD FS SETUP RUN [perf]
run_once() {
  local w=$1 fs=$2 s=$3 i=$4 root res line key val
  root=$(mount_setup $s $fs) || { record "fail $w $s mount"; return; }
  if [ "${5:-}" = perf ]; then
    # Debian's /usr/bin/perf may be a wrapper that wants a 6.1 kernel; the real one is perf_6.1.
    local perf; perf=$(ls /usr/bin/perf_* 2>/dev/null | head -n1); [ -n "$perf" ] || perf=perf
    # Software clock sampling: there is no PMU under emulation.
    $perf record -q -e cpu-clock -F 2000 -a -g -o /tmp/perf.data > /tmp/perf.err 2>&1 & local ppid=$!
    sleep 2; w_$w $root > /dev/null 2>&1; kill -INT $ppid; wait $ppid
    { $perf report -i /tmp/perf.data --stdio --no-children -g none --sort sym --percent-limit 0.3 2>&1 | head -n 120
      $perf report -i /tmp/perf.data --stdio --no-children --percent-limit 2 2>&1 | head -n 600
    } > "$outdir/perf-$w-$s.txt"
    [ -s "$outdir/perf-$w-$s.txt" ] || cp /tmp/perf.err "$outdir/perf-$w-$s.txt"
  else
    res=$(w_$w $root 2>/tmp/bench.err)
    if [ $? -ne 0 ]; then record "fail $w $s $(tr '\n' ' ' < /tmp/bench.err | cut -c1-300)"; else
      while IFS= read -r line; do
        key=${line%%=*} val=${line#*=}
        [ "$key" = seconds ] && record "run $w $s $i $val" || record "run $w-$key $s $i $val"
      done <<<"$res"
    fi
  fi
  umount_setup $s
  [ "$s" = native ] && scrub_native $fs
  [ "$s" = native ] || rm -rf $fs/up-$s $fs/wk-$s
  drop_caches; sleep 1
}

record "meta mode $mode"
record "meta scale_percent ${BENCH_SCALE:-100}"
record "meta sizes tree=${tree_dirs}x$tree_per flat=$flat small=$small big_mib=$big rand_mib=$rand copyup=${cu_n}x1MiB churn=$churn rename_dir=$mv_n chmod_tree=${chm_n}x$chm_size job_tar_mib=$(( $(blockdev --getsize64 /dev/vdd) / 1048576 ))"
record "meta runs $runs"
record "meta setups $setups"
record "meta kernel $(uname -r)"
record "meta cpus $(nproc)"
record "meta memory_mib $(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 ))"
record "meta cpu_model $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo | tr ' ' '_')"
for entry in $workloads; do
  w=${entry%%:*} rest=${entry#*:} fsl=${rest%%:*}
  [ "$only" = "  " ] || [[ "$only" == *" $w "* ]] || continue
  fs=$E; [ "$fsl" = X ] && fs=$X
  say "workload $w"
  union_opts=$(union_opts_for $w)
  for i in $(seq 1 "$runs"); do
    # A union measured right after another union over the same layers was up to 2x slower
    # on cold workloads, whichever it was: every run settles the caches after each setup
    # (see run_once), starts at a different setup and goes the other way round every other
    # time, so that no setup always follows the same neighbour.
    order=$(rotate $(( (i - 1) / 2 )) $setups)
    [ $((i % 2)) = 0 ] && order=$(echo $order | tr ' ' '\n' | tac | tr '\n' ' ')
    for s in $order; do run_once $w $fs $s $i; done
  done
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    for s in unionrs overlayfs; do run_once $w $fs $s 0 perf; done
  fi
done

# the lower layers are never modified
if [ "$(find $E/layers $X/layers -type f \( -name 'f0000*' -o -name big.bin \) -print0 | sort -z | xargs -0 cat | md5sum)" != "$lower_cksum" ]; then
  record "fail lower-layers - changed by a workload"
fi
record "meta done 1"
umount $E $X
