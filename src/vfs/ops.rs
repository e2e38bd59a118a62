// SPDX-License-Identifier: GPL-2.0

//! The VFS operation tables of our inodes and files, filled with trampolines into the
//! [`FileSystem`] implementation (the union logic) and, for regular files, with the kernel's
//! backing-file helpers that forward I/O to the real file.

use super::cred::MounterCreds;
use super::dentry::Dentry;
use super::ffi;
use super::file::{DirEmitter, RealFile};
use super::fs_type::FileSystem;
use super::inode::{FsInode, Inode, PermInode};
use super::super_block::SuperBlock;
use super::upper::{Iattr, NewObject, PosixAcl};
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::{from_err_ptr, from_result, to_result};
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::SetOnce;
use kernel::types::ForeignOwnable;

/// The id mapping of the mount an operation came through.
#[derive(Clone, Copy)]
pub(crate) struct Idmap(*mut bindings::mnt_idmap);

/// Attributes returned by `stat`, as the union adjusts them after asking the real inode.
///
/// # Invariants
///
/// Wraps the live `kstat` of the current `getattr` call.
pub(crate) struct Kstat<'a>(&'a mut bindings::kstat);

impl Kstat<'_> {
    pub(crate) fn ino(&self) -> u64 {
        self.0.ino
    }
    pub(crate) fn set_ino(&mut self, ino: u64) {
        self.0.ino = ino;
    }
    /// Reports the object as being on superblock `sb` (its `st_dev`).
    pub(crate) fn set_dev_of<T: FileSystem>(&mut self, sb: &SuperBlock<T>) {
        // SAFETY: `s_dev` of a live superblock never changes.
        self.0.dev = unsafe { (*sb.as_ptr()).s_dev };
    }
    pub(crate) fn set_nlink(&mut self, nlink: u32) {
        self.0.nlink = nlink;
    }
}

impl Inode {
    /// The caller's permission check on this inode's own attributes (mode, owner).
    pub(crate) fn generic_permission(&self, idmap: Idmap, mask: i32) -> Result {
        // SAFETY: the inode and idmap are valid for the call.
        kernel::error::to_result(unsafe {
            bindings::generic_permission(idmap.0, self.as_ptr(), mask)
        })
    }
}

impl super::LayerMount {
    /// The permission check on `inode`, a real inode on this layer, through the layer
    /// mount's id mapping (also in RCU walk: `inode_permission` honours `MAY_NOT_BLOCK`).
    pub(crate) fn inode_permission(&self, inode: &Inode, mask: i32) -> Result {
        // SAFETY: the inode and the mount's idmap are valid for the call.
        kernel::error::to_result(unsafe {
            bindings::inode_permission(self.idmap(), inode.as_ptr(), mask)
        })
    }
}

/// Per open regular file: the real file that all I/O goes to.
struct OpenFile {
    real: RealFile,
    /// The upper copy, opened on first use when the object was copied up after this open
    /// (overlayfs' rule: an open file follows its object's copy-up).
    upper: SetOnce<RealFile>,
}

/// The prefix of our xattr handler: empty, so that it matches every name.
// `as_char_ptr` (which the lint asks for) is not a const fn; an empty string has no
// signedness to get wrong.
#[allow(clippy::disallowed_methods)]
const EMPTY_XATTR_PREFIX: *const c_char = c"".as_ptr().cast();

/// Trampolines for `T`'s inodes and files.
pub(crate) struct Adapter<T: FileSystem>(PhantomData<T>);

impl<T: FileSystem> Adapter<T> {
    const DIR_IOPS: bindings::inode_operations = bindings::inode_operations {
        setattr: Some(Self::setattr),
        lookup: Some(Self::lookup),
        create: Some(Self::create),
        mkdir: Some(Self::mkdir),
        mknod: Some(Self::mknod),
        symlink: Some(Self::symlink),
        link: Some(Self::link),
        unlink: Some(Self::unlink),
        rmdir: Some(Self::rmdir),
        rename: Some(Self::rename),
        tmpfile: Some(Self::tmpfile),
        permission: Some(Self::permission),
        getattr: Some(Self::getattr),
        listxattr: Some(Self::listxattr),
        get_inode_acl: Some(Self::get_inode_acl),
        get_acl: Some(Self::get_acl),
        set_acl: Some(Self::set_acl),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    const FILE_IOPS: bindings::inode_operations = bindings::inode_operations {
        setattr: Some(Self::setattr),
        permission: Some(Self::permission),
        getattr: Some(Self::getattr),
        fiemap: Some(Self::fiemap),
        listxattr: Some(Self::listxattr),
        get_inode_acl: Some(Self::get_inode_acl),
        get_acl: Some(Self::get_acl),
        set_acl: Some(Self::set_acl),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    const SYMLINK_IOPS: bindings::inode_operations = bindings::inode_operations {
        setattr: Some(Self::setattr),
        get_link: Some(Self::get_link),
        getattr: Some(Self::getattr),
        listxattr: Some(Self::listxattr),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    const DIR_FOPS: bindings::file_operations = bindings::file_operations {
        open: Some(Self::dir_open),
        release: Some(Self::dir_release),
        iterate_shared: Some(Self::iterate_shared),
        llseek: Some(bindings::default_llseek),
        read: Some(bindings::generic_read_dir),
        fsync: Some(Self::dir_fsync),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    const FILE_FOPS: bindings::file_operations = bindings::file_operations {
        open: Some(Self::file_open),
        release: Some(Self::file_release),
        read_iter: Some(Self::read_iter),
        splice_read: Some(Self::splice_read),
        mmap: Some(Self::mmap),
        llseek: Some(Self::file_llseek),
        fsync: Some(Self::fsync),
        write_iter: Some(Self::write_iter),
        splice_write: Some(Self::splice_write),
        fallocate: Some(Self::fallocate),
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// Our one xattr handler: every name goes to the union logic, which passes it to the real
    /// object (hiding and escaping its private names).
    const XATTR_HANDLER: bindings::xattr_handler = bindings::xattr_handler {
        prefix: EMPTY_XATTR_PREFIX,
        get: Some(Self::xattr_get),
        set: Some(Self::xattr_set),
        // SAFETY: all-zero is a valid handler (no name, no set, no list filter).
        ..unsafe { core::mem::zeroed() }
    };

    /// The NULL-terminated handler list for `super_block::s_xattr`.
    pub(crate) const XATTR_HANDLERS: [*const bindings::xattr_handler; 2] =
        [&Self::XATTR_HANDLER, core::ptr::null()];

    /// Picks the operation tables for a new inode by its (already copied) mode.
    ///
    /// # Safety
    ///
    /// `inode` must be a new inode of `T` that only the caller uses.
    pub(crate) unsafe fn set_ops(inode: *mut bindings::inode) {
        let dir_iops: &'static bindings::inode_operations = &Self::DIR_IOPS;
        let file_iops: &'static bindings::inode_operations = &Self::FILE_IOPS;
        let symlink_iops: &'static bindings::inode_operations = &Self::SYMLINK_IOPS;
        let dir_fops: &'static bindings::file_operations = &Self::DIR_FOPS;
        let file_fops: &'static bindings::file_operations = &Self::FILE_FOPS;
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
                    ffi::unionrs_set_file_aops(inode);
                }
                bindings::S_IFLNK => (*inode).i_op = symlink_iops,
                _ => {
                    (*inode).i_op = file_iops;
                    bindings::init_special_inode(inode, (*inode).i_mode, (*inode).i_rdev);
                }
            }
        }
    }

    /// `inode_operations::lookup`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dir` is a directory inode of `T`, locked by the VFS, and `dentry` a negative dentry
    /// in it, referenced for the call.
    unsafe extern "C" fn lookup(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        _flags: c_uint,
    ) -> *mut bindings::dentry {
        // SAFETY: the VFS calls `lookup` on our directory inode with a referenced dentry being
        // looked up (so its name is stable).
        let (dir, d) = unsafe { (FsInode::<T>::from_raw(dir), Dentry::from_raw(dentry)) };
        let found = {
            let _creds = T::creds(dir.sb()).use_here();
            T::lookup(dir, d.name())
        };
        match found {
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
    /// Called by the VFS only: `inode` is an inode of `T` that the VFS keeps alive for the call (in RCU walk, under
    /// `rcu_read_lock`); `idmap` is the mount's id mapping.
    unsafe extern "C" fn permission(
        idmap: *mut bindings::mnt_idmap,
        inode: *mut bindings::inode,
        mask: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes an inode of ours that is referenced or, in RCU walk
            // (`MAY_NOT_BLOCK`), valid until the walk's RCU read section ends, after this call.
            let inode = unsafe { PermInode::<T>::from_raw(inode) };
            T::permission(inode, Idmap(idmap), mask)?;
            Ok(0)
        })
    }

    /// `inode_operations::getattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `path` is a path to an object of `T` and `stat` the caller's `kstat`, both valid for the
    /// call.
    unsafe extern "C" fn getattr(
        _idmap: *mut bindings::mnt_idmap,
        path: *const bindings::path,
        stat: *mut bindings::kstat,
        request_mask: u32,
        flags: c_uint,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes a live path to one of our dentries, and a kstat to fill.
            let inode = unsafe { FsInode::<T>::from_raw((*(*path).dentry).d_inode) };
            let real = T::real_path(inode)?;
            let raw = real.raw();
            {
                // The caller's `vfs_getattr` already asked the LSM about the union object; the
                // real one is read without a second check, with the mounter's credentials, as
                // overlayfs does (`ovl_real_getattr_nosec`).
                let _creds = T::creds(inode.sb()).use_here();
                // SAFETY: `raw` borrows a live path; `stat` is the caller's.
                kernel::error::to_result(unsafe {
                    bindings::vfs_getattr_nosec(&raw, stat, request_mask, flags)
                })?;
            }
            // SAFETY: `stat` is valid and ours for the call.
            T::fix_stat(inode, &mut Kstat(unsafe { &mut *stat }))?;
            Ok(0)
        })
    }

    /// `inode_operations::setattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` whose inode the VFS has locked, and `attr` the
    /// caller's attributes, valid for the call.
    unsafe extern "C" fn setattr(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        attr: *mut bindings::iattr,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS changes a positive dentry of ours, with its inode locked.
            unsafe { to_result(bindings::setattr_prepare(idmap, dentry, attr))? };
            // SAFETY: as above; we work on a copy of the caller's request.
            let (d, mut copy) = unsafe { (Dentry::from_raw(dentry), Iattr(*attr)) };
            T::setattr(d, &mut copy)?;
            Ok(0)
        })
    }

    /// Runs a namespace operation on `dentry` in directory `dir`.
    ///
    /// # Safety
    ///
    /// `dir` must be a live directory inode of ours, locked by the VFS for the operation, and
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
    /// Called by the VFS only: As for [`Self::dirop`]: `dir` locked by the VFS, `dentry` a negative dentry in it.
    unsafe extern "C" fn create(
        _idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        _excl: bool,
    ) -> c_int {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFREG;
        // SAFETY: the VFS creates in a locked directory of ours.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev: 0 })
            })
        }
    }

    /// `inode_operations::mkdir`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: As for [`Self::dirop`]: `dir` locked by the VFS, `dentry` a negative dentry in it.
    unsafe extern "C" fn mkdir(
        _idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
    ) -> *mut bindings::dentry {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFDIR;
        // SAFETY: the VFS creates in a locked directory of ours.
        let r = unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev: 0 })
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
    /// Called by the VFS only: As for [`Self::dirop`]: `dir` locked by the VFS, `dentry` a negative dentry in it.
    unsafe extern "C" fn mknod(
        _idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        rdev: bindings::dev_t,
    ) -> c_int {
        let mode = u32::from(mode);
        // SAFETY: the VFS creates in a locked directory of ours.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Node { mode, rdev })
            })
        }
    }

    /// `inode_operations::symlink`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: As for [`Self::dirop`], and `target` is a NUL-terminated string valid for the call.
    unsafe extern "C" fn symlink(
        _idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        target: *const c_char,
    ) -> c_int {
        // SAFETY: the VFS passes a NUL-terminated target that lives for the call.
        let target = unsafe { CStr::from_char_ptr(target) };
        // SAFETY: the VFS creates in a locked directory of ours.
        unsafe {
            Self::dirop(dir, dentry, |dir, d| {
                T::create(dir, d, NewObject::Symlink(target))
            })
        }
    }

    /// `inode_operations::link`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: As for [`Self::dirop`] for `dir` and `new`; `old` is a positive dentry of `T` pinned for
    /// the call.
    unsafe extern "C" fn link(
        old: *mut bindings::dentry,
        dir: *mut bindings::inode,
        new: *mut bindings::dentry,
    ) -> c_int {
        // SAFETY: the VFS passes a positive dentry of ours, pinned for the call.
        let old = unsafe { Dentry::from_raw(old) };
        // SAFETY: the VFS creates in a locked directory of ours.
        unsafe { Self::dirop(dir, new, |dir, d| T::link(old, dir, d)) }
    }

    /// `inode_operations::unlink`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: As for [`Self::dirop`]: `dir` locked by the VFS, `dentry` a positive dentry in it.
    unsafe extern "C" fn unlink(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
        // SAFETY: the VFS removes from a locked directory of ours.
        unsafe { Self::dirop(dir, dentry, |dir, d| T::remove(dir, d, false)) }
    }

    /// `inode_operations::rmdir`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: As for [`Self::dirop`]: `dir` locked by the VFS, `dentry` a positive dentry in it.
    unsafe extern "C" fn rmdir(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> c_int {
        // SAFETY: the VFS removes from a locked directory of ours.
        unsafe { Self::dirop(dir, dentry, |dir, d| T::remove(dir, d, true)) }
    }

    /// `inode_operations::tmpfile`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dir` is a directory inode of `T` and `file` a file being opened on it, both valid for
    /// the call.
    unsafe extern "C" fn tmpfile(
        _idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        file: *mut bindings::file,
        mode: bindings::umode_t,
    ) -> c_int {
        let mode = u32::from(mode) & !bindings::S_IFMT | bindings::S_IFREG;
        let mut real: Option<RealFile> = None;
        let r = from_result(|| {
            // SAFETY: the VFS makes a tmpfile in a directory of ours, for a file being opened
            // on a new dentry.
            let (dir, d) = unsafe {
                (
                    FsInode::<T>::from_raw(dir),
                    Dentry::from_raw((*file).__bindgen_anon_1.f_path.dentry),
                )
            };
            let inode = T::tmpfile(dir, d, &mut |parent| {
                let raw = parent.raw();
                // SAFETY: `file` is being opened; `raw` borrows a live path.
                let f = from_err_ptr(unsafe {
                    ffi::unionrs_backing_tmpfile(file, &raw, mode as bindings::umode_t)
                })?;
                // SAFETY: an open file we own now.
                let rf = unsafe { RealFile::from_raw(NonNull::new(f).ok_or(ENOMEM)?) };
                // SAFETY: the open file pins its dentry; we take a reference of our own.
                let rd: ARef<Dentry> =
                    unsafe { Dentry::from_raw((*f).__bindgen_anon_1.f_path.dentry) }.into();
                real = Some(rf);
                Ok(rd)
            })?;
            let of = KBox::new(
                OpenFile {
                    real: real.take().ok_or(EIO)?,
                    upper: SetOnce::new(),
                },
                GFP_KERNEL,
            )?;
            // SAFETY: `private_data` of a file being opened is ours.
            unsafe { (*file).private_data = of.into_foreign() };
            // SAFETY: `file` is being opened; the inode reference goes to its dentry.
            let err =
                unsafe { ffi::unionrs_tmpfile_finish(file, ARef::into_raw(inode).as_ptr().cast()) };
            // SAFETY: as above.
            if unsafe { !ffi::unionrs_file_opened(file) } {
                // Without FMODE_OPENED, release() is not called: free our state here.
                // SAFETY: we stored this box just above.
                drop(unsafe {
                    <KBox<OpenFile> as ForeignOwnable>::from_foreign((*file).private_data)
                });
            }
            to_result(err)?;
            Ok(0)
        });
        r
    }

    /// `inode_operations::rename`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: The VFS holds the locks of a rename: `old_dir` and `new_dir` are directory inodes of
    /// `T`, `old` a positive dentry in the first, `new` a dentry in the second.
    unsafe extern "C" fn rename(
        _idmap: *mut bindings::mnt_idmap,
        _old_dir: *mut bindings::inode,
        old: *mut bindings::dentry,
        _new_dir: *mut bindings::inode,
        new: *mut bindings::dentry,
        flags: c_uint,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS holds both directories locked and references on both dentries.
            let (old, new) = unsafe { (Dentry::from_raw(old), Dentry::from_raw(new)) };
            T::rename(old, new, flags)?;
            Ok(0)
        })
    }

    /// `inode_operations::fiemap`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is an inode of `T` and `info` the caller's extent buffer, valid for the call.
    unsafe extern "C" fn fiemap(
        inode: *mut bindings::inode,
        info: *mut bindings::fiemap_extent_info,
        start: u64,
        len: u64,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes one of our inodes and the caller's extent buffer.
            let inode = unsafe { FsInode::<T>::from_raw(inode) };
            let real = T::real_path(inode)?.dentry.inode().ok_or(ENOENT)?;
            // SAFETY: the real inode is pinned by our data; its ops table is static.
            let op =
                unsafe { (*(*real.as_ptr()).i_op).fiemap }.ok_or_else(super::errno::eopnotsupp)?;
            let _c = T::creds(inode.sb()).use_here();
            // SAFETY: forwarding the caller's arguments to the real filesystem's own fiemap.
            kernel::error::to_result(unsafe { op(real.as_ptr(), info, start, len) })?;
            Ok(0)
        })
    }

    /// `inode_operations::get_link`, also called in RCU path walk (`dentry` NULL).
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a symlink inode of `T`, alive for the call; `dentry`, if not NULL, is its
    /// dentry; `done` is the caller's delayed call.
    unsafe extern "C" fn get_link(
        dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        done: *mut bindings::delayed_call,
    ) -> *const c_char {
        if dentry.is_null() {
            // RCU walk: the real filesystem may need to sleep.
            return ECHILD.to_ptr();
        }
        // SAFETY: the VFS passes a live inode of ours.
        let inode = unsafe { FsInode::<T>::from_raw(inode) };
        let real = match T::real_path(inode) {
            Ok(r) => r,
            Err(e) => return e.to_ptr(),
        };
        let _creds = T::creds(inode.sb()).use_here();
        // SAFETY: the real dentry is referenced by our inode; `done` is the caller's.
        unsafe { bindings::vfs_get_link(real.dentry.as_ptr(), done) }
    }

    /// `file_operations::open` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a regular-file inode of `T` and `file` the file being opened on it.
    unsafe extern "C" fn file_open(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS opens a live inode of ours.
            let inode = unsafe { FsInode::<T>::from_raw(inode) };
            // SAFETY: the file being opened holds its path.
            let dentry = unsafe { Dentry::from_raw((*file).__bindgen_anon_1.f_path.dentry) };
            // SAFETY: as above.
            T::prepare_open(dentry, unsafe { (*file).f_flags })?;
            let real = T::real_path(inode)?;
            let raw = real.raw();
            let creds = T::creds(inode.sb());
            let f = {
                let _c = creds.use_here();
                // SAFETY: `file` is being opened by the VFS; `raw` borrows a live path.
                from_err_ptr(unsafe { ffi::unionrs_backing_open(file, &raw, creds.as_ptr()) })?
            };
            // SAFETY: `backing_file_open` returned an open file we own.
            let real = unsafe { RealFile::from_raw(NonNull::new(f).ok_or(ENOMEM)?) };
            let of = KBox::new(
                OpenFile {
                    real,
                    upper: SetOnce::new(),
                },
                GFP_KERNEL,
            )?;
            // SAFETY: `private_data` of a file being opened is ours.
            unsafe { (*file).private_data = of.into_foreign() };
            Ok(0)
        })
    }

    /// The open file's state.
    ///
    /// # Safety
    ///
    /// `file` must be one of our regular files, open.
    unsafe fn open_file<'a>(file: *mut bindings::file) -> &'a OpenFile {
        // SAFETY: `file_open` stored a `KBox<OpenFile>` that lives until release.
        unsafe { <KBox<OpenFile> as ForeignOwnable>::borrow((*file).private_data) }
    }

    /// The real file that I/O on `file` goes to now: the one opened with it, or the upper copy
    /// if the object was copied up since.
    ///
    /// # Safety
    ///
    /// `file` must be one of our regular files, open.
    unsafe fn current_real(file: *mut bindings::file) -> Result<*mut bindings::file> {
        // SAFETY: as the caller promises.
        let of = unsafe { Self::open_file(file) };
        if let Some(u) = of.upper.as_ref() {
            return Ok(u.as_ptr());
        }
        // SAFETY: an open file pins its inode.
        let inode = unsafe { FsInode::<T>::from_raw((*file).f_inode) };
        let real = T::real_path(inode)?;
        // SAFETY: a backing file's `f_path` is the real path it was opened on.
        if core::ptr::eq(real.dentry.as_ptr(), unsafe {
            (*of.real.as_ptr()).__bindgen_anon_1.f_path.dentry
        }) {
            return Ok(of.real.as_ptr());
        }
        let raw = real.raw();
        let creds = T::creds(inode.sb());
        let f = {
            let _c = creds.use_here();
            // SAFETY: `file` is open; `raw` borrows a live path.
            from_err_ptr(unsafe { ffi::unionrs_backing_open(file, &raw, creds.as_ptr()) })?
        };
        // SAFETY: `backing_file_open` returned an open file we own.
        let upper = unsafe { RealFile::from_raw(NonNull::new(f).ok_or(ENOMEM)?) };
        of.upper.populate(upper);
        // Whoever won the race finishes publishing right away.
        loop {
            if let Some(u) = of.upper.as_ref() {
                return Ok(u.as_ptr());
            }
            core::hint::spin_loop();
        }
    }

    /// `file_operations::write_iter`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `iocb` refers to an open regular file of `T`, and `iter` is the caller's, valid for the
    /// call.
    unsafe extern "C" fn write_iter(
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: the VFS passes a live kiocb on one of our open regular files.
        unsafe {
            let file = (*iocb).ki_filp;
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_backing_write_iter(
                    real,
                    iocb,
                    iter,
                    Self::file_creds(file).as_ptr(),
                ),
                Err(e) => e.to_errno() as isize,
            }
        }
    }

    /// `file_operations::splice_write`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `out` is an open regular file of `T`, and `pipe` and `ppos` are the caller's, valid for
    /// the call.
    unsafe extern "C" fn splice_write(
        pipe: *mut bindings::pipe_inode_info,
        out: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        len: usize,
        flags: c_uint,
    ) -> isize {
        // SAFETY: the VFS passes one of our open regular files and a live pipe.
        unsafe {
            match Self::current_real(out) {
                Ok(real) => ffi::unionrs_backing_splice_write(
                    real,
                    pipe,
                    out,
                    ppos,
                    len,
                    flags,
                    Self::file_creds(out).as_ptr(),
                ),
                Err(e) => e.to_errno() as isize,
            }
        }
    }

    /// `file_operations::fallocate`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`.
    unsafe extern "C" fn fallocate(
        file: *mut bindings::file,
        mode: c_int,
        offset: bindings::loff_t,
        len: bindings::loff_t,
    ) -> c_long {
        // SAFETY: one of our open regular files.
        unsafe {
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_fallocate_real(
                    file,
                    real,
                    mode,
                    offset,
                    len,
                    Self::file_creds(file).as_ptr(),
                ),
                Err(e) => e.to_errno() as c_long,
            }
        }
    }

    /// `file_operations::release` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T` (opened by [`Self::file_open`]), released once.
    unsafe extern "C" fn file_release(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: last reference to our open file: take back the box from `file_open`.
        drop(unsafe { <KBox<OpenFile> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// The mounter's credentials of the union that `file` belongs to.
    ///
    /// # Safety
    ///
    /// `file` must be an open file of ours.
    unsafe fn file_creds<'a>(file: *mut bindings::file) -> &'a MounterCreds {
        // SAFETY: an open file pins its inode and so the superblock.
        let inode = unsafe { FsInode::<T>::from_raw((*file).f_inode) };
        T::creds(inode.sb())
    }

    /// `file_operations::read_iter`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `iocb` refers to an open regular file of `T`, and `iter` is the caller's, valid for the
    /// call.
    unsafe extern "C" fn read_iter(
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: the VFS passes a live kiocb on one of our open regular files.
        unsafe {
            let file = (*iocb).ki_filp;
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_backing_read_iter(
                    real,
                    iocb,
                    iter,
                    Self::file_creds(file).as_ptr(),
                ),
                Err(e) => e.to_errno() as isize,
            }
        }
    }

    /// `file_operations::splice_read`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`, and `ppos` and `pipe` are the caller's, valid
    /// for the call.
    unsafe extern "C" fn splice_read(
        file: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        pipe: *mut bindings::pipe_inode_info,
        len: usize,
        flags: c_uint,
    ) -> isize {
        // SAFETY: the VFS passes one of our open regular files and a live pipe.
        unsafe {
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_backing_splice_read(
                    real,
                    file,
                    ppos,
                    pipe,
                    len,
                    flags,
                    Self::file_creds(file).as_ptr(),
                ),
                Err(e) => e.to_errno() as isize,
            }
        }
    }

    /// `file_operations::mmap`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T` and `vma` the mapping being set up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: the VFS maps one of our open regular files. The real file's page cache is the
        // only one: the mapping is redirected to it.
        unsafe {
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_backing_mmap(real, vma, Self::file_creds(file).as_ptr()),
                Err(e) => e.to_errno(),
            }
        }
    }

    /// `file_operations::llseek` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`.
    unsafe extern "C" fn file_llseek(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        whence: c_int,
    ) -> bindings::loff_t {
        // SAFETY: one of our open regular files; the helper mirrors its position on the real
        // file under the inode lock.
        unsafe {
            match Self::current_real(file) {
                Ok(real) => ffi::unionrs_file_llseek(file, real, offset, whence),
                Err(e) => e.to_errno().into(),
            }
        }
    }

    /// `file_operations::fsync` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`.
    unsafe extern "C" fn fsync(
        file: *mut bindings::file,
        start: bindings::loff_t,
        end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int {
        // SAFETY: one of our open regular files.
        unsafe {
            match Self::current_real(file) {
                Ok(real) => {
                    let _c = Self::file_creds(file).use_here();
                    ffi::unionrs_fsync_file(real, start, end, datasync)
                }
                Err(e) => e.to_errno(),
            }
        }
    }

    /// `file_operations::fsync` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by [`Self::dir_open`]).
    unsafe extern "C" fn dir_fsync(
        file: *mut bindings::file,
        _start: bindings::loff_t,
        _end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: one of our open directories pins its inode.
            let inode = unsafe { FsInode::<T>::from_raw((*file).f_inode) };
            let _c = T::creds(inode.sb()).use_here();
            T::fsync_dir(inode, datasync != 0)?;
            Ok(0)
        })
    }

    /// `file_operations::open` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a directory inode of `T` and `file` the file being opened on it.
    unsafe extern "C" fn dir_open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        from_result(|| {
            // SAFETY: the VFS opens a live directory inode of ours.
            let inode = unsafe { FsInode::<T>::from_raw(inode) };
            let state = {
                let _c = T::creds(inode.sb()).use_here();
                T::open_dir(inode)?
            };
            let state = KBox::new(state, GFP_KERNEL)?;
            // SAFETY: `private_data` of a file being opened is ours.
            unsafe { (*file).private_data = state.into_foreign() };
            Ok(0)
        })
    }

    /// `file_operations::release` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by [`Self::dir_open`]), released once.
    unsafe extern "C" fn dir_release(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: last reference to our open directory: take back the box from `dir_open`.
        drop(unsafe { <KBox<T::DirState> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// `file_operations::iterate_shared` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by [`Self::dir_open`]) and `ctx` the caller's
    /// directory context, valid for the call.
    unsafe extern "C" fn iterate_shared(
        file: *mut bindings::file,
        ctx: *mut bindings::dir_context,
    ) -> c_int {
        from_result(|| {
            // SAFETY: one of our open directories (state from `dir_open`), and the caller's
            // dir_context; the VFS serializes iteration on one file.
            let (inode, state, mut emitter) = unsafe {
                (
                    FsInode::<T>::from_raw((*file).f_inode),
                    <KBox<T::DirState> as ForeignOwnable>::borrow((*file).private_data),
                    DirEmitter::from_raw(ctx),
                )
            };
            // SAFETY: the file's dentry is pinned by the open file.
            let parent_ino =
                unsafe { ffi::unionrs_parent_ino((*file).__bindgen_anon_1.f_path.dentry) };
            let _c = T::creds(inode.sb()).use_here();
            T::iterate(inode, state, parent_ino, &mut emitter)?;
            Ok(0)
        })
    }

    /// `xattr_handler::get` of our one handler.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` (possibly NULL) and `inode` are an object of `T`, `name` a NUL-terminated
    /// string and `buffer` writable for `size` bytes (or NULL with size 0), all for the call.
    unsafe extern "C" fn xattr_get(
        _handler: *const bindings::xattr_handler,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const c_char,
        buffer: *mut c_void,
        size: usize,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes one of our inodes, a NUL-terminated name and a buffer
            // that is NULL (size 0) or valid for `size` bytes.
            let (inode, name, buf) = unsafe {
                (
                    FsInode::<T>::from_raw(inode),
                    CStr::from_char_ptr(name),
                    if buffer.is_null() {
                        &mut [][..]
                    } else {
                        core::slice::from_raw_parts_mut(buffer.cast::<u8>(), size)
                    },
                )
            };
            let n = T::getxattr(inode, name, buf)?;
            c_int::try_from(n).map_err(|_| ERANGE)
        })
    }

    /// `xattr_handler::set` of our one handler.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` and `inode` are an object of `T` whose inode the VFS has locked, `name` a
    /// NUL-terminated string and `value` readable for `size` bytes (NULL for a removal).
    unsafe extern "C" fn xattr_set(
        _handler: *const bindings::xattr_handler,
        _idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        _inode: *mut bindings::inode,
        name: *const c_char,
        value: *const c_void,
        size: usize,
        flags: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes one of our positive dentries, a NUL-terminated name and a
            // value that is NULL (remove) or valid for `size` bytes.
            let (d, name, value) = unsafe {
                (
                    Dentry::from_raw(dentry),
                    CStr::from_char_ptr(name),
                    if value.is_null() {
                        None
                    } else {
                        Some(core::slice::from_raw_parts(value.cast::<u8>(), size))
                    },
                )
            };
            T::setxattr(d, name, value, flags)?;
            Ok(0)
        })
    }

    /// `inode_operations::listxattr`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` and `list` writable for `size` bytes (or NULL with
    /// size 0).
    unsafe extern "C" fn listxattr(
        dentry: *mut bindings::dentry,
        list: *mut c_char,
        size: usize,
    ) -> isize {
        // SAFETY: the VFS passes one of our positive dentries and a buffer that is NULL (size
        // 0) or valid for `size` bytes.
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
        // SAFETY: the VFS passes one of our inodes.
        let inode = unsafe { FsInode::<T>::from_raw(inode) };
        let real = match T::real_path(inode).and_then(|r| r.dentry.inode().ok_or(ENOENT)) {
            Ok(r) => r,
            Err(e) => return e.to_ptr(),
        };
        let _c = T::creds(inode.sb()).use_here();
        // SAFETY: the real inode is pinned by our inode's data.
        unsafe { ffi::unionrs_get_inode_acl(real.as_ptr(), ty) }
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
        // SAFETY: the VFS passes one of our positive dentries.
        let inode = unsafe { FsInode::<T>::from_raw((*dentry).d_inode) };
        let real = match T::real_path(inode) {
            Ok(r) => r,
            Err(e) => return e.to_ptr(),
        };
        let _c = T::creds(inode.sb()).use_here();
        // SAFETY: the real path is pinned by our inode's data.
        unsafe { ffi::unionrs_get_acl(real.mnt.as_ptr(), real.dentry.as_ptr(), ty) }
    }

    /// `inode_operations::set_acl`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` whose inode the VFS has locked; `acl` is NULL or a
    /// valid ACL, both for the call.
    unsafe extern "C" fn set_acl(
        _idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        acl: *mut bindings::posix_acl,
        ty: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes one of our positive dentries, with its inode locked.
            let d = unsafe { Dentry::from_raw(dentry) };
            let acl = (!acl.is_null()).then_some(PosixAcl(acl));
            T::set_acl(d, ty, acl.as_ref())?;
            Ok(0)
        })
    }

    /// `super_operations::statfs`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a dentry of a mounted superblock of `T` and `buf`
    /// the caller's `kstatfs`.
    pub(crate) unsafe extern "C" fn statfs(
        dentry: *mut bindings::dentry,
        buf: *mut bindings::kstatfs,
    ) -> c_int {
        from_result(|| {
            // SAFETY: the VFS passes a dentry of one of our mounted superblocks.
            let sb = unsafe { SuperBlock::<T>::from_raw((*dentry).d_sb) };
            let real = T::statfs_path(sb)?;
            let raw = real.raw();
            let _c = T::creds(sb).use_here();
            // SAFETY: `raw` borrows a live path and `buf` is the caller's; `s_magic` is fixed.
            kernel::error::to_result(unsafe {
                ffi::unionrs_statfs(&raw, buf, (*sb.as_ptr()).s_magic as c_long)
            })?;
            Ok(0)
        })
    }
}
