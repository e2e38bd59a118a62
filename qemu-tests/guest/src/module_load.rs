//! Module lifetime: unload is refused while a union is mounted and clean afterwards.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::{check, Test, TestResult};
use std::fs;

pub fn tests() -> Vec<Test> {
    vec![Test::new("module.unload_refused_while_mounted", unload_refused_while_mounted)]
}

fn registered() -> bool {
    fs::read_to_string("/proc/filesystems").map(|f| f.lines().any(|l| l == "nodev\tunionrs")).unwrap_or(false)
}

fn loaded() -> bool {
    fs::read_to_string("/proc/modules").map(|m| m.lines().any(|l| l.starts_with("unionrs "))).unwrap_or(false)
}

fn unload_refused_while_mounted() -> TestResult {
    let module = std::env::var("UNIONRS_MODULE").map_err(|_| "UNIONRS_MODULE not set".to_string())?;
    check!(loaded() && registered(), "module not loaded at start");
    let mut s = Scratch::new("unload");
    let (l1, l2, mnt) = (s.dir("l1"), s.dir("l2"), s.dir("mnt"));
    let rc = sys::mount("none", &mnt, "unionrs", 0, &format!("lowerdir={}:{}", l1.display(), l2.display()));
    check!(rc == 0, "mount: {}", errno_name(rc));
    s.track(&mnt);

    let rc = sys::delete_module("unionrs");
    check!(rc == libc::EAGAIN || rc == libc::EBUSY, "delete_module while mounted gave {}, want EAGAIN/EBUSY", errno_name(rc));
    check!(loaded() && registered(), "module gone after a refused unload");
    check!(fs::read_dir(&mnt).is_ok(), "mount unusable after a refused unload");

    check!(sys::umount(&mnt) == 0, "umount: {}", errno_name(sys::errno()));
    let rc = sys::delete_module("unionrs");
    check!(rc == 0, "delete_module after umount gave {}", errno_name(rc));
    check!(!loaded() && !registered(), "module still listed after unload");
    let rc = sys::mount("none", &mnt, "unionrs", 0, &format!("lowerdir={}", l1.display()));
    check!(rc == libc::ENODEV, "mount without the module gave {}, want ENODEV", errno_name(rc));

    let rc = sys::load_module(&module);
    check!(rc == 0, "reloading {module}: {}", errno_name(rc));
    check!(registered(), "not registered after reload");
    Ok(())
}
