//! Mount-time behaviour: option syntax, layer checks, the errno and message of every bad input
//! (compared with overlayfs wherever the two are meant to agree), and valid mounts.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, FsContext, Kmsg};
use crate::{check, Test, TestResult};
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("mount.fs_type_registered", fs_type_registered),
        Test::new("mount.bad_inputs", bad_inputs),
        Test::new("mount.valid_lower_only", valid_lower_only),
        Test::new("mount.valid_with_upper", valid_with_upper),
        Test::new("mount.escaped_colon_and_comma", escaped_colon_and_comma),
        Test::new("mount.escaped_upper_and_work", escaped_upper_and_work),
        Test::new("mount.lowerdir_add", lowerdir_add),
        Test::new("mount.limit_500_layers", limit_500_layers),
        Test::new("mount.layers_moved_into_each_other", layers_moved_into_each_other),
        Test::new("mount.dir_inos_past_255_filesystems", dir_inos_past_255_filesystems),
        Test::new("mount.fd_layers", fd_layers),
        Test::new("mount.options_shown_like_overlayfs", options_shown_like_overlayfs),
    ]
}

fn fs_type_registered() -> TestResult {
    let fss = fs::read_to_string("/proc/filesystems").map_err(|e| e.to_string())?;
    check!(fss.lines().any(|l| l == "nodev\tunionrs"), "no 'nodev\\tunionrs' in /proc/filesystems:\n{fss}");
    Ok(())
}

/// Splits a mount(2) option string as the kernel does: on commas not escaped by a backslash.
fn split_options(opts: &str) -> Vec<(String, Option<String>)> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = opts.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (o, None),
        })
        .collect()
}

/// Mounts through fsopen/fsconfig/fsmount-less CMD_CREATE; returns (errno, messages).
fn fs_api_mount(fstype: &str, opts: &str) -> Result<(i32, String), String> {
    let fc = FsContext::open(fstype).map_err(|e| format!("fsopen({fstype}): {}", errno_name(e)))?;
    for (k, v) in split_options(opts) {
        // The new API takes values literally: undo the comma escapes of the monolithic form.
        let v = v.map(|v| v.replace("\\,", ","));
        let rc = fc.set(&k, v.as_deref());
        if rc != 0 {
            return Ok((rc, fc.messages()));
        }
    }
    let rc = fc.create();
    Ok((rc, fc.messages()))
}

struct BadCase {
    what: &'static str,
    opts: String,
    errno: i32,
    /// What overlayfs answers for the same input, where it is meant to agree (None: overlayfs
    /// does something else on purpose, see Documentation/filesystems/unionrs.rst).
    overlay: Option<i32>,
    /// Text that the message to the user must contain.
    msg: &'static str,
}

fn bad_inputs() -> TestResult {
    let mut s = Scratch::new("bad_inputs");
    let t = s.root.display().to_string();
    for d in ["l1", "l2", "l1/sub", "u", "w", "u/w_in_u", "w/u_in_w", "mnt"] {
        s.dir(d);
    }
    s.file("file", "x");
    let other = s.other_fs("otherfs").display().to_string();
    s.dir("otherfs/w");
    let mnt = s.path("mnt");
    // An overlayfs mount, to offer its directories as an upper layer.
    for d in ["ov_l", "ov_u", "ov_w", "ov"] {
        s.dir(d);
    }
    let r = sys::mount("none", &s.path("ov"), "overlay", 0, &format!("lowerdir={t}/ov_l,upperdir={t}/ov_u,workdir={t}/ov_w"));
    check!(r == 0, "mounting the overlayfs used as an upper: {}", errno_name(r));
    s.track(&s.path("ov"));
    s.dir("ov/u");
    s.dir("ov/w");
    // Relative names (resolved from the cwd, as overlayfs allows) keep 501 layers within the
    // one page that mount(2) copies.
    let many: Vec<String> = (0..501)
        .map(|i| {
            s.dir(&format!("many/{i}"));
            i.to_string()
        })
        .collect();

    let cases = vec![
        BadCase { what: "no options", opts: String::new(), errno: libc::EINVAL, overlay: Some(libc::EINVAL), msg: "missing 'lowerdir'" },
        BadCase {
            what: "no lowerdir",
            opts: format!("upperdir={t}/u,workdir={t}/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "missing 'lowerdir'",
        },
        BadCase {
            what: "empty lowerdir",
            opts: "lowerdir=".into(),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "missing 'lowerdir'",
        },
        BadCase {
            what: "userxattr with redirect_dir=off (overlayfs reads off as follow)",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,userxattr,redirect_dir=off"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: userxattr,redirect_dir=follow",
        },
        BadCase {
            what: "userxattr with redirect_dir=off without an upper layer (follow is on there)",
            opts: format!("lowerdir={t}/l1,userxattr,redirect_dir=off"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: userxattr,redirect_dir=on",
        },
        BadCase {
            what: "userxattr with metacopy=on",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,userxattr,metacopy=on"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: userxattr,metacopy=on",
        },
        BadCase {
            what: "upperdir on an overlayfs",
            opts: format!("lowerdir={t}/l1,upperdir={t}/ov/u,workdir={t}/ov/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "not supported as upperdir",
        },
        BadCase {
            what: "lower not found",
            opts: format!("lowerdir={t}/nonexistent"),
            errno: libc::ENOENT,
            overlay: Some(libc::ENOENT),
            msg: "failed to resolve",
        },
        BadCase {
            what: "second lower not found",
            opts: format!("lowerdir={t}/l1:{t}/nope"),
            errno: libc::ENOENT,
            overlay: Some(libc::ENOENT),
            msg: "failed to resolve",
        },
        BadCase {
            what: "upper not found",
            opts: format!("lowerdir={t}/l1,upperdir={t}/nope,workdir={t}/w"),
            errno: libc::ENOENT,
            overlay: Some(libc::ENOENT),
            msg: "failed to resolve",
        },
        BadCase {
            what: "work not found",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/nope"),
            errno: libc::ENOENT,
            overlay: Some(libc::ENOENT),
            msg: "failed to resolve",
        },
        // overlayfs says EINVAL here; ENOTDIR names the problem.
        BadCase {
            what: "lower is a file",
            opts: format!("lowerdir={t}/file"),
            errno: libc::ENOTDIR,
            overlay: None,
            msg: "is not a directory",
        },
        BadCase {
            what: "upper is a file",
            opts: format!("lowerdir={t}/l1,upperdir={t}/file,workdir={t}/w"),
            errno: libc::ENOTDIR,
            overlay: None,
            msg: "is not a directory",
        },
        BadCase {
            what: "upper without workdir",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "missing 'workdir'",
        },
        BadCase {
            what: "workdir on another fs",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={other}/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "same mount",
        },
        BadCase {
            what: "workdir inside upper",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/u/w_in_u"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "separate subtrees",
        },
        BadCase {
            what: "upper inside workdir",
            opts: format!("lowerdir={t}/l1,upperdir={t}/w/u_in_w,workdir={t}/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "separate subtrees",
        },
        BadCase {
            what: "workdir same as upper",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/u"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "separate subtrees",
        },
        BadCase {
            what: "same lower twice",
            opts: format!("lowerdir={t}/l1:{t}/l1"),
            errno: libc::ELOOP,
            overlay: Some(libc::ELOOP),
            msg: "same directory",
        },
        BadCase {
            what: "lower same as upper",
            opts: format!("lowerdir={t}/u,upperdir={t}/u,workdir={t}/w"),
            errno: libc::ELOOP,
            overlay: Some(libc::ELOOP),
            msg: "same directory",
        },
        BadCase {
            what: "lower inside lower",
            opts: format!("lowerdir={t}/l1/sub:{t}/l1"),
            errno: libc::ELOOP,
            overlay: Some(libc::ELOOP),
            msg: "overlapping layers",
        },
        BadCase {
            what: "lower inside upper",
            opts: format!("lowerdir={t}/u/w_in_u,upperdir={t}/u,workdir={t}/w"),
            errno: libc::ELOOP,
            overlay: Some(libc::ELOOP),
            msg: "overlapping layers",
        },
        BadCase {
            what: "501 lower layers",
            opts: format!("lowerdir={}", many.join(":")),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "too many lower directories",
        },
        BadCase {
            what: "trailing colon",
            opts: format!("lowerdir={t}/l1:"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "empty layer path",
        },
        BadCase {
            what: "leading colon",
            opts: format!("lowerdir=:{t}/l1"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "cannot start with ':'",
        },
        BadCase {
            what: "a lower layer after a data-only one",
            opts: format!("lowerdir={t}/l1::{t}/l2:{t}/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "regular lower layers cannot follow data lower layers",
        },
        BadCase {
            what: "lowerdir+ after datadir+",
            opts: format!("lowerdir+={t}/l1,datadir+={t}/l2,lowerdir+={t}/w"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "regular lower layers cannot follow data layers",
        },
        BadCase {
            what: "data-only layers alone",
            opts: format!("datadir+={t}/l1,datadir+={t}/l2"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "at least one non-data lowerdir is required",
        },
        BadCase {
            what: "unknown option",
            opts: format!("lowerdir={t}/l1,frobnicate=1"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "Unknown parameter",
        },
        BadCase {
            what: "fsync= with an unknown mode",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,fsync=always"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "Bad value for 'fsync'",
        },
        BadCase {
            what: "volatile with a value",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,volatile=on"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "volatile",
        },
        BadCase {
            what: "lowerdir+ after lowerdir",
            opts: format!("lowerdir={t}/l1,lowerdir+={t}/l2"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "lowerdir+ and datadir+ cannot follow lowerdir",
        },
        BadCase {
            what: "nfs_export=on with index=off",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,nfs_export=on,index=off"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: nfs_export=on,index=off",
        },
        BadCase {
            what: "metacopy=on with redirect_dir=off",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,metacopy=on,redirect_dir=off"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: metacopy=on,redirect_dir=",
        },
        BadCase {
            what: "metacopy=on with nfs_export=on",
            opts: format!("lowerdir={t}/l1,upperdir={t}/u,workdir={t}/w,metacopy=on,nfs_export=on"),
            errno: libc::EINVAL,
            overlay: Some(libc::EINVAL),
            msg: "conflicting options: nfs_export=on,metacopy=on",
        },
    ];

    let mut kmsg = Kmsg::new();
    let mut problems = vec![];
    let old_cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    std::env::set_current_dir(s.path("many")).map_err(|e| e.to_string())?;
    for c in &cases {
        kmsg.read_new();
        let got = sys::mount("none", &mnt, "unionrs", 0, &c.opts);
        if got == 0 {
            sys::umount(&mnt);
        }
        let logged = kmsg.read_new();
        if got != c.errno {
            problems.push(format!("{}: mount(2) gave {}, want {}", c.what, errno_name(got), errno_name(c.errno)));
        }
        if !logged.contains(c.msg) {
            problems.push(format!("{}: kernel log lacks {:?}; it has {:?}", c.what, c.msg, logged.trim()));
        }
        // fsconfig() takes strings of at most 256 bytes: longer lists are what lowerdir+ is for
        // (see limit_500_layers).
        if c.opts.len() > 256 {
            continue;
        }
        let (got_fs, msgs) = fs_api_mount("unionrs", &c.opts)?;
        if got_fs != c.errno {
            problems.push(format!("{}: fsconfig gave {}, want {}", c.what, errno_name(got_fs), errno_name(c.errno)));
        }
        if !msgs.contains(c.msg) {
            problems.push(format!("{}: fs_context log lacks {:?}; it has {:?}", c.what, c.msg, msgs.trim()));
        }
        if let Some(want) = c.overlay {
            let ov = sys::mount("none", &mnt, "overlay", 0, &c.opts);
            if ov == 0 {
                sys::umount(&mnt);
            }
            if ov != want {
                problems.push(format!("{}: overlayfs gave {}, the test expects {}", c.what, errno_name(ov), errno_name(want)));
            }
        }
    }
    std::env::set_current_dir(old_cwd).map_err(|e| e.to_string())?;
    check!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Mounts unionrs and overlayfs with `opts` and checks what both show at the root.
fn mount_both(s: &mut Scratch, opts: &str, top: &Path) -> TestResult {
    let mnt = s.dir("mnt");
    let ovl = s.dir("ovl");
    let rc = sys::mount("none", &mnt, "unionrs", 0, opts);
    check!(rc == 0, "unionrs mount failed: {}", errno_name(rc));
    s.track(&mnt);
    let rc = sys::mount("none", &ovl, "overlay", 0, opts);
    check!(rc == 0, "overlay mount of the same layers failed: {}", errno_name(rc));
    s.track(&ovl);

    let (m, o, t) = (
        fs::metadata(&mnt).map_err(|e| e.to_string())?,
        fs::metadata(&ovl).map_err(|e| e.to_string())?,
        fs::metadata(top).map_err(|e| e.to_string())?,
    );
    for (field, ours, theirs, real) in [
        ("mode", m.mode() as i64, o.mode() as i64, t.mode() as i64),
        ("uid", m.uid() as i64, o.uid() as i64, t.uid() as i64),
        ("gid", m.gid() as i64, o.gid() as i64, t.gid() as i64),
        ("mtime", m.mtime(), o.mtime(), t.mtime()),
        ("mtime_nsec", m.mtime_nsec(), o.mtime_nsec(), t.mtime_nsec()),
    ] {
        check!(ours == real && ours == theirs, "root {field}: unionrs {ours}, overlayfs {theirs}, top layer {real}");
    }
    check!(m.dev() != t.dev(), "root st_dev {} is the top layer's; a union has its own", m.dev());
    let ft = sys::statfs_type(&mnt).map_err(errno_name)?;
    check!(ft == 0x756e696f, "statfs f_type {ft:#x}, want 0x756e696f");
    let (ro_ours, ro_ovl) =
        (sys::statvfs_flags(&mnt).map_err(errno_name)? & libc::ST_RDONLY, sys::statvfs_flags(&ovl).map_err(errno_name)? & libc::ST_RDONLY);
    check!(ro_ours == ro_ovl, "read-only flag: unionrs {ro_ours}, overlayfs {ro_ovl}");
    let (max_ours, max_ovl) = (sys::statvfs(&mnt).map_err(errno_name)?.f_namemax, sys::statvfs(&ovl).map_err(errno_name)?.f_namemax);
    check!(max_ours == max_ovl, "statvfs f_namemax: unionrs {max_ours}, overlayfs {max_ovl}");

    let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let line = info.lines().find(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap_or(""))).ok_or("union not in mountinfo")?;
    check!(line.contains(" - unionrs "), "mountinfo fs type: {line}");
    let ours_opts = line.rsplit(' ').next().unwrap_or("");
    let ovl_line = info.lines().find(|l| l.split(' ').nth(4) == Some(ovl.to_str().unwrap_or(""))).ok_or("overlay not in mountinfo")?;
    let ovl_opts = ovl_line.rsplit(' ').next().unwrap_or("");
    // overlayfs lists the layers with the same option names; compare those.
    for key in ["lowerdir=", "lowerdir+=", "upperdir=", "workdir="] {
        let pick = |o: &str| o.split(',').filter(|x| x.starts_with(key)).collect::<Vec<_>>().join(",");
        check!(pick(ours_opts) == pick(ovl_opts), "mountinfo {key}: unionrs '{}', overlayfs '{}'", pick(ours_opts), pick(ovl_opts));
    }

    check!(sys::umount(&mnt) == 0, "umount failed: {}", errno_name(sys::errno()));
    check!(sys::umount(&ovl) == 0, "overlay umount failed");
    Ok(())
}

fn valid_lower_only() -> TestResult {
    let mut s = Scratch::new("valid_lower_only");
    let l1 = s.dir("l1");
    let l2 = s.dir("l2");
    fs::set_permissions(&l1, std::os::unix::fs::PermissionsExt::from_mode(0o751)).map_err(|e| e.to_string())?;
    let opts = format!("lowerdir={}:{}", l1.display(), l2.display());
    mount_both(&mut s, &opts, &l1)
}

fn valid_with_upper() -> TestResult {
    let mut s = Scratch::new("valid_with_upper");
    let l1 = s.dir("l1");
    let u = s.dir("u");
    s.dir("w");
    fs::set_permissions(&u, std::os::unix::fs::PermissionsExt::from_mode(0o710)).map_err(|e| e.to_string())?;
    let opts = format!("lowerdir={},upperdir={},workdir={}", l1.display(), u.display(), s.path("w").display());
    mount_both(&mut s, &opts, &u)
}

fn escaped_colon_and_comma() -> TestResult {
    let mut s = Scratch::new("escaped");
    let weird = s.dir("a:b,c");
    s.dir("l2");
    let opts = format!("lowerdir={}/a\\:b\\,c:{}", s.root.display(), s.path("l2").display());
    mount_both(&mut s, &opts, &weird)
}

/// upperdir= and workdir= take the same escapes as lowerdir= (overlayfs unescapes them too).
fn escaped_upper_and_work() -> TestResult {
    let mut s = Scratch::new("escaped_upper");
    let l1 = s.dir("l1");
    let upper = s.dir("u:1,x");
    s.dir("w\\2");
    let r = s.root.display();
    let opts = format!("lowerdir={},upperdir={r}/u\\:1\\,x,workdir={r}/w\\\\2", l1.display());
    mount_both(&mut s, &opts, &upper)
}

fn lowerdir_add() -> TestResult {
    let mut s = Scratch::new("lowerdir_add");
    let l1 = s.dir("l1");
    let l2 = s.dir("l2");
    let opts = format!("lowerdir+={},lowerdir+={}", l1.display(), l2.display());
    mount_both(&mut s, &opts, &l1)?;
    // The same through the new mount API, one fsconfig call per layer.
    let fc = FsContext::open("unionrs").map_err(errno_name)?;
    for l in [&l1, &l2] {
        let rc = fc.set("lowerdir+", Some(l.to_str().unwrap_or("")));
        check!(rc == 0, "fsconfig lowerdir+: {}", errno_name(rc));
    }
    let rc = fc.create();
    check!(rc == 0, "fsconfig create: {} ({})", errno_name(rc), fc.messages());
    Ok(())
}

fn limit_500_layers() -> TestResult {
    let mut s = Scratch::new("limit_500");
    let layers: Vec<String> = (0..500).map(|i| s.dir(&format!("{i}")).display().to_string()).collect();
    let top = s.path("0");
    mount_both(&mut s, &format!("lowerdir={}", layers.join(":")), &top)?;
    // The new mount API adds layers one by one: the 501st is refused, with a message.
    let extra = s.dir("500");
    let fc = FsContext::open("unionrs").map_err(errno_name)?;
    for l in layers.iter() {
        let rc = fc.set("lowerdir+", Some(l));
        check!(rc == 0, "fsconfig lowerdir+={l}: {}", errno_name(rc));
    }
    let rc = fc.set("lowerdir+", Some(extra.to_str().unwrap_or("")));
    let msgs = fc.messages();
    check!(rc == libc::EINVAL, "the 501st lowerdir+ gave {}, want EINVAL", errno_name(rc));
    check!(msgs.contains("too many lower directories"), "the 501st lowerdir+ logged {msgs:?}");
    Ok(())
}

/// A union over more than 255 filesystems: each directory still gets an inode number of its
/// own, though every layer's directory has the same number on its own filesystem.
fn dir_inos_past_255_filesystems() -> TestResult {
    const LAYERS: usize = 300;
    let mut s = Scratch::new("many_fs");
    let mut real = std::collections::BTreeSet::new();
    for i in 0..LAYERS {
        let l = s.dir(&i.to_string());
        let r = sys::mount("many-fs", &l, "tmpfs", 0, "mode=0755");
        check!(r == 0, "mounting tmpfs {i}: {}", errno_name(r));
        s.track(&l);
        fs::create_dir(l.join(format!("d{i}"))).map_err(|e| e.to_string())?;
        real.insert(fs::metadata(l.join(format!("d{i}"))).map_err(|e| e.to_string())?.ino());
    }
    // The test means something only if the layers' own numbers collide.
    check!(real.len() < LAYERS, "the {LAYERS} tmpfs directories have {} distinct inode numbers: no collision to resolve", real.len());
    let mnt = s.dir("mnt");
    let lowers: Vec<String> = (0..LAYERS).map(|i| i.to_string()).collect();
    let old_cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    std::env::set_current_dir(&s.root).map_err(|e| e.to_string())?;
    let r = sys::mount("none", &mnt, "unionrs", 0, &format!("lowerdir={}", lowers.join(":")));
    std::env::set_current_dir(old_cwd).map_err(|e| e.to_string())?;
    check!(r == 0, "mounting unionrs over {LAYERS} filesystems: {}", errno_name(r));
    s.track(&mnt);
    let mut seen = std::collections::BTreeMap::new();
    let mut dups = vec![];
    for i in 0..LAYERS {
        let ino = fs::metadata(mnt.join(format!("d{i}"))).map_err(|e| e.to_string())?.ino();
        if let Some(j) = seen.insert(ino, i) {
            dups.push(format!("d{j} and d{i} both have inode number {ino:#x}"));
        }
    }
    check!(dups.is_empty(), "{}", dups.join("\n"));
    Ok(())
}

/// Layer roots moved below another layer while the union is mounted (the mount refuses
/// overlapping layers, but nothing stops a later `mv`): a lookup that meets one fails with
/// ELOOP instead of looping, as overlayfs' traps make it.
fn layers_moved_into_each_other() -> TestResult {
    let s = Scratch::new("moved_layers");
    let errno_of = |r: std::io::Result<fs::Metadata>| r.map(|_| "ok".to_string()).map_err(|e| errno_name(e.raw_os_error().unwrap_or(0)));
    let mut seen = vec![];
    for fstype in ["overlay", "unionrs"] {
        let base = s.dir(fstype);
        for d in ["lower/ldir", "upper/sub", "work", "m"] {
            fs::create_dir_all(base.join(d)).map_err(|e| e.to_string())?;
        }
        let m = base.join("m");
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,xino=off",
            base.join("lower").display(),
            base.join("upper").display(),
            base.join("work").display()
        );
        let r = sys::mount("none", &m, fstype, 0, &opts);
        check!(r == 0, "mounting {fstype} with {opts}: {}", errno_name(r));
        let moved = [("lower", "sub/lower_moved"), ("work/work", "sub/work_moved")];
        let mut outcome = vec![];
        for (from, to) in moved {
            let r = fs::rename(base.join(from), base.join("upper").join(to));
            outcome.push((format!("mv {from} upper/{to}"), r.map(|_| "ok".to_string()).map_err(|e| e.to_string())));
            outcome.push((format!("stat {to} through the union"), errno_of(fs::symlink_metadata(m.join(to)))));
        }
        let r = sys::umount(&m);
        check!(r == 0, "unmounting {fstype}: {}", errno_name(r));
        seen.push(outcome);
    }
    let premise = &seen[0][1].1;
    check!(*premise == Err(errno_name(libc::ELOOP)), "overlayfs gave {premise:?} for a moved lower root, the test expects ELOOP");
    crate::util::same_steps(&seen[0], &seen[1])
}

/// Layers passed as directory file descriptors (fsconfig FSCONFIG_SET_FD).
fn fd_layers() -> TestResult {
    let s = Scratch::new("fd_layers");
    let l1 = s.dir("l1");
    let file = s.file("file", "x");
    let open = |p: &Path| fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (dir, file) = (open(&l1)?, open(&file)?);
    let fc = FsContext::open("unionrs").map_err(errno_name)?;
    let rc = fc.set_fd("lowerdir+", file.as_fd());
    check!(rc == libc::ENOTDIR, "a file fd as lowerdir+ gave {}, want ENOTDIR", errno_name(rc));
    let rc = fc.set_fd("lowerdir+", dir.as_fd());
    check!(rc == 0, "a directory fd as lowerdir+ gave {}", errno_name(rc));
    let rc = fc.create();
    check!(rc == 0, "create with an fd layer gave {} ({})", errno_name(rc), fc.messages());
    Ok(())
}

/// The options a mount shows in /proc/self/mountinfo, with the layer directories left out.
pub(crate) fn shown_options(mnt: &Path) -> Result<Vec<String>, String> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let target = mnt.to_str().unwrap_or("");
    let line = info.lines().rfind(|l| l.split(' ').nth(4) == Some(target)).ok_or(format!("{target} not in mountinfo"))?;
    let opts = line.rsplit(' ').next().unwrap_or("");
    let layer = |o: &&str| ["lowerdir=", "lowerdir+=", "datadir+=", "upperdir=", "workdir="].iter().any(|k| o.starts_with(k));
    Ok(opts.split(',').filter(|o| !layer(o)).map(str::to_string).collect())
}

/// For option strings a user may give, unionrs and overlayfs mounted over the same layers show
/// the same options in /proc/self/mountinfo (apart from the layers' paths), in the same order.
fn options_shown_like_overlayfs() -> TestResult {
    let mut s = Scratch::new("options_shown");
    let l1 = s.dir("l1");
    let mut problems = vec![];
    for (i, extra) in [
        "",
        "default_permissions",
        "default_permissions,redirect_dir=on",
        "userxattr,default_permissions",
        "index=on,default_permissions",
        "metacopy=on",
        "uuid=off,default_permissions",
        "volatile",
        "fsync=volatile",
        "fsync=strict",
        "fsync=auto",
        "volatile,fsync=strict",
        "fsync=strict,volatile",
        "override_creds",
        "nooverride_creds",
        "override_creds,nooverride_creds,fsync=strict",
    ]
    .iter()
    .enumerate()
    {
        let mut shown = vec![];
        for fstype in ["overlay", "unionrs"] {
            let (u, w, m) = (s.dir(&format!("u-{fstype}-{i}")), s.dir(&format!("w-{fstype}-{i}")), s.dir(&format!("m-{fstype}-{i}")));
            let mut opts = format!("lowerdir={},upperdir={},workdir={}", l1.display(), u.display(), w.display());
            if !extra.is_empty() {
                opts = format!("{opts},{extra}");
            }
            let rc = sys::mount("none", &m, fstype, 0, &opts);
            check!(rc == 0, "{fstype} with {extra}: {}", errno_name(rc));
            s.track(&m);
            shown.push(shown_options(&m)?);
            sys::umount(&m);
        }
        if shown[0] != shown[1] {
            problems.push(format!("with \"{extra}\": overlayfs shows {:?}, unionrs {:?}", shown[0], shown[1]));
        }
    }
    check!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}
