//! `whiteout=oci`: image layers as a plain `tar` unpacks them (`.wh.NAME` whiteouts,
//! `.wh..wh..opq` opaque markers, the OCI image spec's layer.md) mounted as they are, against
//! overlayfs over the same layers converted to its format, as container runtimes convert
//! them; the random-operation differential with it; the upper directory it writes read back as
//! an OCI layer.

use crate::fixture::Scratch;
use crate::sys::{self, errno_name};
use crate::tree::{diff_trees, walk, Cmp, Walk, WalkOpts};
use crate::trees::Layer;
use crate::util::verdict;
use crate::writable::{self, build_env, fstype_under_test, mkdirs, view_cmp, Op};
use crate::{check, progress, Test, TestResult};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("oci.layers_as_unpacked", layers_as_unpacked),
        Test::new("oci.random_ops", random_ops),
        Test::new("oci.upper_is_a_layer", upper_is_a_layer),
    ]
}

const WHITEOUT: &str = "whiteout=oci";

/// Three layers in OCI form, bottom first: whiteouts of files, directories and names that
/// are not there, opaque directories old and new, a whiteout and a new object of one name in
/// one layer.
fn build_oci_layers(raw: &[PathBuf; 3]) -> TestResult {
    let l0 = Layer::new(raw[0].clone())?;
    l0.file("a/x", "x0\n")?.file("a/y", "y0\n")?.file("a/keep", "keep0\n")?.file("b/z", "z0\n")?;
    l0.file("c", "c0\n")?.file("d/old1", "1\n")?.file("d/old2", "2\n")?.file("e", "e0\n")?;
    l0.file("dd/old", "old0\n")?.file("f/g/h", "h0\n")?.file("n/deep/file", "deep0\n")?.file("same", "same0\n")?.dir("emptydir")?;
    let l1 = Layer::new(raw[1].clone())?;
    l1.file("a/.wh.x", "")?.file(".wh.c", "")?.file("d/.wh..wh..opq", "")?.file("d/new1", "new1\n")?;
    l1.file("b/w", "w1\n")?.file(".wh.f", "")?.file("n/.wh.deep", "")?.file("a/.wh.nothing", "")?;
    // The same layer's own "same" is listed; the whiteout hides only what is below.
    l1.file(".wh.same", "")?.file("same", "same1\n")?.file(".wh.dd", "")?.file("dd/new", "new1\n")?;
    let l2 = Layer::new(raw[2].clone())?;
    l2.file("a/.wh.y", "")?.file("c/k", "k2\n")?.file("e", "e2\n")?.file("b/.wh..wh..opq", "")?.file("b/only", "only2\n")?;
    l2.file("f", "f2\n")?.file("h/.wh..wh..opq", "")?.file("n/deep/again", "again2\n")?;
    for (i, l) in raw.iter().enumerate() {
        crate::trees::stamp_times(l, 1_300_000_000 + 100_000 * i as i64, &[])?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> TestResult {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    check!(out.status.success(), "{cmd:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A layer directory through a tarball and back, with GNU tar (as an image is unpacked).
fn through_tar(from: &Path, tarball: &Path, to: &Path, xattrs: bool) -> TestResult {
    mkdirs(to)?;
    let x: &[&str] = if xattrs { &["--xattrs", "--xattrs-include=*"] } else { &[] };
    run(Command::new("tar").args(x).arg("-C").arg(from).arg("-cf").arg(tarball).arg("."))?;
    run(Command::new("tar").args(x).arg("-C").arg(to).arg("-xpf").arg(tarball))
}

/// Converts an unpacked OCI layer to overlayfs' format in place, as runtimes do: opaque
/// markers become `overlay.opaque`, whiteouts 0/0 character devices; directory times are
/// kept.
fn convert(root: &Path) -> TestResult {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let st = sys::lstat(&dir).map_err(|e| format!("lstat {}: {}", dir.display(), errno_name(e)))?;
        let mut names: Vec<_> = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name();
            let p = e.path();
            if name.as_bytes() == b".wh..wh..opq" {
                fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let r = sys::lsetxattr(&dir, "trusted.overlay.opaque", b"y");
                check!(r == 0, "opaque {}: {}", dir.display(), errno_name(r));
            } else if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
                fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let w = dir.join(std::ffi::OsStr::from_bytes(hidden));
                // A whiteout next to the same layer's own object of the name: that one stays,
                // and a directory hides what is below it.
                match sys::lstat(&w) {
                    Err(_) => {
                        let r = sys::mknod(&w, libc::S_IFCHR, 0);
                        check!(r == 0, "whiteout {}: {}", w.display(), errno_name(r));
                    }
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                        let r = sys::lsetxattr(&w, "trusted.overlay.opaque", b"y");
                        check!(r == 0, "opaque {}: {}", w.display(), errno_name(r));
                    }
                    Ok(_) => {}
                }
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            }
        }
        let r = sys::set_times(&dir, (st.st_atime, st.st_atime_nsec), (st.st_mtime, st.st_mtime_nsec));
        check!(r == 0, "times of {}: {}", dir.display(), errno_name(r));
    }
    Ok(())
}

/// The layers of `build_oci_layers` under `base`, each through a tarball unpacked twice with
/// GNU tar: as it is (OCI form) and converted to overlayfs' form. Top first, as lowerdir=.
fn unpacked_layers(base: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), String> {
    let raw = [0, 1, 2].map(|i| base.join(format!("raw{i}")));
    build_oci_layers(&raw)?;
    let (mut oci, mut conv) = (vec![], vec![]);
    for (i, r) in raw.iter().enumerate().rev() {
        let tarball = base.join(format!("layer{i}.tar"));
        let (o, c) = (base.join(format!("oci{i}")), base.join(format!("conv{i}")));
        through_tar(r, &tarball, &o, false)?;
        through_tar(r, &tarball, &c, false)?;
        convert(&c)?;
        oci.push(o);
        conv.push(c);
    }
    Ok((oci, conv))
}

fn mount_ro(fstype: &str, target: &Path, lowers: &[&Path], more: &str) -> TestResult {
    mkdirs(target)?;
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let opts = format!("lowerdir={}{more}", lower.join(":"));
    let r = sys::mount("none", target, fstype, libc::MS_RDONLY, &opts);
    check!(r == 0, "mounting {fstype} at {} with {opts}: {}", target.display(), errno_name(r));
    Ok(())
}

fn view(label: &str, root: &Path) -> Walk {
    walk(label, root, &WalkOpts { shallow: &[], probes: &[], dir_dino: false })
}

/// The differences of two views. A directory's size is its top layer's, where an OCI layer
/// has its markers as entries (a size per entry on tmpfs): not compared.
fn same_views(what: &str, reference: &Path, ours: &Path, mtimes: bool) -> Vec<String> {
    let times = |_: &[u8]| (false, mtimes);
    let cmp = view_cmp(&times);
    let without_dir_sizes = |mut w: Walk| {
        w.nodes.values_mut().filter(|n| n.st.st_mode & libc::S_IFMT == libc::S_IFDIR).for_each(|n| n.st.st_size = 0);
        w
    };
    diff_trees("overlayfs", &without_dir_sizes(view("overlayfs", reference)), what, &without_dir_sizes(view(what, ours)), &cmp)
}

/// The layers unpacked by tar, mounted by unionrs with `whiteout=oci` (all in OCI form, and
/// mixed with converted ones), against overlayfs over the converted layers; the markers never
/// show and cannot be made; `whiteout=` in /proc/mounts and its bad values.
fn layers_as_unpacked() -> TestResult {
    let fstype = fstype_under_test();
    let s = Scratch::new("oci_layers");
    let base = s.dir("oci");
    let (oci, conv) = unpacked_layers(&base)?;
    let mut diffs = vec![];
    let reference = base.join("m_ref");
    let conv_paths: Vec<&Path> = conv.iter().map(PathBuf::as_path).collect();
    mount_ro("overlay", &reference, &conv_paths, "")?;
    let mixed = vec![oci[0].clone(), conv[1].clone(), oci[2].clone()];
    for (label, layers) in [("oci", oci.clone()), ("mixed", mixed)] {
        let m = base.join(format!("m_{label}"));
        let paths: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
        mount_ro(&fstype, &m, &paths, &format!(",{WHITEOUT}"))?;
        diffs.extend(same_views(&format!("{fstype} {WHITEOUT} ({label} layers)"), &reference, &m, true));
        if label == "oci" {
            // The markers are the layers', not the union's.
            for p in ["a/.wh.x", ".wh.c", "d/.wh..wh..opq", "b/.wh..wh..opq", ".wh.same"] {
                let r = sys::lstat(&m.join(p)).err().unwrap_or(0);
                if r != libc::EPERM {
                    diffs.push(format!("lstat {p} in the union: {}, want EPERM", errno_name(r)));
                }
            }
            let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
            let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(&m.display().to_string()));
            if !line.is_some_and(|l| l.contains(",whiteout=oci")) {
                diffs.push(format!("/proc/mounts shows {line:?}, without whiteout=oci"));
            }
        }
        sys::umount(&m);
    }
    // Without the option, the markers are plain files, as overlayfs shows them.
    let plain = base.join("m_plain");
    let oci_paths: Vec<&Path> = oci.iter().map(PathBuf::as_path).collect();
    mount_ro(&fstype, &plain, &oci_paths, "")?;
    let plain_ref = base.join("m_plain_ref");
    mount_ro("overlay", &plain_ref, &oci_paths, "")?;
    diffs.extend(same_views(&format!("{fstype} without {WHITEOUT}"), &plain_ref, &plain, true));
    for m in [&plain, &plain_ref, &reference] {
        sys::umount(m);
    }
    // Bad values: a clear error.
    let bad = base.join("m_bad");
    mkdirs(&bad)?;
    for value in ["whiteout=", "whiteout=aufs", "whiteout=OCI"] {
        let r = sys::mount("none", &bad, &fstype, libc::MS_RDONLY, &format!("lowerdir={},{value}", oci[0].display()));
        if r != libc::EINVAL {
            diffs.push(format!("mount with {value}: {}, want EINVAL", errno_name(r)));
            if r == 0 {
                sys::umount(&bad);
            }
        }
    }
    verdict(diffs)
}

/// The random-operation differential, the union under test with `whiteout=oci` (its
/// deletions written in OCI form), both with `redirect_dir=on` (directories renamed onto
/// deleted names): the views are compared after every batch, the uppers are not (they differ
/// in form by design).
fn random_ops() -> TestResult {
    let fstype = fstype_under_test();
    let (seed, nops) = writable::variant_seed_and_ops();
    let mut s = Scratch::new("oci_random");
    let mut env = build_env(&mut s, &fstype)?;
    env.opts = "redirect_dir=on,index=off,metacopy=off,xino=off".to_string();
    env.test_opts = WHITEOUT.to_string();
    writable::random_ops_in(&env, seed ^ 0x0c1_0c1, nops)
}

/// Changes through a writable union with `whiteout=oci` over OCI layers: the upper holds OCI
/// whiteouts and markers only (no 0/0 devices), the view is overlayfs' after the same
/// changes over the converted layers, and the upper, archived by tar and unpacked as one more
/// layer, gives the same view again; so does umoci, given it as a layer by the export tool.
fn upper_is_a_layer() -> TestResult {
    let fstype = fstype_under_test();
    let mut s = Scratch::new("oci_upper");
    let base = s.dir("oci");
    // umoci unpacks onto ext4: on the guest's tmpfs it fails before any layer rule (it lists
    // the Smack label xattr that tmpfs does not store, then cannot remove it: ENODATA).
    let bundle_fs = crate::identity::loop_fs_at(&mut s, "bundle_fs", 64 << 20, &["mkfs.ext4", "-q", "-F"], "ext4")?;
    let (oci, conv) = unpacked_layers(&base)?;
    // overlayfs over the converted layers, unionrs over the OCI ones.
    let mnt = [base.join("ma"), base.join("mb")];
    for m in &mnt {
        mkdirs(m)?;
    }
    let opts = "index=off,redirect_dir=off,metacopy=off,xino=off";
    let upper_ref = (base.join("upper_ref"), base.join("work_ref"));
    let upper_test = (base.join("upper_test"), base.join("work_test"));
    for d in [&upper_ref.0, &upper_ref.1, &upper_test.0, &upper_test.1] {
        mkdirs(d)?;
    }
    writable::mount_union("overlay", &mnt[0], &conv, &upper_ref.0, &upper_ref.1, libc::MS_NOATIME, opts)?;
    writable::mount_union(&fstype, &mnt[1], &oci, &upper_test.0, &upper_test.1, libc::MS_NOATIME, &format!("{opts},{WHITEOUT}"))?;
    let mut diffs = vec![];
    let mut held: Vec<Option<std::os::fd::OwnedFd>> = (0..4).map(|_| None).collect();
    for op in &oci_ops() {
        let a = writable::apply(op, &mnt[0], &mut held);
        let b = writable::apply(op, &mnt[1], &mut held);
        if a != b {
            diffs.push(format!("{op}: overlayfs {a:?}, {fstype} {b:?}"));
        }
    }
    // The changes were made one union after the other: their times differ.
    diffs.extend(same_views(&format!("{fstype} {WHITEOUT} after the changes"), &mnt[0], &mnt[1], false));
    // The upper in OCI form only.
    let upper_walk = view("upper", &upper_test.0);
    for (rel, node) in &upper_walk.nodes {
        if node.st.st_mode & libc::S_IFMT == libc::S_IFCHR && node.st.st_rdev == 0 {
            diffs.push(format!("upper {}: a 0/0 device, want an OCI whiteout", String::from_utf8_lossy(rel)));
        }
    }
    for want in ["a/.wh.keep", ".wh.e", "d/.wh.new1"] {
        if sys::lstat(&upper_test.0.join(want)).is_err() {
            diffs.push(format!("upper: no {want}"));
        }
    }
    for m in &mnt {
        sys::umount(m);
    }
    // The upper as one more layer, through tar.
    let l3 = base.join("oci3");
    through_tar(&upper_test.0, &base.join("layer3.tar"), &l3, true)?;
    let (m_ref, m_test) = (base.join("m_ref"), base.join("m_test"));
    let ref_layers: Vec<&Path> = std::iter::once(upper_ref.0.as_path()).chain(conv.iter().map(PathBuf::as_path)).collect();
    let test_layers: Vec<&Path> = std::iter::once(l3.as_path()).chain(oci.iter().map(PathBuf::as_path)).collect();
    mount_ro("overlay", &m_ref, &ref_layers, "")?;
    mount_ro(&fstype, &m_test, &test_layers, &format!(",{WHITEOUT}"))?;
    progress("the upper as a layer");
    diffs.extend(same_views("the upper as an OCI layer", &m_ref, &m_test, false));
    progress("the upper exported, unpacked by umoci");
    diffs.extend(umoci_unpacks_export(&base, &upper_test.0, &oci, &m_ref, &bundle_fs)?);
    sys::umount(&m_ref);
    sys::umount(&m_test);
    verdict(diffs)
}

/// The image of `unpacked_layers`' tarballs under `base` with upper directory `upper` (of a
/// `whiteout=oci` union over `lowers`) written by the export tool as one more layer, added
/// and unpacked by umoci (into `bundle_fs`), another implementation of the layer rules: its
/// differences from the union's view at `view_root`. Directory link counts are left out (a
/// merged directory shows 1, as overlayfs' do).
fn umoci_unpacks_export(base: &Path, upper: &Path, lowers: &[PathBuf], view_root: &Path, bundle_fs: &Path) -> Result<Vec<String>, String> {
    let export = base.join("export.tar");
    let lowers = lowers.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(":");
    run(Command::new(writable::OCI_LAYER_TOOL).arg(upper).arg("-o").arg(&export).args(["--oci-whiteouts", "--lowers", &lowers]))?;
    let layout = base.join("image");
    let image = format!("{}:test", layout.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&layout))?;
    run(Command::new("umoci").args(["new", "--image", &image]))?;
    let layers = (0..3).map(|i| base.join(format!("layer{i}.tar"))).chain(std::iter::once(export));
    for layer in layers {
        run(Command::new("umoci").args(["raw", "add-layer", "--image", &image]).arg(layer))?;
    }
    let bundle = bundle_fs.join("bundle");
    run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle))?;
    let times = |_: &[u8]| (false, false);
    // Smack labels are the guest's, not the layers': umoci clears the xattrs of what it
    // unpacks, the label included.
    let cmp = Cmp { nlink: false, xattr_skip: &["security.SMACK64"], ..view_cmp(&times) };
    let without_dir_sizes = |mut w: Walk| {
        w.nodes.values_mut().filter(|n| n.st.st_mode & libc::S_IFMT == libc::S_IFDIR).for_each(|n| n.st.st_size = 0);
        w
    };
    let (a, b) = (view("the union", view_root), view("umoci's rootfs", &bundle.join("rootfs")));
    Ok(diff_trees("the union", &without_dir_sizes(a), "umoci's rootfs", &without_dir_sizes(b), &cmp))
}

/// Changes to the OCI layers' tree: removals of lower files and directories, a directory
/// made again where one was removed, renames, new objects.
fn oci_ops() -> Vec<Op> {
    let p = |s: &str| s.as_bytes().to_vec();
    vec![
        Op::Unlink { path: p("a/keep") },
        Op::Unlink { path: p("e") },
        Op::Unlink { path: p("d/new1") },
        Op::Unlink { path: p("n/deep/again") },
        Op::Rmdir { path: p("n/deep") },
        Op::Mkdir { path: p("n/deep"), mode: 0o755 },
        Op::Create { path: p("n/deep/fresh"), mode: 0o644, len: 10, fill: 1 },
        Op::Rename { from: p("b/w"), to: p("b/w2"), flags: 0 },
        Op::Rename { from: p("c/k"), to: p("k_moved"), flags: 0 },
        Op::Create { path: p("brand_new"), mode: 0o600, len: 0, fill: 0 },
        Op::Unlink { path: p("same") },
        Op::Create { path: p("same"), mode: 0o640, len: 3, fill: 2 },
    ]
}
