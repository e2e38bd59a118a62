// SPDX-License-Identifier: GPL-2.0

//! Directory entries.

use super::inode::Inode;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::sync::aref::{ARef, AlwaysRefCounted};
use kernel::types::Opaque;

/// A dentry of any filesystem (a layer's, or our own).
///
/// # Invariants
///
/// The wrapped `struct dentry` is valid for the lifetime of every reference to a `Dentry`: shared
/// references only exist while someone holds a counted reference (`dget`) on it.
#[repr(transparent)]
pub(crate) struct Dentry(Opaque<bindings::dentry>);

// SAFETY: dentries are reference counted and all their mutable state is protected by their own
// locks, so they may be used and released from any thread.
unsafe impl Send for Dentry {}
// SAFETY: see `Send`; the methods here only read fields that are stable while a reference is held.
unsafe impl Sync for Dentry {}

impl Dentry {
    /// Borrows a C dentry.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid dentry on which the caller holds a reference for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dentry) -> &'a Dentry {
        // SAFETY: `Dentry` is `repr(transparent)` over the C struct; validity is the caller's
        // promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The inode, or `None` for a negative dentry.
    pub(crate) fn inode(&self) -> Option<&Inode> {
        // SAFETY: `d_inode` of a dentry we hold a reference on is either NULL or an inode that
        // lives at least as long as the dentry stays positive; layer roots and looked-up
        // positive dentries stay positive while referenced.
        let inode = unsafe { (*self.as_ptr()).d_inode };
        // SAFETY: a non-NULL `d_inode` is a valid inode (see above).
        (!inode.is_null()).then(|| unsafe { Inode::from_raw(inode) })
    }

    /// Whether this is a positive dentry of a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.inode().is_some_and(Inode::is_dir)
    }

    /// Whether `self` is `ancestor` or lies below it (in the same filesystem).
    pub(crate) fn is_subdir_of(&self, ancestor: &Dentry) -> bool {
        // SAFETY: both dentries are valid for the duration of the call.
        unsafe { bindings::is_subdir(self.as_ptr(), ancestor.as_ptr()) }
    }
}

// SAFETY: `dget` (`lockref_get`) and `dput` are the dentry refcount operations; `dput` frees the
// dentry only when the last reference is gone.
unsafe impl AlwaysRefCounted for Dentry {
    fn inc_ref(&self) {
        // SAFETY: `self` is valid, so its lockref is too; this is `dget()`.
        unsafe { bindings::lockref_get(&raw mut (*self.as_ptr()).d_lockref) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference that it gives up here.
        unsafe { bindings::dput(obj.cast().as_ptr()) };
    }
}

/// Operations on dentries of the layers.
impl Dentry {
    /// The name of this dentry. Stable while the dentry is referenced and its parent is
    /// locked or it is being looked up (which is when we read it).
    pub(crate) fn name(&self) -> &[u8] {
        // SAFETY: `d_name` of a live dentry points to `len` valid bytes; see above for
        // stability.
        unsafe {
            let q = &(*self.as_ptr()).__bindgen_anon_1.d_name;
            core::slice::from_raw_parts(q.name, q.__bindgen_anon_1.__bindgen_anon_1.len as usize)
        }
    }

    /// Looks up `name` in this directory of layer mount `mnt`, with the current credentials'
    /// permission checks. Returns the child, which may be negative; `Ok(None)` when the name
    /// cannot exist there (`ENOENT`, `ENAMETOOLONG`).
    pub(crate) fn lookup_child(
        &self,
        mnt: &super::layer::LayerMount,
        name: &[u8],
    ) -> Result<Option<ARef<Dentry>>> {
        let len = c_int::try_from(name.len()).map_err(|_| super::errno::enametoolong())?;
        // SAFETY: `self` is a referenced directory dentry on `mnt`; `name` is valid for `len`.
        let d = unsafe {
            super::ffi::unionrs_lookup_one(mnt.as_ptr(), name.as_ptr().cast(), len, self.as_ptr())
        };
        match kernel::error::from_err_ptr(d) {
            Ok(d) => {
                // SAFETY: `lookup_one_unlocked` returned a referenced dentry, never NULL.
                Ok(Some(unsafe {
                    ARef::from_raw(NonNull::new_unchecked(d.cast()))
                }))
            }
            Err(e) if e == ENOENT || e.to_errno() == super::errno::enametoolong().to_errno() => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads extended attribute `name` into `buf` (or only its size, for an empty `buf`).
    pub(crate) fn getxattr(
        &self,
        mnt: &super::layer::LayerMount,
        name: &CStr,
        buf: &mut [u8],
    ) -> Result<usize> {
        let ptr = if buf.is_empty() {
            core::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        // SAFETY: the dentry and mount are valid; `ptr` is NULL or valid for `buf.len()`.
        let r = unsafe {
            bindings::vfs_getxattr(
                mnt.idmap(),
                self.as_ptr(),
                name.as_char_ptr(),
                ptr.cast(),
                buf.len(),
            )
        };
        if r < 0 {
            return Err(Error::from_errno(r as c_int));
        }
        Ok(r as usize)
    }

    /// Lists the extended attribute names into `buf` (or returns the size needed).
    pub(crate) fn listxattr(&self, buf: &mut [u8]) -> Result<usize> {
        let ptr = if buf.is_empty() {
            core::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        // SAFETY: the dentry is valid; `ptr` is NULL or valid for `buf.len()`.
        let r = unsafe { bindings::vfs_listxattr(self.as_ptr(), ptr.cast(), buf.len()) };
        if r < 0 {
            return Err(Error::from_errno(r as c_int));
        }
        Ok(r as usize)
    }
}
