//! Read-only unions (lower layers only), checked against overlayfs mounted with the same
//! options in the same guest: the whole tree as stat(2), readdir(3), read(2), readlink(2) and
//! the xattr calls see it; directory positions (telldir/seekdir); EROFS for every change; no
//! atime updates on the layers; and layers spread over tmpfs, ext4 and xfs.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::{self, diff_groups, diff_trees, names_in, read_file, walk, Cmp, DirStream, Inos, Walk, WalkOpts};
use crate::trees::{self, layer_paths, stamp_times, three_layers, Layer, Spread};
use crate::util::{bpath, bytes_diff, errno_of, show, verdict, XorShift};
use crate::{check, Test, TestResult};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::hash::Hash;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

fn describe_err<T>(r: &Result<T, i32>, ok: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("error {}", errno_name(*e)),
    }
}

/// The names in directory `p`, as a set.
fn name_set(p: &Path) -> Result<BTreeSet<Vec<u8>>, i32> {
    Ok(names_in(p)?.into_iter().collect())
}

/// Mounts `fstype` ("unionrs" or "overlay") over `layers` (top first) at `target`.
fn mount_layers(fstype: &str, target: &Path, layers: &[&Path]) -> Result<(), String> {
    mount_layers_with(fstype, target, layers, "")
}

/// [`mount_layers`] with more options (`extra`, comma-separated, may be empty).
fn mount_layers_with(fstype: &str, target: &Path, layers: &[&Path], extra: &str) -> Result<(), String> {
    let dirs: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", dirs.join(":"));
    if !extra.is_empty() {
        opts.push(',');
        opts.push_str(extra);
    }
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
// Comparing a union with overlayfs

/// overlayfs' private xattrs: probed on every directory, since listxattr may hide them.
const PRIVATE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "trusted.overlay.whiteout"];

/// The directory whose entries are compared by stat only: the 100 000 empty files of big/
/// would take most of the run to open and list the xattrs of under an emulated CPU, and the
/// rest of the tree covers those paths.
const SHALLOW_DIRS: &[&[u8]] = &[b"big"];

/// How the read-only tests read a tree; `dir_dino` where readdir's d_ino of directories must
/// match st_ino.
fn walk_opts(dir_dino: bool) -> WalkOpts<'static> {
    WalkOpts { shallow: SHALLOW_DIRS, probes: &PRIVATE_XATTRS, dir_dino }
}

/// How the read-only tests compare two trees: everything but atime (reads may set it), inode
/// numbers of directories too with `dir_inos`.
fn compare_opts(dir_inos: bool) -> Cmp<'static> {
    Cmp {
        nlink: true,
        blocks: true,
        d_type: true,
        inos: if dir_inos { Inos::All } else { Inos::NonDirs },
        dino_not_worse: false,
        links_not_worse: false,
        links: false,
        times: &|_| (false, true),
        xattr_skip: &[],
        xattr_presence: &[],
    }
}

/// Objects that must not share a key with any other object in the same walk.
fn unique_in<K: Hash + Eq>(w: &Walk, what: &str, key: impl Fn(&libc::stat) -> Option<K>) -> Vec<String> {
    let mut first: HashMap<K, &[u8]> = HashMap::new();
    let mut out = vec![];
    for (rel, n) in &w.nodes {
        if let Some(k) = key(&n.st) {
            if let Some(other) = first.insert(k, rel.as_slice()) {
                out.push(format!("{} {} and {} have the same {what}", w.label, show(rel), show(other)));
            }
        }
    }
    out
}

/// Objects (only directories, with `dirs_only`) whose st_dev differs from the root's.
fn check_devs(w: &Walk, dirs_only: bool) -> Vec<String> {
    let Some(root) = w.nodes.get(&b""[..]).map(|n| n.st) else { return vec![] };
    w.nodes
        .iter()
        .filter(|(_, n)| (!dirs_only || n.is_dir()) && n.st.st_dev != root.st_dev)
        .map(|(rel, n)| format!("{} {}: st_dev {:#x}, the mount root's is {:#x}", w.label, show(rel), n.st.st_dev, root.st_dev))
        .collect()
}

struct CompareOpts {
    /// All layers on one filesystem (or xino): every object shows the union's st_dev, and
    /// directories keep their real (persistent) inode numbers, as readdir reports them on
    /// overlayfs too.
    same_fs: bool,
}

struct Compared {
    diffs: Vec<String>,
    ours: Walk,
}

/// Walks the unionrs tree at `ours` and the overlayfs tree at `reference` and lists every
/// difference, plus what is inconsistent within either tree.
fn compare_trees(ours: &Path, reference: &Path, opts: &CompareOpts) -> Result<Compared, String> {
    // With layers on several filesystems (without xino) directories' d_ino are real numbers
    // but their st_ino made up, on both unions.
    let a = walk("unionrs", ours, &walk_opts(opts.same_fs));
    crate::progress("walked the unionrs tree");
    let b = walk("overlayfs (the reference)", reference, &walk_opts(opts.same_fs));
    let mut diffs = diff_trees(&a.label, &a, &b.label, &b, &compare_opts(opts.same_fs));
    let non_dir = |s: &libc::stat| !tree::is_fmt(s, libc::S_IFDIR);
    if opts.same_fs {
        for w in [&a, &b] {
            diffs.extend(check_devs(w, false));
        }
        diffs.extend(diff_groups((&a.label, &a), (&b.label, &b), "st_ino", |s| Some((s.st_dev, s.st_ino)), |_, _| false));
    } else {
        for w in [&a, &b] {
            diffs.extend(check_devs(w, true));
            diffs.extend(unique_in(w, "directory st_dev/st_ino", |s| (!non_dir(s)).then_some((s.st_dev, s.st_ino))));
        }
        diffs.extend(diff_groups(
            (&a.label, &a),
            (&b.label, &b),
            "st_dev/st_ino",
            |s| non_dir(s).then_some((s.st_dev, s.st_ino)),
            |_, _| false,
        ));
        diffs.extend(diff_groups((&a.label, &a), (&b.label, &b), "st_dev", |s| non_dir(s).then_some(s.st_dev), |_, _| false));
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
    match name_set(&root.join("opq")) {
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
    match name_set(&root.join("big")) {
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
    let layers = three_layers(&s)?;
    let big = Spread::new(trees::BIG_FAST, trees::BIG_DUP_EVERY, trees::BIG_WHITEOUT_EVERY);
    crate::progress("differential: building the layers");
    trees::build_differential(&layers, &big)?;
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
    let layers = three_layers(&s)?;
    let spread = Spread::new(3000, 10, 7);
    spread.build(&layers, "m")?;
    let expected_m = spread.visible();
    for i in 0..600 {
        layers[1].node(format!("s/f{i}"), libc::S_IFREG | 0o644, 0)?;
    }
    layers[2].file("bottom_only", "x")?;
    let (u, o) = mount_both(&mut s, &layer_paths(&layers))?;

    let mut diffs = vec![];
    let mut rng = XorShift(SEED);
    for rel in ["m", "s", ""] {
        diffs.extend(check_seek(&bpath(&u, rel.as_bytes()), rel, &mut rng)?);
        let ours = name_set(&bpath(&u, rel.as_bytes())).map_err(|e| format!("unionrs readdir /{rel}: {}", errno_name(e)))?;
        let theirs = name_set(&bpath(&o, rel.as_bytes())).map_err(|e| format!("overlayfs readdir /{rel}: {}", errno_name(e)))?;
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
    let (l0, l1) = (Layer::new(s.path("l0"))?, Layer::new(s.path("l1"))?);
    l0.file("d/in0", "top\n")?.file("top_file", "top\n")?.xattr("d", "user.test", "d-value")?;
    l1.file("f", F_CONTENT)?.xattr("f", "user.test", "f-value")?.file("d/in1", "lower\n")?.symlink("ln", "f")?;
    for (i, l) in [&l0, &l1].iter().enumerate() {
        stamp_times(&l.root, 1_100_000_000 + i as i64 * 1_000_000, &[])?;
    }
    let f_before = sys::lstat(&l1.path("f")).map_err(|e| format!("lstat lower f: {}", errno_name(e)))?;
    let layer_opts = walk_opts(true);
    let before = [walk("l0 before", &l0.root, &layer_opts), walk("l1 before", &l1.root, &layer_opts)];
    let (u, o) = mount_both(&mut s, &[&l0.root, &l1.root])?;

    let mut diffs = vec![];
    for (what, op) in modifying_ops() {
        let (ours, theirs) = (op(&u), op(&o));
        if ours != libc::EROFS || theirs != libc::EROFS {
            diffs.push(format!("{what}: unionrs {}, overlayfs {}, want EROFS", errno_name(ours), errno_name(theirs)));
        }
    }

    // Nothing reached the layers.
    let after = [walk("l0 after", &l0.root, &layer_opts), walk("l1 after", &l1.root, &layer_opts)];
    for (b, a) in before.iter().zip(&after) {
        diffs.extend(diff_trees(&b.label, b, &a.label, a, &compare_opts(true)));
    }
    match (read_file(&l1.path("f")), sys::lstat(&l1.path("f"))) {
        (Ok(c), Ok(st)) => {
            check!(c == F_CONTENT, "lower f changed: {}", bytes_diff(F_CONTENT, &c));
            check!(
                (st.st_mtime, st.st_mtime_nsec) == (f_before.st_mtime, f_before.st_mtime_nsec),
                "lower f mtime changed from {}.{:09} to {}.{:09}",
                f_before.st_mtime,
                f_before.st_mtime_nsec,
                st.st_mtime,
                st.st_mtime_nsec
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
    let (l0, l1) = (Layer::new(s.path("l0"))?, Layer::new(s.path("l1"))?);
    l0.file("other", "x\n")?;
    // Three pages and a bit, so that mmap and splice cross page boundaries.
    let data: Vec<u8> = (0..12_411u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    l1.file("data", &data)?;
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

fn build_multi_fs_tree(l: &[Layer; 3]) -> TestResult {
    let [l0, l1, l2] = l;
    for (i, layer) in l.iter().enumerate() {
        layer
            .file(format!("merged/l{i}"), format!("layer {i}\n"))?
            .file(format!("merged/sub/l{i}"), format!("sub, layer {i}\n"))?
            .file(format!("merged/sub/deeper/l{i}"), format!("deeper, layer {i}\n"))?
            .file("merged/shared", format!("shared, layer {i} version\n"))?;
    }
    l0.whiteout("merged/wh")?.whiteout("gone_dir")?;
    l1.file("merged/wh", "hidden\n")?.file("gone_dir/x", "hidden\n")?;
    l2.file("merged/wh", "hidden\n")?;
    l0.opaque("opq", "y")?.file("opq/top", "visible\n")?;
    l1.file("opq/mid", "hidden\n")?;
    l2.file("opq/bottom", "hidden\n")?;
    l0.file("file_over_dir", "file\n")?;
    l2.file("file_over_dir/inner", "hidden\n")?;
    // Hard links on ext4, one of them in a merged directory.
    l1.file("ext4_links/a", "linked\n")?.hardlink("ext4_links/a", "ext4_links/b")?.hardlink("ext4_links/a", "merged/sub/c_link")?;
    l1.symlink("merged/rel", "shared")?.xattr("merged/l1", "user.test", "ext4")?;
    l2.symlink("merged/abs", "/nowhere/at/all")?.xattr("merged/l2", "user.test", "xfs")?.xattr("merged/sub", "user.dir", "xfs-dir")?;
    l0.xattr("merged/l0", "user.test", "tmpfs")?;
    l2.file("xfs_only/deep/file", "x\n")?.node("xfs_only/fifo", libc::S_IFIFO | 0o600, 0)?;
    l1.dir("ext4_only/empty")?.file("ext4_only/owned", "x\n")?.chown("ext4_only/owned", 1000, 1000)?.chmod("ext4_only/owned", 0o640)?;
    Spread::new(300, 10, 7).build(l, "spread")?;
    Ok(())
}

fn multi_fs() -> TestResult {
    let mut g = MultiFs { unions: vec![], loops: vec![], s: Scratch::new("ro_multi_fs") };
    let l1_root = g.loop_fs("l1", 64 << 20, &["mkfs.ext4", "-q", "-F"], "ext4")?;
    // mkfs.xfs refuses filesystems under 300 MB; leave some room above that.
    let l2_root = g.loop_fs("l2", 320 << 20, &["mkfs.xfs", "-q", "-f"], "xfs")?;
    let layers = [Layer::new(g.s.path("l0"))?, Layer { root: l1_root }, Layer { root: l2_root }];
    build_multi_fs_tree(&layers)?;
    for (i, l) in layers.iter().enumerate() {
        stamp_times(&l.root, 1_200_000_000 + i as i64 * 10_000_000, &[])?;
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

    // With xino=auto the filesystem's number goes in the high bits of every inode number
    // (3 bits here, for 3 filesystems), on both unions: compared again, and the numbers must
    // stay the same when the union's inodes are evicted and looked up again, and across a
    // remount. (Without xino, as above, directories get numbers made up per mount, as in
    // overlayfs.)
    for t in [&u, &o] {
        let rc = sys::umount(t);
        check!(rc == 0, "umount {}: {}", t.display(), errno_name(rc));
    }
    mount_layers_with("unionrs", &u, &paths, "xino=auto")?;
    mount_layers_with("overlay", &o, &paths, "xino=auto")?;
    let c = compare_trees(&u, &o, &CompareOpts { same_fs: true })?;
    diffs.extend(c.diffs);
    let before: Vec<(&Vec<u8>, u64)> = c.ours.nodes.iter().map(|(rel, n)| (rel, n.st.st_ino)).collect();
    let recheck = |when: &str, diffs: &mut Vec<String>| {
        for (rel, ino) in &before {
            match sys::lstat(&bpath(&u, rel)) {
                Ok(st) if st.st_ino == *ino => {}
                Ok(st) => diffs.push(format!("unionrs {}: st_ino {ino} at first, {} {when}", show(rel), st.st_ino)),
                Err(e) => diffs.push(format!("unionrs {}: lstat {when}: {}", show(rel), errno_name(e))),
            }
        }
    };
    fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("dropping caches: {e}"))?;
    recheck("after dropping caches", &mut diffs);
    let rc = sys::umount(&u);
    check!(rc == 0, "umount unionrs: {}", errno_name(rc));
    mount_layers_with("unionrs", &u, &paths, "xino=auto")?;
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
