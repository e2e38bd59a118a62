//! Layers added to a mounted union (`mount -o remount,lowerdir+=DIR`, which overlayfs does not
//! have): after each addition, made while readers and writers are busy in the union, the view
//! must be what overlayfs shows when mounted afresh over the same layers (with a copy of the
//! upper layer), cached negative lookups must have gone, and open files and directories held
//! from before must keep working; what cannot be added is refused with a clear error and
//! leaves the union as it was.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, Kmsg};
use crate::tree::diff_trees;
use crate::util::first_lines;
use crate::writable::{view_cmp, walk};
use crate::{check, progress, Test, TestResult};
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![Test::new("live.layers_under_load", layers_under_load), Test::new("live.refusals", refusals)]
}

fn no_times(_: &[u8]) -> (bool, bool) {
    (false, false)
}

/// Adds `dir` below the lower layers of the union at `mnt`: with remount(2) as mount(8) does
/// it, or with the new mount API (fspick, fsconfig, reconfigure). Returns 0 or the errno, and
/// the messages the filesystem gave the context.
fn add_layer(mnt: &Path, key: &str, dir: &Path, new_api: bool) -> (i32, String) {
    if !new_api {
        let data = format!("{key}={}", dir.display());
        return (sys::mount("none", mnt, "", libc::MS_REMOUNT, &data), String::new());
    }
    let fd = match rustix::mount::fspick(rustix::fs::CWD, mnt, rustix::mount::FsPickFlags::FSPICK_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => return (e.raw_os_error(), "fspick failed".to_string()),
    };
    let rc = match rustix::mount::fsconfig_set_string(&fd, key, dir) {
        Ok(()) => rustix::mount::fsconfig_reconfigure(&fd).map_or_else(|e| e.raw_os_error(), |()| 0),
        Err(e) => e.raw_os_error(),
    };
    (rc, messages(&fd))
}

fn messages(fd: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = rustix::io::read(fd, &mut buf) {
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
        out.push('\n');
    }
    out
}

/// The options /proc/self/mounts shows for the mount at `mnt`.
fn mount_options(mnt: &Path) -> Result<String, String> {
    let all = fs::read_to_string("/proc/self/mounts").map_err(|e| e.to_string())?;
    let target = mnt.display().to_string();
    all.lines()
        .rfind(|l| l.split(' ').nth(1) == Some(target.as_str()))
        .and_then(|l| l.split(' ').nth(3))
        .map(str::to_string)
        .ok_or_else(|| format!("{target} is not in /proc/self/mounts"))
}

fn write(p: &Path, content: &str) -> Result<(), String> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    fs::write(p, content).map_err(|e| format!("write {}: {e}", p.display()))
}

fn io<T>(what: &str, p: &Path, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what} {}: {e}", p.display()))
}

fn errno_at(p: &Path) -> i32 {
    match fs::symlink_metadata(p) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// The layers of the test, and the layers added one by one. Each new layer has names the
/// union must now show (new files in merged directories, a new directory, names looked up
/// before and not found), and names it must keep hiding (under an upper file, a whiteout, an
/// opaque directory, a non-directory above a directory).
fn build_layers(s: &Scratch) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let l1 = s.dir("l1");
    for (p, c) in [
        ("a/f1", "l1 a/f1"),
        ("a/f2", "l1 a/f2"),
        ("a/sub/g", "l1 a/sub/g"),
        ("b/x", "l1 b/x"),
        ("gone", "l1 gone"),
        ("gonedir/y", "l1 gonedir/y"),
        ("opq/z", "l1 opq/z"),
        ("ren/r1", "l1 ren/r1"),
        ("meta", "l1 meta"),
        ("held/h1", "l1 held/h1"),
        ("filedir", "l1 filedir is a file"),
    ] {
        write(&l1.join(p), c)?;
    }
    s.dir("l1/busy");
    // Not walked by the load: only the test's own calls reach it, through a held descriptor.
    s.dir("l1/quiet");
    let mut new = vec![];
    for k in 1..=4 {
        let n = s.dir(&format!("n{k}"));
        let files: Vec<(String, String)> = match k {
            1 => vec![
                "a/f3",
                "a/f1",
                "a/sub/h",
                "c/k",
                "gone",
                "gonedir/y2",
                "opq/z2",
                "neg",
                "updir/u1",
                "ren/r2",
                "filedir/under",
                "quiet/mine",
                "quiet/other",
            ],
            2 => vec!["c/k2", "a/sub/h", "deep/1/2/3/file", "held/newname", "b/x2", "neg2/inside"],
            3 => vec!["e", "deep/1/2/3/f3", "a/f3", "updir/u3", "meta"],
            _ => vec!["deep/1/2/3/more", "a/f4", "c/k4", "ren/r4", "held/four"],
        }
        .into_iter()
        .map(|p| (p.to_string(), format!("n{k} {p}")))
        .collect();
        for (p, c) in &files {
            write(&n.join(p), c)?;
        }
        if k == 3 {
            // A file where the layers above have a directory: hidden below it.
            write(&n.join("c"), "n3 c is a file")?;
            fs::set_permissions(n.join("e"), fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        }
        new.push(n);
    }
    Ok((l1, new))
}

/// Readers walking the settled part of the union and a writer busy in `busy/`, until told to
/// stop; every error they met.
struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

fn read_tree(p: &Path, errors: &Mutex<Vec<String>>) {
    let Ok(entries) = fs::read_dir(p) else {
        errors.lock().unwrap().push(format!("readdir {} failed", p.display()));
        return;
    };
    for e in entries {
        let Ok(e) = e else {
            errors.lock().unwrap().push(format!("readdir {} failed midway", p.display()));
            return;
        };
        let path = e.path();
        if path.file_name().is_some_and(|n| n == "busy" || n == "quiet") {
            continue;
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => read_tree(&path, errors),
            Ok(_) => {
                let mut v = vec![];
                if let Err(err) = fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut v)) {
                    errors.lock().unwrap().push(format!("read {}: {err}", path.display()));
                }
            }
            Err(err) => errors.lock().unwrap().push(format!("lstat {}: {err}", path.display())),
        }
    }
}

impl Load {
    fn start(mnt: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(vec![]));
        let mut threads = vec![];
        for _ in 0..2 {
            let (stop, errors, mnt) = (stop.clone(), errors.clone(), mnt.to_path_buf());
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    read_tree(&mnt, &errors);
                }
            }));
        }
        let (stop2, errors2, busy) = (stop.clone(), errors.clone(), mnt.join("busy"));
        threads.push(thread::spawn(move || {
            let mut i = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let (a, b) = (busy.join(format!("w{}", i % 7)), busy.join(format!("r{}", i % 5)));
                let r = fs::write(&a, format!("{i}"))
                    .and_then(|()| fs::OpenOptions::new().append(true).open(&a).map(drop))
                    .and_then(|()| fs::rename(&a, &b))
                    .and_then(|()| if i.is_multiple_of(3) { fs::remove_file(&b) } else { Ok(()) })
                    .and_then(|()| fs::create_dir_all(busy.join(format!("d{}", i % 4))))
                    .and_then(|()| {
                        if i.is_multiple_of(2) {
                            fs::remove_dir(busy.join(format!("d{}", (i + 1) % 4))).or_else(|e| {
                                if e.raw_os_error() == Some(libc::ENOENT) {
                                    Ok(())
                                } else {
                                    Err(e)
                                }
                            })
                        } else {
                            Ok(())
                        }
                    });
                if let Err(e) = r {
                    errors2.lock().unwrap().push(format!("writer step {i}: {e}"));
                }
                i += 1;
            }
        }));
        Load { stop, errors, threads }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let e = self.errors.lock().unwrap();
        e.clone()
    }
}

/// Mounts overlayfs afresh over `lowers`, with a copy of `upper` (the union's upper layer as
/// it is now) as its upper layer, at `target`.
fn reference(s: &mut Scratch, tag: &str, upper: &Path, lowers: &[&Path], opts: &str) -> Result<PathBuf, String> {
    let ucopy = s.path(&format!("ref-{tag}-upper"));
    let out = std::process::Command::new("cp").arg("-a").arg(upper).arg(&ucopy).output().map_err(|e| format!("cp: {e}"))?;
    check!(out.status.success(), "cp -a of the upper layer failed: {}", String::from_utf8_lossy(&out.stderr));
    let work = s.dir(&format!("ref-{tag}-work"));
    let target = s.dir(&format!("ref-{tag}"));
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut data = format!("lowerdir={},upperdir={},workdir={}", lowerdir.join(":"), ucopy.display(), work.display());
    if !opts.is_empty() {
        data = format!("{data},{opts}");
    }
    let rc = sys::mount("overlay", &target, "overlay", 0, &data);
    check!(rc == 0, "overlayfs over the same layers ({data}): {}", errno_name(rc));
    s.track(&target);
    Ok(target)
}

fn read_at(dir: &OwnedFd, name: &str) -> Result<String, i32> {
    let fd = rustix::fs::openat(dir, name, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| e.raw_os_error())?;
    let mut f = fs::File::from(fd);
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
    Ok(s)
}

fn open_dir(p: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(p, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|e| format!("open {}: {e}", p.display()))
}

fn names_at(dir: &OwnedFd) -> Result<Vec<String>, String> {
    // A new open of the held directory (as `ls .` in a working directory does).
    let fd = rustix::fs::openat(
        dir,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("open .: {e}"))?;
    let mut names = vec![];
    let d = rustix::fs::Dir::read_from(fd.as_fd()).map_err(|e| e.to_string())?;
    for e in d {
        let e = e.map_err(|e| e.to_string())?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    names.sort();
    Ok(names)
}

fn layers_under_load() -> TestResult {
    for (i, opts) in ["", "redirect_dir=on", "metacopy=on"].iter().enumerate() {
        live_case(i, opts).map_err(|e| format!("with options \"{opts}\": {e}"))?;
    }
    Ok(())
}

fn live_case(case: usize, opts: &str) -> TestResult {
    let mut s = Scratch::new(&format!("live-layers-{case}"));
    let renames = opts.contains("redirect_dir=on") || opts.contains("metacopy=on");
    let (l1, new) = build_layers(&s)?;
    let (upper, work, mnt) = (s.dir("upper"), s.dir("work"), s.dir("mnt"));
    let mut data = format!("lowerdir={},upperdir={},workdir={}", l1.display(), upper.display(), work.display());
    if !opts.is_empty() {
        data = format!("{data},{opts}");
    }
    let rc = sys::mount("unionrs", &mnt, "unionrs", 0, &data);
    check!(rc == 0, "mount unionrs ({data}): {}", errno_name(rc));
    s.track(&mnt);
    let mut kmsg = Kmsg::new();

    // Changes before any layer is added: a whiteout, a removed directory, an opaque one, a
    // directory only on the upper layer, names looked up and not found (cached negative).
    io("unlink", &mnt, fs::remove_file(mnt.join("gone")))?;
    io("rm -r", &mnt, fs::remove_dir_all(mnt.join("gonedir")))?;
    io("rm -r", &mnt, fs::remove_dir_all(mnt.join("opq")))?;
    write(&mnt.join("opq/new"), "upper opq/new")?;
    write(&mnt.join("updir/mine"), "upper updir/mine")?;
    if renames {
        io("rename", &mnt, fs::rename(mnt.join("ren"), mnt.join("ren2")))?;
    }
    if opts.contains("metacopy=on") {
        io("chmod", &mnt, fs::set_permissions(mnt.join("meta"), fs::Permissions::from_mode(0o640)))?;
    }
    for p in ["neg", "a/f3", "deep", "deep/1", "neg2", "c", "held/newname", "e"] {
        check!(errno_at(&mnt.join(p)) == libc::ENOENT, "{p} exists before any layer is added");
    }
    write(&mnt.join("quiet/mine"), "upper quiet/mine")?;
    let held = open_dir(&mnt.join("held"))?;
    let quiet = open_dir(&mnt.join("quiet"))?;
    // A shell working in quiet/ since before, holding quiet/mine open (so that its dentry
    // stays cached across the remount, which drops unused ones), removes it once told to.
    let mut shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("cd '{}/quiet' && exec 4< mine && read go && rm mine", mnt.display()))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("sh: {e}"))?;
    let held_a = open_dir(&mnt.join("a"))?;
    let open_f2 = fs::File::open(mnt.join("a/f2")).map_err(|e| format!("open a/f2: {e}"))?;

    let mut lowers: Vec<&Path> = vec![&l1];
    for (k, n) in new.iter().enumerate() {
        let k = k + 1;
        let load = Load::start(&mnt);
        thread::sleep(Duration::from_millis(300));
        let (rc, msgs) = add_layer(&mnt, "lowerdir+", n, k.is_multiple_of(2));
        thread::sleep(Duration::from_millis(300));
        let errors = load.finish();
        check!(rc == 0, "remount adding {} failed: {} ({msgs})", n.display(), errno_name(rc));
        check!(errors.is_empty(), "while layer {k} was added, the load met errors: {}", first_lines(&errors));
        lowers.push(n);
        progress(&format!("live layers ({opts}): layer {k} added"));
        if k == 1 {
            // Removed in a working directory from before: the new layer's file of that name
            // must stay hidden by a whiteout.
            let stdin = shell.stdin.take();
            let ok = stdin.is_some_and(|mut i| std::io::Write::write_all(&mut i, b"go\n").is_ok());
            let status = shell.wait().map_err(|e| format!("sh: {e}"))?;
            check!(ok && status.success(), "rm of quiet/mine in a shell working there: {status}");
            let names = names_at(&quiet)?;
            check!(names == ["other"], "after removing quiet/mine, quiet/ lists {names:?}, not [\"other\"]");
        }

        // The view against overlayfs mounted afresh over the same layers.
        let tag = format!("{k}");
        let reference = reference(&mut s, &tag, &upper, &lowers, opts)?;
        let cmp = view_cmp(&no_times);
        let diffs = diff_trees("overlayfs mounted afresh", &walk(&reference), "unionrs with layers added", &walk(&mnt), &cmp);
        check!(diffs.is_empty(), "after layer {k}: {}", first_lines(&diffs));
        sys::umount(&reference);

        // Held directories find what the new layers brought, and list it.
        let expect_a: &[&str] = match k {
            1 | 2 => &["f1", "f2", "f3", "sub"],
            3 => &["f1", "f2", "f3", "sub"],
            _ => &["f1", "f2", "f3", "f4", "sub"],
        };
        let names = names_at(&held_a)?;
        check!(names == expect_a, "after layer {k}: a/ (held open since before) lists {names:?}, not {expect_a:?}");
        check!(
            read_at(&held_a, "f3") == Ok("n1 a/f3".to_string()),
            "after layer {k}: a/f3 through a held a/: {:?}",
            read_at(&held_a, "f3")
        );
        if k >= 2 {
            check!(
                read_at(&held, "newname") == Ok("n2 held/newname".to_string()),
                "after layer {k}: held/newname through a held held/: {:?}",
                read_at(&held, "newname")
            );
        }
        // A file open since before still reads.
        let mut v = [0u8; 64];
        let r = open_f2.read_at(&mut v, 0);
        let got = r.as_ref().map(|&n| String::from_utf8_lossy(&v[..n]).into_owned());
        check!(got.as_deref().ok() == Some("l1 a/f2"), "after layer {k}: a/f2 open since before reads {got:?}");

        let shown = mount_options(&mnt)?;
        let want = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        check!(shown.contains(&format!("lowerdir={want},")), "after layer {k}: /proc/self/mounts shows {shown}, without lowerdir={want}");
    }

    // Nothing is lost: a fresh mount of the same layers shows what the live union showed.
    let before = walk(&mnt);
    drop((held, held_a, quiet, open_f2));
    check!(sys::umount(&mnt) == 0, "unmounting the union failed");
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut data = format!("lowerdir={},upperdir={},workdir={}", lowerdir.join(":"), upper.display(), work.display());
    if !opts.is_empty() {
        data = format!("{data},{opts}");
    }
    let rc = sys::mount("unionrs", &mnt, "unionrs", 0, &data);
    check!(rc == 0, "mounting unionrs again with all the layers ({data}): {}", errno_name(rc));
    let diffs = diff_trees("unionrs with layers added", &before, "unionrs mounted again", &walk(&mnt), &view_cmp(&no_times));
    check!(diffs.is_empty(), "after a new mount: {}", first_lines(&diffs));
    let log = kmsg.read_new();
    check!(!log.contains("changed while layers were added"), "the union could not catch a directory up: {log}");
    Ok(())
}

/// What cannot be added is refused with a clear errno and message, and leaves the union as it
/// was; then a good layer is still added.
fn refusals() -> TestResult {
    let mut s = Scratch::new("live-refusals");
    let (l1, good, upper, work, mnt) = (s.dir("l1"), s.dir("good"), s.dir("upper"), s.dir("work"), s.dir("mnt"));
    write(&l1.join("d/f"), "l1")?;
    write(&good.join("d/g"), "good")?;
    let file = s.file("plain-file", "x");
    let inside_upper = s.dir("upper/inside");
    let other = s.other_fs("other");
    fs::create_dir_all(other.join("layer")).map_err(|e| e.to_string())?;
    let data = format!("lowerdir={},upperdir={},workdir={}", l1.display(), upper.display(), work.display());
    let rc = sys::mount("unionrs", &mnt, "unionrs", 0, &data);
    check!(rc == 0, "mount unionrs ({data}): {}", errno_name(rc));
    s.track(&mnt);
    let before = walk(&mnt);
    let options = mount_options(&mnt)?;

    let missing = s.path("missing");
    let cases: Vec<(&str, &Path, bool, i32, &str)> = vec![
        ("lowerdir+", &missing, true, libc::ENOENT, ""),
        ("lowerdir+", &file, true, libc::ENOTDIR, ""),
        ("lowerdir+", &upper, true, libc::ELOOP, "same directory"),
        ("lowerdir+", &inside_upper, true, libc::ELOOP, "inside"),
        ("lowerdir+", &l1, true, libc::ELOOP, "same directory"),
        ("lowerdir+", &other, true, libc::EXDEV, "not on a filesystem of the union"),
        ("lowerdir+", &other, false, libc::EXDEV, ""),
        ("datadir+", &good, true, libc::EINVAL, "datadir+"),
        // remount(2) ignores it, as it ignores the mount's other options given again.
        ("datadir+", &good, false, 0, ""),
        ("index", Path::new("on"), true, libc::EINVAL, "no changes allowed"),
    ];
    for (key, dir, new_api, want, msg) in cases {
        let (rc, msgs) = add_layer(&mnt, key, dir, new_api);
        let how = if new_api { "fsconfig" } else { "remount(2)" };
        check!(rc == want, "{key}={} by {how}: {} (want {}) {msgs}", dir.display(), errno_name(rc), errno_name(want));
        check!(msgs.contains(msg), "{key}={} by {how}: the message \"{}\" does not say \"{msg}\"", dir.display(), msgs.trim());
    }
    // remount(2) repeating a layer the union has (as mount(8) does with fstab's options): no
    // error, nothing added.
    let (rc, _) = add_layer(&mnt, "lowerdir+", &l1, false);
    check!(rc == 0, "remount(2) repeating lowerdir+={}: {}", l1.display(), errno_name(rc));
    check!(mount_options(&mnt)? == options, "the refused additions changed the mount options: {}", mount_options(&mnt)?);
    let diffs = diff_trees("before", &before, "after the refusals", &walk(&mnt), &view_cmp(&no_times));
    check!(diffs.is_empty(), "the refused additions changed the view: {}", first_lines(&diffs));

    // Unions where no layer can be added.
    for (tag, extra) in [("index", "index=on"), ("data", "metacopy=on,redirect_dir=on")] {
        let m2 = s.dir(&format!("mnt-{tag}"));
        let (u2, w2) = (s.dir(&format!("upper-{tag}")), s.dir(&format!("work-{tag}")));
        let lower = if tag == "data" { format!("{}::{}", l1.display(), good.display()) } else { l1.display().to_string() };
        let data = format!("lowerdir={lower},upperdir={},workdir={},{extra}", u2.display(), w2.display());
        let rc = sys::mount("unionrs", &m2, "unionrs", 0, &data);
        check!(rc == 0, "mount unionrs ({data}): {}", errno_name(rc));
        s.track(&m2);
        let l3 = s.dir(&format!("l3-{tag}"));
        let (rc, msgs) = add_layer(&m2, "lowerdir+", &l3, true);
        let want = if tag == "index" { "index=on" } else { "data-only" };
        check!(rc == libc::EINVAL && msgs.contains(want), "lowerdir+ to a union with {extra}: {} {msgs}", errno_name(rc));
        sys::umount(&m2);
    }

    // overlayfs refuses the addition outright (unionrs' extension).
    let (ou, ow, om) = (s.dir("o-upper"), s.dir("o-work"), s.dir("o-mnt"));
    let data = format!("lowerdir={},upperdir={},workdir={}", l1.display(), ou.display(), ow.display());
    check!(sys::mount("overlay", &om, "overlay", 0, &data) == 0, "mount overlayfs");
    s.track(&om);
    let (rc, _) = add_layer(&om, "lowerdir+", &good, true);
    check!(rc == libc::EINVAL, "overlayfs took lowerdir+ on reconfigure: {}", errno_name(rc));

    // And a good layer is still added.
    let (rc, msgs) = add_layer(&mnt, "lowerdir+", &good, true);
    check!(rc == 0, "lowerdir+={} after the refusals: {} {msgs}", good.display(), errno_name(rc));
    check!(fs::read_to_string(mnt.join("d/g")).ok().as_deref() == Some("good"), "d/g of the added layer is not shown");
    Ok(())
}
