//! Mount-option fuzzing: random and mutated option strings, through mount(2) and through
//! fsopen()/fsconfig(), each of which must end with a clean error or a working mount that
//! unmounts, and no kernel report (KASAN, lockdep, a warning) at all.
//!
//! Refused mounts log a message each; so that a long run is not paced by the serial console,
//! the console's log level is lowered for the run and the kernel log is read back from
//! /dev/kmsg and searched for reports here (every record is still in the log buffer).
//! UNIONRS_SEED reproduces a run; the full tier makes FULL_ATTEMPTS attempts.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name, FsContext, Kmsg};
use crate::util::XorShift;
use crate::{check, progress, Test, TestResult};
use std::collections::BTreeMap;
use std::fs;

pub fn tests() -> Vec<Test> {
    vec![Test::new("fuzz.mount_options", mount_options)]
}

const FAST_ATTEMPTS: usize = 4_000;
const FULL_ATTEMPTS: usize = 30_000;
const DEFAULT_SEED: u64 = 0x6f70_7469_6f6e_7321;

/// The errors a refused mount may give; anything else is a finding.
pub const CLEAN_ERRORS: &[i32] =
    &[libc::EINVAL, libc::ENOENT, libc::ENOTDIR, libc::ELOOP, libc::EBUSY, libc::EROFS, libc::ENAMETOOLONG, libc::EOPNOTSUPP];

/// What a kernel report starts with (the host's log check looks for the same).
const REPORTS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "KASAN",
    "UBSAN",
    "Oops",
    "general protection",
    "Kernel panic",
    "kernel BUG",
    "rust_panic",
    "panicked at",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "lock held when returning",
    "suspicious RCU usage",
    "sleeping function called from invalid context",
    "Call Trace:",
];

const KEYS: &[&str] = &[
    "lowerdir",
    "lowerdir",
    "lowerdir",
    "lowerdir+",
    "upperdir",
    "upperdir",
    "workdir",
    "workdir",
    "userxattr",
    "index",
    "metacopy",
    "nfs_export",
    "redirect_dir",
    "xino",
    "uuid",
    "datadir+",
    "default_permissions",
    "volatile",
    "fsync",
    "override_creds",
    "nooverride_creds",
    "noindex",
    "ro",
    "lowerdir=",
    "",
    "=",
    "x",
];

const WORDS: &[&str] = &["on", "off", "auto", "follow", "nofollow", "null", "strict", "volatile", "", "1", "0", "yes", "on,off"];

/// Lowers the console's log level while alive (the log buffer keeps every record).
pub struct QuietConsole(Option<String>);

impl QuietConsole {
    pub fn new() -> Self {
        let old = fs::read_to_string("/proc/sys/kernel/printk").ok();
        let _ = fs::write("/proc/sys/kernel/printk", "1");
        Self(old)
    }
}

impl Drop for QuietConsole {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let level = old.split_whitespace().next().unwrap_or("7");
            let _ = fs::write("/proc/sys/kernel/printk", level);
        }
    }
}

/// UNIONRS_SEED (decimal or 0x-hex), else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("UNIONRS_SEED")
        .ok()
        .and_then(|s| s.strip_prefix("0x").map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok()))
        .unwrap_or(default)
}

/// The kernel reports among log lines (at most 20).
pub fn kernel_reports(log: &str) -> Vec<String> {
    log.lines().filter(|l| REPORTS.iter().any(|r| l.contains(r))).map(str::to_string).take(20).collect()
}

/// The directories an option may name: layers, files, missing and odd paths.
struct Names {
    root: String,
    paths: Vec<String>,
}

impl Names {
    fn new(s: &mut Scratch) -> Self {
        let r = s.root.display().to_string();
        for d in ["l1/a", "l2/b", "l3", "u", "w", "u2", "w2", "l1/sub"] {
            s.dir(d);
        }
        s.file("file", "x");
        let other = s.other_fs("other").display().to_string();
        s.dir("other/u");
        s.dir("other/w");
        let mut paths: Vec<String> = ["l1", "l2", "l3", "u", "w", "u2", "w2", "l1/sub", "file", "missing", "other/u", "other/w", "u/../w"]
            .iter()
            .map(|p| format!("{r}/{p}"))
            .collect();
        paths.extend([other, r.clone(), "/".into(), ".".into(), "..".into(), String::new(), format!("{r}/l1/"), format!("{r}//l2")]);
        paths.push(format!("{r}/{}", "n".repeat(300)));
        paths.push(format!("{r}/{}", "d/".repeat(2100)));
        Self { root: r, paths }
    }

    fn path(&self, rng: &mut XorShift) -> String {
        self.paths[rng.below(self.paths.len())].clone()
    }
}

/// Options of a union that mounts: one to three of the lower layers, maybe an upper layer
/// with its work directory, and some of the feature options in forms unionrs accepts.
fn valid_options(rng: &mut XorShift, root: &str) -> String {
    let mut lowers = vec!["l1", "l2", "l3"];
    lowers.truncate(1 + rng.below(3));
    let mut parts = vec![format!("lowerdir={}", lowers.iter().map(|l| format!("{root}/{l}")).collect::<Vec<_>>().join(":"))];
    match rng.below(3) {
        0 => parts.push(format!("upperdir={root}/u,workdir={root}/w")),
        1 => parts.push(format!("upperdir={root}/other/u,workdir={root}/other/w")),
        _ => {}
    }
    for opt in ["userxattr", "index=off", "xino=off", "xino=auto", "uuid=null", "uuid=on", "metacopy=off", "redirect_dir=nofollow"] {
        if rng.below(4) == 0 {
            parts.push(opt.to_string());
        }
    }
    parts.join(",")
}

/// One option string: random options, or a valid string with its bytes mutated.
fn options(rng: &mut XorShift, names: &Names) -> String {
    let mut parts: Vec<String> = Vec::new();
    if rng.below(3) == 0 {
        let valid = valid_options(rng, &names.root);
        return if rng.below(2) == 0 { valid } else { mutate(rng, &valid) };
    }
    if rng.below(4) == 0 {
        let (l1, l2, u, w) = (names.path(rng), names.path(rng), names.path(rng), names.path(rng));
        return mutate(rng, &format!("lowerdir={l1}:{l2},upperdir={u},workdir={w}"));
    }
    for _ in 0..rng.below(7) {
        let key = rng.pick(KEYS);
        let value = match key {
            "lowerdir" => {
                let n = 1 + rng.below(4);
                let sep = if rng.below(10) == 0 { "::" } else { ":" };
                Some((0..n).map(|_| names.path(rng)).collect::<Vec<_>>().join(sep))
            }
            "lowerdir+" | "upperdir" | "workdir" | "datadir+" => Some(names.path(rng)),
            "userxattr" | "default_permissions" | "volatile" | "override_creds" | "nooverride_creds" | "noindex" | "ro" => {
                (rng.below(5) == 0).then(|| rng.pick(WORDS).to_string())
            }
            _ => (rng.below(6) != 0).then(|| rng.pick(WORDS).to_string()),
        };
        parts.push(match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        });
    }
    let s = parts.join(",");
    if rng.below(3) == 0 {
        mutate(rng, &s)
    } else {
        s
    }
}

/// A few random byte edits that favour the characters the option syntax gives meaning to.
fn mutate(rng: &mut XorShift, s: &str) -> String {
    const SPECIAL: &[char] = &[',', ':', '\\', '=', '/', '.', ' ', '+', 'é'];
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(3) {
            0 => chars.insert(at, rng.pick(SPECIAL)),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = rng.pick(SPECIAL),
            _ => chars.push(rng.pick(SPECIAL)),
        }
    }
    chars.into_iter().collect()
}

/// Splits an option string on the commas that `mount -o` would split on (not escaped).
fn split_options(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut escaped) = (vec![], 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    out.push(&s[start..]);
    out
}

#[derive(Default)]
struct Tally {
    mounted: usize,
    errors: BTreeMap<i32, usize>,
    findings: Vec<String>,
}

impl Tally {
    fn error(&mut self, how: &str, opts: &str, e: i32) {
        *self.errors.entry(e).or_default() += 1;
        if !CLEAN_ERRORS.contains(&e) && self.findings.len() < 10 {
            self.findings.push(format!("{how} with {opts:?} gave {}", errno_name(e)));
        }
    }
}

/// Through mount(2): a refusal must be clean, a mount must list its root and unmount.
fn through_mount(t: &mut Tally, mnt: &std::path::Path, opts: &str, flags: libc::c_ulong) {
    let r = sys::mount("none", mnt, "unionrs", flags, opts);
    if r != 0 {
        t.error("mount(2)", opts, r);
        return;
    }
    t.mounted += 1;
    if let Err(e) = fs::read_dir(mnt).map(|d| d.count()) {
        t.findings.push(format!("the union mounted with {opts:?} cannot be listed: {e}"));
    }
    let r = sys::umount(mnt);
    if r != 0 {
        t.findings.push(format!("the union mounted with {opts:?} does not unmount: {}", errno_name(r)));
        while sys::umount(mnt) == 0 {}
    }
}

/// Through fsopen()/fsconfig(): each option on its own, then the superblock.
fn through_fsconfig(t: &mut Tally, opts: &str) {
    let fc = match FsContext::open("unionrs") {
        Ok(fc) => fc,
        Err(e) => {
            t.findings.push(format!("fsopen: {}", errno_name(e)));
            return;
        }
    };
    for opt in split_options(opts).into_iter().filter(|o| !o.is_empty()) {
        let r = match opt.split_once('=') {
            Some((k, v)) => fc.set(k, Some(v)),
            None => fc.set(opt, None),
        };
        if r != 0 {
            t.error("fsconfig", opts, r);
            return;
        }
    }
    let r = fc.create();
    if r != 0 {
        t.error("fsconfig create", opts, r);
    } else {
        t.mounted += 1;
    }
    fc.messages();
}

fn mount_options() -> TestResult {
    let attempts = match crate::tier() {
        crate::Tier::Fast => FAST_ATTEMPTS,
        crate::Tier::Full => FULL_ATTEMPTS,
    };
    let seed = seed_or(DEFAULT_SEED);
    let mut s = Scratch::new("fuzz_options");
    let names = Names::new(&mut s);
    let mnt = s.dir("mnt");
    let mut rng = XorShift::seeded(seed);
    let mut t = Tally::default();
    let mut kmsg = Kmsg::new();
    kmsg.read_new();
    let mut reports = vec![];
    {
        let _quiet = QuietConsole::new();
        for i in 0..attempts {
            let opts = options(&mut rng, &names);
            if rng.below(2) == 0 {
                let flags = rng.pick(&[0, 0, libc::MS_RDONLY, libc::MS_NOATIME, libc::MS_NOSUID | libc::MS_NODEV]);
                through_mount(&mut t, &mnt, &opts, flags);
            } else {
                through_fsconfig(&mut t, &opts);
            }
            // A volatile mount's marker would refuse every later mount of its upper layer
            // (as it must): remove it, as a user who knows there was no crash would.
            if opts.contains("volatile") {
                for p in names.paths.iter().filter(|p| p.starts_with(&names.root)) {
                    let _ = fs::remove_dir_all(std::path::Path::new(p).join("work/incompat"));
                }
            }
            if (i + 1) % 500 == 0 {
                // Read the log as we go: the buffer would not hold a whole run.
                let log = kmsg.read_new();
                reports.extend(kernel_reports(&log));
                if (i + 1) % 10_000 == 0 {
                    progress(&format!("fuzz.mount_options: {} attempts, {} mounted", i + 1, t.mounted));
                }
            }
        }
        reports.extend(kernel_reports(&kmsg.read_new()));
    }
    let errors: Vec<String> = t.errors.iter().map(|(e, n)| format!("{}: {n}", errno_name(*e))).collect();
    println!("unionrs-fuzz: mount_options: seed {seed:#x}, {attempts} attempts, {} mounted, refused: {}", t.mounted, errors.join(" "));
    check!(reports.is_empty(), "kernel reports during the run (seed {seed:#x}):\n{}", reports.join("\n"));
    check!(t.findings.is_empty(), "seed {seed:#x}:\n{}", t.findings.join("\n"));
    // A fuzzer that never mounts or never gets refused explores nothing.
    check!(t.mounted > attempts / 50, "only {} of {attempts} attempts mounted: the generator is too far off", t.mounted);
    check!(t.errors.values().sum::<usize>() > attempts / 10, "few attempts were refused: the generator is too tame");
    Ok(())
}
