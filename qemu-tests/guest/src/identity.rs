//! Object identity against overlayfs: `st_dev`, `st_ino` and readdir's `d_ino` of every object
//! of a union, with the layers on one filesystem and on several, with `xino=off|auto|on`.
//!
//! Each configuration is mounted by overlayfs over a fresh copy of its upper layer, walked,
//! two lower files copied up and walked again, remounted (the copies must keep their numbers:
//! `overlay.origin`), and mounted by unionrs (format interop); then the same with the roles
//! swapped, over another fresh copy. The lower layers are the same objects for both, so their
//! numbers can be compared as they are; an upper object's number is shown as "the upper
//! object's own" when it is that (each run has its own copy of the upper layer). Device
//! numbers are compared by what they are ("the union's", "the layer filesystem's", "the first
//! other one", ...), since each mount takes its own. The private xattrs the unions leave on
//! the upper layer (`overlay.origin` with its lower file handle, `overlay.impure`) must be
//! byte for byte the same. With `nfs_export=on`, file handles taken at the start are opened
//! after copy-up, after removals (stale), with cold caches, after a remount and by the other
//! implementation, and the index directories (directories' entries, whiteouts) must agree.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::DirStream;
use crate::trees::Layer;
use crate::util::{same_steps, show};
use crate::{check, Test, TestResult};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![Test::new("identity.st_dev_st_ino_d_ino", st_dev_st_ino_d_ino), Test::new("identity.index_hard_links", index_hard_links)]
}

/// The paths walked, in this order (every one is stat'ed; directories are also listed).
const PATHS: [&str; 12] = ["", "d", "d/f1", "d/sub", "d/sub/f2", "d/upper_file", "top", "h1", "h2", "link", "upper_only", "upper_dir"];

/// Builds the layers: `lower` (a merged directory, files, a hard link pair, a symlink) and,
/// if given, `upper` (its side of the merged directory, an upper-only file and directory).
fn build(lower: &Path, upper: Option<&Path>) -> TestResult {
    Layer::new(lower.to_path_buf())?
        .file("d/f1", b"f1\n")?
        .file("d/sub/f2", b"f2\n")?
        .file("top", b"top\n")?
        .file("h1", b"h\n")?
        .hardlink("h1", "h2")?
        .symlink("link", "top")?;
    if let Some(u) = upper {
        build_upper(u)?;
    }
    Ok(())
}

/// The upper layer's side of [`build`].
fn build_upper(u: &Path) -> TestResult {
    Layer::new(u.to_path_buf())?.file("d/upper_file", b"u\n")?.file("upper_only", b"u\n")?.dir("upper_dir")?;
    Ok(())
}

/// Names device numbers by what they are, in the order a walk meets them.
struct Devs {
    union: u64,
    real: Vec<(u64, &'static str)>,
    others: Vec<u64>,
}

impl Devs {
    fn name(&mut self, dev: u64) -> String {
        if dev == self.union {
            return "the union's".to_string();
        }
        if let Some((_, what)) = self.real.iter().find(|(d, _)| *d == dev) {
            return format!("{what}'s");
        }
        let k = self.others.iter().position(|d| *d == dev).unwrap_or_else(|| {
            self.others.push(dev);
            self.others.len() - 1
        });
        format!("other #{k}")
    }
}

/// The number of `upper/rel`, if the upper layer `upper` has that object.
fn upper_ino(upper: Option<&Path>, rel: &str) -> Option<u64> {
    let u = upper?;
    let p = if rel.is_empty() { u.to_path_buf() } else { u.join(rel) };
    sys::lstat(&p).ok().map(|st| st.st_ino)
}

/// `ino` as the union shows it for `rel`: "upper's own" if it is the number of the upper
/// layer's object at `rel` (which differs between two copies of the upper layer), else hex.
fn number(ino: u64, upper: Option<&Path>, rel: Option<&str>) -> String {
    match rel.and_then(|r| upper_ino(upper, r)) {
        Some(u) if u == ino => "upper's own".to_string(),
        _ => format!("{ino:#x}"),
    }
}

/// The union's file handle of `p` (`AT_HANDLE_FID`: overlayfs gives one without
/// `nfs_export`), in hex; one that holds the handle of the upper layer's object at `rel`
/// (which differs between two copies of the upper layer) is named so, its header kept.
fn handle(p: &Path, upper: Option<&Path>, rel: &str) -> String {
    let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (ty, h) = match sys::file_handle(p, libc::AT_HANDLE_FID) {
        Ok(h) => h,
        Err(e) => return errno_name(e),
    };
    let real = upper.and_then(|u| sys::file_handle(&if rel.is_empty() { u.to_path_buf() } else { u.join(rel) }, 0).ok());
    match real {
        Some((_, r)) if h.len() == 24 + r.len() && h[24..] == r[..] => {
            format!("type {ty:#x} {} + the upper object's handle", hex(&h[..24]))
        }
        _ => format!("type {ty:#x} {}", hex(&h)),
    }
}

/// `rel`'s parent directory ("" for a top-level name, `None` for the root).
fn parent_of(rel: &str) -> Option<&str> {
    if rel.is_empty() {
        return None;
    }
    Some(rel.rsplit_once('/').map_or("", |(p, _)| p))
}

/// What a walk of union `m` sees: for each path, `st_dev` (named), `st_ino`, and for a
/// directory every entry's `d_ino` (named entries, "." and ".." included).
fn walk(m: &Path, upper: Option<&Path>, devs: &mut Devs, paths: &[&str]) -> Vec<(String, String)> {
    let mut seen = vec![];
    for rel in paths {
        let p = if rel.is_empty() { m.to_path_buf() } else { m.join(rel) };
        let what = show(rel.as_bytes());
        match sys::lstat(&p) {
            Ok(st) => {
                seen.push((format!("{what} st_dev"), devs.name(st.st_dev)));
                seen.push((format!("{what} st_ino"), number(st.st_ino, upper, Some(rel))));
                seen.push((format!("{what} st_nlink"), st.st_nlink.to_string()));
                seen.push((format!("{what} file handle"), handle(&p, upper, rel)));
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let entries = DirStream::open(&p).and_then(|mut d| d.read_all());
                    match entries {
                        Ok(mut es) => {
                            es.sort_by(|a, b| a.name.cmp(&b.name));
                            for e in es {
                                let name = String::from_utf8_lossy(&e.name).to_string();
                                let child = match name.as_str() {
                                    "." => Some(rel.to_string()),
                                    ".." => parent_of(rel).map(str::to_string),
                                    n if rel.is_empty() => Some(n.to_string()),
                                    n => Some(format!("{rel}/{n}")),
                                };
                                seen.push((format!("{what} d_ino of {}", show(&e.name)), number(e.ino, upper, child.as_deref())));
                            }
                        }
                        Err(e) => seen.push((format!("{what} listing"), errno_name(e))),
                    }
                }
            }
            Err(e) => seen.push((format!("{what} lstat"), errno_name(e))),
        }
    }
    seen
}

/// The private xattrs of the upper layer's objects at `paths`, in hex.
fn private_xattrs(upper: &Path, paths: &[&str]) -> Vec<(String, String)> {
    let mut seen = vec![];
    for rel in paths {
        let p = if rel.is_empty() { upper.to_path_buf() } else { upper.join(rel) };
        for x in ["origin", "impure"] {
            let v = match sys::lgetxattr(&p, format!("trusted.overlay.{x}").as_bytes()) {
                Ok(v) => v.iter().map(|b| format!("{b:02x}")).collect(),
                Err(e) => errno_name(e),
            };
            seen.push((format!("upper {} overlay.{x}", show(rel.as_bytes())), v));
        }
    }
    seen
}

/// Decodable file handles (`nfs_export=on`) of `paths` in union `m`: each path with its
/// handle or the error.
type Handles = Vec<(&'static str, Result<(i32, Vec<u8>), i32>)>;

fn take_handles(m: &Path, paths: &[&'static str]) -> Handles {
    paths.iter().map(|rel| (*rel, sys::file_handle(&if rel.is_empty() { m.to_path_buf() } else { m.join(rel) }, 0))).collect()
}

/// Opens each of `handles` on union `m` (`open_by_handle_at`): what it opens (its number,
/// the path the kernel gives it: a directory's must be connected, its contents for a file)
/// or the error.
fn open_handles(m: &Path, upper: Option<&Path>, handles: &Handles) -> Vec<(String, String)> {
    let mut seen = vec![];
    for (rel, h) in handles {
        let what = show(rel.as_bytes());
        let (ty, bytes) = match h {
            Ok(h) => h,
            Err(e) => {
                seen.push((format!("{what} handle"), errno_name(*e)));
                continue;
            }
        };
        let fd = match sys::open_by_handle(m, *ty, bytes, libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) => {
                seen.push((format!("{what} open by handle"), errno_name(e)));
                continue;
            }
        };
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
        match rustix::fs::fstat(&fd) {
            Ok(st) => {
                seen.push((format!("{what} opened st_ino"), number(st.st_ino, upper, Some(rel))));
                if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    let content = fs::read(&proc_path).map(|c| String::from_utf8_lossy(&c).to_string());
                    seen.push((format!("{what} opened content"), content.unwrap_or_else(|e| e.to_string())));
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let path = fs::read_link(&proc_path)
                        .map(|p| p.strip_prefix(m).map(|r| r.display().to_string()).unwrap_or_else(|_| p.display().to_string()));
                    seen.push((format!("{what} opened at"), path.unwrap_or_else(|e| e.to_string())));
                }
            }
            Err(e) => seen.push((format!("{what} opened fstat"), errno_name(e.raw_os_error()))),
        }
    }
    seen
}

/// The index directory's entries (not the temporaries): type, link count (not of
/// whiteouts: overlayfs shares one whiteout inode among them) and private xattrs; a
/// directory's `overlay.upper` by its header (the handle is of each run's own upper copy).
fn index_listing(work: &Path) -> Vec<(String, String)> {
    let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut names: Vec<_> = fs::read_dir(work.join("index"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| !n.starts_with('#')).collect())
        .unwrap_or_default();
    names.sort();
    let mut seen = vec![("index entries".to_string(), names.len().to_string())];
    for n in names {
        let p = work.join("index").join(&n);
        let v = match sys::lstat(&p) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFCHR => format!("whiteout {:x}", st.st_rdev),
            Ok(st) => format!("mode {:o} nlink {}", st.st_mode, st.st_nlink),
            Err(e) => errno_name(e),
        };
        seen.push((format!("index {n}"), v));
        for x in ["origin", "nlink", "upper"] {
            let v = match sys::lgetxattr(&p, format!("trusted.overlay.{x}").as_bytes()) {
                Ok(v) if x == "upper" && v.len() > 21 => format!("{} + {} bytes of handle", hex(&v[..21]), v.len() - 21),
                Ok(v) => hex(&v),
                Err(e) => errno_name(e),
            };
            seen.push((format!("index {n} overlay.{x}"), v));
        }
    }
    seen
}

/// Drops the kernel's clean caches (dentries and inodes not in use), so that handles are
/// decoded from the real objects up.
fn drop_caches() {
    let _ = fs::write("/proc/sys/vm/drop_caches", "2");
}

/// One configuration: where the layers are and the union's options.
struct Config {
    name: &'static str,
    lower: PathBuf,
    /// Upper and work directory.
    upper: Option<(PathBuf, PathBuf)>,
    opts: &'static str,
    /// The layer filesystems' devices, named.
    real: Vec<(u64, &'static str)>,
}

/// Mounts `fstype` for `c` at `m` and walks it; with an upper layer, copies two lower files
/// and a hard link up and looks again, remounts and walks again, then lets `other` mount the
/// layers and walk them. Unmounts.
fn run_config(c: &Config, fstype: &str, other: &str, m: &Path) -> Result<Vec<(String, String)>, String> {
    // index=off given with nfs_export=on is refused (nfs_export turns the index on).
    let index = if c.opts.contains("nfs_export=on") { "" } else { "index=off," };
    let mut opts = format!("lowerdir={},{index}redirect_dir=off,metacopy=off,{}", c.lower.display(), c.opts);
    let upper = c.upper.as_ref().map(|(u, _)| u.as_path());
    if let Some((u, w)) = &c.upper {
        opts.push_str(&format!(",upperdir={},workdir={}", u.display(), w.display()));
    }
    let mount = |fstype: &str| -> Result<Devs, String> {
        let r = sys::mount("none", m, fstype, 0, &opts);
        check!(r == 0, "{}: mounting {fstype} with {opts}: {}", c.name, errno_name(r));
        let root = sys::lstat(m).map_err(errno_name)?;
        Ok(Devs { union: root.st_dev, real: c.real.clone(), others: vec![] })
    };
    let umount = |fstype: &str| -> TestResult {
        let r = sys::umount(m);
        check!(r == 0, "{}: unmounting {fstype}: {}", c.name, errno_name(r));
        Ok(())
    };
    let mut devs = mount(fstype)?;
    let mut seen = walk(m, upper, &mut devs, &PATHS);
    // With nfs_export, handles taken now must open the same objects later: after copy-up,
    // with cold caches, after a remount, in the other implementation; and removed objects'
    // handles must be stale.
    let nfs = c.opts.contains("nfs_export=on");
    let handles = if nfs { take_handles(m, &PATHS) } else { vec![] };
    let Some(upper) = upper else {
        if nfs {
            seen.extend(open_handles(m, None, &handles).into_iter().map(|(w, v)| (format!("warm: {w}"), v)));
            drop_caches();
            seen.extend(open_handles(m, None, &handles).into_iter().map(|(w, v)| (format!("cold: {w}"), v)));
        }
        umount(fstype)?;
        return Ok(seen.into_iter().map(|(w, v)| (format!("{}: {w}", c.name), v)).collect());
    };
    // Copied up while mounted: the copies keep the lower objects' numbers (not the hard
    // link: its copy-up breaks the link).
    for rel in ["top", "d/f1", "h1"] {
        let r = fs::OpenOptions::new().append(true).open(m.join(rel));
        seen.push((format!("copy up {rel}"), r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())));
    }
    let copied = ["", "d", "top", "d/f1", "h1", "h2"];
    seen.extend(walk(m, Some(upper), &mut devs, &copied).into_iter().map(|(w, v)| (format!("after copy-up: {w}"), v)));
    if nfs {
        seen.extend(open_handles(m, Some(upper), &handles).into_iter().map(|(w, v)| (format!("after copy-up: {w}"), v)));
        // Removed: a lower symlink, a lower file and the lower directory that held it.
        for (what, r) in [
            ("unlink /link", fs::remove_file(m.join("link"))),
            ("unlink /d/sub/f2", fs::remove_file(m.join("d/sub/f2"))),
            ("rmdir /d/sub", fs::remove_dir(m.join("d/sub"))),
        ] {
            seen.push((what.to_string(), r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())));
        }
        drop_caches();
        seen.extend(open_handles(m, Some(upper), &handles).into_iter().map(|(w, v)| (format!("cold: {w}"), v)));
    }
    umount(fstype)?;
    seen.extend(private_xattrs(upper, &["", "d", "d/sub", "top", "d/f1", "h1", "upper_only"]));
    if nfs {
        let work = c.upper.as_ref().map(|(_, w)| w.as_path()).unwrap_or(upper);
        seen.extend(index_listing(work));
    }
    let mut devs = mount(fstype)?;
    seen.extend(walk(m, Some(upper), &mut devs, &PATHS).into_iter().map(|(w, v)| (format!("remounted: {w}"), v)));
    if nfs {
        seen.extend(open_handles(m, Some(upper), &handles).into_iter().map(|(w, v)| (format!("remounted: {w}"), v)));
    }
    umount(fstype)?;
    let mut devs = mount(other)?;
    seen.extend(walk(m, Some(upper), &mut devs, &PATHS).into_iter().map(|(w, v)| (format!("mounted by the other: {w}"), v)));
    if nfs {
        seen.extend(open_handles(m, Some(upper), &handles).into_iter().map(|(w, v)| (format!("mounted by the other: {w}"), v)));
    }
    umount(other)?;
    Ok(seen.into_iter().map(|(w, v)| (format!("{}: {w}", c.name), v)).collect())
}

/// A fresh copy of directory tree `from` at `to` (each union gets the same upper layer to
/// start from: the copy-ups change it).
fn copy_tree(from: &Path, to: &Path) -> TestResult {
    let _ = fs::remove_dir_all(to);
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "cp -a {} {}: {}", from.display(), to.display(), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn dev_of(p: &Path) -> Result<u64, String> {
    sys::lstat(p).map(|st| st.st_dev).map_err(|e| format!("lstat {}: {}", p.display(), errno_name(e)))
}

/// A loop-mounted filesystem of type `fstype` at `dir`, `size` bytes, made by `mkfs` (command
/// and flags; the image is appended).
pub(crate) fn loop_fs_at(s: &mut Scratch, dir: &str, size: u64, mkfs: &[&str], fstype: &str) -> Result<PathBuf, String> {
    let img = s.path(&format!("{dir}.img"));
    fs::File::create(&img).and_then(|f| f.set_len(size)).map_err(|e| e.to_string())?;
    let out = Command::new(mkfs[0]).args(&mkfs[1..]).arg(&img).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "{}: {}", mkfs[0], String::from_utf8_lossy(&out.stderr));
    let mnt = s.dir(dir);
    let out = Command::new("mount").args(["-t", fstype, "-o", "loop"]).arg(&img).arg(&mnt).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "mounting {fstype}: {}", String::from_utf8_lossy(&out.stderr));
    s.track(&mnt);
    Ok(mnt)
}

/// A loop-mounted ext4 filesystem at `dir` (its inode numbers fit 32 bits, and its file
/// handles say so).
fn ext4_at(s: &mut Scratch, dir: &str) -> Result<PathBuf, String> {
    loop_fs_at(s, dir, 32 << 20, &["mkfs.ext4", "-q", "-F"], "ext4")
}

fn st_dev_st_ino_d_ino() -> TestResult {
    let mut s = Scratch::new("identity");
    let one = s.other_fs("one");
    let (t1, t2) = (s.other_fs("t1"), s.other_fs("t2"));
    let (e1, e2) = (ext4_at(&mut s, "e1")?, ext4_at(&mut s, "e2")?);
    let m = s.dir("m");
    let mut configs = vec![];
    // One filesystem.
    build(&one.join("lower"), Some(&one.join("upper")))?;
    fs::create_dir(one.join("work")).map_err(|e| e.to_string())?;
    let real_one = vec![(dev_of(&one)?, "tmpfs one")];
    configs.push(Config {
        name: "one tmpfs",
        lower: one.join("lower"),
        upper: Some((one.join("upper"), one.join("work"))),
        opts: "xino=off",
        real: real_one.clone(),
    });
    configs.push(Config {
        name: "one tmpfs, xino=on",
        lower: one.join("lower"),
        upper: Some((one.join("upper"), one.join("work"))),
        opts: "xino=on",
        real: real_one,
    });
    // Two tmpfs: lower on one, upper on the other; lower-only over both.
    build(&t1.join("lower"), None)?;
    build(&t1.join("lower2"), Some(&t2.join("upper")))?;
    fs::create_dir(t2.join("work")).map_err(|e| e.to_string())?;
    let real_t = vec![(dev_of(&t1)?, "tmpfs t1"), (dev_of(&t2)?, "tmpfs t2")];
    for (name, opts) in [("two tmpfs", "xino=off"), ("two tmpfs, xino=auto", "xino=auto"), ("two tmpfs, xino=on", "xino=on")] {
        configs.push(Config {
            name,
            lower: t1.join("lower"),
            upper: Some((t2.join("upper"), t2.join("work"))),
            opts,
            real: real_t.clone(),
        });
    }
    build(&t2.join("lower_only"), None)?;
    for (name, opts) in [("lower-only, two tmpfs", "xino=off"), ("lower-only, two tmpfs, xino=auto", "xino=auto")] {
        let lower = PathBuf::from(format!("{}:{}", t1.join("lower").display(), t2.join("lower_only").display()));
        configs.push(Config { name, lower, upper: None, opts, real: real_t.clone() });
    }
    // Two ext4: 32-bit inode numbers, so xino takes 32 bits.
    build(&e1.join("lower"), Some(&e2.join("upper")))?;
    fs::create_dir(e2.join("work")).map_err(|e| e.to_string())?;
    let real_e = vec![(dev_of(&e1)?, "ext4 e1"), (dev_of(&e2)?, "ext4 e2")];
    for (name, opts) in [("two ext4", "xino=off"), ("two ext4, xino=auto", "xino=auto")] {
        configs.push(Config {
            name,
            lower: e1.join("lower"),
            upper: Some((e2.join("upper"), e2.join("work"))),
            opts,
            real: real_e.clone(),
        });
    }
    // ext4 lower, tmpfs upper.
    configs.push(Config {
        name: "ext4 lower, tmpfs upper, xino=auto",
        lower: e1.join("lower"),
        upper: Some((t2.join("upper"), t2.join("work"))),
        opts: "xino=auto",
        real: vec![(dev_of(&e1)?, "ext4 e1"), (dev_of(&t2)?, "tmpfs t2")],
    });
    // The index, on one filesystem and with xino over two.
    configs.push(Config {
        name: "one tmpfs, index=on",
        lower: one.join("lower"),
        upper: Some((one.join("upper"), one.join("work"))),
        opts: "xino=off,index=on",
        real: vec![(dev_of(&one)?, "tmpfs one")],
    });
    configs.push(Config {
        name: "one tmpfs, index=on,nfs_export=on",
        lower: one.join("lower"),
        upper: Some((one.join("upper"), one.join("work"))),
        opts: "xino=off,index=on,nfs_export=on",
        real: vec![(dev_of(&one)?, "tmpfs one")],
    });
    // Without an upper layer, nfs_export needs redirect_dir=nofollow.
    configs.push(Config {
        name: "lower-only, two tmpfs, nfs_export=on",
        lower: PathBuf::from(format!("{}:{}", t1.join("lower").display(), t2.join("lower_only").display())),
        upper: None,
        opts: "xino=off,redirect_dir=nofollow,nfs_export=on",
        real: real_t.clone(),
    });
    // A null uuid (uuid=off) is fine for one lower filesystem without an upper layer.
    build(&one.join("lower_b"), None)?;
    configs.push(Config {
        name: "lower-only, one tmpfs, uuid=off,nfs_export=on",
        lower: PathBuf::from(format!("{}:{}", one.join("lower").display(), one.join("lower_b").display())),
        upper: None,
        opts: "xino=off,uuid=off,redirect_dir=nofollow,nfs_export=on",
        real: vec![(dev_of(&one)?, "tmpfs one")],
    });
    configs.push(Config {
        name: "two tmpfs, index=on,xino=on",
        lower: t1.join("lower"),
        upper: Some((t2.join("upper"), t2.join("work"))),
        opts: "index=on,xino=on",
        real: real_t.clone(),
    });
    // Three filesystem types: xfs and ext4 lower layers, a btrfs upper layer (64-bit inode
    // numbers and handles that do not say they fit 32 bits).
    let x1 = loop_fs_at(&mut s, "x1", 320 << 20, &["mkfs.xfs", "-q", "-f"], "xfs")?;
    let b1 = loop_fs_at(&mut s, "b1", 256 << 20, &["mkfs.btrfs", "-q", "-f"], "btrfs")?;
    build(&x1.join("lower"), None)?;
    build_upper(&b1.join("upper"))?;
    fs::create_dir(b1.join("work")).map_err(|e| e.to_string())?;
    let three = PathBuf::from(format!("{}:{}", x1.join("lower").display(), e1.join("lower").display()));
    let real_3 = vec![(dev_of(&x1)?, "xfs x1"), (dev_of(&e1)?, "ext4 e1"), (dev_of(&b1)?, "btrfs b1")];
    for (name, opts) in [
        ("xfs+ext4 lower, btrfs upper", "xino=off"),
        ("xfs+ext4 lower, btrfs upper, xino=auto", "xino=auto"),
        ("xfs+ext4 lower, btrfs upper, xino=on", "xino=on"),
        ("xfs+ext4 lower, btrfs upper, index=on", "xino=off,index=on"),
        ("xfs+ext4 lower, btrfs upper, index=on,nfs_export=on", "xino=off,index=on,nfs_export=on"),
    ] {
        configs.push(Config { name, lower: three.clone(), upper: Some((b1.join("upper"), b1.join("work"))), opts, real: real_3.clone() });
    }
    // A btrfs subvolume as the lower layer, the same filesystem's top volume as the upper
    // (one filesystem, but the subvolume has a device number of its own).
    let out = Command::new("btrfs").args(["-q", "subvolume", "create"]).arg(b1.join("sub")).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "btrfs subvolume create: {}", String::from_utf8_lossy(&out.stderr));
    build(&b1.join("sub/lower"), None)?;
    configs.push(Config {
        name: "btrfs subvolume lower, btrfs upper",
        lower: b1.join("sub/lower"),
        upper: Some((b1.join("upper"), b1.join("work"))),
        opts: "xino=off",
        real: vec![(dev_of(&b1)?, "btrfs b1"), (dev_of(&b1.join("sub"))?, "btrfs b1 subvolume")],
    });

    let mut seen = [vec![], vec![]];
    for c in &configs {
        // Both unions start from the same upper layer: a pristine copy of it.
        let pristine = c.upper.as_ref().map(|(u, _)| u.with_extension("pristine"));
        if let (Some((u, _)), Some(p)) = (&c.upper, &pristine) {
            if !p.exists() {
                copy_tree(u, p)?;
            }
        }
        for (i, (fstype, other)) in [("overlay", "unionrs"), ("unionrs", "overlay")].into_iter().enumerate() {
            if let (Some((u, w)), Some(p)) = (&c.upper, &pristine) {
                copy_tree(p, u)?;
                let _ = fs::remove_dir_all(w);
                fs::create_dir(w).map_err(|e| e.to_string())?;
            }
            seen[i].extend(run_config(c, fstype, other, &m)?);
        }
    }
    // The reference must make numbers the way this test expects, else it tests nothing: on
    // one filesystem the real numbers, with xino the filesystem's in the high bits.
    let find = |what: &str| seen[0].iter().find(|(w, _)| w == what).map(|(_, v)| v.clone()).unwrap_or_default();
    let lower_top = sys::lstat(&one.join("lower/top")).map_err(errno_name)?.st_ino;
    check!(
        find("one tmpfs: /top st_ino") == format!("{lower_top:#x}"),
        "overlayfs: /top on one tmpfs shows {}, the test expects {lower_top:#x}",
        find("one tmpfs: /top st_ino")
    );
    check!(
        find("one tmpfs: remounted: /top st_ino") == format!("{lower_top:#x}"),
        "overlayfs: the copy of /top on one tmpfs shows {} after a remount, the test expects {lower_top:#x}",
        find("one tmpfs: remounted: /top st_ino")
    );
    let ext4_top = sys::lstat(&e1.join("lower/top")).map_err(errno_name)?.st_ino;
    let want = format!("{:#x}", ext4_top | (1 << 33));
    check!(
        find("two ext4, xino=auto: /top st_ino") == want,
        "overlayfs: /top on two ext4 with xino=auto shows {}, the test expects {want}",
        find("two ext4, xino=auto: /top st_ino")
    );
    // With nfs_export, the reference must open the handles, else the comparison of what they
    // open tests nothing.
    for what in [
        "one tmpfs, index=on,nfs_export=on: remounted: /d/f1 opened content",
        "xfs+ext4 lower, btrfs upper, index=on,nfs_export=on: mounted by the other: /d opened at",
        "lower-only, one tmpfs, uuid=off,nfs_export=on: cold: /top opened content",
        "lower-only, two tmpfs, nfs_export=on: cold: /d/sub opened at",
    ] {
        let config = what.split(':').next().unwrap_or_default();
        let got: Vec<String> = seen[0]
            .iter()
            .filter(|(w, _)| w.starts_with(config) && (w.contains("open") || w.contains("handle")))
            .map(|(w, v)| format!("{w} = {v}"))
            .collect();
        check!(seen[0].iter().any(|(w, _)| w == what), "overlayfs: no '{what}' (did it open its handles?); it gave:\n{}", got.join("\n"));
    }
    same_steps(&seen[0], &seen[1])
}

/// The names of the lower hard link of [`index_hard_links`] (and a file with one link).
const LINKS: [&str; 8] = ["a/h1", "a/h2", "b/h3", "c/h4", "a/h5", "s", "g/x1", "g/x2"];

/// For each of `LINKS`: st_dev (named), st_ino, st_nlink and content, or the error.
fn link_view(m: &Path, devs: &mut Devs) -> Vec<(String, String)> {
    let mut seen = vec![];
    for rel in LINKS {
        let p = m.join(rel);
        match sys::lstat(&p) {
            Ok(st) => {
                seen.push((format!("/{rel} st_dev"), devs.name(st.st_dev)));
                seen.push((format!("/{rel} st_ino"), format!("{:#x}", st.st_ino)));
                seen.push((format!("/{rel} st_nlink"), st.st_nlink.to_string()));
                let content = fs::read(&p).map(|c| String::from_utf8_lossy(&c).to_string());
                seen.push((format!("/{rel} content"), content.unwrap_or_else(|e| e.to_string())));
            }
            Err(e) => seen.push((format!("/{rel} lstat"), errno_name(e))),
        }
    }
    seen
}

/// The upper layer as the index leaves it: every name with its link count, the index
/// directory's entries (named by the lower inode's file handle, the same for both unions)
/// with their link counts and private xattrs.
fn index_state(upper: &Path, work: &Path) -> Vec<(String, String)> {
    let mut seen = vec![];
    for rel in LINKS {
        let v = match sys::lstat(&upper.join(rel)) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFCHR => "whiteout".to_string(),
            Ok(st) => format!("nlink {}", st.st_nlink),
            Err(e) => errno_name(e),
        };
        seen.push((format!("upper /{rel}"), v));
    }
    // Not the temporaries ("#..."): overlayfs keeps its shared whiteout there, which unionrs
    // does not share; both remove them at the next mount.
    let mut names: Vec<_> = fs::read_dir(work.join("index"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| !n.starts_with('#')).collect())
        .unwrap_or_default();
    names.sort();
    seen.push(("index entries".to_string(), names.len().to_string()));
    for n in names {
        let p = work.join("index").join(&n);
        let st = sys::lstat(&p).map(|st| format!("mode {:o} nlink {}", st.st_mode, st.st_nlink));
        seen.push((format!("index {n}"), st.unwrap_or_else(errno_name)));
        for x in ["origin", "nlink"] {
            let v = sys::lgetxattr(&p, format!("trusted.overlay.{x}").as_bytes())
                .map(|v| v.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .unwrap_or_else(errno_name);
            seen.push((format!("index {n} overlay.{x}"), v));
        }
    }
    let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let v = sys::lgetxattr(upper, b"trusted.overlay.origin").map(|v| hex(&v)).unwrap_or_else(errno_name);
    seen.push(("upper root overlay.origin".to_string(), v));
    // The upper root's own handle (each union has its own upper root): its header and uuid
    // as they are, the handle named if it is the root's as name_to_handle_at(2) gives it.
    let v = match (sys::lgetxattr(&work.join("index"), b"trusted.overlay.upper"), sys::file_handle(upper, 0)) {
        (Ok(v), Ok((ty, handle))) if v.len() == 21 + handle.len() && v[4] as i32 == ty && v[21..] == handle[..] => {
            format!("{} + the upper root's handle", hex(&v[..21]))
        }
        (Ok(v), _) => hex(&v),
        (Err(e), _) => errno_name(e),
    };
    seen.push(("index dir overlay.upper".to_string(), v));
    seen
}

/// `index=on` against overlayfs: a lower file with three names copied up through one name
/// shows one object under every name (same st_ino, the union's link count, the new data),
/// across a link, an unlink and a rename of its names, a remount and a mount by the other
/// implementation; the upper layers and index directories they leave agree; and a union
/// over other lower layers is refused by both (the upper root's recorded origin).
fn index_hard_links() -> TestResult {
    let mut s = Scratch::new("identity_index");
    let t = s.other_fs("t");
    let lower = t.join("lower");
    Layer::new(lower.clone())?
        .file("a/h1", b"linked\n")?
        .hardlink("a/h1", "a/h2")?
        .hardlink("a/h1", "b/h3")?
        .file("s", b"single\n")?
        .file("g/x1", b"pair\n")?
        .hardlink("g/x1", "g/x2")?
        .dir("c")?;
    Layer::new(t.join("other_lower"))?.file("x", b"x\n")?;
    let m = s.dir("m");
    let real = vec![(dev_of(&t)?, "tmpfs t")];
    let mut seen = [vec![], vec![]];
    for (i, (fstype, other)) in [("overlay", "unionrs"), ("unionrs", "overlay")].into_iter().enumerate() {
        let (upper, work) = (t.join(format!("upper{i}")), t.join(format!("work{i}")));
        for d in [&upper, &work] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        let opts = |lower: &Path| {
            format!(
                "lowerdir={},upperdir={},workdir={},index=on,redirect_dir=off,metacopy=off",
                lower.display(),
                upper.display(),
                work.display()
            )
        };
        let mount = |fstype: &str, lower: &Path| -> Result<Devs, String> {
            let r = sys::mount("none", &m, fstype, 0, &opts(lower));
            check!(r == 0, "mounting {fstype} with {}: {}", opts(lower), errno_name(r));
            let root = sys::lstat(&m).map_err(errno_name)?;
            Ok(Devs { union: root.st_dev, real: real.clone(), others: vec![] })
        };
        let umount = |fstype: &str| -> TestResult {
            let r = sys::umount(&m);
            check!(r == 0, "unmounting {fstype}: {}", errno_name(r));
            Ok(())
        };
        let out = &mut seen[i];
        let mut devs = mount(fstype, &lower)?;
        out.extend(link_view(&m, &mut devs).into_iter().map(|(w, v)| (format!("mounted: {w}"), v)));
        let mp = &m;
        let append = |rel: &'static str| move || fs::OpenOptions::new().append(true).open(mp.join(rel))?.write_all(b"more\n");
        let steps: [(&str, &dyn Fn() -> std::io::Result<()>); 8] = [
            ("append to a/h1", &append("a/h1")),
            ("append to s", &append("s")),
            ("link a/h2 to c/h4", &|| fs::hard_link(m.join("a/h2"), m.join("c/h4"))),
            ("unlink b/h3", &|| fs::remove_file(m.join("b/h3"))),
            ("rename a/h2 to a/h5", &|| fs::rename(m.join("a/h2"), m.join("a/h5"))),
            // The last name of an indexed object goes: so does its index entry.
            ("append to g/x1", &append("g/x1")),
            ("unlink g/x1", &|| fs::remove_file(m.join("g/x1"))),
            ("unlink g/x2", &|| fs::remove_file(m.join("g/x2"))),
        ];
        for (what, step) in steps {
            out.push((format!("{what}"), step().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())));
            out.extend(link_view(&m, &mut devs).into_iter().map(|(w, v)| (format!("after {what}: {w}"), v)));
        }
        umount(fstype)?;
        out.extend(index_state(&upper, &work));
        let mut devs = mount(fstype, &lower)?;
        out.extend(link_view(&m, &mut devs).into_iter().map(|(w, v)| (format!("remounted: {w}"), v)));
        umount(fstype)?;
        let mut devs = mount(other, &lower)?;
        out.extend(link_view(&m, &mut devs).into_iter().map(|(w, v)| (format!("mounted by the other: {w}"), v)));
        umount(other)?;
        out.extend(index_state(&upper, &work).into_iter().map(|(w, v)| (format!("after the other: {w}"), v)));
        // The index directory is cleaned at mount: a leftover temporary goes; an entry whose
        // name is no file handle fails the mount (nothing is removed that is not understood).
        let index = work.join("index");
        fs::write(index.join("#leftover"), b"").map_err(|e| e.to_string())?;
        let _ = mount(fstype, &lower)?;
        umount(fstype)?;
        out.push(("leftover temporary after a mount".to_string(), index.join("#leftover").exists().to_string()));
        fs::write(index.join("0123"), b"").map_err(|e| e.to_string())?;
        let r = sys::mount("none", &m, fstype, 0, &opts(&lower));
        if r == 0 {
            let _ = sys::umount(&m);
        }
        out.push(("mount with a bad index entry".to_string(), errno_name(r)));
        let _ = fs::remove_file(index.join("0123"));
        // Other lower layers under this upper layer: the root's origin does not match.
        let r = sys::mount("none", &m, fstype, 0, &opts(&t.join("other_lower")));
        if r == 0 {
            let _ = sys::umount(&m);
        }
        out.push(("mount over other lower layers".to_string(), errno_name(r)));
    }
    // The reference must do what this test expects, else it tests nothing.
    let find = |what: &str| seen[0].iter().find(|(w, _)| w == what).map(|(_, v)| v.clone()).unwrap_or_default();
    check!(
        find("after append to a/h1: /b/h3 content") == "linked\nmore\n" && find("remounted: /c/h4 st_nlink") == "3",
        "overlayfs with index=on does not share the copy between the names (b/h3 shows {:?}, c/h4 nlink {:?})",
        find("after append to a/h1: /b/h3 content"),
        find("remounted: /c/h4 st_nlink")
    );
    same_steps(&seen[0], &seen[1])
}
