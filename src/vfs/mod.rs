// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the parts of the C VFS that unionrs uses.
//!
//! Every `unsafe` block of the module lives under this directory. The union
//! logic above it (params, superblock, ...) only sees the safe types defined
//! here: [`Dentry`], [`Inode`], [`Path`], [`SuperBlock`], [`FsContext`].

pub(crate) mod cred;
pub(crate) mod dentry;
pub(crate) mod ffi;
pub(crate) mod file;
pub(crate) mod fs_context;
pub(crate) mod fs_type;
pub(crate) mod inode;
pub(crate) mod layer;
pub(crate) mod ops;
pub(crate) mod path;
pub(crate) mod super_block;
pub(crate) mod upper;

pub(crate) use cred::MounterCreds;
#[allow(unused_imports)]
pub(crate) use dentry::Dentry;
pub(crate) use file::{DirEmitter, RealFile};
pub(crate) use fs_context::{FsContext, Param, ParamValue};
pub(crate) use fs_type::{FileSystem, RealTop, Registration};
pub(crate) use inode::{FsInode, Inode, PermInode};
pub(crate) use layer::{LayerMount, RealPath};
pub(crate) use ops::{Idmap, Kstat};
pub(crate) use path::Path;
pub(crate) use super_block::SuperBlock;
pub(crate) use upper::{Iattr, NewObject, PosixAcl, RealStat, Rename, RenameEnd};

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
}

/// Shows a C string in a message, with non-printable bytes escaped.
pub(crate) fn show(s: &kernel::prelude::CStr) -> &kernel::str::BStr {
    kernel::str::BStr::from_bytes(s.to_bytes())
}

/// Whether the calling task has `CAP_SYS_ADMIN` (may see `trusted.*` xattr names).
pub(crate) fn caller_is_sys_admin() -> bool {
    // SAFETY: no preconditions; checks the current task's credentials.
    unsafe { ffi::unionrs_capable_sys_admin() }
}

/// A new random uuid.
pub(crate) fn new_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    // SAFETY: `u` is valid for the 16 bytes written.
    unsafe { ffi::unionrs_uuid_gen(u.as_mut_ptr()) };
    u
}
