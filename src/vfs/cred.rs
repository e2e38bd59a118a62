// SPDX-License-Identifier: GPL-2.0

//! Credentials: the mounter's, which every operation on a layer runs with.

use super::ffi;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::cred::Credential;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

/// The credentials of the task that mounted the union, kept for the life of the mount.
pub(crate) struct MounterCreds(ARef<Credential>);

impl MounterCreds {
    /// Captures the current task's credentials (called at mount time).
    pub(crate) fn capture() -> Result<Self> {
        // SAFETY: no preconditions; returns a new reference or NULL.
        let cred = NonNull::new(unsafe { ffi::unionrs_prepare_mounter_creds() }).ok_or(ENOMEM)?;
        // SAFETY: `prepare_creds` gave us a reference, which the `ARef` now owns; `Credential`
        // is a transparent wrapper of `struct cred`.
        Ok(Self(unsafe { ARef::from_raw(cred.cast()) }))
    }

    /// Runs the rest of the scope with these credentials; the guard restores the caller's.
    pub(crate) fn use_here(&self) -> CredGuard<'_> {
        // SAFETY: `self.0` is a valid cred that outlives the guard; the guard reverts on drop.
        let old = unsafe { ffi::unionrs_override_creds(self.0.as_ptr()) };
        CredGuard {
            old,
            _creds: PhantomData,
        }
    }

    /// Like [`Self::use_here`], but with the caller's fsuid and the group a new object in
    /// directory `dir` gets, so that real objects made for the caller belong to the caller.
    pub(crate) fn use_as_creator(&self, dir: &super::Inode) -> Result<CreatorGuard<'_>> {
        // SAFETY: `self.0` is a valid cred that outlives the guard; `dir` is live. The guard
        // undoes both overrides on drop.
        let old = unsafe { ffi::unionrs_creator_begin(self.0.as_ptr(), dir.as_ptr()) };
        let old = kernel::error::from_err_ptr(old.cast_mut())?;
        Ok(CreatorGuard {
            old,
            _creds: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&self) -> *const bindings::cred {
        self.0.as_ptr()
    }
}

/// Restores the task's own credentials when dropped.
///
/// # Invariants
///
/// `old` is what `override_creds` returned; the guard is not `Send`, so it is dropped on the
/// task that created it.
pub(crate) struct CredGuard<'a> {
    old: *const bindings::cred,
    _creds: PhantomData<&'a MounterCreds>,
}

impl Drop for CredGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` came from `override_creds` on this task (type invariant).
        unsafe { ffi::unionrs_revert_creds(self.old) };
    }
}

/// Restores the task's own credentials and frees the creator's when dropped.
///
/// # Invariants
///
/// `old` is what `unionrs_creator_begin` returned on this task.
pub(crate) struct CreatorGuard<'a> {
    old: *mut bindings::cred,
    _creds: PhantomData<&'a MounterCreds>,
}

impl Drop for CreatorGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` came from `unionrs_creator_begin` on this task (type invariant).
        unsafe { ffi::unionrs_creator_end(self.old) };
    }
}
