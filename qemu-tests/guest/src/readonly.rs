//! Read-only unions (lower layers only), checked against overlayfs mounted with the same
//! options in the same guest: the whole tree as stat(2), readdir(3), read(2), readlink(2) and
//! the xattr calls see it; directory positions (telldir/seekdir); EROFS for every change; no
//! atime updates on the layers; and layers spread over tmpfs, ext4 and xfs.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::trees::{self, layer_paths, stamp_times, three_layers, Layer, Spread};
use crate::util::{bpath, bytes_diff, errno_of, join_rel, parent_rel, show, verdict, XorShift};
use crate::{check, Test, TestResult};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::hash::Hash;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("readonly.differential_same_fs", differential_same_fs),
        Test::full_only("readonly.differential_100k", differential_100k),
        Test::new("readonly.seekdir", seekdir),
        Test::new("readonly.erofs", erofs),
        Test::new("readonly.no_atime_on_lower", no_atime_on_lower),
        Test::new("readonly.multi_fs", multi_fs),
        Test::new("readonly.remount_and_open_modes", remount_and_open_modes),
    ]
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// The whole content of a regular file, through read(2).
fn read_file(p: &Path) -> Result<Vec<u8>, i32> {
    let mut f = File::open(p).map_err(|e| errno_of(&e))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).map_err(|e| errno_of(&e))?;
    Ok(v)
}

fn readlink(p: &Path) -> Result<Vec<u8>, i32> {
    fs::read_link(p).map(|t| t.into_os_string().into_vec()).map_err(|e| errno_of(&e))
}

fn describe_err<T>(r: &Result<T, i32>, ok: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("error {}", errno_name(*e)),
    }
}

/// The d_type readdir should report for a file mode.
fn dtype_of(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}

/// Mounts `fstype` ("unionrs" or "overlay") over `layers` (top first) at `target`.
fn mount_layers(fstype: &str, target: &Path, layers: &[&Path]) -> Result<(), String> {
    let dirs: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    let opts = format!("lowerdir={}", dirs.join(":"));
    let rc = sys::mount("none", target, fstype, 0, &opts);
    check!(rc == 0, "mounting {fstype} at {} with {opts}: {}", target.display(), errno_name(rc));
    Ok(())
}

/// Mounts unionrs at `u` and overlayfs at `o` over the same layers; both are undone by `s`.
fn mount_both(s: &mut Scratch, layers: &[&Path]) -> Result<(PathBuf, PathBuf), String> {
    let (u, o) = (s.dir("u"), s.dir("o"));
    mount_layers("unionrs", &u, layers)?;
    s.track(&u);
    mount_layers("overlay", &o, layers)?;
    s.track(&o);
    Ok((u, o))
}

// ---------------------------------------------------------------------------------------------
// Raw directory streams (opendir/readdir/telldir/seekdir), for d_type, d_ino and positions

struct DirEnt {
    name: Vec<u8>,
    ino: u64,
    d_type: u8,
}

struct DirStream(*mut libc::DIR);

impl DirStream {
    fn open(p: &Path) -> Result<Self, i32> {
        let c = sys::cpath(p);
        // SAFETY: valid string; opendir returns a stream or NULL.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        if d.is_null() {
            Err(sys::errno())
        } else {
            Ok(Self(d))
        }
    }

    /// The next entry, None at the end.
    fn next(&mut self) -> Result<Option<DirEnt>, i32> {
        // SAFETY: errno is thread-local; readdir only sets it on error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: self.0 is an open stream.
        let e = unsafe { libc::readdir64(self.0) };
        if e.is_null() {
            let err = sys::errno();
            return if err == 0 { Ok(None) } else { Err(err) };
        }
        // SAFETY: a non-NULL result points to a valid entry until the next call on the stream.
        let e = unsafe { &*e };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(e.d_name.as_ptr()) }.to_bytes().to_vec();
        Ok(Some(DirEnt { name, ino: e.d_ino, d_type: e.d_type }))
    }

    fn fd(&self) -> libc::c_int {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::dirfd(self.0) }
    }

    fn tell(&mut self) -> libc::c_long {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::telldir(self.0) }
    }

    fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::seekdir(self.0, pos) }
    }

    fn rewind(&mut self) {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::rewinddir(self.0) }
    }

    /// Every remaining entry, "." and ".." included.
    fn read_all(&mut self) -> Result<Vec<DirEnt>, i32> {
        let mut out = Vec::new();
        while let Some(e) = self.next()? {
            out.push(e);
        }
        Ok(out)
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: we own the stream.
        unsafe { libc::closedir(self.0) };
    }
}

fn read_dir_raw(p: &Path) -> Result<Vec<DirEnt>, i32> {
    DirStream::open(p)?.read_all()
}

/// The names in directory `p`, without "." and "..".
fn names_in(p: &Path) -> Result<BTreeSet<Vec<u8>>, i32> {
    Ok(read_dir_raw(p)?.into_iter().map(|e| e.name).filter(|n| n != b"." && n != b"..").collect())
}

// ---------------------------------------------------------------------------------------------
// Walking a tree and comparing two walks

/// The lstat fields that are compared.
#[derive(Clone, Copy, PartialEq)]
struct Stat {
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    size: i64,
    rdev: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    dev: u64,
    blocks: i64,
}

impl Stat {
    fn of(p: &Path) -> Result<Stat, i32> {
        Ok(Stat::from(&sys::lstat(p)?))
    }

    fn from(s: &libc::stat) -> Stat {
        Stat {
            mode: s.st_mode,
            nlink: s.st_nlink,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size,
            rdev: s.st_rdev,
            mtime: s.st_mtime,
            mtime_nsec: s.st_mtime_nsec,
            ino: s.st_ino,
            dev: s.st_dev,
            blocks: s.st_blocks,
        }
    }

    /// lstat of `name` in the directory open as `dirfd`.
    fn at(dirfd: libc::c_int, name: &[u8]) -> Result<Stat, i32> {
        let c = std::ffi::CString::new(name).map_err(|_| libc::EINVAL)?;
        // SAFETY: zeroed stat is a valid out parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, string and out pointer.
        if unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(sys::errno());
        }
        Ok(Stat::from(&st))
    }

    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// overlayfs' private xattrs: probed on every directory, since listxattr may hide them.
const PRIVATE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "trusted.overlay.whiteout"];

type Xattrs = Result<Vec<(Vec<u8>, Result<Vec<u8>, i32>)>, i32>;

/// What one object looks like.
struct Node {
    /// d_type and d_ino as the parent's readdir reported them (the root: DT_DIR, its st_ino).
    d_type: u8,
    d_ino: u64,
    stat: Result<Stat, i32>,
    /// Regular files: the content.
    content: Option<Result<Vec<u8>, i32>>,
    /// Symlinks: the target.
    link: Option<Result<Vec<u8>, i32>>,
    /// Sorted xattr names, each with its value.
    xattrs: Xattrs,
    /// Directories: lgetxattr of each PRIVATE_XATTRS name.
    private: Vec<Result<Vec<u8>, i32>>,
}

/// The directory whose entries `walk` compares by stat only (see there).
const SHALLOW_DIR: &[u8] = b"big";

impl Node {
    fn stat_only(d_type: u8, d_ino: u64, stat: Result<Stat, i32>) -> Node {
        Node { d_type, d_ino, stat, content: None, link: None, xattrs: Ok(vec![]), private: vec![] }
    }

    fn read(p: &Path, d_type: u8, d_ino: u64, stat: Result<Stat, i32>) -> Node {
        let fmt = stat.as_ref().map_or(0, |s| s.mode & libc::S_IFMT);
        let xattrs = sys::llistxattr(p).map(|mut names| {
            names.sort();
            names
                .into_iter()
                .map(|n| {
                    let v = sys::lgetxattr(p, &n);
                    (n, v)
                })
                .collect()
        });
        Node {
            d_type,
            d_ino,
            content: (fmt == libc::S_IFREG).then(|| read_file(p)),
            link: (fmt == libc::S_IFLNK).then(|| readlink(p)),
            private: if fmt == libc::S_IFDIR { PRIVATE_XATTRS.iter().map(|n| sys::lgetxattr(p, n.as_bytes())).collect() } else { vec![] },
            xattrs,
            stat,
        }
    }

    fn kind(&self) -> &'static str {
        match self.stat.as_ref().map(|s| s.mode & libc::S_IFMT) {
            Ok(libc::S_IFDIR) => "directory",
            Ok(libc::S_IFREG) => "file",
            Ok(libc::S_IFLNK) => "symlink",
            Ok(libc::S_IFCHR) => "char device",
            Ok(libc::S_IFBLK) => "block device",
            Ok(libc::S_IFIFO) => "fifo",
            Ok(_) => "other",
            Err(_) => "unstat-able entry",
        }
    }
}

/// Which readdir d_ino values must equal the lstat st_ino of the same entry.
#[derive(Clone, Copy)]
struct WalkOpts {
    /// Directories too (entries that are directories, and ".").
    dino_of_dirs: bool,
    /// ".." against the parent directory (not at the root, whose ".." is outside).
    dotdot: bool,
}

/// A whole tree, keyed by path relative to its root.
struct Walk {
    label: String,
    nodes: BTreeMap<Vec<u8>, Node>,
    /// Inconsistencies within this tree (readdir against lstat, duplicate names, ...).
    problems: Vec<String>,
}

/// Reads the tree at `root` without following symlinks.
fn walk(label: &str, root: &Path, opts: WalkOpts) -> Result<Walk, String> {
    let root_stat = Stat::of(root).map_err(|e| format!("{label}: lstat {}: {}", root.display(), errno_name(e)))?;
    let mut w = Walk { label: label.to_string(), nodes: BTreeMap::new(), problems: vec![] };
    w.nodes.insert(vec![], Node::read(root, libc::DT_DIR, root_stat.ino, Ok(root_stat)));
    let mut pending: Vec<Vec<u8>> = vec![vec![]];
    while let Some(dir) = pending.pop() {
        let dir_path = bpath(root, &dir);
        // Entries are stat'ed relative to the open directory: one path component per call
        // instead of the whole path, which matters for 100 000 entries under emulation.
        let mut stream = DirStream::open(&dir_path);
        let entries = match stream.as_mut().map_err(|e| *e).and_then(|s| s.read_all()) {
            Ok(e) => e,
            Err(e) => {
                w.problems.push(format!("{label} {}: readdir: {}", show(&dir), errno_name(e)));
                continue;
            }
        };
        let ino_of = |w: &Walk, rel: &[u8]| w.nodes.get(rel).and_then(|n| n.stat.as_ref().ok()).map(|s| s.ino);
        let (dir_ino, parent_ino) = (ino_of(&w, &dir), ino_of(&w, parent_rel(&dir)));
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(entries.len());
        for e in entries {
            if !seen.insert(e.name.clone()) {
                w.problems.push(format!("{label} {}: readdir lists {:?} twice", show(&dir), e.name.escape_ascii().to_string()));
                continue;
            }
            if e.name == b"." || e.name == b".." {
                let (want, check) = if e.name == b"." {
                    (dir_ino, opts.dino_of_dirs)
                } else {
                    (parent_ino, opts.dotdot && opts.dino_of_dirs && !dir.is_empty())
                };
                if check && Some(e.ino) != want {
                    w.problems.push(format!(
                        "{label} {}: readdir d_ino of {:?} is {}, lstat st_ino {:?}",
                        show(&dir),
                        String::from_utf8_lossy(&e.name),
                        e.ino,
                        want
                    ));
                }
                if e.d_type != libc::DT_DIR {
                    w.problems.push(format!("{label} {}: d_type of {:?} is {}", show(&dir), String::from_utf8_lossy(&e.name), e.d_type));
                }
                continue;
            }
            let rel = join_rel(&dir, &e.name);
            let p = bpath(root, &rel);
            let stat = match &stream {
                Ok(st) => Stat::at(st.fd(), &e.name),
                Err(_) => Stat::of(&p),
            };
            match &stat {
                Err(err) => w.problems.push(format!("{label} {}: listed by readdir, but lstat fails: {}", show(&rel), errno_name(*err))),
                Ok(st) => {
                    if e.d_type != dtype_of(st.mode) {
                        w.problems.push(format!("{label} {}: readdir d_type {}, lstat mode {:o}", show(&rel), e.d_type, st.mode));
                    }
                    if (opts.dino_of_dirs || !st.is_dir()) && e.ino != st.ino {
                        w.problems.push(format!("{label} {}: readdir d_ino {}, lstat st_ino {}", show(&rel), e.ino, st.ino));
                    }
                    if st.is_dir() {
                        pending.push(rel.clone());
                    }
                }
            }
            // The 100 000 empty files of big/ are compared by name, type, inode and stat only:
            // opening each one and listing its xattrs on both mounts would take most of the
            // run under an emulated CPU, and the rest of the tree covers those paths.
            let node = if dir == SHALLOW_DIR { Node::stat_only(e.d_type, e.ino, stat) } else { Node::read(&p, e.d_type, e.ino, stat) };
            w.nodes.insert(rel, node);
        }
        for dot in [&b"."[..], b".."] {
            if !seen.contains(dot) {
                w.problems.push(format!("{label} {}: readdir lacks {:?}", show(&dir), String::from_utf8_lossy(dot)));
            }
        }
    }
    Ok(w)
}

/// Differences between two walks of what should be the same tree. Directory inode numbers
/// (st_ino and d_ino) are compared only with `compare_dir_ino`; st_dev never (each mount has
/// its own).
fn diff_walks(a: &Walk, b: &Walk, compare_dir_ino: bool) -> Vec<String> {
    let mut out = vec![];
    // Subtrees already reported as a whole (missing on one side, or of another type).
    let mut reported: HashSet<&[u8]> = HashSet::new();
    let under_reported = |reported: &HashSet<&[u8]>, rel: &[u8]| {
        let mut r = rel;
        while !r.is_empty() {
            r = parent_rel(r);
            if reported.contains(r) {
                return true;
            }
        }
        false
    };
    let (la, lb) = (&a.label, &b.label);
    for (rel, na) in &a.nodes {
        let Some(nb) = b.nodes.get(rel) else {
            if !under_reported(&reported, rel) {
                out.push(format!("{}: {} on {la}, missing on {lb}", show(rel), na.kind()));
                reported.insert(rel.as_slice());
            }
            continue;
        };
        if under_reported(&reported, rel) {
            continue;
        }
        let before = out.len();
        diff_nodes(rel, la, na, lb, nb, compare_dir_ino, &mut out);
        if out.len() > before && na.kind() != nb.kind() {
            reported.insert(rel.as_slice());
        }
    }
    for (rel, nb) in &b.nodes {
        if !a.nodes.contains_key(rel) && !under_reported(&reported, rel) {
            out.push(format!("{}: {} on {lb}, missing on {la}", show(rel), nb.kind()));
            reported.insert(rel.as_slice());
        }
    }
    out
}

fn diff_nodes(rel: &[u8], la: &str, a: &Node, lb: &str, b: &Node, compare_dir_ino: bool, out: &mut Vec<String>) {
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{}: {name}: {la} {x}, {lb} {y}", show(rel)));
        }
    };
    field("d_type", a.d_type.to_string(), b.d_type.to_string());
    match (&a.stat, &b.stat) {
        (Ok(x), Ok(y)) => {
            field("st_mode", format!("{:o}", x.mode), format!("{:o}", y.mode));
            field("st_nlink", x.nlink.to_string(), y.nlink.to_string());
            field("st_uid", x.uid.to_string(), y.uid.to_string());
            field("st_gid", x.gid.to_string(), y.gid.to_string());
            field("st_size", x.size.to_string(), y.size.to_string());
            field("st_rdev", format!("{:#x}", x.rdev), format!("{:#x}", y.rdev));
            field("st_mtime", format!("{}.{:09}", x.mtime, x.mtime_nsec), format!("{}.{:09}", y.mtime, y.mtime_nsec));
            field("st_blocks", x.blocks.to_string(), y.blocks.to_string());
            if compare_dir_ino || !(x.is_dir() || y.is_dir()) {
                field("st_ino", x.ino.to_string(), y.ino.to_string());
                field("d_ino", a.d_ino.to_string(), b.d_ino.to_string());
            }
        }
        (x, y) => field("lstat", describe_err(x, |_| "ok".into()), describe_err(y, |_| "ok".into())),
    }
    match (&a.content, &b.content) {
        (Some(Ok(x)), Some(Ok(y))) if x != y => out.push(format!("{}: content differs: {la} vs {lb}: {}", show(rel), bytes_diff(x, y))),
        (x, y) if x.is_some() && y.is_some() && x != y => {
            let d =
                |c: &Option<Result<Vec<u8>, i32>>| c.as_ref().map_or(String::new(), |r| describe_err(r, |v| format!("{} bytes", v.len())));
            out.push(format!("{}: read: {la} {}, {lb} {}", show(rel), d(x), d(y)));
        }
        _ => {}
    }
    let text = |r: &Result<Vec<u8>, i32>| describe_err(r, |v| format!("{:?}", v.escape_ascii().to_string()));
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{}: {name}: {la} {x}, {lb} {y}", show(rel)));
        }
    };
    if let (Some(x), Some(y)) = (&a.link, &b.link) {
        field("readlink", text(x), text(y));
    }
    let xattrs = |x: &Xattrs| {
        describe_err(x, |list| {
            let items: Vec<String> = list.iter().map(|(n, v)| format!("{}={}", n.escape_ascii(), text(v))).collect();
            format!("[{}]", items.join(", "))
        })
    };
    field("xattrs", xattrs(&a.xattrs), xattrs(&b.xattrs));
    for (i, name) in PRIVATE_XATTRS.iter().enumerate() {
        if let (Some(x), Some(y)) = (a.private.get(i), b.private.get(i)) {
            field(&format!("getxattr {name}"), text(x), text(y));
        }
    }
}

/// Objects with the same `key` form groups (hard links share st_dev/st_ino, say); the groups
/// must be the same in both walks. Objects for which `key` gives None are left out.
fn diff_groups<K: Hash + Eq>(a: &Walk, b: &Walk, what: &str, key: impl Fn(&Stat) -> Option<K>) -> Vec<String> {
    fn group_ids<'w, K: Hash + Eq>(w: &'w Walk, key: &impl Fn(&Stat) -> Option<K>) -> HashMap<&'w [u8], usize> {
        let mut ids: HashMap<K, usize> = HashMap::new();
        let mut of = HashMap::new();
        for (rel, n) in &w.nodes {
            if let Some(k) = n.stat.as_ref().ok().and_then(key) {
                let next = ids.len();
                of.insert(rel.as_slice(), *ids.entry(k).or_insert(next));
            }
        }
        of
    }
    let (ga, gb) = (group_ids(a, &key), group_ids(b, &key));
    let mut out = vec![];
    // For each group on one side: its counterpart on the other, and the path that set it.
    let mut a2b: HashMap<usize, (usize, &[u8])> = HashMap::new();
    let mut b2a: HashMap<usize, (usize, &[u8])> = HashMap::new();
    for rel in a.nodes.keys() {
        let rel = rel.as_slice();
        let (Some(&x), Some(&y)) = (ga.get(rel), gb.get(rel)) else { continue };
        let (want_y, first_a) = *a2b.entry(x).or_insert((y, rel));
        let (want_x, first_b) = *b2a.entry(y).or_insert((x, rel));
        if want_y != y {
            out.push(format!("{} and {} share {what} on {} but not on {}", show(rel), show(first_a), a.label, b.label));
        } else if want_x != x {
            out.push(format!("{} and {} share {what} on {} but not on {}", show(rel), show(first_b), b.label, a.label));
        }
    }
    out
}

/// Objects that must not share a key with any other object in the same walk.
fn unique_in<K: Hash + Eq>(w: &Walk, what: &str, key: impl Fn(&Stat) -> Option<K>) -> Vec<String> {
    let mut first: HashMap<K, &[u8]> = HashMap::new();
    let mut out = vec![];
    for (rel, n) in &w.nodes {
        if let Some(k) = n.stat.as_ref().ok().and_then(&key) {
            if let Some(other) = first.insert(k, rel.as_slice()) {
                out.push(format!("{} {} and {} have the same {what}", w.label, show(rel), show(other)));
            }
        }
    }
    out
}

/// Objects (only directories, with `dirs_only`) whose st_dev differs from the root's.
fn check_devs(w: &Walk, dirs_only: bool) -> Vec<String> {
    let Some(Ok(root)) = w.nodes.get(&b""[..]).map(|n| n.stat) else { return vec![] };
    w.nodes
        .iter()
        .filter_map(|(rel, n)| n.stat.as_ref().ok().map(|s| (rel, s)))
        .filter(|(_, s)| (!dirs_only || s.is_dir()) && s.dev != root.dev)
        .map(|(rel, s)| format!("{} {}: st_dev {:#x}, the mount root's is {:#x}", w.label, show(rel), s.dev, root.dev))
        .collect()
}

struct CompareOpts {
    /// All layers on one filesystem: every object shows the union's st_dev, and directories
    /// keep their real (persistent) inode numbers, as readdir reports them on overlayfs too.
    same_fs: bool,
}

struct Compared {
    diffs: Vec<String>,
    ours: Walk,
}

/// Walks the unionrs tree at `ours` and the overlayfs tree at `reference` and lists every
/// difference, plus what is inconsistent within either tree.
fn compare_trees(ours: &Path, reference: &Path, opts: &CompareOpts) -> Result<Compared, String> {
    let a = walk("unionrs", ours, WalkOpts { dino_of_dirs: true, dotdot: true })?;
    crate::progress("walked the unionrs tree");
    // overlayfs' ".." d_ino is the top layer's parent, not always the union parent's st_ino;
    // with layers on several filesystems its directory d_ino are real numbers but st_ino not.
    let b = walk("overlayfs", reference, WalkOpts { dino_of_dirs: opts.same_fs, dotdot: false })?;
    let mut diffs = vec![];
    diffs.extend(a.problems.iter().cloned());
    diffs.extend(b.problems.iter().map(|p| format!("{p} (the reference itself)")));
    diffs.extend(diff_walks(&a, &b, opts.same_fs));
    let non_dir = |s: &Stat| !s.is_dir();
    if opts.same_fs {
        for w in [&a, &b] {
            diffs.extend(check_devs(w, false));
        }
        diffs.extend(diff_groups(&a, &b, "st_ino", |s| Some((s.dev, s.ino))));
    } else {
        for w in [&a, &b] {
            diffs.extend(check_devs(w, true));
            diffs.extend(unique_in(w, "directory st_dev/st_ino", |s| s.is_dir().then_some((s.dev, s.ino))));
        }
        diffs.extend(diff_groups(&a, &b, "st_dev/st_ino", |s| non_dir(s).then_some((s.dev, s.ino))));
        diffs.extend(diff_groups(&a, &b, "st_dev", |s| non_dir(s).then_some(s.dev)));
    }
    Ok(Compared { diffs, ours: a })
}

// ---------------------------------------------------------------------------------------------
// 1. Differential test, all layers on one tmpfs
/// What the fixture means, independently of the other mount. Run on overlayfs too: a failure
/// there means the fixture (or this model) is wrong, not unionrs.
fn check_rich_model(label: &str, root: &Path, big_expected: &BTreeSet<Vec<u8>>) -> Vec<String> {
    let mut out = vec![];
    let hidden = [
        "hidden_file",
        "hidden_dir",
        "merged/ghost",
        "xw/victim",
        "opq/l1_in_opq",
        "opq/l2_in_opq",
        "opq/sub",
        "opq_mid/bottom",
        "stop_at_file/b",
    ];
    for rel in hidden {
        match sys::lstat(&root.join(rel)) {
            Err(libc::ENOENT) => {}
            Err(e) => out.push(format!("{label} /{rel}: lstat gave {}, want ENOENT (hidden)", errno_name(e))),
            Ok(_) => out.push(format!("{label} /{rel}: visible, but should be hidden")),
        }
    }
    match sys::lstat(&root.join("dir_becomes_file/inner")) {
        Err(libc::ENOTDIR) => {}
        other => {
            out.push(format!("{label} /dir_becomes_file/inner: lstat gave {}, want ENOTDIR", describe_err(&other, |_| "success".into())))
        }
    }
    let present = [
        ("xw/keep0", libc::S_IFREG),
        ("xw/keep1", libc::S_IFREG),
        ("xw/keep2", libc::S_IFREG),
        ("opq_mid/top", libc::S_IFREG),
        ("opq_mid/mid", libc::S_IFREG),
        ("file_becomes_dir", libc::S_IFDIR),
        ("dir_becomes_file", libc::S_IFREG),
        ("stop_at_file/a", libc::S_IFREG),
        ("syms/shadow", libc::S_IFLNK),
        ("special/null", libc::S_IFCHR),
        ("merged/deep/deeper/deepest/l2y", libc::S_IFREG),
    ];
    for (rel, fmt) in present {
        match sys::lstat(&root.join(rel)) {
            Ok(st) if st.st_mode & libc::S_IFMT == fmt => {}
            Ok(st) => out.push(format!("{label} /{rel}: mode {:o}, want type {fmt:o}", st.st_mode)),
            Err(e) => out.push(format!("{label} /{rel}: lstat: {}", errno_name(e))),
        }
    }
    match read_file(&root.join("merged/shared")) {
        Ok(c) if c == b"shared, layer 0 version\n" => {}
        other => out.push(format!(
            "{label} /merged/shared: read {}, want the top layer's",
            describe_err(&other, |c| format!("{:?}", c.escape_ascii().to_string()))
        )),
    }
    match names_in(&root.join("opq")) {
        Ok(n) if n.len() == 1 && n.contains(&b"l0_in_opq"[..]) => {}
        other => out.push(format!("{label} /opq: names {}, want only l0_in_opq", describe_err(&other, |n| format!("{n:?}")))),
    }
    // Hard links keep one inode.
    let links: Vec<Result<libc::stat, i32>> = ["links/a", "links/b", "links/sub/c"].iter().map(|r| sys::lstat(&root.join(r))).collect();
    match links.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(st) => {
            if st.iter().any(|s| s.st_ino != st[0].st_ino || s.st_dev != st[0].st_dev || s.st_nlink != 3) {
                let d: Vec<String> = st.iter().map(|s| format!("{}:{} nlink {}", s.st_dev, s.st_ino, s.st_nlink)).collect();
                out.push(format!("{label}: the hard links links/a, links/b, links/sub/c differ: {}", d.join(", ")));
            }
        }
        Err(e) => out.push(format!("{label}: a hard link is missing: {}", errno_name(e))),
    }
    // The big directory: exactly the names the layers define.
    match names_in(&root.join("big")) {
        Ok(got) => {
            if &got != big_expected {
                let missing: Vec<String> = big_expected.difference(&got).take(3).map(|n| n.escape_ascii().to_string()).collect();
                let extra: Vec<String> = got.difference(big_expected).take(3).map(|n| n.escape_ascii().to_string()).collect();
                out.push(format!(
                    "{label} /big: {} names, want {}; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
                    got.len(),
                    big_expected.len()
                ));
            }
        }
        Err(e) => out.push(format!("{label} /big: readdir: {}", errno_name(e))),
    }
    out
}

/// The differential over the rich tree and a merged directory of `BIG_FAST` entries, built on
/// one tmpfs in the test.
fn differential_same_fs() -> TestResult {
    let mut s = Scratch::new("ro_differential");
    let layers = three_layers(&s);
    let big = Spread::new(trees::BIG_FAST, trees::BIG_DUP_EVERY, trees::BIG_WHITEOUT_EVERY);
    crate::progress("differential: building the layers");
    trees::build_differential(&layers, &big);
    compare_differential(&mut s, &layers, &big)
}

/// The same at full size (`BIG_FULL` entries), over the layers of the cached fixture image
/// (ext4, mounted read-only by guest-run.sh; see scripts/build-fixture).
fn differential_100k() -> TestResult {
    let root = crate::fixture_dir(trees::DIFFERENTIAL_FIXTURE)?;
    let layers = [0, 1, 2].map(|i| Layer { root: root.join(format!("l{i}")) });
    let big = Spread::new(trees::BIG_FULL, trees::BIG_DUP_EVERY, trees::BIG_WHITEOUT_EVERY);
    let mut s = Scratch::new("ro_differential_100k");
    compare_differential(&mut s, &layers, &big)
}

fn compare_differential(s: &mut Scratch, layers: &[Layer; 3], big: &Spread) -> TestResult {
    let big_expected = big.visible();
    let (u, o) = mount_both(s, &layer_paths(layers))?;
    crate::progress("differential: model check on unionrs");
    let mut diffs = check_rich_model("unionrs", &u, &big_expected);
    crate::progress("differential: model check on overlayfs");
    diffs.extend(check_rich_model("overlayfs (the reference)", &o, &big_expected));
    crate::progress("differential: comparing trees");
    diffs.extend(compare_trees(&u, &o, &CompareOpts { same_fs: true })?.diffs);
    crate::progress("differential: done");
    verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// 2. telldir/seekdir/rewinddir

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Reads `dir` recording telldir() before each entry, then seeks back to random positions.
fn check_seek(dir: &Path, rel: &str, rng: &mut XorShift) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut d = DirStream::open(dir).map_err(|e| format!("opendir /{rel}: {}", errno_name(e)))?;
    let mut first: Vec<(libc::c_long, Vec<u8>)> = vec![];
    loop {
        let pos = d.tell();
        match d.next().map_err(|e| format!("readdir /{rel}: {}", errno_name(e)))? {
            Some(e) => first.push((pos, e.name)),
            None => break,
        }
    }
    let end = d.tell();
    if first.is_empty() {
        return Ok(vec![format!("/{rel}: readdir returned nothing")]);
    }
    let show_name = |n: Option<&Vec<u8>>| n.map_or("end of directory".to_string(), |n| format!("{:?}", n.escape_ascii().to_string()));
    for round in 0..200 {
        let i = rng.below(first.len());
        d.seek(first[i].0);
        // The entry at the cookie, and the few after it.
        for k in 0..3 {
            let want = first.get(i + k).map(|(_, n)| n);
            let got = d.next().map_err(|e| format!("readdir /{rel} after seekdir: {}", errno_name(e)))?.map(|e| e.name);
            if got.as_ref() != want {
                out.push(format!(
                    "/{rel} (seed {SEED:#x}, round {round}): seekdir to entry {i}'s cookie {}, readdir #{k} gave {}, want {}",
                    first[i].0,
                    show_name(got.as_ref()),
                    show_name(want)
                ));
                break;
            }
        }
        if out.len() >= 5 {
            break;
        }
    }
    d.seek(end);
    if let Ok(Some(e)) = d.next() {
        out.push(format!("/{rel}: seekdir to the end cookie {end}, readdir gave {:?}", e.name.escape_ascii().to_string()));
    }
    d.rewind();
    let second: Vec<Vec<u8>> =
        d.read_all().map_err(|e| format!("readdir /{rel} after rewinddir: {}", errno_name(e)))?.into_iter().map(|e| e.name).collect();
    let first_names: Vec<&Vec<u8>> = first.iter().map(|(_, n)| n).collect();
    if second.iter().collect::<Vec<_>>() != first_names {
        out.push(format!(
            "/{rel}: after rewinddir readdir gave {} entries, {} the first time, or another order",
            second.len(),
            first.len()
        ));
    }
    let unique: HashSet<&Vec<u8>> = first_names.iter().copied().collect();
    if unique.len() != first.len() {
        out.push(format!("/{rel}: readdir gave {} entries but only {} distinct names", first.len(), unique.len()));
    }
    Ok(out)
}

fn seekdir() -> TestResult {
    let mut s = Scratch::new("ro_seekdir");
    let layers = three_layers(&s);
    let spread = Spread::new(3000, 10, 7);
    spread.build(&layers, "m");
    let expected_m = spread.visible();
    for i in 0..600 {
        layers[1].node(format!("s/f{i}"), libc::S_IFREG | 0o644, 0);
    }
    layers[2].file("bottom_only", "x");
    let (u, o) = mount_both(&mut s, &layer_paths(&layers))?;

    let mut diffs = vec![];
    let mut rng = XorShift(SEED);
    for rel in ["m", "s", ""] {
        diffs.extend(check_seek(&bpath(&u, rel.as_bytes()), rel, &mut rng)?);
        let ours = names_in(&bpath(&u, rel.as_bytes())).map_err(|e| format!("unionrs readdir /{rel}: {}", errno_name(e)))?;
        let theirs = names_in(&bpath(&o, rel.as_bytes())).map_err(|e| format!("overlayfs readdir /{rel}: {}", errno_name(e)))?;
        if ours != theirs {
            let only_u: Vec<String> = ours.difference(&theirs).take(3).map(|n| n.escape_ascii().to_string()).collect();
            let only_o: Vec<String> = theirs.difference(&ours).take(3).map(|n| n.escape_ascii().to_string()).collect();
            diffs.push(format!(
                "/{rel}: unionrs lists {} names, overlayfs {}; only on unionrs e.g. {only_u:?}, only on overlayfs e.g. {only_o:?}",
                ours.len(),
                theirs.len()
            ));
        }
        if rel == "m" && ours != expected_m {
            diffs.push(format!("/m: unionrs lists {} names, the layers define {}", ours.len(), expected_m.len()));
        }
    }
    verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// 3. Every change fails with EROFS

/// The errno of a libc call that returns -1 on failure (0 on success).
fn call(r: libc::c_int) -> i32 {
    if r < 0 {
        sys::errno()
    } else {
        0
    }
}

fn c_at(m: &Path, rel: &str) -> CString {
    sys::cpath(&m.join(rel))
}

/// open(2) `rel` under `m`; closes the file if that worked.
fn open_close(m: &Path, rel: &str, flags: libc::c_int) -> i32 {
    let c = c_at(m, rel);
    // SAFETY: valid string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return sys::errno();
    }
    // SAFETY: we just opened fd.
    unsafe { libc::close(fd) };
    0
}

/// Runs `f` on a read-only file descriptor of `rel`.
fn with_fd(m: &Path, rel: &str, f: impl FnOnce(libc::c_int) -> libc::c_int) -> i32 {
    match File::open(m.join(rel)) {
        Ok(file) => call(f(file.as_raw_fd())),
        Err(e) => errno_of(&e),
    }
}

type Op = (&'static str, fn(&Path) -> i32);

fn modifying_ops() -> Vec<Op> {
    const V: &[u8] = b"v";
    // SAFETY (all closures): the strings are valid for the duration of each call.
    vec![
        ("open(f, O_WRONLY)", |m| open_close(m, "f", libc::O_WRONLY)),
        ("open(f, O_RDWR)", |m| open_close(m, "f", libc::O_RDWR)),
        ("open(f, O_RDONLY|O_TRUNC)", |m| open_close(m, "f", libc::O_RDONLY | libc::O_TRUNC)),
        ("open(f, O_WRONLY|O_APPEND)", |m| open_close(m, "f", libc::O_WRONLY | libc::O_APPEND)),
        ("open(ln -> f, O_WRONLY)", |m| open_close(m, "ln", libc::O_WRONLY)),
        ("open(new, O_CREAT|O_WRONLY)", |m| open_close(m, "new", libc::O_CREAT | libc::O_WRONLY)),
        ("open(d/new, O_CREAT|O_EXCL|O_RDWR)", |m| open_close(m, "d/new", libc::O_CREAT | libc::O_EXCL | libc::O_RDWR)),
        ("mkdir(newdir)", |m| call(unsafe { libc::mkdir(c_at(m, "newdir").as_ptr(), 0o755) })),
        ("mkdir(d/sub)", |m| call(unsafe { libc::mkdir(c_at(m, "d/sub").as_ptr(), 0o755) })),
        ("rmdir(d)", |m| call(unsafe { libc::rmdir(c_at(m, "d").as_ptr()) })),
        ("unlink(f)", |m| call(unsafe { libc::unlink(c_at(m, "f").as_ptr()) })),
        ("unlink(ln)", |m| call(unsafe { libc::unlink(c_at(m, "ln").as_ptr()) })),
        ("unlink(d/in1)", |m| call(unsafe { libc::unlink(c_at(m, "d/in1").as_ptr()) })),
        ("rename(f, g)", |m| call(unsafe { libc::rename(c_at(m, "f").as_ptr(), c_at(m, "g").as_ptr()) })),
        ("rename(f, d/in0)", |m| call(unsafe { libc::rename(c_at(m, "f").as_ptr(), c_at(m, "d/in0").as_ptr()) })),
        ("rename(d, d2)", |m| call(unsafe { libc::rename(c_at(m, "d").as_ptr(), c_at(m, "d2").as_ptr()) })),
        ("link(f, h)", |m| call(unsafe { libc::link(c_at(m, "f").as_ptr(), c_at(m, "h").as_ptr()) })),
        ("symlink(f, s2)", |m| call(unsafe { libc::symlink(sys::cstr("f").as_ptr(), c_at(m, "s2").as_ptr()) })),
        ("mknod(fifo)", |m| call(unsafe { libc::mknod(c_at(m, "fifo").as_ptr(), libc::S_IFIFO | 0o644, 0) })),
        ("chmod(f)", |m| call(unsafe { libc::chmod(c_at(m, "f").as_ptr(), 0o777) })),
        ("chmod(d)", |m| call(unsafe { libc::chmod(c_at(m, "d").as_ptr(), 0o700) })),
        ("chown(f)", |m| call(unsafe { libc::chown(c_at(m, "f").as_ptr(), 1, 1) })),
        ("lchown(ln)", |m| call(unsafe { libc::lchown(c_at(m, "ln").as_ptr(), 1, 1) })),
        ("utimensat(f, now)", |m| call(unsafe { libc::utimensat(libc::AT_FDCWD, c_at(m, "f").as_ptr(), std::ptr::null(), 0) })),
        ("utimensat(f, 2002-01-01)", |m| sys::set_times(&m.join("f"), (1_009_843_200, 0), (1_009_843_200, 0))),
        ("utimensat(ln, AT_SYMLINK_NOFOLLOW)", |m| {
            call(unsafe { libc::utimensat(libc::AT_FDCWD, c_at(m, "ln").as_ptr(), std::ptr::null(), libc::AT_SYMLINK_NOFOLLOW) })
        }),
        ("truncate(f, 0)", |m| call(unsafe { libc::truncate(c_at(m, "f").as_ptr(), 0) })),
        ("truncate(f, 100000)", |m| call(unsafe { libc::truncate(c_at(m, "f").as_ptr(), 100_000) })),
        ("setxattr(f, user.new)", |m| {
            call(unsafe { libc::setxattr(c_at(m, "f").as_ptr(), sys::cstr("user.new").as_ptr(), V.as_ptr().cast(), V.len(), 0) })
        }),
        ("setxattr(d, user.new)", |m| {
            call(unsafe { libc::setxattr(c_at(m, "d").as_ptr(), sys::cstr("user.new").as_ptr(), V.as_ptr().cast(), V.len(), 0) })
        }),
        ("lsetxattr(ln, trusted.new)", |m| {
            call(unsafe { libc::lsetxattr(c_at(m, "ln").as_ptr(), sys::cstr("trusted.new").as_ptr(), V.as_ptr().cast(), V.len(), 0) })
        }),
        ("removexattr(f, user.test)", |m| call(unsafe { libc::removexattr(c_at(m, "f").as_ptr(), sys::cstr("user.test").as_ptr()) })),
        ("removexattr(d, user.test)", |m| call(unsafe { libc::removexattr(c_at(m, "d").as_ptr(), sys::cstr("user.test").as_ptr()) })),
        ("fchmod(read-only fd of f)", |m| with_fd(m, "f", |fd| unsafe { libc::fchmod(fd, 0o777) })),
        ("fchown(read-only fd of f)", |m| with_fd(m, "f", |fd| unsafe { libc::fchown(fd, 1, 1) })),
        ("futimens(read-only fd of f)", |m| with_fd(m, "f", |fd| unsafe { libc::futimens(fd, std::ptr::null()) })),
        ("fsetxattr(read-only fd of f)", |m| {
            with_fd(m, "f", |fd| unsafe { libc::fsetxattr(fd, sys::cstr("user.new").as_ptr(), V.as_ptr().cast(), V.len(), 0) })
        }),
        ("fremovexattr(read-only fd of f)", |m| with_fd(m, "f", |fd| unsafe { libc::fremovexattr(fd, sys::cstr("user.test").as_ptr()) })),
    ]
}

const F_CONTENT: &[u8] = b"the lower file f\n";

fn erofs() -> TestResult {
    let mut s = Scratch::new("ro_erofs");
    let (l0, l1) = (Layer::new(s.path("l0")), Layer::new(s.path("l1")));
    l0.file("d/in0", "top\n").file("top_file", "top\n").xattr("d", "user.test", "d-value");
    l1.file("f", F_CONTENT).xattr("f", "user.test", "f-value").file("d/in1", "lower\n").symlink("ln", "f");
    for (i, l) in [&l0, &l1].iter().enumerate() {
        stamp_times(&l.root, 1_100_000_000 + i as i64 * 1_000_000, &[]);
    }
    let f_before = Stat::of(&l1.path("f")).map_err(|e| format!("lstat lower f: {}", errno_name(e)))?;
    let layer_opts = WalkOpts { dino_of_dirs: true, dotdot: true };
    let before = [walk("l0 before", &l0.root, layer_opts)?, walk("l1 before", &l1.root, layer_opts)?];
    let (u, o) = mount_both(&mut s, &[&l0.root, &l1.root])?;

    let mut diffs = vec![];
    for (what, op) in modifying_ops() {
        let (ours, theirs) = (op(&u), op(&o));
        if ours != libc::EROFS || theirs != libc::EROFS {
            diffs.push(format!("{what}: unionrs {}, overlayfs {}, want EROFS", errno_name(ours), errno_name(theirs)));
        }
    }

    // Nothing reached the layers.
    let after = [walk("l0 after", &l0.root, layer_opts)?, walk("l1 after", &l1.root, layer_opts)?];
    for (b, a) in before.iter().zip(&after) {
        diffs.extend(diff_walks(b, a, true));
    }
    match (read_file(&l1.path("f")), Stat::of(&l1.path("f"))) {
        (Ok(c), Ok(st)) => {
            check!(c == F_CONTENT, "lower f changed: {}", bytes_diff(F_CONTENT, &c));
            check!(
                (st.mtime, st.mtime_nsec) == (f_before.mtime, f_before.mtime_nsec),
                "lower f mtime changed from {}.{:09} to {}.{:09}",
                f_before.mtime,
                f_before.mtime_nsec,
                st.mtime,
                st.mtime_nsec
            );
        }
        (c, st) => diffs.push(format!("lower f: read {}, lstat {}", describe_err(&c, |_| "ok".into()), describe_err(&st, |_| "ok".into()))),
    }
    match read_file(&u.join("f")) {
        Ok(c) if c == F_CONTENT => {}
        other => diffs.push(format!("unionrs /f after the failed changes: read {}", describe_err(&other, |c| bytes_diff(F_CONTENT, c)))),
    }
    verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// 4. Reading through the union leaves the lower atime alone

/// 2001-01-01T00:00:00Z.
const ATIME_2001: i64 = 978_307_200;

fn read_via_mmap(p: &Path) -> Result<Vec<u8>, String> {
    let f = File::open(p).map_err(|e| format!("open: {e}"))?;
    let len = f.metadata().map_err(|e| format!("fstat: {e}"))?.len() as usize;
    if len == 0 {
        return Ok(vec![]);
    }
    // SAFETY: a fresh read-only shared mapping of an open file; checked for MAP_FAILED.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    if addr == libc::MAP_FAILED {
        return Err(format!("mmap: {}", errno_name(sys::errno())));
    }
    // SAFETY: the mapping covers len bytes and stays until munmap below.
    let v = unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec();
    // SAFETY: we mapped exactly this range.
    unsafe { libc::munmap(addr, len) };
    Ok(v)
}

fn read_via_sendfile(p: &Path, tmp: &Path) -> Result<Vec<u8>, String> {
    let src = File::open(p).map_err(|e| format!("open: {e}"))?;
    let len = src.metadata().map_err(|e| format!("fstat: {e}"))?.len() as usize;
    let dst = File::create(tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: both fds are open; off is a valid in/out offset.
        let n = unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut off, len - off as usize) };
        if n < 0 {
            return Err(format!("sendfile: {}", errno_name(sys::errno())));
        }
        if n == 0 {
            break;
        }
    }
    drop(dst);
    fs::read(tmp).map_err(|e| format!("reading back {}: {e}", tmp.display()))
}

fn read_via_splice(p: &Path) -> Result<Vec<u8>, String> {
    let src = File::open(p).map_err(|e| format!("open: {e}"))?;
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", errno_name(sys::errno())));
    }
    // SAFETY: pipe2 just opened both; OwnedFd closes them.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut pipe_out = File::from(rd);
    let mut out = Vec::new();
    let mut off: libc::loff_t = 0;
    loop {
        // SAFETY: valid fds; off is a valid in/out offset; the pipe end has no offset.
        let n = unsafe { libc::splice(src.as_raw_fd(), &mut off, wr.as_raw_fd(), std::ptr::null_mut(), 65_536, 0) };
        if n < 0 {
            return Err(format!("splice: {}", errno_name(sys::errno())));
        }
        if n == 0 {
            break;
        }
        let mut chunk = vec![0u8; n as usize];
        pipe_out.read_exact(&mut chunk).map_err(|e| format!("reading the pipe: {e}"))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads `file` (on a union) every way, checking the content and that the lower file's atime
/// (`lower`, set to 2001 first) does not move.
fn atime_case(label: &str, file: &Path, lower: &Path, want: &[u8], tmp: &Path) -> Result<Vec<String>, String> {
    let rc = sys::set_times(lower, (ATIME_2001, 0), (0, libc::UTIME_OMIT));
    check!(rc == 0, "setting the lower atime: {}", errno_name(rc));
    let mut out = vec![];
    let atime_check = |after: &str, out: &mut Vec<String>| match sys::lstat(lower) {
        Ok(st) if (st.st_atime, st.st_atime_nsec) == (ATIME_2001, 0) => {}
        Ok(st) => {
            out.push(format!("{label}: after {after}, the lower file's atime is {}.{:09}, was {ATIME_2001}", st.st_atime, st.st_atime_nsec))
        }
        Err(e) => out.push(format!("{label}: lstat of the lower file: {}", errno_name(e))),
    };
    let content = |how: &str, got: Result<Vec<u8>, String>, out: &mut Vec<String>| match got {
        Ok(v) if v == want => {}
        Ok(v) => out.push(format!("{label}: {how} content differs from the lower file: {}", bytes_diff(&v, want))),
        Err(e) => out.push(format!("{label}: {how}: {e}")),
    };
    content("read()", read_file(file).map_err(errno_name), &mut out);
    atime_check("read()", &mut out);
    content("mmap", read_via_mmap(file), &mut out);
    atime_check("mmap", &mut out);
    content("sendfile", read_via_sendfile(file, tmp), &mut out);
    atime_check("sendfile", &mut out);
    content("splice", read_via_splice(file), &mut out);
    atime_check("splice", &mut out);
    match sys::lstat(file) {
        Ok(st) if st.st_atime == ATIME_2001 => {}
        Ok(st) => out.push(format!("{label}: the union file's st_atime is {}, the lower file's {ATIME_2001}", st.st_atime)),
        Err(e) => out.push(format!("{label}: lstat of the union file: {}", errno_name(e))),
    }
    Ok(out)
}

fn no_atime_on_lower() -> TestResult {
    let mut s = Scratch::new("ro_atime");
    let (l0, l1) = (Layer::new(s.path("l0")), Layer::new(s.path("l1")));
    l0.file("other", "x\n");
    // Three pages and a bit, so that mmap and splice cross page boundaries.
    let data: Vec<u8> = (0..12_411u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    l1.file("data", &data);
    let (u, o) = mount_both(&mut s, &[&l0.root, &l1.root])?;
    let lower = l1.path("data");
    let mut diffs = atime_case("unionrs", &u.join("data"), &lower, &data, &s.path("sendfile-unionrs"))?;
    // The reference: if this fails, overlayfs does touch the lower atime and the test is wrong.
    diffs.extend(atime_case("overlayfs (the reference)", &o.join("data"), &lower, &data, &s.path("sendfile-overlayfs"))?);
    verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// 5. Layers on tmpfs, ext4 and xfs

/// Runs a command; its trimmed stdout, or an error with its stderr.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("running {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}: {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The scratch tmpfs plus filesystems on loop devices and the unions over them; Drop undoes
/// everything in order: unions, then each loop filesystem and its device, then the tmpfs.
struct MultiFs {
    unions: Vec<PathBuf>,
    loops: Vec<(String, PathBuf)>,
    s: Scratch,
}

impl MultiFs {
    /// Makes a `size`-byte image, formats it with `mkfs` (command and flags; the image path is
    /// appended), attaches it to a loop device and mounts it at `rel`.
    fn loop_fs(&mut self, rel: &str, size: u64, mkfs: &[&str], fstype: &str) -> Result<PathBuf, String> {
        let img = self.s.path(&format!("{rel}.img"));
        let img_str = img.to_str().ok_or("image path is not UTF-8")?.to_string();
        File::create(&img).and_then(|f| f.set_len(size)).map_err(|e| format!("creating {img_str}: {e}"))?;
        let mut args = mkfs[1..].to_vec();
        args.push(&img_str);
        run(mkfs[0], &args)?;
        let dev = run("losetup", &["--find", "--show", &img_str])?;
        let mnt = self.s.dir(rel);
        self.loops.push((dev.clone(), mnt.clone()));
        let rc = sys::mount(&dev, &mnt, fstype, 0, "");
        check!(rc == 0, "mounting {fstype} on {dev} at {}: {}", mnt.display(), errno_name(rc));
        Ok(mnt)
    }

    fn union(&mut self, fstype: &str, rel: &str, layers: &[&Path]) -> Result<PathBuf, String> {
        let t = self.s.dir(rel);
        mount_layers(fstype, &t, layers)?;
        self.unions.push(t.clone());
        Ok(t)
    }
}

impl Drop for MultiFs {
    fn drop(&mut self) {
        for m in self.unions.iter().rev() {
            while sys::umount(m) == 0 {}
        }
        for (dev, mnt) in self.loops.iter().rev() {
            while sys::umount(mnt) == 0 {}
            if let Err(e) = run("losetup", &["-d", dev]) {
                eprintln!("readonly.multi_fs cleanup: {e}");
            }
        }
    }
}

fn build_multi_fs_tree(l: &[Layer; 3]) {
    let [l0, l1, l2] = l;
    for (i, layer) in l.iter().enumerate() {
        layer
            .file(format!("merged/l{i}"), format!("layer {i}\n"))
            .file(format!("merged/sub/l{i}"), format!("sub, layer {i}\n"))
            .file(format!("merged/sub/deeper/l{i}"), format!("deeper, layer {i}\n"))
            .file("merged/shared", format!("shared, layer {i} version\n"));
    }
    l0.whiteout("merged/wh").whiteout("gone_dir");
    l1.file("merged/wh", "hidden\n").file("gone_dir/x", "hidden\n");
    l2.file("merged/wh", "hidden\n");
    l0.opaque("opq", "y").file("opq/top", "visible\n");
    l1.file("opq/mid", "hidden\n");
    l2.file("opq/bottom", "hidden\n");
    l0.file("file_over_dir", "file\n");
    l2.file("file_over_dir/inner", "hidden\n");
    // Hard links on ext4, one of them in a merged directory.
    l1.file("ext4_links/a", "linked\n").hardlink("ext4_links/a", "ext4_links/b").hardlink("ext4_links/a", "merged/sub/c_link");
    l1.symlink("merged/rel", "shared").xattr("merged/l1", "user.test", "ext4");
    l2.symlink("merged/abs", "/nowhere/at/all").xattr("merged/l2", "user.test", "xfs").xattr("merged/sub", "user.dir", "xfs-dir");
    l0.xattr("merged/l0", "user.test", "tmpfs");
    l2.file("xfs_only/deep/file", "x\n").node("xfs_only/fifo", libc::S_IFIFO | 0o600, 0);
    l1.dir("ext4_only/empty").file("ext4_only/owned", "x\n").chown("ext4_only/owned", 1000, 1000).chmod("ext4_only/owned", 0o640);
    Spread::new(300, 10, 7).build(l, "spread");
}

fn multi_fs() -> TestResult {
    let mut g = MultiFs { unions: vec![], loops: vec![], s: Scratch::new("ro_multi_fs") };
    let l1_root = g.loop_fs("l1", 64 << 20, &["mkfs.ext4", "-q", "-F"], "ext4")?;
    // mkfs.xfs refuses filesystems under 300 MB; leave some room above that.
    let l2_root = g.loop_fs("l2", 320 << 20, &["mkfs.xfs", "-q", "-f"], "xfs")?;
    let layers = [Layer::new(g.s.path("l0")), Layer { root: l1_root }, Layer { root: l2_root }];
    build_multi_fs_tree(&layers);
    for (i, l) in layers.iter().enumerate() {
        stamp_times(&l.root, 1_200_000_000 + i as i64 * 10_000_000, &[]);
    }
    let paths = layer_paths(&layers);
    let u = g.union("unionrs", "u", &paths)?;
    let o = g.union("overlay", "o", &paths)?;

    let c = compare_trees(&u, &o, &CompareOpts { same_fs: false })?;
    let mut diffs = c.diffs;
    for rel in ["merged/wh", "gone_dir", "opq/mid", "opq/bottom", "file_over_dir/inner"] {
        if c.ours.nodes.contains_key(rel.as_bytes()) {
            diffs.push(format!("unionrs /{rel}: visible, but should be hidden"));
        }
    }

    // Directory inode numbers are the union's own here: they must stay the same when the
    // union's inodes are evicted and looked up again, and across a remount.
    let before: Vec<(&Vec<u8>, u64)> = c.ours.nodes.iter().filter_map(|(rel, n)| n.stat.as_ref().ok().map(|s| (rel, s.ino))).collect();
    let recheck = |when: &str, diffs: &mut Vec<String>| {
        for (rel, ino) in &before {
            match Stat::of(&bpath(&u, rel)) {
                Ok(st) if st.ino == *ino => {}
                Ok(st) => diffs.push(format!("unionrs {}: st_ino {ino} at first, {} {when}", show(rel), st.ino)),
                Err(e) => diffs.push(format!("unionrs {}: lstat {when}: {}", show(rel), errno_name(e))),
            }
        }
    };
    fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("dropping caches: {e}"))?;
    recheck("after dropping caches", &mut diffs);
    let rc = sys::umount(&u);
    check!(rc == 0, "umount unionrs: {}", errno_name(rc));
    mount_layers("unionrs", &u, &paths)?;
    recheck("after a remount", &mut diffs);
    verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// 6. remount read-write, O_DIRECT, file size as the VFS sees it

/// What the VFS itself derives from the union inode, on both mounts: a read-write remount of
/// a union without upper layer is refused with EROFS, O_DIRECT opens work, FIONREAD and
/// SEEK_END see the real size.
fn remount_and_open_modes() -> TestResult {
    let mut s = Scratch::new("ro_remount");
    let (l1, l2) = (s.dir("l1"), s.dir("l2"));
    let content = b"twelve bytes";
    std::fs::write(l2.join("f"), content).map_err(|e| e.to_string())?;
    let (u, o) = mount_both(&mut s, &[&l1, &l2])?;
    let mut problems = vec![];
    for (label, m) in [("unionrs", &u), ("overlayfs", &o)] {
        let rc = sys::mount("none", m, "", libc::MS_REMOUNT, "");
        if rc != libc::EROFS {
            problems.push(format!("{label}: read-write remount gave {}, want EROFS", errno_name(rc)));
        }
        let c = sys::cpath(&m.join("f"));
        // SAFETY: valid path string.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECT) };
        if fd < 0 {
            problems.push(format!("{label}: O_DIRECT open failed: {}", errno_name(sys::errno())));
            continue;
        }
        let mut n: libc::c_int = -1;
        // SAFETY: valid fd and out pointer.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        if r != 0 || n as usize != content.len() {
            problems.push(format!("{label}: FIONREAD gave {n} (rc {r}), want {}", content.len()));
        }
        // SAFETY: valid fd.
        let end = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
        if end as usize != content.len() {
            problems.push(format!("{label}: SEEK_END gave {end}, want {}", content.len()));
        }
        // SAFETY: we opened fd.
        unsafe { libc::close(fd) };
    }
    verdict(problems)
}
