// SPDX-License-Identifier: GPL-2.0

//! Layers as the union sees them: a private clone of the layer's mount, and paths on it.

use super::dentry::Dentry;
use super::ffi;
use super::path::Path;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A private clone of a layer's mount, made at mount time and released with the union.
///
/// Lower layers are cloned read-only and noatime: nothing done through the union can write
/// to them, not even access times.
///
/// # Invariants
///
/// `mnt` is a mount from `clone_private_mount` that we own until drop (`kern_unmount`).
pub(crate) struct LayerMount {
    mnt: NonNull<bindings::vfsmount>,
}

// SAFETY: a private mount is reference counted and usable from any thread.
unsafe impl Send for LayerMount {}
// SAFETY: `&LayerMount` only hands out the pointer for calls that do their own locking.
unsafe impl Sync for LayerMount {}

impl LayerMount {
    /// Clones the mount that `path` is on; `readonly` for lower layers.
    pub(crate) fn clone_private(path: &Path, readonly: bool) -> Result<Self> {
        // SAFETY: `path` is a valid, referenced path.
        let mnt = unsafe { ffi::unionrs_clone_layer_mount(path.as_raw(), readonly) };
        let mnt = from_err_ptr(mnt)?;
        // INVARIANT: `clone_private_mount` succeeded; we own the clone.
        Ok(Self {
            mnt: NonNull::new(mnt).ok_or(ENOMEM)?,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::vfsmount {
        self.mnt.as_ptr()
    }

    /// The id mapping of the mount, for permission checks on its inodes.
    pub(crate) fn idmap(&self) -> *mut bindings::mnt_idmap {
        // SAFETY: the mount is valid.
        unsafe { ffi::unionrs_mnt_idmap(self.as_ptr()) }
    }

    /// The superblock of the layer's filesystem (for same-filesystem checks).
    pub(crate) fn sb_ptr(&self) -> *const bindings::super_block {
        // SAFETY: the mount and its superblock are valid while we own the mount.
        unsafe { (*self.as_ptr()).mnt_sb }
    }
}

impl Drop for LayerMount {
    fn drop(&mut self) {
        // SAFETY: we own the private clone (type invariant).
        unsafe { bindings::kern_unmount(self.as_ptr()) };
    }
}

/// A path on a layer: a layer mount plus a dentry on it, both borrowed.
#[derive(Clone, Copy)]
pub(crate) struct RealPath<'a> {
    pub(crate) mnt: &'a LayerMount,
    pub(crate) dentry: &'a Dentry,
}

impl RealPath<'_> {
    /// The C `struct path` (no references taken: it borrows ours).
    pub(crate) fn raw(&self) -> bindings::path {
        bindings::path {
            mnt: self.mnt.as_ptr(),
            dentry: self.dentry.as_ptr(),
        }
    }
}
