//! unionrs guest tests: run inside the QEMU guest by qemu-tests/run (through scripts/vm),
//! with the module loaded. Each test prints one line:
//!   unionrs-test: ok <name>
//!   unionrs-test: FAIL <name>: <what differed>
//! and the run ends with `unionrs-test: summary passed=N failed=M`.
//! Usage: unionrs-guest-tests [substring-filter ...]

mod fixture;
mod module_load;
mod mount_options;
mod readonly;
mod sys;
mod util;
mod writable;

use std::panic;

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

pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let mut tests: Vec<Test> = Vec::new();
    tests.extend(mount_options::tests());
    tests.extend(readonly::tests());
    tests.extend(writable::tests());
    // Unloading the module must come last: it reloads it, but keep the rest independent of that.
    tests.extend(module_load::tests());

    let (mut passed, mut failed) = (0, 0);
    progress("start");
    for t in tests.iter().filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str()))) {
        let outcome = panic::catch_unwind(t.run).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
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
    }
    println!("unionrs-test: summary passed={passed} failed={failed}");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
