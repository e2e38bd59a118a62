//! podman on unionrs: containers/storage's overlay driver with `mount_program` set to
//! scripts/unionrs-mount-program (which mounts unionrs with `whiteout=oci`: with a mount
//! program the driver keeps the layers' OCI whiteouts as they are), against the same driver on
//! the kernel's overlayfs. The same image is imported offline from a root tree, a container
//! writes, deletes and renames, then `podman diff`, the committed layer and a second
//! container from the committed image must be the same on both. Then the same again rootless:
//! podman run by a user without privileges (uid 1000, with subordinate ids that uidmap's
//! newuidmap maps into podman's user namespace), where overlayfs is mounted in that namespace
//! and the mount program mounts unionrs there (adding `userxattr`).

use crate::fixture::Scratch;
use crate::util::verdict;
use crate::writable::{fstype_under_test, mkdirs};
use crate::{check, progress, Test, TestResult};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![Test::full_only("containers.podman", || podman(false)), Test::full_only("containers.podman_rootless", || podman(true))]
}

const MOUNT_PROGRAM: &str = "/host/scripts/unionrs-mount-program";
const IMAGE: &str = "localhost/unionrs-test:base";
const COMMITTED: &str = "localhost/unionrs-test:committed";

/// What the container does: writes, appends, deletes a file and a directory, renames a
/// directory of the image, makes a directory where one was deleted.
const CHANGES: &str = "echo new > /new && echo more >> /etc/keep && rm /etc/old && rm -r /d/x \
    && mv /a /b && mkdir /d/x && echo again > /d/x/f && ln -s /b/file /link && ln /etc/keep /hard";

/// What the second container prints: every path of its root with type, mode and size, and
/// the contents of the files the first one changed.
const LOOK: &str = "cd / && find . -xdev ! -path './proc*' ! -path './sys*' ! -path './dev*' ! -path './run*' \
    -exec stat -c '%n %F %a %s %h' {} + | sort && cat /new /etc/keep /d/x/f /link \
    && echo '--- mounts' && cat /proc/mounts";

/// The line of LOOK that separates what the second container sees of its tree from its mount
/// table, from which the test reads the type of its root: the union the setup is about.
const ROOTFS_MARK: &str = "--- mounts";

/// The user of the rootless runs (the guest image gives it subordinate ids in /etc/subuid
/// and /etc/subgid).
const ROOTLESS_UID: u32 = 1000;
const ROOTLESS_HOME: &str = "/home/rootless";

/// One podman setup: its own storage root and run root, on `fstype`; `rootless`: run by
/// ROOTLESS_UID with `xdg_runtime` as its XDG_RUNTIME_DIR.
struct Podman {
    root: PathBuf,
    runroot: PathBuf,
    union: bool,
    /// What the containers' root is mounted as: overlay, or the filesystem under test.
    fstype: String,
    rootless: Option<PathBuf>,
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match &self.rootless {
            None => Command::new("podman"),
            Some(xdg_runtime) => {
                let mut c = Command::new("setpriv");
                c.args([&format!("--reuid={ROOTLESS_UID}"), &format!("--regid={ROOTLESS_UID}"), "--init-groups", "podman"]);
                c.env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("HOME", ROOTLESS_HOME)
                    .env("USER", "rootless")
                    .env("LOGNAME", "rootless")
                    .env("XDG_RUNTIME_DIR", xdg_runtime)
                    .current_dir(ROOTLESS_HOME);
                c
            }
        };
        c.arg("--root").arg(&self.root).arg("--runroot").arg(&self.runroot);
        c.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        // redirect_dir=on on both: the driver then computes diffs by comparing trees on
        // overlayfs too (its probe finds directory renames recorded as redirects), as it
        // always does with a mount program; with its native diff instead, it would record
        // a directory made again where one was deleted as opaque there and as whiteouts of
        // the old names here, two encodings of the same change.
        // Rootless, overlayfs needs userxattr, with which it makes no redirects (and refuses
        // redirect_dir=on): the driver is made to take its tree-comparing diff there by the
        // answer of its native-diff probe, stored before the first run (see `rootless_setup`).
        if self.rootless.is_none() {
            c.args(["--storage-opt", "overlay.mountopt=redirect_dir=on"]);
        }
        if self.union {
            c.args(["--storage-opt", &format!("overlay.mount_program={MOUNT_PROGRAM}")]);
        }
        c.args(args);
        c
    }

    /// `podman run` of `script` in a container `name` of `image`. Rootless, without cgroups: no
    /// systemd here delegates a cgroup to the user.
    fn run_args<'a>(&self, name: &'a str, image: &'a str, script: &'a str) -> Vec<&'a str> {
        let mut args = vec!["run", "--name", name, "--network", "none"];
        if self.rootless.is_some() {
            args.push("--cgroups=disabled");
        }
        args.extend([image, "/bin/sh", "-c", script]);
        args
    }

    /// Runs podman; its stdout, or an error with its stderr.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut c = self.cmd(args);
        let out = c.output().map_err(|e| format!("podman {args:?}: {e}"))?;
        check!(out.status.success(), "podman {} ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim_end());
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The image's root tree: busybox (static) and its applets, files and directories that the
/// container changes.
fn build_root(root: &Path) -> TestResult {
    for d in ["bin", "etc", "a/sub", "d/x", "d/y", "tmp", "proc", "sys", "dev", "run"] {
        mkdirs(&root.join(d))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    for applet in ["sh", "echo", "rm", "mv", "mkdir", "ln", "cat", "find", "stat", "sort"] {
        symlink("busybox", root.join("bin").join(applet)).map_err(|e| format!("symlink {applet}: {e}"))?;
    }
    let files = [
        ("etc/keep", "keep\n"),
        ("etc/old", "old\n"),
        ("a/file", "a\n"),
        ("a/sub/f2", "f2\n"),
        ("d/x/gone", "gone\n"),
        ("d/y/stay", "stay\n"),
    ];
    for (p, content) in files {
        fs::write(root.join(p), content).map_err(|e| format!("write {p}: {e}"))?;
    }
    Ok(())
}

/// The committed image's top layer as `tar -tv` lists it, sorted, without times (the files
/// were made at different times on the two setups).
fn committed_layer(p: &Podman, dir: &Path) -> Result<Vec<String>, String> {
    mkdirs(dir)?;
    let archive = dir.join("image.tar");
    p.run(&["save", "--format", "docker-archive", "-o", &archive.display().to_string(), COMMITTED])?;
    let out = Command::new("tar").arg("-C").arg(dir).arg("-xf").arg(&archive).output().map_err(|e| format!("tar: {e}"))?;
    check!(out.status.success(), "unpacking the saved image: {}", String::from_utf8_lossy(&out.stderr));
    let manifest = fs::read_to_string(dir.join("manifest.json")).map_err(|e| format!("manifest.json: {e}"))?;
    // [{"Config":"...","RepoTags":[...],"Layers":["a.tar","b.tar"]}]: the last layer.
    let layers = manifest.split("\"Layers\":[").nth(1).and_then(|s| s.split(']').next()).ok_or("no Layers in manifest.json")?;
    let top = layers.split('"').filter(|s| !s.is_empty() && *s != ",").last().ok_or("no layer in manifest.json")?;
    let out = Command::new("tar").arg("-tvf").arg(dir.join(top)).output().map_err(|e| format!("tar -tv: {e}"))?;
    check!(out.status.success(), "listing the committed layer: {}", String::from_utf8_lossy(&out.stderr));
    // "-rw-r--r-- 0/0 4 2026-12-03 09:00 ./new": mode, owner, size, name (and link target).
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let keep = f.iter().take(3).chain(f.iter().skip(5));
            keep.copied().collect::<Vec<_>>().join(" ")
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// Everything the scenario observes on one setup, in order, as (what, output).
fn scenario(p: &Podman, base_tar: &Path, save_dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut seen = Vec::new();
    p.run(&["import", &base_tar.display().to_string(), IMAGE])?;
    progress("  run: changes");
    p.run(&p.run_args("c1", IMAGE, CHANGES))?;
    if p.rootless.is_some() && !p.union {
        naive_diff_kept(p)?;
    }
    let mut diff: Vec<String> = p.run(&["diff", "c1"])?.lines().map(str::to_string).collect();
    diff.sort();
    seen.push(("podman diff c1".to_string(), diff.join("\n")));
    p.run(&["commit", "c1", COMMITTED])?;
    seen.push(("the committed layer (tar -tv)".to_string(), committed_layer(p, save_dir)?.join("\n")));
    progress("  run: the committed image");
    let out = p.run(&p.run_args("c2", COMMITTED, LOOK))?;
    let (look, mounts) =
        out.split_once(&format!("{ROOTFS_MARK}\n")).ok_or_else(|| format!("no mount table in the container's output:\n{out}"))?;
    let root_type = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 2 && f[1] == "/")
        .map(|f| f[2].to_string())
        .last();
    check!(
        root_type.as_deref() == Some(p.fstype.as_str()),
        "the container's root is {root_type:?}, not {} (its /proc/mounts:\n{mounts})",
        p.fstype
    );
    seen.push(("a container of the committed image".to_string(), look.to_string()));
    let mut diff2: Vec<String> = p.run(&["diff", COMMITTED])?.lines().map(str::to_string).collect();
    diff2.sort();
    seen.push(("podman diff of the committed image".to_string(), diff2.join("\n")));
    p.run(&["rm", "c1", "c2"])?;
    p.run(&["rmi", COMMITTED, IMAGE])?;
    Ok(seen)
}

/// podman's runtime (crun) puts each container in a cgroup of the unified hierarchy.
fn mount_cgroup2() -> TestResult {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let dir = Path::new("/sys/fs/cgroup");
    if crate::sys::statfs_type(dir) == Ok(CGROUP2_SUPER_MAGIC) {
        return Ok(());
    }
    mkdirs(dir)?;
    let rc = crate::sys::mount("cgroup2", dir, "cgroup2", 0, "");
    check!(rc == 0, "mount cgroup2 at /sys/fs/cgroup: {} (a guest kernel without CONFIG_CGROUPS?)", crate::sys::errno_name(rc));
    Ok(())
}

/// The runroot file where containers/storage keeps the answer of its native-diff probe for
/// the driver's mount options (none here): "native-diff()-true" or "...-false".
fn native_diff_answer(p: &Podman, supported: bool) -> PathBuf {
    p.runroot.join("overlay").join(format!("native-diff()-{supported}"))
}

/// Before the first rootless run on overlayfs: the native-diff probe answered "no", so that
/// `podman diff` and `commit` compare trees as they always do with a mount program.
fn rootless_setup(p: &Podman) -> TestResult {
    let dir = p.runroot.join("overlay");
    mkdirs(&dir)?;
    fs::write(native_diff_answer(p, false), "unionrs test: compare trees, as with a mount program")
        .map_err(|e| format!("write {}: {e}", native_diff_answer(p, false).display()))?;
    give_to_user(&p.runroot)
}

/// The stored answer was the one the driver read: the driver names the answer after its mount
/// options, and one that looked under another name would have probed and stored its own there.
fn naive_diff_kept(p: &Podman) -> TestResult {
    let answers: Vec<String> = fs::read_dir(p.runroot.join("overlay"))
        .map_err(|e| format!("reading {}: {e}", p.runroot.join("overlay").display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("native-diff"))
        .collect();
    let stored = native_diff_answer(p, false).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    check!(answers == [stored], "containers/storage did not read the stored native-diff answer: its runroot/overlay has {answers:?}");
    Ok(())
}

/// Gives `path` and everything under it to ROOTLESS_UID.
fn give_to_user(path: &Path) -> TestResult {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{ROOTLESS_UID}:{ROOTLESS_UID}"))
        .arg(path)
        .output()
        .map_err(|e| format!("chown: {e}"))?;
    check!(out.status.success(), "chown -R {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Ends what the rootless runs leave behind: podman's pause process holds the user and mount
/// namespaces (and so the unions mounted there) of that user.
fn end_rootless_processes() {
    let _ = Command::new("pkill").args(["-KILL", "-U", &ROOTLESS_UID.to_string()]).status();
    for _ in 0..50 {
        let alive = Command::new("pgrep").args(["-U", &ROOTLESS_UID.to_string()]).output().map(|o| o.status.success()).unwrap_or(false);
        if !alive {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn podman(rootless: bool) -> TestResult {
    let fstype = fstype_under_test();
    mount_cgroup2()?;
    let s = Scratch::new(if rootless { "podman-rootless" } else { "podman" });
    let tree = s.dir("tree");
    build_root(&tree)?;
    let base_tar = s.path("base.tar");
    let out = Command::new("tar").arg("-C").arg(&tree).arg("-cf").arg(&base_tar).arg(".").output().map_err(|e| format!("tar: {e}"))?;
    check!(out.status.success(), "tar of the root tree: {}", String::from_utf8_lossy(&out.stderr));
    let mut results = Vec::new();
    for (name, union) in [("overlayfs", false), (fstype.as_str(), true)] {
        progress(&format!("podman{} on {name}", if rootless { " (rootless)" } else { "" }));
        let p = Podman {
            root: s.dir(&format!("{name}/root")),
            runroot: s.dir(&format!("{name}/run")),
            union,
            fstype: if union { fstype.clone() } else { "overlay".to_string() },
            rootless: rootless.then(|| s.dir(&format!("{name}/xdg-runtime"))),
        };
        let save_dir = s.dir(&format!("{name}/save"));
        if rootless {
            give_to_user(&s.path(name))?;
            fs::set_permissions(s.path(&format!("{name}/xdg-runtime")), fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("chmod xdg-runtime: {e}"))?;
            if !union {
                rootless_setup(&p)?;
            }
        }
        let seen = scenario(&p, &base_tar, &save_dir);
        // Whatever happened, no mount of this setup stays behind.
        let _ = p.run(&["rm", "--all", "--force"]);
        let _ = p.run(&["system", "reset", "--force"]);
        if rootless {
            end_rootless_processes();
        }
        results.push((name.to_string(), seen?));
    }
    let (reference, ours) = (&results[0], &results[1]);
    let mut diffs = Vec::new();
    for ((what, a), (_, b)) in reference.1.iter().zip(ours.1.iter()) {
        if a != b {
            diffs.push(format!("{what}: {} gives\n{a}\n{} gives\n{b}", reference.0, ours.0));
        }
    }
    verdict(diffs)
}
