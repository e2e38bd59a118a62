//! The layer trees the tests build: a builder for one layer directory, the read-only
//! differential's rich three-layer tree and its big spread directory. They live apart from
//! the tests because `scripts/build-fixture` caches the large ones in disk images, keyed by
//! a hash of this file: a change here makes new images.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::util::bpath;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One layer directory being populated (by the read-only and the writable tests). Every step
/// says which path failed.
pub struct Layer {
    pub root: PathBuf,
}

type Built<'a> = Result<&'a Layer, String>;

fn fail(what: &str, p: &Path, e: impl std::fmt::Display) -> String {
    format!("fixture: {what} {}: {e}", p.display())
}

fn rc(r: i32, what: &str, p: &Path) -> Result<(), String> {
    if r == 0 {
        Ok(())
    } else {
        Err(fail(what, p, errno_name(r)))
    }
}

impl Layer {
    /// A layer in directory `root`, made if it does not exist.
    pub fn new(root: PathBuf) -> Result<Self, String> {
        fs::create_dir_all(&root).map_err(|e| fail("mkdir", &root, e))?;
        Ok(Self { root })
    }

    /// A layer in existing directory `root`.
    pub fn at(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn path(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        bpath(&self.root, rel.as_ref())
    }

    fn parents(&self, p: &Path) -> Result<(), String> {
        p.parent().map_or(Ok(()), |d| fs::create_dir_all(d).map_err(|e| fail("mkdir", d, e)))
    }

    pub fn dir(&self, rel: impl AsRef<[u8]>) -> Built<'_> {
        let p = self.path(rel);
        fs::create_dir_all(&p).map_err(|e| fail("mkdir", &p, e))?;
        Ok(self)
    }

    pub fn file(&self, rel: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> Built<'_> {
        let p = self.path(rel);
        self.parents(&p)?;
        fs::write(&p, content).map_err(|e| fail("write", &p, e))?;
        Ok(self)
    }

    /// Data at 0 and at 128 KiB, a hole in between and at the end (256 KiB in all).
    pub fn sparse(&self, rel: impl AsRef<[u8]>, pattern: impl Fn(u8, usize) -> Vec<u8>) -> Built<'_> {
        let p = self.path(rel);
        self.parents(&p)?;
        let f = fs::File::create(&p).map_err(|e| fail("create", &p, e))?;
        f.write_all_at(&pattern(1, 4096), 0)
            .and_then(|()| f.write_all_at(&pattern(2, 4096), 128 << 10))
            .and_then(|()| f.set_len(256 << 10))
            .map_err(|e| fail("write", &p, e))?;
        Ok(self)
    }

    /// mknod: a device, FIFO or empty regular file (`mode` includes the type).
    pub fn node(&self, rel: impl AsRef<[u8]>, mode: libc::mode_t, dev: libc::dev_t) -> Built<'_> {
        let p = self.path(rel);
        self.parents(&p)?;
        rc(sys::mknod(&p, mode, dev), "mknod", &p)?;
        Ok(self)
    }

    pub fn fifo(&self, rel: impl AsRef<[u8]>) -> Built<'_> {
        self.node(rel, libc::S_IFIFO | 0o644, 0)
    }

    /// An overlayfs whiteout: a 0/0 character device.
    pub fn whiteout(&self, rel: impl AsRef<[u8]>) -> Built<'_> {
        self.node(rel, libc::S_IFCHR, libc::makedev(0, 0))
    }

    pub fn symlink(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Built<'_> {
        let p = self.path(rel);
        self.parents(&p)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target.as_ref()), &p).map_err(|e| fail("symlink", &p, e))?;
        Ok(self)
    }

    pub fn hardlink(&self, existing: impl AsRef<[u8]>, rel: impl AsRef<[u8]>) -> Built<'_> {
        let p = self.path(rel);
        self.parents(&p)?;
        fs::hard_link(self.path(existing), &p).map_err(|e| fail("link", &p, e))?;
        Ok(self)
    }

    pub fn xattr(&self, rel: impl AsRef<[u8]>, name: &str, value: impl AsRef<[u8]>) -> Built<'_> {
        let p = self.path(rel);
        rc(sys::lsetxattr(&p, name, value.as_ref()), &format!("setxattr {name}"), &p)?;
        Ok(self)
    }

    /// A directory with `trusted.overlay.opaque` = `value` ("y": opaque, "x": has xattr whiteouts).
    pub fn opaque(&self, rel: impl AsRef<[u8]>, value: &str) -> Built<'_> {
        self.dir(rel.as_ref())?.xattr(rel, "trusted.overlay.opaque", value)
    }

    pub fn chmod(&self, rel: impl AsRef<[u8]>, mode: u32) -> Built<'_> {
        let p = self.path(rel);
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(|e| fail("chmod", &p, e))?;
        Ok(self)
    }

    pub fn chown(&self, rel: impl AsRef<[u8]>, uid: u32, gid: u32) -> Built<'_> {
        let p = self.path(rel);
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| fail("chown", &p, e))?;
        Ok(self)
    }

    /// Adds POSIX ACL entries with setfacl(1).
    pub fn acl(&self, rel: impl AsRef<[u8]>, spec: &str) -> Built<'_> {
        let p = self.path(rel);
        match Command::new("setfacl").arg("-m").arg(spec).arg(&p).output() {
            Ok(o) if o.status.success() => Ok(self),
            Ok(o) => Err(fail(&format!("setfacl -m {spec}"), &p, String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Err(format!("fixture: running setfacl: {e}")),
        }
    }
}

pub fn three_layers(s: &Scratch) -> Result<[Layer; 3], String> {
    Ok([Layer::new(s.path("l0"))?, Layer::new(s.path("l1"))?, Layer::new(s.path("l2"))?])
}

pub fn layer_paths(l: &[Layer]) -> Vec<&Path> {
    l.iter().map(|l| l.root.as_path()).collect()
}

/// Gives every object below `p` (and `p` itself) its own fixed atime and mtime derived from
/// `base`, in name order, children before their directory; `n` counts the objects. The
/// entries of the directories in `skip_children_of` (relative to `root`) keep their times. An
/// error comes with the path it concerns.
pub fn stamp_tree(root: &Path, p: &Path, base: i64, n: &mut i64, skip_children_of: &[&str]) -> Result<(), (PathBuf, i32)> {
    let st = sys::lstat(p).map_err(|e| (p.to_path_buf(), e))?;
    let rel = p.strip_prefix(root).unwrap_or(p);
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR && !skip_children_of.iter().any(|s| Path::new(s) == rel) {
        for name in crate::tree::names_in(p).map_err(|e| (p.to_path_buf(), e))? {
            stamp_tree(root, &p.join(OsStr::from_bytes(&name)), base, n, skip_children_of)?;
        }
    }
    *n += 1;
    let t = (base + *n * 3_607, (*n * 7_919_111) % 1_000_000_000);
    match sys::set_times(p, t, t) {
        0 => Ok(()),
        e => Err((p.to_path_buf(), e)),
    }
}

/// Stamps a whole layer (see [`stamp_tree`]), so that its times are the same on every run.
pub fn stamp_times(root: &Path, base: i64, skip_children_of: &[&str]) -> Result<(), String> {
    stamp_tree(root, root, base, &mut 0, skip_children_of)
        .map_err(|(p, e)| format!("fixture: stamping times of {}: {}", p.display(), errno_name(e)))
}

/// The big merged directory of the read-only differential: its size in the fast tier (built in
/// the test) and in the full tier (from the fixture image), and its spread.
pub const BIG_FAST: usize = 10_000;
pub const BIG_FULL: usize = 100_000;
pub const BIG_DUP_EVERY: usize = 100;
pub const BIG_WHITEOUT_EVERY: usize = 33;
/// The fixture image that holds the full-size differential tree.
pub const DIFFERENTIAL_FIXTURE: &str = "ro-diff";

/// The read-only differential's layers: the rich tree, `big` as directory "big", and fixed
/// times on everything but big's entries.
pub fn build_differential(l: &[Layer; 3], big: &Spread) -> Result<(), String> {
    build_rich_tree(l)?;
    big.build(l, "big")?;
    for (i, layer) in l.iter().enumerate() {
        stamp_times(&layer.root, 1_000_000_000 + i as i64 * 10_000_000, &["big"])?;
    }
    Ok(())
}

/// The file a fixture image holds once it is complete (written last).
pub const FIXTURE_COMPLETE: &str = ".complete";

/// Builds fixture `name` in directory `dir` (what scripts/build-fixture caches as an image).
pub fn make_fixture(name: &str, dir: &Path) -> Result<(), String> {
    match name {
        DIFFERENTIAL_FIXTURE => {
            let layers = [Layer::new(dir.join("l0"))?, Layer::new(dir.join("l1"))?, Layer::new(dir.join("l2"))?];
            build_differential(&layers, &Spread::new(BIG_FULL, BIG_DUP_EVERY, BIG_WHITEOUT_EVERY))?;
        }
        _ => return Err(format!("no fixture named {name:?}")),
    }
    fs::write(dir.join(FIXTURE_COMPLETE), name).map_err(|e| format!("writing the completion marker: {e}"))
}

/// What one name of a spread directory is in each layer.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Empty,
    File,
    Whiteout,
}

/// A directory spread over three layers: `count` names, name i in layer i % 3, every
/// `dup_every`th also in the next layer; whiteouts in the top layer for every `wh_every`th name
/// that lives in the middle layer, in the middle layer for every (2 * wh_every)th name of the
/// bottom layer, and ten top-layer whiteouts that hide nothing. All files are empty.
pub struct Spread {
    plan: Vec<(String, [Slot; 3])>,
}

impl Spread {
    pub fn new(count: usize, dup_every: usize, wh_every: usize) -> Self {
        let mut plan: Vec<(String, [Slot; 3])> = Vec::with_capacity(count + 10);
        for i in 0..count {
            let mut slots = [Slot::Empty; 3];
            slots[i % 3] = Slot::File;
            if i % dup_every == 0 {
                slots[(i + 1) % 3] = Slot::File;
            }
            if i % 3 == 1 && (i / 3) % wh_every == 0 && slots[0] == Slot::Empty {
                slots[0] = Slot::Whiteout;
            }
            if i % 3 == 2 && (i / 3) % (2 * wh_every) == 0 && slots[1] == Slot::Empty {
                slots[1] = Slot::Whiteout;
            }
            plan.push((format!("e{i}"), slots));
        }
        for k in 0..10 {
            plan.push((format!("ghost{k}"), [Slot::Whiteout, Slot::Empty, Slot::Empty]));
        }
        Self { plan }
    }

    /// Makes directory `dir` in the three layers and fills it.
    pub fn build(&self, l: &[Layer; 3], dir: &str) -> Result<(), String> {
        for layer in l {
            layer.dir(dir)?;
        }
        for (name, slots) in &self.plan {
            for (layer, slot) in l.iter().zip(slots) {
                let rel = format!("{dir}/{name}");
                match slot {
                    Slot::File => {
                        layer.node(&rel, libc::S_IFREG | 0o644, 0)?;
                    }
                    Slot::Whiteout => {
                        layer.whiteout(&rel)?;
                    }
                    Slot::Empty => {}
                }
            }
        }
        Ok(())
    }

    /// The names the union must show: those whose topmost entry is a file.
    pub fn visible(&self) -> BTreeSet<Vec<u8>> {
        self.plan
            .iter()
            .filter(|(_, slots)| slots.iter().find(|s| **s != Slot::Empty) == Some(&Slot::File))
            .map(|(name, _)| name.clone().into_bytes())
            .collect()
    }
}

pub const ODD_NAMES: [&[u8]; 9] = [
    b"with space",
    b"new\nline",
    b"back\\slash",
    b"co:lon",
    b"com,ma",
    b"\xff",
    b"tab\tand \xfe\xff high",
    b" leading space",
    b"trailing space ",
];

/// Everything but the big directory; see check_rich_model for what the union must show.
pub fn build_rich_tree(l: &[Layer; 3]) -> Result<(), String> {
    let [l0, l1, l2] = l;
    // Directories merged across all three layers, four levels deep, with files at each level.
    for (i, layer) in l.iter().enumerate() {
        layer
            .file(format!("merged/l{i}file"), format!("layer {i}\n"))?
            .file(format!("merged/deep/l{i}deep"), format!("deep, layer {i}\n"))?
            .file(format!("merged/deep/deeper/l{i}x"), format!("deeper, layer {i}\n"))?
            .file(format!("merged/deep/deeper/deepest/l{i}y"), format!("deepest, layer {i}\n"))?
            .file("merged/shared", format!("shared, layer {i} version\n"))?
            .dir("empty_merged")?;
    }
    l0.whiteout("merged/ghost")?;

    // Whiteouts in the top layer hide a file and a directory of the layers below.
    l1.file("hidden_file", "hidden\n")?.file("hidden_dir/inner/f", "hidden\n")?;
    l2.file("hidden_file", "hidden too\n")?.file("hidden_dir/l2", "hidden too\n")?;
    l0.whiteout("hidden_file")?.whiteout("hidden_dir")?;

    // Opaque directories: on top, and in the middle layer.
    l0.opaque("opq", "y")?.file("opq/l0_in_opq", "visible\n")?.xattr("opq", "user.test", "value-4")?;
    l1.file("opq/l1_in_opq", "hidden by opaque\n")?.file("opq/sub/f", "hidden by opaque\n")?;
    l2.file("opq/l2_in_opq", "hidden by opaque\n")?;
    l0.file("opq_mid/top", "visible\n")?;
    l1.opaque("opq_mid", "y")?.file("opq_mid/mid", "visible\n")?;
    l2.file("opq_mid/bottom", "hidden by opaque\n")?;

    // An xattr whiteout, in a directory marked as holding some.
    l0.opaque("xw", "x")?
        .node("xw/victim", libc::S_IFREG | 0o644, 0)?
        .xattr("xw/victim", "trusted.overlay.whiteout", b"")?
        .file("xw/keep0", "visible\n")?;
    l1.file("xw/victim", "hidden by an xattr whiteout\n")?.file("xw/keep1", "visible\n")?;
    l2.file("xw/victim", "hidden too\n")?.file("xw/keep2", "visible\n")?;

    // A file over a directory, a directory over a file, and a file between two directories.
    l0.file("dir_becomes_file", "file on top\n")?;
    l1.file("dir_becomes_file/inner", "hidden under a file\n")?;
    l0.file("file_becomes_dir/inside", "visible\n")?;
    l1.file("file_becomes_dir", "file below a directory\n")?;
    l0.file("stop_at_file/a", "visible\n")?;
    l1.file("stop_at_file", "file in the middle\n")?;
    l2.file("stop_at_file/b", "hidden below a file\n")?;

    // Symlinks in the lower layers, and one over a file.
    l1.symlink("syms/rel", "../merged/l2file")?.symlink("syms/to_dir", "../merged")?;
    l2.symlink("syms/abs", "/etc/hostname")?.symlink("syms/dangling", "nonexistent/nowhere")?;
    l0.symlink("syms/shadow", "l0 target")?;
    l2.file("syms/shadow", "file under a symlink\n")?;

    // Hard links within one layer: two names in one directory, one in a subdirectory.
    l0.file("links/l0", "top\n")?;
    l1.file("links/a", "linked\n")?.hardlink("links/a", "links/b")?.hardlink("links/a", "links/sub/c")?;
    l2.file("links/sub/l2", "bottom\n")?;

    // User xattrs on files and directories; the top layer's directory wins.
    l1.xattr("merged/l1file", "user.test", "value-1")?;
    l2.xattr("merged/l2file", "user.test", "value-3")?.xattr("merged/l2file", "user.second", "value-33")?;
    l0.xattr("merged/deep", "user.test", "value-0")?.xattr("merged/deep", "user.other", "value-00")?;
    l1.xattr("merged/deep", "user.test", "value-2")?;
    l1.dir("xattr_dir")?.xattr("xattr_dir", "user.test", "value-5")?;

    // A POSIX ACL.
    l1.file("acl_file", "with an ACL\n")?.acl("acl_file", "u:1234:r")?;

    // Odd names, merged over all layers.
    l0.dir("odd")?;
    for (i, name) in ODD_NAMES.iter().enumerate() {
        l[1 + i % 2].file([&b"odd/"[..], name].concat(), format!("odd {i}\n"))?;
    }
    l1.file(b"odd/both\xff", "l1\n")?;
    l2.file(b"odd/both\xff", "l2\n")?;
    l2.file(b"odd/dir with space/inner\nnewline", "inside\n")?;

    // Modes and owners (chown before chmod, which would clear set-user-ID).
    l1.file("modes/setuid", "#!/bin/sh\n")?.chmod("modes/setuid", 0o4755)?;
    l1.file("modes/private", "secret\n")?.chown("modes/private", 1000, 1000)?.chmod("modes/private", 0o600)?;
    l2.file("modes/setgid_dir/f", "x\n")?.chmod("modes/setgid_dir", 0o2775)?;
    l2.dir("modes/owned_dir")?.chown("modes/owned_dir", 1000, 1000)?.chmod("modes/owned_dir", 0o750)?;
    l0.dir("modes/owned_dir")?.chmod("modes/owned_dir", 0o711)?;

    // Special files in a merged directory (a non-whiteout character device among them).
    l0.file("special/regular", "x\n")?;
    l2.node("special/fifo", libc::S_IFIFO | 0o644, 0)?.node("special/null", libc::S_IFCHR | 0o666, libc::makedev(1, 3))?;
    l1.node("special/loop", libc::S_IFBLK | 0o600, libc::makedev(7, 0))?;

    // A single-layer empty directory and a larger file.
    l2.dir("empty_dir")?;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    l1.file("big_file", big)?;
    Ok(())
}
