//! Tests of the hardening findings that need a setup of their own: the labels a security module
//! gives to copied-up and created files, layers overlayfs refuses (automount points, filesystems
//! with their own name hashing, case-folded directories), a merged listing racing with a copy-up
//! of its directory, and the removal of a directory holding very many whiteouts.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::names_in;
use crate::trees::Layer;
use crate::util::same_steps;
use crate::{check, progress, Test, TestResult};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("hardening.smack_labels", smack_labels),
        Test::new("hardening.unusual_layers", unusual_layers),
        Test::new("hardening.listing_during_copy_up", listing_during_copy_up),
        Test::full_only("hardening.rmdir_many_whiteouts", rmdir_many_whiteouts),
    ]
}

/// The features these unions leave off (unionrs does not have them yet), as elsewhere.
const OFF: &str = "index=off,redirect_dir=off,metacopy=off,xino=off";

/// Mounts `fstype` at `base/m` over `lowers` (relative to `base`) and, with `upper`, over
/// `base/upper` with work directory `base/work`; returns the mount point.
fn mount_union(base: &Path, fstype: &str, lowers: &[&str], upper: bool) -> Result<PathBuf, String> {
    let m = base.join("m");
    let mut dirs = vec![m.clone()];
    if upper {
        dirs.extend([base.join("upper"), base.join("work")]);
    }
    for d in &dirs {
        fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let lowerdir: Vec<String> = lowers.iter().map(|l| base.join(l).display().to_string()).collect();
    let mut opts = format!("lowerdir={},{OFF}", lowerdir.join(":"));
    if upper {
        opts.push_str(&format!(",upperdir={},workdir={}", base.join("upper").display(), base.join("work").display()));
    }
    let r = sys::mount("none", &m, fstype, 0, &opts);
    check!(r == 0, "mounting {fstype} with {opts}: {}", errno_name(r));
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// Finding 5: the security module labels copied-up and created files (Smack in the guest kernel)

const SMACK: &str = "security.SMACK64";
/// The label of the lower objects, and that of the task that creates objects through the union.
const LOWER_LABEL: &str = "unionrs_lower";
const CALLER_LABEL: &str = "unionrs_caller";

fn smack_label(p: &Path) -> String {
    match sys::lgetxattr(p, SMACK.as_bytes()) {
        Ok(v) => String::from_utf8_lossy(&v).into_owned(),
        Err(e) => errno_name(e),
    }
}

fn smack_labels() -> TestResult {
    let current = fs::read_to_string("/proc/self/attr/current")
        .map_err(|e| format!("reading /proc/self/attr/current: {e} (the guest kernel must run Smack)"))?;
    let current = current.trim_end_matches(['\0', '\n']);
    check!(current == "_", "this task's Smack label is {current:?}, want \"_\" (Smack active, the test's task unlabelled)");
    let s = Scratch::new("smack_labels");
    let mut seen = vec![];
    for fstype in ["overlay", "unionrs"] {
        let base = s.dir(fstype);
        let l = Layer::new(base.join("lower"))?;
        l.file("file", b"data\n")?.file("dir/inner", b"inner\n")?;
        for name in ["file", "dir", "dir/inner"] {
            l.xattr(name, SMACK, LOWER_LABEL)?;
        }
        let m = mount_union(&base, fstype, &["lower"], true)?;
        let mut steps: Vec<(String, String)> = vec![];
        for name in ["file", "dir", "dir/inner"] {
            steps.push((format!("label of {name} through the union"), smack_label(&m.join(name))));
        }
        // Copy-up by root: the copy must carry the lower object's label (Smack drops the
        // label xattr from the copied ones and labels the copy through security_inode_copy_up).
        for name in ["file", "dir/inner"] {
            let r = fs::set_permissions(m.join(name), fs::Permissions::from_mode(0o640));
            steps.push((format!("chmod {name}"), r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())));
        }
        // Creation by a task with another label: the new objects carry the caller's label,
        // not the mounter's (security_dentry_create_files_as).
        let script = format!(
            "echo {CALLER_LABEL} > /proc/self/attr/current && cd {} && echo x > new_file && mkdir new_dir && mkfifo new_fifo && echo y > dir/new_inner",
            m.display()
        );
        let out = Command::new("sh").args(["-c", &script]).output().map_err(|e| format!("running sh: {e}"))?;
        steps.push(("create as a labelled task".to_string(), format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
        for name in ["file", "dir", "dir/inner", "new_file", "new_dir", "new_fifo", "dir/new_inner"] {
            steps.push((format!("label of upper/{name}"), smack_label(&base.join("upper").join(name))));
            steps.push((format!("label of {name} through the union"), smack_label(&m.join(name))));
        }
        let r = sys::umount(&m);
        check!(r == 0, "unmounting {fstype}: {}", errno_name(r));
        seen.push(steps);
    }
    // The reference must label as the test expects: otherwise it tests nothing.
    let label_of = |what: &str| seen[0].iter().find(|(d, _)| d == what).map(|(_, v)| v.clone()).unwrap_or_default();
    for (what, want) in [("label of upper/file", LOWER_LABEL), ("label of upper/new_file", CALLER_LABEL)] {
        let got = label_of(what);
        check!(got == want, "overlayfs: {what} is {got:?}, the test expects {want:?}");
    }
    same_steps(&seen[0], &seen[1])
}

// ---------------------------------------------------------------------------------------------
// Finding 6: layers overlayfs refuses

/// Mounts `fstype` with `opts` at `m`; "ok" (and unmounts) or the errno.
fn try_mount(m: &Path, fstype: &str, opts: &str) -> String {
    match sys::mount("none", m, fstype, 0, opts) {
        0 => {
            sys::umount(m);
            "ok".to_string()
        }
        e => errno_name(e),
    }
}

/// Sets or clears the case-folding flag of (empty) directory `p`.
fn set_casefold(p: &Path, on: bool) -> Result<(), String> {
    const FS_CASEFOLD_FL: libc::c_long = 0x4000_0000;
    let f = fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut flags: libc::c_long = 0;
    // SAFETY: a valid fd and a pointer to a long, as FS_IOC_GETFLAGS/SETFLAGS take.
    let r = unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) };
    check!(r == 0, "FS_IOC_GETFLAGS {}: {}", p.display(), errno_name(sys::errno()));
    flags = if on { flags | FS_CASEFOLD_FL } else { flags & !FS_CASEFOLD_FL };
    // SAFETY: as above.
    let r = unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) };
    check!(r == 0, "FS_IOC_SETFLAGS {} casefold={on}: {}", p.display(), errno_name(sys::errno()));
    Ok(())
}

fn unusual_layers() -> TestResult {
    let mut s = Scratch::new("unusual_layers");
    let m = s.dir("m");
    let plain = s.dir("plain/lower");
    let (pu, pw) = (s.dir("plain/upper"), s.dir("plain/work"));
    let mut cases: Vec<(String, String)> = vec![];

    // Automount points: the root of a direct autofs map, and a key of an indirect one (a
    // directory the daemon made in its root). We are the daemon (our process group), so
    // walking to them never waits for a mount.
    let mut pipe = [0; 2];
    // SAFETY: an array of two fds, as pipe(2) takes.
    check!(unsafe { libc::pipe(pipe.as_mut_ptr()) } == 0, "pipe: {}", errno_name(sys::errno()));
    let (direct, indirect) = (s.dir("direct"), s.dir("indirect"));
    for (dir, kind) in [(&direct, "direct"), (&indirect, "indirect")] {
        let r = sys::mount("auto", dir, "autofs", 0, &format!("fd={},minproto=5,maxproto=5,{kind}", pipe[1]));
        check!(r == 0, "mounting autofs ({kind}): {}", errno_name(r));
        s.track(dir);
    }
    let key = indirect.join("key");
    fs::create_dir(&key).map_err(|e| format!("mkdir {} as the daemon: {e}", key.display()))?;
    // Vfat hashes and compares names its own way.
    let img = s.path("vfat.img");
    fs::write(&img, vec![0u8; 4 << 20]).map_err(|e| e.to_string())?;
    let out = Command::new("busybox").args(["mkdosfs"]).arg(&img).output().map_err(|e| format!("busybox mkdosfs: {e}"))?;
    check!(out.status.success(), "busybox mkdosfs: {}", String::from_utf8_lossy(&out.stderr));
    let vfat = s.dir("vfat");
    let out = Command::new("mount").args(["-t", "vfat", "-o", "loop"]).arg(&img).arg(&vfat).output().map_err(|e| e.to_string())?;
    check!(out.status.success(), "mounting the vfat image: {}", String::from_utf8_lossy(&out.stderr));
    s.track(&vfat);
    fs::create_dir(vfat.join("dir")).map_err(|e| format!("mkdir in vfat: {e}"))?;
    // A tmpfs that can fold case, with directories that do and do not.
    let cf = s.dir("cf");
    let r = sys::mount("cf", &cf, "tmpfs", 0, "mode=0755,casefold");
    check!(r == 0, "mounting tmpfs with casefold: {}", errno_name(r));
    s.track(&cf);
    for d in ["folded/l1", "folded/l2", "folded/upper", "folded/work", "sensitive/l1", "sensitive/upper", "sensitive/work"] {
        let p = cf.join(d);
        fs::create_dir_all(&p).map_err(|e| e.to_string())?;
        set_casefold(&p, d.starts_with("folded"))?;
    }

    let layers = |lower: &Path, upper: &Path, work: &Path| {
        format!("lowerdir={},upperdir={},workdir={},{OFF}", lower.display(), upper.display(), work.display())
    };
    // overlayfs wants two lower layers when there is no upper one.
    let above_plain = |lower: &Path| format!("lowerdir={}:{},{OFF}", lower.display(), plain.display());
    let c = |rel: &str| cf.join(rel);
    let tried: Vec<(&str, String)> = vec![
        ("direct autofs root as lower", above_plain(&direct)),
        ("indirect autofs key as lower", above_plain(&key)),
        ("indirect autofs key as upper", layers(&plain, &key, &pw)),
        ("indirect autofs root as lower", above_plain(&indirect)),
        ("vfat root as lower", above_plain(&vfat)),
        ("vfat directory as lower", above_plain(&vfat.join("dir"))),
        ("case-folded lower, case-sensitive upper", layers(&c("folded/l1"), &c("sensitive/upper"), &c("sensitive/work"))),
        ("case-sensitive lower, case-folded upper", layers(&c("sensitive/l1"), &c("folded/upper"), &c("folded/work"))),
        ("case-folded and case-sensitive lowers", format!("lowerdir={}:{},{OFF}", c("folded/l1").display(), c("sensitive/l1").display())),
        ("case-sensitive layers on a case-folding filesystem", layers(&c("sensitive/l1"), &c("sensitive/upper"), &c("sensitive/work"))),
        ("plain layers", layers(&plain, &pu, &pw)),
    ];
    let mut seen = [vec![], vec![]];
    for (what, opts) in &tried {
        for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
            seen[i].push((what.to_string(), try_mount(&m, fstype, opts)));
        }
    }
    // The reference refuses every unusual layer and mounts the rest: otherwise this tests nothing.
    let want_ok = ["indirect autofs root as lower", "case-sensitive layers on a case-folding filesystem", "plain layers"];
    for (what, got) in &seen[0] {
        let want = if want_ok.contains(&what.as_str()) { "ok".to_string() } else { errno_name(libc::EINVAL) };
        check!(*got == want, "overlayfs: {what} gave {got}, the test expects {want}");
    }
    // A stack of case-folded directories only: overlayfs makes a case-insensitive union,
    // which unionrs does not have yet and refuses (documented).
    let folded = layers(&c("folded/l1"), &c("folded/upper"), &c("folded/work"));
    cases.push(("all case-folded: overlayfs".to_string(), try_mount(&m, "overlay", &folded)));
    cases.push(("all case-folded: unionrs".to_string(), try_mount(&m, "unionrs", &folded)));
    check!(cases[0].1 == "ok", "overlayfs refused a stack of case-folded directories: {}", cases[0].1);
    check!(cases[1].1 == errno_name(libc::EINVAL), "unionrs gave {} for a stack of case-folded directories, want EINVAL", cases[1].1);
    // SAFETY: our fds.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    same_steps(&seen[0], &seen[1])
}

// ---------------------------------------------------------------------------------------------
// Finding 9: a merged listing built while its directory is copied up

/// Directories raced, whiteouts in each (they make the listing's look-ups take a while).
const RACED_DIRS: usize = 40;
const RACED_WHITEOUTS: usize = 300;

fn listing_during_copy_up() -> TestResult {
    let s = Scratch::new("listing_copy_up");
    let want: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec()];
    let mut diffs = vec![];
    for fstype in ["overlay", "unionrs"] {
        let base = s.dir(fstype);
        let (l1, l2) = (Layer::new(base.join("l1"))?, Layer::new(base.join("l2"))?);
        for d in 0..RACED_DIRS {
            l1.file(format!("d{d}/a"), b"a\n")?;
            l2.file(format!("d{d}/b"), b"b\n")?;
            for w in 0..RACED_WHITEOUTS {
                l1.whiteout(format!("d{d}/w{w}"))?;
                l2.file(format!("d{d}/w{w}"), b"hidden\n")?;
            }
        }
        let m = mount_union(&base, fstype, &["l1", "l2"], true)?;
        for d in 0..RACED_DIRS {
            let dir = m.join(format!("d{d}"));
            let start = Barrier::new(2);
            // The copy-up starts a little later each round, to land in every phase of the
            // listing's build.
            let delay = Duration::from_micros(1000 * d as u64);
            let (listed, chmod) = std::thread::scope(|sc| {
                let lister = sc.spawn(|| {
                    start.wait();
                    names_in(&dir)
                });
                start.wait();
                std::thread::sleep(delay);
                let chmod = fs::set_permissions(&dir, fs::Permissions::from_mode(0o750));
                (lister.join().unwrap_or(Err(libc::EFAULT)), chmod)
            });
            if let Err(e) = chmod {
                diffs.push(format!("{fstype}: chmod d{d}: {e}"));
            }
            for (when, got) in [("while copied up", listed), ("afterwards", names_in(&dir))] {
                match got {
                    Ok(names) if names == want => {}
                    Ok(names) => diffs.push(format!("{fstype}: d{d} {when} lists {} names, want a and b", names.len())),
                    Err(e) => diffs.push(format!("{fstype}: listing d{d} {when}: {}", errno_name(e))),
                }
            }
        }
        let r = sys::umount(&m);
        check!(r == 0, "unmounting {fstype}: {}", errno_name(r));
    }
    crate::util::verdict(diffs)
}

// ---------------------------------------------------------------------------------------------
// Finding 12: removing a directory that holds very many whiteouts

/// More than fit one kmalloc'ed array of names (4 MiB: 131 072 entries of 24 bytes and the
/// next doubling).
const MANY_WHITEOUTS: usize = 140_000;

/// Only unionrs runs at this size: making the whiteouts, listing them and removing them takes
/// about 7 minutes per union under TCG, and overlayfs keeps such a list in separately
/// allocated entries (it removes the directory too, but leaves its emptied copy in the work
/// directory for the next mount to clean).
fn rmdir_many_whiteouts() -> TestResult {
    let s = Scratch::new("rmdir_whiteouts");
    let base = s.dir("unionrs");
    Layer::new(base.join("lower"))?.file("d/a", b"a\n")?;
    let u = Layer::new(base.join("upper"))?;
    u.whiteout("d/a")?;
    progress(&format!("making {MANY_WHITEOUTS} whiteouts"));
    for w in 0..MANY_WHITEOUTS {
        let p = u.path(format!("d/w{w}"));
        let r = sys::mknod(&p, libc::S_IFCHR, libc::makedev(0, 0));
        check!(r == 0, "mknod {}: {}", p.display(), errno_name(r));
    }
    let m = mount_union(&base, "unionrs", &["lower"], true)?;
    progress("listing and removing the directory");
    let listed = names_in(&m.join("d")).map_err(errno_name);
    let removed = fs::remove_dir(m.join("d")).map_err(|e| errno_name(crate::util::errno_of(&e)));
    let gone = fs::symlink_metadata(m.join("d")).map_err(|e| errno_name(crate::util::errno_of(&e)));
    let r = sys::umount(&m);
    check!(r == 0, "unmounting: {}", errno_name(r));
    check!(listed.as_ref().map(|n| n.len()) == Ok(0), "listing d: {:?} entries, want none (all whiteouts)", listed.map(|n| n.len()));
    check!(removed.is_ok(), "rmdir d: {}", removed.unwrap_err());
    check!(gone.as_ref().err() == Some(&errno_name(libc::ENOENT)), "d after rmdir: {:?}, want ENOENT", gone.map(|_| ()));
    let st = sys::lstat(&base.join("upper/d")).map_err(errno_name)?;
    check!(st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0, "upper/d is not a whiteout: mode {:o}", st.st_mode);
    let left = names_in(&base.join("work/work")).map_err(errno_name)?;
    check!(left.is_empty(), "{} entries left in the work directory", left.len());
    Ok(())
}
