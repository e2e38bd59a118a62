//! `metacopy=on`: a change of metadata of a lower file copies only its metadata up
//! (`overlay.metacopy`), its data stays the lower file's until it is written; renames and
//! links of such files record redirects. Compared with overlayfs mounted with the same options:
//! the random-operation differential (views with `st_blocks`, uppers with every xattr), a
//! scripted sequence that reaches each case with each filesystem then mounting the other's
//! upper, and crafted metacopy files, each with the result overlayfs' code gives it.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, Kmsg};
use crate::tree::{self, read_file};
use crate::trees::Layer;
use crate::util::verdict;
use crate::writable::{self, build_env, fstype_under_test, mount_union, swap_uppers, Op, Runner};
use crate::{check, Test, TestResult};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("metacopy.random_ops", random_ops),
        Test::new("metacopy.random_ops_index", random_ops_index),
        Test::new("metacopy.changes_and_interop", changes_and_interop),
        Test::new("metacopy.crafted_files", crafted_files),
        Test::new("metacopy.data_only_layers", data_only_layers),
        Test::new("metacopy.verity", verity),
    ]
}

/// Metacopy alone: it turns `redirect_dir=on` on by itself.
const METACOPY_OPTS: &str = "metacopy=on,index=off,xino=off";

/// With the inodes index: a metacopy copy of a lower hard link goes through the index.
const METACOPY_INDEX_OPTS: &str = "metacopy=on,index=on,xino=on";

/// The random-operation differential with `metacopy=on`: its chmod, chown, utimens and
/// setxattr of lower files copy metadata only, its writes then copy the data.
fn random_ops() -> TestResult {
    writable::random_ops_variant("mc_random", METACOPY_OPTS, 0x3e7a_c0b7)
}

/// The same with `index=on,xino=on`.
fn random_ops_index() -> TestResult {
    writable::random_ops_variant("mc_random_index", METACOPY_INDEX_OPTS, 0x1d3e_7a11)
}

/// Metadata changes over the random tests' layers (see `writable::build_layers_in`), then
/// what must find the data again: renames (relative and absolute redirects, a lower hard
/// link), links, writes, truncation, a file held open across its data copy-up, a renamed
/// directory holding metacopy files.
fn metacopy_ops() -> Vec<Op> {
    let p = |s: &str| s.as_bytes().to_vec();
    let mv = |from: &str, to: &str| Op::Rename { from: p(from), to: p(to), flags: 0 };
    let read = |s: &str| Op::Read { path: p(s) };
    let stat = |s: &str| Op::Stat { path: p(s) };
    vec![
        Op::Chmod { path: p("d1/b"), mode: 0o600 }, // 200 KiB: metadata only
        read("d1/b"),
        stat("d1/b"),
        Op::Chown { path: p("small"), uid: 1000, gid: 1000 },
        Op::Utimens { path: p("sparse"), atime: (1, 0), mtime: (2, 0) }, // sparse file
        Op::SetXattr { path: p("d1/a"), name: "user.x", value: b"1".to_vec(), flags: 0 },
        mv("d1/b", "d1/b2"), // same directory: relative redirect "b"
        read("d1/b2"),
        mv("d1/b2", "d2/b3"), // other directory: absolute "/d1/b"
        read("d2/b3"),
        Op::Chmod { path: p("hl1"), mode: 0o640 }, // a lower hard link
        mv("hl1", "hl1m"),                         // absolute even in the same directory
        read("hl1m"),
        read("d2/hl2"),
        Op::Link { from: p("small"), to: p("d2/small_link") }, // a link records a redirect
        read("d2/small_link"),
        Op::Hold { slot: 0, path: p("d1/shadowed") }, // open before anything is copied
        Op::Chmod { path: p("d1/shadowed"), mode: 0o644 },
        Op::ReadHeld { slot: 0 },
        Op::Pwrite { path: p("d2/b3"), off: 100, len: 10, fill: 9 }, // the data now
        read("d2/b3"),
        Op::Pwrite { path: p("d1/shadowed"), off: 0, len: 3, fill: 7 },
        Op::ReadHeld { slot: 0 },            // follows the data copy-up
        Op::OpenTrunc { path: p("sparse") }, // no data copied
        stat("sparse"),
        Op::Truncate { path: p("small"), len: 5, via_fd: false },
        read("d2/small_link"),
        Op::Chmod { path: p("d1/c"), mode: 0o600 }, // from L1
        Op::Chmod { path: p("l1file"), mode: 0o600 },
        Op::Unlink { path: p("l1file") }, // a whiteout over a metacopy file
        mv("d1", "d1r"),                  // a directory of metacopy files
        read("d1r/c"),
        read("d1r/a"),
        stat("d1r/c"),
        Op::Chmod { path: p("exec"), mode: 0o4755 },
        Op::Mmap { path: p("exec"), off: 0, len: 4, fill: 3 },
        read("exec"),
    ]
}

/// The scripted changes, each result and then both views (with `st_blocks`) and uppers
/// compared; that the copies were metadata only; then each filesystem mounts the other's
/// upper and work directories.
fn changes_and_interop() -> TestResult {
    let fstype = fstype_under_test();
    let mut diffs = vec![];
    for opts in [METACOPY_OPTS, METACOPY_INDEX_OPTS] {
        let mut s = Scratch::new("mc_changes");
        let mut env = build_env(&mut s, &fstype)?;
        env.opts = opts.to_string();
        let mut runner = Runner::start(&env, 0)?;
        for op in metacopy_ops() {
            runner.step(&op).map_err(|e| format!("{opts}: {e}"))?;
        }
        // The sequence must have done what it is for: everything succeeds on overlayfs.
        let failed: Vec<String> = runner
            .stats
            .iter()
            .filter(|(_, (n, errs))| errs.get(&0).copied().unwrap_or(0) != *n)
            .map(|(name, (_, errs))| format!("{name} {errs:?}"))
            .collect();
        check!(failed.is_empty(), "{opts}: operations that fail on overlayfs: {}", failed.join(", "));
        // A file changed in metadata only has no data on the upper layer, on both.
        for side in &runner.sides {
            let upper = side.upper.join("d1r/c");
            let meta = sys::lgetxattr(&upper, b"trusted.overlay.metacopy");
            let blocks = sys::lstat(&upper).map(|st| st.st_blocks);
            if meta.as_deref() != Ok(&b""[..]) || blocks != Ok(0) {
                diffs.push(format!(
                    "{opts}: {} upper d1r/c: metacopy {}, {} blocks, want an empty metacopy xattr and no blocks",
                    side.label,
                    meta.map_or_else(errno_name, |v| format!("{v:?}")),
                    blocks.map_or_else(errno_name, |b| b.to_string())
                ));
            }
        }
        let mut d = runner.check();
        runner.sides.iter_mut().for_each(writable::Side::close_held);
        d.extend(swap_uppers(&env, runner));
        diffs.extend(d.into_iter().map(|e| format!("{opts}: {e}")));
    }
    verdict(diffs)
}

/// A crafted upper file: its name, its `overlay.metacopy` and `overlay.redirect` values
/// (`None`: not set), and what reading it gives with `metacopy=on` (Ok: the content).
struct Crafted {
    name: &'static str,
    metacopy: Option<&'static [u8]>,
    redirect: Option<&'static [u8]>,
    want: Result<&'static [u8], i32>,
    why: &'static str,
}

/// The upper files hold "UPPER" (what a union that did not follow the metacopy would show).
const CRAFTED: &[Crafted] = &[
    Crafted {
        name: "plain",
        metacopy: Some(b""),
        redirect: None,
        want: Ok(b"lower plain\n"),
        why: "data from the lower file of the same name",
    },
    Crafted {
        name: "header",
        metacopy: Some(&[0, 4, 0, 0]),
        redirect: None,
        want: Ok(b"lower header\n"),
        why: "the 4-byte header without digest",
    },
    Crafted {
        name: "version1",
        metacopy: Some(&[1, 4, 0, 0]),
        redirect: None,
        want: Ok(b"lower version1\n"),
        why: "lookup does not read the header (only verity does)",
    },
    Crafted { name: "too_small", metacopy: Some(&[0]), redirect: None, want: Err(libc::EIO), why: "shorter than the header" },
    Crafted { name: "no_lower", metacopy: Some(b""), redirect: None, want: Err(libc::EIO), why: "no lower data" },
    Crafted { name: "lower_dir", metacopy: Some(b""), redirect: None, want: Err(libc::EIO), why: "a directory holds no data" },
    Crafted { name: "lower_whiteout", metacopy: Some(b""), redirect: None, want: Err(libc::EIO), why: "the lower name is whited out" },
    Crafted { name: "abs", metacopy: Some(b""), redirect: Some(b"/blobs/one"), want: Ok(b"blob one\n"), why: "an absolute redirect" },
    Crafted {
        name: "rel",
        metacopy: Some(b""),
        redirect: Some(b"plain"),
        want: Err(libc::ESTALE),
        why: "a relative redirect to lower plain, which upper plain leads to too (looked up first)",
    },
    Crafted { name: "rel2", metacopy: Some(b""), redirect: Some(b"header2"), want: Ok(b"lower header2\n"), why: "a relative redirect" },
    Crafted {
        name: "layered",
        metacopy: Some(b""),
        redirect: None,
        want: Ok(b"blob two\n"),
        why: "a lower metacopy file, redirected to the bottom layer's data",
    },
    Crafted {
        name: "bad_redirect",
        metacopy: Some(b""),
        redirect: Some(b"a/b"),
        want: Err(libc::EINVAL),
        why: "a relative redirect is one name",
    },
    Crafted { name: "dotdot", metacopy: Some(b""), redirect: Some(b".."), want: Err(libc::EACCES), why: "lookup refuses '..'" },
    Crafted {
        name: "redirect_only",
        metacopy: None,
        redirect: Some(b"/blobs/one"),
        want: Ok(b"UPPER"),
        why: "a redirect without metacopy is not read",
    },
];

/// Crafted metacopy files on the upper layer over two lower layers (the middle one with a
/// metacopy file of its own, and a lower-only metacopy file with no data below), read by both
/// filesystems with `metacopy=on` and then `metacopy=off` (every metacopy file refused,
/// malformed values failing first). Each result is compared with overlayfs' and with what its
/// code gives.
fn crafted_files() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("mc_crafted");
    let (bottom, middle) = (s.dir("bottom"), s.dir("middle"));
    Layer::at(&bottom)
        .file("plain", b"lower plain\n")?
        .file("header", b"lower header\n")?
        .file("header2", b"lower header2\n")?
        .file("version1", b"lower version1\n")?
        .file("too_small", b"lower too_small\n")?
        .file("lower_dir/x", b"x\n")?
        .file("lower_whiteout", b"hidden\n")?
        .file("blobs/one", b"blob one\n")?
        .file("blobs/two", b"blob two\n")?
        .file("layered", b"not this one\n")?;
    Layer::at(&middle).whiteout("lower_whiteout")?.file("layered", b"MIDDLE")?.file("only_meta", b"MIDDLE")?;
    for (f, redirect) in [("layered", Some("/blobs/two")), ("only_meta", None)] {
        let p = middle.join(f);
        check!(sys::lsetxattr(&p, "trusted.overlay.metacopy", b"") == 0, "setting the metacopy xattr of middle/{f}");
        if let Some(r) = redirect {
            check!(sys::lsetxattr(&p, "trusted.overlay.redirect", r.as_bytes()) == 0, "setting the redirect of middle/{f}");
        }
    }
    let mut problems = vec![];
    let mut kmsg = Kmsg::new();
    for (opts, follows) in [("metacopy=off,redirect_dir=on", false), ("metacopy=on", true)] {
        // The messages are rate-limited (10 in 5 s): each pass starts with a fresh budget.
        std::thread::sleep(std::time::Duration::from_millis(5500));
        let mut results: Vec<Vec<Result<Vec<u8>, i32>>> = vec![];
        for (i, fs) in ["overlay", fstype.as_str()].into_iter().enumerate() {
            let tag = format!("{}-{i}", opts.replace(['=', ','], "-"));
            let (upper, work, mnt) = (s.dir(&format!("u-{tag}")), s.dir(&format!("w-{tag}")), s.dir(&format!("m-{tag}")));
            for c in CRAFTED {
                let p = upper.join(c.name);
                Layer::at(&upper).file(c.name, b"UPPER")?;
                if let Some(v) = c.metacopy {
                    check!(sys::lsetxattr(&p, "trusted.overlay.metacopy", v) == 0, "setting the metacopy xattr of {}", c.name);
                }
                if let Some(v) = c.redirect {
                    check!(sys::lsetxattr(&p, "trusted.overlay.redirect", v) == 0, "setting the redirect of {}", c.name);
                }
            }
            mount_union(fs, &mnt, &[middle.clone(), bottom.clone()], &upper, &work, 0, &format!("{opts},index=off,xino=off"))?;
            s.track(&mnt);
            let mut r: Vec<Result<Vec<u8>, i32>> = CRAFTED.iter().map(|c| read_file(&mnt.join(c.name))).collect();
            r.push(read_file(&mnt.join("only_meta")));
            results.push(r);
            let rc = sys::umount(&mnt);
            check!(rc == 0, "unmounting {fs}: {}", errno_name(rc));
        }
        let names = CRAFTED.iter().map(|c| (c.name, c.want, c.metacopy.is_some(), c.why));
        let all = names.chain([("only_meta", Err(libc::EIO), true, "a lower metacopy file with no data below")]);
        for (((theirs, ours), (name, want, is_meta, why)), _) in results[0].iter().zip(&results[1]).zip(all).zip(0..) {
            let want: Result<Vec<u8>, i32> = match (follows, want) {
                (true, w) => w.map(<[u8]>::to_vec),
                // Without metacopy: a malformed value still fails first, any metacopy file is
                // refused, the rest reads as with it.
                (false, Err(e)) if e == libc::EINVAL || name == "too_small" => Err(e),
                (false, _) if is_meta => Err(libc::EPERM),
                (false, w) => w.map(<[u8]>::to_vec),
            };
            if *theirs != want {
                problems.push(format!(
                    "{opts}: {name}: overlayfs gives {}, want {} ({why}): the test's expectation is wrong",
                    show(theirs),
                    show(&want)
                ));
            }
            if *ours != want {
                problems.push(format!("{opts}: {name}: {fstype} gives {}, want {} ({why})", show(ours), show(&want)));
            }
        }
    }
    let log = kmsg.read_new();
    for msg in ["unionrs: metacopy with no lower data found", "unionrs: refusing to follow metacopy origin", "has too small xattr"] {
        if fstype == "unionrs" && !log.contains(msg) {
            problems.push(format!("no '{msg}' in the kernel log"));
        }
    }
    // A metacopy xattr set through the union is not one: the upper gets the escaped name, and
    // the file keeps its own data.
    let (upper, work, mnt) = (s.dir("u-set"), s.dir("w-set"), s.dir("m-set"));
    mount_union(&fstype, &mnt, &[middle.clone(), bottom.clone()], &upper, &work, 0, METACOPY_OPTS)?;
    s.track(&mnt);
    Layer::at(&mnt).file("mine", b"my data\n")?;
    let r = sys::lsetxattr(&mnt.join("mine"), "trusted.overlay.metacopy", b"");
    check!(r == 0, "setting trusted.overlay.metacopy through the union: {}", errno_name(r));
    check!(sys::umount(&mnt) == 0, "unmounting: {}", errno_name(sys::errno()));
    let real = sys::lgetxattr(&upper.join("mine"), b"trusted.overlay.metacopy");
    let escaped = sys::lgetxattr(&upper.join("mine"), b"trusted.overlay.overlay.metacopy");
    if real != Err(libc::ENODATA) || escaped.as_deref() != Ok(&b""[..]) {
        problems.push(format!("upper mine after setting metacopy through the union: metacopy {real:?}, escaped {escaped:?}"));
    }
    mount_union(&fstype, &mnt, &[middle.clone(), bottom.clone()], &upper, &work, 0, METACOPY_OPTS)?;
    let data = read_file(&mnt.join("mine"));
    if data.as_deref() != Ok(&b"my data\n"[..]) {
        problems.push(format!("mine after setting metacopy through the union reads {}", show(&data)));
    }
    check!(sys::umount(&mnt) == 0, "unmounting: {}", errno_name(sys::errno()));
    verdict(problems)
}

/// The files of the composefs-style image: path, content, mode (directories are made on the
/// way; two files share their content, so the data layer holds it once).
fn image_files() -> Vec<(&'static str, Vec<u8>, u32)> {
    vec![
        ("bin/tool", b"#!/bin/sh\necho tool\n".to_vec(), 0o755),
        ("etc/conf", b"key=value\n".to_vec(), 0o644),
        ("etc/secret", b"only root\n".to_vec(), 0o600),
        ("share/big", crate::writable::pattern(5, 300 << 10), 0o644),
        ("share/copy1", b"same content\n".to_vec(), 0o644),
        ("share/copy2", b"same content\n".to_vec(), 0o444),
        ("empty", vec![], 0o644),
    ]
}

/// Where the data layer keeps `content` (composefs names objects by their sha256; a 64-bit
/// FNV-1a hash is enough to address them here): "/xx/yyyyyyyyyyyyyy".
fn object_path(content: &[u8]) -> String {
    let h = content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let hex = format!("{h:016x}");
    format!("/{}/{}", &hex[..2], &hex[2..])
}

/// A composefs-style image built here: a data-only layer of content-addressed objects, and a
/// metadata layer whose regular files are sparse metacopy files with the right size, mode and
/// an absolute redirect to their object (an empty file is stored as it is). Returns the
/// metadata and data layers.
fn build_image(s: &mut Scratch) -> Result<(PathBuf, PathBuf), String> {
    let (meta, data) = (s.dir("meta"), s.dir("data"));
    for (path, content, mode) in image_files() {
        let m = Layer::at(&meta);
        if content.is_empty() {
            m.file(path, b"")?.chmod(path, mode)?;
            continue;
        }
        let object = object_path(&content);
        Layer::at(&data).file(&object[1..], &content)?;
        m.file(path, b"")?.chmod(path, mode)?;
        let p = meta.join(path);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(content.len() as u64))
            .map_err(|e| format!("sizing {}: {e}", p.display()))?;
        check!(sys::lsetxattr(&p, "trusted.overlay.metacopy", b"") == 0, "setting the metacopy xattr of {path}");
        check!(sys::lsetxattr(&p, "trusted.overlay.redirect", object.as_bytes()) == 0, "setting the redirect of {path}");
    }
    Layer::at(&meta).symlink("bin/link", "tool")?.dir("var/empty")?;
    Ok((meta, data))
}

/// A composefs-style image (see `build_image`) mounted by overlayfs and by unionrs, as
/// `lowerdir=meta::data` and as `lowerdir+=meta,datadir+=data`, read-only and under an upper
/// layer: the views equal each other and hold the files' contents; a chmod copies the
/// metadata up, a write the data from the data-only layer; the uppers agree. Crafted
/// redirects that leave the data layer, name a symlink or a directory, or a missing object
/// fail alike on both.
fn data_only_layers() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("mc_data_only");
    let (meta, data) = build_image(&mut s)?;
    let mut problems = vec![];
    let (m, d) = (meta.display(), data.display());
    for (n, layers) in [format!("lowerdir={m}::{d}"), format!("lowerdir+={m},datadir+={d}")].iter().enumerate() {
        let mut views = vec![];
        for fs in ["overlay", fstype.as_str()] {
            let mnt = s.dir(&format!("ro-{n}-{fs}"));
            let rc = sys::mount("none", &mnt, fs, 0, layers);
            check!(rc == 0, "mounting {fs} with {layers}: {}", errno_name(rc));
            s.track(&mnt);
            for (path, content, _) in image_files() {
                let got = read_file(&mnt.join(path));
                if got.as_deref() != Ok(&content[..]) {
                    problems.push(format!("{fs} {layers}: {path} reads {}", got.map_or_else(errno_name, |v| format!("{} bytes", v.len()))));
                }
            }
            views.push(writable::walk(&mnt));
            // mountinfo shows the layers as given.
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let line = info.lines().find(|l| l.split(' ').nth(4) == mnt.to_str()).unwrap_or("");
            let opts = line.rsplit(' ').next().unwrap_or("");
            if !opts.contains(layers.as_str()) {
                problems.push(format!("{fs}: mountinfo shows '{opts}' for '{layers}'"));
            }
            check!(sys::umount(&mnt) == 0, "unmounting {fs}: {}", errno_name(sys::errno()));
        }
        let cmp = tree::Cmp { blocks: true, ..writable::view_cmp(&|_: &[u8]| (true, true)) };
        problems.extend(tree::diff_trees("overlayfs", &views[0], &fstype, &views[1], &cmp).into_iter().map(|e| format!("{layers}: {e}")));
    }
    // Under an upper layer, with metacopy=on: a chmod copies the metacopy file's metadata up
    // (its data stays in the data layer), a write copies the data from there.
    let mut sides = vec![];
    for fs in ["overlay", fstype.as_str()] {
        let (upper, work, mnt) = (s.dir(&format!("u-{fs}")), s.dir(&format!("w-{fs}")), s.dir(&format!("m-{fs}")));
        let opts = format!("lowerdir={m}::{d},upperdir={},workdir={},metacopy=on", upper.display(), work.display());
        let rc = sys::mount("none", &mnt, fs, 0, &opts);
        check!(rc == 0, "mounting {fs} with {opts}: {}", errno_name(rc));
        s.track(&mnt);
        let errno = |r: std::io::Result<()>| r.map_or_else(|e| e.raw_os_error().unwrap_or(-1), |_| 0);
        let chmod = |p: &str, mode: u32| errno(std::fs::set_permissions(mnt.join(p), std::fs::Permissions::from_mode(mode)));
        let mut results = vec![chmod("etc/conf", 0o640), chmod("share/big", 0o600)];
        let w = std::fs::OpenOptions::new().write(true).open(mnt.join("share/big")).and_then(|f| f.write_all_at(b"XYZ", 1000));
        results.push(errno(w));
        results.push(errno(std::fs::rename(mnt.join("bin/tool"), mnt.join("tool2"))));
        let meta_xattr = sys::lgetxattr(&upper.join("etc/conf"), b"trusted.overlay.metacopy");
        sides.push((fs, results, writable::walk(&mnt), writable::walk(&upper), meta_xattr, upper, mnt));
    }
    let [(_, ra, va, ua, ma, _, _), (_, rb, vb, ub, mb, _, _)] = &sides[..] else {
        return Err("two sides expected".into());
    };
    if ra != rb {
        problems.push(format!("with an upper: results overlayfs {ra:?}, {fstype} {rb:?}"));
    }
    if ra.iter().any(|&r| r != 0) || ma.as_deref() != Ok(&b""[..]) || mb.as_deref() != Ok(&b""[..]) {
        problems.push(format!("with an upper: results {ra:?}, upper etc/conf metacopy overlayfs {ma:?}, {fstype} {mb:?}"));
    }
    // Not the times: the two unions were changed one after the other.
    let cmp = tree::Cmp { blocks: true, ..writable::view_cmp(&|_: &[u8]| (false, false)) };
    problems.extend(tree::diff_trees("overlayfs view", va, &format!("{fstype} view"), vb, &cmp));
    problems.extend(tree::diff_trees("overlayfs upper", ua, &format!("{fstype} upper"), ub, &writable::upper_cmp()));
    for (fs, _, _, _, _, _, mnt) in &sides {
        check!(sys::umount(mnt) == 0, "unmounting {fs}: {}", errno_name(sys::errno()));
    }
    // Crafted redirects in a metadata layer of their own, over the same data layer.
    let bad = s.dir("bad_meta");
    let conf = object_path(b"key=value\n");
    let through_symlink = format!("/symdir/{}", &conf[4..]);
    let crafted: [(&str, &[u8], i32, &str); 6] = [
        ("escapes", b"/../meta/etc/conf", libc::EXDEV, "no way out of the data layer"),
        ("through_symlink", through_symlink.as_bytes(), libc::ELOOP, "no symlinks on the way"),
        ("to_symlink", b"/sym", libc::ENOENT, "a symlink holds no data"),
        ("to_dir", b"/dir", libc::ENOENT, "only a regular file holds data"),
        ("missing", b"/00/0000000000000000", libc::ENOENT, "a missing object"),
        ("relative", b"conf", libc::EPERM, "a relative redirect does not lead into a data layer: metacopy=off refuses it"),
    ];
    Layer::at(&data).symlink("sym", &conf[1..])?.symlink("symdir", &conf[1..3])?.dir("dir")?;
    for (name, redirect, _, _) in crafted {
        let p = bad.join(name);
        Layer::at(&bad).file(name, b"")?;
        std::fs::OpenOptions::new().write(true).open(&p).and_then(|f| f.set_len(4)).map_err(|e| e.to_string())?;
        check!(sys::lsetxattr(&p, "trusted.overlay.metacopy", b"") == 0, "metacopy of {name}");
        check!(sys::lsetxattr(&p, "trusted.overlay.redirect", redirect) == 0, "redirect of {name}");
    }
    for fs in ["overlay", fstype.as_str()] {
        let mnt = s.dir(&format!("bad-{fs}"));
        let rc = sys::mount("none", &mnt, fs, 0, &format!("lowerdir={}::{d}", bad.display()));
        check!(rc == 0, "mounting {fs} over the crafted layer: {}", errno_name(rc));
        s.track(&mnt);
        for (name, _, want, why) in crafted {
            let got = read_file(&mnt.join(name));
            if got != Err(want) {
                problems.push(format!("{fs}: crafted {name} reads {}, want {} ({why})", show(&got), errno_name(want)));
            }
        }
        check!(sys::umount(&mnt) == 0, "unmounting {fs}: {}", errno_name(sys::errno()));
    }
    verdict(problems)
}

/// Enables fs-verity on `p` and returns its SHA-256 digest (`fsverity` from fsverity-utils).
fn enable_verity(p: &std::path::Path) -> Result<Vec<u8>, String> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("fsverity").args(args).arg(p).output().map_err(|e| format!("fsverity: {e}"))?;
        check!(out.status.success(), "fsverity {args:?} {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    run(&["enable"])?;
    let hex = run(&["digest", "--compact"])?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16).map_err(|_| format!("fsverity digest printed {hex:?}")))
        .collect()
}

/// The `overlay.metacopy` value recording a SHA-256 fs-verity digest: version 0, length,
/// flags 0, algorithm 1 (`FS_VERITY_HASH_ALG_SHA256`), the digest.
fn metacopy_with_digest(digest: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 4 + digest.len() as u8, 0, 1];
    v.extend_from_slice(digest);
    v
}

/// `verity=`: a composefs-style image whose metacopy files record the fs-verity digests of
/// their data (on an ext4 with the verity feature), mounted by overlayfs and unionrs with
/// `verity=off|on|require`: a good file reads, a file without digest reads but under
/// `require`, data that is not the recorded one (tampered) or has no fs-verity fails with
/// `EIO` but under `off`. A metadata-only copy-up with `verity=on` records the digest of the
/// lower data (the same xattr as overlayfs writes); with `require`, a file whose data has no
/// fs-verity is copied up whole.
fn verity() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("mc_verity");
    let v = crate::identity::loop_fs_at(&mut s, "v", 64 << 20, &["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "verity"], "ext4")?;
    let (meta, data) = (v.join("meta"), v.join("data"));
    let (m, d) = (Layer::new(meta.clone())?, Layer::new(data.clone())?);
    // Data objects: good (verity, recorded), other (verity: what "tampered" finds), plain (no
    // verity).
    d.file("good", b"good data\n")?.file("other", b"tampered data\n")?.file("plain", b"no verity\n")?;
    let good = enable_verity(&data.join("good"))?;
    let other_digest = enable_verity(&data.join("other"))?;
    check!(good != other_digest && good.len() == 32, "fsverity digests {good:?} {other_digest:?}");
    let meta_file = |name: &str, len: u64, value: &[u8], redirect: &str| -> TestResult {
        m.file(name, b"")?;
        let p = meta.join(name);
        std::fs::OpenOptions::new().write(true).open(&p).and_then(|f| f.set_len(len)).map_err(|e| e.to_string())?;
        check!(sys::lsetxattr(&p, "trusted.overlay.metacopy", value) == 0, "metacopy of {name}");
        check!(sys::lsetxattr(&p, "trusted.overlay.redirect", redirect.as_bytes()) == 0, "redirect of {name}");
        Ok(())
    };
    meta_file("good", 10, &metacopy_with_digest(&good), "/good")?;
    meta_file("no_digest", 10, b"", "/good")?;
    meta_file("tampered", 14, &metacopy_with_digest(&good), "/other")?;
    meta_file("not_verity", 10, &metacopy_with_digest(&good), "/plain")?;
    let cases: [(&str, &[u8], [bool; 3]); 4] = [
        // name, content, readable with verity=off, on, require
        ("good", b"good data\n", [true, true, true]),
        ("no_digest", b"good data\n", [true, true, false]),
        ("tampered", b"tampered data\n", [true, false, false]),
        ("not_verity", b"no verity\n", [true, false, false]),
    ];
    let mut problems = vec![];
    for (i, mode) in ["off", "on", "require"].iter().enumerate() {
        for fs in ["overlay", fstype.as_str()] {
            let mnt = s.dir(&format!("ro-{mode}-{fs}"));
            let opts = format!("lowerdir={}::{},verity={mode}", meta.display(), data.display());
            let rc = sys::mount("none", &mnt, fs, 0, &opts);
            check!(rc == 0, "mounting {fs} with {opts}: {}", errno_name(rc));
            s.track(&mnt);
            for (name, content, readable) in cases {
                let want: Result<Vec<u8>, i32> = if readable[i] { Ok(content.to_vec()) } else { Err(libc::EIO) };
                let got = read_file(&mnt.join(name));
                if got != want {
                    problems.push(format!("{fs} verity={mode}: {name} reads {}, want {}", show(&got), show(&want)));
                }
            }
            check!(sys::umount(&mnt) == 0, "unmounting {fs}: {}", errno_name(sys::errno()));
        }
    }
    // Metadata-only copy-up of a lower file whose data has fs-verity, and of one without.
    let lower = v.join("lower");
    Layer::new(lower.clone())?.file("verity_file", b"lower data with verity\n")?.file("plain_file", b"lower data\n")?;
    let lower_digest = enable_verity(&lower.join("verity_file"))?;
    for mode in ["on", "require"] {
        let mut uppers = vec![];
        for fs in ["overlay", fstype.as_str()] {
            let (upper, work, mnt) =
                (v.join(format!("u-{mode}-{fs}")), v.join(format!("w-{mode}-{fs}")), s.dir(&format!("cu-{mode}-{fs}")));
            writable::mkdirs(&upper)?;
            writable::mkdirs(&work)?;
            mount_union(fs, &mnt, &[lower.clone()], &upper, &work, 0, &format!("metacopy=on,verity={mode},index=off,xino=off"))?;
            s.track(&mnt);
            for f in ["verity_file", "plain_file"] {
                let r = std::fs::set_permissions(mnt.join(f), std::fs::Permissions::from_mode(0o600));
                check!(r.is_ok(), "{fs} verity={mode}: chmod {f}: {r:?}");
            }
            check!(sys::umount(&mnt) == 0, "unmounting {fs}: {}", errno_name(sys::errno()));
            let xattr = |f: &str| sys::lgetxattr(&upper.join(f), b"trusted.overlay.metacopy");
            uppers.push((fs, xattr("verity_file"), xattr("plain_file")));
        }
        let want_verity = Ok(metacopy_with_digest(&lower_digest));
        // Without fs-verity on the data: a metacopy file without digest, or under require a
        // whole copy.
        let want_plain: Result<Vec<u8>, i32> = if mode == "on" { Ok(vec![]) } else { Err(libc::ENODATA) };
        for (fs, vf, pf) in &uppers {
            if *vf != want_verity || *pf != want_plain {
                problems
                    .push(format!("{fs} verity={mode}: upper metacopy xattrs {vf:?} and {pf:?}, want {want_verity:?} and {want_plain:?}"));
            }
        }
    }
    verdict(problems)
}

fn show(r: &Result<Vec<u8>, i32>) -> String {
    match r {
        Ok(data) => format!("\"{}\"", data.escape_ascii()),
        Err(e) => errno_name(*e),
    }
}
