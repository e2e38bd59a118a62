// SPDX-License-Identifier: GPL-2.0

//! The filesystem's one xattr handler: every name goes to [`XattrOps`].

use super::dentry::Dentry;
use super::fs_type::FileSystem;
use super::inode::FsInode;
use super::iops::AllOps;
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::{from_result, VTABLE_DEFAULT_ERROR};
use kernel::prelude::*;

/// Extended attributes (all names; `listxattr` is an inode operation).
#[vtable]
pub(crate) trait XattrOps: FileSystem {
    /// Reads xattr `name` of `inode` into `buf` (or its size, for an empty `buf`).
    fn get(_inode: &FsInode<Self>, _name: &CStr, _buf: &mut [u8]) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Sets (`Some`) or removes (`None`) xattr `name` of `dentry`'s object.
    fn set(_dentry: &Dentry, _name: &CStr, _value: Option<&[u8]>, _flags: i32) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The prefix of our xattr handler: empty, so that it matches every name.
// `as_char_ptr` (which the lint asks for) is not a const fn; an empty string has no
// signedness to get wrong.
#[allow(clippy::disallowed_methods)]
const EMPTY_PREFIX: *const c_char = c"".as_ptr().cast();

/// The xattr handler of `T` and its trampolines.
pub(super) struct Handler<T>(PhantomData<T>);

impl<T: AllOps> Handler<T> {
    const HANDLER: bindings::xattr_handler = bindings::xattr_handler {
        prefix: EMPTY_PREFIX,
        get: if T::HAS_GET { Some(Self::get) } else { None },
        set: if T::HAS_SET { Some(Self::set) } else { None },
        // SAFETY: all-zero is a valid handler (no name, no list filter).
        ..unsafe { core::mem::zeroed() }
    };

    /// The NULL-terminated handler list for `super_block::s_xattr`.
    pub(super) const LIST: [*const bindings::xattr_handler; 2] =
        [&Self::HANDLER, core::ptr::null()];

    /// `xattr_handler::get`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `inode` is an inode of `T`, `name` a NUL-terminated string and
    /// `buffer` writable for `size` bytes (or NULL with size 0), all for the call.
    unsafe extern "C" fn get(
        _handler: *const bindings::xattr_handler,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const c_char,
        buffer: *mut c_void,
        size: usize,
    ) -> c_int {
        from_result(|| {
            // SAFETY: as the function's contract says.
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
            c_int::try_from(T::get(inode, name, buf)?).map_err(|_| ERANGE)
        })
    }

    /// `xattr_handler::set`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only: `dentry` is a positive dentry of `T` whose inode the VFS has
    /// locked, `name` a NUL-terminated string and `value` readable for `size` bytes (NULL for
    /// a removal).
    unsafe extern "C" fn set(
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
            // SAFETY: as the function's contract says.
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
            T::set(d, name, value, flags)?;
            Ok(0)
        })
    }
}
