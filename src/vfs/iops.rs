// SPDX-License-Identifier: GPL-2.0

//! Inode operations: one `#[vtable]` trait per kind of inode object ([`InodeOps`] for what
//! every inode does, [`DirOps`] for directories, [`SymlinkOps`] for symlinks; regular files
//! are in `fops`), implemented by the filesystem's own type. A method left out is a NULL
//! entry in the C table, as for the kernel's own Rust abstractions.

use super::dentry::{kind_of, stamp_of, Dentry, DentryKind};
use super::file::{DirEmitter, IteratedDir, UserFile};
use super::fops::{FileOps, Fops};
use super::fs_type::{FileSystem, SuperOps};
use super::inode::{FsInode, Idmap, Inode, Kstat, PermInode};
use super::layer::Acl;
use super::real::{Iattr, NewObject, PosixAcl};
use super::super_block::SuperBlock;
use super::xattr_handler::XattrOps;
use super::{bindings as cb, AsMounter};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::{from_result, to_result, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::types::ForeignOwnable;

/// What every inode of the filesystem does.
#[vtable]
pub(crate) trait InodeOps: FileSystem {
    /// Checks `mask` access to `inode` for the calling task. Also called in RCU path walk
    /// (`mask` has `MAY_NOT_BLOCK`): then it must not sleep, which is why it sees only a
    /// [`PermInode`].
    fn permission(_inode: PermInode<'_, Self>, _idmap: Idmap, _mask: i32) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Fills `stat` for `inode` (`request_mask` and `flags` as `statx` passed them), with the
    /// ids the filesystem keeps (the VFS glue shows them through an idmapped mount).
    fn getattr(
        _inode: &FsInode<Self>,
        _stat: &mut Kstat<'_>,
        _request_mask: u32,
        _flags: u32,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Changes attributes of `dentry`'s object (the VFS checked the caller's rights).
    fn setattr(_dentry: &Dentry, _attr: &mut Iattr) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Lists the xattr names of `inode` into `buf` (or the size needed, for an empty `buf`).
    fn listxattr(_inode: &FsInode<Self>, _buf: &mut [u8]) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The POSIX ACL `ty` that permission checks use (never called in RCU walk).
    fn get_inode_acl(_inode: &FsInode<Self>, _ty: i32) -> Result<Option<Acl>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The POSIX ACL `ty` as `getfacl` sees it.
    fn get_acl(_inode: &FsInode<Self>, _ty: i32) -> Result<Option<Acl>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Sets (`Some`) or removes POSIX ACL `ty` of `dentry`'s object, for a caller that came
    /// through a mount with `idmap` (the VFS has turned the ACL's ids into the filesystem's).
    fn set_acl(_dentry: &Dentry, _ty: i32, _acl: Option<PosixAcl>, _idmap: Idmap) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `FIEMAP` of a regular file.
    fn fiemap(_inode: &FsInode<Self>, _info: &mut Fiemap<'_>, _start: u64, _len: u64) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// Directories: their inode operations and their open files.
#[vtable]
pub(crate) trait DirOps: FileOps {
    /// State of an open directory.
    type DirState: Send + Sync;

    /// Looks up the name of `dentry` (negative, being looked up) in directory `dir`: the
    /// inode, or `None` for a negative entry.
    fn lookup(_dir: &FsInode<Self>, _dentry: &Dentry) -> Result<Option<ARef<Inode>>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether `dentry`, of `sb` and found in the dentry cache, may still be used
    /// (`d_revalidate`): `Ok(false)` has the VFS look it up again.
    fn revalidate(_sb: &SuperBlock<Self>, _dentry: &Dentry) -> Result<bool> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// [`Self::revalidate`] in RCU walk, from what can be read of the dentry without a
    /// reference: its stamp (see `Dentry::stamp`) and its kind. Nothing may sleep or be
    /// written; `ECHILD` asks to be called again outside RCU walk.
    fn revalidate_rcu(_sb: &SuperBlock<Self>, _stamp: usize, _kind: DentryKind) -> Result<bool> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The stamp of a new dentry of `sb` (with [`Self::revalidate`]).
    fn initial_stamp(_sb: &SuperBlock<Self>) -> usize {
        0
    }

    /// `create`, `mkdir`, `mknod` and `symlink`: makes `what` as `dentry` (negative, in `dir`)
    /// and instantiates it; the caller came through a mount with `idmap`.
    fn create(
        _dir: &FsInode<Self>,
        _dentry: &Dentry,
        _what: NewObject<'_>,
        _idmap: Idmap,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Makes `new` (negative, in `dir`) another name for `old`.
    fn link(_old: &Dentry, _dir: &FsInode<Self>, _new: &Dentry) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Removes non-directory `dentry` from `dir`.
    fn unlink(_dir: &FsInode<Self>, _dentry: &Dentry) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Removes directory `dentry` from `dir`.
    fn rmdir(_dir: &FsInode<Self>, _dentry: &Dentry) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Renames `old` to `new` (`RENAME_*` flags).
    fn rename(_old: &Dentry, _new: &Dentry, _flags: u32) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Makes an unnamed regular file of mode `mode` in `dir` for `file` (being opened with
    /// `O_TMPFILE` through a mount with `idmap`): its inode and the state of the open file.
    fn tmpfile(
        _dir: &FsInode<Self>,
        _file: &UserFile,
        _mode: u32,
        _idmap: Idmap,
    ) -> Result<(ARef<Inode>, Self::OpenFile)> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Opens directory `dir`, as `dentry`.
    fn open_dir(_dir: &FsInode<Self>, _dentry: &Dentry) -> Result<Self::DirState> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Emits the entries of an open directory (`file`) from the emitter's position on.
    fn iterate(
        _dir: &FsInode<Self>,
        _state: &Self::DirState,
        _file: &IteratedDir<'_>,
        _out: &mut DirEmitter<'_>,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fsync` of an open directory.
    fn fsync_dir(_dir: &FsInode<Self>, _state: &Self::DirState, _datasync: bool) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// Symbolic links.
#[vtable]
pub(crate) trait SymlinkOps: FileSystem {
    /// Resolves symlink `inode` into `out` (not in RCU walk).
    fn get_link(_inode: &FsInode<Self>, _out: &mut LinkTarget<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// Every operation trait of the module: what a filesystem type implements.
pub(crate) trait AllOps: InodeOps + DirOps + SymlinkOps + XattrOps + SuperOps {}
impl<T: InodeOps + DirOps + SymlinkOps + XattrOps + SuperOps> AllOps for T {}

/// Where [`SymlinkOps::get_link`] puts the target.
///
/// # Invariants
///
/// `done` is the caller's delayed call, and `target` is NULL or a string valid until it runs.
pub(crate) struct LinkTarget<'a> {
    done: *mut bindings::delayed_call,
    target: *const c_char,
    _call: PhantomData<&'a mut bindings::delayed_call>,
}

impl LinkTarget<'_> {
    /// Resolves the real symlink `d` (of a layer) into this target, as the mounter.
    pub(crate) fn resolve(&mut self, _m: &AsMounter<'_>, d: &Dentry) -> Result {
        // SAFETY: the dentry is live; `done` is the caller's (type invariant).
        let t = unsafe { bindings::vfs_get_link(d.as_ptr(), self.done) };
        // INVARIANT: `vfs_get_link` keeps the string valid until `done` runs.
        self.target = kernel::error::from_err_ptr(t.cast_mut())?;
        Ok(())
    }
}

/// The caller's `FIEMAP` request (`fiemap_extent_info`), forwarded to a real inode.
pub(crate) struct Fiemap<'a>(&'a mut bindings::fiemap_extent_info);

impl Fiemap<'_> {
    /// Forwards the request to the real inode's own `fiemap`, as the mounter.
    pub(crate) fn forward(
        &mut self,
        _m: &AsMounter<'_>,
        real: &Inode,
        start: u64,
        len: u64,
    ) -> Result {
        // SAFETY: the real inode is live; its ops table is static.
        let op = unsafe { (*(*real.as_ptr()).i_op).fiemap }.ok_or_else(super::errno::eopnotsupp)?;
        // SAFETY: forwarding the caller's request to the real filesystem's own fiemap.
        to_result(unsafe { op(real.as_ptr(), self.0, start, len) })
    }
}

/// Picks the operation tables for a new inode by its (already copied) mode.
///
/// # Safety
///
/// `inode` must be a new inode of `T` that only the caller uses.
pub(super) unsafe fn set_ops<T: AllOps>(inode: *mut bindings::inode) {
    let dir_iops: &'static bindings::inode_operations = &Iops::<T>::DIR;
    let file_iops: &'static bindings::inode_operations = &Iops::<T>::FILE;
    let symlink_iops: &'static bindings::inode_operations = &Iops::<T>::SYMLINK;
    let special_iops: &'static bindings::inode_operations = &Iops::<T>::SPECIAL;
    let dir_fops: &'static bindings::file_operations = &Fops::<T>::DIR;
    let file_fops: &'static bindings::file_operations = &Fops::<T>::FILE;
    let file_aops: &'static bindings::address_space_operations = &FILE_AOPS;
    // SAFETY: exclusive access, as the caller promises; the tables are `'static`.
    unsafe {
        let mode = u32::from((*inode).i_mode);
        match mode & bindings::S_IFMT {
            bindings::S_IFDIR => {
                (*inode).i_op = dir_iops;
                (*inode).__bindgen_anon_3.i_fop = dir_fops;
            }
            bindings::S_IFREG => {
                (*inode).i_op = file_iops;
                (*inode).__bindgen_anon_3.i_fop = file_fops;
                (*(*inode).i_mapping).a_ops = file_aops;
            }
            bindings::S_IFLNK => (*inode).i_op = symlink_iops,
            _ => {
                (*inode).i_op = special_iops;
                bindings::init_special_inode(inode, (*inode).i_mode, (*inode).i_rdev);
            }
        }
    }
}

/// The dentry operations of `T`'s dentries (for `set_default_d_op`), if it revalidates them.
pub(super) fn dentry_ops<T: AllOps>() -> Option<&'static bindings::dentry_operations> {
    let ops: &'static bindings::dentry_operations = &Iops::<T>::DENTRY;
    T::HAS_REVALIDATE.then_some(ops)
}

/// `LOOKUP_RCU` of `include/linux/namei.h` (a `BIT()` macro, which bindgen does not see).
const LOOKUP_RCU: c_uint = 1 << 8;

/// Regular files: `O_DIRECT` is the real file's business (as in overlayfs).
static FILE_AOPS: bindings::address_space_operations = bindings::address_space_operations {
    direct_IO: Some(bindings::noop_direct_IO),
    // SAFETY: all-zero is a valid ops table (all `None`).
    ..unsafe { core::mem::zeroed() }
};

/// The `inode_operations` tables of `T` and their trampolines.
struct Iops<T>(PhantomData<T>);

/// `Some(f)` if the implementor provides the method, else `None` (a NULL table entry).
macro_rules! op {
    ($has:expr, $f:expr) => {
        if $has {
            Some($f)
        } else {
            None
        }
    };
}

impl<T: AllOps> Iops<T> {
    const DIR: bindings::inode_operations = bindings::inode_operations {
        lookup: op!(<T as DirOps>::HAS_LOOKUP, Self::lookup),
        create: op!(<T as DirOps>::HAS_CREATE, Self::create),
        mkdir: op!(<T as DirOps>::HAS_CREATE, Self::mkdir),
        mknod: op!(<T as DirOps>::HAS_CREATE, Self::mknod),
        symlink: op!(<T as DirOps>::HAS_CREATE, Self::symlink),
        link: op!(<T as DirOps>::HAS_LINK, Self::link),
        unlink: op!(<T as DirOps>::HAS_UNLINK, Self::unlink),
        rmdir: op!(<T as DirOps>::HAS_RMDIR, Self::rmdir),
        rename: op!(<T as DirOps>::HAS_RENAME, Self::rename),
        tmpfile: op!(<T as DirOps>::HAS_TMPFILE, Self::tmpfile),
        ..Self::COMMON
    };

    const FILE: bindings::inode_operations = bindings::inode_operations {
        fiemap: op!(T::HAS_FIEMAP, Self::fiemap),
        ..Self::COMMON
    };

    const SYMLINK: bindings::inode_operations = bindings::inode_operations {
        get_link: op!(T::HAS_GET_LINK, Self::get_link),
        get_inode_acl: None,
        get_acl: None,
        set_acl: None,
        permission: None,
        ..Self::COMMON
    };

    const SPECIAL: bindings::inode_operations = Self::COMMON;

    const DENTRY: bindings::dentry_operations = bindings::dentry_operations {
        d_init: Some(Self::d_init),
        d_revalidate: Some(Self::d_revalidate),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// `dentry_operations::d_init`: a new dentry's stamp, which the dcache leaves
    /// uninitialized.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, on a dentry of `T` being allocated (its superblock is set up:
    /// `set_default_d_op` is called after `s_fs_info`).
    unsafe extern "C" fn d_init(dentry: *mut bindings::dentry) -> c_int {
        // SAFETY: as the function's contract says; nobody else sees the dentry yet.
        unsafe {
            let sb = SuperBlock::<T>::from_raw((*dentry).d_sb);
            stamp_of(dentry).store(T::initial_stamp(sb), core::sync::atomic::Ordering::Relaxed);
        }
        0
    }

    /// `dentry_operations::d_revalidate`, also called in RCU walk.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a dentry of `T` that the VFS keeps alive for the
    /// call; in RCU walk (`LOOKUP_RCU`) only under `rcu_read_lock`, without a reference, and
    /// its inode may go meanwhile.
    unsafe extern "C" fn d_revalidate(
        _dir: *mut bindings::inode,
        _name: *const bindings::qstr,
        dentry: *mut bindings::dentry,
        flags: c_uint,
    ) -> c_int {
        // SAFETY: a dentry's superblock is ours and outlives it (an unmount waits for RCU
        // walkers before the superblock goes).
        let sb = unsafe { SuperBlock::<T>::from_raw((*dentry).d_sb) };
        let r = if flags & LOOKUP_RCU != 0 {
            // SAFETY: the dentry stays allocated under `rcu_read_lock` (dentries are freed
            // after a grace period); only its stamp and type bits are read, no reference to
            // it is made.
            let (stamp, kind) = unsafe {
                (
                    stamp_of(dentry).load(core::sync::atomic::Ordering::Relaxed),
                    kind_of(dentry),
                )
            };
            T::revalidate_rcu(sb, stamp, kind)
        } else {
            // SAFETY: outside RCU walk the VFS holds a reference to the dentry.
            T::revalidate(sb, unsafe { Dentry::from_raw(dentry) })
        };
        match r {
            Ok(valid) => c_int::from(valid),
            Err(e) => e.to_errno(),
        }
    }

    /// What every inode kind has.
    const COMMON: bindings::inode_operations = bindings::inode_operations {
        permission: op!(T::HAS_PERMISSION, Self::permission),
        getattr: op!(T::HAS_GETATTR, Self::getattr),
        setattr: op!(T::HAS_SETATTR, Self::setattr),
        listxattr: op!(T::HAS_LISTXATTR, Self::listxattr),
        get_inode_acl: op!(T::HAS_GET_INODE_ACL, Self::get_inode_acl),
        get_acl: op!(T::HAS_GET_ACL, Self::get_acl),
        set_acl: op!(T::HAS_SET_ACL, Self::set_acl),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// `inode_operations::lookup`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dir` is a directory inode of `T`, locked by the VFS, and
    /// `dentry` a negative dentry in it, referenced for the call.
    unsafe extern "C" fn lookup(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        _flags: c_uint,
    ) -> *mut bindings::dentry {
        // SAFETY: as the function's contract says; the name of a dentry being looked up is
        // stable.
        let (dir, d) = unsafe { (FsInode::<T>::from_raw(dir), Dentry::from_raw(dentry)) };
        match T::lookup(dir, d) {
            Ok(inode) => {
                let raw =
                    inode.map_or(core::ptr::null_mut(), |i| ARef::into_raw(i).as_ptr().cast());
                // SAFETY: `d_splice_alias` takes over our inode reference (or a NULL inode for
                // a negative entry).
                unsafe { bindings::d_splice_alias(raw, dentry) }
            }
            Err(e) => e.to_ptr(),
        }
    }

    /// `inode_operations::permission`, also called in RCU path walk.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is an inode of `T` that the VFS keeps alive for the
    /// call (in RCU walk, under `rcu_read_lock`); `idmap` is the mount's id mapping.
    unsafe extern "C" fn permission(
        idmap: *mut bindings::mnt_idmap,
        inode: *mut bindings::inode,
        mask: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let inode = unsafe { PermInode::<T>::from_raw(inode) };
            T::permission(inode, Idmap(idmap), mask)?;
            Ok(0)
        })
    }

    /// `inode_operations::getattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `path` is a path to an object of `T` and `stat` the caller's
    /// `kstat`, both valid for the call.
    unsafe extern "C" fn getattr(
        idmap: *mut bindings::mnt_idmap,
        path: *const bindings::path,
        stat: *mut bindings::kstat,
        request_mask: u32,
        flags: c_uint,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (inode, stat) = unsafe {
                (
                    FsInode::<T>::from_raw((*(*path).dentry).d_inode),
                    &mut *stat,
                )
            };
            let mut stat = Kstat(stat);
            T::getattr(inode, &mut stat, request_mask, flags)?;
            stat.map_owner(Idmap(idmap), inode.inode().user_ns());
            Ok(0)
        })
    }

    /// `inode_operations::setattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` whose inode the VFS has
    /// locked, and `attr` the caller's attributes, valid for the call.
    unsafe extern "C" fn setattr(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        attr: *mut bindings::iattr,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            unsafe { to_result(bindings::setattr_prepare(idmap, dentry, attr))? };
            // SAFETY: as above; we work on a copy of the caller's request.
            let (d, mut copy) = unsafe { (Dentry::from_raw(dentry), Iattr(*attr)) };
            // SAFETY: the dentry is positive (the function's contract).
            let ns = unsafe { Inode::from_raw((*dentry).d_inode) }.user_ns();
            copy.unmap_owner(Idmap(idmap), ns);
            T::setattr(d, &mut copy)?;
            Ok(0)
        })
    }

    /// Runs a namespace operation on `dentry` in directory `dir`.
    ///
    /// # Safety
    ///
    /// `dir` must be a live directory inode of `T`, locked by the VFS for the operation, and
    /// `dentry` a referenced dentry in it.
    unsafe fn dirop(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        f: impl FnOnce(&FsInode<T>, &Dentry) -> Result,
    ) -> c_int {
        // SAFETY: as the caller promises.
        let (dir, d) = unsafe { (FsInode::<T>::from_raw(dir), Dentry::from_raw(dentry)) };
        from_result(|| {
            f(dir, d)?;
            Ok(0)
        })
    }

    /// `inode_operations::create`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` negative).
    unsafe extern "C" fn create(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        _excl: bool,
    ) -> c_int {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFREG;
        // SAFETY: as the function's contract says.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev: 0 }, Idmap(idmap))
            })
        }
    }

    /// `inode_operations::mkdir`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` negative).
    unsafe extern "C" fn mkdir(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
    ) -> *mut bindings::dentry {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFDIR;
        // SAFETY: as the function's contract says.
        let r = unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev: 0 }, Idmap(idmap))
            })
        };
        if r < 0 {
            Error::from_errno(r).to_ptr()
        } else {
            // The dentry passed in is the one instantiated.
            core::ptr::null_mut()
        }
    }

    /// `inode_operations::mknod`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` negative).
    unsafe extern "C" fn mknod(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        rdev: bindings::dev_t,
    ) -> c_int {
        let mode = u32::from(mode);
        // SAFETY: as the function's contract says.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev }, Idmap(idmap))
            })
        }
    }

    /// `inode_operations::symlink`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` negative); `target` is a
    /// NUL-terminated string valid for the call.
    unsafe extern "C" fn symlink(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        target: *const c_char,
    ) -> c_int {
        // SAFETY: as the function's contract says.
        let target = unsafe { CStr::from_char_ptr(target) };
        // SAFETY: as the function's contract says.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Symlink(target), Idmap(idmap))
            })
        }
    }

    /// `inode_operations::link`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires for `dir` and `new`; `old` is a
    /// positive dentry of `T` pinned for the call.
    unsafe extern "C" fn link(
        old: *mut bindings::dentry,
        dir: *mut bindings::inode,
        new: *mut bindings::dentry,
    ) -> c_int {
        // SAFETY: as the function's contract says.
        let old = unsafe { Dentry::from_raw(old) };
        // SAFETY: as the function's contract says.
        unsafe { Self::dirop(dir, new, |dir, d| T::link(old, dir, d)) }
    }

    /// `inode_operations::unlink`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` positive).
    unsafe extern "C" fn unlink(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
        // SAFETY: as the function's contract says.
        unsafe { Self::dirop(dir, dentry, T::unlink) }
    }

    /// `inode_operations::rmdir`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, as [`Self::dirop`] requires (`dentry` positive).
    unsafe extern "C" fn rmdir(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
        // SAFETY: as the function's contract says.
        unsafe { Self::dirop(dir, dentry, T::rmdir) }
    }

    /// `inode_operations::rename`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, with the locks of a rename held: `old` is a positive dentry in
    /// a directory of `T`, `new` a dentry in another or the same.
    unsafe extern "C" fn rename(
        _idmap: *mut bindings::mnt_idmap,
        _old_dir: *mut bindings::inode,
        old: *mut bindings::dentry,
        _new_dir: *mut bindings::inode,
        new: *mut bindings::dentry,
        flags: c_uint,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (old, new) = unsafe { (Dentry::from_raw(old), Dentry::from_raw(new)) };
            T::rename(old, new, flags)?;
            Ok(0)
        })
    }

    /// `inode_operations::tmpfile`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dir` is a directory inode of `T` and `file` a file being
    /// opened on a new negative dentry in it, both valid for the call.
    unsafe extern "C" fn tmpfile(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        file: *mut bindings::file,
        mode: bindings::umode_t,
    ) -> c_int {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFREG;
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (dir, user) = unsafe { (FsInode::<T>::from_raw(dir), UserFile::from_raw(file)) };
            let (inode, of) = T::tmpfile(dir, user, mode, Idmap(idmap))?;
            let of = KBox::new(of, GFP_KERNEL)?;
            // SAFETY: `private_data` of a file being opened is ours; `Fops` releases it.
            unsafe { (*file).private_data = of.into_foreign() };
            let dentry = user.dentry().as_ptr();
            // SAFETY: `file` is being opened on the negative `dentry`; the inode reference goes
            // to the dentry; `finish_open` completes the open with a no-op callback.
            let err = unsafe {
                let inode = ARef::into_raw(inode).as_ptr().cast();
                bindings::d_mark_tmpfile(file, inode);
                bindings::d_instantiate(dentry, inode);
                bindings::finish_open(file, dentry, Some(Self::opened))
            };
            // SAFETY: as above.
            if unsafe { (*file).f_mode } & cb::UNIONRS_FMODE_OPENED == 0 {
                // Without FMODE_OPENED, release() is not called: free our state here.
                // SAFETY: we stored this box just above and nobody else took it.
                drop(unsafe {
                    <KBox<T::OpenFile> as ForeignOwnable>::from_foreign((*file).private_data)
                });
            }
            to_result(err)?;
            Ok(0)
        })
    }

    /// The `open` callback of `finish_open` for a tmpfile: our state is in place already.
    ///
    /// # Safety
    ///
    /// Called by `finish_open` only.
    unsafe extern "C" fn opened(_inode: *mut bindings::inode, _file: *mut bindings::file) -> c_int {
        0
    }

    /// `inode_operations::fiemap`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is an inode of `T` and `info` the caller's extent
    /// buffer, valid for the call.
    unsafe extern "C" fn fiemap(
        inode: *mut bindings::inode,
        info: *mut bindings::fiemap_extent_info,
        start: u64,
        len: u64,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (inode, info) = unsafe { (FsInode::<T>::from_raw(inode), &mut *info) };
            T::fiemap(inode, &mut Fiemap(info), start, len)?;
            Ok(0)
        })
    }

    /// `inode_operations::get_link`, also called in RCU path walk (`dentry` NULL).
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a symlink inode of `T`, alive for the call;
    /// `dentry`, if not NULL, is its dentry; `done` is the caller's delayed call.
    unsafe extern "C" fn get_link(
        dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        done: *mut bindings::delayed_call,
    ) -> *const c_char {
        if dentry.is_null() {
            // RCU walk: the real filesystem may need to sleep.
            return ECHILD.to_ptr();
        }
        // SAFETY: as the function's contract says.
        let inode = unsafe { FsInode::<T>::from_raw(inode) };
        // INVARIANT: `done` is the caller's; no target yet.
        let mut out = LinkTarget {
            done,
            target: core::ptr::null(),
            _call: PhantomData,
        };
        match T::get_link(inode, &mut out) {
            Ok(()) if !out.target.is_null() => out.target,
            Ok(()) => EIO.to_ptr(),
            Err(e) => e.to_ptr(),
        }
    }

    /// `inode_operations::listxattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` and `list` writable for
    /// `size` bytes (or NULL with size 0).
    unsafe extern "C" fn listxattr(
        dentry: *mut bindings::dentry,
        list: *mut c_char,
        size: usize,
    ) -> isize {
        // SAFETY: as the function's contract says.
        let (inode, buf) = unsafe {
            (
                FsInode::<T>::from_raw((*dentry).d_inode),
                if list.is_null() {
                    &mut [][..]
                } else {
                    core::slice::from_raw_parts_mut(list.cast::<u8>(), size)
                },
            )
        };
        match T::listxattr(inode, buf) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// `inode_operations::get_inode_acl`, also called in RCU path walk.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is an inode of `T`, alive for the call.
    unsafe extern "C" fn get_inode_acl(
        inode: *mut bindings::inode,
        ty: c_int,
        rcu: bool,
    ) -> *mut bindings::posix_acl {
        if rcu {
            return ECHILD.to_ptr();
        }
        // SAFETY: as the function's contract says.
        let inode = unsafe { FsInode::<T>::from_raw(inode) };
        match T::get_inode_acl(inode, ty) {
            Ok(acl) => acl.map_or(core::ptr::null_mut(), Acl::into_raw),
            Err(e) => e.to_ptr(),
        }
    }

    /// `inode_operations::get_acl`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T`, referenced for the call.
    unsafe extern "C" fn get_acl(
        _idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        ty: c_int,
    ) -> *mut bindings::posix_acl {
        // SAFETY: as the function's contract says.
        let inode = unsafe { FsInode::<T>::from_raw((*dentry).d_inode) };
        match T::get_acl(inode, ty) {
            Ok(acl) => acl.map_or(core::ptr::null_mut(), Acl::into_raw),
            Err(e) => e.to_ptr(),
        }
    }

    /// `inode_operations::set_acl`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` whose inode the VFS has
    /// locked; `acl` is NULL or a valid ACL, both for the call.
    unsafe extern "C" fn set_acl(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        acl: *mut bindings::posix_acl,
        ty: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let d = unsafe { Dentry::from_raw(dentry) };
            T::set_acl(
                d,
                ty,
                (!acl.is_null()).then_some(PosixAcl(acl)),
                Idmap(idmap),
            )?;
            Ok(0)
        })
    }
}
