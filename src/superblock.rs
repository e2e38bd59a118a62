// SPDX-License-Identifier: GPL-2.0

//! The union superblock: checks the layers given at mount, holds them for the life of the
//! mount, and answers the superblock-level operations.

use crate::inode::{RealEntry, UnionInode};
use crate::layers::LayerStack;
use crate::namei::Xattr;
use crate::params::{self, Config, LayerSpec, Redirect, Xino};
use crate::vfs::fs_type::{namelen_of, seq_show_option};
use crate::vfs::layer::{MNT_NOATIME, MNT_READONLY};
use crate::vfs::super_block::NewSuperBlock;
use crate::vfs::{
    errno, show, AnonDev, AsMounter, Dentry, FhSupport, FileSystem, FsContext, FsInode, Inode,
    Kstatfs, LayerMount, MounterCreds, NewObject, Param, RealFile, RealPath, SuperBlock, SuperOps,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::str::CString;
use kernel::sync::aref::ARef;

/// `statfs(2)` `f_type` of a union: "unio" in ASCII.
pub(crate) const UNIONRS_SUPER_MAGIC: u64 = 0x756e_696f;

/// The mount flags of our clones of the lower layers' mounts: nothing done through the union
/// can write to a lower layer, not even an access time.
pub(crate) const LOWER_MOUNT_FLAGS: u32 = MNT_READONLY | MNT_NOATIME;

/// The inode flags a union inode takes over from its real inode: those that describe the file
/// (as overlayfs copies them), not the real filesystem's internal ones (`S_PRIVATE`, `S_DAX`,
/// ...).
const SHOWN_INODE_FLAGS: u32 = bindings::S_SYNC
    | bindings::S_NOATIME
    | bindings::S_APPEND
    | bindings::S_IMMUTABLE
    | bindings::S_CASEFOLD;

/// Capabilities the mounter's credentials lose for layer operations: `CAP_SYS_RESOURCE`, so
/// that the layers' quotas and reserved space apply to what is done through the union (as in
/// overlayfs).
pub(crate) const DROPPED_CAPS: u64 = 1 << bindings::CAP_SYS_RESOURCE;

/// Which role a layer plays.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    Upper,
    Work,
    Lower,
    /// A data-only lower layer: not merged, only reached by absolute redirects of metacopy
    /// files (see `crate::namei`).
    Data,
}

impl LayerKind {
    fn option(self) -> &'static str {
        match self {
            Self::Upper => "upperdir",
            Self::Work => "workdir",
            Self::Lower => "lowerdir",
            Self::Data => "datadir",
        }
    }

    /// A lower layer of either kind.
    pub(crate) fn is_lower(self) -> bool {
        matches!(self, Self::Lower | Self::Data)
    }
}

/// One layer of a mounted union.
pub(crate) struct Layer {
    pub(crate) spec: LayerSpec,
    pub(crate) kind: LayerKind,
    /// Our private clone of the layer's mount (read-only and noatime for lower layers).
    pub(crate) mnt: LayerMount,
    /// Which of the distinct filesystems under the union this layer is on, numbered as
    /// overlayfs does: 0 is the upper layer's (even in a union without one), then the lower
    /// layers' other filesystems in their order.
    pub(crate) fsid: usize,
}

/// The filesystem: per-superblock state of a mounted union.
pub(crate) struct UnionFs {
    /// Upper layer first (if any), then the lower layers top to bottom (those added to the
    /// live mount last).
    pub(crate) layers: LayerStack,
    /// The union's stacking depth (`s_stack_depth`): a layer added later must fit below it.
    pub(crate) stack_depth: i32,
    pub(crate) work: Option<LayerSpec>,
    /// `<workdir>/work`: where copies and whiteouts are built before they move into place.
    work_dir: Option<ARef<Dentry>>,
    /// Upper and work directories we marked in use (unmarked on drop).
    in_use: KVec<ARef<Inode>>,
    lowerdir_all: Option<CString>,
    pub(crate) userxattr: bool,
    /// `default_permissions` was given (see `params::Config`).
    pub(crate) default_permissions: bool,
    /// Whether all layers are on one filesystem (then real inode numbers are unique).
    pub(crate) same_fs: bool,
    /// `xino=` as it stands after the mount's checks (`auto` may have fallen back to `off`).
    pub(crate) xino: Xino,
    /// How many high bits of an inode number hold the filesystem's number (0: none); see
    /// `crate::inode` for how numbers are made.
    pub(crate) xino_bits: u32,
    /// The `st_dev` of objects of each filesystem (by `fsid`) whose numbers cannot be made
    /// unique on the union's device.
    pub(crate) pseudo_devs: KVec<AnonDev>,
    /// For each filesystem (by `fsid`): whether its uuid does not tell its file handles from
    /// another lower filesystem's (overlayfs' `bad_uuid`): origins are not looked for there.
    pub(crate) bad_uuid: KVec<bool>,
    /// `uuid=`, which decides what uuid a stored file handle carries.
    pub(crate) uuid: params::Uuid,
    /// The upper layer took no xattr (at mount, or since): private xattrs are not written.
    pub(crate) noxattr: AtomicBool,
    /// `index=on` as it stands after the mount's checks.
    pub(crate) index: bool,
    /// `nfs_export=on` as it stands after the mount's checks: handles are decoded, and with
    /// the index every copy-up goes through it (overlayfs' `ovl_index_all`).
    pub(crate) nfs_export: bool,
    /// `redirect_dir=` as it stands after the mount's checks.
    pub(crate) redirect: Redirect,
    /// `metacopy=on` as it stands after the mount's checks: a change of metadata copies only
    /// the metadata up (see `crate::copy_up`).
    pub(crate) metacopy: bool,
    /// `verity=`: fs-verity digests of metacopy files' data recorded and checked.
    pub(crate) verity: params::Verity,
    /// `whiteout=oci`: OCI whiteouts and opaque markers in the layers count (see
    /// `crate::namei::OCI_WHITEOUT_PREFIX`).
    pub(crate) oci_whiteouts: bool,
    /// The last number given to a directory that has no unique one (non-persistent, as in
    /// overlayfs).
    pub(crate) last_ino: AtomicU64,
    /// The longest name any layer takes: lookup refuses longer ones with `ENAMETOOLONG` (a
    /// layer would only say "not here"), and `statfs` reports it (overlayfs' rule).
    pub(crate) namelen: usize,
    /// The mounter's credentials, which every layer operation uses: the superblock
    /// creator's, or those `override_creds` recorded.
    pub(crate) creds: MounterCreds,
    /// `fsync=` (or `volatile`) as it stands after the mount's checks.
    pub(crate) fsync: params::Fsync,
    /// With `fsync=volatile`: the upper filesystem's writeback error state at mount, which
    /// `fsync(2)` and `syncfs(2)` compare with (an error since then is reported for good).
    pub(crate) writeback_mark: u32,
    /// The inodes of the layer roots and of the work directory (addresses, sorted): see
    /// [`UnionFs::is_trap`].
    traps: KVec<usize>,
}

impl UnionFs {
    /// The longest name any layer takes, asked at mount (a failing `statfs` fails the mount,
    /// as in overlayfs).
    fn max_namelen(&self, fc: &FsContext) -> Result<usize> {
        let mut max = 0;
        for l in self.layers.iter() {
            let path = RealPath {
                mnt: &l.mnt,
                dentry: l.spec.path.dentry(),
            };
            let n = self.with_mounter(|m| namelen_of(m, path)).map_err(|e| {
                fc.fail(
                    e,
                    fmt!(
                        "{}: statfs failed on '{}'",
                        l.kind.option(),
                        show(&l.spec.name)
                    ),
                )
            })?;
            max = max.max(usize::try_from(n).unwrap_or(0));
        }
        Ok(max)
    }

    /// Whether `inode`, a directory met by a lookup below the union's root, is a layer's
    /// root or the work directory: a layer was moved into another after the mount (the mount
    /// refuses overlapping layers), and following it would loop (overlayfs' traps).
    pub(crate) fn is_trap(&self, inode: &Inode) -> bool {
        let is = |d: &Dentry| {
            d.inode()
                .is_some_and(|i| core::ptr::eq(i.as_ptr(), inode.as_ptr()))
        };
        self.traps.binary_search(&(inode.as_ptr() as usize)).is_ok()
            || self.layers.added().any(|l| is(l.spec.path.dentry()))
    }

    /// The layer whose root gives the union root its attributes.
    fn top(&self) -> Option<&Layer> {
        self.layers.first()
    }

    /// Whether the layers may be changed while the union is not mounted (overlayfs'
    /// `ovl_allow_offline_changes`): not with the index, `redirect_dir=on`, metacopy or
    /// `xino=on`, whose records would go stale.
    pub(crate) fn allow_offline_changes(&self) -> bool {
        !self.index && self.redirect != Redirect::On && !self.metacopy && self.xino != Xino::On
    }

    pub(crate) fn has_upper(&self) -> bool {
        self.layers
            .first()
            .is_some_and(|l| l.kind == LayerKind::Upper)
    }

    /// Whether `fsync(2)` and `syncfs(2)` must reach the upper layer (overlayfs'
    /// `ovl_sync_status`): not in a volatile union, where they report the upper filesystem's
    /// writeback error since the mount instead, once there is one.
    pub(crate) fn needs_sync(&self) -> Result<bool> {
        if self.fsync != params::Fsync::Volatile {
            return Ok(true);
        }
        match self.upper_layer() {
            Ok(upper) => upper
                .mnt
                .writeback_error_since(self.writeback_mark)
                .map(|()| false),
            Err(_) => Ok(false),
        }
    }

    /// Whether the union's writes and copy-ups sync (all but `fsync=volatile`).
    pub(crate) fn syncs(&self) -> bool {
        self.fsync != params::Fsync::Volatile
    }

    /// Whether the union has data-only lower layers.
    pub(crate) fn has_data_layers(&self) -> bool {
        self.layers
            .last()
            .is_some_and(|l| l.kind == LayerKind::Data)
    }

    /// The writable layer (`EROFS` for a union without one).
    pub(crate) fn upper_layer(&self) -> Result<&Layer> {
        self.layers
            .first()
            .filter(|l| l.kind == LayerKind::Upper)
            .ok_or(EROFS)
    }

    /// The directory where new objects are built (`<workdir>/work`).
    pub(crate) fn work_dir(&self) -> Result<&Dentry> {
        self.work_dir.as_deref().ok_or(EROFS)
    }

    /// Runs `f` with the mounter's credentials, for operations on real objects.
    pub(crate) fn with_mounter<R>(&self, f: impl FnOnce(&AsMounter<'_>) -> R) -> R {
        self.creds.with_mounter(f)
    }
}

impl Drop for UnionFs {
    fn drop(&mut self) {
        for i in self.in_use.iter() {
            i.inuse_unlock();
        }
        // Our references into the layers go before the layers' private mounts (the fields
        // that follow), as overlayfs puts its dentries before `kern_unmount_array`.
        self.work_dir = None;
        self.in_use.clear();
    }
}

/// The persistent uuid of the union, kept in `overlay.uuid` on the upper root as overlayfs
/// does (`ovl_init_uuid_xattr`): read if there, else made and stored with `uuid=on`, and with
/// `uuid=auto` on a fresh upper (one without `overlay.impure` on its root, which overlayfs sets
/// once it has used it). Also the mode as it then stands, which `/proc/mounts` shows: `auto`
/// becomes `on` on a fresh upper, `null` on an old one or when the uuid cannot be read or
/// stored.
fn upper_uuid(fs: &UnionFs, mode: params::Uuid) -> (Option<[u8; 16]>, params::Uuid) {
    use params::Uuid;
    if matches!(mode, Uuid::Off | Uuid::Null) {
        return (None, mode);
    }
    let Ok(upper) = fs.upper_layer() else {
        return (None, mode);
    };
    let root = upper.spec.path.dentry();
    let failed = |e: Error, set: bool| {
        crate::vfs::warn_ratelimited(fmt!(
            "unionrs: failed to {} uuid (err={}); falling back to uuid=null.",
            if set { "set" } else { "get" },
            e.to_errno()
        ));
        (None, Uuid::Null)
    };
    fs.with_mounter(|m| {
        let mut uuid = [0u8; 16];
        match upper
            .mnt
            .getxattr(m, root, fs.xattr_name(Xattr::Uuid), &mut uuid)
        {
            Ok(16) => return (Some(uuid), mode),
            Err(e) if e == errno::enodata() => {}
            Ok(_) => return failed(ERANGE, false),
            Err(e) => return failed(e, false),
        }
        let mut mode = mode;
        if mode == Uuid::Auto {
            match upper
                .mnt
                .getxattr(m, root, fs.xattr_name(Xattr::Impure), &mut [])
            {
                // An upper layer used before: no uuid (overlayfs' downgrade).
                Ok(n) if n > 0 => return (None, Uuid::Null),
                Ok(_) => {}
                Err(e) if e == errno::enodata() => mode = Uuid::On,
                Err(e) => return failed(e, false),
            }
        }
        let uuid = crate::vfs::new_uuid();
        match upper
            .mnt
            .set_xattr(m, root, fs.xattr_name(Xattr::Uuid), Some(&uuid), 0)
        {
            Ok(()) => (Some(uuid), mode),
            Err(e) => failed(e, true),
        }
    })
}

/// Name of the directory inside workdir that unions work in (overlayfs' too).
const WORK_NAME: &[u8] = b"work";

/// Where a mount records, inside `<workdir>/work`, a feature that makes the upper layer
/// unusable by a later mount until the user acts (overlayfs' "incompat" directory).
const INCOMPAT_NAME: &[u8] = b"incompat";

/// What a volatile mount leaves in `<workdir>/work/incompat` (as overlayfs does): after it,
/// a crash may have lost any part of the upper layer, so no mount takes it until the user
/// removes the `volatile` directory.
const VOLATILE_MARKER: [&[u8]; 2] = [b"volatile", b"dirty"];

/// The first feature recorded in `work/incompat` of the work directory `work`, if any.
fn incompat_feature(fs: &UnionFs, m: &AsMounter<'_>, work: &Dentry) -> Result<Option<KVec<u8>>> {
    let mnt = &fs.upper_layer()?.mnt;
    let Some(incompat) = mnt.lookup(m, work, INCOMPAT_NAME)? else {
        return Ok(None);
    };
    if incompat.inode().is_none() || !incompat.is_dir() {
        return Ok(None);
    }
    let dir = RealFile::open_dir(
        m,
        RealPath {
            mnt,
            dentry: &incompat,
        },
    )?;
    let names = crate::readdir::real_entries(m, &dir)?;
    Ok(names.into_iter().next().map(|(name, _)| name))
}

/// Records a volatile mount in `work` (see [`VOLATILE_MARKER`]), where a clean mount left
/// nothing.
fn mark_volatile(fs: &UnionFs, m: &AsMounter<'_>, work: &Dentry) -> Result {
    let node = |mode| NewObject::Node { mode, rdev: 0 };
    let incompat = fs.create_real(m, work, INCOMPAT_NAME, node(bindings::S_IFDIR))?;
    let volatile = fs.create_real(m, &incompat, VOLATILE_MARKER[0], node(bindings::S_IFDIR))?;
    fs.create_real(m, &volatile, VOLATILE_MARKER[1], node(bindings::S_IFREG))?;
    Ok(())
}

/// Sets up `<workdir>/work` at mount: whatever an earlier mount left there (an interrupted
/// copy-up, a crash) is removed first, so that it starts empty; but an incompatible feature
/// recorded there (a volatile mount's marker) refuses the mount, as in overlayfs.
/// Returns it, and whether the upper filesystem takes xattrs.
fn make_work_dir(fs: &UnionFs, fc: &FsContext) -> Result<(ARef<Dentry>, bool)> {
    let upper = fs.upper_layer()?;
    let mnt = &upper.mnt;
    let base = fs.work.as_ref().ok_or(EINVAL)?.path.dentry();
    fs.with_mounter(|m| {
        if let Some(old) = mnt.lookup(m, base, WORK_NAME)? {
            if old.inode().is_some() {
                if let Some(feature) = incompat_feature(fs, m, &old)? {
                    return Err(fc.fail(
                        EINVAL,
                        fmt!(
                            "overlay with incompat feature '{}' cannot be mounted",
                            kernel::str::BStr::from_bytes(&feature)
                        ),
                    ));
                }
                fs.remove_tree(m, base, &old, 2).map_err(|e| {
                    fc.fail(
                        e,
                        fmt!(
                            "workdir: cannot clean up '{}/work' ({:?})",
                            show(fs.work.as_ref().map_or(c"", |w| &w.name)),
                            e
                        ),
                    )
                })?;
            }
        }
        let work = fs
            .create_real(
                m,
                base,
                WORK_NAME,
                NewObject::Node {
                    mode: bindings::S_IFDIR,
                    rdev: 0,
                },
            )
            .map_err(|e| fc.fail(e, fmt!("workdir: cannot create 'work' in it ({:?})", e)))?;
        // Copy-ups and whiteouts are made in `work` (mode 0): a mounter who cannot create
        // there (without `CAP_DAC_OVERRIDE`) fails the mount, as overlayfs' probes do.
        let probe = fs
            .create_real(
                m,
                &work,
                crate::dir::temp_name(&mut [0; 16]),
                NewObject::Node {
                    mode: bindings::S_IFREG,
                    rdev: 0,
                },
            )
            .map_err(|e| fc.fail(e, fmt!("workdir: cannot create in 'work' ({:?})", e)))?;
        mnt.remove(m, &work, &probe)?;
        if fs.fsync == params::Fsync::Volatile {
            mark_volatile(fs, m, &work)
                .map_err(|e| fc.fail(e, fmt!("Failed to create volatile/dirty file.")))?;
        }
        // Opaque dirs and xattr copies need xattrs on the upper filesystem; overlayfs goes on
        // without them (and fails the operations that need them), and so do we.
        let probe = fs.xattr_name(Xattr::Opaque);
        let xattrs = match mnt.set_xattr(m, &work, probe, Some(b"y"), 0) {
            Ok(()) => {
                let _ = mnt.set_xattr(m, &work, probe, None, 0);
                true
            }
            Err(_) => {
                fc.warn(fmt!(
                    "upper fs does not support xattrs: opaque directories cannot be made"
                ));
                false
            }
        };
        Ok((work, xattrs))
    })
}

/// The `redirect_dir=` mode, and `metacopy=` and `nfs_export=` in `cfg` as they depend on it
/// (overlayfs' `ovl_fs_params_verify`, in its order): a union without an upper layer makes no
/// redirects, so "follow" is "on" there; metacopy needs `redirect_dir=on` (which it turns on
/// unless `redirect_dir=` was given) and excludes `nfs_export` (the one given explicitly wins);
/// `userxattr` unions neither make nor follow redirects nor make metacopy files (given
/// explicitly, a following mode or `metacopy=on` is refused), and asking for them without
/// `CAP_SYS_ADMIN` (which the trusted xattrs they live in need) fails.
fn verify_options(fc: &FsContext, cfg: &mut params::Config) -> Result<Redirect> {
    let mut redirect = cfg.redirect;
    if cfg.upper.is_none() && redirect == Redirect::Follow {
        redirect = Redirect::On;
    }
    if cfg.metacopy && redirect != Redirect::On {
        if cfg.metacopy_given && cfg.redirect_given {
            return Err(fc.fail(
                EINVAL,
                fmt!(
                    "conflicting options: metacopy=on,redirect_dir={}",
                    redirect.name()
                ),
            ));
        }
        if cfg.redirect_given {
            fc.info(fmt!(
                "disabling metacopy due to redirect_dir={}",
                redirect.name()
            ));
            cfg.metacopy = false;
        } else {
            redirect = Redirect::On;
        }
    }
    // Whether `nfs_export` survives its dependency on the index (which `choose_index`
    // resolves, with its messages); the index is off without an upper layer.
    let has_upper = cfg.upper.is_some();
    let nfs_export = cfg.nfs_export
        && match has_upper {
            true => cfg.index || !cfg.index_given,
            false => redirect == Redirect::NoFollow,
        };
    if nfs_export && cfg.metacopy {
        if cfg.nfs_export_given && cfg.metacopy_given {
            return Err(fc.fail(
                EINVAL,
                fmt!("conflicting options: nfs_export=on,metacopy=on"),
            ));
        }
        if cfg.metacopy_given || cfg.verity != params::Verity::Off {
            match cfg.metacopy_given {
                true => fc.info(fmt!("disabling nfs_export due to metacopy=on")),
                false => fc.info(fmt!(
                    "disabling nfs_export due to verity={}",
                    cfg.verity.name()
                )),
            }
            cfg.nfs_export = false;
            // overlayfs has turned the index on for it already.
            if has_upper && !cfg.index_given {
                cfg.index = true;
            }
        } else {
            fc.info(fmt!("disabling metacopy due to nfs_export=on"));
            cfg.metacopy = false;
        }
    }
    if cfg.userxattr {
        if cfg.redirect_given && redirect != Redirect::NoFollow {
            return Err(fc.fail(
                EINVAL,
                fmt!(
                    "conflicting options: userxattr,redirect_dir={}",
                    redirect.name()
                ),
            ));
        }
        if cfg.metacopy && cfg.metacopy_given {
            return Err(fc.fail(EINVAL, fmt!("conflicting options: userxattr,metacopy=on")));
        }
        redirect = Redirect::NoFollow;
        cfg.metacopy = false;
    } else if !crate::vfs::cred::caller_is_sys_admin() {
        if cfg.redirect_given && redirect != Redirect::NoFollow {
            return Err(fc.fail(
                EPERM,
                fmt!("redirect_dir requires permission to access trusted xattrs"),
            ));
        }
        if cfg.metacopy && cfg.metacopy_given {
            return Err(fc.fail(
                EPERM,
                fmt!("metacopy requires permission to access trusted xattrs"),
            ));
        }
        if cfg.verity != params::Verity::Off {
            return Err(fc.fail(
                EPERM,
                fmt!("verity requires permission to access trusted xattrs"),
            ));
        }
        if cfg.data_layers > 0 {
            return Err(fc.fail(
                EPERM,
                fmt!("lower data-only dirs require permission to access trusted xattrs"),
            ));
        }
    }
    Ok(redirect)
}

/// Whether the index and `nfs_export` can be on (overlayfs' checks at mount, in its order):
/// the index needs an upper layer, xattrs on it, and file handles that the mounter may decode
/// on the upper and every lower filesystem; `nfs_export` needs the index (which it turns on
/// unless `index=` was given) or, without an upper layer, `redirect_dir=nofollow`, and file
/// handles on every lower filesystem. What cannot be falls back to off with overlayfs' message;
/// `nfs_export=on,index=off` given together is refused. (A lower filesystem whose uuid cannot
/// tell its handles apart turns both off later.)
fn choose_index(
    fs: &UnionFs,
    fc: &FsContext,
    cfg: &params::Config,
    upper_xattrs: bool,
) -> Result<(bool, bool)> {
    let (mut index, mut nfs_export) = (cfg.index, cfg.nfs_export);
    let mut index_given = cfg.index_given;
    if index && !fs.has_upper() {
        if index_given {
            fc.warn(fmt!(
                "option \"index=on\" is useless in a non-upper mount, ignore"
            ));
        }
        index = false;
        index_given = false;
    }
    if nfs_export && !index {
        // The mode as given: `userxattr` makes it "nofollow" only after this check.
        if !fs.has_upper() && cfg.redirect != Redirect::NoFollow {
            fc.info(fmt!(
                "NFS export requires \"redirect_dir=nofollow\" on non-upper mount, falling back to nfs_export=off."
            ));
            nfs_export = false;
        } else if cfg.nfs_export_given && index_given {
            return Err(fc.fail(EINVAL, fmt!("conflicting options: nfs_export=on,index=off")));
        } else if index_given {
            fc.info(fmt!("disabling nfs_export due to index=off"));
            nfs_export = false;
        } else if fs.has_upper() {
            index = true;
        }
    }
    if fs.has_upper() {
        if index && !upper_xattrs {
            fc.warn(fmt!(
                "failed to set xattr on upper, falling back to index=off."
            ));
            index = false;
        }
        if index
            && fs
                .upper_layer()
                .map_or(true, |u| u.mnt.fh_support() == FhSupport::None)
        {
            fc.warn(fmt!(
                "upper fs does not support file handles, falling back to index=off."
            ));
            index = false;
        }
        if nfs_export && !index {
            fc.warn(fmt!(
                "NFS export requires \"index=on\", falling back to nfs_export=off."
            ));
            nfs_export = false;
        }
    }
    for l in fs.layers.iter().filter(|l| l.kind.is_lower()) {
        if (index || nfs_export) && l.mnt.fh_support() == FhSupport::None {
            fc.warn(fmt!(
                "fs on '{}' does not support file handles, falling back to index=off,nfs_export=off.",
                show(&l.spec.name)
            ));
            index = false;
            nfs_export = false;
        }
    }
    Ok((index, nfs_export))
}

/// Which lower filesystems (by `fsid`) have a uuid that cannot tell their file handles apart
/// (overlayfs' `ovl_lower_uuid_ok`, met in layer order): in a union with an upper layer, a
/// null uuid (every uuid is null with `uuid=off`) while offline changes of the layers are
/// allowed (`xino=on` forbids them), or the uuid of an earlier lower filesystem (then both
/// are bad). A filesystem found bad never has its handles decoded.
fn bad_uuids(fs: &UnionFs) -> Result<KVec<bool>> {
    let mut bad = KVec::from_elem(false, fs.pseudo_devs.len(), GFP_KERNEL)?;
    let mut is_lower = KVec::from_elem(false, fs.pseudo_devs.len(), GFP_KERNEL)?;
    let uuid_of = |l: &Layer| match fs.uuid {
        params::Uuid::Off => [0u8; 16],
        _ => l.mnt.fs_uuid(),
    };
    // Without an upper layer, overlayfs has turned the index on for `nfs_export` when it
    // checks the uuids (it turns it off again later).
    let offline_changes = (fs.has_upper() || !fs.nfs_export) && fs.allow_offline_changes();
    for (i, l) in fs.layers.iter().enumerate() {
        if l.kind != LayerKind::Lower {
            continue;
        }
        // Only a filesystem met for the first time is checked (the upper one never is).
        let new_fs = l.fsid != 0 && !fs.layers.iter().take(i).any(|e| e.fsid == l.fsid);
        if new_fs && (fs.has_upper() || fs.nfs_export) {
            let uuid = uuid_of(l);
            if offline_changes && uuid == [0; 16] {
                if let Some(b) = bad.get_mut(l.fsid) {
                    *b = true;
                }
            } else {
                for e in fs.layers.iter().take(i) {
                    let lower = is_lower.get(e.fsid).copied().unwrap_or(false);
                    if e.kind == LayerKind::Lower && lower && uuid_of(e) == uuid {
                        for f in [e.fsid, l.fsid] {
                            if let Some(b) = bad.get_mut(f) {
                                *b = true;
                            }
                        }
                    }
                }
            }
        }
        if let Some(x) = is_lower.get_mut(l.fsid) {
            *x = true;
        }
    }
    Ok(bad)
}

/// Decides `xino` as overlayfs does (its `xino_mode`): with all layers on one filesystem the
/// real numbers are unique and nothing is needed; with `off`, nothing is done; otherwise the
/// filesystem's number goes in the high bits: above bit 32 when every layer's filesystem
/// encodes 32-bit inode numbers in its file handles (so its numbers fit), else in just enough
/// bits for the filesystems plus one (for numbers the union makes up). `auto` falls back to
/// `off` when the upper layer takes no xattrs or a lower layer's filesystem cannot decode file
/// handles (which an unprivileged mounter never may). Returns the mode and the bits.
///
/// `auto` also falls back, in a union with an upper layer, when a lower filesystem (other than
/// the upper one's) has a null uuid or the same as an earlier one (overlayfs'
/// `ovl_lower_uuid_ok`; `uuid=off` makes every uuid null): file handles of such layers could
/// not be told apart.
fn choose_xino(
    fs: &UnionFs,
    fc: &FsContext,
    requested: Xino,
    upper_xattrs: bool,
    uuid_mode: params::Uuid,
) -> (Xino, u32) {
    let mut xino = requested;
    let mut all_ino32 = true;
    // The first lower filesystem found with a bad uuid turns `auto` off (with a warning).
    let first_bad = fs
        .layers
        .iter()
        .filter(|l| l.kind == LayerKind::Lower && l.fsid != 0)
        .find(|l| fs.bad_uuid.get(l.fsid).copied().unwrap_or(false));
    if let Some(l) = first_bad.filter(|_| xino == Xino::Auto || fs.index || fs.nfs_export) {
        let null = uuid_mode == params::Uuid::Off || l.mnt.fs_uuid() == [0; 16];
        if xino == Xino::Auto {
            xino = Xino::Off;
        }
        fc.warn(fmt!(
            "{} uuid in non-single lower fs '{}', falling back to xino={},index=off,nfs_export=off.",
            if null { "null" } else { "conflicting" },
            show(&l.spec.name),
            xino.name().to_str().unwrap_or("off")
        ));
    }
    if fs.has_upper() && !upper_xattrs && xino == Xino::Auto {
        fc.warn(fmt!(
            "upper fs does not support xattr, falling back to xino=off."
        ));
        xino = Xino::Off;
    }
    for l in fs.layers.iter() {
        let fh = l.mnt.fh_support();
        if l.kind.is_lower() && xino == Xino::Auto && fs.has_upper() && fh == FhSupport::None {
            fc.warn(fmt!(
                "fs on '{}' does not support file handles, falling back to xino=off.",
                show(&l.spec.name)
            ));
            xino = Xino::Off;
        }
        all_ino32 &= fh == FhSupport::Ino32;
    }
    if fs.same_fs || xino == Xino::Off {
        return (xino, 0);
    }
    if all_ino32 {
        return (xino, 32);
    }
    // ilog2(filesystems - 1) + 2: the number of the last filesystem, and the bit above it.
    let last = fs.pseudo_devs.len().saturating_sub(1).max(1);
    (xino, usize::BITS - last.leading_zeros() + 1)
}

/// The inodes [`UnionFs::is_trap`] looks for: every layer root and the work directory. The
/// union holds references to all of them, so their addresses stay theirs while it is mounted.
fn layer_traps(fs: &UnionFs) -> Result<KVec<usize>> {
    let mut traps = KVec::with_capacity(fs.layers.len() + 1, GFP_KERNEL)?;
    let roots = fs.layers.iter().map(|l| l.spec.path.dentry());
    for d in Iterator::chain(roots, fs.work_dir.as_deref()) {
        if let Some(inode) = d.inode() {
            // Kept sorted by inserting in place: core's sort_unstable ends in a panic helper
            // that objtool does not know as noreturn (a warning with Debian's rustc 1.85).
            let addr = inode.as_ptr() as usize;
            let at = traps.binary_search(&addr).unwrap_or_else(|at| at);
            traps.insert_within_capacity(at, addr).map_err(|_| ENOMEM)?;
        }
    }
    Ok(traps)
}

/// Refuses a stack of case-folded and case-sensitive directories (as overlayfs does): one
/// name could then mean different entries on different layers. A stack of case-folded
/// directories only is refused too: overlayfs unions them with case-insensitive lookups and
/// listings, which unionrs does not have yet (its lookups would be exact-case and one
/// directory could appear under two names).
pub(crate) fn check_casefold(fc: &FsContext, all: &[(&LayerSpec, LayerKind)]) -> Result {
    let Some((first, first_kind)) = all.first() else {
        return Ok(());
    };
    let folded = first.path.dentry().is_casefolded();
    for (l, kind) in all {
        if l.path.dentry().is_casefolded() != folded {
            return Err(fc.fail(
                EINVAL,
                fmt!(
                    "{}: case-{}sensitive directory on '{}' is inconsistent",
                    kind.option(),
                    if folded { "" } else { "in" },
                    show(&l.name)
                ),
            ));
        }
    }
    if folded {
        return Err(fc.fail(
            EINVAL,
            fmt!(
                "{}: case-folded directory on '{}': case-insensitive unions are not supported yet",
                first_kind.option(),
                show(&first.name)
            ),
        ));
    }
    Ok(())
}

/// Refuses layers that are the same directory or lie inside one another: a union over itself
/// would loop, and writing the upper layer would change a lower one.
pub(crate) fn check_overlap(fc: &FsContext, all: &[(&LayerSpec, LayerKind)]) -> Result {
    for (i, (a, ak)) in all.iter().enumerate() {
        for (b, bk) in all.iter().skip(i + 1) {
            let (da, db) = (a.path.dentry(), b.path.dentry());
            if core::ptr::eq(da.as_ptr(), db.as_ptr()) {
                return Err(fc.fail(
                    errno::eloop(),
                    fmt!(
                        "conflicting layers: '{}' ({}) and '{}' ({}) are the same directory",
                        show(&a.name),
                        ak.option(),
                        show(&b.name),
                        bk.option()
                    ),
                ));
            }
            let (inner, ik, outer, ok) = if da.is_subdir_of(db) {
                (a, ak, b, bk)
            } else if db.is_subdir_of(da) {
                (b, bk, a, ak)
            } else {
                continue;
            };
            return Err(fc.fail(
                errno::eloop(),
                fmt!(
                    "overlapping layers: '{}' ({}) is inside '{}' ({})",
                    show(&inner.name),
                    ik.option(),
                    show(&outer.name),
                    ok.option()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks upperdir and workdir against each other, as overlayfs does.
fn check_upper_work(fc: &FsContext, upper: &LayerSpec, work: &LayerSpec) -> Result {
    if !upper.path.same_mount(&work.path) {
        return Err(fc.fail(
            EINVAL,
            fmt!("workdir and upperdir must reside under the same mount"),
        ));
    }
    let (u, w) = (upper.path.dentry(), work.path.dentry());
    if u.is_subdir_of(w) || w.is_subdir_of(u) {
        return Err(fc.fail(
            EINVAL,
            fmt!("workdir and upperdir must be separate subtrees"),
        ));
    }
    Ok(())
}

impl FileSystem for UnionFs {
    type Config = Config;
    type Info = UnionFs;
    type InodeData = UnionInode;

    const INODE_FLAGS: u32 = SHOWN_INODE_FLAGS;

    fn option_end(rest: &[u8]) -> usize {
        params::option_end(rest)
    }

    fn parse_param(fc: &FsContext, cfg: &mut Config, param: Param<'_>) -> Result {
        params::parse_param(fc, cfg, param)
    }

    fn reconfigure(
        fc: &FsContext,
        sb: &SuperBlock<Self>,
        wants_rw: bool,
        cfg: &mut Config,
    ) -> Result {
        let fs = sb.info();
        if wants_rw && !fs.has_upper() {
            return Err(fc.fail(EROFS, fmt!("a union without upperdir is read-only")));
        }
        // Going read-only: what was written goes to disk first (not for a volatile union).
        if !wants_rw && !sb.is_readonly() && fs.fsync != params::Fsync::Volatile {
            if let Ok(upper) = fs.upper_layer() {
                upper.mnt.sync_filesystem()?;
            }
        }
        // `lowerdir+=` is the one option a remount takes (see `crate::layers`).
        fs.add_lower_layers(fc, core::mem::take(&mut cfg.lowers))
    }

    fn fill_super(fc: &FsContext, sb: &NewSuperBlock, cfg: &mut Config) -> Result<KBox<UnionFs>> {
        // The superblock belongs to the context's namespace, and the mounter's credentials
        // are the caller's: they must be of the same namespace (as overlayfs requires).
        if !fc.is_callers_user_ns() {
            return Err(fc.fail(
                EINVAL,
                fmt!("the mount context was made in another user namespace"),
            ));
        }
        // overlayfs checks the options together before the layers.
        if cfg.upper.is_none() && cfg.fsync == params::Fsync::Volatile {
            fc.info(fmt!(
                "option \"volatile\" is meaningless in a non-upper mount, ignoring it."
            ));
            cfg.fsync = params::Fsync::Auto;
        }
        if cfg.upper.is_none() && cfg.uuid == params::Uuid::On {
            fc.info(fmt!(
                "option \"uuid=on\" requires an upper fs, falling back to uuid=null."
            ));
            cfg.uuid = params::Uuid::Null;
        }
        let redirect = verify_options(fc, cfg)?;
        if cfg.lowers.is_empty() {
            return Err(fc.fail(EINVAL, fmt!("missing 'lowerdir'")));
        }
        if cfg.lowers.len() == cfg.data_layers {
            return Err(fc.fail(EINVAL, fmt!("at least one non-data lowerdir is required")));
        }
        if cfg.upper.is_some() && cfg.work.is_none() {
            return Err(fc.fail(EINVAL, fmt!("missing 'workdir' (upperdir needs one)")));
        }
        if cfg.upper.is_none() && cfg.work.is_some() {
            fc.warn(fmt!(
                "option 'workdir' is useless without 'upperdir', ignored"
            ));
            cfg.work = None;
        }
        if let (Some(upper), Some(work)) = (&cfg.upper, &cfg.work) {
            check_upper_work(fc, upper, work)?;
        }

        let mut all = KVec::with_capacity(cfg.lowers.len() + 2, GFP_KERNEL)?;
        if let Some(u) = &cfg.upper {
            all.push((u, LayerKind::Upper), GFP_KERNEL)?;
        }
        if let Some(w) = &cfg.work {
            all.push((w, LayerKind::Work), GFP_KERNEL)?;
        }
        let merged_lowers = cfg.lowers.len() - cfg.data_layers;
        for (i, l) in cfg.lowers.iter().enumerate() {
            let kind = match i < merged_lowers {
                true => LayerKind::Lower,
                false => LayerKind::Data,
            };
            all.push((l, kind), GFP_KERNEL)?;
        }
        check_overlap(fc, &all)?;
        check_casefold(fc, &all)?;
        let depth = all
            .iter()
            .map(|(l, _)| l.path.stack_depth())
            .max()
            .unwrap_or(0)
            + 1;
        drop(all);
        if depth > bindings::FILESYSTEM_MAX_STACK_DEPTH as i32 {
            return Err(fc.fail(EINVAL, fmt!("maximum filesystem stacking depth exceeded")));
        }

        // The creator's credentials, or those `override_creds` recorded.
        let creds = match cfg.creds.take() {
            Some(creds) => creds,
            None => MounterCreds::capture(DROPPED_CAPS)?,
        };
        let mut layers: KVec<Layer> = KVec::with_capacity(cfg.lowers.len() + 1, GFP_KERNEL)?;
        // By fsid: slot 0 is the upper layer's filesystem, null without one.
        let mut filesystems: KVec<*const kernel::bindings::super_block> = KVec::new();
        filesystems.push(core::ptr::null(), GFP_KERNEL)?;
        let upper = cfg.upper.take();
        let specs = upper.into_iter().map(|s| (s, LayerKind::Upper));
        let lowers = core::mem::take(&mut cfg.lowers)
            .into_iter()
            .enumerate()
            .map(|(i, s)| match i < merged_lowers {
                true => (s, LayerKind::Lower),
                false => (s, LayerKind::Data),
            });
        for (spec, kind) in Iterator::chain(specs, lowers) {
            let flags = if kind.is_lower() {
                LOWER_MOUNT_FLAGS
            } else {
                0
            };
            // As the mounter: cloning a mount takes `CAP_SYS_ADMIN` over it, which a task that
            // gave `override_creds` may lack (overlayfs sets up all layers as the mounter).
            let cloned = creds.with_mounter(|_| LayerMount::clone_private(&spec.path, flags));
            let mnt = cloned.map_err(|e| {
                fc.fail(
                    e,
                    fmt!(
                        "{}: cannot clone the mount of '{}'",
                        kind.option(),
                        show(&spec.name)
                    ),
                )
            })?;
            let fsid = if kind == LayerKind::Upper {
                if let Some(slot) = filesystems.first_mut() {
                    *slot = mnt.sb_ptr();
                }
                0
            } else if kind == LayerKind::Data {
                // Data-only layers share a "null" filesystem after the others (overlayfs'
                // `ovl_get_data_fsid`): their numbers are never shown, they have no device.
                usize::MAX
            } else {
                match filesystems
                    .iter()
                    .position(|&sb| core::ptr::eq(sb, mnt.sb_ptr()))
                {
                    Some(i) => i,
                    None => {
                        filesystems.push(mnt.sb_ptr(), GFP_KERNEL)?;
                        filesystems.len() - 1
                    }
                }
            };
            layers.push(
                Layer {
                    spec,
                    kind,
                    mnt,
                    fsid,
                },
                GFP_KERNEL,
            )?;
        }
        for l in layers.iter_mut().filter(|l| l.kind == LayerKind::Data) {
            l.fsid = filesystems.len();
        }
        let mut pseudo_devs = KVec::with_capacity(filesystems.len(), GFP_KERNEL)?;
        for _ in filesystems.iter() {
            pseudo_devs.push(AnonDev::new()?, GFP_KERNEL)?;
        }
        let has_upper = layers.first().is_some_and(|l| l.kind == LayerKind::Upper);
        let mut info = KBox::new(
            UnionFs {
                layers: LayerStack::new(layers),
                stack_depth: depth,
                work: cfg.work.take(),
                work_dir: None,
                in_use: KVec::new(),
                lowerdir_all: cfg.lowerdir_all.take(),
                userxattr: cfg.userxattr,
                default_permissions: cfg.default_permissions,
                same_fs: filesystems.len() - usize::from(!has_upper) == 1,
                xino: cfg.xino,
                xino_bits: 0,
                pseudo_devs,
                bad_uuid: KVec::new(),
                uuid: cfg.uuid,
                noxattr: AtomicBool::new(false),
                index: false,
                nfs_export: false,
                redirect,
                metacopy: cfg.metacopy,
                verity: cfg.verity,
                oci_whiteouts: cfg.oci_whiteouts,
                last_ino: AtomicU64::new(1),
                namelen: 0,
                creds,
                fsync: cfg.fsync,
                writeback_mark: 0,
                traps: KVec::new(),
            },
            GFP_KERNEL,
        )?;
        info.namelen = info.max_namelen(fc)?;

        let mut upper_xattrs = true;
        if info.has_upper() {
            // One union at a time may write an upper layer (overlayfs' "in use" mark, which
            // both honour).
            let upper_root: ARef<Inode> = info
                .upper_layer()?
                .spec
                .path
                .dentry()
                .inode()
                .ok_or(ENOENT)?
                .into();
            let work_base: ARef<Inode> = info
                .work
                .as_ref()
                .ok_or(EINVAL)?
                .path
                .dentry()
                .inode()
                .ok_or(ENOENT)?
                .into();
            // Room first: a mark must not be taken that `in_use` cannot hold (and drop undo).
            info.in_use.reserve(2, GFP_KERNEL)?;
            for (i, what) in [(upper_root, "upperdir"), (work_base, "workdir")] {
                if !i.inuse_trylock() {
                    return Err(fc.fail(EBUSY, fmt!("{} is in use by another mount", what)));
                }
                info.in_use.push(i, GFP_KERNEL)?;
            }
            // A volatile union reports later writeback errors of the upper filesystem from
            // `fsync(2)` and `syncfs(2)`; one nobody has seen yet would be taken for its own.
            if info.fsync == params::Fsync::Volatile {
                let upper = &info.upper_layer()?.mnt;
                let mark = upper.writeback_error_mark();
                if upper.writeback_error_since(mark).is_err() {
                    return Err(fc.fail(
                        EIO,
                        fmt!("Cannot mount volatile when upperdir has an unseen error. Sync upperdir fs to clear state."),
                    ));
                }
                info.writeback_mark = mark;
            }
            let (work, xattrs) = make_work_dir(&info, fc)?;
            info.work_dir = Some(work);
            upper_xattrs = xattrs;
            if !xattrs && matches!(info.uuid, params::Uuid::Auto | params::Uuid::On) {
                fc.warn(fmt!(
                    "failed to set xattr on upper, falling back to uuid=null."
                ));
                info.uuid = params::Uuid::Null;
            }
            let (uuid, mode) = upper_uuid(&info, info.uuid);
            info.uuid = mode;
            if let Some(uuid) = uuid {
                sb.set_uuid(&uuid);
            }
        }

        info.noxattr.store(!upper_xattrs, Ordering::Relaxed);
        if !upper_xattrs && info.redirect.follows() && info.has_upper() {
            fc.warn(fmt!(
                "failed to set xattr on upper, falling back to redirect_dir=nofollow."
            ));
            info.redirect = Redirect::NoFollow;
        }
        if !upper_xattrs && info.metacopy && info.has_upper() {
            fc.warn(fmt!(
                "failed to set xattr on upper, falling back to metacopy=off."
            ));
            info.metacopy = false;
        }
        (info.index, info.nfs_export) = choose_index(&info, fc, cfg, upper_xattrs)?;
        if info.metacopy && info.nfs_export {
            fc.warn(fmt!(
                "NFS export is not supported with metadata only copy up, falling back to nfs_export=off."
            ));
            info.nfs_export = false;
        }
        info.bad_uuid = bad_uuids(&info)?;
        (info.xino, info.xino_bits) = choose_xino(&info, fc, cfg.xino, upper_xattrs, cfg.uuid);
        if info.bad_uuid.iter().any(|&b| b) {
            info.index = false;
            info.nfs_export = false;
        }
        if info.index {
            // The index directory is the work directory from now on (overlayfs' layout).
            info.work_dir = Some(crate::index::setup(&info, fc)?);
        }
        info.traps = layer_traps(&info)?;
        sb.set_params(UNIONRS_SUPER_MAGIC, i64::MAX, 1, depth);
        sb.set_skip_global_sync();
        if info.work.is_none() {
            sb.set_readonly();
        }
        Ok(info)
    }

    fn root_inode(sb: &SuperBlock<Self>) -> Result<ARef<Inode>> {
        let fs = sb.info();
        let mut stack = KVec::new();
        // Layer roots always merge: like overlayfs, an opaque mark on a layer's root is
        // ignored (OCI layers often carry one there).
        for (i, l) in fs.layers.iter().enumerate() {
            if l.kind == LayerKind::Data {
                continue;
            }
            let root: ARef<Dentry> = l.spec.path.dentry().into();
            stack.push(
                RealEntry {
                    layer: i,
                    dentry: root,
                },
                GFP_KERNEL,
            )?;
        }
        let top = fs.top().ok_or(EINVAL)?;
        let real = top.spec.path.dentry().inode().ok_or(ENOENT)?;
        // Known by its top root, never by a lower one (overlayfs' rule for the root).
        let ino = fs.inode_number(0, real.ino(), true);
        let seen = fs.layers.len();
        let data = UnionInode::new(stack, fs.has_upper(), false, None, false, None, seen)?;
        data.set_root();
        if fs.has_upper() && fs.with_mounter(|m| fs.is_impure_dir(m, top.spec.path.dentry())) {
            data.set_impure();
        }
        sb.new_unhashed_inode(ino, real, top.mnt.id_map(), data)
    }

    fn creds(sb: &SuperBlock<Self>) -> &MounterCreds {
        &sb.info().creds
    }

    fn permission_targets(data: &UnionInode) -> crate::vfs::fs_type::PermissionTargets {
        crate::inode::permission_targets(data)
    }
}

#[vtable]
impl SuperOps for UnionFs {
    /// As overlayfs: when every layer's filesystem can decode file handles (and the mounter
    /// may), union objects have handles too.
    fn encodes_fids(info: &Self) -> bool {
        info.layers
            .iter()
            .all(|l| l.mnt.fh_support() != FhSupport::None)
    }

    fn encode_fh(inode: &FsInode<Self>) -> Result<(u8, KVec<u8>)> {
        inode.sb().info().encode_union_fh(inode)
    }

    /// With `nfs_export=on`.
    fn decodes_fh(info: &Self) -> bool {
        info.nfs_export
    }

    fn fh_to_dentry(sb: &SuperBlock<Self>, ty: u8, fh: &[u8]) -> Result<ARef<Dentry>> {
        sb.info().fh_to_dentry(sb, ty, fh)
    }

    /// Syncs the upper filesystem, on the waiting pass only (`sync(2)` goes over every
    /// filesystem, the upper's too; `syncfs(2)` on the union must reach it). A volatile union
    /// syncs nothing and reports a writeback error of the upper filesystem since the mount
    /// (overlayfs' `ovl_sync_fs`).
    fn sync_fs(sb: &SuperBlock<Self>, wait: bool) -> Result {
        let fs = sb.info();
        if !fs.needs_sync().map_err(|_| EIO)? || !wait {
            return Ok(());
        }
        match fs.upper_layer() {
            Ok(upper) => upper.mnt.sync_filesystem(),
            Err(_) => Ok(()),
        }
    }

    /// What the top layer's filesystem reports, with the union's type.
    fn statfs(sb: &SuperBlock<Self>, buf: &mut Kstatfs<'_>) -> Result {
        let fs = sb.info();
        let top = fs.top().ok_or(EIO)?;
        let path = RealPath {
            mnt: &top.mnt,
            dentry: top.spec.path.dentry(),
        };
        fs.with_mounter(|m| buf.fill_from(m, path))?;
        buf.set_type(UNIONRS_SUPER_MAGIC);
        buf.set_namelen(fs.namelen.try_into().unwrap_or(kernel::ffi::c_long::MAX));
        Ok(())
    }

    fn show_options(m: &SeqFile, sb: &SuperBlock<Self>) -> Result {
        let fs = sb.info();
        match &fs.lowerdir_all {
            Some(all) if fs.added_count() == 0 => seq_show_option(m, c"lowerdir", Some(all)),
            Some(all) => {
                // The layers added since, in `lowerdir=`'s own escaping.
                let mut v = KVec::new();
                v.extend_from_slice(all.to_bytes(), GFP_KERNEL)?;
                for l in fs.layers.added() {
                    v.push(b':', GFP_KERNEL)?;
                    for &c in l.spec.name.to_bytes() {
                        if c == b':' || c == b'\\' {
                            v.push(b'\\', GFP_KERNEL)?;
                        }
                        v.push(c, GFP_KERNEL)?;
                    }
                }
                v.push(0, GFP_KERNEL)?;
                let v = CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?;
                seq_show_option(m, c"lowerdir", Some(v))
            }
            None => {
                for l in fs.layers.iter() {
                    match l.kind {
                        LayerKind::Lower => seq_show_option(m, c"lowerdir+", Some(&l.spec.name)),
                        LayerKind::Data => seq_show_option(m, c"datadir+", Some(&l.spec.name)),
                        _ => {}
                    }
                }
            }
        }
        for l in fs.layers.iter().filter(|l| l.kind == LayerKind::Upper) {
            seq_show_option(m, c"upperdir", Some(&l.spec.name));
        }
        if let Some(w) = &fs.work {
            seq_show_option(m, c"workdir", Some(&w.name));
        }
        if fs.default_permissions {
            seq_show_option(m, c"default_permissions", None);
        }
        // Only what differs from the defaults, as overlayfs shows them.
        let on_off = |on: bool| if on { c"on" } else { c"off" };
        if fs.redirect != Redirect::default_mode() {
            seq_show_option(m, c"redirect_dir", Some(fs.redirect.name()));
        }
        if fs.index != crate::defaults::index() {
            seq_show_option(m, c"index", Some(on_off(fs.index)));
        }
        if fs.uuid != params::Uuid::Auto {
            seq_show_option(m, c"uuid", Some(fs.uuid.name()));
        }
        if fs.nfs_export != crate::defaults::nfs_export() {
            seq_show_option(m, c"nfs_export", Some(on_off(fs.nfs_export)));
        }
        if fs.xino != Xino::default_mode() && !fs.same_fs {
            seq_show_option(m, c"xino", Some(fs.xino.name()));
        }
        if fs.metacopy != crate::defaults::metacopy() {
            seq_show_option(m, c"metacopy", Some(on_off(fs.metacopy)));
        }
        // `volatile` shows as what it is short for, as in overlayfs.
        if fs.fsync != params::Fsync::Auto {
            seq_show_option(m, c"fsync", Some(fs.fsync.name()));
        }
        if fs.userxattr {
            seq_show_option(m, c"userxattr", None);
        }
        if fs.verity != params::Verity::Off {
            seq_show_option(m, c"verity", Some(fs.verity.name()));
        }
        if fs.oci_whiteouts {
            seq_show_option(m, c"whiteout", Some(c"oci"));
        }
        Ok(())
    }
}
