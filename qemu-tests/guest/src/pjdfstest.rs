//! pjdfstest, the POSIX conformance suite (its Rust version, built by scripts/build-pjdfstest),
//! run in a merged directory of an overlayfs union and of a unionrs union with the same
//! options: as root, and as the root of a user namespace that maps a range of ids (as rootless
//! container engines get from /etc/subuid). No case that passes on overlayfs may fail on
//! unionrs; both results are printed side by side.

use crate::fixture::Scratch;
use crate::rootless;
use crate::sys::{self, errno_name};
use crate::trees::Layer;
use crate::{check, progress, Test, TestResult};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![Test::new("pjdfstest.as_root", as_root), Test::new("pjdfstest.in_user_namespace", in_user_namespace)]
}

/// The options of both unions as root (the features unionrs does not have yet stay off).
const ROOT_OPTS: &str = "index=off,redirect_dir=off,metacopy=off,xino=off";

/// pjdfstest's settings: the two users it switches to exist in the guest image; naptime is
/// above the kernel's coarse timestamp granularity (a jiffy), or the time tests see no change.
const CONFIG: &str = r#"
[features]
posix_fallocate = {}
utimensat = {}
utime_now = {}
rename_ctime = {}

[settings]
naptime = 0.05
allow_remount = false

[dummy_auth]
entries = [["nobody", "nogroup"], ["daemon", "daemon"]]
"#;

/// How long one pjdfstest run may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The pjdfstest binary the host put beside the guest tests (see qemu-tests/run).
fn binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let p = me.parent().and_then(Path::parent).map(|d| d.join("pjdfstest/pjdfstest")).ok_or("no target directory")?;
    check!(p.is_file(), "{} is missing: qemu-tests/run copies it there from scripts/build-pjdfstest", p.display());
    Ok(p)
}

/// Prepares `base` for a run by `owner`: the layers (a merged directory `area` whose lower
/// part holds a file, so that the cases run where whiteouts and copy-up happen), a second
/// filesystem for the EXDEV cases, pjdfstest and its configuration.
fn prepare(s: &mut Scratch, base: &Path, owner: u32) -> TestResult {
    Layer::at(&base.join("lower")).file("area/from_lower", b"lower\n")?.dir("area/lower_dir")?;
    let second = base.join("second");
    fs::create_dir_all(&second).map_err(|e| e.to_string())?;
    let r = sys::mount("pjd-second", &second, "tmpfs", 0, "mode=0777");
    check!(r == 0, "mounting the second tmpfs: {}", errno_name(r));
    s.track(&second);
    let bin = base.join("pjdfstest");
    fs::copy(binary()?, &bin).map_err(|e| format!("copying pjdfstest: {e}"))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    fs::write(base.join("pjdfstest.toml"), CONFIG).map_err(|e| e.to_string())?;
    chown_tree(base, owner)
}

fn chown_tree(p: &Path, owner: u32) -> TestResult {
    std::os::unix::fs::lchown(p, Some(owner), Some(owner)).map_err(|e| format!("lchown {}: {e}", p.display()))?;
    if fs::symlink_metadata(p).map_err(|e| e.to_string())?.is_dir() {
        for e in fs::read_dir(p).map_err(|e| e.to_string())? {
            chown_tree(&e.map_err(|e| e.to_string())?.path(), owner)?;
        }
    }
    Ok(())
}

fn as_root() -> TestResult {
    let mut s = Scratch::new("pjdfstest_root");
    let base = s.dir("fs");
    prepare(&mut s, &base, 0)?;
    let results = run_both(&base, ROOT_OPTS, &mut |m| s.track(m))?;
    compare(&results)
}

/// The user namespace's ids: 0..RANGE inside are RANGE_START.. outside.
const RANGE_START: u32 = 100_000;
const RANGE: u32 = 65_536;

fn in_user_namespace() -> TestResult {
    let mut s = Scratch::new("pjdfstest_userns");
    let base = s.dir("fs");
    prepare(&mut s, &base, RANGE_START)?;
    run_mapped("pjdfstest", &base)?;
    let text = fs::read_to_string(base.join("results")).map_err(|e| format!("the child wrote no results: {e}"))?;
    let mut results = vec![];
    for part in text.split("\n=== next\n") {
        results.push(parse(part));
    }
    check!(results.len() == 2, "the child wrote {} result sets, not 2", results.len());
    compare(&results)
}

/// The user-namespace child's side (through rootless::child): mounts both unions as the root
/// of the namespace, runs pjdfstest on each and leaves the outputs in DIR/results.
pub fn child(base: &Path) -> TestResult {
    let uid_map = fs::read_to_string("/proc/self/uid_map").map_err(|e| e.to_string())?;
    let want = format!("0 {RANGE_START} {RANGE}");
    check!(uid_map.split_whitespace().collect::<Vec<_>>().join(" ") == want, "uid_map is {uid_map:?}, want {want}");
    let mut outputs = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let m = mount_one(base, i, fstype, rootless::OPTS)?;
        progress(&format!("pjdfstest in a user namespace on {fstype}"));
        let out = run_pjdfstest(base, &m);
        sys::umount(&m);
        outputs.push(out?);
    }
    fs::write(base.join("results"), outputs.join("\n=== next\n")).map_err(|e| e.to_string())
}

/// Mounts `fstype` (the `i`-th union) over base/lower with its own upper and work directories.
fn mount_one(base: &Path, i: usize, fstype: &str, opts: &str) -> Result<PathBuf, String> {
    rootless::mount_over_lower_with(base, i, fstype, opts).map(|(_, m)| m)
}

fn run_both(base: &Path, opts: &str, track: &mut dyn FnMut(&Path)) -> Result<Vec<Results>, String> {
    let mut results = vec![];
    for (i, fstype) in ["overlay", "unionrs"].iter().enumerate() {
        let m = mount_one(base, i, fstype, opts)?;
        track(&m);
        let out = run_pjdfstest(base, &m);
        sys::umount(&m);
        results.push(parse(&out?));
    }
    Ok(results)
}

/// Runs pjdfstest in `mnt`/area; returns its output (a failing case makes it exit 1).
fn run_pjdfstest(base: &Path, mnt: &Path) -> Result<String, String> {
    let out_path = base.join("pjdfstest.out");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(base.join("pjdfstest"))
        .arg("-c")
        .arg(base.join("pjdfstest.toml"))
        .arg("-p")
        .arg(mnt.join("area"))
        .arg("-s")
        .arg(base.join("second"))
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting pjdfstest: {e}"))?;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            return Err(format!(
                "pjdfstest in {} did not finish in {} s; its output ends: {}",
                mnt.display(),
                TIMEOUT.as_secs(),
                tail(&text)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
    check!(text.contains("\nSummary: "), "pjdfstest in {} ended ({status}) without a summary: {}", mnt.display(), tail(&text));
    Ok(text)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// One run: each case's outcome ("ok", "FAILED", "skipped") with its first detail line, and
/// pjdfstest's summary line.
struct Results {
    cases: BTreeMap<String, (String, String)>,
    summary: String,
}

fn parse(text: &str) -> Results {
    let mut cases = BTreeMap::new();
    let mut summary = String::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name, outcome] = words[..] {
            if name.contains("::") && ["ok", "FAILED", "skipped"].contains(&outcome) {
                cases.insert(name.to_string(), (outcome.to_string(), String::new()));
                last = (outcome == "FAILED").then(|| name.to_string());
                continue;
            }
        }
        if let Some(s) = line.strip_prefix("Summary: ") {
            summary = s.to_string();
        } else if let (Some(name), true) = (&last, line.starts_with('\t')) {
            if let Some(c) = cases.get_mut(name) {
                if c.1.is_empty() {
                    c.1 = line.trim().to_string();
                }
            }
        }
    }
    Results { cases, summary }
}

/// Every case that passes on overlayfs (results[0]) must pass on unionrs (results[1]).
fn compare(results: &[Results]) -> TestResult {
    let (ov, un) = (&results[0], &results[1]);
    progress(&format!("pjdfstest on overlayfs: {}", ov.summary));
    progress(&format!("pjdfstest on unionrs:   {}", un.summary));
    let passed = |r: &Results| r.cases.values().filter(|c| c.0 == "ok").count();
    // A run where most cases fail on the reference tests little: the harness is broken.
    check!(passed(ov) * 2 > ov.cases.len(), "only {} cases passed on overlayfs: the harness is broken ({})", passed(ov), ov.summary);
    let mut diffs = vec![];
    for (name, (outcome, _)) in &ov.cases {
        if outcome != "ok" {
            continue;
        }
        match un.cases.get(name) {
            Some((o, _)) if o == "ok" => {}
            Some((o, why)) => diffs.push(format!("{name}: ok on overlayfs, {o} on unionrs ({why})")),
            None => diffs.push(format!("{name}: ok on overlayfs, not run on unionrs")),
        }
    }
    let better: Vec<&String> =
        un.cases.iter().filter(|(n, c)| c.0 == "ok" && ov.cases.get(*n).is_some_and(|o| o.0 != "ok")).map(|(n, _)| n).collect();
    if !better.is_empty() {
        progress(&format!("pjdfstest: passes on unionrs only: {better:?}"));
    }
    crate::util::verdict(diffs)
}

/// Runs `what` (see rootless::child) as the root of new user and mount namespaces whose ids
/// 0..RANGE are RANGE_START.. outside, written by this (privileged) process as newuidmap
/// would from /etc/subuid. The child makes the namespaces and becomes their root before it
/// executes the test binary: an exec before the maps exist would drop its capabilities. (Not
/// through `Command::pre_exec`: `spawn` waits for the exec, and the exec waits for the maps.)
fn run_mapped(what: &str, dir: &Path) -> TestResult {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (exe, tier) = rootless::prepare_child(dir)?;
    let verdict = dir.join("verdict");
    let args: Vec<CString> =
        [exe.as_os_str().as_bytes(), b"--tier", tier.as_bytes(), b"--in-userns", what.as_bytes(), dir.as_os_str().as_bytes()]
            .iter()
            .map(|a| CString::new(*a).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // The child waits on this pipe until its maps are written.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0, "pipe2: {}", errno_name(sys::errno()));
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: between fork and exec the child makes only async-signal-safe syscalls, on
    // memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; the child ends in exec or _exit.
        unsafe {
            let mut byte = 0u8;
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0
                && libc::read(read_end, (&raw mut byte).cast(), 1) == 1
                && libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(0, 0, 0) == 0
                && libc::setresuid(0, 0, 0) == 0
            {
                libc::execv(argv[0], argv.as_ptr());
            }
            libc::_exit(127);
        }
    }
    // SAFETY: the child has its own copy of the read end.
    unsafe { libc::close(read_end) };
    if pid < 0 {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(write_end) };
        return Err(format!("fork: {}", errno_name(sys::errno())));
    }
    let mapped = sys::write_id_maps(pid, &format!("0 {RANGE_START} {RANGE}"));
    if mapped.is_ok() {
        // SAFETY: one byte from a local, to our pipe.
        unsafe { libc::write(write_end, [1u8].as_ptr().cast(), 1) };
    }
    // SAFETY: our descriptor, closed once (a child still waiting then fails its read).
    unsafe { libc::close(write_end) };
    let mut status = 0;
    // SAFETY: our child; `status` is a local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    check!(waited == pid, "waitpid: {}", errno_name(sys::errno()));
    mapped?;
    match fs::read_to_string(&verdict) {
        Ok(v) if v == "ok" => Ok(()),
        Ok(v) => Err(v),
        Err(e) => Err(format!("the user-namespace child (wait status {status:#x}) left no verdict: {e}")),
    }
}
