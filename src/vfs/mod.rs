// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the parts of the C VFS that unionrs uses.
//!
//! Every `unsafe` block of the module lives under this directory, and so do all the C
//! declarations: `kernel::bindings`, plus [`bindings`], which `scripts/gen-bindings` makes at
//! build time from `helpers.h` (the exported kernel functions of headers the kernel's bindings
//! leave out, the one-call C helpers of `helpers.c`, and the constants shared with C). The
//! union logic above (src/) sees only the safe types defined here.
//!
//! The filesystem's type implements one `#[vtable]` trait per VFS object:
//! [`FileSystem`] (mounting), [`SuperOps`], [`InodeOps`] (every inode), [`DirOps`]
//! (directories and their open files), [`SymlinkOps`], [`FileOps`] (open regular files) and
//! [`XattrOps`]. The C operation tables are built from them here; a method the type does not
//! implement is a NULL entry.
//!
//! Real objects are reached only with an [`AsMounter`] token, which switches the task to the
//! mounter's credentials while it lives (`cred.rs`, the only code that switches credentials).
//!
//! # How to add a VFS operation
//!
//! 1. Add the method to its object's trait (in `iops.rs`, `fops.rs`, `xattr_handler.rs` or
//!    `fs_type.rs`) with a default body of `build_error!(VTABLE_DEFAULT_ERROR)`, taking safe
//!    types only.
//! 2. Add an `unsafe extern "C"` trampoline next to the others there (with a `# Safety`
//!    section saying what the VFS guarantees), and its entry in the C table, guarded by the
//!    method's `HAS_*` constant.
//! 3. Implement the method in the union logic, in the `impl` of that trait (one file per
//!    concern under src/). If the operation needs a kernel function that is not in
//!    `kernel::bindings`, add it to the allowlist of `scripts/gen-bindings`; if it is a
//!    static inline function or a macro, add a one-call helper to `helpers.c` and its
//!    prototype to `helpers.h`.

pub(crate) mod bindings;
pub(crate) mod cred;
pub(crate) mod dentry;
pub(crate) mod file;
pub(crate) mod fops;
pub(crate) mod fs_context;
pub(crate) mod fs_type;
pub(crate) mod inode;
pub(crate) mod iops;
pub(crate) mod layer;
pub(crate) mod path;
pub(crate) mod real;
pub(crate) mod super_block;
pub(crate) mod sync;
pub(crate) mod xattr_handler;

pub(crate) use cred::{caller_is_sys_admin, AsMounter, MounterCreds};
pub(crate) use dentry::{Dentry, DentryKind};
pub(crate) use file::{DirEmitter, IteratedDir, RealFile, UserFile};
pub(crate) use fops::FileOps;
pub(crate) use fs_context::{FsContext, Param, ParamValue};
pub(crate) use fs_type::{FileSystem, Kstatfs, Registration, SuperOps};
pub(crate) use inode::{FsInode, Idmap, Inode, Kstat, PermInode, VERITY_MAX_DIGEST};
pub(crate) use iops::{DirOps, Fiemap, InodeOps, LinkTarget, SymlinkOps};
pub(crate) use layer::{Acl, FhSupport, LayerMount, RealPath, RealStat};
pub(crate) use path::Path;
pub(crate) use real::{Iattr, NewObject, PosixAcl, Rename, RenameEnd};
pub(crate) use super_block::{AnonDev, SuperBlock};
pub(crate) use xattr_handler::XattrOps;

/// Error codes that `kernel::error::code` does not define.
pub(crate) mod errno {
    use kernel::bindings;
    use kernel::error::Error;

    /// Too many levels of symbolic links; overlayfs' answer to overlapping layers.
    pub(crate) fn eloop() -> Error {
        Error::from_errno(-(bindings::ELOOP as i32))
    }

    /// Operation not supported (by the real filesystem).
    pub(crate) fn eopnotsupp() -> Error {
        Error::from_errno(-(bindings::EOPNOTSUPP as i32))
    }

    /// Cross-device link: what overlayfs answers for renaming a merged or lower directory.
    pub(crate) fn exdev() -> Error {
        Error::from_errno(-(bindings::EXDEV as i32))
    }

    /// Directory not empty.
    pub(crate) fn enotempty() -> Error {
        Error::from_errno(-(bindings::ENOTEMPTY as i32))
    }

    /// File name too long.
    pub(crate) fn enametoolong() -> Error {
        Error::from_errno(-(bindings::ENAMETOOLONG as i32))
    }

    /// No such attribute.
    pub(crate) fn enodata() -> Error {
        Error::from_errno(-(bindings::ENODATA as i32))
    }

    /// Stale file handle: what a real object turned out to be under the locks is not what
    /// the union saw before.
    pub(crate) fn estale() -> Error {
        Error::from_errno(-(bindings::ESTALE as i32))
    }

    /// Object is remote: a real object the union cannot stack on (an automount point, ...).
    pub(crate) fn eremote() -> Error {
        Error::from_errno(-(bindings::EREMOTE as i32))
    }
}

/// Shows a C string in a message, with non-printable bytes escaped.
pub(crate) fn show(s: &kernel::prelude::CStr) -> &kernel::str::BStr {
    kernel::str::BStr::from_bytes(s.to_bytes())
}

/// Logs a warning that any user can cause, under the module's rate limit (the kernel's
/// default: 10 per 5 seconds).
pub(crate) fn warn_ratelimited(args: core::fmt::Arguments<'_>) {
    // SAFETY: no preconditions.
    if unsafe { bindings::unionrs_log_ratelimit() } {
        kernel::pr_warn!("{}\n", args);
    }
}

/// Whether the current task has been killed (and should stop a long operation).
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: no preconditions; reads the current task's signal state.
    unsafe { bindings::unionrs_fatal_signal_pending() }
}

/// A new random uuid.
pub(crate) fn new_uuid() -> [u8; 16] {
    // SAFETY: all-zero is a valid uuid to fill.
    let mut u: kernel::bindings::uuid_t = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is ours.
    unsafe { kernel::bindings::uuid_gen(&mut u) };
    u.b
}
