//! Idmapped mounts and unions, both ways.
//!
//! A union on idmapped layers (overlayfs maps them): unionrs and overlayfs over the same
//! idmapped lower and upper mounts must show the same owners and ACLs and write the same ids.
//!
//! An idmapped mount of a union (`FS_ALLOW_IDMAP`; overlayfs refuses it). The reference is an
//! idmapped mount of a plain tmpfs holding the same tree, with the same map: through both,
//! owners must read the same, and what is created, chowned, copied up or given an ACL must
//! get the same ids on disk (the union's upper layer, the tmpfs).

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, FsIds, UserNs};
use crate::trees::Layer;
use crate::{check, Test, TestResult};
use std::fs;
use std::os::unix::fs::{chown, symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub fn tests() -> Vec<Test> {
    vec![Test::new("idmapped.union_mount", union_mount), Test::new("idmapped.layers_like_overlayfs", layers_like_overlayfs)]
}

/// The mounts show the filesystem's ids 0..65536 as SHIFT.. (util-linux: `b:0:100000:65536`).
const SHIFT: u32 = 100_000;
const MAP: &str = "0 100000 65536";
/// The same for the layers, but root stays root: the mounter (root) must be able to create
/// copies and whiteouts on an idmapped upper layer, which needs its own ids mapped.
const MAP_KEEP_ROOT: &str = "0 0 1\n1 100001 65535";

/// The tree both filesystems start with: owners of several ids, a shared and a
/// set-group-ID directory.
fn build(root: &Path) -> TestResult {
    Layer::at(root)
        .file("f0", b"root's\n")?
        .file("f5", b"five's\n")?
        .file("f1000", b"a user's\n")?
        .file("acl", b"acl\n")?
        .dir("d5")?
        .dir("sgid")?;
    for (name, uid, gid, mode) in [("f5", 5, 5, 0o644), ("f1000", 1000, 1000, 0o644), ("d5", 5, 5, 0o777), ("sgid", 0, 7, 0o2777)] {
        let p = root.join(name);
        chown(&p, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A `system.posix_acl_access` value: rw owner, r for user `uid`, r group, mask and other.
fn acl_with_user(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [(1u16, 6u16, u32::MAX), (2, 4, uid), (4, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

type Outcome = Result<String, String>;

fn owner(p: &Path) -> Outcome {
    fs::symlink_metadata(p).map(|m| format!("{}:{}", m.uid(), m.gid())).map_err(|e| errno_name(e.raw_os_error().unwrap_or(0)))
}

fn rc(r: std::io::Result<()>) -> Outcome {
    r.map(|_| "ok".to_string()).map_err(|e| errno_name(e.raw_os_error().unwrap_or(0)))
}

/// What is done through the idmapped mount `m` of a tree that `disk` shows without the
/// mapping (the union's own mount, or the tmpfs itself); each step gives what it saw, through
/// `m` and on disk.
fn exercise(m: &Path, disk: &Path) -> Vec<(String, Outcome)> {
    let mut seen: Vec<(String, Outcome)> = vec![];
    let mut note = |what: &str, o: Outcome| seen.push((what.to_string(), o));
    for name in ["", "f0", "f5", "f1000", "d5", "sgid"] {
        note(&format!("owner of /{name} through the mount"), owner(&m.join(name)));
    }
    {
        // A caller whose ids the mount maps (to 5 and 6 on disk).
        let _ids = FsIds::set(SHIFT + 5, SHIFT + 6);
        note("create d5/file", rc(fs::write(m.join("d5/file"), b"new\n")));
        note("mkdir d5/dir", rc(fs::create_dir(m.join("d5/dir"))));
        note("symlink d5/link", rc(symlink("file", m.join("d5/link"))));
        note("mkfifo d5/fifo", {
            let r = sys::mknod(&m.join("d5/fifo"), libc::S_IFIFO | 0o644, 0);
            if r == 0 {
                Ok("ok".into())
            } else {
                Err(errno_name(r))
            }
        });
        note("create sgid/file", rc(fs::write(m.join("sgid/file"), b"new\n")));
        note(
            "O_TMPFILE in d5: owner",
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o600)
                .open(m.join("d5"))
                .and_then(|f| f.metadata())
                .map(|md| format!("{}:{}", md.uid(), md.gid()))
                .map_err(|e| errno_name(e.raw_os_error().unwrap_or(0))),
        );
    }
    {
        // A caller the mount does not map (root's ids are below SHIFT): refused.
        let _ids = FsIds::set(0, 0);
        note("create d5/unmapped as an unmapped caller", rc(fs::write(m.join("d5/unmapped"), b"x\n")));
    }
    for name in ["d5/file", "d5/dir", "d5/link", "d5/fifo", "sgid/file"] {
        note(&format!("owner of {name} through the mount"), owner(&m.join(name)));
        note(&format!("owner of {name} on disk"), owner(&disk.join(name)));
    }
    note("chown f1000 to mapped 7:8", rc(std::os::unix::fs::lchown(m.join("f1000"), Some(SHIFT + 7), Some(SHIFT + 8))));
    note("chown f0 to an unmapped id", rc(std::os::unix::fs::lchown(m.join("f0"), Some(5), Some(5))));
    note("chmod f5 (a copy-up in the union)", rc(fs::set_permissions(m.join("f5"), fs::Permissions::from_mode(0o600))));
    let acl = acl_with_user(SHIFT + 9);
    note("set an ACL naming user 9 on acl", {
        let r = sys::lsetxattr(&m.join("acl"), "system.posix_acl_access", &acl);
        if r == 0 {
            Ok("ok".into())
        } else {
            Err(errno_name(r))
        }
    });
    for name in ["f1000", "f0", "f5"] {
        note(&format!("owner of {name} through the mount"), owner(&m.join(name)));
        note(&format!("owner of {name} on disk"), owner(&disk.join(name)));
    }
    let xattr = |p: &Path| sys::lgetxattr(p, b"system.posix_acl_access").map(|v| format!("{v:02x?}")).map_err(errno_name);
    note("ACL of acl through the mount", xattr(&m.join("acl")));
    note("ACL of acl on disk", xattr(&disk.join("acl")));
    seen
}

fn union_mount() -> TestResult {
    let mut s = Scratch::new("idmapped_union");
    let (lower, upper, work, union, mapped) = (s.dir("lower"), s.dir("upper"), s.dir("work"), s.dir("union"), s.dir("mapped"));
    let (plain, plain_mapped) = (s.other_fs("plain"), s.dir("plain_mapped"));
    build(&lower)?;
    build(&plain)?;
    let opts =
        format!("lowerdir={},upperdir={},workdir={},index=off,metacopy=off,xino=off", lower.display(), upper.display(), work.display());
    let r = sys::mount("none", &union, "unionrs", 0, &opts);
    check!(r == 0, "mounting unionrs with {opts}: {}", errno_name(r));
    s.track(&union);
    let ns = UserNs::new(MAP)?;
    sys::idmapped_bind(&plain, &plain_mapped, &ns)?;
    s.track(&plain_mapped);
    sys::idmapped_bind(&union, &mapped, &ns).map_err(|e| format!("an idmapped mount of the union: {e}"))?;
    s.track(&mapped);
    // overlayfs cannot be idmapped as a whole (what makes this worth having).
    let (ovl, ovl_mapped) = (s.dir("ovl"), s.dir("ovl_mapped"));
    let (ou, ow) = (s.dir("ovl_upper"), s.dir("ovl_work"));
    let r =
        sys::mount("none", &ovl, "overlay", 0, &format!("lowerdir={},upperdir={},workdir={}", lower.display(), ou.display(), ow.display()));
    check!(r == 0, "mounting overlayfs: {}", errno_name(r));
    s.track(&ovl);
    let refused = sys::idmapped_bind(&ovl, &ovl_mapped, &ns);
    check!(refused.is_err(), "overlayfs accepted an idmapped mount: the test's premise is wrong");

    let want = exercise(&plain_mapped, &plain);
    let got = exercise(&mapped, &union);
    // The reference must show the mapping at all, or the comparison proves nothing.
    let f5 = want.iter().find(|(w, _)| w == "owner of /f5 through the mount").map(|(_, o)| o.clone());
    check!(f5 == Some(Ok(format!("{}:{}", SHIFT + 5, SHIFT + 5))), "the idmapped tmpfs shows f5 as {f5:?}, not shifted by {SHIFT}");
    let mut diffs = vec![];
    for ((what, w), (_, g)) in want.iter().zip(&got) {
        if w != g {
            diffs.push(format!("{what}: idmapped tmpfs {w:?}, idmapped unionrs {g:?}"));
        }
    }
    // What was created or changed is on the upper layer, with the ids the tmpfs got.
    for name in ["d5/file", "d5/dir", "sgid/file", "f1000", "f5", "acl"] {
        let (w, g) = (owner(&plain.join(name)), owner(&upper.join(name)));
        if w != g {
            diffs.push(format!("owner of {name} on disk: tmpfs {w:?}, unionrs' upper layer {g:?}"));
        }
    }
    crate::util::verdict(diffs)
}

/// What root (and a caller the maps cover) sees and does through union `m`, whose upper
/// directory is `upper` (read without any map).
fn through_idmapped_layers(m: &Path, upper: &Path) -> Vec<(String, Outcome)> {
    let mut seen: Vec<(String, Outcome)> = vec![];
    let mut note = |what: &str, o: Outcome| seen.push((what.to_string(), o));
    let xattr = |p: &Path| sys::lgetxattr(p, b"system.posix_acl_access").map(|v| format!("{v:02x?}")).map_err(errno_name);
    for name in ["", "f0", "f5", "f1000", "d5", "sgid", "acl"] {
        note(&format!("owner of /{name}"), owner(&m.join(name)));
    }
    note("ACL of acl", xattr(&m.join("acl")));
    note("chmod f5 (copy-up)", rc(fs::set_permissions(m.join("f5"), fs::Permissions::from_mode(0o600))));
    note("chown f1000 to 100007:100008", rc(std::os::unix::fs::lchown(m.join("f1000"), Some(SHIFT + 7), Some(SHIFT + 8))));
    note("touch acl (copy-up of an ACL)", rc(fs::OpenOptions::new().append(true).open(m.join("acl")).map(drop)));
    note("set an ACL naming user 100009 on f0", {
        let r = sys::lsetxattr(&m.join("f0"), "system.posix_acl_access", &acl_with_user(SHIFT + 9));
        if r == 0 {
            Ok("ok".into())
        } else {
            Err(errno_name(r))
        }
    });
    note("create d5/root as root", rc(fs::write(m.join("d5/root"), b"x\n")));
    note("unlink gone (a whiteout)", rc(fs::remove_file(m.join("gone"))));
    note("gone after unlink", owner(&m.join("gone")));
    {
        let _ids = FsIds::set(SHIFT + 5, SHIFT + 6);
        note("create d5/file as 100005:100006", rc(fs::write(m.join("d5/file"), b"x\n")));
        note("mkdir sgid/dir as 100005:100006", rc(fs::create_dir(m.join("sgid/dir"))));
    }
    for name in ["f5", "f1000", "f0", "acl", "d5/file", "d5/root", "sgid/dir", "gone"] {
        note(&format!("owner of {name}"), owner(&m.join(name)));
        note(&format!("owner of {name} in the upper directory"), owner(&upper.join(name)));
    }
    note("ACL of f0", xattr(&m.join("f0")));
    note("ACL of f0 in the upper directory", xattr(&upper.join("f0")));
    note("ACL of acl in the upper directory", xattr(&upper.join("acl")));
    seen
}

fn layers_like_overlayfs() -> TestResult {
    let mut s = Scratch::new("idmapped_layers");
    let (lower, upper_base, lower_mapped, upper_mapped) =
        (s.dir("lower"), s.dir("upper_base"), s.dir("lower_mapped"), s.dir("upper_mapped"));
    build(&lower)?;
    fs::write(lower.join("gone"), b"to be removed\n").map_err(|e| e.to_string())?;
    let r = sys::lsetxattr(&lower.join("acl"), "system.posix_acl_access", &acl_with_user(9));
    check!(r == 0, "setting an ACL on the lower layer: {}", errno_name(r));
    for d in ["u0", "w0", "u1", "w1"] {
        fs::create_dir(upper_base.join(d)).map_err(|e| e.to_string())?;
    }
    let ns = UserNs::new(MAP_KEEP_ROOT)?;
    sys::idmapped_bind(&lower, &lower_mapped, &ns)?;
    s.track(&lower_mapped);
    sys::idmapped_bind(&upper_base, &upper_mapped, &ns)?;
    s.track(&upper_mapped);
    let mut seen = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let m = s.dir(&format!("m{i}"));
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,xino=off",
            lower_mapped.display(),
            upper_mapped.join(format!("u{i}")).display(),
            upper_mapped.join(format!("w{i}")).display()
        );
        let r = sys::mount("none", &m, fstype, 0, &opts);
        check!(r == 0, "mounting {fstype} with {opts}: {}", errno_name(r));
        s.track(&m);
        seen.push(through_idmapped_layers(&m, &upper_base.join(format!("u{i}"))));
        sys::umount(&m);
    }
    let f5 = seen[0].iter().find(|(w, _)| w == "owner of /f5").map(|(_, o)| o.clone());
    check!(
        f5 == Some(Ok(format!("{}:{}", SHIFT + 5, SHIFT + 5))),
        "overlayfs shows f5 as {f5:?}, not shifted by {SHIFT}: the test's premise is wrong"
    );
    crate::util::same_steps(&seen[0], &seen[1])
}
