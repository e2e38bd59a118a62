// SPDX-License-Identifier: GPL-2.0

//! Open files of the layers, and directory iteration.

use super::cred::MounterCreds;
use super::layer::RealPath;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::from_err_ptr;
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

impl RealFile {
    /// Opens a directory of a layer for reading, with the mounter's credentials.
    pub(crate) fn open_dir(path: RealPath<'_>, creds: &MounterCreds) -> Result<Self> {
        let raw = path.raw();
        let flags = (bindings::O_RDONLY | bindings::O_DIRECTORY | bindings::O_LARGEFILE) as c_int;
        // SAFETY: `raw` borrows a live path; `dentry_open` takes its own references.
        let f = from_err_ptr(unsafe { bindings::dentry_open(&raw, flags, creds.as_ptr()) })?;
        // INVARIANT: `dentry_open` returned an open file.
        Ok(Self {
            file: NonNull::new(f).ok_or(ENOMEM)?,
        })
    }

    /// Takes ownership of an open file.
    ///
    /// # Safety
    ///
    /// `file` must be an open file whose reference the caller gives up.
    pub(crate) unsafe fn from_raw(file: NonNull<bindings::file>) -> Self {
        // INVARIANT: as the caller promises.
        Self { file }
    }

    /// Flushes the file's data (and metadata unless `datasync`) to disk.
    pub(crate) fn fsync(&self, datasync: bool) -> Result {
        // SAFETY: the file is open (type invariant).
        kernel::error::to_result(unsafe {
            super::ffi::unionrs_fsync_file(self.as_ptr(), 0, i64::MAX, datasync.into())
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    /// Reads the directory from position `pos`, calling `f(name, offset, ino, d_type)` for
    /// each entry until it returns false. Returns the position after the last entry taken.
    pub(crate) fn read_dir(&self, pos: i64, f: &mut DirActor<'_>) -> Result<i64> {
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
        // SAFETY: the file is open and only the union file (whose readers the VFS serializes)
        // uses it. Seeking through the real filesystem lets it reset its own cursor state.
        unsafe {
            if (*self.as_ptr()).f_pos != pos {
                let r = bindings::vfs_llseek(self.as_ptr(), pos, bindings::SEEK_SET as c_int);
                if r < 0 {
                    return Err(Error::from_errno(r as c_int));
                }
            }
        }
        // SAFETY: `c.ctx` is a valid dir_context whose actor matches the `Collector` layout.
        // The actor reaches the whole `Collector` through this pointer, so derive it from `c`.
        kernel::error::to_result(unsafe {
            bindings::iterate_dir(self.as_ptr(), (&raw mut c).cast())
        })?;
        Ok(c.ctx.pos)
    }
}

impl Drop for RealFile {
    fn drop(&mut self) {
        // SAFETY: we own a reference (type invariant).
        unsafe { bindings::fput(self.as_ptr()) };
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
        // SAFETY: this is `dir_emit()`: the actor is the VFS's, and `name` is valid for its
        // length during the call.
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
