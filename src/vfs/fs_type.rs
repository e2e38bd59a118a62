// SPDX-License-Identifier: GPL-2.0

//! The filesystem type: registration, the mount-time callbacks ([`FileSystem`]) and the
//! superblock operations ([`SuperOps`]).
//!
//! The `file_system_type`, its parameter table and the `fs_context_operations` are in
//! `helpers.c` (the parameter table is built from macros and `fs_parse()` is inline, and the
//! C callbacks sit next to them); they call the `unionrs_rs_*` hooks that [`declare_filesystem!`] defines for the
//! one filesystem of this module, checked against their declarations in `helpers.h`.

use super::bindings as cb;
use super::cred::MounterCreds;
use super::fs_context::{FsContext, Param};
use super::inode::{FsInode, Inode};
use super::iops::AllOps;
use super::layer::RealPath;
use super::super_block::{NewSuperBlock, SuperBlock};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::{from_result, to_result, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::str::CStrExt;
use kernel::sync::aref::ARef;
use kernel::types::ForeignOwnable;

/// A filesystem implemented on top of the wrappers of this module: what it is made of and
/// how it is mounted. Its operations are the `#[vtable]` traits of `iops`, `fops`,
/// `xattr_handler` and [`SuperOps`].
pub(crate) trait FileSystem: Sized + 'static {
    /// What the mount options build up, one per mount context.
    type Config: Default;
    /// Per-superblock data, kept in `s_fs_info` until the superblock dies.
    type Info: Send + Sync;
    /// Per-inode data of our inodes.
    type InodeData: Send + Sync;

    /// The inode flags (`S_*`) that our inodes take over from their real inodes.
    const INODE_FLAGS: u32;

    /// Where the next option of a monolithic option string ends: the index of the separator
    /// in `rest`, or its length.
    fn option_end(rest: &[u8]) -> usize;

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

    /// The mounter's credentials, which operations on real objects run with (the I/O
    /// forwarded to real files, in particular).
    fn creds(sb: &SuperBlock<Self>) -> &MounterCreds;

    /// The real objects of a new inode with `data` that permission checks look at (also in
    /// RCU walk, where `data` may be gone): its upper object, if it has one, and its top
    /// lower object with its layer number (the upper layer is 0).
    fn permission_targets(data: &Self::InodeData) -> PermissionTargets;
}

/// What [`FileSystem::permission_targets`] gives.
pub(crate) type PermissionTargets = (
    Option<ARef<super::Dentry>>,
    Option<(ARef<super::Dentry>, usize)>,
);

/// Superblock operations.
#[vtable]
pub(crate) trait SuperOps: FileSystem {
    /// `statfs(2)` of the filesystem.
    fn statfs(_sb: &SuperBlock<Self>, _buf: &mut Kstatfs<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `syncfs(2)` and `sync(2)` of the filesystem (`wait`: the second, waiting pass).
    fn sync_fs(_sb: &SuperBlock<Self>, _wait: bool) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes the mount options shown in `/proc/self/mountinfo`.
    fn show_options(_m: &SeqFile, _sb: &SuperBlock<Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether a mounted filesystem with private data `info` gives its inodes file handles
    /// ([`Self::encode_fh`]), for fanotify and `name_to_handle_at(AT_HANDLE_FID)`; they are
    /// not decoded.
    fn encodes_fids(_info: &Self::Info) -> bool {
        false
    }

    /// The file handle of `inode`: its type and its bytes (a multiple of 4).
    fn encode_fh(_inode: &FsInode<Self>) -> Result<(u8, KVec<u8>)> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether a mounted filesystem with private data `info` also decodes the handles it
    /// gives ([`Self::fh_to_dentry`]), for `open_by_handle_at` and NFS export.
    fn decodes_fh(_info: &Self::Info) -> bool {
        false
    }

    /// The dentry of the object of file handle `fh` of type `ty`: a connected one for a
    /// directory, possibly a disconnected one for anything else.
    fn fh_to_dentry(_sb: &SuperBlock<Self>, _ty: u8, _fh: &[u8]) -> Result<ARef<super::Dentry>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// What `statfs(2)` reports, being filled.
pub(crate) struct Kstatfs<'a>(&'a mut cb::kstatfs);

impl Kstatfs<'_> {
    /// Fills in what the real filesystem at `path` reports, as the mounter.
    pub(crate) fn fill_from(&mut self, _m: &super::AsMounter<'_>, path: RealPath<'_>) -> Result {
        let raw = path.raw();
        // SAFETY: `raw` borrows a live path; the buffer is the caller's (the same C struct,
        // opaque in `kernel::bindings`).
        to_result(unsafe { bindings::vfs_statfs(&raw, core::ptr::from_mut(self.0).cast()) })
    }

    /// Reports `magic` as the filesystem type.
    pub(crate) fn set_type(&mut self, magic: u64) {
        self.0.f_type = magic as c_long;
    }

    /// Reports `len` as the longest name the filesystem takes.
    pub(crate) fn set_namelen(&mut self, len: c_long) {
        self.0.f_namelen = len;
    }
}

/// The longest name the real filesystem at `path` takes (`statfs(2)`'s `f_namelen`), asked
/// as the mounter.
pub(crate) fn namelen_of(_m: &super::AsMounter<'_>, path: RealPath<'_>) -> Result<c_long> {
    let raw = path.raw();
    let mut buf = cb::kstatfs::default();
    // SAFETY: `raw` borrows a live path; `buf` is a local `kstatfs` (the same C struct,
    // opaque in `kernel::bindings`).
    to_result(unsafe { bindings::vfs_statfs(&raw, core::ptr::from_mut(&mut buf).cast()) })?;
    Ok(buf.f_namelen)
}

/// Writes `,name=value` (or `,name` for `None`) to a mount-option listing, escaping as the VFS
/// does.
pub(crate) fn seq_show_option(m: &SeqFile, name: &CStr, value: Option<&CStr>) {
    // SAFETY: the strings are NUL-terminated (or NULL for no value) and `m` is a live seq_file.
    unsafe {
        cb::unionrs_seq_show_option(
            core::ptr::from_ref(m).cast_mut().cast(),
            name.as_char_ptr(),
            value.map_or(core::ptr::null(), |v| v.as_char_ptr()),
        )
    };
}

/// Trampolines from the C hooks to a [`FileSystem`].
#[doc(hidden)]
pub(crate) struct Adapter<T>(PhantomData<T>);

impl<T: AllOps> Adapter<T> {
    /// The `super_operations` of `T`.
    const SUPER_OPS: bindings::super_operations = bindings::super_operations {
        alloc_inode: Some(FsInode::<T>::alloc_inode),
        destroy_inode: Some(FsInode::<T>::destroy_inode),
        free_inode: Some(FsInode::<T>::free_inode),
        // Like overlayfs: an inode goes when its last dentry does, so it never outlives the
        // layer objects it refers to in a cache.
        drop_inode: Some(bindings::inode_just_drop),
        show_options: if T::HAS_SHOW_OPTIONS {
            Some(Self::show_options)
        } else {
            None
        },
        statfs: if T::HAS_STATFS {
            Some(Self::statfs)
        } else {
            None
        },
        sync_fs: if T::HAS_SYNC_FS {
            Some(Self::sync_fs)
        } else {
            None
        },
        // SAFETY: all-zero is a valid `super_operations` (every other member is `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// The `export_operations` of `T`: handles encoded, never decoded.
    const FID_EXPORT_OPS: cb::export_operations = cb::export_operations {
        encode_fh: Some(Self::encode_fh),
        // SAFETY: all-zero is a valid `export_operations` (every other member is `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// The `export_operations` of `T` when it decodes handles. Handles of parents are not
    /// made, and directories are given connected, so exportfs never asks for a name or a
    /// parent.
    const EXPORT_OPS: cb::export_operations = cb::export_operations {
        encode_fh: Some(Self::encode_fh),
        fh_to_dentry: Some(Self::fh_to_dentry),
        fh_to_parent: Some(Self::fh_to_parent),
        get_name: Some(Self::get_name),
        get_parent: Some(Self::get_parent),
        // SAFETY: all-zero is a valid `export_operations` (every other member is `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// `export_operations::fh_to_dentry`.
    ///
    /// # Safety
    ///
    /// Called by exportfs only: `sb` is a live superblock of `T`, `fid` holds `fh_len`
    /// words.
    unsafe extern "C" fn fh_to_dentry(
        sb: *mut bindings::super_block,
        fid: *mut cb::fid,
        fh_len: c_int,
        fh_type: c_int,
    ) -> *mut bindings::dentry {
        // SAFETY: a live superblock of `T`, as the function's contract says.
        let sb = unsafe { SuperBlock::<T>::from_raw(sb) };
        let len = usize::try_from(fh_len).unwrap_or(0) * 4;
        // SAFETY: `fid` holds `fh_len` words, as the function's contract says.
        let fh = unsafe { core::slice::from_raw_parts(fid.cast::<u8>(), len) };
        let Ok(ty) = u8::try_from(fh_type) else {
            return super::errno::estale().to_ptr();
        };
        match T::fh_to_dentry(sb, ty, fh) {
            Ok(d) => ARef::into_raw(d).as_ptr().cast(),
            Err(e) => e.to_ptr(),
        }
    }

    /// `export_operations::fh_to_parent`: handles never name a parent (as overlayfs).
    ///
    /// # Safety
    ///
    /// Called by exportfs only.
    unsafe extern "C" fn fh_to_parent(
        _sb: *mut bindings::super_block,
        _fid: *mut cb::fid,
        _fh_len: c_int,
        _fh_type: c_int,
    ) -> *mut bindings::dentry {
        super::warn_ratelimited(fmt!(
            "unionrs: connectable file handles not supported; use 'no_subtree_check' exportfs option."
        ));
        EACCES.to_ptr()
    }

    /// `export_operations::get_name`: never needed, as directories are given connected.
    ///
    /// # Safety
    ///
    /// Called by exportfs only.
    unsafe extern "C" fn get_name(
        _parent: *mut bindings::dentry,
        _name: *mut c_char,
        _child: *mut bindings::dentry,
    ) -> c_int {
        EIO.to_errno()
    }

    /// `export_operations::get_parent`: never needed, as directories are given connected.
    ///
    /// # Safety
    ///
    /// Called by exportfs only.
    unsafe extern "C" fn get_parent(_child: *mut bindings::dentry) -> *mut bindings::dentry {
        EIO.to_ptr()
    }

    /// `export_operations::encode_fh`: the handle of `inode` into `fh` (room for `*max_len`
    /// words), or `FILEID_INVALID` with `*max_len` set to the words needed. Handles that name
    /// a parent (connectable ones) are not made.
    ///
    /// # Safety
    ///
    /// Called by exportfs only: `inode` is a live inode of `T`, `fh` has room for `*max_len`
    /// words, `parent` is NULL or a live inode.
    unsafe extern "C" fn encode_fh(
        inode: *mut bindings::inode,
        fh: *mut u32,
        max_len: *mut c_int,
        parent: *mut bindings::inode,
    ) -> c_int {
        const FILEID_INVALID: c_int = 255;
        if !parent.is_null() {
            return FILEID_INVALID;
        }
        // SAFETY: a live inode of `T`, as the function's contract says.
        let inode = unsafe { FsInode::<T>::from_raw(inode) };
        let Ok((ty, bytes)) = T::encode_fh(inode) else {
            return FILEID_INVALID;
        };
        // SAFETY: `max_len` is the caller's, valid for the call.
        let room = usize::try_from(unsafe { *max_len }).unwrap_or(0) * 4;
        let Ok(words) = c_int::try_from(bytes.len() / 4) else {
            return FILEID_INVALID;
        };
        // SAFETY: as above.
        unsafe { *max_len = words };
        if bytes.len() > room {
            return FILEID_INVALID;
        }
        // SAFETY: `fh` has room for `room` bytes, which `bytes` fits in.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), fh.cast::<u8>(), bytes.len()) };
        c_int::from(ty)
    }

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
        fc: *mut cb::fs_context,
        cfg: *mut c_void,
        opt: c_int,
        string: *const c_char,
        file: *mut bindings::file,
        number: u32,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the C parser calls us with a live context.
            let fc = unsafe { FsContext::from_raw(fc) };
            // SAFETY: `cfg` is the context's config; the VFS serializes calls on a context.
            let cfg = unsafe { <KBox<T::Config> as ForeignOwnable>::borrow_mut(cfg) };
            // SAFETY: as promised by our caller.
            let param = unsafe { Param::from_raw(opt, string, file, number) };
            T::parse_param(fc, cfg, param)?;
            Ok(0)
        })
    }

    /// Splits a monolithic option string where `T::option_end` says.
    ///
    /// # Safety
    ///
    /// Called by `vfs_parse_monolithic_sep` only: `*s` is NULL or a NUL-terminated string that
    /// we may modify.
    unsafe extern "C" fn next_option(s: *mut *mut c_char) -> *mut c_char {
        // SAFETY: as the function's contract says.
        let start = unsafe { *s };
        if start.is_null() {
            return start;
        }
        // SAFETY: `start` is a NUL-terminated string we may modify.
        let rest = unsafe { CStr::from_char_ptr(start) }.to_bytes();
        let end = T::option_end(rest);
        // SAFETY: `end` is at most the length, so `start + end` is within the string.
        unsafe {
            if end < rest.len() {
                *start.add(end) = 0;
                *s = start.add(end + 1);
            } else {
                *s = core::ptr::null_mut();
            }
        }
        start
    }

    /// # Safety
    ///
    /// `fc` is a live context and `data` its option string (NULL or NUL-terminated).
    pub(crate) unsafe fn parse_monolithic(fc: *mut cb::fs_context, data: *mut c_void) -> c_int {
        // SAFETY: as the caller promises; `next_option` splits as `T` says.
        unsafe { cb::vfs_parse_monolithic_sep(fc, data, Some(Self::next_option)) }
    }

    /// # Safety
    ///
    /// As for [`Self::parse_param`].
    pub(crate) unsafe fn reconfigure(
        fc: *mut cb::fs_context,
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
        fc: *mut cb::fs_context,
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
            let export: &'static cb::export_operations = if T::decodes_fh(&info) {
                &Self::EXPORT_OPS
            } else {
                &Self::FID_EXPORT_OPS
            };
            if T::HAS_ENCODE_FH && T::encodes_fids(&info) {
                // SAFETY: the superblock is still ours alone; the table is `'static`.
                unsafe { (*sb).s_export_op = core::ptr::from_ref(export).cast() };
            }
            let sops: &'static bindings::super_operations = &Self::SUPER_OPS;
            let xattr: &'static [*const bindings::xattr_handler; 2] =
                &super::xattr_handler::Handler::<T>::LIST;
            // SAFETY: the superblock is still ours alone; `kill_sb` frees what we store here,
            // also when the rest of `fill_super` fails. The tables are `'static` (promoted
            // constants).
            unsafe {
                (*sb).s_fs_info = info.into_foreign();
                (*sb).s_op = sops;
                (*sb).s_xattr = xattr.as_ptr();
            }
            // ACLs are the real objects': permission checks ask them through us.
            new_sb.set_posix_acls();
            if let Some(dops) = super::iops::dentry_ops::<T>() {
                // SAFETY: the superblock is still ours alone and has no dentry yet; the table
                // is `'static`.
                unsafe { bindings::set_default_d_op(sb, dops) };
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
            // SAFETY: as the function's contract says (a mounted superblock has its data).
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

    /// `super_operations::sync_fs`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `sb` is a mounted superblock of `T`.
    unsafe extern "C" fn sync_fs(sb: *mut bindings::super_block, wait: c_int) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says (a mounted superblock has its data).
            let sb = unsafe { SuperBlock::<T>::from_raw(sb) };
            T::sync_fs(sb, wait != 0)?;
            Ok(0)
        })
    }

    /// `super_operations::statfs`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a dentry of a mounted superblock of `T` and `buf`
    /// the caller's `kstatfs`.
    unsafe extern "C" fn statfs(
        dentry: *mut bindings::dentry,
        buf: *mut bindings::kstatfs,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says; `kernel::bindings`' opaque `kstatfs` is
            // the struct our bindings describe.
            let (sb, buf) = unsafe {
                (
                    SuperBlock::<T>::from_raw((*dentry).d_sb),
                    &mut *buf.cast::<cb::kstatfs>(),
                )
            };
            T::statfs(sb, &mut Kstatfs(buf))?;
            Ok(0)
        })
    }
}

/// Defines the C-callable hooks of `helpers.c` for the filesystem type `$fs`, and checks each
/// against its declaration in `helpers.h` (a different signature does not build).
macro_rules! declare_filesystem {
    ($fs:ty) => {
        /// A new, default mount configuration, owned by the `fs_context` (freed by
        /// `unionrs_rs_fc_free`); NULL if out of memory.
        #[no_mangle]
        extern "C" fn unionrs_rs_fc_alloc() -> *mut ::kernel::ffi::c_void {
            $crate::vfs::fs_type::Adapter::<$fs>::fc_alloc()
        }

        /// # Safety
        ///
        /// Called only by `helpers.c` with the pointer from `unionrs_rs_fc_alloc`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_fc_free(cfg: *mut ::kernel::ffi::c_void) {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::fc_free(cfg) }
        }

        /// # Safety
        ///
        /// Called only by `helpers.c`'s `parse_param`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_parse_param(
            fc: *mut $crate::vfs::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
            opt: ::kernel::ffi::c_int,
            string: *const ::kernel::ffi::c_char,
            file: *mut ::kernel::bindings::file,
            number: u32,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe {
                $crate::vfs::fs_type::Adapter::<$fs>::parse_param(
                    fc, cfg, opt, string, file, number,
                )
            }
        }

        /// # Safety
        ///
        /// Called only as the `parse_monolithic` context operation.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_parse_monolithic(
            fc: *mut $crate::vfs::bindings::fs_context,
            data: *mut ::kernel::ffi::c_void,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the VFS with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::parse_monolithic(fc, data) }
        }

        /// # Safety
        ///
        /// Called only by `helpers.c`'s `reconfigure`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_reconfigure(
            fc: *mut $crate::vfs::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
            sb: *mut ::kernel::bindings::super_block,
            wants_rw: bool,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::reconfigure(fc, cfg, sb, wants_rw) }
        }

        /// # Safety
        ///
        /// Called only by `helpers.c`'s `fill_super`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_fill_super(
            sb: *mut ::kernel::bindings::super_block,
            fc: *mut $crate::vfs::bindings::fs_context,
            cfg: *mut ::kernel::ffi::c_void,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::fill_super(sb, fc, cfg) }
        }

        /// # Safety
        ///
        /// Called only by `helpers.c`'s `kill_sb`.
        #[no_mangle]
        unsafe extern "C" fn unionrs_rs_free_sb_info(info: *mut ::kernel::ffi::c_void) {
            // SAFETY: forwarded from the C hook with its contract.
            unsafe { $crate::vfs::fs_type::Adapter::<$fs>::free_sb_info(info) }
        }

        // Each hook has the type of its declaration in helpers.h (generated bindings).
        const _: () = {
            use $crate::vfs::bindings as cb;
            let _ = [
                cb::unionrs_rs_fc_alloc as unsafe extern "C" fn() -> _,
                unionrs_rs_fc_alloc,
            ];
            let _ = [
                cb::unionrs_rs_fc_free as unsafe extern "C" fn(_),
                unionrs_rs_fc_free,
            ];
            let _ = [
                cb::unionrs_rs_parse_param as unsafe extern "C" fn(_, _, _, _, _, _) -> _,
                unionrs_rs_parse_param,
            ];
            let _ = [
                cb::unionrs_rs_parse_monolithic as unsafe extern "C" fn(_, _) -> _,
                unionrs_rs_parse_monolithic,
            ];
            let _ = [
                cb::unionrs_rs_reconfigure as unsafe extern "C" fn(_, _, _, _) -> _,
                unionrs_rs_reconfigure,
            ];
            let _ = [
                cb::unionrs_rs_fill_super as unsafe extern "C" fn(_, _, _) -> _,
                unionrs_rs_fill_super,
            ];
            let _ = [
                cb::unionrs_rs_free_sb_info as unsafe extern "C" fn(_),
                unionrs_rs_free_sb_info,
            ];
        };
    };
}
pub(crate) use declare_filesystem;

/// The registered filesystem type; unregistered on drop.
///
/// # Invariants
///
/// `register_filesystem` of `unionrs_fs_type` succeeded and it is not unregistered yet.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the filesystem type, owned by `module` (so that the module cannot be unloaded
    /// while a superblock exists).
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let fs_type = &raw mut cb::unionrs_fs_type;
        // SAFETY: the C fs type is ours and not registered yet; registering it publishes it.
        to_result(unsafe {
            (*fs_type).owner = module.as_ptr();
            bindings::register_filesystem(fs_type)
        })?;
        // INVARIANT: registration succeeded.
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); unregistering once. Inodes are freed by RCU
        // callbacks that run our code (`free_inode`): wait for them before the module goes.
        unsafe {
            bindings::unregister_filesystem(&raw mut cb::unionrs_fs_type);
            bindings::rcu_barrier();
        }
    }
}
