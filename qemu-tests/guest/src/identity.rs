//! Object identity against overlayfs: `st_dev`, `st_ino` and readdir's `d_ino` of every object
//! of a union, with the layers on one filesystem and on several, with `xino=off|auto|on`.
//!
//! Each configuration is mounted by overlayfs, walked and unmounted, then mounted by unionrs
//! over the same layer directories and walked the same way, so that the real inode numbers
//! are the same and the numbers the unions show can be compared as they are. Only device
//! numbers differ between two mounts (the union's own and the anonymous ones each mount
//! takes): they are compared by what they are ("the union's", "the layer filesystem's", "the
//! first other one", ...).

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::DirStream;
use crate::trees::Layer;
use crate::util::{same_steps, show};
use crate::{check, Test, TestResult};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![Test::new("identity.st_dev_st_ino_d_ino", st_dev_st_ino_d_ino)]
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
        Layer::new(u.to_path_buf())?.file("d/upper_file", b"u\n")?.file("upper_only", b"u\n")?.dir("upper_dir")?;
    }
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

/// What a walk of union `m` sees: for each path, `st_dev` (named), `st_ino`, and for a
/// directory every entry's `d_ino` (named entries, "." and ".." included).
fn walk(m: &Path, devs: &mut Devs, paths: &[&str]) -> Vec<(String, String)> {
    let mut seen = vec![];
    for rel in paths {
        let p = if rel.is_empty() { m.to_path_buf() } else { m.join(rel) };
        let what = show(rel.as_bytes());
        match sys::lstat(&p) {
            Ok(st) => {
                seen.push((format!("{what} st_dev"), devs.name(st.st_dev)));
                seen.push((format!("{what} st_ino"), format!("{:#x}", st.st_ino)));
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let entries = DirStream::open(&p).and_then(|mut d| d.read_all());
                    match entries {
                        Ok(mut es) => {
                            es.sort_by(|a, b| a.name.cmp(&b.name));
                            for e in es {
                                seen.push((format!("{what} d_ino of {}", show(&e.name)), format!("{:#x}", e.ino)));
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

/// Mounts `fstype` for `c` at `m`, walks it (then copies two lower files up and stats them
/// again, with an upper layer), unmounts.
fn run_config(c: &Config, fstype: &str, m: &Path) -> Result<Vec<(String, String)>, String> {
    let mut opts = format!("lowerdir={},index=off,redirect_dir=off,metacopy=off,{}", c.lower.display(), c.opts);
    if let Some((u, w)) = &c.upper {
        opts.push_str(&format!(",upperdir={},workdir={}", u.display(), w.display()));
    }
    let r = sys::mount("none", m, fstype, 0, &opts);
    check!(r == 0, "{}: mounting {fstype} with {opts}: {}", c.name, errno_name(r));
    let root = sys::lstat(m).map_err(errno_name)?;
    let mut devs = Devs { union: root.st_dev, real: c.real.clone(), others: vec![] };
    let mut seen = walk(m, &mut devs, &PATHS);
    if c.upper.is_some() {
        // Copied up while mounted: the copies keep the lower objects' numbers (not the hard
        // link: its copy-up breaks the link).
        for rel in ["top", "d/f1", "h1"] {
            let r = fs::OpenOptions::new().append(true).open(m.join(rel));
            seen.push((format!("copy up {rel}"), r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())));
        }
        seen.extend(walk(m, &mut devs, &["top", "d/f1", "h1", "h2"]).into_iter().filter(|(w, _)| !w.contains("d_ino")));
    }
    let r = sys::umount(m);
    check!(r == 0, "{}: unmounting {fstype}: {}", c.name, errno_name(r));
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

/// A loop-mounted ext4 filesystem at `dir` (its inode numbers fit 32 bits, and its file
/// handles say so).
fn ext4_at(s: &mut Scratch, dir: &str) -> Result<PathBuf, String> {
    let img = s.path(&format!("{dir}.img"));
    fs::File::create(&img).and_then(|f| f.set_len(32 << 20)).map_err(|e| e.to_string())?;
    let out = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
    let mnt = s.dir(dir);
    let out = Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "mounting ext4: {}", String::from_utf8_lossy(&out.stderr));
    s.track(&mnt);
    Ok(mnt)
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

    let mut seen = [vec![], vec![]];
    for c in &configs {
        // Both unions start from the same upper layer: a pristine copy of it.
        let pristine = c.upper.as_ref().map(|(u, _)| u.with_extension("pristine"));
        if let (Some((u, _)), Some(p)) = (&c.upper, &pristine) {
            if !p.exists() {
                copy_tree(u, p)?;
            }
        }
        for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
            if let (Some((u, w)), Some(p)) = (&c.upper, &pristine) {
                copy_tree(p, u)?;
                let _ = fs::remove_dir_all(w);
                fs::create_dir(w).map_err(|e| e.to_string())?;
            }
            seen[i].extend(run_config(c, fstype, &m)?);
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
    let ext4_top = sys::lstat(&e1.join("lower/top")).map_err(errno_name)?.st_ino;
    let want = format!("{:#x}", ext4_top | (1 << 33));
    check!(
        find("two ext4, xino=auto: /top st_ino") == want,
        "overlayfs: /top on two ext4 with xino=auto shows {}, the test expects {want}",
        find("two ext4, xino=auto: /top st_ino")
    );
    same_steps(&seen[0], &seen[1])
}
