// SPDX-License-Identifier: GPL-2.0

//! The filesystem type: registration, and the trait that the union logic implements to
//! answer the VFS' mount-time callbacks.
//!
//! The `file_system_type` and `fs_context_operations` tables live in `glue.c`, because the
//! fs_context structures are opaque to Rust; they call the `unionrs_rs_*` hooks that
//! [`declare_filesystem!`] generates for the one filesystem of this module.

use super::cred::MounterCreds;
use super::dentry::Dentry;
use super::ffi;
use super::file::DirEmitter;
use super::fs_context::{FsContext, Param};
use super::inode::{FsInode, Inode, PermInode};
use super::layer::RealPath;
use super::ops::{Idmap, Kstat};
use super::super_block::{NewSuperBlock, SuperBlock};
use super::upper::{Iattr, NewObject, PosixAcl};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::{from_result, to_result};
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::sync::aref::ARef;
use kernel::types::ForeignOwnable;

/// What permission checks look at (see [`FileSystem::real_top`]): the upper object, and the
/// top lower object with its layer number.
pub(crate) type RealTop = (Option<ARef<Dentry>>, Option<(ARef<Dentry>, usize)>);

/// A filesystem implemented on top of the wrappers of this module.
pub(crate) trait FileSystem: Sized + 'static {
    /// What the mount options build up, one per mount context.
    type Config: Default;
    /// Per-superblock data, kept in `s_fs_info` until the superblock dies.
    type Info: Send + Sync;

    /// Takes one mount parameter into `cfg`.
    fn parse_param(fc: &FsContext, cfg: &mut Self::Config, param: Param<'_>) -> Result;

    /// Applies a remount of `sb`; `wants_rw` if it asks for read-write.
    fn reconfigure(
        fc: &FsContext,
        sb: &SuperBlock<Self>,
        wants_rw: bool,
        cfg: &mut Self::Config,
    ) -> Result;

    /// Checks the configuration and sets up a new superblock; returns its private data.
    fn fill_super(
        fc: &FsContext,
        sb: &NewSuperBlock,
        cfg: &mut Self::Config,
    ) -> Result<KBox<Self::Info>>;

    /// Builds the root inode, once the private data is in place.
    fn root_inode(sb: &SuperBlock<Self>) -> Result<ARef<Inode>>;

    /// Writes the mount options shown in `/proc/self/mountinfo`.
    fn show_options(m: &SeqFile, sb: &SuperBlock<Self>) -> Result;

    /// Per-inode data of our inodes.
    type InodeData: Send + Sync;
    /// State of an open directory.
    type DirState: Send + Sync;

    /// The credentials that operations on the layers run with.
    fn creds(sb: &SuperBlock<Self>) -> &MounterCreds;

    /// The layer path whose filesystem `statfs` reports.
    fn statfs_path(sb: &SuperBlock<Self>) -> Result<RealPath<'_>>;

    /// The real object behind `inode` that stat, open, read and readlink go to.
    fn real_path(inode: &FsInode<Self>) -> Result<RealPath<'_>>;

    /// Looks up `name` in directory `dir` (called with the mounter's credentials).
    fn lookup(dir: &FsInode<Self>, name: &[u8]) -> Result<Option<ARef<Inode>>>;

    /// The real objects of a new inode with `data` that permission checks look at: its upper
    /// object, if it has one, and its top lower object with its layer number (the upper layer
    /// is 0).
    fn real_top(data: &Self::InodeData) -> RealTop;

    /// Checks `mask` access to `inode` for the calling task. Also called in RCU path walk
    /// (`mask` has `MAY_NOT_BLOCK`): then it must not sleep, which is why it sees only a
    /// `PermInode`.
    fn permission(inode: PermInode<'_, Self>, idmap: Idmap, mask: i32) -> Result;

    /// Adjusts what the real inode's `getattr` reported (device, inode number, links).
    fn fix_stat(inode: &FsInode<Self>, stat: &mut Kstat<'_>) -> Result;

    /// Opens directory `inode` (called with the mounter's credentials).
    fn open_dir(inode: &FsInode<Self>) -> Result<Self::DirState>;

    /// Reads extended attribute `name` of `inode` into `buf` (or its size, for an empty
    /// `buf`).
    fn getxattr(inode: &FsInode<Self>, name: &CStr, buf: &mut [u8]) -> Result<usize>;

    /// Lists the extended attribute names of `inode` into `buf` (or the size needed).
    fn listxattr(inode: &FsInode<Self>, buf: &mut [u8]) -> Result<usize>;

    /// Emits the entries of an open directory from the emitter's position on
    /// (called with the mounter's credentials).
    fn iterate(
        inode: &FsInode<Self>,
        dir: &Self::DirState,
        parent_ino: u64,
        out: &mut DirEmitter<'_>,
    ) -> Result;

    /// Creates `what` as `dentry` (negative, in directory `dir`) and instantiates it.
    fn create(dir: &FsInode<Self>, dentry: &Dentry, what: NewObject<'_>) -> Result;

    /// Makes `new` (negative, in `dir`) another name for `old`.
    fn link(old: &Dentry, dir: &FsInode<Self>, new: &Dentry) -> Result;

    /// Removes `dentry` from `dir` (rmdir if `is_dir`, else unlink).
    fn remove(dir: &FsInode<Self>, dentry: &Dentry, is_dir: bool) -> Result;

    /// Renames `old` to `new` (`RENAME_*` flags).
    fn rename(old: &Dentry, new: &Dentry, flags: u32) -> Result;

    /// Changes attributes of `dentry`'s object (the VFS checked the caller's rights).
    fn setattr(dentry: &Dentry, attr: &mut Iattr) -> Result;

    /// Sets (`Some`) or removes (`None`) xattr `name` of `dentry`'s object.
    fn setxattr(dentry: &Dentry, name: &CStr, value: Option<&[u8]>, flags: i32) -> Result;

    /// `fsync` of directory `inode`.
    fn fsync_dir(inode: &FsInode<Self>, datasync: bool) -> Result;

    /// Sets (`Some`) or removes POSIX ACL `ty` of `dentry`'s object.
    fn set_acl(dentry: &Dentry, ty: i32, acl: Option<&PosixAcl>) -> Result;

    /// Makes an unnamed regular file (`O_TMPFILE`) for `dentry` in `dir`: `open` opens the
    /// real one in the given real directory and returns its dentry. Returns our inode for it.
    fn tmpfile(
        dir: &FsInode<Self>,
        dentry: &Dentry,
        open: &mut dyn FnMut(RealPath<'_>) -> Result<ARef<Dentry>>,
    ) -> Result<ARef<Inode>>;

    /// Called before `dentry`'s regular file is opened with `flags`: copies it up if the open
    /// may write.
    fn prepare_open(dentry: &Dentry, flags: u32) -> Result;
}

/// Writes `,name=value` (or `,name` for `None`) to a mount-option listing, escaping as the VFS
/// does.
pub(crate) fn seq_show_option(m: &SeqFile, name: &CStr, value: Option<&CStr>) {
    use kernel::str::CStrExt;
    // SAFETY: the strings are NUL-terminated (or NULL for no value) and `m` is a live seq_file.
    unsafe {
        ffi::unionrs_seq_show_option(
            core::ptr::from_ref(m).cast_mut().cast(),
            name.as_char_ptr(),
            value.map_or(core::ptr::null(), |v| v.as_char_ptr()),
        )
    };
}

/// Trampolines from the C hooks to a [`FileSystem`].
#[doc(hidden)]
pub(crate) struct Adapter<T: FileSystem>(PhantomData<T>);

impl<T: FileSystem> Adapter<T> {
    /// The `super_operations` of `T`.
    pub(crate) const SUPER_OPS: bindings::super_operations = bindings::super_operations {
        alloc_inode: Some(FsInode::<T>::alloc_inode),
        destroy_inode: Some(FsInode::<T>::destroy_inode),
        free_inode: Some(FsInode::<T>::free_inode),
        // Like overlayfs: an inode goes when its last dentry does, so it never outlives the
        // layer objects it refers to in a cache.
        drop_inode: Some(bindings::inode_just_drop),
        show_options: Some(Self::show_options),
        statfs: Some(super::ops::Adapter::<T>::statfs),
        // SAFETY: all-zero is a valid `super_operations` (every other member is `None`).
        ..unsafe { core::mem::zeroed() }
    };

    pub(crate) fn fc_alloc() -> *mut c_void {
        match KBox::new(T::Config::default(), GFP_KERNEL) {
            Ok(cfg) => cfg.into_foreign(),
            Err(_) => core::ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// `cfg` must come from [`Self::fc_alloc`] and not be used afterwards.
    pub(crate) unsafe fn fc_free(cfg: *mut c_void) {
        // SAFETY: the caller passes back the box of `fc_alloc` exactly once.
        drop(unsafe { <KBox<T::Config> as ForeignOwnable>::from_foreign(cfg) });
    }

    /// # Safety
    ///
    /// `fc` is a live context whose `fs_private` is `cfg` (from `fc_alloc`); `string` and `file`
    /// follow [`Param::from_raw`].
    pub(crate) unsafe fn parse_param(
        fc: *mut bindings::fs_context,
        cfg: *mut c_void,
        opt: c_int,
        string: *const c_char,
        file: *mut bindings::file,
        number: u32,
        negated: bool,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the C parser calls us with a live context.
            let fc = unsafe { FsContext::from_raw(fc) };
            // SAFETY: `cfg` is the context's config; the VFS serializes calls on a context.
            let cfg = unsafe { <KBox<T::Config> as ForeignOwnable>::borrow_mut(cfg) };
            // SAFETY: as promised by our caller.
            let param = unsafe { Param::from_raw(opt, string, file, number, negated) };
            T::parse_param(fc, cfg, param)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// As for [`Self::parse_param`].
    pub(crate) unsafe fn reconfigure(
        fc: *mut bindings::fs_context,
        cfg: *mut c_void,
        sb: *mut bindings::super_block,
        wants_rw: bool,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS calls us with a live context.
            let fc = unsafe { FsContext::from_raw(fc) };
            // SAFETY: `cfg` is the context's config, used by one caller at a time.
            let cfg = unsafe { <KBox<T::Config> as ForeignOwnable>::borrow_mut(cfg) };
            // SAFETY: a reconfigured superblock is a mounted one of ours.
            let sb = unsafe { SuperBlock::<T>::from_raw(sb) };
            T::reconfigure(fc, sb, wants_rw, cfg)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// `sb` is a new superblock of `T` inside `get_tree_nodev`, `fc` its context and `cfg` the
    /// context's config.
    pub(crate) unsafe fn fill_super(
        sb: *mut bindings::super_block,
        fc: *mut bindings::fs_context,
        cfg: *mut c_void,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS calls us with a live context.
            let fc = unsafe { FsContext::from_raw(fc) };
            // SAFETY: `cfg` is the context's config, used by one caller at a time.
            let cfg = unsafe { <KBox<T::Config> as ForeignOwnable>::borrow_mut(cfg) };
            // SAFETY: `sb` is being set up by us alone.
            let new_sb = unsafe { NewSuperBlock::from_raw(sb) };
            let info = T::fill_super(fc, new_sb, cfg)?;
            let sops: &'static bindings::super_operations = &Self::SUPER_OPS;
            let xattr: &'static [*const bindings::xattr_handler; 2] =
                &super::ops::Adapter::<T>::XATTR_HANDLERS;
            // SAFETY: the superblock is still ours alone; `kill_sb` frees what we store here,
            // also when the rest of `fill_super` fails. The tables are `'static` (promoted
            // constants).
            unsafe {
                (*sb).s_fs_info = info.into_foreign();
                (*sb).s_op = sops;
                (*sb).s_xattr = xattr.as_ptr();
                // ACLs are the real objects': permission checks ask them through us.
                ffi::unionrs_sb_set_posixacl(sb);
            }
            // SAFETY: `s_fs_info` now holds our `KBox<T::Info>`.
            let sb_ref = unsafe { SuperBlock::<T>::from_raw(sb) };
            let root = T::root_inode(sb_ref)?;
            // SAFETY: `d_make_root` consumes the inode reference, also on failure.
            let root = unsafe { bindings::d_make_root(ARef::into_raw(root).as_ptr().cast()) };
            if root.is_null() {
                return Err(ENOMEM);
            }
            // SAFETY: the superblock is ours alone until `fill_super` returns.
            unsafe { (*sb).s_root = root };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// `info` is the `s_fs_info` of a dead superblock of `T`.
    pub(crate) unsafe fn free_sb_info(info: *mut c_void) {
        // SAFETY: `fill_super` stored a `KBox<T::Info>` here and nobody uses it any more.
        drop(unsafe { <KBox<T::Info> as ForeignOwnable>::from_foreign(info) });
    }

    /// `super_operations::show_options`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `m` is a live seq_file and `root` the root dentry of a mounted
    /// superblock of `T`.
    unsafe extern "C" fn show_options(
        m: *mut bindings::seq_file,
        root: *mut bindings::dentry,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes a live seq_file and our root dentry, whose superblock has
            // its private data set (it was mounted).
            let (m, sb) = unsafe {
                (
                    SeqFile::from_raw(m),
                    SuperBlock::<T>::from_raw((*root).d_sb),
                )
            };
            T::show_options(m, sb)?;
            Ok(0)
        })
    }
}

/// Generates the C-callable hooks of `glue.c` for the filesystem type `$fs`.
macro_rules! declare_filesystem {
    ($fs:ty) => {
        #[no_mangle]
        extern "C" fn unionrs_rs_fc_alloc() -> *mut ::kernel::ffi::c_void {
            $crate::vfs::fs_type::Adapter::<$fs>::fc_alloc()
        }

        /// # Safety
        ///
        /// Called only by `glue.c` with the pointer from `unionrs_rs_fc_alloc`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_fc_free(cfg: *mut ::kernel::ffi::c_void) {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::fc_free(cfg) }
        }

        /// # Safety
        ///
        /// Called only by `glue.c`'s `parse_param`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_parse_param(
            fc: *mut ::kernel::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
            opt: ::kernel::ffi::c_int,
            string: *const ::kernel::ffi::c_char,
            file: *mut ::kernel::bindings::file,
            number: u32,
            negated: bool,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe {
                $crate::vfs::fs_type::Adapter::<$fs>::parse_param(
                    fc, cfg, opt, string, file, number, negated,
                )
            }
        }

        /// # Safety
        ///
        /// Called only by `glue.c`'s `reconfigure`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_reconfigure(
            fc: *mut ::kernel::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
            sb: *mut ::kernel::bindings::super_block,
            wants_rw: bool,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::reconfigure(fc, cfg, sb, wants_rw) }
        }

        /// # Safety
        ///
        /// Called only by `glue.c`'s `fill_super`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_fill_super(
            sb: *mut ::kernel::bindings::super_block,
            fc: *mut ::kernel::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::fill_super(sb, fc, cfg) }
        }

        /// # Safety
        ///
        /// Called only by `glue.c`'s `kill_sb`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_free_sb_info(info: *mut ::kernel::ffi::c_void) {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::free_sb_info(info) }
        }
    };
}
pub(crate) use declare_filesystem;

/// The registered filesystem type; unregistered on drop.
///
/// # Invariants
///
/// `unionrs_register` succeeded and `unionrs_unregister` has not been called yet.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the filesystem type, owned by `module` (so that the module cannot be unloaded
    /// while a superblock exists).
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `module` is this module; the C side registers its static fs type.
        to_result(unsafe { ffi::unionrs_register(module.as_ptr()) })?;
        // INVARIANT: registration succeeded.
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); unregistering once. Inodes are freed by RCU
        // callbacks that run our code (`free_inode`): wait for them before the module goes.
        unsafe {
            ffi::unionrs_unregister();
            bindings::rcu_barrier();
        }
    }
}
