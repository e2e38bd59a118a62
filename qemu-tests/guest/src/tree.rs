//! Whole trees as the tests see them (readdir, lstat, content, symlink targets, xattrs), and
//! how two of them differ: shared by the read-only and the writable differentials.

use crate::sys::{self, errno_name};
use crate::util::{bpath, bytes_diff, join_rel, show};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CStr;
use std::hash::Hash;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// An open directory stream (opendir/readdir), for d_type, d_ino and positions.
pub struct DirStream(*mut libc::DIR);

/// One entry as readdir returns it.
pub struct DirEnt {
    pub name: Vec<u8>,
    pub ino: u64,
    pub d_type: u8,
}

impl DirStream {
    pub fn open(p: &Path) -> Result<Self, i32> {
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
    pub fn next(&mut self) -> Result<Option<DirEnt>, i32> {
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

    pub fn fd(&self) -> libc::c_int {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::dirfd(self.0) }
    }

    pub fn tell(&mut self) -> libc::c_long {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::telldir(self.0) }
    }

    pub fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::seekdir(self.0, pos) }
    }

    pub fn rewind(&mut self) {
        // SAFETY: self.0 is an open stream.
        unsafe { libc::rewinddir(self.0) }
    }

    /// Every remaining entry, "." and ".." included.
    pub fn read_all(&mut self) -> Result<Vec<DirEnt>, i32> {
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

/// The names in directory `p`, without "." and "..", sorted.
pub fn names_in(p: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let mut names: Vec<Vec<u8>> = DirStream::open(p)?.read_all()?.into_iter().map(|e| e.name).filter(|n| n != b"." && n != b"..").collect();
    names.sort();
    Ok(names)
}

/// The whole content of a file, through read(2); opened non-blocking, so that a FIFO without
/// a writer reads as empty instead of waiting for one.
pub fn read_file(p: &Path) -> Result<Vec<u8>, i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(p).map_err(|e| crate::util::errno_of(&e))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).map_err(|e| crate::util::errno_of(&e))?;
    Ok(v)
}

pub fn readlink(p: &Path) -> Result<Vec<u8>, i32> {
    std::fs::read_link(p).map(|t| t.into_os_string().into_vec()).map_err(|e| crate::util::errno_of(&e))
}

/// lstat of `name` in the directory open as `dirfd`.
pub fn lstat_at(dirfd: libc::c_int, name: &[u8]) -> Result<libc::stat, i32> {
    let c = std::ffi::CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: zeroed stat is a valid out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, string and out pointer.
    if unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(sys::errno());
    }
    Ok(st)
}

pub fn is_fmt(st: &libc::stat, fmt: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == fmt
}

/// The d_type readdir should report for a file mode.
pub fn dtype_of(mode: u32) -> u8 {
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

/// What kind of object `st` is, for messages.
pub fn kind(st: &libc::stat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFREG => "file",
        libc::S_IFLNK => "symlink",
        libc::S_IFCHR if st.st_rdev == 0 => "whiteout",
        libc::S_IFCHR => "char device",
        libc::S_IFBLK => "block device",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        _ => "other",
    }
}

/// Short printable form of a value.
pub fn show_bytes(v: &[u8]) -> String {
    if v.len() <= 64 && v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(v))
    } else {
        format!("<{} bytes, fnv {:016x}>", v.len(), fnv(v))
    }
}

pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

/// A value or an error, for messages.
fn text(r: &Result<Vec<u8>, i32>) -> String {
    match r {
        Ok(v) => show_bytes(v),
        Err(e) => format!("error {}", errno_name(*e)),
    }
}

fn opt_text(x: &Option<Result<Vec<u8>, i32>>) -> String {
    x.as_ref().map_or_else(|| "-".to_string(), text)
}

/// Sorted xattr names, each with its value.
pub type Xattrs = Result<Vec<(Vec<u8>, Result<Vec<u8>, i32>)>, i32>;

/// What one object looks like.
pub struct Node {
    /// d_type and d_ino as the parent's readdir reported them (the root: DT_DIR, its st_ino).
    pub d_type: u8,
    pub d_ino: u64,
    pub st: libc::stat,
    /// Regular files: the content.
    pub content: Option<Result<Vec<u8>, i32>>,
    /// Symlinks: the target.
    pub link: Option<Result<Vec<u8>, i32>>,
    pub xattrs: Xattrs,
    /// Directories: getxattr of each of the walk's probes.
    pub private: Vec<Result<Vec<u8>, i32>>,
    /// Directories: readdir's d_ino of "." and "..".
    pub dots: [u64; 2],
}

impl Node {
    fn read(p: &Path, d_type: u8, d_ino: u64, st: libc::stat, probes: &[&str]) -> Node {
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
            content: is_fmt(&st, libc::S_IFREG).then(|| read_file(p)),
            link: is_fmt(&st, libc::S_IFLNK).then(|| readlink(p)),
            private: if is_fmt(&st, libc::S_IFDIR) { probes.iter().map(|n| sys::lgetxattr(p, n.as_bytes())).collect() } else { vec![] },
            xattrs,
            st,
            dots: [0; 2],
        }
    }

    fn stat_only(d_type: u8, d_ino: u64, st: libc::stat) -> Node {
        Node { d_type, d_ino, st, content: None, link: None, xattrs: Ok(vec![]), private: vec![], dots: [0; 2] }
    }

    pub fn is_dir(&self) -> bool {
        is_fmt(&self.st, libc::S_IFDIR)
    }
}

/// How a tree is read.
#[derive(Clone, Copy, Default)]
pub struct WalkOpts<'a> {
    /// Directories (relative paths) whose entries are read by readdir and lstat only: no
    /// content, no xattrs (for very big ones).
    pub shallow: &'a [&'a [u8]],
    /// Xattrs read with getxattr on every directory (listxattr may hide them).
    pub probes: &'a [&'a str],
    /// readdir's d_ino of a directory (an entry, or ".") must be its st_ino. Not "..":
    /// overlayfs lists the top layer's parent there, which is not the union parent's st_ino
    /// when the parent's top layer is another one (unionrs lists the same).
    pub dir_dino: bool,
}

/// A whole tree, keyed by path relative to its root.
pub struct Walk {
    pub label: String,
    pub nodes: BTreeMap<Vec<u8>, Node>,
    /// Inconsistencies within the tree (readdir against lstat, duplicate names, ...).
    pub problems: Vec<String>,
}

/// Reads the tree at `root` without following symlinks.
pub fn walk(label: &str, root: &Path, opts: &WalkOpts) -> Walk {
    let mut w = Walk { label: label.to_string(), nodes: BTreeMap::new(), problems: vec![] };
    match sys::lstat(root) {
        Ok(st) => {
            w.nodes.insert(vec![], Node::read(root, libc::DT_DIR, st.st_ino, st, opts.probes));
        }
        Err(e) => {
            w.problems.push(format!("{label}: lstat of the root {}: {}", root.display(), errno_name(e)));
            return w;
        }
    }
    let mut pending: Vec<Vec<u8>> = vec![vec![]];
    while let Some(dir) = pending.pop() {
        // Entries are stat'ed relative to the open directory: one path component per call
        // instead of the whole path, which matters for 100 000 entries under emulation.
        let mut stream = match DirStream::open(&bpath(root, &dir)) {
            Ok(s) => s,
            Err(e) => {
                w.problems.push(format!("{label} {}: opendir: {}", show(&dir), errno_name(e)));
                continue;
            }
        };
        let entries = match stream.read_all() {
            Ok(e) => e,
            Err(e) => {
                w.problems.push(format!("{label} {}: readdir: {}", show(&dir), errno_name(e)));
                continue;
            }
        };
        let ino_of = |w: &Walk, rel: &[u8]| w.nodes.get(rel).map(|n| n.st.st_ino);
        let dir_ino = ino_of(&w, &dir);
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(entries.len());
        for e in entries {
            let name = String::from_utf8_lossy(&e.name).to_string();
            if !seen.insert(e.name.clone()) {
                w.problems.push(format!("{label} {}: readdir lists {name:?} twice", show(&dir)));
                continue;
            }
            if e.name == b"." || e.name == b".." {
                if e.name == b"." && opts.dir_dino && Some(e.ino) != dir_ino {
                    w.problems.push(format!("{label} {}: readdir d_ino of \".\" is {}, lstat st_ino {dir_ino:?}", show(&dir), e.ino));
                }
                if e.d_type != libc::DT_DIR {
                    w.problems.push(format!("{label} {}: d_type of {name:?} is {}", show(&dir), e.d_type));
                }
                if let Some(n) = w.nodes.get_mut(&dir) {
                    n.dots[e.name.len() - 1] = e.ino;
                }
                continue;
            }
            let rel = join_rel(&dir, &e.name);
            let st = match lstat_at(stream.fd(), &e.name) {
                Ok(st) => st,
                Err(err) => {
                    w.problems.push(format!("{label} {}: listed by readdir, but lstat fails: {}", show(&rel), errno_name(err)));
                    continue;
                }
            };
            if e.d_type != dtype_of(st.st_mode) {
                w.problems.push(format!("{label} {}: readdir d_type {}, lstat mode {:o}", show(&rel), e.d_type, st.st_mode));
            }
            if is_fmt(&st, libc::S_IFDIR) {
                if opts.dir_dino && e.ino != st.st_ino {
                    w.problems.push(format!("{label} {}: readdir d_ino {}, lstat st_ino {}", show(&rel), e.ino, st.st_ino));
                }
                pending.push(rel.clone());
            }
            let node = if opts.shallow.contains(&dir.as_slice()) {
                Node::stat_only(e.d_type, e.ino, st)
            } else {
                Node::read(&bpath(root, &rel), e.d_type, e.ino, st, opts.probes)
            };
            w.nodes.insert(rel, node);
        }
        for dot in [&b"."[..], b".."] {
            if !seen.contains(dot) {
                w.problems.push(format!("{label} {}: readdir lacks {:?}", show(&dir), String::from_utf8_lossy(dot)));
            }
        }
    }
    w
}

/// Which inode numbers two trees must share.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Inos {
    /// None (the trees are on different filesystems, or behind different upper layers).
    Ignore,
    /// st_ino and readdir's d_ino of non-directories.
    NonDirs,
    /// Of every object.
    All,
}

/// What [`diff_trees`] compares besides names, types, modes, owners, sizes, symlink targets,
/// data, xattrs and the probed xattrs.
pub struct Cmp<'a> {
    pub nlink: bool,
    pub blocks: bool,
    pub d_type: bool,
    pub inos: Inos,
    /// readdir's d_ino equals st_ino (non-directories) on the second tree wherever it does on
    /// the first (the reference): a tree may be more consistent than overlayfs, not less.
    /// overlayfs keeps a per-directory cache of the d_ino of copied-up entries that a hard
    /// link into a non-merged directory does not invalidate (ovl_dir_version_inc() counts only
    /// "impurity" changes there), so a new link's d_ino can stay the upper inode's while
    /// st_ino is the origin's.
    pub dino_not_worse: bool,
    /// Hard links (non-directories sharing st_dev/st_ino) form the same groups.
    pub links: bool,
    /// With `links`: names that the first tree (the reference) shows as hard links (nlink of
    /// 2 or more) under two inode numbers may share one on the second tree. overlayfs without
    /// `index` numbers a copied-up file by its origin only where it can follow the origin
    /// (not from a user namespace, which cannot decode file handles), so the names looked up
    /// afresh get the upper inode's number; a tree may be more consistent than that.
    pub links_not_worse: bool,
    /// For a path: whether to compare (atime, mtime).
    pub times: &'a dyn Fn(&[u8]) -> (bool, bool),
    pub xattr_skip: &'a [&'a str],
    /// Compared by presence and size only.
    pub xattr_presence: &'a [&'a str],
}

fn xattrs_text(x: &Xattrs, cmp: &Cmp) -> String {
    match x {
        Err(e) => format!("listxattr error {}", errno_name(*e)),
        Ok(list) => {
            let has = |set: &[&str], n: &[u8]| set.iter().any(|s| s.as_bytes() == n);
            let items: Vec<String> = list
                .iter()
                .filter(|(n, _)| !has(cmp.xattr_skip, n))
                .map(|(n, v)| match v {
                    Ok(v) if has(cmp.xattr_presence, n) => format!("{}=<{} bytes>", n.escape_ascii(), v.len()),
                    v => format!("{}={}", n.escape_ascii(), text(v)),
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn diff_nodes(rel: &[u8], a: (&str, &Node), b: (&str, &Node), cmp: &Cmp, out: &mut Vec<String>) {
    let ((la, na), (lb, nb)) = (a, b);
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{}: {name}: {la} {x}, {lb} {y}", show(rel)));
        }
    };
    let (x, y) = (&na.st, &nb.st);
    field("mode", format!("{:o}", x.st_mode), format!("{:o}", y.st_mode));
    field("uid", x.st_uid.to_string(), y.st_uid.to_string());
    field("gid", x.st_gid.to_string(), y.st_gid.to_string());
    field("size", x.st_size.to_string(), y.st_size.to_string());
    if cmp.nlink {
        field("nlink", x.st_nlink.to_string(), y.st_nlink.to_string());
    }
    if cmp.blocks {
        field("blocks", x.st_blocks.to_string(), y.st_blocks.to_string());
    }
    if is_fmt(x, libc::S_IFCHR) || is_fmt(x, libc::S_IFBLK) {
        field("rdev", format!("{:#x}", x.st_rdev), format!("{:#x}", y.st_rdev));
    }
    if cmp.d_type {
        field("d_type", na.d_type.to_string(), nb.d_type.to_string());
    }
    let (atime, mtime) = (cmp.times)(rel);
    if mtime {
        field("mtime", format!("{}.{:09}", x.st_mtime, x.st_mtime_nsec), format!("{}.{:09}", y.st_mtime, y.st_mtime_nsec));
    }
    if atime {
        field("atime", format!("{}.{:09}", x.st_atime, x.st_atime_nsec), format!("{}.{:09}", y.st_atime, y.st_atime_nsec));
    }
    if cmp.inos == Inos::All || (cmp.inos == Inos::NonDirs && !na.is_dir()) {
        field("st_ino", x.st_ino.to_string(), y.st_ino.to_string());
        field("d_ino", na.d_ino.to_string(), nb.d_ino.to_string());
        if na.is_dir() {
            field("d_ino of \".\" and \"..\"", format!("{:?}", na.dots), format!("{:?}", nb.dots));
        }
    }
    if cmp.dino_not_worse && !na.is_dir() && na.d_ino == x.st_ino && nb.d_ino != y.st_ino {
        field("readdir d_ino == st_ino", "true".to_string(), "false".to_string());
    }
    field("symlink target", opt_text(&na.link), opt_text(&nb.link));
    field("xattrs", xattrs_text(&na.xattrs, cmp), xattrs_text(&nb.xattrs, cmp));
    for (i, (px, py)) in na.private.iter().zip(&nb.private).enumerate() {
        field(&format!("getxattr probe {i}"), text(px), text(py));
    }
    if na.content != nb.content {
        let what = match (&na.content, &nb.content) {
            (Some(Ok(ca)), Some(Ok(cb))) => bytes_diff(ca, cb),
            (ca, cb) => format!("{la} {}, {lb} {}", opt_text(ca), opt_text(cb)),
        };
        out.push(format!("{}: content differs: {what}", show(rel)));
    }
}

/// Whether `rel` is `dir` or lies below it.
fn is_below(rel: &[u8], dir: &[u8]) -> bool {
    rel == dir || dir.is_empty() || (rel.starts_with(dir) && rel.get(dir.len()) == Some(&b'/'))
}

/// Differences between two walks of what should look the same (`la` and `lb` name them in
/// the messages), and the problems each walk found in itself.
pub fn diff_trees(la: &str, a: &Walk, lb: &str, b: &Walk, cmp: &Cmp) -> Vec<String> {
    let mut out: Vec<String> = a.problems.iter().chain(&b.problems).cloned().collect();
    // Subtrees already reported as a whole (missing on one side, or of another type).
    let mut reported: Vec<&[u8]> = vec![];
    let under = |reported: &[&[u8]], rel: &[u8]| reported.iter().any(|r| is_below(rel, r));
    for (rel, na) in &a.nodes {
        if under(&reported, rel) {
            continue;
        }
        let Some(nb) = b.nodes.get(rel) else {
            out.push(format!("{}: {} on {la}, missing on {lb}", show(rel), kind(&na.st)));
            reported.push(rel);
            continue;
        };
        if kind(&na.st) != kind(&nb.st) {
            out.push(format!("{}: {} on {la}, {} on {lb}", show(rel), kind(&na.st), kind(&nb.st)));
            reported.push(rel);
            continue;
        }
        diff_nodes(rel, (la, na), (lb, nb), cmp, &mut out);
    }
    for (rel, nb) in &b.nodes {
        if !a.nodes.contains_key(rel) && !under(&reported, rel) {
            out.push(format!("{}: {} on {lb}, missing on {la}", show(rel), kind(&nb.st)));
            reported.push(rel);
        }
    }
    if cmp.links {
        let linked_in_a = |x: &[u8], y: &[u8]| {
            let nlink = |rel: &[u8]| a.nodes.get(rel).map_or(0, |n| n.st.st_nlink);
            cmp.links_not_worse && nlink(x) >= 2 && nlink(y) >= 2
        };
        let key = |s: &libc::stat| (!is_fmt(s, libc::S_IFDIR)).then_some((s.st_dev, s.st_ino));
        out.extend(diff_groups((la, a), (lb, b), "an inode", key, linked_in_a));
    }
    out
}

/// Objects with the same `key` form groups (hard links share st_dev/st_ino, say); the groups
/// must be the same in both walks, except that two paths may share a group only in `b` where
/// `b_may_join` allows it. Objects for which `key` gives None are left out.
pub fn diff_groups<K: Hash + Eq>(
    (la, a): (&str, &Walk),
    (lb, b): (&str, &Walk),
    what: &str,
    key: impl Fn(&libc::stat) -> Option<K>,
    b_may_join: impl Fn(&[u8], &[u8]) -> bool,
) -> Vec<String> {
    fn group_ids<'w, K: Hash + Eq>(w: &'w Walk, key: &impl Fn(&libc::stat) -> Option<K>) -> HashMap<&'w [u8], usize> {
        let mut ids: HashMap<K, usize> = HashMap::new();
        let mut of = HashMap::new();
        for (rel, n) in &w.nodes {
            if let Some(k) = key(&n.st) {
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
            out.push(format!("{} and {} share {what} on {la} but not on {lb}", show(rel), show(first_a)));
        } else if want_x != x && !b_may_join(rel, first_b) {
            out.push(format!("{} and {} share {what} on {lb} but not on {la}", show(rel), show(first_b)));
        }
    }
    out
}
