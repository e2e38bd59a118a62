// SPDX-License-Identifier: GPL-2.0

//! Owned paths (a mount plus a dentry).

use super::bindings as cb;
use super::dentry::Dentry;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;
use kernel::str::{CStrExt, CString};

/// A counted reference on a `(vfsmount, dentry)` pair, released on drop.
///
/// # Invariants
///
/// `inner.mnt` and `inner.dentry` are valid and we own one reference on each (`path_get`).
pub(crate) struct Path {
    inner: bindings::path,
}

// SAFETY: the references a `Path` owns may be used and dropped from any thread.
unsafe impl Send for Path {}
// SAFETY: `&Path` only allows reads of the pair, which never changes.
unsafe impl Sync for Path {}

impl Path {
    /// Resolves `name` from the caller's root and working directory, following a final
    /// symlink if `follow` is set.
    pub(crate) fn lookup(name: &CStr, follow: bool) -> Result<Self> {
        let mut inner = bindings::path {
            mnt: core::ptr::null_mut(),
            dentry: core::ptr::null_mut(),
        };
        // SAFETY: `name` is NUL-terminated and `inner` is a valid out parameter.
        to_result(unsafe {
            cb::kern_path(
                name.as_char_ptr(),
                if follow { cb::UNIONRS_LOOKUP_FOLLOW } else { 0 },
                &mut inner,
            )
        })?;
        // INVARIANT: on success `kern_path` returns a referenced path.
        Ok(Self { inner })
    }

    /// Resolves `name` below directory `base` of mount `mnt` with `flags` (`LOOKUP_*`).
    ///
    /// # Safety
    ///
    /// `mnt` must be a mount the caller holds a reference on, with `base` in it.
    pub(crate) unsafe fn lookup_at(
        mnt: *mut bindings::vfsmount,
        base: &Dentry,
        name: &CStr,
        flags: u32,
    ) -> Result<Self> {
        let mut inner = bindings::path {
            mnt: core::ptr::null_mut(),
            dentry: core::ptr::null_mut(),
        };
        // SAFETY: `base` and `mnt` are live (the caller's promise); `name` is NUL-terminated
        // and `inner` is a valid out parameter.
        to_result(unsafe {
            cb::vfs_path_lookup(base.as_ptr(), mnt, name.as_char_ptr(), flags, &mut inner)
        })?;
        // INVARIANT: on success `vfs_path_lookup` returns a referenced path.
        Ok(Self { inner })
    }

    /// Takes a new reference on the path of an open file.
    ///
    /// # Safety
    ///
    /// `file` must point to a valid, open file.
    pub(crate) unsafe fn from_file(file: *mut bindings::file) -> Self {
        // SAFETY: an open file's `f_path` is valid and stable.
        let inner = unsafe { (*file).__bindgen_anon_1.f_path };
        // SAFETY: `inner` is valid; we take our own reference.
        unsafe { bindings::path_get(&inner) };
        // INVARIANT: we now own a reference on both members.
        Self { inner }
    }

    pub(crate) fn dentry(&self) -> &Dentry {
        // SAFETY: the dentry is valid while we hold our reference (type invariant).
        unsafe { Dentry::from_raw(self.inner.dentry) }
    }

    /// The path as `d_path` shows it (what `/proc/self/mountinfo` would print).
    pub(crate) fn name(&self) -> Result<CString> {
        let mut buf = KVec::from_elem(0u8, bindings::PATH_MAX as usize, GFP_KERNEL)?;
        let (buf_ptr, buf_len) = (buf.as_mut_ptr().cast(), buf.len() as c_int);
        // SAFETY: `self.inner` is valid and `buf` is writable for `PATH_MAX` bytes.
        let p = unsafe { bindings::d_path(&self.inner, buf_ptr, buf_len) };
        let p = from_err_ptr(p)?;
        // SAFETY: on success `d_path` returns a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_char_ptr(p) };
        Ok(CString::try_from(name)?)
    }

    /// Whether both paths are on the very same mount.
    pub(crate) fn same_mount(&self, other: &Path) -> bool {
        core::ptr::eq(self.inner.mnt, other.inner.mnt)
    }

    /// Whether the mount of this path is read-only.
    pub(crate) fn mount_is_readonly(&self) -> bool {
        // SAFETY: the mount is valid while we hold our reference.
        unsafe { bindings::__mnt_is_readonly(self.inner.mnt) }
    }

    /// The stacking depth of the filesystem (0 for a disk filesystem).
    pub(crate) fn stack_depth(&self) -> i32 {
        // SAFETY: a referenced dentry's superblock is valid, and `s_stack_depth` is fixed
        // once the superblock is set up.
        unsafe { (*(*self.inner.dentry).d_sb).s_stack_depth }
    }
}

impl Path {
    pub(crate) fn as_raw(&self) -> *const bindings::path {
        &self.inner
    }
}

impl Clone for Path {
    fn clone(&self) -> Self {
        // SAFETY: `self.inner` is valid; `path_get` takes a new reference on both members.
        unsafe { bindings::path_get(&self.inner) };
        // INVARIANT: the clone owns the references just taken.
        Self { inner: self.inner }
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        // SAFETY: we own one reference on each member (type invariant).
        unsafe { bindings::path_put(&self.inner) };
    }
}
