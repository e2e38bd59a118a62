// SPDX-License-Identifier: GPL-2.0

//! File operations: [`FileOps`] for open regular files, and the `file_operations` tables of
//! regular files and directories (directories' open files are part of [`DirOps`]).
//!
//! A regular file's I/O goes to a real file chosen by [`FileOps::io_file`], through the
//! kernel's backing-file helpers, which run it with the mounter's credentials; every I/O
//! callback goes through [`Fops::forward`].

use super::bindings as cb;
use super::dentry::Dentry;
use super::file::{DirEmitter, IteratedDir, RealFile, UserFile};
use super::fs_type::FileSystem;
use super::inode::FsInode;
use super::iops::{AllOps, DirOps};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::{from_result, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;
use kernel::types::ForeignOwnable;

/// Open regular files.
#[vtable]
pub(crate) trait FileOps: FileSystem {
    /// State of an open regular file.
    type OpenFile: Send + Sync;

    /// Opens `inode` for `file` (being opened).
    fn open(_inode: &FsInode<Self>, _file: &UserFile) -> Result<Self::OpenFile> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The real file that I/O on the open file goes to now.
    fn io_file<'a>(
        _inode: &FsInode<Self>,
        _file: &UserFile,
        _of: &'a Self::OpenFile,
    ) -> Result<&'a RealFile> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether `O_SYNC`/`O_DSYNC` writes (and `RWF_SYNC`/`RWF_DSYNC`) are synced through
    /// to the real file; if not, they are written as plain ones.
    fn syncs_writes(_inode: &FsInode<Self>) -> bool {
        true
    }

    /// `fsync` of bytes `start..=end` (`datasync`: data only).
    fn fsync(
        _inode: &FsInode<Self>,
        _file: &UserFile,
        _of: &Self::OpenFile,
        _start: i64,
        _end: i64,
        _datasync: bool,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `fallocate(2)`.
    fn fallocate(
        _inode: &FsInode<Self>,
        _file: &UserFile,
        _of: &Self::OpenFile,
        _mode: i32,
        _offset: i64,
        _len: i64,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The `file_operations` tables of `T` and their trampolines.
pub(super) struct Fops<T>(PhantomData<T>);

impl<T: AllOps> Fops<T> {
    pub(super) const FILE: bindings::file_operations = bindings::file_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        read_iter: Some(Self::read_iter),
        write_iter: Some(Self::write_iter),
        splice_read: Some(Self::splice_read),
        splice_write: Some(Self::splice_write),
        mmap: Some(Self::mmap),
        llseek: Some(Self::llseek),
        fsync: if T::HAS_FSYNC {
            Some(Self::fsync)
        } else {
            None
        },
        fallocate: if T::HAS_FALLOCATE {
            Some(Self::fallocate)
        } else {
            None
        },
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    pub(super) const DIR: bindings::file_operations = bindings::file_operations {
        open: Some(Self::dir_open),
        release: Some(Self::dir_release),
        iterate_shared: if <T as DirOps>::HAS_ITERATE {
            Some(Self::iterate_shared)
        } else {
            None
        },
        llseek: Some(bindings::default_llseek),
        read: Some(bindings::generic_read_dir),
        fsync: if <T as DirOps>::HAS_FSYNC_DIR {
            Some(Self::dir_fsync)
        } else {
            None
        },
        // SAFETY: all-zero is a valid ops table (all `None`).
        ..unsafe { core::mem::zeroed() }
    };

    /// Our inode, open file and state of `file`.
    ///
    /// # Safety
    ///
    /// `file` must be an open regular file of `T` (opened by [`Self::open`] or a tmpfile).
    unsafe fn parts<'a>(
        file: *mut bindings::file,
    ) -> (&'a FsInode<T>, &'a UserFile, &'a T::OpenFile) {
        // SAFETY: as the caller promises: an open file pins its inode, and its state lives
        // until release.
        unsafe {
            (
                FsInode::from_raw((*file).f_inode),
                UserFile::from_raw(file),
                <KBox<T::OpenFile> as ForeignOwnable>::borrow((*file).private_data),
            )
        }
    }

    /// Runs one I/O callback: `f` gets the real file that I/O on `file` goes to now and the
    /// backing-file context (the mounter's credentials, and [`Self::end_write`]); an error
    /// becomes a negative errno.
    ///
    /// # Safety
    ///
    /// As for [`Self::parts`].
    unsafe fn forward<R: Errno>(
        file: *mut bindings::file,
        f: impl FnOnce(&RealFile, &mut cb::backing_file_ctx) -> R,
    ) -> R {
        // SAFETY: as the caller promises.
        let (inode, user, of) = unsafe { Self::parts(file) };
        match T::io_file(inode, user, of) {
            Ok(real) => {
                // SAFETY: all-zero is a valid context (no callbacks).
                let mut ctx: cb::backing_file_ctx = unsafe { core::mem::zeroed() };
                ctx.cred = T::creds(inode.sb()).as_ptr();
                ctx.end_write = Some(Self::end_write);
                f(real, &mut ctx)
            }
            Err(e) => R::errno(e),
        }
    }

    /// `file_operations::open` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a regular-file inode of `T` and `file` the file
    /// being opened on it.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let inode = unsafe { FsInode::<T>::from_raw(inode) };
            // SAFETY: as the function's contract says.
            let user = unsafe { UserFile::from_raw(file) };
            let of = KBox::new(T::open(inode, user)?, GFP_KERNEL)?;
            // SAFETY: `private_data` of a file being opened is ours; `release` takes it back.
            unsafe { (*file).private_data = of.into_foreign() };
            Ok(0)
        })
    }

    /// `file_operations::release` of regular files.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`, released once.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: last reference to our open file: take back the box from `open`.
        drop(unsafe { <KBox<T::OpenFile> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// `file_operations::read_iter`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `iocb` refers to an open regular file of `T`, and `iter` is the
    /// caller's, valid for the call.
    unsafe extern "C" fn read_iter(
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: as the function's contract says.
        unsafe {
            if cb::unionrs_iov_iter_count(iter) == 0 {
                return 0;
            }
            Self::forward((*iocb).ki_filp, |real, ctx| {
                cb::backing_file_read_iter(real.as_ptr(), iter, iocb, (*iocb).ki_flags, ctx)
            })
        }
    }

    /// `file_operations::write_iter`: under our inode lock (an asynchronous write finishes
    /// later, in [`Self::end_write`]).
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `iocb` refers to an open regular file of `T`, and `iter` is the
    /// caller's, valid for the call.
    unsafe extern "C" fn write_iter(
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: as the function's contract says.
        unsafe {
            if cb::unionrs_iov_iter_count(iter) == 0 {
                return 0;
            }
            let file = (*iocb).ki_filp;
            let inode = FsInode::<T>::from_raw((*file).f_inode);
            let _lock = inode.lock();
            let mut flags = (*iocb).ki_flags;
            if !T::syncs_writes(inode) {
                flags &= !(cb::UNIONRS_IOCB_SYNC_FLAGS as c_int);
            }
            Self::forward(file, |real, ctx| {
                cb::backing_file_write_iter(real.as_ptr(), iter, iocb, flags, ctx)
            })
        }
    }

    /// `file_operations::splice_read`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`, and `ppos` and `pipe`
    /// are the caller's, valid for the call.
    unsafe extern "C" fn splice_read(
        file: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        pipe: *mut bindings::pipe_inode_info,
        len: usize,
        flags: c_uint,
    ) -> isize {
        // SAFETY: as the function's contract says; the kiocb is ours for the call.
        unsafe {
            Self::forward(file, |real, ctx| {
                let mut iocb: bindings::kiocb = core::mem::zeroed();
                cb::unionrs_init_sync_kiocb(&mut iocb, file);
                iocb.ki_pos = *ppos;
                let r =
                    cb::backing_file_splice_read(real.as_ptr(), &mut iocb, pipe, len, flags, ctx);
                *ppos = iocb.ki_pos;
                r
            })
        }
    }

    /// `file_operations::splice_write`: under our inode lock, as `write_iter`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `out` is an open regular file of `T`, and `pipe` and `ppos`
    /// are the caller's, valid for the call.
    unsafe extern "C" fn splice_write(
        pipe: *mut bindings::pipe_inode_info,
        out: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        len: usize,
        flags: c_uint,
    ) -> isize {
        // SAFETY: as the function's contract says; the kiocb is ours for the call.
        unsafe {
            let inode = FsInode::<T>::from_raw((*out).f_inode);
            let _lock = inode.lock();
            Self::forward(out, |real, ctx| {
                let mut iocb: bindings::kiocb = core::mem::zeroed();
                cb::unionrs_init_sync_kiocb(&mut iocb, out);
                iocb.ki_pos = *ppos;
                let r =
                    cb::backing_file_splice_write(pipe, real.as_ptr(), &mut iocb, len, flags, ctx);
                *ppos = iocb.ki_pos;
                r
            })
        }
    }

    /// `file_operations::mmap`: the real file's page cache is the only one, so the mapping is
    /// redirected to it.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T` and `vma` the mapping
    /// being set up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: as the function's contract says.
        unsafe {
            Self::forward(file, |real, ctx| {
                cb::backing_file_mmap(real.as_ptr(), vma, ctx)
            })
        }
    }

    /// `backing_file_ctx::end_write`: after a write through the real file (a synchronous
    /// one, or an asynchronous one's completion, from a work queue), our inode takes over the
    /// real inode's new size and times.
    ///
    /// # Safety
    ///
    /// Called by the kernel's backing-file helpers only, with the `iocb` of a write to an open
    /// regular file of `T`.
    unsafe extern "C" fn end_write(iocb: *mut bindings::kiocb, _ret: isize) {
        // SAFETY: as the function's contract says; the open file pins its inode.
        let inode = unsafe { FsInode::<T>::from_raw((*(*iocb).ki_filp).f_inode) };
        if let Some((real, _)) = inode.real_top() {
            // A write changes no owner: ours stays as the layer's mount shows it.
            inode.refresh_keep_owner(real);
        }
    }

    /// `file_operations::llseek`: seeks the real file at our position as the mounter (its
    /// filesystem answers `SEEK_DATA` and `SEEK_HOLE`), and mirrors the result. Seeking to
    /// the start or asking for the position needs no real file (as in overlayfs).
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open regular file of `T`.
    unsafe extern "C" fn llseek(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        whence: c_int,
    ) -> bindings::loff_t {
        // SAFETY: as the function's contract says; the positions are mirrored under our inode
        // lock.
        unsafe {
            if offset == 0 {
                if whence == bindings::SEEK_CUR as c_int {
                    return (*file).f_pos;
                }
                if whence == bindings::SEEK_SET as c_int {
                    return bindings::vfs_setpos(file, 0, 0);
                }
            }
            let inode = FsInode::<T>::from_raw((*file).f_inode);
            let _lock = inode.lock();
            Self::forward(file, |real, _| {
                T::creds(inode.sb()).with_mounter(|_| {
                    (*real.as_ptr()).f_pos = (*file).f_pos;
                    let r = bindings::vfs_llseek(real.as_ptr(), offset, whence);
                    (*file).f_pos = (*real.as_ptr()).f_pos;
                    r
                })
            })
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
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (inode, user, of) = unsafe { Self::parts(file) };
            T::fsync(inode, user, of, start, end, datasync != 0)?;
            Ok(0)
        })
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
        let r = from_result(|| {
            // SAFETY: as the function's contract says.
            let (inode, user, of) = unsafe { Self::parts(file) };
            T::fallocate(inode, user, of, mode, offset, len)?;
            Ok(0)
        });
        r as c_long
    }

    /// `file_operations::open` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is a directory inode of `T` and `file` the file being
    /// opened on it.
    unsafe extern "C" fn dir_open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let inode = unsafe { FsInode::<T>::from_raw(inode) };
            // SAFETY: a file being opened has its path (and so its dentry) set and pinned.
            let dentry = unsafe { Dentry::from_raw((*file).__bindgen_anon_1.f_path.dentry) };
            let state = KBox::new(T::open_dir(inode, dentry)?, GFP_KERNEL)?;
            // SAFETY: `private_data` of a file being opened is ours; `dir_release` takes it.
            unsafe { (*file).private_data = state.into_foreign() };
            Ok(0)
        })
    }

    /// `file_operations::release` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by
    /// [`Self::dir_open`]), released once.
    unsafe extern "C" fn dir_release(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: last reference to our open directory: take back the box from `dir_open`.
        drop(unsafe { <KBox<T::DirState> as ForeignOwnable>::from_foreign((*file).private_data) });
        0
    }

    /// Our inode and state of an open directory.
    ///
    /// # Safety
    ///
    /// `file` must be an open directory of `T` (opened by [`Self::dir_open`]).
    unsafe fn dir_parts<'a>(file: *mut bindings::file) -> (&'a FsInode<T>, &'a T::DirState) {
        // SAFETY: as the caller promises.
        unsafe {
            (
                FsInode::from_raw((*file).f_inode),
                <KBox<T::DirState> as ForeignOwnable>::borrow((*file).private_data),
            )
        }
    }

    /// `file_operations::iterate_shared` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by
    /// [`Self::dir_open`]) and `ctx` the caller's directory context, valid for the call.
    unsafe extern "C" fn iterate_shared(
        file: *mut bindings::file,
        ctx: *mut bindings::dir_context,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says; the VFS serializes iteration on one
            // file.
            let ((inode, state), mut out, user) = unsafe {
                (
                    Self::dir_parts(file),
                    DirEmitter::from_raw(ctx),
                    UserFile::from_raw(file),
                )
            };
            // SAFETY: `user` is the directory being read by this call.
            let dir = unsafe { IteratedDir::new(user) };
            T::iterate(inode, state, &dir, &mut out)?;
            Ok(0)
        })
    }

    /// `file_operations::fsync` of directories.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `file` is an open directory of `T` (opened by
    /// [`Self::dir_open`]).
    unsafe extern "C" fn dir_fsync(
        file: *mut bindings::file,
        _start: bindings::loff_t,
        _end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
            let (inode, state) = unsafe { Self::dir_parts(file) };
            T::fsync_dir(inode, state, datasync != 0)?;
            Ok(0)
        })
    }
}

/// The return type of a file callback, which carries a negative errno on failure.
trait Errno {
    fn errno(e: Error) -> Self;
}

impl Errno for c_int {
    fn errno(e: Error) -> Self {
        e.to_errno()
    }
}

impl Errno for isize {
    fn errno(e: Error) -> Self {
        e.to_errno() as isize
    }
}

impl Errno for i64 {
    fn errno(e: Error) -> Self {
        e.to_errno().into()
    }
}
