//! Crafted-layer fuzzing: random layers (private xattrs with random values, whiteouts of
//! every kind and malformed ones, deep and wide trees, long and odd names), each mounted by
//! unionrs, then a random-operation load on the union while, in some rounds, another thread
//! changes the layers underneath it. Every mount must end with a clean error or a union that
//! serves the load and unmounts; no operation may return a kernel-internal errno, and the
//! kernel log must stay free of reports (KASAN, lockdep, warnings). UNIONRS_SEED reproduces a
//! run.

use crate::fixture::Scratch;
use crate::fuzz::{kernel_reports, seed_or, QuietConsole, CLEAN_ERRORS};
use crate::sys::{self, errno_name, Kmsg};
use crate::util::XorShift;
use crate::{check, progress, Test, TestResult};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub fn tests() -> Vec<Test> {
    vec![Test::new("fuzz.crafted_layers", crafted_layers)]
}

const DEFAULT_SEED: u64 = 0x6c61_7965_7273_2121;

/// Rounds (one set of layers and one mount each) and operations per round, by tier.
const FAST: (usize, usize) = (16, 150);
const FULL: (usize, usize) = (64, 400);

/// The names entries get: few, so that the layers collide and merge; some odd.
const NAMES: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"d",
    b"dir",
    b"file",
    b" ",
    b"-",
    b"...",
    b"new\nline",
    b"\xff\xfe",
    b"caf\xc3\xa9",
    b"back\\slash",
    b"co:lon,comma=",
    b".wh.a",
    b".wh..wh..opq",
    b"#0",
];

/// The private xattrs overlayfs knows (and one it does not), in either namespace.
const PRIVATE: &[&str] =
    &["opaque", "whiteout", "redirect", "origin", "metacopy", "impure", "upper", "uuid", "nlink", "protattr", "overlay.opaque", "nosuch"];

/// A random value for a private xattr: the meaningful ones, and garbage.
fn value(rng: &mut XorShift) -> Vec<u8> {
    match rng.below(12) {
        0 => b"y".to_vec(),
        1 => b"x".to_vec(),
        2 => b"n".to_vec(),
        3 => vec![],
        4 => b"/a/b".to_vec(),
        5 => b"../../..".to_vec(),
        6 => b"U+1".to_vec(),
        // An overlayfs file handle's header (version 0, magic 0xfb) and random rest.
        7 => {
            let mut v = vec![0u8, 0xfb, rng.below(256) as u8, rng.below(256) as u8];
            v.extend((0..rng.below(40)).map(|_| rng.below(256) as u8));
            v
        }
        8 => vec![b'z'; 1 + rng.below(4000)],
        9 => b"\0".to_vec(),
        _ => (0..rng.below(64)).map(|_| rng.below(256) as u8).collect(),
    }
}

fn name(rng: &mut XorShift) -> Vec<u8> {
    match rng.below(40) {
        0 => vec![b'n'; 255],
        _ => rng.pick(NAMES).to_vec(),
    }
}

fn bpath(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Builds one layer; `ns` is "trusted" or "user". Errors are ignored: a crafted layer is
/// whatever could be made.
struct LayerGen<'a> {
    rng: &'a mut XorShift,
    ns: &'static str,
    root: PathBuf,
    files: Vec<PathBuf>,
    budget: usize,
}

impl LayerGen<'_> {
    fn private(&mut self, p: &Path) {
        let n = format!("{}.overlay.{}", self.ns, self.rng.pick(PRIVATE));
        let v = value(self.rng);
        sys::lsetxattr(p, &n, &v);
    }

    fn dir(&mut self, rel: &[u8], depth: usize) {
        let p = bpath(&self.root, rel);
        let _ = fs::create_dir_all(&p);
        if self.rng.below(6) == 0 {
            self.private(&p);
        }
        let n = match self.rng.below(30) {
            // Wide.
            0 => 100 + self.rng.below(400),
            _ => self.rng.below(6),
        };
        for _ in 0..n {
            if self.budget == 0 {
                return;
            }
            self.budget -= 1;
            let child = join(rel, &name(self.rng));
            self.entry(&child, depth);
        }
        // Deep: a chain of directories.
        if depth == 0 && self.rng.below(8) == 0 {
            let mut chain = rel.to_vec();
            for _ in 0..20 + self.rng.below(60) {
                chain = join(&chain, b"deep");
            }
            let _ = fs::create_dir_all(bpath(&self.root, &chain));
            let _ = write(&bpath(&self.root, &join(&chain, b"bottom")), b"bottom\n");
        }
    }

    fn entry(&mut self, rel: &[u8], depth: usize) {
        let p = bpath(&self.root, rel);
        match self.rng.below(13) {
            0..=2 if depth < 4 => self.dir(rel, depth + 1),
            0..=4 => {
                let len = match self.rng.below(8) {
                    0 => 0,
                    1 => 70_000,
                    _ => self.rng.below(300),
                };
                let _ = write(&p, &vec![b'd'; len]);
                self.files.push(p.clone());
            }
            5 => {
                // Targets that stay inside the scratch filesystem, whatever follows them.
                let target: &[u8] = match self.rng.below(5) {
                    0 => b"a",
                    1 => b"/nonexistent/target",
                    2 => b"../nosuch",
                    3 => rel,
                    _ => b"dir/file",
                };
                let _ = symlink(OsStr::from_bytes(target), &p);
            }
            // A whiteout (0/0 character device) and a character device that is not one.
            6 => {
                sys::mknod(&p, libc::S_IFCHR | 0o644, 0);
            }
            7 => {
                sys::mknod(&p, libc::S_IFCHR | 0o644, libc::makedev(1, 3));
            }
            // An xattr whiteout, maybe malformed (not empty), in a directory maybe marked.
            8 => {
                let len = if self.rng.below(3) == 0 { 5 } else { 0 };
                let _ = write(&p, &vec![b'w'; len]);
                sys::lsetxattr(&p, &format!("{}.overlay.whiteout", self.ns), b"");
                if let Some(parent) = p.parent() {
                    sys::lsetxattr(parent, &format!("{}.overlay.opaque", self.ns), b"x");
                }
            }
            9 => {
                sys::mknod(&p, libc::S_IFIFO | 0o644, 0);
            }
            10 => {
                if let Some(f) = self.files.last() {
                    let _ = fs::hard_link(f, &p);
                }
            }
            _ => {
                let _ = write(&p, b"x\n");
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(self.rng.pick(&[0o644, 0o4755, 0o000, 0o2711, 0o1777])));
            }
        }
        if self.rng.below(4) == 0 {
            self.private(&p);
        }
    }
}

/// What one round found.
#[derive(Default)]
struct Tally {
    rounds: usize,
    mounted: usize,
    refused: BTreeMap<i32, usize>,
    ops: usize,
    op_errors: BTreeMap<i32, usize>,
    layer_changes: usize,
    findings: Vec<String>,
}

impl Tally {
    /// An operation's result: errors the kernel keeps for itself (ERESTARTSYS and the like,
    /// 512 and up) or that mean a bad user pointer or descriptor must never reach the caller.
    fn op(&mut self, what: &str, rel: &[u8], r: Result<(), i32>) {
        self.ops += 1;
        if let Err(e) = r {
            *self.op_errors.entry(e).or_default() += 1;
            if (e >= 512 || e == libc::EFAULT || e == libc::EBADF || e == 0) && self.findings.len() < 20 {
                self.findings.push(format!("{what} {} gave {}", String::from_utf8_lossy(rel), errno_name(e)));
            }
        }
    }
}

fn io_err(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Writes `data` to `p`, created or truncated, without blocking on a FIFO (any name may be
/// one).
fn write(p: &Path, data: &[u8]) -> Result<(), i32> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .and_then(|mut f| f.write_all(data))
        .map_err(io_err)
}

/// Up to `max` paths of the tree at `root` (relative), breadth first, through directories
/// only (never through a symlink, which could lead out of the scratch filesystem); errors end
/// a branch.
fn collect(root: &Path, max: usize) -> Vec<Vec<u8>> {
    let mut out = vec![vec![]];
    let mut dirs = vec![vec![]];
    let mut i = 0;
    while i < dirs.len() && out.len() < max {
        let dir = dirs[i].clone();
        i += 1;
        let Ok(rd) = fs::read_dir(bpath(root, &dir)) else { continue };
        for e in rd.flatten().take(64) {
            let rel = join(&dir, e.file_name().as_bytes());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(rel.clone());
            }
            out.push(rel);
        }
    }
    out
}

/// One random operation on the union at `root`.
fn operate(rng: &mut XorShift, t: &mut Tally, root: &Path, paths: &mut Vec<Vec<u8>>) {
    let rel = paths[rng.below(paths.len())].clone();
    let p = bpath(root, &rel);
    let fresh = join(&rel, &name(rng));
    let q = bpath(root, &fresh);
    let other = bpath(root, &paths[rng.below(paths.len())]);
    match rng.below(18) {
        0 => t.op("lstat", &rel, sys::lstat(&p).map(drop)),
        1 => t.op(
            "read",
            &rel,
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .and_then(|mut f| f.read(&mut [0u8; 65536]))
                .map(drop)
                .map_err(io_err),
        ),
        2 => t.op("readdir", &rel, fs::read_dir(&p).map(|d| d.count()).map(drop).map_err(io_err)),
        3 => t.op("readlink", &rel, fs::read_link(&p).map(drop).map_err(io_err)),
        4 => {
            let r = sys::llistxattr(&p).map(|names| {
                for n in names {
                    let _ = sys::lgetxattr(&p, &n);
                }
            });
            t.op("xattrs", &rel, r)
        }
        5 => t.op(
            "append",
            &rel,
            fs::OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .and_then(|mut f| f.write_all(b"more\n"))
                .map_err(io_err),
        ),
        6 => t.op(
            "truncate",
            &rel,
            fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&p).and_then(|f| f.set_len(3)).map_err(io_err),
        ),
        7 => t.op("chmod", &rel, fs::set_permissions(&p, fs::Permissions::from_mode(0o750)).map_err(io_err)),
        8 => {
            t.op("create", &fresh, write(&q, b"new\n"));
            paths.push(fresh);
        }
        9 => {
            t.op("mkdir", &fresh, fs::create_dir(&q).map_err(io_err));
            paths.push(fresh);
        }
        10 => t.op("unlink", &rel, fs::remove_file(&p).map_err(io_err)),
        11 => t.op("rmdir", &rel, fs::remove_dir(&p).map_err(io_err)),
        12 | 13 => t.op("rename", &rel, fs::rename(&p, if rng.below(2) == 0 { &q } else { &other }).map_err(io_err)),
        14 => t.op("link", &rel, fs::hard_link(&p, &q).map_err(io_err)),
        15 => t.op("symlink", &fresh, symlink(&p, &q).map_err(io_err)),
        16 => {
            let r = sys::lsetxattr(&p, "user.fuzz", b"v");
            t.op("setxattr", &rel, if r == 0 { Ok(()) } else { Err(r) })
        }
        _ => t.op("utimes", &rel, {
            let r = sys::set_times(&p, (1, 0), (2, 0));
            if r == 0 {
                Ok(())
            } else {
                Err(r)
            }
        }),
    }
}

/// Changes the layers underneath the live union until `stop` (another thread).
fn change_layers(seed: u64, layers: &[PathBuf], ns: &'static str, stop: &AtomicBool) -> usize {
    let mut rng = XorShift::seeded(seed);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let layer = &layers[rng.below(layers.len())];
        let paths = collect(layer, 200);
        let rel = paths[rng.below(paths.len())].clone();
        let p = bpath(layer, &rel);
        let q = bpath(layer, &join(&rel, &name(&mut rng)));
        match rng.below(7) {
            0 => drop(write(&q, b"underneath\n")),
            1 => drop(fs::remove_file(&p)),
            2 => drop(fs::remove_dir_all(&p)),
            3 => drop(fs::create_dir(&q)),
            4 => drop(fs::rename(&p, bpath(layer, &paths[rng.below(paths.len())]))),
            5 => {
                let v = value(&mut rng);
                sys::lsetxattr(&p, &format!("{ns}.overlay.{}", rng.pick(PRIVATE)), &v);
            }
            _ => {
                sys::mknod(&q, libc::S_IFCHR | 0o644, 0);
            }
        }
        n += 1;
        std::thread::yield_now();
    }
    n
}

fn round(rng: &mut XorShift, t: &mut Tally, base: &Path, ops: usize) -> TestResult {
    let ns = if rng.below(3) == 0 { "user" } else { "trusted" };
    let nlowers = 1 + rng.below(3);
    let lowers: Vec<PathBuf> = (0..nlowers).map(|i| base.join(format!("l{i}"))).collect();
    let (upper, work, mnt) = (base.join("u"), base.join("w"), base.join("m"));
    for d in [&upper, &work, &mnt] {
        fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    for l in lowers.iter().chain([&upper]) {
        let mut g = LayerGen { rng: &mut *rng, ns, root: l.clone(), files: vec![], budget: 600 };
        g.dir(b"", 0);
    }
    let with_upper = rng.below(5) != 0;
    let mut opts = format!("lowerdir={}", lowers.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(":"));
    if with_upper {
        opts.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display()));
    }
    if ns == "user" {
        opts.push_str(",userxattr");
    } else if rng.below(2) == 0 {
        opts.push_str(",redirect_dir=nofollow");
    }
    t.rounds += 1;
    let r = sys::mount("none", &mnt, "unionrs", 0, &opts);
    if r != 0 {
        *t.refused.entry(r).or_default() += 1;
        if !CLEAN_ERRORS.contains(&r) {
            t.findings.push(format!("mounting crafted layers with {opts} gave {}", errno_name(r)));
        }
        return Ok(());
    }
    t.mounted += 1;
    let live = rng.below(2) == 0;
    let stop = AtomicBool::new(false);
    let layer_seed = rng.next();
    let mut layers: Vec<PathBuf> = lowers.clone();
    if with_upper {
        layers.push(upper.clone());
    }
    std::thread::scope(|scope| {
        let changer = live.then(|| scope.spawn(|| change_layers(layer_seed, &layers, ns, &stop)));
        let mut paths = collect(&mnt, 400);
        for _ in 0..ops {
            operate(rng, t, &mnt, &mut paths);
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(c) = changer {
            t.layer_changes += c.join().unwrap_or(0);
        }
    });
    let r = sys::umount(&mnt);
    if r != 0 {
        t.findings.push(format!("the union over crafted layers ({opts}) does not unmount: {}", errno_name(r)));
        while sys::umount(&mnt) == 0 {}
    }
    Ok(())
}

fn crafted_layers() -> TestResult {
    let (rounds, ops) = match crate::tier() {
        crate::Tier::Fast => FAST,
        crate::Tier::Full => FULL,
    };
    let seed = seed_or(DEFAULT_SEED);
    let mut rng = XorShift::seeded(seed);
    let mut t = Tally::default();
    let started = std::time::Instant::now();
    let mut kmsg = Kmsg::new();
    kmsg.read_new();
    let mut reports = vec![];
    {
        let _quiet = QuietConsole::new();
        for i in 0..rounds {
            // A fresh filesystem per round: nothing of the last round's layers stays.
            let s = Scratch::new("fuzz_layers");
            round(&mut rng, &mut t, &s.root, ops)?;
            drop(s);
            reports.extend(kernel_reports(&kmsg.read_new()));
            if (i + 1) % 50 == 0 {
                progress(&format!("fuzz.crafted_layers: {} rounds, {} mounted, {} operations", i + 1, t.mounted, t.ops));
            }
        }
    }
    let show = |m: &BTreeMap<i32, usize>| m.iter().map(|(e, n)| format!("{}: {n}", errno_name(*e))).collect::<Vec<_>>().join(", ");
    println!(
        "unionrs-fuzz: crafted_layers: seed {seed:#x}, {} rounds, {} mounted (refused: {}), {} operations (errors: {}), {} layer changes under live mounts, {} s",
        t.rounds,
        t.mounted,
        show(&t.refused),
        t.ops,
        show(&t.op_errors),
        t.layer_changes,
        started.elapsed().as_secs()
    );
    check!(reports.is_empty(), "kernel reports during the run (seed {seed:#x}):\n{}", reports.join("\n"));
    check!(t.findings.is_empty(), "seed {seed:#x}:\n{}", t.findings.join("\n"));
    // A fuzzer whose layers never mount, or whose operations all fail, explores nothing.
    check!(t.mounted * 2 > t.rounds, "only {} of {} rounds mounted: the generator is too far off", t.mounted, t.rounds);
    let failed: usize = t.op_errors.values().sum();
    check!(failed < t.ops, "every one of {} operations failed", t.ops);
    Ok(())
}
