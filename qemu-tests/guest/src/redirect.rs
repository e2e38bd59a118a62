//! `redirect_dir`: renames of lower and merged directories, which record where their lower
//! directories are (`overlay.redirect`), compared with overlayfs mounted with the same options:
//! the random-operation differential, a scripted sequence that reaches each kind of redirect
//! (relative, absolute, through redirected ancestors, exchanged, moved again, removed) with
//! each filesystem then mounting the other's upper, and crafted redirect values, each with the
//! result overlayfs' code gives it.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, Kmsg};
use crate::tree::{names_in, read_file};
use crate::trees::Layer;
use crate::util::verdict;
use crate::writable::{self, build_env, fstype_under_test, mount_union, swap_uppers, Op, Runner};
use crate::{check, Test, TestResult};
use std::path::{Path, PathBuf};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("redirect.random_ops", random_ops),
        Test::new("redirect.random_ops_index", random_ops_index),
        Test::new("redirect.renames_and_interop", renames_and_interop),
        Test::new("redirect.crafted_values", crafted_values),
    ]
}

/// Options of both unions: redirects made and followed, the other features off.
const REDIRECT_OPTS: &str = "redirect_dir=on,index=off,metacopy=off,xino=off";

/// With the inodes index: a renamed directory keeps its index entry and its number.
const REDIRECT_INDEX_OPTS: &str = "redirect_dir=on,index=on,metacopy=off,xino=on";

/// The random-operation differential with `redirect_dir=on`: its renames of lower and merged
/// directories succeed (on overlayfs) instead of failing with EXDEV.
fn random_ops() -> TestResult {
    writable::random_ops_variant("rd_random", REDIRECT_OPTS, 0x0d1e_c7ed)
}

/// The same with `index=on,xino=on`.
fn random_ops_index() -> TestResult {
    writable::random_ops_variant("rd_random_index", REDIRECT_INDEX_OPTS, 0x1de7_d1e5)
}

/// Renames over the random tests' layers (see `writable::build_layers_in`): d1, merged2 and
/// em are merged directories, d2, d1/sub and private lower ones, l1dir is on the top lower
/// layer, opq is opaque.
fn rename_ops() -> Vec<Op> {
    let p = |s: &str| s.as_bytes().to_vec();
    let mv = |from: &str, to: &str| Op::Rename { from: p(from), to: p(to), flags: 0 };
    let exchange = |from: &str, to: &str| Op::Rename { from: p(from), to: p(to), flags: libc::RENAME_EXCHANGE };
    let read = |s: &str| Op::Read { path: p(s) };
    vec![
        mv("d1", "d1r"),                                          // merged, same directory: relative "d1"
        read("d1r/a"),                                            // from L0 through the redirect
        read("d1r/c"),                                            // from L1
        Op::Pwrite { path: p("d1r/a"), off: 2, len: 3, fill: 4 }, // copy-up inside it
        Op::Mkdir { path: p("top"), mode: 0o755 },                // upper only
        mv("d1r/sub", "top/sub"),                                 // lower, other directory: absolute "/d1/sub"
        read("top/sub/deep/x"),
        mv("top/sub/deep", "deep2"), // below a redirected one: "/d1/sub/deep"
        read("deep2/x"),
        mv("d1r", "d1"),       // back to its name: "d1" kept
        mv("d1", "d1again"),   // and away again
        mv("merged2", "d2/m"), // into a lower directory (copied up)
        read("d2/m/x"),
        read("d2/m/y"),
        mv("d2", "top/d2"), // its parent moves: m keeps "/merged2"
        read("top/d2/m/x"),
        read("top/d2/g"),
        exchange("l1dir", "em"), // two lower directories swap
        read("em/f"),
        mv("d1again", "opq/d"), // into an opaque directory
        read("opq/d/shadowed"),
        mv("private", "private2"), // a 0700 lower directory
        read("private2/f"),
        Op::Unlink { path: p("deep2/x") },
        Op::Rmdir { path: p("deep2") },           // a redirected directory goes
        Op::Mkdir { path: p("d1"), mode: 0o755 }, // a new one where the first was
        mv("top/d2", "d2"),                       // back over its whiteout: "/d2" kept
        read("d2/m/y"),
        Op::Mkdir { path: p("empty_target"), mode: 0o755 },
        mv("d2/m", "empty_target"), // over an empty upper directory
        read("empty_target/y"),
        Op::Create { path: p("top/sub/new"), mode: 0o644, len: 9, fill: 5 },
        mv("top", "top2"), // an upper directory holding redirected ones
        read("top2/sub/new"),
    ]
}

/// The scripted renames, each result and then both views and uppers compared; then each
/// filesystem mounts the other's upper and work directories.
fn renames_and_interop() -> TestResult {
    let fstype = fstype_under_test();
    let mut diffs = vec![];
    for opts in [REDIRECT_OPTS, REDIRECT_INDEX_OPTS] {
        let mut s = Scratch::new("rd_renames");
        let mut env = build_env(&mut s, &fstype)?;
        env.opts = opts.to_string();
        let mut runner = Runner::start(&env, 0)?;
        for op in rename_ops() {
            runner.step(&op).map_err(|e| format!("{opts}: {e}"))?;
        }
        // The sequence must have done what it is for: the renames succeed on overlayfs.
        let renames = runner.stats.get("rename").map_or((0, 0), |(n, errs)| (*n, errs.get(&0).copied().unwrap_or(0)));
        check!(renames.1 == renames.0 && renames.0 >= 12, "{opts}: overlayfs did {} of {} renames", renames.1, renames.0);
        let mut d = runner.check();
        runner.sides.iter_mut().for_each(writable::Side::close_held);
        d.extend(swap_uppers(&env, runner));
        diffs.extend(d.into_iter().map(|e| format!("{opts}: {e}")));
    }
    verdict(diffs)
}

/// A crafted upper directory: its name, the value of its redirect xattr, and what looking it
/// up gives (Ok: the names it then lists).
struct Crafted {
    name: &'static str,
    value: &'static [u8],
    want: Result<&'static [&'static str], i32>,
    why: &'static str,
}

const CRAFTED: &[Crafted] = &[
    Crafted { name: "rel_ok", value: b"a", want: Ok(&["f"]), why: "a relative redirect: lower a" },
    Crafted { name: "abs_ok", value: b"/b/c", want: Ok(&["g"]), why: "an absolute redirect: lower b/c" },
    Crafted { name: "nul_ends", value: b"n\0junk", want: Ok(&["f"]), why: "the value ends at a NUL (a C string)" },
    Crafted { name: "dup_first", value: b"/dup", want: Ok(&["h"]), why: "a redirect to lower dup" },
    Crafted { name: "dup_second", value: b"dup", want: Err(libc::ESTALE), why: "a second directory redirected to lower dup" },
    Crafted { name: "missing", value: b"/nosuch/dir", want: Ok(&[]), why: "nothing there: the upper directory alone" },
    Crafted { name: "to_file", value: b"/a/f", want: Ok(&[]), why: "a file does not merge with a directory" },
    Crafted { name: "slash_in_rel", value: b"a/f", want: Err(libc::EINVAL), why: "a relative redirect is one name" },
    Crafted { name: "double_slash", value: b"/b//c", want: Err(libc::EINVAL), why: "an empty component" },
    Crafted { name: "trailing_slash", value: b"/b/", want: Err(libc::EINVAL), why: "an empty last component" },
    Crafted { name: "root_only", value: b"/", want: Err(libc::EINVAL), why: "no component" },
    Crafted { name: "empty_value", value: b"", want: Err(libc::EINVAL), why: "an empty value" },
    Crafted { name: "dotdot", value: b"..", want: Err(libc::EACCES), why: "lookup refuses '..'" },
    Crafted { name: "abs_dotdot", value: b"/../work", want: Err(libc::EACCES), why: "no way out of the layer" },
    Crafted { name: "nul_first", value: b"\0a", want: Err(libc::EACCES), why: "an empty name, which lookup refuses" },
    Crafted { name: "too_long", value: &[b'x'; 300], want: Ok(&[]), why: "a name too long for the layer: not there" },
];

/// Crafted `overlay.redirect` values on upper directories, looked up in this order (each
/// lower directory is the target of one redirect, but for dup_second) by both filesystems
/// with `redirect_dir=on`, then `redirect_dir=nofollow` (a redirect is refused) and through
/// `redirect_dir=off` (read as follow). Each result is compared with overlayfs' and with what
/// its code gives.
fn crafted_values() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("rd_crafted");
    let lower = s.dir("lower");
    Layer::at(&lower).file("a/f", b"f\n")?.file("b/c/g", b"g\n")?.file("n/f", b"f\n")?.file("dup/h", b"h\n")?.file("work/w", b"w\n")?;
    let mut problems = vec![];
    // The messages are rate-limited (10 in 5 s): nofollow goes first, after a pause, so that
    // its refusals and the first malformed values are logged.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let mut kmsg = Kmsg::new();
    for (opts, follows) in [("redirect_dir=nofollow", false), ("redirect_dir=on", true), ("redirect_dir=off", true)] {
        let mut results: Vec<Vec<(String, Result<Vec<String>, i32>)>> = vec![];
        for (i, fs) in ["overlay", fstype.as_str()].into_iter().enumerate() {
            let tag = format!("{}-{i}", opts.replace('=', "-"));
            let (upper, work, mnt) = (s.dir(&format!("u-{tag}")), s.dir(&format!("w-{tag}")), s.dir(&format!("m-{tag}")));
            for c in CRAFTED {
                let d = upper.join(c.name);
                writable::mkdirs(&d)?;
                let r = sys::lsetxattr(&d, "trusted.overlay.redirect", c.value);
                check!(r == 0, "setting the redirect of {}: {}", c.name, errno_name(r));
            }
            mount_union(fs, &mnt, &[lower.clone()], &upper, &work, 0, &format!("{opts},index=off,metacopy=off,xino=off"))?;
            s.track(&mnt);
            results.push(CRAFTED.iter().map(|c| (c.name.to_string(), listing(&mnt.join(c.name)))).collect());
            let r = sys::umount(&mnt);
            check!(r == 0, "unmounting {fs}: {}", errno_name(r));
        }
        for ((theirs, ours), c) in results[0].iter().zip(&results[1]).zip(CRAFTED) {
            let want: Result<Vec<String>, i32> = match (follows, c.want) {
                // nofollow reads a redirect where there is a lower directory to look in (the
                // root has one): a malformed one fails, any other is refused.
                (false, Err(libc::EINVAL)) => Err(libc::EINVAL),
                (false, _) => Err(libc::EPERM),
                (true, w) => w.map(|names| names.iter().map(|n| n.to_string()).collect()),
            };
            if theirs.1 != want {
                problems.push(format!(
                    "{opts}: {}: overlayfs gives {}, want {} ({}): the test's expectation is wrong",
                    c.name,
                    show(&theirs.1),
                    show(&want),
                    c.why
                ));
            }
            if ours.1 != want {
                problems.push(format!("{opts}: {}: {fstype} gives {}, want {} ({})", c.name, show(&ours.1), show(&want), c.why));
            }
        }
    }
    let log = kmsg.read_new();
    for msg in ["unionrs: invalid redirect", "unionrs: refusing to follow redirect"] {
        if fstype == "unionrs" && !log.contains(msg) {
            problems.push(format!("no '{msg}' in the kernel log"));
        }
    }
    // A redirect set through the union is not one: the upper gets the escaped name (for a
    // union stacked on it), as overlayfs writes it, and the directory stays what it was.
    let (upper, work, mnt) = (s.dir("u-set"), s.dir("w-set"), s.dir("m-set"));
    mount_union(&fstype, &mnt, &[lower.clone()], &upper, &work, 0, REDIRECT_OPTS)?;
    s.track(&mnt);
    let r = sys::lsetxattr(&mnt.join("a"), "trusted.overlay.redirect", b"/b/c");
    check!(r == 0, "setting trusted.overlay.redirect through the union: {}", errno_name(r));
    check!(sys::umount(&mnt) == 0, "unmounting: {}", errno_name(sys::errno()));
    let real = sys::lgetxattr(&upper.join("a"), b"trusted.overlay.redirect");
    let escaped = sys::lgetxattr(&upper.join("a"), b"trusted.overlay.overlay.redirect");
    if real != Err(libc::ENODATA) || escaped.as_deref() != Ok(&b"/b/c"[..]) {
        problems.push(format!("upper a after setting a redirect through the union: redirect {real:?}, escaped {escaped:?}"));
    }
    mount_union(&fstype, &mnt, &[lower.clone()], &upper, &work, 0, REDIRECT_OPTS)?;
    let l = listing(&mnt.join("a"));
    if l != Ok(vec!["f".to_string()]) {
        problems.push(format!("a after setting a redirect through the union lists {}, want [f]", show(&l)));
    }
    check!(sys::umount(&mnt) == 0, "unmounting: {}", errno_name(sys::errno()));
    verdict(problems)
}

/// The names a directory lists, sorted, or the errno of looking it up or listing it.
fn listing(p: &Path) -> Result<Vec<String>, i32> {
    sys::lstat(p)?;
    let mut names: Vec<String> = names_in(p)?.into_iter().map(|n| String::from_utf8_lossy(&n).into_owned()).collect();
    names.sort();
    // Reading the files listed reaches the lower layers through the redirect.
    for n in &names {
        read_file(&PathBuf::from(p).join(n)).map(|_| ())?;
    }
    Ok(names)
}

fn show(r: &Result<Vec<String>, i32>) -> String {
    match r {
        Ok(names) => format!("[{}]", names.join(", ")),
        Err(e) => errno_name(*e),
    }
}
