//! Writable unions (upper and work directories), checked against overlayfs mounted over the
//! same layers with the same options: a seeded random-operation differential test that shrinks
//! a failure to its shortest failing prefix, each filesystem reading the upper layer the other
//! wrote, ENOSPC during copy-up, a user without privileges acting on both, and the basic
//! copy-up/whiteout/opaque semantics spelt out.
//!
//! Environment (qemu-tests/run passes it to the guest): UNIONRS_FSTYPE is the filesystem under
//! test (default "unionrs"; "overlay" checks the harness against overlayfs itself),
//! UNIONRS_SEED (decimal or 0x-hex) and UNIONRS_OPS (operations of the random test) make a run
//! reproducible; UNIONRS_TRACE prints each operation before it runs.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::{self, diff_trees, is_fmt, kind, names_in, read_file as read_path, show_bytes, Cmp, Inos, Walk, WalkOpts};
use crate::trees::{self, Layer};
use crate::util::{bpath, bytes_diff, errno_of, first_lines, join_rel, parent_rel, show, verdict, XorShift};
use crate::{check, progress, Test, TestResult};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("writable.random_ops_differential", random_ops_differential),
        Test::full_only("writable.random_ops_more_seeds", random_ops_more_seeds),
        Test::new("writable.format_interop", format_interop),
        Test::new("writable.random_ops_index_xino", random_ops_index_xino),
        Test::new("writable.random_ops_nfs_export", random_ops_nfs_export),
        Test::new("writable.format_interop_index", format_interop_index),
        Test::new("writable.permissions_as_other_user", permissions_as_other_user),
        Test::new("writable.permissions_default_permissions", permissions_default_permissions),
        Test::new("writable.enospc_copy_up", enospc_copy_up),
        Test::new("writable.copy_up_wait_killable", copy_up_wait_killable),
        Test::new("writable.lower_untouched_basic", lower_untouched_basic),
    ]
}

/// Upper-layer xattrs left out when the two upper directories are compared: file-handle values
/// that depend on details we compare separately (inode numbers, hard-link grouping).
const IGNORED_UPPER_XATTRS: &[&str] = &["trusted.overlay.origin", "trusted.overlay.impure", "user.overlay.origin", "user.overlay.impure"];

/// Upper-layer xattrs compared for presence and size only: overlayfs stores a random
/// per-instance uuid on the upper root (its default uuid=auto becomes uuid=on for a new upper).
const RANDOM_UPPER_XATTRS: &[&str] = &["trusted.overlay.uuid", "user.overlay.uuid"];

/// The options of both unions besides the directories: the overlayfs features unionrs does
/// not implement, off (uuid stays at its default, auto, on both).
const UNION_OPTS: &str = "index=off,redirect_dir=off,metacopy=off,xino=off";

const DEFAULT_SEED: u64 = 0x2545_f491_4f6c_dd1d;
/// Operations of the random test in the fast tier, and of its variants with other options
/// (index, redirect_dir, metacopy, rootless) in both tiers.
const FAST_OPS: usize = 3000;
/// The full tier's longer runs of the plain random test, over more seeds (the default seed
/// runs in both tiers). Sized so that `make check-full` fits in about 90 minutes under TCG.
const FULL_OPS: usize = 6000;
const FULL_SEEDS: [u64; 3] = [DEFAULT_SEED, 0x9e37_79b9_7f4a_7c15, 0xd1b5_4a32_d192_ed03];
/// The seed the variants start from in the full tier: another run than the fast tier's, so
/// that `make check-full` adds coverage instead of repeating `make check`.
const FULL_VARIANT_SEED: u64 = 0x8cb9_2ba7_2f3d_8dd7;
/// Operations between two full comparisons (and model refreshes).
const BATCH: usize = 100;
/// Fds kept open across operations, to read through them after a copy-up.
const HELD_SLOTS: usize = 4;
/// Above this many visible entries the random test stops creating new ones.
const MAX_ENTRIES: usize = 220;

// ---------------------------------------------------------------------------------------------
// Small helpers

fn base_name(rel: &[u8]) -> &[u8] {
    rel.iter().rposition(|b| *b == b'/').map_or(rel, |i| &rel[i + 1..])
}

pub(crate) fn describe<T>(r: &Result<T, i32>) -> String {
    match r {
        Ok(_) => "success".to_string(),
        Err(e) => format!("error {}", errno_name(*e)),
    }
}

/// Ok(()) or the errno of a libc call that returns -1 on failure.
fn rc(r: libc::c_int) -> Result<(), i32> {
    if r < 0 {
        Err(sys::errno())
    } else {
        Ok(())
    }
}

fn cstr_bytes(b: &[u8]) -> Result<CString, i32> {
    CString::new(b).map_err(|_| libc::EINVAL)
}

/// open(2), close-on-exec.
fn open(p: &Path, flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, i32> {
    let c = sys::cpath(p);
    // SAFETY: valid string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(sys::errno());
    }
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes all of `data` with `write(rest, done)` (a write(2)-like call for the bytes not
/// written yet), until done or a call writes nothing; how many bytes were written.
fn write_fully(data: &[u8], mut write: impl FnMut(&[u8], usize) -> isize) -> Result<usize, i32> {
    let mut done = 0;
    while done < data.len() {
        let n = write(&data[done..], done);
        if n < 0 {
            return Err(sys::errno());
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

fn pwrite_all(fd: &OwnedFd, data: &[u8], off: u64) -> Result<usize, i32> {
    // SAFETY: the buffer is valid for its length.
    write_fully(data, |rest, done| unsafe {
        libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), (off + done as u64) as libc::off_t)
    })
}

/// write(2) at the file position (O_APPEND files).
fn write_all(fd: &OwnedFd, data: &[u8]) -> Result<usize, i32> {
    // SAFETY: the buffer is valid for its length.
    write_fully(data, |rest, _| unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) })
}

fn pread_all(fd: &OwnedFd) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), out.len() as libc::off_t) };
        if n < 0 {
            return Err(sys::errno());
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// The content of a file; O_NONBLOCK so that a FIFO does not hang the test.
fn fstat(fd: &OwnedFd) -> Result<libc::stat, i32> {
    // SAFETY: zeroed stat is a valid out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    rc(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// stat(2), following symlinks.
fn stat_follow(p: &Path) -> Result<libc::stat, i32> {
    let c = sys::cpath(p);
    // SAFETY: zeroed stat is a valid out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid string and out pointer.
    rc(unsafe { libc::stat(c.as_ptr(), &mut st) })?;
    Ok(st)
}

/// Deterministic, position-dependent bytes.
pub(crate) fn pattern(fill: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 9) as u8).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

pub(crate) fn fstype_under_test() -> String {
    std::env::var("UNIONRS_FSTYPE").unwrap_or_else(|_| "unionrs".to_string())
}

/// The label of the filesystem under test in messages.
pub(crate) fn test_label(fstype: &str) -> String {
    if fstype == "overlay" {
        "overlayfs#2".to_string()
    } else {
        fstype.to_string()
    }
}

/// Mounts `fstype` over `lowers` (top first) with `upper` and `work` at `target`, with the
/// other options `more` (UNION_OPTS unless the test says otherwise).
pub(crate) fn mount_union(
    fstype: &str,
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    flags: libc::c_ulong,
    more: &str,
) -> TestResult {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let opts = format!("lowerdir={},upperdir={},workdir={},{more}", lower.join(":"), upper.display(), work.display());
    let r = sys::mount("none", target, fstype, flags, &opts);
    check!(r == 0, "mounting {fstype} at {} with {opts}: {}", target.display(), errno_name(r));
    Ok(())
}

pub(crate) fn mkdirs(p: &Path) -> TestResult {
    fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// Building layers

/// Stamps a layer, so that its times are the same on every run.
pub(crate) fn stamp_times(root: &Path, base: i64) -> TestResult {
    trees::stamp_times(root, base, &[])
}

/// The user.* xattrs the unions show from the layers (only the top layer's of a merged dir).
const FIXTURE_XATTRS: &[(&str, &str)] = &[("d1", "user.layer"), ("d1/a", "user.color"), ("empty", "user.big"), ("l1file", "user.a")];

/// Paths of the lower layers that the union hides (whiteouts, opaque dir): worth recreating.
const FIXTURE_HIDDEN: &[&str] = &["hidden", "hidden_dir", "hidden_dir/x", "opq/old1", "opq/old2"];

/// The layers of the random tests: L0 (bottom) and L1 (top).
fn build_layers(l0: &Path, l1: &Path) -> TestResult {
    build_layers_in(l0, l1, "trusted")
}

/// The random tests' layers, with overlayfs' private xattrs in namespace `ns` ("trusted", or
/// "user" for unions mounted with userxattr).
pub fn build_layers_in(l0: &Path, l1: &Path, ns: &str) -> TestResult {
    let (b, t) = (Layer::at(l0), Layer::at(l1));
    b.file("d1/a", b"alpha from L0\n")?
        .file("d1/b", &pattern(7, 200 << 10))?
        .file("d1/shadowed", b"L0 version\n")?
        .file("d1/sub/deep/x", b"x\n")?
        .file("d2/f", b"")?
        .file("d2/g", b"g in d2\n")?
        .file("empty", b"")?
        .file("small", b"small file\n")?
        .sparse("sparse", pattern)?
        .file("hl1", b"hard linked\n")?
        .hardlink("hl1", "d2/hl2")?
        .fifo("fifo")?
        .symlink("ln_rel", "d1/a")?
        .symlink("ln_dangling", "nowhere")?
        .symlink("ln_dir", "d1")?
        .file("hidden", b"hidden by a whiteout\n")?
        .file("hidden_dir/x", b"in a hidden dir\n")?
        .file("opq/old1", b"under an opaque dir\n")?
        .file("opq/old2", b"under an opaque dir too\n")?
        .file("merged2/x", b"x in L0\n")?
        .dir("em")?
        .file("owned", b"owned by 1000\n")?
        .chown("owned", 1000, 1000)?
        .chmod("owned", 0o640)?
        .file("exec", b"#!/bin/sh\n")?
        .chmod("exec", 0o755)?
        .file("private/f", b"private\n")?
        .chmod("private", 0o700)?
        .xattr("d1/a", "user.color", b"blue")?
        .xattr("d1", "user.dir", b"lower")?
        .xattr("empty", "user.big", &pattern(3, 300))?;
    t.file("d1/c", b"from L1\n")?
        .file("d1/shadowed", b"L1 version\n")?
        .xattr("d1", "user.layer", b"1")?
        .file("merged2/y", b"y in L1\n")?
        .dir("em")?
        .whiteout("hidden")?
        .whiteout("hidden_dir")?
        .dir("opq")?
        .xattr("opq", &format!("{ns}.overlay.opaque"), "y")?
        .file("opq/new", b"in the opaque dir\n")?
        .file("l1file", b"only in L1\n")?
        .xattr("l1file", "user.a", b"1")?
        .file("l1dir/f", b"in a L1 dir\n")?
        .symlink("l1link", "l1file")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Walking a tree and comparing two walks

/// Reads a tree as the writable tests compare it (named by its path in messages).
pub(crate) fn walk(root: &Path) -> Walk {
    tree::walk(&root.display().to_string(), root, &WalkOpts::default())
}

fn no_times(_: &[u8]) -> (bool, bool) {
    (false, false)
}

fn mtimes_only(_: &[u8]) -> (bool, bool) {
    (false, true)
}

/// The comparison of two upper (or work) directories: no inode numbers, link counts or times
/// (the uppers are different filesystems' objects); overlayfs' origin and impure xattrs left
/// out, its random uuid compared by size.
pub(crate) fn upper_cmp() -> Cmp<'static> {
    Cmp {
        nlink: false,
        blocks: false,
        d_type: false,
        inos: Inos::Ignore,
        dino_not_worse: false,
        links_not_worse: false,
        links: false,
        times: &no_times,
        xattr_skip: IGNORED_UPPER_XATTRS,
        xattr_presence: RANDOM_UPPER_XATTRS,
    }
}

/// The comparison of two union views; times only where `times` says so.
pub(crate) fn view_cmp<'a>(times: &'a dyn Fn(&[u8]) -> (bool, bool)) -> Cmp<'a> {
    Cmp {
        nlink: true,
        links: true,
        dino_not_worse: true,
        links_not_worse: true,
        times,
        xattr_skip: &[],
        xattr_presence: &[],
        ..upper_cmp()
    }
}

/// The comparison of a layer before and after: everything, mtimes included.
pub(crate) fn lower_cmp() -> Cmp<'static> {
    Cmp { nlink: true, times: &mtimes_only, xattr_skip: &[], xattr_presence: &[], ..upper_cmp() }
}

// ---------------------------------------------------------------------------------------------
// Operations

pub(crate) type Outcome = Result<Vec<u8>, i32>;

/// One operation of the random test; paths are relative to the union's root.
#[derive(Clone)]
pub(crate) enum Op {
    Create {
        path: Vec<u8>,
        mode: u32,
        len: usize,
        fill: u8,
    },
    Mkdir {
        path: Vec<u8>,
        mode: u32,
    },
    Mknod {
        path: Vec<u8>,
        mode: u32,
        dev: u64,
    },
    Symlink {
        target: Vec<u8>,
        path: Vec<u8>,
    },
    Link {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Unlink {
        path: Vec<u8>,
    },
    Rmdir {
        path: Vec<u8>,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
        flags: u32,
    },
    /// O_TMPFILE in `dir`, written, then linkat'ed to `to`.
    Tmpfile {
        dir: Vec<u8>,
        to: Vec<u8>,
        len: usize,
        fill: u8,
    },
    Pwrite {
        path: Vec<u8>,
        off: u64,
        len: usize,
        fill: u8,
    },
    Truncate {
        path: Vec<u8>,
        len: u64,
        via_fd: bool,
    },
    Fallocate {
        path: Vec<u8>,
        punch: bool,
        off: u64,
        len: u64,
    },
    /// Shared writable mapping, written, msync'ed.
    Mmap {
        path: Vec<u8>,
        off: u64,
        len: usize,
        fill: u8,
    },
    Fsync {
        path: Vec<u8>,
        data_only: bool,
    },
    Chmod {
        path: Vec<u8>,
        mode: u32,
    },
    Chown {
        path: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    Utimens {
        path: Vec<u8>,
        atime: (i64, i64),
        mtime: (i64, i64),
    },
    /// Explicit times for everything in a subtree (see stamp_tree).
    StampTree {
        dir: Vec<u8>,
        base: i64,
    },
    SetXattr {
        path: Vec<u8>,
        name: &'static str,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        path: Vec<u8>,
        name: &'static str,
    },
    OpenTrunc {
        path: Vec<u8>,
    },
    OpenRdwr {
        path: Vec<u8>,
    },
    Read {
        path: Vec<u8>,
    },
    Stat {
        path: Vec<u8>,
    },
    Readdir {
        path: Vec<u8>,
    },
    /// Opens `path` read-only into a held slot (closing what was there).
    Hold {
        slot: usize,
        path: Vec<u8>,
    },
    /// Reads the whole file through the fd in a held slot.
    ReadHeld {
        slot: usize,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |p: &[u8]| show(p);
        match self {
            Op::Create { path, mode, len, fill } => {
                write!(f, "open({}, O_CREAT|O_EXCL|O_WRONLY, {mode:o}) + write {len} bytes (fill {fill})", s(path))
            }
            Op::Mkdir { path, mode } => write!(f, "mkdir({}, {mode:o})", s(path)),
            Op::Mknod { path, mode, dev } => write!(f, "mknod({}, {mode:o}, {dev:#x})", s(path)),
            Op::Symlink { target, path } => write!(f, "symlink({:?}, {})", target.escape_ascii().to_string(), s(path)),
            Op::Link { from, to } => write!(f, "link({}, {})", s(from), s(to)),
            Op::Unlink { path } => write!(f, "unlink({})", s(path)),
            Op::Rmdir { path } => write!(f, "rmdir({})", s(path)),
            Op::Rename { from, to, flags } => {
                let fl = match *flags {
                    0 => "0",
                    libc::RENAME_NOREPLACE => "RENAME_NOREPLACE",
                    libc::RENAME_EXCHANGE => "RENAME_EXCHANGE",
                    libc::RENAME_WHITEOUT => "RENAME_WHITEOUT",
                    _ => "?",
                };
                write!(f, "renameat2({}, {}, {fl})", s(from), s(to))
            }
            Op::Tmpfile { dir, to, len, fill } => {
                write!(f, "open({}, O_TMPFILE|O_WRONLY) + write {len} bytes (fill {fill}) + linkat to {}", s(dir), s(to))
            }
            Op::Pwrite { path, off, len, fill } => write!(f, "pwrite({}, {len} bytes (fill {fill}) at {off})", s(path)),
            Op::Truncate { path, len, via_fd: false } => write!(f, "truncate({}, {len})", s(path)),
            Op::Truncate { path, len, via_fd: true } => write!(f, "ftruncate({}, {len})", s(path)),
            Op::Fallocate { path, punch, off, len } => {
                let mode = if *punch { "PUNCH_HOLE|KEEP_SIZE" } else { "0" };
                write!(f, "fallocate({}, {mode}, {off}, {len})", s(path))
            }
            Op::Mmap { path, off, len, fill } => write!(f, "mmap-write({}, {len} bytes (fill {fill}) at {off}) + msync", s(path)),
            Op::Fsync { path, data_only } => write!(f, "{}({})", if *data_only { "fdatasync" } else { "fsync" }, s(path)),
            Op::Chmod { path, mode } => write!(f, "chmod({}, {mode:o})", s(path)),
            Op::Chown { path, uid, gid } => write!(f, "lchown({}, {}, {})", s(path), *uid as i32, *gid as i32),
            Op::Utimens { path, atime, mtime } => {
                let t = |t: &(i64, i64)| if t.1 == libc::UTIME_OMIT { "OMIT".to_string() } else { format!("{}.{:09}", t.0, t.1) };
                write!(f, "utimensat({}, atime {}, mtime {}, AT_SYMLINK_NOFOLLOW)", s(path), t(atime), t(mtime))
            }
            Op::StampTree { dir, base } => write!(f, "utimensat of everything in {} (base {base})", s(dir)),
            Op::SetXattr { path, name, value, flags } => {
                let fl = match *flags {
                    libc::XATTR_CREATE => "XATTR_CREATE",
                    libc::XATTR_REPLACE => "XATTR_REPLACE",
                    _ => "0",
                };
                write!(f, "lsetxattr({}, {name}, {}, {fl})", s(path), show_bytes(value))
            }
            Op::RemoveXattr { path, name } => write!(f, "lremovexattr({}, {name})", s(path)),
            Op::OpenTrunc { path } => write!(f, "open({}, O_WRONLY|O_TRUNC)", s(path)),
            Op::OpenRdwr { path } => write!(f, "open({}, O_RDWR), no write", s(path)),
            Op::Read { path } => write!(f, "read({})", s(path)),
            Op::Stat { path } => write!(f, "lstat({})", s(path)),
            Op::Readdir { path } => write!(f, "readdir({})", s(path)),
            Op::Hold { slot, path } => write!(f, "hold[{slot}] = open({}, O_RDONLY)", s(path)),
            Op::ReadHeld { slot } => write!(f, "pread(hold[{slot}]) whole file"),
        }
    }
}

impl Op {
    /// The operation's name, for the summary.
    fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Mkdir { .. } => "mkdir",
            Op::Mknod { .. } => "mknod",
            Op::Symlink { .. } => "symlink",
            Op::Link { .. } => "link",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::Rename { .. } => "rename",
            Op::Tmpfile { .. } => "tmpfile",
            Op::Pwrite { .. } => "pwrite",
            Op::Truncate { .. } => "truncate",
            Op::Fallocate { .. } => "fallocate",
            Op::Mmap { .. } => "mmap",
            Op::Fsync { .. } => "fsync",
            Op::Chmod { .. } => "chmod",
            Op::Chown { .. } => "chown",
            Op::Utimens { .. } => "utimens",
            Op::StampTree { .. } => "stamp_tree",
            Op::SetXattr { .. } => "setxattr",
            Op::RemoveXattr { .. } => "removexattr",
            Op::OpenTrunc { .. } => "open_trunc",
            Op::OpenRdwr { .. } => "open_rdwr",
            Op::Read { .. } => "read",
            Op::Stat { .. } => "stat",
            Op::Readdir { .. } => "readdir",
            Op::Hold { .. } => "hold",
            Op::ReadHeld { .. } => "read_held",
        }
    }

    /// Paths whose existence (or type) the operation may change.
    fn names(&self) -> Vec<&[u8]> {
        match self {
            Op::Create { path, .. } | Op::Mkdir { path, .. } | Op::Mknod { path, .. } | Op::Symlink { path, .. } => vec![path],
            Op::Unlink { path } | Op::Rmdir { path } => vec![path],
            Op::Link { to, .. } | Op::Tmpfile { to, .. } => vec![to],
            Op::Rename { from, to, .. } => vec![from, to],
            _ => vec![],
        }
    }

    /// The path whose data (and so mtime) the operation may change, through symlinks too.
    fn data(&self) -> Option<&[u8]> {
        match self {
            Op::Pwrite { path, .. }
            | Op::Truncate { path, .. }
            | Op::Fallocate { path, .. }
            | Op::Mmap { path, .. }
            | Op::OpenTrunc { path } => Some(path),
            _ => None,
        }
    }
}

fn show_outcome(o: &Outcome) -> String {
    match o {
        Ok(v) => format!("ok {}", show_bytes(v)),
        Err(e) => format!("error {}", errno_name(*e)),
    }
}

/// Runs `op` on the union at `root`; `held` are that union's held fds.
pub(crate) fn apply(op: &Op, root: &Path, held: &mut [Option<OwnedFd>]) -> Outcome {
    let p = |rel: &[u8]| bpath(root, rel);
    let c = |rel: &[u8]| sys::cpath(&bpath(root, rel));
    let done = |r: libc::c_int| rc(r).map(|()| Vec::new());
    let wrote = |n: usize| Ok(format!("wrote {n}").into_bytes());
    match op {
        Op::Create { path, mode, len, fill } => {
            let fd = open(&p(path), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NONBLOCK, *mode)?;
            wrote(pwrite_all(&fd, &pattern(*fill, *len), 0)?)
        }
        Op::Mkdir { path, mode } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::mkdir(cp.as_ptr(), *mode) })
        }
        Op::Mknod { path, mode, dev } => match sys::mknod(&p(path), *mode, *dev) {
            0 => Ok(vec![]),
            e => Err(e),
        },
        Op::Symlink { target, path } => {
            let (t, cp) = (cstr_bytes(target)?, c(path));
            // SAFETY: valid strings.
            done(unsafe { libc::symlink(t.as_ptr(), cp.as_ptr()) })
        }
        Op::Link { from, to } => {
            let (a, b) = (c(from), c(to));
            // SAFETY: valid strings.
            done(unsafe { libc::linkat(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), 0) })
        }
        Op::Unlink { path } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::unlink(cp.as_ptr()) })
        }
        Op::Rmdir { path } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::rmdir(cp.as_ptr()) })
        }
        Op::Rename { from, to, flags } => {
            let cwd = rustix::fs::CWD;
            let flags = rustix::fs::RenameFlags::from_bits_retain(*flags as _);
            rustix::fs::renameat_with(cwd, &p(from), cwd, &p(to), flags).map(|()| Vec::new()).map_err(|e| e.raw_os_error())
        }
        Op::Tmpfile { dir, to, len, fill } => {
            let fd = open(&p(dir), libc::O_TMPFILE | libc::O_WRONLY, 0o640)?;
            let n = pwrite_all(&fd, &pattern(*fill, *len), 0)?;
            let b = c(to);
            // SAFETY: valid fd and strings; AT_EMPTY_PATH links the open file itself.
            let r = rc(unsafe { libc::linkat(fd.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::AT_EMPTY_PATH) });
            Ok(format!("wrote {n}, linkat: {}", describe(&r)).into_bytes())
        }
        Op::Pwrite { path, off, len, fill } => {
            let fd = open(&p(path), libc::O_WRONLY | libc::O_NONBLOCK, 0)?;
            wrote(pwrite_all(&fd, &pattern(*fill, *len), *off)?)
        }
        Op::Truncate { path, len, via_fd: false } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::truncate(cp.as_ptr(), *len as libc::off_t) })
        }
        Op::Truncate { path, len, via_fd: true } => {
            let fd = open(&p(path), libc::O_WRONLY | libc::O_NONBLOCK, 0)?;
            // SAFETY: valid fd.
            done(unsafe { libc::ftruncate(fd.as_raw_fd(), *len as libc::off_t) })
        }
        Op::Fallocate { path, punch, off, len } => {
            let fd = open(&p(path), libc::O_WRONLY | libc::O_NONBLOCK, 0)?;
            let mode = if *punch { libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE } else { 0 };
            // SAFETY: valid fd.
            done(unsafe { libc::fallocate(fd.as_raw_fd(), mode, *off as libc::off_t, *len as libc::off_t) })
        }
        Op::Mmap { path, off, len, fill } => mmap_write(&p(path), *off, *len, *fill),
        Op::Fsync { path, data_only } => {
            let fd = open(&p(path), libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            // SAFETY: valid fd.
            done(unsafe {
                if *data_only {
                    libc::fdatasync(fd.as_raw_fd())
                } else {
                    libc::fsync(fd.as_raw_fd())
                }
            })
        }
        Op::Chmod { path, mode } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::chmod(cp.as_ptr(), *mode) })
        }
        Op::Chown { path, uid, gid } => {
            let cp = c(path);
            // SAFETY: valid string.
            done(unsafe { libc::lchown(cp.as_ptr(), *uid, *gid) })
        }
        Op::Utimens { path, atime, mtime } => match sys::set_times(&p(path), *atime, *mtime) {
            0 => Ok(vec![]),
            e => Err(e),
        },
        Op::StampTree { dir, base } => {
            let mut n = 0;
            trees::stamp_tree(&p(dir), &p(dir), *base, &mut n, &[]).map_err(|(_, e)| e)?;
            Ok(format!("stamped {n}").into_bytes())
        }
        Op::SetXattr { path, name, value, flags } => {
            let (cp, n) = (c(path), sys::cstr(name));
            // SAFETY: valid strings; value is valid for its length.
            done(unsafe { libc::lsetxattr(cp.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), *flags) })
        }
        Op::RemoveXattr { path, name } => {
            let (cp, n) = (c(path), sys::cstr(name));
            // SAFETY: valid strings.
            done(unsafe { libc::lremovexattr(cp.as_ptr(), n.as_ptr()) })
        }
        Op::OpenTrunc { path } => open(&p(path), libc::O_WRONLY | libc::O_TRUNC | libc::O_NONBLOCK, 0).map(|_| vec![]),
        Op::OpenRdwr { path } => open(&p(path), libc::O_RDWR | libc::O_NONBLOCK, 0).map(|_| vec![]),
        Op::Read { path } => read_path(&p(path)),
        Op::Stat { path } => {
            let st = sys::lstat(&p(path))?;
            Ok(format!(
                "mode {:o} uid {} gid {} size {} nlink {} rdev {:#x}",
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_rdev
            )
            .into_bytes())
        }
        Op::Readdir { path } => {
            let mut lines = Vec::new();
            for e in fs::read_dir(p(path)).map_err(|e| errno_of(&e))? {
                let e = e.map_err(|e| errno_of(&e))?;
                let t = e.file_type().map(|t| format!("{t:?}")).unwrap_or_else(|e| errno_name(errno_of(&e)));
                lines.push(format!("{} {t}", e.file_name().as_bytes().escape_ascii()));
            }
            lines.sort();
            Ok(lines.join("\n").into_bytes())
        }
        Op::Hold { slot, path } => {
            held[*slot] = None;
            held[*slot] = Some(open(&p(path), libc::O_RDONLY | libc::O_NONBLOCK, 0)?);
            Ok(vec![])
        }
        Op::ReadHeld { slot } => {
            let fd = held[*slot].as_ref().ok_or(libc::EBADF)?;
            let st = fstat(fd)?;
            let mut out = format!("size {}: ", st.st_size).into_bytes();
            out.extend(pread_all(fd)?);
            Ok(out)
        }
    }
}

/// Writes through a shared writable mapping and msyncs it. Touching a page past EOF would
/// raise SIGBUS, so such writes are skipped, with a result that says so.
fn mmap_write(p: &Path, off: u64, len: usize, fill: u8) -> Outcome {
    let fd = open(p, libc::O_RDWR | libc::O_NONBLOCK, 0)?;
    let st = fstat(&fd)?;
    if is_fmt(&st, libc::S_IFREG) && off + len as u64 > st.st_size as u64 {
        return Ok(format!("skipped: {off}+{len} is past EOF {}", st.st_size).into_bytes());
    }
    let start = off & !4095;
    let map_len = (off + len as u64 - start) as usize;
    // SAFETY: a fresh shared mapping of an open file, checked for MAP_FAILED below.
    let addr = unsafe {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        libc::mmap(std::ptr::null_mut(), map_len, prot, libc::MAP_SHARED, fd.as_raw_fd(), start as libc::off_t)
    };
    if addr == libc::MAP_FAILED {
        return Err(sys::errno());
    }
    let data = pattern(fill, len);
    // SAFETY: the mapping covers [start, off + len), which lies within the file (checked above).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr.cast::<u8>().add((off - start) as usize), len) };
    // SAFETY: addr/map_len is the mapping made above; it is unmapped exactly once.
    let r = rc(unsafe { libc::msync(addr, map_len, libc::MS_SYNC) });
    // SAFETY: as above.
    unsafe { libc::munmap(addr, map_len) };
    r.map(|()| format!("wrote {len}").into_bytes())
}

// ---------------------------------------------------------------------------------------------
// The model the operations are drawn from

/// The keys of `map` at `rel` or below it ("": all).
fn subtree<V>(map: &BTreeMap<Vec<u8>, V>, rel: &[u8]) -> Vec<Vec<u8>> {
    if rel.is_empty() {
        return map.keys().cloned().collect();
    }
    let mut out: Vec<Vec<u8>> = map.contains_key(rel).then(|| rel.to_vec()).into_iter().collect();
    // Everything below rel sorts between "rel/" and "rel0" ('0' follows '/').
    out.extend(map.range([rel, b"/"].concat()..[rel, b"0"].concat()).map(|(k, _)| k.clone()));
    out
}

/// st_ino of `rel` itself and of what it points to, on the reference union.
fn inos_of(root: &Path, rel: &[u8]) -> Vec<u64> {
    let p = bpath(root, rel);
    [sys::lstat(&p), stat_follow(&p)].into_iter().flatten().map(|st| st.st_ino).collect()
}

/// What the random test knows of the unions, all read from the reference (overlayfs), so that
/// it is the same on every replay: the visible entries, names worth (re)creating, and the
/// paths whose times do not depend on the wall clock.
#[derive(Default)]
struct Model {
    /// Path → (file type, size).
    entries: BTreeMap<Vec<u8>, (u32, u64)>,
    /// Paths that existed once, or are hidden in the lower layers.
    ghosts: BTreeSet<Vec<u8>>,
    /// Paths whose atime and mtime were last set explicitly (the layers' stamped times, a
    /// utimensat), with the reference's st_ino then: a change of the data through another
    /// name of the same inode ends that.
    times: BTreeMap<Vec<u8>, u64>,
    /// (path, name) of xattrs set at some point: what removexattr is worth trying on.
    xattrs: BTreeSet<(Vec<u8>, &'static str)>,
}

impl Model {
    fn new(root: &Path) -> Model {
        let mut m = Model::default();
        m.refresh(root, b"");
        // The root is the fresh upper directory; everything else has the layers' times.
        let ino = |k: &Vec<u8>| Some((k.clone(), sys::lstat(&bpath(root, k)).ok()?.st_ino));
        m.times = m.entries.keys().filter(|k| !k.is_empty()).filter_map(ino).collect();
        m.ghosts = FIXTURE_HIDDEN.iter().map(|h| h.as_bytes().to_vec()).collect();
        m.xattrs = FIXTURE_XATTRS.iter().map(|(p, n)| (p.as_bytes().to_vec(), *n)).collect();
        m
    }

    /// Re-reads `rel` and everything below it from the reference union.
    fn refresh(&mut self, root: &Path, rel: &[u8]) {
        for k in subtree(&self.entries, rel) {
            self.entries.remove(&k);
            self.ghosts.insert(k);
        }
        let mut pending = vec![rel.to_vec()];
        while let Some(r) = pending.pop() {
            let p = bpath(root, &r);
            let Ok(st) = sys::lstat(&p) else { continue };
            if is_fmt(&st, libc::S_IFDIR) {
                pending.extend(names_in(&p).unwrap_or_default().iter().map(|n| join_rel(&r, n)));
            }
            self.ghosts.remove(&r);
            self.entries.insert(r, (st.st_mode & libc::S_IFMT, st.st_size as u64));
        }
        while self.ghosts.len() > 200 {
            self.ghosts.pop_first();
        }
    }

    /// Drops the deterministic-times mark of `rel`, what is below it, and its directory.
    fn forget_times(&mut self, rel: &[u8]) {
        for k in subtree(&self.times, rel) {
            self.times.remove(&k);
        }
        self.times.remove(parent_rel(rel));
    }

    /// Takes in what `op` did on the reference union; `inos` are inode numbers it may have
    /// changed, taken before it ran.
    fn update(&mut self, root: &Path, op: &Op, ok: bool, mut inos: Vec<u64>) {
        for rel in op.names() {
            self.refresh(root, rel);
            self.forget_times(rel);
        }
        if let Op::Tmpfile { dir, .. } = op {
            self.times.remove(dir.as_slice());
        }
        if let Some(rel) = op.data() {
            self.refresh(root, rel);
            inos.extend(inos_of(root, rel));
            self.times.remove(rel);
            self.times.retain(|_, ino| !inos.contains(ino));
            // The reference may show a file's hard links under other inode numbers (overlayfs
            // numbers a copied-up file by its origin only where it can follow the origin; in a
            // user namespace it cannot): a change through one name leaves the times of any
            // linked file undetermined.
            if sys::lstat(&bpath(root, rel)).is_ok_and(|st| st.st_nlink >= 2) {
                let entries = &self.entries;
                self.times.retain(|k, _| entries.get(k).is_some_and(|(t, _)| *t == libc::S_IFDIR));
            }
        }
        match op {
            Op::Utimens { path, .. } if !ok => {
                self.times.remove(path);
            }
            Op::Utimens { path, atime, mtime } if atime.1 != libc::UTIME_OMIT && mtime.1 != libc::UTIME_OMIT => {
                if let Ok(st) = sys::lstat(&bpath(root, path)) {
                    self.times.insert(path.clone(), st.st_ino);
                }
            }
            Op::StampTree { dir, .. } => {
                for k in subtree(&self.entries, dir) {
                    match sys::lstat(&bpath(root, &k)) {
                        Ok(st) if ok => self.times.insert(k, st.st_ino),
                        _ => self.times.remove(&k),
                    };
                }
            }
            Op::SetXattr { path, name, .. } if ok => {
                self.xattrs.insert((path.clone(), name));
            }
            _ => {}
        }
    }

    /// A visible entry (not the root), of type `fmt` if given and there is one.
    fn pick(&self, rng: &mut XorShift, fmt: Option<u32>) -> Vec<u8> {
        let c: Vec<&Vec<u8>> =
            self.entries.iter().filter(|(k, (t, _))| !k.is_empty() && fmt.is_none_or(|f| *t == f)).map(|(k, _)| k).collect();
        if c.is_empty() {
            return self.fresh(rng);
        }
        c[rng.below(c.len())].clone()
    }

    /// Mostly an entry of type `fmt`, sometimes any, for the errors.
    fn pick_mostly(&self, rng: &mut XorShift, fmt: u32) -> Vec<u8> {
        if rng.below(6) == 0 {
            self.pick(rng, None)
        } else {
            self.pick(rng, Some(fmt))
        }
    }

    fn pick_nondir(&self, rng: &mut XorShift) -> Vec<u8> {
        let c: Vec<&Vec<u8>> = self.entries.iter().filter(|(k, (t, _))| !k.is_empty() && *t != libc::S_IFDIR).map(|(k, _)| k).collect();
        if c.is_empty() {
            self.pick(rng, None)
        } else {
            c[rng.below(c.len())].clone()
        }
    }

    /// A directory that looks empty (not the root), else any directory.
    fn pick_empty_dir(&self, rng: &mut XorShift) -> Vec<u8> {
        let c: Vec<&Vec<u8>> = self
            .entries
            .iter()
            .filter(|(k, (t, _))| !k.is_empty() && *t == libc::S_IFDIR && subtree(&self.entries, k).len() == 1)
            .map(|(k, _)| k)
            .collect();
        if c.is_empty() {
            self.pick_mostly(rng, libc::S_IFDIR)
        } else {
            c[rng.below(c.len())].clone()
        }
    }

    /// A directory, the root included.
    fn pick_dir(&self, rng: &mut XorShift) -> Vec<u8> {
        let c: Vec<&Vec<u8>> = self.entries.iter().filter(|(_, (t, _))| *t == libc::S_IFDIR).map(|(k, _)| k).collect();
        if c.is_empty() {
            vec![]
        } else {
            c[rng.below(c.len())].clone()
        }
    }

    /// A name that is probably free: one that existed before, or a name from a small pool
    /// (which does collide now and then).
    fn fresh(&self, rng: &mut XorShift) -> Vec<u8> {
        if rng.below(3) == 0 {
            let is_dir = |rel: &[u8]| matches!(self.entries.get(rel), Some((t, _)) if *t == libc::S_IFDIR);
            let g: Vec<&Vec<u8>> = self.ghosts.iter().filter(|g| !self.entries.contains_key(*g) && is_dir(parent_rel(g))).collect();
            if !g.is_empty() {
                return g[rng.below(g.len())].clone();
            }
        }
        let d = self.pick_dir(rng);
        join_rel(&d, format!("n{}", rng.below(12)).as_bytes())
    }

    /// Where something new goes: mostly a fresh name, sometimes an existing entry.
    fn target(&self, rng: &mut XorShift) -> Vec<u8> {
        if rng.below(3) == 0 {
            self.pick(rng, None)
        } else {
            self.fresh(rng)
        }
    }

    fn size(&self, rel: &[u8]) -> u64 {
        self.entries.get(rel).map_or(0, |e| e.1)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Create,
    Mkdir,
    Mknod,
    Symlink,
    Link,
    Tmpfile,
    Unlink,
    Rmdir,
    Rename,
    Pwrite,
    Truncate,
    Fallocate,
    Mmap,
    Fsync,
    Chmod,
    Chown,
    Utimens,
    StampTree,
    SetXattr,
    RemoveXattr,
    OpenTrunc,
    OpenRdwr,
    Read,
    Stat,
    Readdir,
    Hold,
    ReadHeld,
}

/// (kind, weight, whether it adds an entry: those pause while the tree is at MAX_ENTRIES).
const KINDS: &[(Kind, usize, bool)] = &[
    (Kind::Create, 6, true),
    (Kind::Mkdir, 4, true),
    (Kind::Mknod, 2, true),
    (Kind::Symlink, 3, true),
    (Kind::Link, 3, true),
    (Kind::Tmpfile, 2, true),
    (Kind::Unlink, 6, false),
    (Kind::Rmdir, 3, false),
    (Kind::Rename, 9, false),
    (Kind::Pwrite, 8, false),
    (Kind::Truncate, 4, false),
    (Kind::Fallocate, 3, false),
    (Kind::Mmap, 3, false),
    (Kind::Fsync, 2, false),
    (Kind::Chmod, 3, false),
    (Kind::Chown, 3, false),
    (Kind::Utimens, 5, false),
    (Kind::StampTree, 2, false),
    (Kind::SetXattr, 4, false),
    (Kind::RemoveXattr, 2, false),
    (Kind::OpenTrunc, 2, false),
    (Kind::OpenRdwr, 3, false),
    (Kind::Read, 6, false),
    (Kind::Stat, 3, false),
    (Kind::Readdir, 3, false),
    (Kind::Hold, 3, false),
    (Kind::ReadHeld, 4, false),
];

/// A file offset: the start, inside, just past EOF, or anywhere in the first 300 KB.
fn offset(rng: &mut XorShift, size: u64) -> u64 {
    match rng.below(4) {
        0 => 0,
        1 => rng.below(size as usize + 1) as u64,
        2 => size + rng.below(20_000) as u64,
        _ => rng.below(300_000) as u64,
    }
}

fn timestamp(rng: &mut XorShift) -> (i64, i64) {
    (1_000_000_000 + rng.below(400_000_000) as i64, rng.below(1_000_000_000) as i64)
}

/// A symlink target for `path`. Never "..", never an absolute path that exists: operations
/// that follow symlinks must stay inside the union (the layers are next to it).
fn symlink_target(rng: &mut XorShift, m: &Model, path: &[u8]) -> Vec<u8> {
    let dir = parent_rel(path);
    let siblings: Vec<&[u8]> = m.entries.keys().filter(|k| !k.is_empty() && parent_rel(k) == dir).map(|k| base_name(k)).collect();
    match rng.below(5) {
        0 => b"/nonexistent-unionrs-target".to_vec(),
        1 => base_name(path).to_vec(),
        2 if !siblings.is_empty() => [rng.pick(&siblings), b"/n1"].concat(),
        _ if !siblings.is_empty() => rng.pick(&siblings).to_vec(),
        _ => format!("n{}", rng.below(12)).into_bytes(),
    }
}

/// The next operation: a function of the generator state and the model only.
fn gen(rng: &mut XorShift, m: &Model) -> Op {
    let grow = m.entries.len() < MAX_ENTRIES;
    let weight = |k: &(Kind, usize, bool)| if k.2 && !grow { 0 } else { k.1 };
    let mut r = rng.below(KINDS.iter().map(weight).sum());
    let mut kind = Kind::Read;
    for k in KINDS {
        if r < weight(k) {
            kind = k.0;
            break;
        }
        r -= weight(k);
    }
    let reg = libc::S_IFREG;
    let fill = rng.next() as u8;
    // The last three are on lower objects in the layers.
    const XATTRS: [&str; 6] = ["user.a", "user.b", "user.c", "user.color", "user.big", "user.layer"];
    match kind {
        Kind::Create => {
            let path = m.target(rng);
            let mode = rng.pick(&[0o644, 0o600, 0o755, 0o4755, 0o640]);
            Op::Create { path, mode, len: rng.pick(&[0, 1, 100, 4096, 5000, 70_000]), fill }
        }
        Kind::Mkdir => Op::Mkdir { path: m.target(rng), mode: rng.pick(&[0o755, 0o700, 0o2775, 0o1777]) },
        Kind::Mknod => {
            // Mostly FIFOs; sometimes a 0/0 char device, which is the whiteout format: a union
            // refuses to create one.
            let mode = if rng.below(5) == 0 { libc::S_IFCHR | 0o644 } else { libc::S_IFIFO | 0o644 };
            Op::Mknod { path: m.target(rng), mode, dev: 0 }
        }
        Kind::Symlink => {
            let path = m.target(rng);
            Op::Symlink { target: symlink_target(rng, m, &path), path }
        }
        Kind::Link => {
            let from = m.pick_mostly(rng, reg);
            Op::Link { from, to: m.target(rng) }
        }
        Kind::Tmpfile => {
            let dir = m.pick_dir(rng);
            Op::Tmpfile { dir, to: m.fresh(rng), len: rng.pick(&[0, 10, 5000]), fill }
        }
        Kind::Unlink => Op::Unlink { path: if rng.below(6) == 0 { m.pick(rng, None) } else { m.pick_nondir(rng) } },
        Kind::Rmdir => Op::Rmdir { path: if rng.below(2) == 0 { m.pick_empty_dir(rng) } else { m.pick_mostly(rng, libc::S_IFDIR) } },
        Kind::Rename => {
            let (n, e, w) = (libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE, libc::RENAME_WHITEOUT);
            let flags = rng.pick(&[0, 0, 0, 0, n, n, e, e, w]);
            let from = m.pick(rng, None);
            let to = if flags == e && rng.below(4) != 0 { m.pick(rng, None) } else { m.target(rng) };
            Op::Rename { from, to, flags }
        }
        Kind::Pwrite => {
            let path = m.pick_mostly(rng, reg);
            let off = offset(rng, m.size(&path));
            let any = 1 + rng.below(9000);
            let len = rng.pick(&[1, 100, 4096, any]);
            Op::Pwrite { path, off, len, fill }
        }
        Kind::Truncate => {
            let path = m.pick_mostly(rng, reg);
            let size = m.size(&path);
            let (past, any) = (size + rng.below(50_000) as u64, rng.below(300_000) as u64);
            let len = rng.pick(&[0, size / 2, size, size + 1, past, any]);
            Op::Truncate { path, len, via_fd: rng.below(2) == 0 }
        }
        Kind::Fallocate => {
            let path = m.pick_mostly(rng, reg);
            let off = offset(rng, m.size(&path));
            Op::Fallocate { path, punch: rng.below(2) == 0, off, len: 1 + rng.below(20_000) as u64 }
        }
        Kind::Mmap => {
            let path = m.pick_mostly(rng, reg);
            let size = m.size(&path);
            let (off, len) = if size == 0 {
                (0, 1)
            } else {
                let off = rng.below(size as usize) as u64;
                (off, 1 + rng.below((size - off).min(8192) as usize))
            };
            Op::Mmap { path, off, len, fill }
        }
        Kind::Fsync => Op::Fsync { path: m.pick(rng, None), data_only: rng.below(2) == 0 },
        Kind::Chmod => {
            let path = m.pick(rng, None);
            Op::Chmod { path, mode: rng.pick(&[0o644, 0o600, 0o755, 0o700, 0o4755, 0o2755, 0o1777, 0, 0o444, 0o640]) }
        }
        Kind::Chown => {
            let ids = [0, 1000, 1001, 65_534, u32::MAX];
            Op::Chown { path: m.pick(rng, None), uid: rng.pick(&ids), gid: rng.pick(&ids) }
        }
        Kind::Utimens => {
            let path = m.pick(rng, None);
            let atime = if rng.below(6) == 0 { (0, libc::UTIME_OMIT) } else { timestamp(rng) };
            Op::Utimens { path, atime, mtime: timestamp(rng) }
        }
        Kind::StampTree => {
            // Often the whole tree: most later operations then have times to compare.
            let dir = if rng.below(3) == 0 { vec![] } else { m.pick_dir(rng) };
            Op::StampTree { dir, base: 1_000_000_000 + rng.below(400_000_000) as i64 }
        }
        Kind::SetXattr => {
            let path = m.pick(rng, None);
            let name = rng.pick(&XATTRS);
            let value = pattern(fill, rng.pick(&[0, 3, 40, 300]));
            Op::SetXattr { path, name, value, flags: rng.pick(&[0, 0, libc::XATTR_CREATE, libc::XATTR_REPLACE]) }
        }
        Kind::RemoveXattr => {
            let known: Vec<&(Vec<u8>, &'static str)> = m.xattrs.iter().collect();
            if !known.is_empty() && rng.below(3) != 0 {
                let (path, name) = known[rng.below(known.len())].clone();
                Op::RemoveXattr { path, name }
            } else {
                Op::RemoveXattr { path: m.pick(rng, None), name: rng.pick(&XATTRS) }
            }
        }
        Kind::OpenTrunc => Op::OpenTrunc { path: m.pick_mostly(rng, reg) },
        Kind::OpenRdwr => Op::OpenRdwr { path: m.pick_mostly(rng, reg) },
        Kind::Read => Op::Read { path: m.pick_mostly(rng, reg) },
        Kind::Stat => Op::Stat { path: m.pick(rng, None) },
        Kind::Readdir => Op::Readdir { path: m.pick_dir(rng) },
        Kind::Hold => Op::Hold { slot: rng.below(HELD_SLOTS), path: m.pick_mostly(rng, reg) },
        Kind::ReadHeld => Op::ReadHeld { slot: rng.below(HELD_SLOTS) },
    }
}

// ---------------------------------------------------------------------------------------------
// Running operations on both unions

/// The fixed part of a random test: the layers (on a noatime tmpfs, so that reads never
/// change a time) and the two mount points.
pub(crate) struct Env {
    pub(crate) fstype: String,
    pub(crate) base: PathBuf,
    /// Top first.
    pub(crate) lowers: Vec<PathBuf>,
    /// The reference (overlayfs) and the filesystem under test.
    pub(crate) mnt: [PathBuf; 2],
    /// Both unions' options besides the directories.
    pub(crate) opts: String,
    /// Options of the union under test only (one overlayfs does not have): the upper
    /// directories are then written differently, so only the views are compared.
    pub(crate) test_opts: String,
}

impl Env {
    /// The options of the union under test.
    fn all_test_opts(&self) -> String {
        match self.test_opts.is_empty() {
            true => self.opts.clone(),
            false => format!("{},{}", self.opts, self.test_opts),
        }
    }
}

pub(crate) fn build_env(s: &mut Scratch, fstype: &str) -> Result<Env, String> {
    build_env_with(s, fstype, build_layers)
}

/// The random tests' setup, with the two lower layers (bottom, top) made by `layers`.
fn build_env_with(s: &mut Scratch, fstype: &str, layers: fn(&Path, &Path) -> TestResult) -> Result<Env, String> {
    let base = s.dir("fs");
    s.track(&base);
    let r = sys::mount("wr-layers", &base, "tmpfs", libc::MS_NOATIME, "mode=0755");
    check!(r == 0, "mounting a noatime tmpfs at {}: {}", base.display(), errno_name(r));
    let (l0, l1) = (base.join("l0"), base.join("l1"));
    mkdirs(&l0)?;
    mkdirs(&l1)?;
    layers(&l0, &l1)?;
    stamp_times(&l0, 1_100_000_000)?;
    stamp_times(&l1, 1_200_000_000)?;
    let mnt = [s.dir("ma"), s.dir("mb")];
    for m in &mnt {
        s.track(m);
    }
    Ok(Env { fstype: fstype.to_string(), base, lowers: vec![l1, l0], mnt, opts: UNION_OPTS.to_string(), test_opts: String::new() })
}

/// One union of a random test; unmounted (held fds closed first) on drop.
pub(crate) struct Side {
    pub(crate) label: String,
    pub(crate) mnt: PathBuf,
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    /// What it is mounted as, and with which options.
    fstype: String,
    opts: String,
    held: Vec<Option<OwnedFd>>,
    mounted: bool,
}

impl Side {
    fn mount(env: &Env, fstype: &str, label: String, mnt: &Path, dir: &Path, tag: &str, opts: &str) -> Result<Side, String> {
        let (upper, work) = (dir.join(format!("upper-{tag}")), dir.join(format!("work-{tag}")));
        mkdirs(&upper)?;
        mkdirs(&work)?;
        // noatime: reads must not change times, which are compared.
        mount_union(fstype, mnt, &env.lowers, &upper, &work, libc::MS_NOATIME, opts)?;
        Ok(Side {
            label,
            mnt: mnt.to_path_buf(),
            upper,
            work,
            fstype: fstype.to_string(),
            opts: opts.to_string(),
            held: (0..HELD_SLOTS).map(|_| None).collect(),
            mounted: true,
        })
    }

    pub(crate) fn close_held(&mut self) {
        self.held.iter_mut().for_each(|h| *h = None);
    }

    pub(crate) fn unmount(&mut self) -> TestResult {
        self.close_held();
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let r = sys::umount(&self.mnt);
        check!(r == 0, "unmounting {} at {}: {}", self.label, self.mnt.display(), errno_name(r));
        Ok(())
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Both unions of a random test, with the model of the reference.
pub(crate) struct Runner {
    pub(crate) sides: [Side; 2],
    model: Model,
    /// Operations applied so far.
    done: usize,
    /// Per operation name: how often it was applied, and the reference's errnos (0: success).
    pub(crate) stats: BTreeMap<&'static str, (usize, BTreeMap<i32, usize>)>,
    /// The views' `st_blocks` are compared too (with metacopy: a metacopy file's are its
    /// lower data's).
    blocks: bool,
    /// Both unions write their upper directories alike (the same options), so those are
    /// compared too.
    uppers_alike: bool,
}

impl Runner {
    /// Mounts both unions on fresh upper and work directories (`attempt` tells them apart).
    pub(crate) fn start(env: &Env, attempt: usize) -> Result<Runner, String> {
        let dir = env.base.join(format!("run{attempt}"));
        let a = Side::mount(env, "overlay", "overlayfs".to_string(), &env.mnt[0], &dir, "ref", &env.opts)?;
        let b = Side::mount(env, &env.fstype, test_label(&env.fstype), &env.mnt[1], &dir, "test", &env.all_test_opts())?;
        let model = Model::new(&a.mnt);
        let blocks = env.opts.contains("metacopy=on");
        let uppers_alike = env.test_opts.is_empty();
        Ok(Runner { sides: [a, b], model, done: 0, stats: BTreeMap::new(), blocks, uppers_alike })
    }

    /// Applies `op` to both unions; Err describes differing results.
    pub(crate) fn step(&mut self, op: &Op) -> TestResult {
        let root = self.sides[0].mnt.clone();
        let inos = op.data().map(|rel| inos_of(&root, rel)).unwrap_or_default();
        let [a, b] = &mut self.sides;
        if std::env::var_os("UNIONRS_TRACE").is_some() {
            println!("unionrs-op: #{} {op}", self.done + 1);
        }
        let (mut ra, mut rb) = (apply(op, &a.mnt, &mut a.held), apply(op, &b.mnt, &mut b.held));
        if !self.uppers_alike && matches!(op, Op::Stat { .. }) {
            // A directory's size is its upper directory's, which holds what the options add
            // (OCI markers, say): not compared then, as in `check`.
            for r in [&mut ra, &mut rb] {
                if let Ok(out) = r {
                    *out = without_dir_size(out);
                }
            }
        }
        self.done += 1;
        let st = self.stats.entry(op.name()).or_default();
        st.0 += 1;
        *st.1.entry(*ra.as_ref().err().unwrap_or(&0)).or_default() += 1;
        self.model.update(&root, op, ra.is_ok(), inos);
        if self.done.is_multiple_of(BATCH) {
            self.model.refresh(&root, b"");
        }
        if ra == rb {
            return Ok(());
        }
        let detail = match (&ra, &rb) {
            (Ok(x), Ok(y)) => format!(" ({})", bytes_diff(x, y)),
            _ => String::new(),
        };
        Err(format!(
            "operation #{} {op}: {} {}, {} {}{detail}",
            self.done,
            self.sides[0].label,
            show_outcome(&ra),
            self.sides[1].label,
            show_outcome(&rb)
        ))
    }

    /// Compares the two union views and the two upper directories.
    pub(crate) fn check(&self) -> Vec<String> {
        let [a, b] = &self.sides;
        let times = |rel: &[u8]| {
            let t = self.model.times.contains_key(rel);
            (t, t)
        };
        let (la, lb) = (format!("{} view", a.label), format!("{} view", b.label));
        let cmp = Cmp { blocks: self.blocks, ..view_cmp(&times) };
        let (mut wa, mut wb) = (walk(&a.mnt), walk(&b.mnt));
        if !self.uppers_alike {
            // A directory's size is its upper directory's, which holds what the options add
            // (OCI markers, say): not compared then.
            for w in [&mut wa, &mut wb] {
                blank_dir_sizes(w);
            }
        }
        let mut out = diff_trees(&la, &wa, &lb, &wb, &cmp);
        if self.uppers_alike {
            let (la, lb) = (format!("{} upper", a.label), format!("{} upper", b.label));
            out.extend(diff_trees(&la, &walk(&a.upper), &lb, &walk(&b.upper), &upper_cmp()));
        }
        out
    }
}

/// Leaves directory sizes out of a walk's comparison (a directory's size is its top layer's).
pub(crate) fn blank_dir_sizes(w: &mut Walk) {
    w.nodes.values_mut().filter(|n| is_fmt(&n.st, libc::S_IFDIR)).for_each(|n| n.st.st_size = 0);
}

/// `Op::Stat`'s outcome ("mode OCTAL uid ... size N ...") with the size left out if it is a
/// directory's (setgid and sticky directories too: "mode 42755", "mode 41777").
fn without_dir_size(stat: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stat);
    let mut words: Vec<&str> = text.split(' ').collect();
    let mode = words.get(1).and_then(|m| u32::from_str_radix(m, 8).ok());
    if words.first() != Some(&"mode") || mode.is_none_or(|m| m & libc::S_IFMT != libc::S_IFDIR) {
        return stat.to_vec();
    }
    if let Some(i) = words.iter().position(|w| *w == "size") {
        if let Some(n) = words.get_mut(i + 1) {
            *n = "-";
        }
    }
    words.join(" ").into_bytes()
}

fn show_names(names: &[Vec<u8>]) -> String {
    names.iter().map(|n| n.escape_ascii().to_string()).collect::<Vec<_>>().join(", ")
}

/// What `work/` of a work directory holds beyond what overlayfs itself keeps there: one 0/0
/// whiteout, which it hard-links to make whiteouts. Empty if that is all.
fn work_leftovers(work: &Path) -> Result<Vec<String>, String> {
    let dir = work.join("work");
    let names = names_in(&dir).map_err(|e| format!("reading {}: {}", dir.display(), errno_name(e)))?;
    let mut shared_whiteout = false;
    let mut out = vec![];
    for n in names {
        let p = dir.join(OsStr::from_bytes(&n));
        // A volatile mount's marker (compared between the two sides by `check_workdirs`).
        if n == b"incompat" && names_in(&p).is_ok_and(|n| n == [b"volatile".to_vec()]) {
            continue;
        }
        match sys::lstat(&p) {
            Ok(st) if is_fmt(&st, libc::S_IFCHR) && st.st_rdev == 0 && !shared_whiteout => shared_whiteout = true,
            Ok(st) => out.push(format!("{} ({}, {} bytes)", n.escape_ascii(), kind(&st), st.st_size)),
            Err(e) => out.push(format!("{} (lstat: {})", n.escape_ascii(), errno_name(e))),
        }
    }
    Ok(out)
}

/// Problems with `work/` of a work directory, for messages.
fn check_work(label: &str, work: &Path) -> Option<String> {
    match work_leftovers(work) {
        Ok(l) if l.is_empty() => None,
        Ok(l) => Some(format!("{label}: leftovers in workdir/work: {}", l.join(", "))),
        Err(e) => Some(format!("{label}: {e}")),
    }
}

/// The work directories of both unions have the same entries, and nothing left in `work/`.
pub(crate) fn check_workdirs(sides: &[Side; 2], when: &str) -> Vec<String> {
    let mut out = vec![];
    let tops: Vec<Result<Vec<Vec<u8>>, i32>> = sides.iter().map(|s| names_in(&s.work)).collect();
    if tops[0] != tops[1] {
        let t = |r: &Result<Vec<Vec<u8>>, i32>| {
            r.as_ref().map_or_else(|e| format!("error {}", errno_name(*e)), |n| format!("[{}]", show_names(n)))
        };
        out.push(format!("{when}: workdir entries: {} {}, {} {}", sides[0].label, t(&tops[0]), sides[1].label, t(&tops[1])));
    }
    out.extend(sides.iter().filter_map(|s| check_work(&s.label, &s.work)).map(|p| format!("{when}: {p}")));
    // With `volatile`: both keep its marker, with the same contents.
    let markers: Vec<Result<Vec<Vec<u8>>, i32>> = sides.iter().map(|s| names_in(&s.work.join("work/incompat/volatile"))).collect();
    if markers[0] != markers[1] {
        let t = |r: &Result<Vec<Vec<u8>>, i32>| {
            r.as_ref().map_or_else(|e| format!("error {}", errno_name(*e)), |n| format!("[{}]", show_names(n)))
        };
        out.push(format!("{when}: volatile marker: {} {}, {} {}", sides[0].label, t(&markers[0]), sides[1].label, t(&markers[1])));
    }
    // With index=on: the same index entries (named by the lower inodes' file handles), apart
    // from temporaries (overlayfs keeps its shared whiteout there).
    let entries: Vec<Result<Vec<Vec<u8>>, i32>> = sides
        .iter()
        .map(|s| names_in(&s.work.join("index")).map(|n| n.into_iter().filter(|n| n.first() != Some(&b'#')).collect()))
        .collect();
    if entries[0] != entries[1] {
        let t = |r: &Result<Vec<Vec<u8>>, i32>| {
            r.as_ref().map_or_else(|e| format!("error {}", errno_name(*e)), |n| format!("[{}]", show_names(n)))
        };
        out.push(format!("{when}: index entries: {} {}, {} {}", sides[0].label, t(&entries[0]), sides[1].label, t(&entries[1])));
    }
    out
}

/// Replays `ops` on fresh uppers, comparing each result and then both trees. Returns the
/// length of the failing prefix (at most ops.len()) with what differed, or None.
fn replay(env: &Env, ops: &[Op], attempt: &mut usize) -> Result<Option<(usize, Vec<String>)>, String> {
    *attempt += 1;
    let mut r = Runner::start(env, *attempt)?;
    for op in ops {
        if let Err(d) = r.step(op) {
            return Ok(Some((r.done, vec![d])));
        }
    }
    let d = r.check();
    Ok((!d.is_empty()).then_some((ops.len(), d)))
}

/// Bisects over the number of operations for the shortest prefix of `ops` that still fails
/// (`lo` operations passed a full check), and describes it.
fn shrink(env: &Env, seed: u64, ops: &[Op], mut lo: usize, first: Vec<String>, attempt: &mut usize) -> String {
    let seen_at = ops.len();
    println!("unionrs-writable: seed {seed:#x}: difference after {seen_at} operations, looking for the shortest failing prefix");
    let (mut hi, mut diffs, mut note) = (seen_at, first, String::new());
    match replay(env, ops, attempt) {
        Ok(Some((at, d))) => (hi, diffs) = (at, d),
        Ok(None) => note = " (NOT reproduced by a replay from scratch; showing the first run)".to_string(),
        Err(e) => note = format!(" (replay failed: {e})"),
    }
    if hi <= lo {
        lo = 0;
    }
    let mut rounds = 0;
    while note.is_empty() && hi > lo + 1 && rounds < 24 {
        rounds += 1;
        let mid = lo + (hi - lo) / 2;
        progress(&format!("shrinking: replaying {mid} operations (known: {lo} pass, {hi} fail)"));
        match replay(env, &ops[..mid], attempt) {
            Ok(Some((at, d))) => {
                (hi, diffs) = (at, d);
                if hi <= lo {
                    lo = 0;
                }
            }
            Ok(None) => lo = mid,
            Err(e) => note = format!(" (replay failed: {e})"),
        }
    }
    let from = hi.saturating_sub(10);
    let last: Vec<String> = ops[from..hi].iter().enumerate().map(|(i, op)| format!("  #{}: {op}", from + i + 1)).collect();
    format!(
        "seed {seed:#x}: first difference after {seen_at} operations; shortest failing prefix: {hi} operations{note} \
         (rerun: UNIONRS_SEED={seed:#x} UNIONRS_OPS={hi})\nlast operations of that prefix:\n{}\ndifferences:\n{}",
        last.join("\n"),
        first_lines(&diffs)
    )
}

/// Runs `nops` random operations from `seed` on both unions, comparing every result, and the
/// trees every BATCH operations and at the end. Returns the still mounted unions, or the
/// shortest failing prefix.
fn run_random(env: &Env, seed: u64, nops: usize, name: &str) -> Result<Runner, String> {
    let mut attempt = 0;
    let mut runner = Runner::start(env, attempt)?;
    let d = runner.check();
    if !d.is_empty() {
        return Err(format!("seed {seed:#x}: the unions differ before any operation:\n{}", first_lines(&d)));
    }
    let mut rng = XorShift::seeded(seed);
    let mut ops: Vec<Op> = Vec::with_capacity(nops);
    let mut last_good = 0;
    for i in 1..=nops {
        let op = gen(&mut rng, &runner.model);
        let mut failure = runner.step(&op).err().map(|d| vec![d]);
        ops.push(op);
        if failure.is_none() && (i.is_multiple_of(BATCH) || i == nops) {
            let d = runner.check();
            if d.is_empty() {
                last_good = i;
            } else {
                failure = Some(d);
            }
        }
        if let Some(first) = failure {
            drop(runner);
            return Err(shrink(env, seed, &ops, last_good, first, &mut attempt));
        }
        if i.is_multiple_of(500) {
            let m = &runner.model;
            progress(&format!("{name}: {i} operations, {} entries, {} with compared times", m.entries.len(), m.times.len()));
        }
    }
    // How many operations did something, so that a weak mix shows.
    let stats: Vec<String> = runner
        .stats
        .iter()
        .map(|(n, (all, errs))| {
            let e: Vec<String> = errs.iter().filter(|(e, _)| **e != 0).map(|(e, c)| format!("{}: {c}", errno_name(*e))).collect();
            format!("{n} {}/{all} [{}]", errs.get(&0).unwrap_or(&0), e.join(" "))
        })
        .collect();
    println!("unionrs-writable: {name}: succeeded/applied on overlayfs [errors]: {}", stats.join(", "));
    println!("unionrs-writable: {name}: {} entries, {} with compared times", runner.model.entries.len(), runner.model.times.len());
    Ok(runner)
}

/// The seed and the length of the plain random test (UNIONRS_SEED and UNIONRS_OPS override
/// them).
pub(crate) fn seed_and_ops() -> (u64, usize) {
    let ops = match crate::tier() {
        crate::Tier::Fast => FAST_OPS,
        crate::Tier::Full => FULL_OPS,
    };
    (env_u64("UNIONRS_SEED").unwrap_or(DEFAULT_SEED), env_u64("UNIONRS_OPS").map_or(ops, |n| n as usize))
}

/// The seed and the length of a variant of the random test with other options: FAST_OPS in
/// both tiers, another seed in the full tier (UNIONRS_SEED and UNIONRS_OPS override them).
pub(crate) fn variant_seed_and_ops() -> (u64, usize) {
    let seed = match crate::tier() {
        crate::Tier::Fast => DEFAULT_SEED,
        crate::Tier::Full => FULL_VARIANT_SEED,
    };
    (env_u64("UNIONRS_SEED").unwrap_or(seed), env_u64("UNIONRS_OPS").map_or(FAST_OPS, |n| n as usize))
}

/// A variant of the random test: the random test's layers in scratch directory `scratch`, both
/// unions mounted with `opts`, the variant's seed mixed with `seed_mix` (so that variants do
/// not all run the same operations).
pub(crate) fn random_ops_variant(scratch: &str, opts: &str, seed_mix: u64) -> TestResult {
    random_ops_variant_ops(scratch, opts, seed_mix, variant_seed_and_ops().1)
}

/// [`random_ops_variant`] with `nops` operations (UNIONRS_OPS still overrides them).
pub(crate) fn random_ops_variant_ops(scratch: &str, opts: &str, seed_mix: u64, nops: usize) -> TestResult {
    let fstype = fstype_under_test();
    let seed = variant_seed_and_ops().0;
    let nops = env_u64("UNIONRS_OPS").map_or(nops, |n| n as usize);
    let mut s = Scratch::new(scratch);
    let mut env = build_env(&mut s, &fstype)?;
    env.opts = opts.to_string();
    random_ops_in(&env, seed ^ seed_mix, nops)
}

// ---------------------------------------------------------------------------------------------
// 1. Random operations, compared with overlayfs

fn random_ops_differential() -> TestResult {
    let (seed, nops) = seed_and_ops();
    random_ops(seed, nops)
}

/// The full tier's more seeds (UNIONRS_SEED, if set, replaces them).
fn random_ops_more_seeds() -> TestResult {
    let (seed, nops) = seed_and_ops();
    let seeds = if std::env::var_os("UNIONRS_SEED").is_some() { vec![seed] } else { FULL_SEEDS[1..].to_vec() };
    seeds.into_iter().try_for_each(|seed| random_ops(seed, nops))
}

/// The options of the unions with the inodes index (and xino, which it goes with).
const INDEX_OPTS: &str = "index=on,redirect_dir=off,metacopy=off,xino=on";

/// The differential with `index=on,xino=on`: lower hard links are copied up through the
/// index, names linked up, counted and removed; the index directories must agree.
fn random_ops_index_xino() -> TestResult {
    random_ops_variant("wr_random_index", INDEX_OPTS, 0x1de5)
}

/// The differential with `index=on,nfs_export=on`: every copy-up goes through the index
/// (directories get entries of their own), removals leave whiteouts there; the index
/// directories must agree.
fn random_ops_nfs_export() -> TestResult {
    random_ops_variant("wr_random_nfs", "index=on,nfs_export=on,redirect_dir=off,metacopy=off,xino=on", 0xf5e7)
}

fn random_ops(seed: u64, nops: usize) -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("wr_random");
    let env = build_env(&mut s, &fstype)?;
    random_ops_in(&env, seed, nops)
}

/// The random test's layers `l0` and `l1` under `base`, with user.overlay.* markers, for
/// unions mounted with userxattr.
pub fn build_userxattr_layers(base: &Path) -> TestResult {
    let (l0, l1) = (base.join("l0"), base.join("l1"));
    mkdirs(&l0)?;
    mkdirs(&l1)?;
    build_layers_in(&l0, &l1, "user")?;
    stamp_times(&l0, 1_100_000_000)?;
    stamp_times(&l1, 1_200_000_000)
}

/// The random-operation differential in a user namespace (rootless.rs runs it there): layers
/// `l0` and `l1` under `base` (which the caller owns), both unions mounted with userxattr.
pub fn random_ops_userxattr(base: &Path) -> TestResult {
    let fstype = fstype_under_test();
    let mnt = [base.join("ma"), base.join("mb")];
    for m in &mnt {
        mkdirs(m)?;
    }
    let (seed, nops) = variant_seed_and_ops();
    let opts = crate::rootless::OPTS.to_string();
    let env = Env { fstype, base: base.to_path_buf(), lowers: vec![base.join("l1"), base.join("l0")], mnt, opts, test_opts: String::new() };
    random_ops_in(&env, seed, nops)
}

/// The OCI layer tool (scripts/oci-layer), as the guest sees the host's build of it.
pub(crate) const OCI_LAYER_TOOL: &str = "/host/scripts/oci-layer/target/release/unionrs-oci-layer";

/// Each side's upper directory written as an OCI layer by the tool: applied onto the lower
/// layers, the layer must give that union's view (`--verify ... --view`).
fn check_oci_export(env: &Env, sides: &[Side]) -> Vec<String> {
    let lowers = env.lowers.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(":");
    sides
        .iter()
        .filter_map(|side| {
            let layer = env.base.join(format!("layer-{}.tar", side.label));
            let mut cmd = std::process::Command::new(OCI_LAYER_TOOL);
            cmd.arg(&side.upper).arg("-o").arg(&layer).args(["--lowers", &lowers, "--verify", &lowers]).arg("--view").arg(&side.mnt);
            if side.opts.contains("userxattr") {
                cmd.arg("--userxattr");
            }
            if side.opts.contains("whiteout=oci") {
                cmd.arg("--oci-whiteouts");
            }
            if side.fstype == "overlay" {
                // Its names of one inode may differ in number (see `Cmp::links_not_worse`).
                cmd.arg("--view-may-split-links");
            }
            let out = cmd.output();
            let _ = fs::remove_file(&layer);
            match out {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!(
                    "the {} upper as an OCI layer ({}): {}{}",
                    side.label,
                    o.status,
                    first_lines(&String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect::<Vec<_>>()),
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => Some(format!("cannot run {OCI_LAYER_TOOL}: {e}")),
            }
        })
        .collect()
}

pub(crate) fn random_ops_in(env: &Env, seed: u64, nops: usize) -> TestResult {
    let fstype = &env.fstype;
    let lowers_before: Vec<Walk> = env.lowers.iter().map(|l| walk(l)).collect();
    progress(&format!(
        "random_ops: seed {seed:#x}, {nops} operations, {} ({}) against overlayfs ({})",
        test_label(fstype),
        env.all_test_opts(),
        env.opts
    ));
    let mut runner = run_random(env, seed, nops, "random_ops")?;

    runner.sides.iter_mut().for_each(Side::close_held);
    let mut diffs = check_workdirs(&runner.sides, "after the operations");
    diffs.extend(check_oci_export(env, &runner.sides));
    for side in &mut runner.sides {
        if let Err(e) = side.unmount() {
            diffs.push(e);
        }
    }
    diffs.extend(check_workdirs(&runner.sides, "after unmounting"));
    for (l, before) in env.lowers.iter().zip(&lowers_before) {
        let label = l.display().to_string();
        diffs.extend(diff_trees(&format!("{label} before"), before, &format!("{label} after"), &walk(l), &lower_cmp()));
    }
    verdict(diffs).map_err(|e| format!("seed {seed:#x}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// 2. Each filesystem mounts the upper layer the other one wrote

fn format_interop() -> TestResult {
    format_interop_with(UNION_OPTS, "wr_interop")
}

/// The same with `index=on`: each mounts the other's upper and work directories, index
/// included.
fn format_interop_index() -> TestResult {
    format_interop_with(INDEX_OPTS, "wr_interop_index")
}

pub(crate) fn format_interop_with(opts: &str, scratch: &str) -> TestResult {
    let fstype = fstype_under_test();
    let (seed, nops) = seed_and_ops();
    let (seed, nops) = (seed ^ 0x9e37_79b9_7f4a_7c15, nops.min(300));
    let mut s = Scratch::new(scratch);
    let mut env = build_env(&mut s, &fstype)?;
    env.opts = opts.to_string();
    progress(&format!("interop: seed {seed:#x}, {nops} operations first"));
    let runner = run_random(&env, seed, nops, "interop")?;
    verdict(swap_uppers(&env, runner)).map_err(|e| format!("seed {seed:#x}: {e}"))
}

/// Unmounts both unions of `runner` and mounts each over the other's upper and work
/// directories: each view must be what the other showed, and both must agree.
pub(crate) fn swap_uppers(env: &Env, runner: Runner) -> Vec<String> {
    let fstype = &env.fstype;
    let times: BTreeSet<Vec<u8>> = runner.model.times.keys().cloned().collect();
    let times = |rel: &[u8]| {
        let t = times.contains(rel);
        (t, t)
    };
    let [a, b] = &runner.sides;
    let before = [walk(&a.mnt), walk(&b.mnt)];
    let dirs = [(a.upper.clone(), a.work.clone()), (b.upper.clone(), b.work.clone())];
    let test = test_label(fstype);
    drop(runner);

    // Swapped: overlayfs over the tested filesystem's upper, and the other way round.
    if let Err(e) = mount_union("overlay", &env.mnt[0], &env.lowers, &dirs[1].0, &dirs[1].1, libc::MS_NOATIME, &env.opts) {
        return vec![e];
    }
    if let Err(e) = mount_union(fstype, &env.mnt[1], &env.lowers, &dirs[0].0, &dirs[0].1, libc::MS_NOATIME, &env.opts) {
        let _ = sys::umount(&env.mnt[0]);
        return vec![e];
    }
    let after = [walk(&env.mnt[0]), walk(&env.mnt[1])];
    let cmp = view_cmp(&times);
    let across_remount = Cmp { dino_not_worse: false, ..view_cmp(&times) };
    let over_test = format!("overlayfs over {test}'s upper");
    let test_over = format!("{test} over overlayfs' upper");
    let mut diffs = diff_trees(&format!("{test} before unmounting"), &before[1], &over_test, &after[0], &across_remount);
    diffs.extend(diff_trees("overlayfs before unmounting", &before[0], &test_over, &after[1], &across_remount));
    diffs.extend(diff_trees(&over_test, &after[0], &test_over, &after[1], &cmp));
    for m in &env.mnt {
        let r = sys::umount(m);
        if r != 0 {
            diffs.push(format!("unmounting {}: {}", m.display(), errno_name(r)));
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// 3. Copy-up into a full upper filesystem

/// (filesystem type, label) of the reference and of the filesystem under test.
fn both_fs(fstype: &str) -> [(String, String); 2] {
    [("overlay".to_string(), "overlayfs".to_string()), (fstype.to_string(), test_label(fstype))]
}

/// A union of the fixed tests.
struct Plain {
    label: String,
    mnt: PathBuf,
    upper: PathBuf,
    work: PathBuf,
}

/// After a failed copy-up of `big`: the union still shows the lower file, and neither the
/// upper nor the work directory keeps anything of the attempt.
fn no_partial_copy(sd: &Plain, big: &[u8]) -> Vec<String> {
    let mut out = vec![];
    match read_path(&sd.mnt.join("big")) {
        Ok(c) if c == big => {}
        Ok(c) => out.push(format!("the union's big differs from the lower file: {}", bytes_diff(&c, big))),
        Err(e) => out.push(format!("reading big: {}", errno_name(e))),
    }
    match sys::lstat(&sd.upper.join("big")) {
        Err(libc::ENOENT) => {}
        Ok(st) => out.push(format!("the upper holds big ({}, {} bytes)", kind(&st), st.st_size)),
        Err(e) => out.push(format!("lstat upper/big: {}", errno_name(e))),
    }
    let w = walk(&sd.upper);
    out.extend(w.problems.iter().map(|p| format!("walking the upper: {p}")));
    for (rel, n) in &w.nodes {
        if rel != b"big" && is_fmt(&n.st, libc::S_IFREG) && n.st.st_size > 0 {
            out.push(format!("the upper holds {} ({} bytes)", show(rel), n.st.st_size));
        }
    }
    out.extend(check_work("workdir", &sd.work));
    out
}

/// The state letter (`R`, `S`, `D`, ...) and wait channel of process `pid`.
fn task_state(pid: u32) -> Option<(char, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    Some((state, wchan))
}

/// A task waiting for another's copy-up of the same file can be killed: the wait is
/// interruptible (overlayfs' `mutex_lock_interruptible`), not a `D` state that lasts the whole
/// copy (unkillable, and a hung-task report for a big enough file).
fn copy_up_wait_killable() -> TestResult {
    const SIZE: i64 = 512 << 20;
    let mut s = Scratch::new("wr_killable");
    let (low, up, mnt) = (s.dir("low"), s.dir("up"), s.dir("mnt"));
    let (upper, work) = (up.join("u"), up.join("w"));
    mkdirs(&upper)?;
    mkdirs(&work)?;
    // Written, not allocated: tmpfs reports fallocated pages as holes, which a copy skips.
    let mut f = fs::File::create(low.join("big")).map_err(|e| e.to_string())?;
    let chunk = vec![0xa5u8; 1 << 20];
    for _ in 0..SIZE >> 20 {
        std::io::Write::write_all(&mut f, &chunk).map_err(|e| e.to_string())?;
    }
    drop(f);
    mount_union(&fstype_under_test(), &mnt, &[low], &upper, &work, 0, UNION_OPTS)?;
    s.track(&mnt);
    // Two shells ready to open the file for appending (which copies it up) as soon as they
    // read a line: forking and starting one takes longer than some copies.
    let open_for_append = || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("read go; exec 3>>{}", mnt.join("big").display()))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())
    };
    let go = |c: &mut std::process::Child| -> TestResult {
        let stdin = c.stdin.as_mut().ok_or("no stdin")?;
        std::io::Write::write_all(stdin, b"go\n").map_err(|e| e.to_string())
    };
    let (mut copier, mut waiter) = (open_for_append()?, open_for_append()?);
    // The copy is unnamed until it is complete (an O_TMPFILE, as in overlayfs), so its start
    // shows as space taken on the upper filesystem.
    let free_bytes = || crate::sys::statvfs(&up).map(|v| v.f_bfree as u64 * v.f_frsize as u64).map_err(errno_name);
    let free_before = free_bytes()?;
    // Both are waiting for their line.
    for c in [&copier, &waiter] {
        let pid = c.id();
        let mut tries = 0;
        while !task_state(pid).is_some_and(|(state, _)| state == 'S') {
            tries += 1;
            check!(tries < 2000, "the shell {pid} did not get ready");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    go(&mut copier)?;
    let mut seen = String::new();
    let mut released = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut outcome = Err("the first copy-up ended before a second opener was seen waiting for it: nothing was tested".to_string());
    while std::time::Instant::now() < deadline {
        if copier.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        if !released {
            // The second opener only once the first one's copy is under way (some of its data
            // is written), so that it is the one that waits.
            if free_before.saturating_sub(free_bytes()?) >= 4 << 20 {
                go(&mut waiter)?;
                released = true;
            }
            continue;
        }
        if let Some((state, wchan)) = task_state(waiter.id()) {
            seen = format!("state {state}, waiting in {wchan:?}");
            // Blocked in the module: the lock functions are scheduler code, which the wait
            // channel skips, so it names the copy-up that waits for the lock (the other
            // opener holds it) or our helper that takes it.
            // A waiter that is still running (spinning on the lock while its owner runs) has
            // not settled into its wait yet: look again.
            if (wchan.contains("unionrs") || wchan.contains("copy_up")) && state != 'R' {
                outcome = if state == 'S' {
                    Ok(())
                } else {
                    Err(format!("the second opener waits for the copy-up in state {state}, not interruptibly"))
                };
                break;
            }
        }
    }
    let mut result = outcome;
    let _ = waiter.kill();
    let _ = waiter.wait();
    // Killed while the copy still runs: its wait ended early.
    if result.is_ok() && copier.try_wait().map_err(|e| e.to_string())?.is_some() {
        result = Err("the copy-up ended before the killed waiter did: the kill did not cut its wait short".into());
    }
    let status = copier.wait().map_err(|e| e.to_string())?;
    check!(status.success(), "the copy-up's opener failed: {status}");
    let size = fs::metadata(mnt.join("big")).map_err(|e| e.to_string())?.len();
    check!(size == SIZE as u64, "after the copy-up the file has {size} bytes, want {SIZE}");
    result.map_err(|e| format!("{e} (last seen: {seen})"))
}

fn enospc_copy_up() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("wr_enospc");
    let low = s.dir("low");
    let big = pattern(11, 4 << 20);
    Layer::at(&low).file("big", &big)?.file("small", b"small\n")?.file("d/a", b"a\n")?.file("d/b", b"b\n")?;
    let mut sides = vec![];
    for (i, (fs_type, label)) in both_fs(&fstype).into_iter().enumerate() {
        // Each union gets its own 1 MiB filesystem for upper and work.
        let up = s.dir(&format!("up{i}"));
        s.track(&up);
        let r = sys::mount("wr-small", &up, "tmpfs", 0, "size=1m,mode=0755");
        check!(r == 0, "mounting a 1 MiB tmpfs at {}: {}", up.display(), errno_name(r));
        let (upper, work) = (up.join("u"), up.join("w"));
        mkdirs(&upper)?;
        mkdirs(&work)?;
        let mnt = s.dir(&format!("m{i}"));
        s.track(&mnt);
        mount_union(&fs_type, &mnt, std::slice::from_ref(&low), &upper, &work, 0, UNION_OPTS)?;
        sides.push(Plain { label, mnt, upper, work });
    }

    type Step = (&'static str, fn(&Path) -> Result<(), i32>);
    let steps: [Step; 3] = [
        ("open(big, O_WRONLY)", |m| open(&m.join("big"), libc::O_WRONLY, 0).map(drop)),
        ("appending a byte to big", |m| write_all(&open(&m.join("big"), libc::O_WRONLY | libc::O_APPEND, 0)?, b"!").map(drop)),
        ("truncate(big, 4 MiB + 1)", |m| {
            let c = sys::cpath(&m.join("big"));
            // SAFETY: valid string.
            rc(unsafe { libc::truncate(c.as_ptr(), (4 << 20) + 1) })
        }),
    ];
    let mut problems = vec![];
    for (what, step) in steps {
        let results: Vec<Result<(), i32>> = sides.iter().map(|sd| step(&sd.mnt)).collect();
        if results[0] != results[1] {
            problems.push(format!("{what}: {} {}, {} {}", sides[0].label, describe(&results[0]), sides[1].label, describe(&results[1])));
        }
        for (sd, r) in sides.iter().zip(&results) {
            if *r != Err(libc::ENOSPC) {
                problems.push(format!("{}: {what}: {}, want ENOSPC", sd.label, describe(r)));
            }
            problems.extend(no_partial_copy(sd, &big).into_iter().map(|p| format!("{}: after {what}: {p}", sd.label)));
        }
    }

    // A copy-up that fits still works.
    for sd in &sides {
        let r = open(&sd.mnt.join("d/a"), libc::O_WRONLY | libc::O_APPEND, 0).and_then(|fd| write_all(&fd, b"x\n"));
        if let Err(e) = r {
            problems.push(format!("{}: appending to d/a after the failures: {}", sd.label, errno_name(e)));
        }
        for (what, p) in [("the union's", sd.mnt.join("d/a")), ("the upper's", sd.upper.join("d/a"))] {
            match read_path(&p) {
                Ok(c) if c == b"a\nx\n" => {}
                other => {
                    let got = other.map_or_else(errno_name, |c| show_bytes(&c));
                    problems.push(format!("{}: {what} d/a: {got}, want \"a\\nx\\n\"", sd.label));
                }
            }
        }
        problems.extend(check_work(&format!("{}: after copying d/a up", sd.label), &sd.work));
    }
    let (la, lb) = (format!("{} upper", sides[0].label), format!("{} upper", sides[1].label));
    problems.extend(diff_trees(&la, &walk(&sides[0].upper), &lb, &walk(&sides[1].upper), &upper_cmp()));
    verdict(problems)
}

// ---------------------------------------------------------------------------------------------
// 4. The basic semantics, spelt out

const F_CONTENT: &[u8] = b"lower f\n";
const H_CONTENT: &[u8] = b"lower h, renamed\n";

fn is_whiteout(p: &Path) -> Result<bool, i32> {
    sys::lstat(p).map(|st| is_fmt(&st, libc::S_IFCHR) && st.st_rdev == 0)
}

/// Runs the fixed sequence on one union, checking each step's expected effect on the union and
/// on its upper directory; `lower_f` is the lower f's lstat.
fn basic_semantics(label: &str, m: &Path, u: &Path, lower_f: &libc::stat) -> Vec<String> {
    let mut out = vec![];
    let mut want = |ok: bool, what: String| {
        if !ok {
            out.push(format!("{label}: {what}"));
        }
    };
    let path_op = |f: unsafe extern "C" fn(*const libc::c_char) -> libc::c_int, rel: &str| {
        let c = sys::cpath(&m.join(rel));
        // SAFETY: valid string.
        rc(unsafe { f(c.as_ptr()) })
    };
    let rename = |from: &str, to: &str| {
        let (a, b) = (sys::cpath(&m.join(from)), sys::cpath(&m.join(to)));
        // SAFETY: valid strings.
        rc(unsafe { libc::rename(a.as_ptr(), b.as_ptr()) })
    };

    // Opening for writing copies the whole file up, with mode, owner and times.
    let r = open(&m.join("f"), libc::O_WRONLY, 0).map(drop);
    want(r.is_ok(), format!("open(f, O_WRONLY): {}", describe(&r)));
    match sys::lstat(&u.join("f")) {
        Ok(st) => {
            want(st.st_mode == lower_f.st_mode, format!("upper f mode {:o}, lower {:o}", st.st_mode, lower_f.st_mode));
            want(
                (st.st_uid, st.st_gid) == (lower_f.st_uid, lower_f.st_gid),
                format!("upper f owner {}:{}, lower {}:{}", st.st_uid, st.st_gid, lower_f.st_uid, lower_f.st_gid),
            );
            want(
                (st.st_mtime, st.st_mtime_nsec) == (lower_f.st_mtime, lower_f.st_mtime_nsec),
                format!("upper f mtime {}.{:09}, lower {}.{:09}", st.st_mtime, st.st_mtime_nsec, lower_f.st_mtime, lower_f.st_mtime_nsec),
            );
        }
        Err(e) => want(false, format!("no upper f after open(O_WRONLY): {}", errno_name(e))),
    }
    let c = read_path(&u.join("f"));
    want(c.as_deref() == Ok(F_CONTENT), format!("upper f after the copy-up: {}", c.map_or_else(errno_name, |c| show_bytes(&c))));
    let r = open(&m.join("f"), libc::O_WRONLY | libc::O_APPEND, 0).and_then(|fd| write_all(&fd, b"more\n"));
    want(r.is_ok(), format!("appending to f: {}", describe(&r)));
    let grown = [F_CONTENT, b"more\n"].concat();
    for (what, p) in [("union", m.join("f")), ("upper", u.join("f"))] {
        let c = read_path(&p);
        want(c.as_ref() == Ok(&grown), format!("{what} f after appending: {}", c.map_or_else(errno_name, |c| show_bytes(&c))));
    }

    // Unlinking a lower file leaves a whiteout.
    let r = path_op(libc::unlink, "g");
    want(r.is_ok(), format!("unlink(g): {}", describe(&r)));
    want(sys::lstat(&m.join("g")).err() == Some(libc::ENOENT), "g still visible after unlink".to_string());
    want(is_whiteout(&u.join("g")) == Ok(true), format!("upper g is not a whiteout: {:?}", is_whiteout(&u.join("g"))));

    // A merged directory emptied and removed is a whiteout; made again, it is opaque.
    let r = path_op(libc::unlink, "em/x");
    want(r.is_ok(), format!("unlink(em/x): {}", describe(&r)));
    let r = path_op(libc::rmdir, "em");
    want(r.is_ok(), format!("rmdir(em) of the emptied merged dir: {}", describe(&r)));
    want(is_whiteout(&u.join("em")) == Ok(true), format!("upper em after rmdir is not a whiteout: {:?}", is_whiteout(&u.join("em"))));
    let c = sys::cpath(&m.join("em"));
    // SAFETY: valid string.
    let r = rc(unsafe { libc::mkdir(c.as_ptr(), 0o755) });
    want(r.is_ok(), format!("mkdir(em) over the whiteout: {}", describe(&r)));
    let opaque = sys::lgetxattr(&u.join("em"), b"trusted.overlay.opaque");
    want(opaque.as_deref() == Ok(b"y"), format!("upper em trusted.overlay.opaque: {}", opaque.map_or_else(errno_name, |v| show_bytes(&v))));
    let names = names_in(&m.join("em"));
    want(names == Ok(vec![]), format!("the new em lists {}", names.map_or_else(errno_name, |n| show_names(&n))));

    // Removing an xattr or ACL that a lower object does not have fails without copying it up
    // (a layer without ACLs answers EOPNOTSUPP to the ACL).
    for rel in ["ldir/x", "ldir"] {
        for (name, want_err) in [("user.absent", &[libc::ENODATA][..]), ("system.posix_acl_access", &[libc::ENODATA, libc::EOPNOTSUPP])] {
            let (c, n) = (sys::cpath(&m.join(rel)), sys::cstr(name));
            // SAFETY: valid strings.
            let r = rc(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) });
            let names: Vec<String> = want_err.iter().map(|&e| errno_name(e)).collect();
            want(
                r.is_err_and(|e| want_err.contains(&e)),
                format!("lremovexattr({rel}, {name}): {}, want {}", describe(&r), names.join(" or ")),
            );
            want(sys::lstat(&u.join(rel)).err() == Some(libc::ENOENT), format!("upper {rel} exists after lremovexattr({rel}, {name})"));
        }
    }

    // A merged directory with entries cannot be removed; lower directories cannot be renamed
    // without redirect_dir.
    let r = path_op(libc::rmdir, "merged");
    want(r == Err(libc::ENOTEMPTY), format!("rmdir(merged): {}, want ENOTEMPTY", describe(&r)));
    for dir in ["ldir", "merged"] {
        let r = rename(dir, &format!("{dir}2"));
        want(r == Err(libc::EXDEV), format!("rename({dir}, {dir}2): {}, want EXDEV", describe(&r)));
    }

    // Renaming a lower file copies it up under the new name and whites the old one out.
    let r = rename("h", "h2");
    want(r.is_ok(), format!("rename(h, h2): {}", describe(&r)));
    want(sys::lstat(&m.join("h")).err() == Some(libc::ENOENT), "h still visible after the rename".to_string());
    want(is_whiteout(&u.join("h")) == Ok(true), format!("upper h is not a whiteout: {:?}", is_whiteout(&u.join("h"))));
    for (what, p) in [("union", m.join("h2")), ("upper", u.join("h2"))] {
        let c = read_path(&p);
        want(c.as_deref() == Ok(H_CONTENT), format!("{what} h2: {}", c.map_or_else(errno_name, |c| show_bytes(&c))));
    }
    out
}

fn lower_untouched_basic() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("wr_basic");
    let (l0, l1) = (s.dir("l0"), s.dir("l1"));
    Layer::at(&l0)
        .file("f", F_CONTENT)?
        .chown("f", 1000, 1001)?
        .chmod("f", 0o640)?
        .file("g", b"g\n")?
        .file("h", H_CONTENT)?
        .file("merged/a", b"a\n")?
        .file("em/x", b"x\n")?
        .file("ldir/x", b"x\n")?;
    Layer::at(&l1).file("merged/b", b"b\n")?.dir("em")?;
    stamp_times(&l0, 1_300_000_000)?;
    stamp_times(&l1, 1_310_000_000)?;
    let lowers = [l1.clone(), l0.clone()];
    let before: Vec<Walk> = lowers.iter().map(|l| walk(l)).collect();
    let lower_f = sys::lstat(&l0.join("f")).map_err(|e| format!("lstat lower f: {}", errno_name(e)))?;

    let mut sides = vec![];
    for (i, (fs_type, label)) in both_fs(&fstype).into_iter().enumerate() {
        let (upper, work, mnt) = (s.dir(&format!("u{i}")), s.dir(&format!("w{i}")), s.dir(&format!("m{i}")));
        s.track(&mnt);
        mount_union(&fs_type, &mnt, &lowers, &upper, &work, 0, UNION_OPTS)?;
        sides.push(Plain { label, mnt, upper, work });
    }
    // overlayfs first: if it fails an expectation, the expectation is wrong.
    let mut problems = vec![];
    for sd in &sides {
        problems.extend(basic_semantics(&sd.label, &sd.mnt, &sd.upper, &lower_f));
    }
    let (a, b) = (&sides[0], &sides[1]);
    let (la, lb) = (format!("{} view", a.label), format!("{} view", b.label));
    problems.extend(diff_trees(&la, &walk(&a.mnt), &lb, &walk(&b.mnt), &view_cmp(&no_times)));
    let (la, lb) = (format!("{} upper", a.label), format!("{} upper", b.label));
    problems.extend(diff_trees(&la, &walk(&a.upper), &lb, &walk(&b.upper), &upper_cmp()));
    problems.extend(sides.iter().filter_map(|sd| check_work(&sd.label, &sd.work)));
    for (l, b) in lowers.iter().zip(&before) {
        let label = l.display().to_string();
        problems.extend(diff_trees(&format!("{label} before"), b, &format!("{label} after"), &walk(l), &lower_cmp()));
    }
    verdict(problems)
}

// ---------------------------------------------------------------------------------------------
// 5. Another user's view: permission checks, compared with overlayfs

/// The user the permission test acts as: not root and in none of the layers' groups.
const OTHER_UID: u32 = 1000;
const OTHER_GID: u32 = 1000;
/// The group of the layers' files in that test.
const LAYER_GID: u32 = 2000;

/// Layers for the permission test: owners, modes and directories that make each check matter.
fn build_perm_layers(l0: &Path, l1: &Path) -> TestResult {
    let (b, t) = (Layer::at(l0), Layer::at(l1));
    let owned = |l: &Layer, rel: &str, mode: u32, uid: u32| -> TestResult {
        l.chown(rel, uid, if uid == OTHER_UID { OTHER_GID } else { LAYER_GID })?.chmod(rel, mode)?;
        Ok(())
    };
    for (rel, data, mode, uid) in [
        ("perm/ro", "readable\n", 0o644, 0),
        ("perm/private", "secret\n", 0o600, 0),
        ("perm/shared", "shared\n", 0o666, 0),
        ("perm/writeonly", "write only\n", 0o622, 0),
        ("perm/mine", "mine\n", 0o644, OTHER_UID),
        ("perm/closed/f", "in a closed dir\n", 0o644, 0),
        ("perm/closed/w", "writable in a closed dir\n", 0o666, 0),
        ("perm/open/f", "in an open dir\n", 0o644, 0),
        ("perm/sticky/rootfile", "root's\n", 0o666, 0),
        ("perm/sticky/userfile", "the user's\n", 0o644, OTHER_UID),
        ("perm/nosearch/f", "behind a dir without x\n", 0o644, 0),
        ("perm/listonly/f", "behind a dir with r only\n", 0o644, 0),
        ("perm/searchonly/f", "behind a dir with x only\n", 0o644, 0),
    ] {
        b.file(rel, data.as_bytes())?;
        owned(&b, rel, mode, uid)?;
    }
    for (rel, mode, uid) in [
        ("perm/closed", 0o755, 0),
        ("perm/open", 0o777, 0),
        ("perm/sticky", 0o1777, 0),
        ("perm/nosearch", 0o700, 0),
        ("perm/listonly", 0o744, 0),
        ("perm/searchonly", 0o711, 0),
        ("perm/setgid", 0o2777, 0),
        ("perm", 0o755, 0),
    ] {
        b.dir(rel)?;
        owned(&b, rel, mode, uid)?;
    }
    b.dir("perm/mydir")?;
    owned(&b, "perm/mydir", 0o755, OTHER_UID)?;
    // The user's own file in a group the user is not in, set-group-ID: a change by the user
    // must drop the bit (CVE-2016-7097 was an ACL change that kept it).
    b.file("perm/sgid_mine", b"set-group-ID\n")?.chown("perm/sgid_mine", OTHER_UID, LAYER_GID)?.chmod("perm/sgid_mine", 0o2775)?;
    // Merged directories: the top layer's modes and owners win.
    t.file("perm/open/top", b"top layer\n")?.dir("perm/closed")?.dir("perm/open")?.dir("perm/setgid")?;
    owned(&t, "perm/open/top", 0o644, 0)?;
    // A directory whose only entry is hidden by an xattr whiteout (the top layer's copy of
    // the name carries overlay.whiteout in an "x"-opaque directory): empty to every user,
    // though only an admin may read trusted.* xattrs.
    b.file("perm/open/xw/victim", b"hidden\n")?;
    t.opaque("perm/open/xw", "x")?.file("perm/open/xw/victim", b"")?.xattr("perm/open/xw/victim", "trusted.overlay.whiteout", b"")?;
    owned(&t, "perm/closed", 0o755, 0)?;
    owned(&t, "perm/open", 0o777, 0)?;
    owned(&t, "perm/setgid", 0o2777, 0)?;
    owned(&t, "perm", 0o755, 0)?;
    Ok(())
}

const ACL_ACCESS: &str = "system.posix_acl_access";

/// A `system.posix_acl_access` value: rwx for the owner, r-x for user `uid`, the group and
/// others (the kernel's xattr format: a version, then sorted tag/permission/id entries).
fn acl_with_user(uid: u32) -> Vec<u8> {
    const UNDEFINED_ID: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] =
        [(0x01, 7, UNDEFINED_ID), (0x02, 5, uid), (0x04, 5, UNDEFINED_ID), (0x10, 7, UNDEFINED_ID), (0x20, 5, UNDEFINED_ID)];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// What the other user does, each with the outcome overlayfs gives (comments) for the reader;
/// the test compares with overlayfs itself.
fn perm_ops() -> Vec<Op> {
    let p = |s: &str| s.as_bytes().to_vec();
    let create = |s: &str| Op::Create { path: p(s), mode: 0o644, len: 5, fill: 3 };
    let acl = acl_with_user(3000);
    vec![
        Op::Read { path: p("perm/ro") },                                                                // ok
        Op::Read { path: p("perm/private") },                                                           // EACCES
        Op::Hold { slot: 0, path: p("perm/private") },                                                  // EACCES
        Op::OpenRdwr { path: p("perm/ro") },                                                            // EACCES
        Op::OpenTrunc { path: p("perm/ro") },                                                           // EACCES
        Op::Truncate { path: p("perm/ro"), len: 1, via_fd: false },                                     // EACCES
        Op::Mmap { path: p("perm/ro"), off: 0, len: 4, fill: 1 },                                       // EACCES
        Op::Pwrite { path: p("perm/shared"), off: 3, len: 5, fill: 9 },                                 // copy-up
        Op::Pwrite { path: p("perm/writeonly"), off: 0, len: 3, fill: 8 },                              // copy-up
        Op::Pwrite { path: p("perm/closed/w"), off: 1, len: 2, fill: 7 },                               // copy-up
        Op::Fallocate { path: p("perm/shared"), punch: false, off: 0, len: 8192 },                      // ok
        Op::Chmod { path: p("perm/ro"), mode: 0o666 },                                                  // EPERM
        Op::Chmod { path: p("perm/mine"), mode: 0o2600 },                                               // ok
        Op::Chown { path: p("perm/mine"), uid: OTHER_UID, gid: LAYER_GID },                             // EPERM
        Op::Chown { path: p("perm/ro"), uid: OTHER_UID, gid: OTHER_GID },                               // EPERM
        Op::Utimens { path: p("perm/ro"), atime: (5, 0), mtime: (6, 0) },                               // EPERM
        Op::Utimens { path: p("perm/mine"), atime: (5, 0), mtime: (6, 0) },                             // ok
        Op::Utimens { path: p("perm/ro"), atime: (0, libc::UTIME_NOW), mtime: (0, libc::UTIME_NOW) },   // EACCES
        Op::SetXattr { path: p("perm/ro"), name: "user.a", value: p("v"), flags: 0 },                   // EACCES
        Op::SetXattr { path: p("perm/mine"), name: "user.a", value: p("v"), flags: 0 },                 // ok
        Op::SetXattr { path: p("perm/mine"), name: "trusted.a", value: p("v"), flags: 0 },              // EPERM
        Op::SetXattr { path: p("perm/sgid_mine"), name: ACL_ACCESS, value: acl, flags: 0 },             // ok, sgid dropped
        create("perm/closed/new"),                                                                      // EACCES
        Op::Mkdir { path: p("perm/closed/d"), mode: 0o755 },                                            // EACCES
        Op::Symlink { target: p("x"), path: p("perm/closed/l") },                                       // EACCES
        Op::Unlink { path: p("perm/closed/f") },                                                        // EACCES
        Op::Rename { from: p("perm/closed/f"), to: p("perm/open/g"), flags: 0 },                        // EACCES
        Op::Tmpfile { dir: p("perm/closed"), to: p("perm/closed/t"), len: 4, fill: 2 },                 // EACCES
        create("perm/open/new"),                                                                        // ok
        Op::Unlink { path: p("perm/open/f") },                                                          // whiteout
        Op::Unlink { path: p("perm/open/top") },                                                        // ok
        Op::Mkdir { path: p("perm/open/d"), mode: 0o700 },                                              // ok
        Op::Rename { from: p("perm/open/new"), to: p("perm/open/new2"), flags: 0 },                     // ok
        Op::Rmdir { path: p("perm/open/d") },                                                           // ok
        Op::Readdir { path: p("perm/open/xw") },                                                        // ok, empty
        Op::Tmpfile { dir: p("perm/open"), to: p("perm/open/t"), len: 4, fill: 2 },                     // ok
        Op::Mknod { path: p("perm/open/fifo"), mode: libc::S_IFIFO | 0o644, dev: 0 },                   // ok
        Op::Mknod { path: p("perm/open/null"), mode: libc::S_IFCHR | 0o666, dev: libc::makedev(1, 3) }, // EPERM
        Op::Link { from: p("perm/ro"), to: p("perm/open/ro_link") },                                    // as fs.protected_hardlinks says
        Op::Unlink { path: p("perm/sticky/rootfile") },                                                 // EPERM
        Op::Rename { from: p("perm/sticky/rootfile"), to: p("perm/sticky/x"), flags: 0 },               // EPERM
        Op::Unlink { path: p("perm/sticky/userfile") },                                                 // ok
        Op::Stat { path: p("perm/nosearch/f") },                                                        // EACCES
        Op::Readdir { path: p("perm/nosearch") },                                                       // EACCES
        Op::Readdir { path: p("perm/listonly") },                                                       // ok (names only)
        Op::Stat { path: p("perm/listonly/f") },                                                        // EACCES
        Op::Readdir { path: p("perm/searchonly") },                                                     // EACCES
        Op::Stat { path: p("perm/searchonly/f") },                                                      // ok
        create("perm/mydir/x"),                                                                         // ok
        Op::Chmod { path: p("perm/mydir"), mode: 0o2700 },                                              // ok
        create("perm/setgid/x"),                                                                        // ok, group 2000
        Op::Mkdir { path: p("perm/setgid/d"), mode: 0o755 },                                            // ok, setgid kept
        Op::Stat { path: p("perm/setgid/x") },
        Op::Stat { path: p("perm/setgid/d") },
    ]
}

/// Runs `f` in a thread whose filesystem ids are the other user's (setfsuid and setfsgid are
/// per thread, and a non-zero fsuid drops the file capabilities from the effective set).
fn as_other_user<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, String> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            // SAFETY: plain system calls that change this thread's credentials only.
            unsafe {
                libc::setfsgid(OTHER_GID);
                libc::setfsuid(OTHER_UID);
            }
            // setfsuid reports no error: check that it took.
            // SAFETY: as above; an invalid id (-1) only queries.
            let now = unsafe { libc::setfsuid(u32::MAX) };
            if now != OTHER_UID as i32 {
                return Err(format!("setfsuid({OTHER_UID}) did not take: fsuid is {now}"));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "the other user's thread panicked".to_string())?
    })
}

fn permissions_as_other_user() -> TestResult {
    permissions_as_other_user_with("wr_perm", UNION_OPTS)
}

/// The same with `default_permissions` on both (which overlayfs 7.2 takes and shows, and
/// whose checks it makes as without it).
fn permissions_default_permissions() -> TestResult {
    permissions_as_other_user_with("wr_perm_default", &format!("{UNION_OPTS},default_permissions"))
}

fn permissions_as_other_user_with(scratch: &str, opts: &str) -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new(scratch);
    let mut env = build_env_with(&mut s, &fstype, build_perm_layers)?;
    env.opts = opts.to_string();
    let lowers_before: Vec<Walk> = env.lowers.iter().map(|l| walk(l)).collect();
    let mut runner = Runner::start(&env, 0)?;
    let ops = perm_ops();
    as_other_user(|| ops.iter().try_for_each(|op| runner.step(op)))??;
    // The fixture must make the checks matter: many operations refused, many done.
    let count = |f: fn(i32) -> bool| -> usize {
        runner.stats.values().flat_map(|(_, errs)| errs.iter()).filter(|(e, _)| f(**e)).map(|(_, n)| n).sum()
    };
    let (refused, done) = (count(|e| e == libc::EACCES || e == libc::EPERM), count(|e| e == 0));
    check!(
        refused >= 15 && done >= 15,
        "overlayfs refused {refused} and did {done} of the operations: the fixture does not exercise permissions"
    );
    let mut diffs = runner.check();
    runner.sides.iter_mut().for_each(Side::close_held);
    diffs.extend(check_workdirs(&runner.sides, "after the operations"));
    drop(runner);
    for (l, before) in env.lowers.iter().zip(&lowers_before) {
        let label = l.display().to_string();
        diffs.extend(diff_trees(&format!("{label} before"), before, &format!("{label} after"), &walk(l), &lower_cmp()));
    }
    verdict(diffs)
}

#[cfg(test)]
mod tests {
    use super::without_dir_size;

    #[test]
    fn dir_sizes_left_out_also_of_setgid_and_sticky_dirs() {
        let out = |s: &str| String::from_utf8(without_dir_size(s.as_bytes())).unwrap();
        assert_eq!(out("mode 42755 uid 1000 gid 1001 size 140 nlink 1 rdev 0x0"), "mode 42755 uid 1000 gid 1001 size - nlink 1 rdev 0x0");
        assert_eq!(out("mode 41777 uid 0 gid 0 size 60 nlink 2 rdev 0x0"), "mode 41777 uid 0 gid 0 size - nlink 2 rdev 0x0");
        assert_eq!(out("mode 40755 uid 0 gid 0 size 60 nlink 2 rdev 0x0"), "mode 40755 uid 0 gid 0 size - nlink 2 rdev 0x0");
        // Not directories: the size stays.
        assert_eq!(out("mode 104755 uid 0 gid 0 size 7 nlink 1 rdev 0x0"), "mode 104755 uid 0 gid 0 size 7 nlink 1 rdev 0x0");
        assert_eq!(out("mode 100644 uid 0 gid 0 size 7 nlink 1 rdev 0x0"), "mode 100644 uid 0 gid 0 size 7 nlink 1 rdev 0x0");
    }
}
