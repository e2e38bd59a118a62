//! Helpers the test modules share: relative paths as bytes, errnos, verdicts, a PRNG.

use crate::TestResult;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// At most this many differences are reported per test.
pub const MAX_REPORTED: usize = 20;

/// `root/rel`, where `rel` is a path relative to root as bytes ("" is the root itself).
pub fn bpath(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// A relative path for messages, with odd bytes escaped.
pub fn show(rel: &[u8]) -> String {
    if rel.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", rel.escape_ascii())
    }
}

/// `dir/name` as a relative path.
pub fn join_rel(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// The relative path of the directory containing `rel`.
pub fn parent_rel(rel: &[u8]) -> &[u8] {
    rel.iter().rposition(|b| *b == b'/').map_or(&[][..], |i| &rel[..i])
}

pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// How two byte strings differ, without printing them whole.
pub fn bytes_diff(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!("{} vs {} bytes, first difference at offset {at}", a.len(), b.len())
}

/// Turns a list of differences into the test's verdict, reporting at most MAX_REPORTED.
pub fn verdict(diffs: Vec<String>) -> TestResult {
    if diffs.is_empty() {
        return Ok(());
    }
    Err(first_lines(&diffs))
}

/// The verdict of a side-by-side run: `ours` must have seen at each step (a description and
/// an outcome) what `reference` (overlayfs) saw.
pub fn same_steps<T: PartialEq + std::fmt::Debug>(reference: &[(String, T)], ours: &[(String, T)]) -> TestResult {
    let mut diffs: Vec<String> = reference
        .iter()
        .zip(ours)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| format!("{}: overlayfs {:?}, unionrs {:?}", a.0, a.1, b.1))
        .collect();
    if reference.len() != ours.len() {
        diffs.push(format!("overlayfs took {} steps, unionrs {}", reference.len(), ours.len()));
    }
    verdict(diffs)
}

/// The first MAX_REPORTED differences, one per line, and how many more there are.
pub fn first_lines(diffs: &[String]) -> String {
    let mut msg = diffs.iter().take(MAX_REPORTED).cloned().collect::<Vec<_>>().join("\n");
    if diffs.len() > MAX_REPORTED {
        msg.push_str(&format!("\n... and {} more", diffs.len() - MAX_REPORTED));
    }
    msg
}

/// A tiny deterministic PRNG (xorshift64), so that a run can be reproduced from its seed.
pub struct XorShift(pub u64);

impl XorShift {
    /// From a seed; 0 (which xorshift cannot leave) becomes a fixed non-zero state.
    pub fn seeded(seed: u64) -> Self {
        Self(if seed == 0 { 0x2545_f491_4f6c_dd1d } else { seed })
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}
