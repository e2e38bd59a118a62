//! `fsync=`, `volatile` and `override_creds`: unionrs against overlayfs with the same options.
//!
//! The random-operation differential runs with `fsync=strict` and with `volatile` (views,
//! uppers and errors as in every variant); a volatile mount's marker in the work directory
//! refuses the next mount of either filesystem, with overlayfs' message, until it is removed;
//! `volatile` without an upper layer is ignored with overlayfs' note; the sync calls answer
//! alike in each mode; `override_creds` given by another task than the one that creates the
//! superblock makes that task's credentials the mounter's, and `nooverride_creds` undoes it.
//! What a crash does to a volatile union, and that `fsync=strict` keeps fsynced data through
//! one, is qemu-tests/crash-test's `volatile` case.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, FsContext, Kmsg};
use crate::tree::diff_trees;
use crate::writable::{self, view_cmp, walk};
use crate::{check, Test, TestResult};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("sync.random_ops_strict", random_ops_strict),
        Test::new("sync.random_ops_volatile", random_ops_volatile),
        Test::new("sync.volatile_marker", volatile_marker),
        Test::new("sync.volatile_without_upper", volatile_without_upper),
        Test::new("sync.sync_calls", sync_calls),
        Test::new("sync.volatile_writeback_error", volatile_writeback_error),
        Test::new("mount.override_creds", override_creds),
    ]
}

/// Operations of the two random variants: enough to copy up, rename and remove through
/// every kind of object, a third of the other variants' (what changes is only when things
/// are synced, which the comparison cannot see beyond the errors).
const OPS: usize = 1000;

const STRICT_OPTS: &str = "index=off,redirect_dir=off,metacopy=off,xino=off,fsync=strict";
const VOLATILE_OPTS: &str = "index=off,redirect_dir=off,metacopy=off,xino=off,volatile";

fn random_ops_strict() -> TestResult {
    writable::random_ops_variant_ops("sync_strict", STRICT_OPTS, 0x0057_17c7, OPS)
}

fn random_ops_volatile() -> TestResult {
    writable::random_ops_variant_ops("sync_volatile", VOLATILE_OPTS, 0x0070_17a7, OPS)
}

/// The kernel log lines that contain `what`, without the filesystem's prefix.
fn logged(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .map(|l| l.trim_start_matches("overlayfs: ").trim_start_matches("unionrs: ").to_string())
        .collect()
}

/// The entries below `dir`, with their types, sorted (for comparing two work directories).
fn listing(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((p, rel)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            let ft = e.file_type().map_err(|_| ()).ok();
            let kind = match ft {
                Some(t) if t.is_dir() => "dir",
                Some(t) if t.is_file() => "file",
                _ => "other",
            };
            if kind == "dir" {
                stack.push((e.path(), name.clone()));
            }
            out.push(format!("{name} ({kind})"));
        }
    }
    out.sort();
    out
}

/// The layers of one union in scratch directory `s`, under `tag`.
struct Dirs {
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
}

impl Dirs {
    fn new(s: &mut Scratch, lower: &Path, tag: &str) -> Self {
        let d = Dirs {
            lower: lower.to_path_buf(),
            upper: s.dir(&format!("u-{tag}")),
            work: s.dir(&format!("w-{tag}")),
            mnt: s.dir(&format!("m-{tag}")),
        };
        s.track(&d.mnt);
        d
    }

    fn mount(&self, fstype: &str, extra: &str) -> i32 {
        let mut opts = format!("lowerdir={},upperdir={},workdir={}", self.lower.display(), self.upper.display(), self.work.display());
        if !extra.is_empty() {
            opts = format!("{opts},{extra}");
        }
        sys::mount("none", &self.mnt, fstype, 0, &opts)
    }

    fn marker(&self) -> PathBuf {
        self.work.join("work/incompat/volatile")
    }
}

/// Writes through a volatile union: a new file, a copy-up, a removal; each call must succeed.
fn write_volatile(m: &Path) -> TestResult {
    fs::write(m.join("new"), "new\n").map_err(|e| format!("write new: {e}"))?;
    let mut f = fs::OpenOptions::new().append(true).open(m.join("a")).map_err(|e| format!("open a: {e}"))?;
    f.write_all(b"more\n").map_err(|e| format!("append to a: {e}"))?;
    f.sync_all().map_err(|e| format!("fsync of a: {e}"))?;
    fs::remove_file(m.join("b")).map_err(|e| format!("rm b: {e}"))?;
    Ok(())
}

/// A volatile mount leaves `work/incompat/volatile/dirty`; the next mount of the same upper,
/// by either filesystem and with or without `volatile`, is refused with overlayfs' message;
/// once the user removes the `volatile` directory the union mounts again, with what was
/// written. Same work directories, results and messages as overlayfs.
fn volatile_marker() -> TestResult {
    let mut s = Scratch::new("volatile_marker");
    let lower = s.dir("l");
    s.file("l/a", "lower a\n");
    s.file("l/b", "lower b\n");
    let mut kmsg = Kmsg::new();
    let mut problems = vec![];
    // Each filesystem after a volatile mount of its own, then each after the other's.
    for (writer, reader) in [("overlay", "overlay"), ("unionrs", "unionrs"), ("overlay", "unionrs"), ("unionrs", "overlay")] {
        let tag = format!("{writer}-{reader}");
        let d = Dirs::new(&mut s, &lower, &tag);
        let rc = d.mount(writer, "volatile");
        check!(rc == 0, "{writer} with volatile: {}", errno_name(rc));
        write_volatile(&d.mnt).map_err(|e| format!("{writer} with volatile: {e}"))?;
        let view = walk(&d.mnt);
        check!(sys::umount(&d.mnt) == 0, "unmounting {writer}");
        // (overlayfs may keep its shared whiteout in work/ too.)
        let marked: Vec<String> = listing(&d.work.join("work")).into_iter().filter(|e| e.starts_with("/incompat")).collect();
        check!(
            marked == ["/incompat (dir)", "/incompat/volatile (dir)", "/incompat/volatile/dirty (file)"],
            "{writer}: work/ after a volatile mount holds {marked:?}"
        );
        kmsg.read_new();
        for extra in ["volatile", ""] {
            let rc = d.mount(reader, extra);
            if rc == 0 {
                sys::umount(&d.mnt);
            }
            let msgs = logged(&kmsg.read_new(), "incompat");
            let want = ["overlay with incompat feature 'volatile' cannot be mounted"];
            if rc != libc::EINVAL || msgs != want {
                problems.push(format!(
                    "{reader} over {writer}'s volatile upper ({}): {}, logged {msgs:?} (overlayfs: EINVAL, {want:?})",
                    if extra.is_empty() { "without volatile" } else { "volatile" },
                    errno_name(rc)
                ));
            }
        }
        // The documented way back: remove the volatile directory.
        fs::remove_dir_all(d.marker()).map_err(|e| format!("removing {}: {e}", d.marker().display()))?;
        let rc = d.mount(reader, "");
        check!(rc == 0, "{reader} over {writer}'s upper after the marker was removed: {}", errno_name(rc));
        let again = walk(&d.mnt);
        sys::umount(&d.mnt);
        let times = |_: &[u8]| (false, false);
        problems.extend(diff_trees(&format!("{writer} volatile"), &view, &format!("{reader} after"), &again, &view_cmp(&times)));
    }
    check!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}

/// `volatile` without an upper layer: overlayfs notes that it is ignored, mounts, and does
/// not show it; so must unionrs.
fn volatile_without_upper() -> TestResult {
    let mut s = Scratch::new("volatile_ro");
    // (overlayfs wants two lower layers without an upper one.)
    let (l1, l2) = (s.dir("l1"), s.dir("l2"));
    s.file("l1/a", "a\n");
    let mut kmsg = Kmsg::new();
    let mut seen = vec![];
    for fstype in ["overlay", "unionrs"] {
        let m = s.dir(&format!("m-{fstype}"));
        s.track(&m);
        kmsg.read_new();
        let rc = sys::mount("none", &m, fstype, 0, &format!("lowerdir={}:{},volatile", l1.display(), l2.display()));
        check!(rc == 0, "{fstype}: lowerdir only, volatile: {}", errno_name(rc));
        let msgs = logged(&kmsg.read_new(), "volatile");
        let shown = crate::mount_options::shown_options(&m)?;
        sys::umount(&m);
        seen.push((msgs, shown));
    }
    check!(
        seen[0].0 == ["option \"volatile\" is meaningless in a non-upper mount, ignoring it."],
        "overlayfs logged {:?}: not what this test expects of it",
        seen[0].0
    );
    check!(seen[0] == seen[1], "overlayfs: logged and shows {:?}; unionrs: {:?}", seen[0], seen[1]);
    Ok(())
}

/// One sync call's result, for comparing.
fn outcome<T>(what: &str, r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => format!("{what}: ok"),
        Err(e) => format!("{what}: {}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

/// Whether a call succeeded, without the errno.
fn ok_or_failed<T>(what: &str, r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => format!("{what}: ok"),
        Err(_) => format!("{what}: failed"),
    }
}

/// Every sync call in each `fsync=` mode, on new, copied-up and lower files and a directory:
/// the same answers as overlayfs (success), and what was written is in the upper layer
/// after the unmount.
fn sync_calls() -> TestResult {
    let mut s = Scratch::new("sync_calls");
    let lower = s.dir("l");
    s.dir("l/d");
    s.file("l/a", "lower a\n");
    s.file("l/ro", "lower ro\n");
    let mut problems = vec![];
    for (i, mode) in ["", "fsync=auto", "fsync=strict", "volatile", "fsync=volatile"].iter().enumerate() {
        let mut results = vec![];
        let mut uppers = vec![];
        for fstype in ["overlay", "unionrs"] {
            let d = Dirs::new(&mut s, &lower, &format!("{fstype}-{i}"));
            let rc = d.mount(fstype, mode);
            check!(rc == 0, "{fstype} with \"{mode}\": {}", errno_name(rc));
            let m = &d.mnt;
            let mut r = vec![];
            match fs::OpenOptions::new().write(true).create(true).custom_flags(libc::O_SYNC).open(m.join("new")) {
                Ok(mut f) => {
                    r.push(outcome("O_SYNC write", f.write_all(b"synced\n")));
                    r.push(outcome("fdatasync", f.sync_data()));
                    r.push(outcome("syncfs", rustix::fs::syncfs(&f).map_err(std::io::Error::from)));
                }
                Err(e) => r.push(outcome("open O_SYNC", Err::<(), _>(e))),
            }
            let copied = fs::OpenOptions::new().append(true).open(m.join("a"));
            if let Ok(mut f) = copied {
                r.push(outcome("append to a lower file", f.write_all(b"more\n")));
                r.push(outcome("fsync after copy-up", f.sync_all()));
            }
            let ro = fs::File::open(m.join("ro"));
            r.push(outcome("fsync of a lower file", ro.and_then(|f| f.sync_all())));
            let dir = fs::File::open(m.join("d"));
            r.push(outcome("fsync of a lower directory", dir.and_then(|f| f.sync_all())));
            let root = fs::File::open(m);
            r.push(outcome("fsync of the root", root.and_then(|f| f.sync_all())));
            sys::umount(m);
            let read = |p: &str| fs::read_to_string(d.upper.join(p)).unwrap_or_else(|e| format!("({e})"));
            uppers.push((read("new"), read("a")));
            results.push(r);
        }
        if results[0] != results[1] {
            problems.push(format!("with \"{mode}\": overlayfs {:?}, unionrs {:?}", results[0], results[1]));
        }
        if let Some(bad) = results[0].iter().find(|r| !r.ends_with(": ok")) {
            problems.push(format!("with \"{mode}\": overlayfs answers {bad}, which this test does not expect"));
        }
        if uppers[0] != uppers[1] || uppers[1] != ("synced\n".to_string(), "lower a\nmore\n".to_string()) {
            problems.push(format!("with \"{mode}\": uppers hold overlayfs {:?}, unionrs {:?}", uppers[0], uppers[1]));
        }
    }
    check!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}

/// An ext4 without a journal at `dir`, in an image of 64 MiB on a tmpfs of 16 MiB: writing
/// back more than the tmpfs holds fails in the loop device, which gives the ext4 writeback
/// errors.
fn ext4_that_fails_writeback(s: &mut Scratch, dir: &str) -> Result<PathBuf, String> {
    let backing = s.dir(&format!("{dir}-backing"));
    let rc = sys::mount("small", &backing, "tmpfs", 0, "size=16m");
    check!(rc == 0, "mounting a 16 MiB tmpfs: {}", errno_name(rc));
    s.track(&backing);
    let img = backing.join("ext4.img");
    fs::File::create(&img).and_then(|f| f.set_len(64 << 20)).map_err(|e| e.to_string())?;
    let run = |c: &mut Command| -> TestResult {
        let out = c.output().map_err(|e| e.to_string())?;
        check!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1"]).arg(&img))?;
    let mnt = s.dir(dir);
    run(Command::new("mount").args(["-t", "ext4", "-o", "loop,errors=continue"]).arg(&img).arg(&mnt))?;
    s.track(&mnt);
    Ok(mnt)
}

/// A writeback error of the upper filesystem after a volatile mount: `syncfs(2)` and
/// `fsync(2)` through the union fail from then on, though they do not sync; a new volatile
/// mount is refused while nobody has seen the error (`EIO`, overlayfs' message), and mounts
/// once a `syncfs(2)` of the upper filesystem has seen it. Each step as overlayfs.
fn volatile_writeback_error() -> TestResult {
    let mut s = Scratch::new("volatile_wb_error");
    let lower = s.dir("l");
    s.file("l/a", "a\n");
    let mut kmsg = Kmsg::new();
    let mut seen = vec![];
    for fstype in ["overlay", "unionrs"] {
        let e = ext4_that_fails_writeback(&mut s, &format!("e-{fstype}"))?;
        let d = Dirs { lower: lower.clone(), upper: e.join("u"), work: e.join("w"), mnt: s.dir(&format!("m-{fstype}")) };
        s.track(&d.mnt);
        for p in [&d.upper, &d.work] {
            fs::create_dir(p).map_err(|x| x.to_string())?;
        }
        let mut steps = vec![];
        let rc = d.mount(fstype, "volatile");
        check!(rc == 0, "{fstype} with volatile over the ext4: {}", errno_name(rc));
        let big = fs::File::create(d.mnt.join("big")).and_then(|mut f| {
            f.write_all(&vec![0x5a; 24 << 20])?;
            Ok(f)
        });
        let big = big.map_err(|x| format!("{fstype}: writing 24 MiB: {x}"))?;
        steps.push(outcome("syncfs before the error", rustix::fs::syncfs(&big).map_err(std::io::Error::from)));
        // Write-back of the whole system: the loop device runs out of room.
        rustix::fs::sync();
        steps.push(outcome("syncfs after", rustix::fs::syncfs(&big).map_err(std::io::Error::from)));
        steps.push(outcome("syncfs again", rustix::fs::syncfs(&big).map_err(std::io::Error::from)));
        // fsync reports the error itself, which depends on which write failed first.
        steps.push(ok_or_failed("fsync after", big.sync_all()));
        drop(big);
        check!(sys::umount(&d.mnt) == 0, "{fstype}: unmounting");
        fs::remove_dir_all(d.marker()).map_err(|x| format!("removing the marker: {x}"))?;
        kmsg.read_new();
        let rc = d.mount(fstype, "volatile");
        steps.push(format!("volatile mount while the error is unseen: {}", errno_name(rc)));
        if rc == 0 {
            sys::umount(&d.mnt);
            let _ = fs::remove_dir_all(d.marker());
        }
        steps.extend(logged(&kmsg.read_new(), "unseen error"));
        // A syncfs of the ext4 itself sees the error.
        let root = fs::File::open(&e).map_err(|x| x.to_string())?;
        steps.push(ok_or_failed("syncfs of the upper filesystem", rustix::fs::syncfs(&root).map_err(std::io::Error::from)));
        let rc = d.mount(fstype, "volatile");
        steps.push(format!("volatile mount once seen: {}", errno_name(rc)));
        if rc == 0 {
            sys::umount(&d.mnt);
        }
        seen.push(steps);
    }
    let errors = seen[0].iter().filter(|l| l.starts_with("sync") || l.starts_with("fsync")).filter(|l| !l.ends_with(": ok")).count();
    // syncfs of the union, twice, fsync, and the upper filesystem's own syncfs.
    check!(
        errors == 4 && seen[0].iter().any(|l| l.contains("unseen: ") && l.ends_with("EIO")),
        "overlayfs did not report the writeback error as this test expects: {:?}",
        seen[0]
    );
    check!(seen[0] == seen[1], "overlayfs: {:?}; unionrs: {:?}", seen[0], seen[1]);
    Ok(())
}

/// Who gives `override_creds` in [`override_creds`]: a thread of root's without the
/// capabilities that bypass file permissions, or one of uid 1000 without any.
#[derive(Clone, Copy, Debug)]
enum Recorder {
    RootWithoutDac,
    User1000,
}

/// Runs `f` on a thread of its own with `who`'s credentials (credentials are per thread in
/// the kernel, and rustix changes only the calling thread's).
fn as_recorder<R: Send>(who: Recorder, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                use rustix::thread::{self as t, CapabilitySet};
                match who {
                    Recorder::RootWithoutDac => {
                        let mut caps = t::capabilities(None).map_err(|e| format!("capget: {e}"))?;
                        let dac = CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
                        caps.effective.remove(dac);
                        caps.permitted.remove(dac);
                        t::set_capabilities(None, caps).map_err(|e| format!("capset: {e}"))?;
                    }
                    Recorder::User1000 => {
                        let (uid, gid) = (rustix::fs::Uid::from_raw(1000), rustix::fs::Gid::from_raw(1000));
                        t::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
                        t::set_thread_res_gid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
                        t::set_thread_res_uid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
                    }
                }
                Ok(f())
            })
            .join()
            .map_err(|_| "the thread panicked".to_string())?
    })
}

/// What the caller (root) sees through a union mounted with another mounter's credentials.
fn probe(m: &Path) -> Vec<String> {
    let mut r = vec![];
    let e = |x: std::io::Result<()>| match x {
        Ok(()) => "ok".to_string(),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
    };
    r.push(format!("read pub: {}", e(fs::read(m.join("pub")).map(|_| ()))));
    r.push(format!("list private: {}", e(fs::read_dir(m.join("private")).map(|_| ()))));
    r.push(format!("create new: {}", e(fs::write(m.join("new"), "x"))));
    r.push(format!("mkdir newdir: {}", e(fs::create_dir(m.join("newdir")))));
    r.push(format!("append to pub: {}", e(fs::OpenOptions::new().append(true).open(m.join("pub")).and_then(|mut f| f.write_all(b"y")))));
    r.push(format!("rm gone: {}", e(fs::remove_file(m.join("gone")))));
    r
}

/// `override_creds` given by another thread than the one that creates the superblock (the
/// new mount API): that thread's credentials become the mounter's. Given by root without
/// the permission-bypassing capabilities, a lower directory private to another user is
/// closed to root through a read-only union, and a union with an upper layer is refused
/// (nothing can be made in the work directory, of mode 0); given by uid 1000, the mount
/// itself is refused (cloning the layers' mounts takes `CAP_SYS_ADMIN`);
/// `nooverride_creds` after it brings back the creator's. Each step's result and what root
/// can do through each union as overlayfs.
fn override_creds() -> TestResult {
    let mut s = Scratch::new("override_creds");
    let lower = s.dir("l");
    s.file("l/pub", "public\n");
    s.file("l/gone", "to be removed\n");
    s.file("l/private/file", "uid 2000's\n");
    let private = s.path("l/private");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    let id = |n| (Some(rustix::fs::Uid::from_raw(n)), Some(rustix::fs::Gid::from_raw(n)));
    rustix::fs::chown(&private, id(2000).0, id(2000).1).map_err(|e| format!("chown: {e}"))?;
    let mut problems = vec![];
    let lower2 = s.dir("l2");
    // Who records, whether `nooverride_creds` follows, whether the union has an upper layer,
    // and what overlayfs answers as its documentation says (or this test proves nothing).
    let no = Some("nooverride_creds");
    let cases = [
        (Recorder::RootWithoutDac, None, false, "list private: EACCES"),
        (Recorder::RootWithoutDac, None, true, "create: EACCES"),
        (Recorder::RootWithoutDac, no, false, "list private: ok"),
        (Recorder::RootWithoutDac, no, true, "list private: ok"),
        (Recorder::User1000, None, true, "create: EPERM"),
        (Recorder::User1000, no, true, "list private: ok"),
    ];
    for (i, (who, second, has_upper, expected)) in cases.iter().enumerate() {
        let mut seen = vec![];
        for fstype in ["overlay", "unionrs"] {
            let d = Dirs::new(&mut s, &lower, &format!("{fstype}-{i}"));
            if let Recorder::User1000 = who {
                for p in [&d.upper, &d.work] {
                    rustix::fs::chown(p.as_path(), id(1000).0, id(1000).1).map_err(|e| format!("chown {}: {e}", p.display()))?;
                }
            }
            let fc = FsContext::open(fstype).map_err(|e| format!("fsopen({fstype}): {}", errno_name(e)))?;
            let rc = as_recorder(*who, || fc.set("override_creds", None))?;
            let mut steps = vec![format!("override_creds: {}", errno_name(rc))];
            let mut layers = vec![("lowerdir+", &d.lower), ("lowerdir+", &lower2)];
            if *has_upper {
                layers.extend([("upperdir", &d.upper), ("workdir", &d.work)]);
            }
            for (k, v) in layers {
                let rc = fc.set(k, Some(&v.display().to_string()));
                check!(rc == 0, "{fstype}: {k}: {}", errno_name(rc));
            }
            if let Some(opt) = second {
                steps.push(format!("{opt}: {}", errno_name(fc.set(opt, None))));
            }
            let rc = fc.create();
            steps.push(format!("create: {}", errno_name(rc)));
            if rc == 0 {
                match fc.mount_at(&d.mnt) {
                    Ok(()) => {
                        steps.extend(probe(&d.mnt));
                        sys::umount(&d.mnt);
                    }
                    Err(e) => steps.push(format!("mount: {e}")),
                }
            }
            seen.push(steps);
        }
        let case = format!("{who:?} {second:?}{}", if *has_upper { " with an upper" } else { "" });
        if !seen[0]
            .iter()
            .any(|l| l.starts_with(expected.split(": ").next().unwrap_or("")) && l.ends_with(expected.rsplit(' ').next().unwrap_or("")))
        {
            problems.push(format!("{case}: overlayfs did not answer \"{expected}\": {:?}", seen[0]));
        }
        if seen[0] != seen[1] {
            problems.push(format!("{case}: overlayfs {:?}; unionrs {:?}", seen[0], seen[1]));
        }
    }
    check!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}
