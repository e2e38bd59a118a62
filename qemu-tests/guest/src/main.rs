//! unionrs guest tests: run inside the QEMU guest by qemu-tests/run (through scripts/vm),
//! with the module loaded.
//!
//!   unionrs-guest-tests [--tier fast|full] [substring-filter ...]
//!   unionrs-guest-tests [--tier fast|full] --exact NAME ...   (one shard of qemu-tests/run)
//!   unionrs-guest-tests --list [--tier fast|full] [substring-filter ...]
//!   unionrs-guest-tests --make-fixture NAME DIR
//!   unionrs-guest-tests [--tier fast|full] --in-userns WHAT DIR   (rootless.rs' and pjdfstest.rs' child)
//!
//! A run first prints the tests it is going to run, one `unionrs-test: plan <name>` line each,
//! so that the host can tell a test that never reported (the guest died) from one that was not
//! selected. Then each test prints one line:
//!   unionrs-test: ok <name>
//!   unionrs-test: FAIL <name>: <what differed>
//! and the run ends with `unionrs-test: summary passed=N failed=M` (its end marker).
//! The fast tier (`make check`) runs every test at sizes chosen to catch regressions; the full
//! tier (`make check-full`) adds the full-size variants, which read fixture images that
//! scripts/build-fixture made with `--make-fixture`.

mod fixture;
mod fuzz;
mod fuzz_layers;
mod hardening;
mod identity;
mod idmapped;
mod live_layers;
mod metacopy;
mod module_load;
mod mount_options;
mod oci;
mod pjdfstest;
mod podman;
mod readonly;
mod redirect;
mod rootless;
mod sync_modes;
mod sys;
mod tree;
mod trees;
mod util;
mod writable;

use std::panic;
use std::path::{Path, PathBuf};

/// A test returns Err(description of the first wrong observation).
pub type TestResult = Result<(), String>;

/// Fails the test with a message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Prints how far a slow test has got (with the time since the run started), so that a
/// console log shows where the time goes.
pub fn progress(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(std::time::Instant::now).elapsed();
    println!("unionrs-progress: {:>8.1}s {what}", t.as_secs_f64());
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tier {
    /// `make check`: every behaviour, at sizes chosen to catch regressions.
    Fast,
    /// `make check-full`: the fast tier plus the full-size variants.
    Full,
}

static TIER: std::sync::OnceLock<Tier> = std::sync::OnceLock::new();

/// The tier of this run (tests that scale with it ask here).
pub fn tier() -> Tier {
    *TIER.get().unwrap_or(&Tier::Fast)
}

/// Where guest-run.sh mounted fixture image `name` (read-only); an error if it is not there,
/// which fails the test that needs it: a missing fixture is never a pass.
pub fn fixture_dir(name: &str) -> Result<PathBuf, String> {
    let dir = Path::new("/fixtures").join(name);
    if dir.join(trees::FIXTURE_COMPLETE).exists() {
        Ok(dir)
    } else {
        Err(format!("fixture image {name} is not mounted at {} (scripts/build-fixture makes it)", dir.display()))
    }
}

pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
    /// Runs only in the full tier.
    pub full_only: bool,
}

impl Test {
    /// A test of both tiers.
    pub const fn new(name: &'static str, run: fn() -> TestResult) -> Self {
        Self { name, run, full_only: false }
    }

    /// A full-size variant, run by `make check-full` only.
    pub const fn full_only(name: &'static str, run: fn() -> TestResult) -> Self {
        Self { name, run, full_only: true }
    }
}

fn all_tests() -> Vec<Test> {
    let mut tests: Vec<Test> = Vec::new();
    tests.extend(mount_options::tests());
    tests.extend(readonly::tests());
    tests.extend(writable::tests());
    tests.extend(rootless::tests());
    tests.extend(identity::tests());
    tests.extend(redirect::tests());
    tests.extend(metacopy::tests());
    tests.extend(oci::tests());
    tests.extend(podman::tests());
    tests.extend(live_layers::tests());
    tests.extend(sync_modes::tests());
    tests.extend(idmapped::tests());
    tests.extend(hardening::tests());
    tests.extend(fuzz::tests());
    tests.extend(fuzz_layers::tests());
    tests.extend(pjdfstest::tests());
    // Unloading the module must come last: it reloads it, but keep the rest independent of that.
    tests.extend(module_load::tests());
    tests
}

fn usage() -> ! {
    eprintln!("usage: unionrs-guest-tests [--list] [--tier fast|full] [--exact] [filter ...] | --make-fixture NAME DIR");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let (mut tier, mut list, mut filters) = (Tier::Fast, false, Vec::<String>::new());
    // --exact: the filters are whole test names (the host splits the tests between boots).
    let mut exact = false;
    let mut in_userns: Option<(String, PathBuf)> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--make-fixture" => {
                let (Some(name), Some(dir)) = (args.next(), args.next()) else { usage() };
                match trees::make_fixture(&name, Path::new(&dir)) {
                    Ok(()) => println!("unionrs-fixture: built {name}"),
                    Err(e) => {
                        println!("unionrs-fixture: FAIL {name}: {e}");
                        std::process::exit(1);
                    }
                }
                return;
            }
            "--tier" => {
                tier = match args.next().as_deref() {
                    Some("fast") => Tier::Fast,
                    Some("full") => Tier::Full,
                    _ => usage(),
                }
            }
            "--list" => list = true,
            "--exact" => exact = true,
            // A rootless test's child (rootless.rs starts it in a user namespace).
            "--in-userns" => {
                let (Some(what), Some(dir)) = (args.next(), args.next()) else { usage() };
                in_userns = Some((what, PathBuf::from(dir)));
            }
            f if f.starts_with("--") => usage(),
            f => filters.push(f.to_string()),
        }
    }
    let _ = TIER.set(tier);
    if let Some((what, dir)) = in_userns {
        rootless::child(&what, &dir);
    }

    let selected: Vec<Test> = all_tests()
        .into_iter()
        .filter(|t| tier == Tier::Full || !t.full_only)
        .filter(|t| filters.is_empty() || filters.iter().any(|f| if exact { t.name == f.as_str() } else { t.name.contains(f.as_str()) }))
        .collect();
    if list {
        selected.iter().for_each(|t| println!("{}", t.name));
        return;
    }
    progress(&format!("start ({tier:?} tier)"));
    for t in &selected {
        println!("unionrs-test: plan {}", t.name);
    }
    let (mut passed, mut failed) = (0, 0);
    for t in &selected {
        let started = std::time::Instant::now();
        let outcome = panic::catch_unwind(t.run).unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("unionrs-test: ok {}", t.name);
            }
            Err(why) => {
                failed += 1;
                println!("unionrs-test: FAIL {}: {}", t.name, why.replace('\n', " | "));
            }
        }
        // What each test costs, for sizing the tiers (the host collects them in
        // logs/test-times.txt).
        println!("unionrs-test: time {} {:.1}", t.name, started.elapsed().as_secs_f64());
    }
    println!("unionrs-test: summary passed={passed} failed={failed}");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
