// SPDX-License-Identifier: GPL-2.0

//! Open files: the real files of the layers (opened with the mounter's credentials) with the
//! operations copy-up and the union's files need, our own files as the VFS passes them, and
//! directory iteration.

use super::bindings as cb;
use super::cred::AsMounter;
use super::dentry::Dentry;
use super::inode::Inode;
use super::layer::{ssize_result, RealPath};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;

/// An open file on a layer, closed (`fput`) on drop.
///
/// # Invariants
///
/// `file` is an open file we hold a reference on.
pub(crate) struct RealFile {
    file: NonNull<bindings::file>,
}

// SAFETY: struct file is reference counted and usable from any task.
unsafe impl Send for RealFile {}
// SAFETY: calls through `&RealFile` do their own locking (or are serialized by the VFS, for
// directory iteration under the union file's position lock).
unsafe impl Sync for RealFile {}

/// What [`RealFile::read_dir`] calls for each entry: `(name, offset, ino, d_type)`, returning
/// whether to go on.
pub(crate) type DirActor<'a> = dyn FnMut(&[u8], i64, u64, u32) -> bool + 'a;

/// Takes over an open file returned by C (or its error).
fn file_result(f: *mut bindings::file) -> Result<RealFile> {
    let file = NonNull::new(from_err_ptr(f)?).ok_or(ENOMEM)?;
    // INVARIANT: C opened the file and gave us its reference.
    Ok(RealFile { file })
}

impl RealFile {
    /// Opens a real object with `flags` (`O_*`), as the mounter.
    pub(crate) fn open(_m: &AsMounter<'_>, path: RealPath<'_>, flags: u32) -> Result<Self> {
        let raw = path.raw();
        // SAFETY: `raw` borrows a live path; the current credentials are the mounter's (`_m`).
        file_result(unsafe {
            bindings::kernel_file_open(&raw, flags as c_int, cb::unionrs_current_cred())
        })
    }

    /// Opens a real object for our open file `user` (a kernel "backing file": the real file
    /// records the user's path, and its page cache is the only one), with `flags`; the I/O
    /// forwarded to it later runs with `creds`.
    pub(crate) fn open_backing(
        _m: &AsMounter<'_>,
        user: &UserFile,
        path: RealPath<'_>,
        flags: u32,
        creds: &super::MounterCreds,
    ) -> Result<Self> {
        let raw = path.raw();
        // SAFETY: `user` is being opened or open; `raw` borrows a live path.
        file_result(unsafe {
            cb::backing_file_open(user.as_ptr(), flags as c_int, &raw, creds.as_ptr())
        })
    }

    /// Makes an unnamed file (`O_TMPFILE`) of mode `mode` in directory `parent`, as the backing
    /// file of `user` (being opened), with `flags`.
    pub(crate) fn open_backing_tmpfile(
        _m: &AsMounter<'_>,
        user: &UserFile,
        parent: RealPath<'_>,
        mode: u32,
        flags: u32,
    ) -> Result<Self> {
        let raw = parent.raw();
        // SAFETY: the mount is live.
        to_result(unsafe { bindings::mnt_want_write(raw.mnt) })?;
        // SAFETY: `user` is being opened; `raw` borrows a live path; the current credentials
        // (the caller's owner on the mounter's) are what the file is made with.
        let f = unsafe {
            cb::backing_tmpfile_open(
                user.as_ptr(),
                flags as c_int,
                &raw,
                mode as bindings::umode_t,
                cb::unionrs_current_cred(),
            )
        };
        // SAFETY: taken above.
        unsafe { bindings::mnt_drop_write(raw.mnt) };
        file_result(f)
    }

    /// Makes an unnamed regular file (`O_TMPFILE`) of mode `mode` in directory `parent`, open
    /// for writing and linkable, as the mounter; `EOPNOTSUPP` if the filesystem cannot.
    pub(crate) fn open_tmpfile(
        _m: &AsMounter<'_>,
        parent: RealPath<'_>,
        mode: u32,
    ) -> Result<Self> {
        let raw = parent.raw();
        // SAFETY: the mount is live.
        to_result(unsafe { bindings::mnt_want_write(raw.mnt) })?;
        // SAFETY: `raw` borrows a live path; the current credentials are the mounter's (`_m`).
        // Without `O_EXCL` the file may be linked later.
        let f = unsafe {
            bindings::kernel_tmpfile_open(
                cb::unionrs_mnt_idmap(raw.mnt),
                &raw,
                (bindings::S_IFREG | (mode & bindings::S_IALLUGO)) as bindings::umode_t,
                (bindings::O_LARGEFILE | bindings::O_WRONLY) as c_int,
                cb::unionrs_current_cred(),
            )
        };
        // SAFETY: taken above; the open file holds its own write access to the mount.
        unsafe { bindings::mnt_drop_write(raw.mnt) };
        file_result(f)
    }

    /// Opens a directory of a layer for reading, as the mounter.
    pub(crate) fn open_dir(m: &AsMounter<'_>, path: RealPath<'_>) -> Result<Self> {
        Self::open(
            m,
            path,
            bindings::O_RDONLY | bindings::O_DIRECTORY | bindings::O_LARGEFILE,
        )
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    /// The real dentry the file is open on.
    pub(crate) fn dentry(&self) -> &Dentry {
        // SAFETY: an open file pins its path.
        unsafe { Dentry::from_raw((*self.as_ptr()).__bindgen_anon_1.f_path.dentry) }
    }

    /// The real inode the file is open on.
    pub(crate) fn inode(&self) -> &Inode {
        // SAFETY: an open file pins its inode.
        unsafe { Inode::from_raw((*self.as_ptr()).f_inode) }
    }

    /// Flushes the range's data (and metadata unless `datasync`) to disk.
    pub(crate) fn fsync_range(
        &self,
        _m: &AsMounter<'_>,
        start: i64,
        end: i64,
        datasync: bool,
    ) -> Result {
        // SAFETY: the file is open.
        to_result(unsafe { bindings::vfs_fsync_range(self.as_ptr(), start, end, datasync.into()) })
    }

    /// Flushes the whole file.
    pub(crate) fn fsync(&self, m: &AsMounter<'_>, datasync: bool) -> Result {
        self.fsync_range(m, 0, i64::MAX, datasync)
    }

    /// `fallocate(2)` on the real file.
    pub(crate) fn fallocate(&self, _m: &AsMounter<'_>, mode: i32, offset: i64, len: i64) -> Result {
        // SAFETY: the file is open.
        to_result(unsafe { bindings::vfs_fallocate(self.as_ptr(), mode, offset, len) })
    }

    /// Shares the first `len` bytes of this file's extents with `out` (reflink); how many
    /// bytes were cloned.
    pub(crate) fn clone_to(&self, _m: &AsMounter<'_>, out: &RealFile, len: i64) -> Result<i64> {
        let (src, dst) = (self.as_ptr(), out.as_ptr());
        // SAFETY: both files are open.
        let r = unsafe { bindings::vfs_clone_file_range(src, 0, dst, 0, len, 0) };
        if r < 0 {
            Err(Error::from_errno(r as c_int))
        } else {
            Ok(r)
        }
    }

    /// Where the next data at or after `pos` starts (`SEEK_DATA`); `None` if only a hole
    /// follows.
    pub(crate) fn next_data(&self, _m: &AsMounter<'_>, pos: i64) -> Result<Option<i64>> {
        // SAFETY: the file is open.
        let r = unsafe { bindings::vfs_llseek(self.as_ptr(), pos, bindings::SEEK_DATA as c_int) };
        match r {
            r if r == -i64::from(bindings::ENXIO) => Ok(None),
            r if r < 0 => Err(Error::from_errno(r as c_int)),
            r => Ok(Some(r)),
        }
    }

    /// Copies up to `len` bytes at `pos` to the same position of `out` within the kernel
    /// (`copy_file_range`); how many were copied.
    pub(crate) fn copy_range_to(
        &self,
        _m: &AsMounter<'_>,
        pos: i64,
        out: &RealFile,
        len: usize,
    ) -> Result<usize> {
        // SAFETY: both files are open.
        ssize_result(unsafe {
            bindings::vfs_copy_file_range(self.as_ptr(), pos, out.as_ptr(), pos, len, 0)
        })
    }

    /// Copies up to `len` bytes at `pos` to the same position of `out` through a pipe
    /// (`splice`, which works across filesystems); how many were copied.
    pub(crate) fn splice_to(
        &self,
        _m: &AsMounter<'_>,
        pos: i64,
        out: &RealFile,
        len: usize,
    ) -> Result<usize> {
        let (mut in_pos, mut out_pos) = (pos, pos);
        // SAFETY: both files are open; the positions are ours.
        ssize_result(unsafe {
            cb::do_splice_direct(
                self.as_ptr(),
                &mut in_pos,
                out.as_ptr(),
                &mut out_pos,
                len,
                cb::UNIONRS_SPLICE_F_MOVE,
            )
        })
    }

    /// Reads the directory from position `pos`, calling `f(name, offset, ino, d_type)` for
    /// each entry until it returns false. Returns the position after the last entry taken.
    pub(crate) fn read_dir(
        &self,
        _m: &AsMounter<'_>,
        pos: i64,
        f: &mut DirActor<'_>,
    ) -> Result<i64> {
        #[repr(C)]
        struct Collector<'a> {
            ctx: bindings::dir_context,
            f: &'a mut DirActor<'a>,
        }
        /// `dir_context::actor`.
        ///
        /// # Safety
        ///
        /// Called by `iterate_dir` only: `ctx` is the context of a `Collector` and `name` is
        /// readable for `len` bytes.
        unsafe extern "C" fn actor(
            ctx: *mut bindings::dir_context,
            name: *const c_char,
            len: c_int,
            off: bindings::loff_t,
            ino: u64,
            d_type: c_uint,
        ) -> bool {
            // SAFETY: `ctx` is the first field of the `Collector` that `read_dir` passed to
            // `iterate_dir`; `name` is valid for `len` bytes during the call.
            unsafe {
                let c = &mut *ctx.cast::<Collector<'_>>();
                (c.f)(
                    core::slice::from_raw_parts(name.cast(), len as usize),
                    off,
                    ino,
                    d_type,
                )
            }
        }
        let mut c = Collector {
            ctx: bindings::dir_context {
                actor: Some(actor),
                pos,
                count: 0,
                dt_flags_mask: 0,
            },
            f,
        };
        // SAFETY: our own open directory; seeking and iterating are serialized by our caller
        // (the union file's position lock).
        unsafe {
            if (*self.as_ptr()).f_pos != pos {
                let r = bindings::vfs_llseek(self.as_ptr(), pos, bindings::SEEK_SET as c_int);
                if r < 0 {
                    return Err(Error::from_errno(r as c_int));
                }
            }
        }
        // SAFETY: `c.ctx` is the first field of a `Collector` (`repr(C)`), as `actor` expects.
        to_result(unsafe { bindings::iterate_dir(self.as_ptr(), (&raw mut c).cast()) })?;
        Ok(c.ctx.pos)
    }
}

impl Drop for RealFile {
    fn drop(&mut self) {
        // SAFETY: we hold a reference on the open file (type invariant).
        unsafe { bindings::fput(self.as_ptr()) };
    }
}

/// One of our own files, as the VFS passes it (being opened, or open).
///
/// # Invariants
///
/// The wrapped `struct file` is valid for the lifetime of every reference.
#[repr(transparent)]
pub(crate) struct UserFile(kernel::types::Opaque<bindings::file>);

impl UserFile {
    /// # Safety
    ///
    /// `ptr` must be a valid file for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: `repr(transparent)`; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.0.get()
    }

    /// The open flags (`O_*`).
    pub(crate) fn flags(&self) -> u32 {
        // SAFETY: `f_flags` is set when the file is made and read without locking, as the VFS
        // does.
        unsafe { (*self.as_ptr()).f_flags }
    }

    /// Our dentry the file is open on.
    pub(crate) fn dentry(&self) -> &Dentry {
        // SAFETY: the file pins its path.
        unsafe { Dentry::from_raw((*self.as_ptr()).__bindgen_anon_1.f_path.dentry) }
    }

    /// Drops set-user-ID and set-group-ID (and file capabilities) before a change of the data,
    /// as the caller (as `write(2)` would).
    pub(crate) fn remove_privs(&self) -> Result {
        // SAFETY: the file is open; the caller holds its inode lock.
        to_result(unsafe { bindings::file_remove_privs(self.as_ptr()) })
    }
}

/// One of our directories while it is being read (`iterate_shared`).
///
/// # Invariants
///
/// `file` is the directory of the current `iterate_shared` call, during which the VFS holds
/// its inode lock (shared).
pub(crate) struct IteratedDir<'a> {
    file: &'a UserFile,
}

impl<'a> IteratedDir<'a> {
    /// # Safety
    ///
    /// `file` must be the directory of the current `iterate_shared` call, for `'a`.
    pub(crate) unsafe fn new(file: &'a UserFile) -> Self {
        // INVARIANT: as the caller promises.
        Self { file }
    }

    /// Our dentry of the directory.
    pub(crate) fn dentry(&self) -> &Dentry {
        self.file.dentry()
    }

    /// Looks `name` up in the directory, through the union, as a path walk through the
    /// directory's mount would (overlayfs' listings do this to number some entries). The
    /// child if it is positive.
    pub(crate) fn lookup(
        &self,
        _m: &AsMounter<'_>,
        name: &[u8],
    ) -> Result<Option<kernel::sync::aref::ARef<Dentry>>> {
        let mut q = super::layer::qstr(name)?;
        // SAFETY: the file pins its mount and dentry; the directory's inode lock is held (the
        // type's invariant), as `lookup_one` requires; `q` points to `name`, which outlives
        // the call.
        let d = unsafe {
            let path = &(*self.file.as_ptr()).__bindgen_anon_1.f_path;
            cb::lookup_one(cb::unionrs_mnt_idmap(path.mnt), &mut q, path.dentry)
        };
        let d = match from_err_ptr(d) {
            Ok(d) => NonNull::new(d).ok_or(ENOENT)?,
            Err(e) if e == ENOENT => return Ok(None),
            Err(e) => return Err(e),
        };
        // SAFETY: a referenced dentry, which the `ARef` now owns.
        let d = unsafe { kernel::sync::aref::ARef::<Dentry>::from_raw(d.cast()) };
        Ok(d.inode().is_some().then_some(d))
    }
}

/// The caller's side of a `getdents`: where we emit the union directory's entries.
///
/// # Invariants
///
/// `ctx` is the live dir_context of the current `iterate_shared` call.
pub(crate) struct DirEmitter<'a> {
    ctx: &'a mut bindings::dir_context,
}

impl<'a> DirEmitter<'a> {
    /// # Safety
    ///
    /// `ctx` must be the context passed to `iterate_shared`, valid for `'a`.
    pub(crate) unsafe fn from_raw(ctx: *mut bindings::dir_context) -> Self {
        Self {
            // SAFETY: as the caller promises.
            ctx: unsafe { &mut *ctx },
        }
    }

    /// The position the caller wants to continue from.
    pub(crate) fn pos(&self) -> i64 {
        self.ctx.pos
    }

    pub(crate) fn set_pos(&mut self, pos: i64) {
        self.ctx.pos = pos;
    }

    /// Emits one entry at the current position; false when the caller's buffer is full.
    pub(crate) fn emit(&mut self, name: &[u8], ino: u64, d_type: u32) -> bool {
        let pos = self.ctx.pos;
        self.emit_at(name, pos, ino, d_type)
    }

    /// Emits one entry with its own position cookie (entries passed through from a layer).
    pub(crate) fn emit_at(&mut self, name: &[u8], offset: i64, ino: u64, d_type: u32) -> bool {
        let Some(actor) = self.ctx.actor else {
            return false;
        };
        // SAFETY: the caller's actor, called as `dir_emit` does.
        unsafe {
            actor(
                self.ctx,
                name.as_ptr().cast(),
                name.len() as c_int,
                offset,
                ino,
                d_type,
            )
        }
    }
}
