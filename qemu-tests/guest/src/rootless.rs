//! Unions mounted without privileges: a normal user in a new user and mount namespace
//! (`unshare --user --map-root-user --mount`, as rootless container engines do) mounts unionrs
//! and overlayfs the same way, with userxattr, and the two are compared.
//!
//! Each test prepares its layers as root in a scratch tmpfs owned by ROOTLESS_UID, then runs a
//! copy of this binary as that user in the namespaces (`--in-userns WHAT DIR`), which writes
//! its verdict to DIR/verdict: a child that dies without one fails the test.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, Kmsg};
use crate::trees::Layer;
use crate::{check, progress, writable, Test, TestResult};
use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("rootless.random_ops_differential", random_ops_differential),
        Test::new("rootless.copy_up_unmapped_owner", copy_up_unmapped_owner),
        Test::new("rootless.mount_errors_rate_limited", mount_errors_rate_limited),
        Test::new("rootless.private_xattrs_and_capabilities", private_xattrs_and_capabilities),
        Test::new("rootless.open_needs_mounter_rights", open_needs_mounter_rights),
        Test::new("rootless.listing_with_unsearchable_lower", listing_with_unsearchable_lower),
    ]
}

/// The user without privileges (root inside its namespace, mapped to this id outside).
const ROOTLESS_UID: u32 = 1000;

/// The options of both unions in these tests: unprivileged overlayfs needs userxattr for its
/// private xattrs (and then does not follow redirects); the features unionrs does not have
/// yet stay off.
pub const OPTS: &str = "index=off,metacopy=off,xino=off,userxattr";

/// Gives `root` and everything under it to ROOTLESS_UID, except the names in `keep`.
fn give_to_user(root: &Path, keep: &[&Path]) -> TestResult {
    if !keep.contains(&root) {
        lchown(root, Some(ROOTLESS_UID), Some(ROOTLESS_UID)).map_err(|e| format!("lchown {}: {e}", root.display()))?;
    }
    let meta = fs::symlink_metadata(root).map_err(|e| format!("lstat {}: {e}", root.display()))?;
    if meta.is_dir() {
        for e in fs::read_dir(root).map_err(|e| format!("readdir {}: {e}", root.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            give_to_user(&e.path(), keep)?;
        }
    }
    Ok(())
}

/// Runs `what` (see [`child`]) as ROOTLESS_UID in new user and mount namespaces, on `dir`.
fn run_rootless(what: &str, dir: &Path) -> TestResult {
    let mut child = spawn_rootless(what, dir)?;
    let status = child.wait().map_err(|e| e.to_string())?;
    read_verdict(dir, status)
}

/// Starts `what` as [`run_rootless`] does, without waiting; the child's pid is that of the
/// process in the namespaces (setpriv and unshare exec it in place).
fn spawn_rootless(what: &str, dir: &Path) -> Result<std::process::Child, String> {
    let (exe, tier) = prepare_child(dir)?;
    let uid = ROOTLESS_UID.to_string();
    Command::new("setpriv")
        .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
        .args(["unshare", "--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args(["--tier", tier, "--in-userns", what])
        .arg(dir)
        .spawn()
        .map_err(|e| format!("running setpriv/unshare: {e}"))
}

/// Prepares `dir` for a child: a copy of this binary that any user can execute (wherever the
/// host's share put the original) and no verdict of an earlier child; returns the copy and
/// the tier to pass on.
pub fn prepare_child(dir: &Path) -> Result<(PathBuf, &'static str), String> {
    let exe = dir.join("unionrs-guest-tests");
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    fs::copy(&me, &exe).map_err(|e| format!("copying {} to {}: {e}", me.display(), exe.display()))?;
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(dir.join("verdict"));
    Ok((exe, if crate::tier() == crate::Tier::Full { "full" } else { "fast" }))
}

fn read_verdict(dir: &Path, status: std::process::ExitStatus) -> TestResult {
    match fs::read_to_string(dir.join("verdict")) {
        Ok(v) if v == "ok" => Ok(()),
        Ok(v) => Err(v),
        Err(e) => Err(format!("the rootless child ({status}) left no verdict: {e}")),
    }
}

/// The child's side: runs `what` on `dir` inside the namespaces and writes the verdict.
pub fn child(what: &str, dir: &Path) -> ! {
    let outcome = match what {
        "random" => writable::random_ops_userxattr(dir),
        "unmapped" => unmapped_child(dir),
        "mount_errors" => mount_errors_child(dir),
        "xattrs" => xattrs_child(dir),
        "pjdfstest" => crate::pjdfstest::child(dir),
        "mounter_rights" => mounter_rights_child(dir),
        "listing" => listing_child(dir),
        _ => Err(format!("unknown rootless test {what}")),
    };
    let text = match &outcome {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let written = fs::write(dir.join("verdict"), text);
    std::process::exit(if outcome.is_ok() && written.is_ok() { 0 } else { 1 });
}

/// Checks that the child runs as planned: root of a namespace without privileges outside.
fn check_namespace() -> TestResult {
    let map = fs::read_to_string("/proc/self/uid_map").map_err(|e| e.to_string())?;
    let fields: Vec<&str> = map.split_whitespace().collect();
    check!(fields == ["0", "1000", "1"], "uid_map is {map:?}, want 0 1000 1");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The random-operation differential, rootless

fn random_ops_differential() -> TestResult {
    let mut s = Scratch::new("rootless_random");
    let base = s.dir("fs");
    s.track(&base);
    let r = sys::mount("rootless", &base, "tmpfs", libc::MS_NOATIME, "mode=0755");
    check!(r == 0, "mounting a tmpfs at {}: {}", base.display(), errno_name(r));
    writable::build_userxattr_layers(&base)?;
    give_to_user(&base, &[])?;
    run_rootless("random", &base)
}

// ---------------------------------------------------------------------------------------------
// CVE-2023-0386: a lower file whose owner has no mapping in the mounter's namespace

/// Lower objects owned by ids that the namespace cannot map.
const UNMAPPED: [&str; 2] = ["suid_root", "dir_root"];

fn copy_up_unmapped_owner() -> TestResult {
    let s = Scratch::new("rootless_unmapped");
    let base = s.dir("fs");
    let l = Layer::at(&base.join("lower"));
    // World-writable, so that the union's own permission check lets a write reach copy-up.
    l.file("suid_root", b"#!/bin/sh\necho root\n")?
        .chmod("suid_root", 0o4777)?
        .file("dir_root/f", b"f\n")?
        .chmod("dir_root", 0o777)?
        .file("mine", b"the user's\n")?;
    let keep = [base.join("lower/suid_root"), base.join("lower/dir_root")];
    give_to_user(&base, &keep.iter().map(|p| p.as_path()).collect::<Vec<_>>())?;
    for p in &keep {
        lchown(p, Some(0), Some(0)).map_err(|e| e.to_string())?;
    }
    // chown cleared the set-user-ID bit of a file it gave away; this one stays root's.
    fs::set_permissions(&keep[0], fs::Permissions::from_mode(0o4777)).map_err(|e| e.to_string())?;
    run_rootless("unmapped", &base)?;
    let st = sys::lstat(&keep[0]).map_err(errno_name)?;
    check!(st.st_mode & 0o7777 == 0o4777 && st.st_uid == 0, "the lower file changed: mode {:o} uid {}", st.st_mode, st.st_uid);
    Ok(())
}

type Probe = (&'static str, fn(&Path) -> Result<(), i32>);

fn open_for_write(p: &Path) -> Result<(), i32> {
    fs::OpenOptions::new().write(true).open(p).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn touch(p: &Path) -> Result<(), i32> {
    let c = sys::cpath(p);
    // SAFETY: a valid path; NULL times mean now.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(sys::errno())
    }
}

fn create_in(p: &Path) -> Result<(), i32> {
    fs::write(p.join("new"), b"new\n").map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Mounts `fstype` (the `i`-th union of a test) over `base/lower`, with upper `base/u{i}` and
/// work `base/w{i}`, at `base/m{i}`, with OPTS; returns the upper and the mount point.
fn mount_over_lower(base: &Path, i: usize, fstype: &str) -> Result<(PathBuf, PathBuf), String> {
    mount_over_lower_with(base, i, fstype, OPTS)
}

/// [`mount_over_lower`] with other options.
pub fn mount_over_lower_with(base: &Path, i: usize, fstype: &str, opts: &str) -> Result<(PathBuf, PathBuf), String> {
    let (u, w, m) = (base.join(format!("u{i}")), base.join(format!("w{i}")), base.join(format!("m{i}")));
    for d in [&u, &w, &m] {
        fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let opts = format!("lowerdir={},upperdir={},workdir={},{opts}", base.join("lower").display(), u.display(), w.display());
    let r = sys::mount("none", &m, fstype, 0, &opts);
    check!(r == 0, "mounting {fstype} with {opts}: {}", errno_name(r));
    Ok((u, m))
}

fn unmapped_child(base: &Path) -> TestResult {
    check_namespace()?;
    let probes: [(&str, Probe); 4] = [
        ("suid_root", ("open for writing", open_for_write)),
        ("suid_root", ("touch", touch)),
        ("dir_root", ("create in", create_in)),
        ("mine", ("open for writing", open_for_write)),
    ];
    let mut results: Vec<Vec<Result<(), i32>>> = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let (u, m) = mount_over_lower(base, i, fstype)?;
        results.push(probes.iter().map(|(name, (_, f))| f(&m.join(name))).collect());
        sys::umount(&m);
        if *fstype == "unionrs" {
            for name in UNMAPPED {
                check!(!u.join(name).exists(), "unionrs copied {name} up although its owner has no mapping");
            }
        }
    }
    let mut diffs = vec![];
    for (k, (name, (what, _))) in probes.iter().enumerate() {
        let show = |r: &Result<(), i32>| r.map_or_else(errno_name, |_| "ok".to_string());
        let (ov, un) = (&results[0][k], &results[1][k]);
        if ov != un {
            diffs.push(format!("{what} {name}: overlayfs {}, unionrs {}", show(ov), show(un)));
        }
        // The reference itself must refuse: otherwise this test tests nothing.
        let want = if UNMAPPED.contains(name) { Err(libc::EOVERFLOW) } else { Ok(()) };
        if *ov != want {
            diffs.push(format!("{what} {name}: overlayfs gave {}, the test expects {}", show(ov), show(&want)));
        }
    }
    check!(diffs.is_empty(), "{}", diffs.join("\n"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mount errors of unprivileged users are rate limited in the kernel log

/// Failing mounts the child makes.
const BAD_MOUNTS: usize = 500;
/// A name in the failing option, to find the messages by.
const PROBE_NAME: &str = "/rate-limit-probe";
/// The kernel's default rate limit: this many messages per interval.
const BURST: u64 = 10;
const INTERVAL_S: u64 = 5;

fn mount_errors_rate_limited() -> TestResult {
    let s = Scratch::new("rootless_ratelimit");
    let base = s.dir("fs");
    for d in ["mnt", "l1", "l2", "u", "w"] {
        fs::create_dir_all(base.join(d)).map_err(|e| e.to_string())?;
    }
    give_to_user(&base, &[])?;
    let mut kmsg = Kmsg::new();
    kmsg.read_new();
    let start = Instant::now();
    run_rootless("mount_errors", &base)?;
    let secs = start.elapsed().as_secs();
    // Ours only (overlayfs' reference message names the directory too).
    let ours = |l: &&str| l.contains("lowerdir: failed to resolve") && l.contains(PROBE_NAME);
    let logged = kmsg.read_new().lines().filter(ours).count() as u64;
    // At most one burst per interval begun, plus the one in progress.
    let allowed = BURST * (secs / INTERVAL_S + 2);
    progress(&format!("{BAD_MOUNTS} failing mounts in {secs} s logged {logged} messages (allowed {allowed})"));
    check!(allowed < BAD_MOUNTS as u64, "{BAD_MOUNTS} failing mounts took {secs} s: too slow to tell a limit");
    check!(logged >= 1, "no failing mount was logged at all");
    check!(logged <= allowed, "{BAD_MOUNTS} failing mounts in {secs} s logged {logged} messages, more than the limit of {allowed}");
    Ok(())
}

fn mount_errors_child(base: &Path) -> TestResult {
    check_namespace()?;
    let mnt = base.join("mnt");
    let opts = format!("lowerdir={PROBE_NAME}");
    let reference = sys::mount("none", &mnt, "overlay", 0, &opts);
    for i in 0..BAD_MOUNTS {
        let r = sys::mount("none", &mnt, "unionrs", 0, &opts);
        check!(r == reference, "failing mount #{i}: unionrs gave {}, overlayfs {}", errno_name(r), errno_name(reference));
    }
    check!(reference == libc::ENOENT, "overlayfs gave {} for a missing lowerdir, the test expects ENOENT", errno_name(reference));
    // What needs the trusted xattrs, asked for without CAP_SYS_ADMIN in the initial
    // namespace: refused with EPERM, as overlayfs refuses it.
    let b = base.display();
    let layers = format!("lowerdir={b}/l1,upperdir={b}/u,workdir={b}/w");
    for (opts, msg) in [
        (format!("{layers},redirect_dir=on"), "redirect_dir requires permission to access trusted xattrs"),
        (format!("{layers},metacopy=on"), "metacopy requires permission to access trusted xattrs"),
        (format!("{layers},verity=on"), "verity requires permission to access trusted xattrs"),
        (format!("lowerdir={b}/l1::{b}/l2"), "lower data-only dirs require permission to access trusted xattrs"),
    ] {
        let (ours, theirs) = (sys::mount("none", &mnt, "unionrs", 0, &opts), sys::mount("none", &mnt, "overlay", 0, &opts));
        check!(
            ours == libc::EPERM && theirs == libc::EPERM,
            "{opts}: unionrs gave {}, overlayfs {}, want EPERM ({msg})",
            errno_name(ours),
            errno_name(theirs)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The private xattrs and file capabilities, set by the root of a user namespace

/// A version-2 `security.capability` value (no root id): effective, CAP_SETUID permitted.
fn cap_v2_setuid() -> Vec<u8> {
    let mut v = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    const CAP_SETUID: u32 = 7;
    for word in [1u32 << CAP_SETUID, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

fn private_xattrs_and_capabilities() -> TestResult {
    let s = Scratch::new("rootless_xattrs");
    let base = s.dir("fs");
    Layer::at(&base.join("lower")).file("f", b"a program\n")?.dir("d")?.xattr("d", "user.overlay.opaque", b"y")?.xattr(
        "d",
        "user.overlay.overlay.shown",
        b"escaped",
    )?;
    give_to_user(&base, &[])?;
    run_rootless("xattrs", &base)?;
    // What reached each upper layer, read from outside the namespace.
    let mut uppers = vec![];
    for i in 0..2 {
        let f = base.join(format!("u{i}/f"));
        let mut names = sys::llistxattr(&f).map_err(|e| format!("listxattr {}: {}", f.display(), errno_name(e)))?;
        // overlayfs records the copy's origin; unionrs does not yet (see unionrs.rst).
        names.retain(|n| n != b"user.overlay.origin");
        let cap = sys::lgetxattr(&f, b"security.capability");
        uppers.push((names, cap));
    }
    let show = |u: &(Vec<Vec<u8>>, Result<Vec<u8>, i32>)| {
        let names: Vec<String> = u.0.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        format!("{names:?}, security.capability {:02x?}", u.1)
    };
    check!(uppers[0] == uppers[1], "the upper copies differ: overlayfs {}, unionrs {}", show(&uppers[0]), show(&uppers[1]));
    let (names, cap) = &uppers[1];
    check!(!names.iter().any(|n| n == b"user.overlay.opaque"), "a private xattr reached the upper through the union: {names:?}");
    // CVE-2021-3493: the capability must stay the namespace's (version 3, its root's id).
    let cap = cap.as_ref().map_err(|e| format!("the upper has no security.capability: {}", errno_name(*e)))?;
    check!(
        cap.len() == 24 && cap[..4] == (0x0300_0000u32 | 1).to_le_bytes() && cap[20..] == ROOTLESS_UID.to_le_bytes(),
        "security.capability on the upper is {cap:02x?}: not a version-3 capability of uid {ROOTLESS_UID}"
    );
    Ok(())
}

fn xattrs_child(base: &Path) -> TestResult {
    check_namespace()?;
    let show = |r: Result<Vec<u8>, i32>| r.map_or_else(errno_name, |v| format!("{:?}", String::from_utf8_lossy(&v)));
    let rc = |r: i32| if r == 0 { "ok".to_string() } else { errno_name(r) };
    let mut seen: Vec<Vec<(String, String)>> = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let (_, m) = mount_over_lower(base, i, fstype)?;
        let (d, f) = (m.join("d"), m.join("f"));
        let listed = sys::llistxattr(&d).map(|names| names.into_iter().filter(|n| n.starts_with(b"user.")).collect::<Vec<_>>());
        seen.push(vec![
            ("get user.overlay.opaque".into(), show(sys::lgetxattr(&d, b"user.overlay.opaque"))),
            ("get user.overlay.shown".into(), show(sys::lgetxattr(&d, b"user.overlay.shown"))),
            ("get trusted.overlay.opaque".into(), show(sys::lgetxattr(&d, b"trusted.overlay.opaque"))),
            ("list".into(), format!("{listed:?}")),
            ("set user.overlay.opaque".into(), rc(sys::lsetxattr(&f, "user.overlay.opaque", b"y"))),
            ("set trusted.overlay.opaque".into(), rc(sys::lsetxattr(&f, "trusted.overlay.opaque", b"y"))),
            ("set security.capability".into(), rc(sys::lsetxattr(&f, "security.capability", &cap_v2_setuid()))),
            ("get security.capability".into(), format!("{:02x?}", sys::lgetxattr(&f, b"security.capability"))),
        ]);
        sys::umount(&m);
    }
    crate::util::same_steps(&seen[0], &seen[1])
}

// ---------------------------------------------------------------------------------------------
// CVE-2020-16120: a caller with more rights than the mounter opens a lower file through the
// union (root reaching an unprivileged user's mount through /proc/PID/root)

/// Lower objects only root may read; the mounter (ROOTLESS_UID) may not.
const ROOT_ONLY: [&str; 3] = ["secret", "secret_dir", "secret_dir/x"];

fn open_needs_mounter_rights() -> TestResult {
    let s = Scratch::new("rootless_mounter_rights");
    let base = s.dir("fs");
    Layer::at(&base.join("lower"))
        .file("secret", b"root's secret\n")?
        .chmod("secret", 0o600)?
        .file("secret_dir/x", b"x\n")?
        .chmod("secret_dir", 0o700)?
        .file("mine", b"the user's\n")?;
    let keep: Vec<PathBuf> = ROOT_ONLY.iter().map(|n| base.join("lower").join(n)).collect();
    give_to_user(&base, &keep.iter().map(|p| p.as_path()).collect::<Vec<_>>())?;
    let mut child = spawn_rootless("mounter_rights", &base)?;
    let probed = probe_as_root(&base, child.id());
    let _ = fs::write(base.join("done"), b"");
    let status = child.wait().map_err(|e| e.to_string())?;
    read_verdict(&base, status)?;
    let results = probed?;
    let show = |r: &Result<(), i32>| r.map_or_else(errno_name, |_| "ok".to_string());
    let mut diffs = vec![];
    for (k, what) in MOUNTER_PROBES.iter().enumerate() {
        let (ov, un) = (&results[0][k], &results[1][k]);
        if ov != un {
            diffs.push(format!("{}: overlayfs {}, unionrs {}", what.0, show(ov), show(un)));
        }
    }
    // The reference refuses root here: otherwise this test tests nothing.
    check!(
        results[0][0] == Err(libc::EACCES),
        "overlayfs let root read the secret through the union ({}): the test expects EACCES",
        show(&results[0][0])
    );
    check!(diffs.is_empty(), "{}", diffs.join("\n"));
    check!(!base.join("u1/secret").exists(), "unionrs copied the secret up");
    Ok(())
}

type RootProbe = (&'static str, fn(&Path) -> Result<(), i32>);

/// What root tries in each union (its own rights would allow all of it). The permission
/// check on the union inode asks the mounter about the real inode, which stops these; the
/// check as the mounter when the real file is opened (`MAY_OPEN`, the fix of CVE-2020-16120
/// in overlayfs) matters where a filesystem decides at open (FUSE, NFS) or after a copy-up,
/// and cannot be told apart with the guest's filesystems: a mounter needs `CAP_DAC_OVERRIDE`
/// over its work directory (mode 0) to mount at all, and with it may open any copy it made.
const MOUNTER_PROBES: [RootProbe; 4] = [
    ("read secret", |m| fs::read(m.join("secret")).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))),
    ("list secret_dir", |m| fs::read_dir(m.join("secret_dir")).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))),
    ("read secret_dir/x", |m| fs::read(m.join("secret_dir/x")).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))),
    ("read mine", |m| fs::read(m.join("mine")).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0))),
];

/// Waits for the child's unions, then runs MOUNTER_PROBES in each as root, through the
/// child's mount namespace.
fn probe_as_root(base: &Path, pid: u32) -> Result<Vec<Vec<Result<(), i32>>>, String> {
    let started = Instant::now();
    while !base.join("ready").exists() {
        check!(started.elapsed().as_secs() < 60, "the rootless child mounted nothing in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let inside = PathBuf::from(format!("/proc/{pid}/root")).join(base.strip_prefix("/").map_err(|e| e.to_string())?);
    Ok((0..2).map(|i| MOUNTER_PROBES.iter().map(|(_, f)| f(&inside.join(format!("m{i}")))).collect()).collect())
}

fn mounter_rights_child(base: &Path) -> TestResult {
    check_namespace()?;
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        mount_over_lower(base, i, fstype)?;
    }
    fs::write(base.join("ready"), b"").map_err(|e| e.to_string())?;
    let started = Instant::now();
    while !base.join("done").exists() {
        check!(started.elapsed().as_secs() < 120, "root did not finish its probes in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Finding 12: one entry that cannot be looked up does not fail a merged listing

/// A lower directory the mounter may read but not search (root's, mode 0444): listing it works,
/// looking up its character device (a possible whiteout) fails with EACCES. overlayfs lists
/// the entry as the layer has it; so must unionrs, rather than failing the whole listing.
fn listing_with_unsearchable_lower() -> TestResult {
    let s = Scratch::new("rootless_listing");
    let base = s.dir("fs");
    Layer::at(&base.join("l1")).node("d/null", libc::S_IFCHR | 0o666, libc::makedev(1, 3))?.file("d/f", b"f\n")?;
    Layer::at(&base.join("l2")).file("d/g", b"g\n")?;
    let keep = base.join("l1/d");
    give_to_user(&base, &[keep.as_path()])?;
    fs::set_permissions(&keep, fs::Permissions::from_mode(0o444)).map_err(|e| e.to_string())?;
    run_rootless("listing", &base)
}

fn listing_child(base: &Path) -> TestResult {
    check_namespace()?;
    let mut seen = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let m = base.join(format!("m{i}"));
        fs::create_dir_all(&m).map_err(|e| e.to_string())?;
        let opts = format!("lowerdir={}:{},{OPTS}", base.join("l1").display(), base.join("l2").display());
        let r = sys::mount("none", &m, fstype, 0, &opts);
        check!(r == 0, "mounting {fstype} with {opts}: {}", errno_name(r));
        let names = crate::tree::names_in(&m.join("d"))
            .map(|n| n.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>().join(" "));
        seen.push(("list d".to_string(), names.map_err(errno_name)));
        sys::umount(&m);
    }
    // The premise: the look-up really fails for the mounter, and overlayfs lists anyway.
    let lookup = fs::symlink_metadata(base.join("l1/d/null")).map_err(|e| e.raw_os_error().unwrap_or(0));
    check!(
        lookup.as_ref().err() == Some(&libc::EACCES),
        "looking up l1/d/null as the mounter gave {:?}, the test expects EACCES",
        lookup.map(|_| ())
    );
    check!(seen[0].1 == Ok("f g null".to_string()), "overlayfs listed {:?}, the test expects f g null", seen[0].1);
    crate::util::same_steps(&seen[0..1], &seen[1..2])
}
