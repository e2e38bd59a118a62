//! Module lifetime: unload is refused while a union is mounted and clean afterwards; the
//! module parameters set the defaults as overlayfs' do.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::{check, Test, TestResult};
use std::fs;
use std::os::unix::fs::PermissionsExt;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("module.unload_refused_while_mounted", unload_refused_while_mounted),
        Test::new("module.parameter_defaults", parameter_defaults),
    ]
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

    let rc = sys::load_module(&module, "");
    check!(rc == 0, "reloading {module}: {}", errno_name(rc));
    check!(registered(), "not registered after reload");
    Ok(())
}

/// overlayfs' parameters that set defaults (built in: changed through sysfs), with the
/// values to restore.
const OVERLAY_PARAMS: &[(&str, &str)] = &[
    ("redirect_dir", "N"),
    ("redirect_always_follow", "Y"),
    ("redirect_max", "256"),
    ("index", "N"),
    ("nfs_export", "N"),
    ("xino_auto", "N"),
    ("metacopy", "N"),
];

fn set_overlay_param(name: &str, value: &str) -> TestResult {
    let p = format!("/sys/module/overlay/parameters/{name}");
    fs::write(&p, value).map_err(|e| format!("writing {value} to {p}: {e}"))
}

/// Puts overlayfs' parameters back and reloads unionrs without parameters, however the test
/// ends.
struct RestoreDefaults(String);

impl Drop for RestoreDefaults {
    fn drop(&mut self) {
        for (name, value) in OVERLAY_PARAMS {
            let _ = set_overlay_param(name, value);
        }
        if loaded() {
            let _ = sys::delete_module("unionrs");
        }
        let _ = sys::load_module(&self.0, "");
    }
}

/// The options a mount shows in mountinfo, without the layers' paths.
fn shown_options(mnt: &std::path::Path) -> Result<String, String> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let line = info.lines().find(|l| l.split(' ').nth(4) == mnt.to_str()).ok_or(format!("{} not in mountinfo", mnt.display()))?;
    let opts = line.rsplit(' ').next().unwrap_or("");
    let layer = |o: &&str| ["lowerdir=", "lowerdir+=", "upperdir=", "workdir="].iter().any(|k| o.starts_with(k));
    Ok(opts.split(',').filter(|o| !layer(o)).collect::<Vec<_>>().join(","))
}

/// With each set of module parameters (overlayfs' set the same way through sysfs), the same
/// option strings mount (or fail) alike and show the same options in mountinfo; directory
/// renames follow `redirect_dir` and `redirect_max`.
fn parameter_defaults() -> TestResult {
    let module = std::env::var("UNIONRS_MODULE").map_err(|_| "UNIONRS_MODULE not set".to_string())?;
    check!(loaded() && registered(), "module not loaded at start");
    let _restore = RestoreDefaults(module.clone());
    let mut s = Scratch::new("modparams");
    let other = s.other_fs("lower_fs");
    let mut problems = vec![];
    // (unionrs' parameters, overlayfs' parameters)
    let sets: [(&str, &[(&str, &str)]); 3] = [
        ("", &[]),
        (
            "redirect_dir=1 index=1 xino_auto=1 redirect_max=12 metacopy=1",
            &[("redirect_dir", "Y"), ("index", "Y"), ("xino_auto", "Y"), ("redirect_max", "12"), ("metacopy", "Y")],
        ),
        ("redirect_always_follow=0 nfs_export=1", &[("redirect_always_follow", "N"), ("nfs_export", "Y")]),
    ];
    let option_strings = [
        "",
        "redirect_dir=off",
        "redirect_dir=follow",
        "redirect_dir=on",
        "redirect_dir=nofollow",
        "index=on",
        "index=off",
        "nfs_export=on",
        "nfs_export=off",
        "xino=off",
        "xino=auto",
        "xino=on",
        "userxattr",
        "userxattr,nfs_export=on",
        "uuid=off",
        "uuid=null",
        "uuid=on",
        "uuid=auto",
        "metacopy=on",
        "metacopy=off",
        "metacopy=on,redirect_dir=off",
        "metacopy=on,redirect_dir=nofollow",
        "redirect_dir=follow,metacopy=on",
        "metacopy=on,nfs_export=on",
        "metacopy=on,index=on",
        "userxattr,metacopy=on",
        "verity=on",
        "verity=require,metacopy=on",
        "verity=on,nfs_export=on",
    ];
    for (n, (ours, theirs)) in sets.iter().enumerate() {
        for (name, value) in OVERLAY_PARAMS {
            set_overlay_param(name, value)?;
        }
        for (name, value) in theirs.iter() {
            set_overlay_param(name, value)?;
        }
        if n > 0 {
            check!(sys::delete_module("unionrs") == 0, "unloading unionrs: {}", errno_name(sys::errno()));
            let rc = sys::load_module(&module, ours);
            check!(rc == 0, "loading unionrs with '{ours}': {}", errno_name(rc));
        }
        for (i, extra) in option_strings.iter().enumerate() {
            for upper in [true, false] {
                let mut shown = vec![];
                for fs_type in ["overlay", "unionrs"] {
                    let tag = format!("{n}-{i}-{upper}-{fs_type}");
                    let lower = other.join(format!("l-{tag}"));
                    let (l2, u, w, mnt) =
                        (s.dir(&format!("l2-{tag}")), s.dir(&format!("u-{tag}")), s.dir(&format!("w-{tag}")), s.dir(&format!("m-{tag}")));
                    crate::trees::Layer::at(&lower).file("dir/with/a/long/path/f", b"f\n")?;
                    let mut opts = match upper {
                        true => format!("lowerdir={},upperdir={},workdir={}", lower.display(), u.display(), w.display()),
                        false => format!("lowerdir={}:{}", lower.display(), l2.display()),
                    };
                    if !extra.is_empty() {
                        opts = format!("{opts},{extra}");
                    }
                    let rc = sys::mount("none", &mnt, fs_type, 0, &opts);
                    if rc != 0 {
                        shown.push(format!("mount fails with {}", errno_name(rc)));
                        continue;
                    }
                    s.track(&mnt);
                    let mut what = shown_options(&mnt)?;
                    if upper {
                        // What the parameters decide about directory renames: on or EXDEV,
                        // and an absolute redirect longer than redirect_max.
                        let rename = |from: &str, to: &str| {
                            let r = fs::rename(mnt.join(from), mnt.join(to));
                            r.map_or_else(|e| errno_name(e.raw_os_error().unwrap_or(0)), |_| "ok".to_string())
                        };
                        // Whether a chmod copies the metadata only (metacopy).
                        let chmod = fs::set_permissions(mnt.join("dir/with/a/long/path/f"), fs::Permissions::from_mode(0o600));
                        let meta = sys::lgetxattr(&u.join("dir/with/a/long/path/f"), b"trusted.overlay.metacopy");
                        what = format!("{what}; chmod: {}, metacopy: {}", chmod.is_ok(), meta.is_ok());
                        what = format!("{what}; rename dir: {}", rename("dir", "dir2"));
                        what = format!("{what}; move dir2/with/a/long: {}", rename("dir2/with/a/long", "long"));
                    }
                    shown.push(what);
                    let rc = sys::umount(&mnt);
                    check!(rc == 0, "unmounting {fs_type}: {}", errno_name(rc));
                }
                if shown[0] != shown[1] {
                    problems.push(format!(
                        "parameters '{ours}', options '{extra}'{}: overlayfs '{}', unionrs '{}'",
                        if upper { "" } else { " (lower only)" },
                        shown[0],
                        shown[1]
                    ));
                }
            }
        }
    }
    crate::util::verdict(problems)
}
