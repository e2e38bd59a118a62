// SPDX-License-Identifier: GPL-2.0

//! Credentials: the one place where the module switches them.
//!
//! Every operation on a real object (lookup, stat, xattrs, create, rename, open, ...) takes an
//! [`AsMounter`] token, and the only ways to get one are [`MounterCreds::as_mounter`] and
//! [`MounterCreds::as_creator`], which switch the task to the mounter's credentials for as
//! long as the token lives. So a real object cannot be reached with the caller's credentials
//! by mistake, and no other code overrides credentials. (The kernel's backing-file helpers
//! switch to the credentials we hand them themselves, for the I/O they forward.)

use super::bindings as cb;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::cred::Credential;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

/// A user id, as the kernel keeps it (`kuid_t`).
pub(crate) type Kuid = bindings::kuid_t;
/// A group id, as the kernel keeps it (`kgid_t`).
pub(crate) type Kgid = bindings::kgid_t;

/// The credentials of the task that mounted the union, kept for the life of the mount.
///
/// # Invariants
///
/// The credential is never changed after [`MounterCreds::capture`] (others may share it).
pub(crate) struct MounterCreds(ARef<Credential>);

impl MounterCreds {
    /// Captures the current task's credentials (at mount time), minus the capabilities in
    /// `dropped` (a mask of `CAP_*` bit numbers' bits).
    pub(crate) fn capture(dropped: u64) -> Result<Self> {
        // SAFETY: no preconditions; returns a new, unshared credential or NULL.
        let cred = NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?;
        // SAFETY: the credential is ours alone until it is first used.
        unsafe { (*cred.as_ptr()).cap_effective.val &= !dropped };
        // INVARIANT: nobody changes it from here on.
        // SAFETY: `prepare_creds` gave us a reference, which the `ARef` now owns; `Credential`
        // is a transparent wrapper of `struct cred`.
        Ok(Self(unsafe { ARef::from_raw(cred.cast()) }))
    }

    /// Switches the task to these credentials until the token is dropped.
    pub(crate) fn as_mounter(&self) -> AsMounter<'_> {
        // SAFETY: `self.0` is a valid credential that outlives the token, which reverts the
        // override when dropped, on this task (it is not `Send`).
        let old = unsafe { cb::unionrs_override_creds(self.0.as_ptr()) };
        // INVARIANT: `old` is what the override returned.
        AsMounter {
            old,
            _creds: PhantomData,
        }
    }

    /// Like [`Self::as_mounter`], but with `fsuid` and `fsgid` as the file system ids, so that
    /// the objects made meanwhile get that owner.
    pub(crate) fn as_creator(&self, fsuid: Kuid, fsgid: Kgid) -> Result<AsCreator<'_>> {
        let mounter = self.as_mounter();
        // SAFETY: no preconditions; a copy of the current (mounter's) credentials.
        let cred = NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?;
        // SAFETY: the copy is ours alone; it is used only from the override below on.
        unsafe {
            (*cred.as_ptr()).fsuid = fsuid;
            (*cred.as_ptr()).fsgid = fsgid;
        }
        // SAFETY: `prepare_creds` gave us a reference, which the `ARef` now owns.
        let creator: ARef<Credential> = unsafe { ARef::from_raw(cred.cast()) };
        // SAFETY: `creator` outlives the override, which `AsCreator::drop` reverts on this task.
        let old = unsafe { cb::unionrs_override_creds(creator.as_ptr()) };
        // INVARIANT: `old` is what the override returned; `mounter` reverts the outer one.
        Ok(AsCreator {
            old,
            _creator: creator,
            mounter,
        })
    }

    /// The credentials, for the kernel's backing-file helpers (which switch to them for the
    /// I/O they forward).
    pub(crate) fn as_ptr(&self) -> *const bindings::cred {
        self.0.as_ptr()
    }
}

/// Proof that the task runs with a union's mounter credentials; real objects are reached only
/// through functions that take one. Restores the task's own credentials when dropped.
///
/// # Invariants
///
/// `old` is what `override_creds` returned when the token was made; the token is not `Send`
/// (the raw pointer), so it is dropped on the task that made it.
pub(crate) struct AsMounter<'a> {
    old: *const bindings::cred,
    _creds: PhantomData<&'a MounterCreds>,
}

impl Drop for AsMounter<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` came from `override_creds` on this task (type invariant).
        unsafe { cb::unionrs_revert_creds(self.old) };
    }
}

/// An [`AsMounter`] whose file system ids are those of a new object's owner.
///
/// # Invariants
///
/// `old` is what the inner `override_creds` returned (the mounter's credentials); it is
/// reverted before `mounter` reverts the outer override.
pub(crate) struct AsCreator<'a> {
    old: *const bindings::cred,
    _creator: ARef<Credential>,
    mounter: AsMounter<'a>,
}

impl<'a> Deref for AsCreator<'a> {
    type Target = AsMounter<'a>;

    fn deref(&self) -> &AsMounter<'a> {
        &self.mounter
    }
}

impl Drop for AsCreator<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` came from the inner `override_creds` on this task (type invariant);
        // the creator's credential is released after this (field drop), when no longer used.
        unsafe { cb::unionrs_revert_creds(self.old) };
    }
}

/// The calling task's file system ids (the owner its new files get).
pub(crate) fn caller_fs_ids() -> (Kuid, Kgid) {
    // SAFETY: the current task's credentials are valid for the call.
    unsafe {
        let c = cb::unionrs_current_cred();
        ((*c).fsuid, (*c).fsgid)
    }
}

/// Whether the calling task has `CAP_SYS_ADMIN` in the initial user namespace (without an
/// audit record).
pub(crate) fn caller_is_sys_admin() -> bool {
    // SAFETY: no preconditions; checks the current task's credentials.
    unsafe {
        bindings::ns_capable_noaudit(
            &raw mut bindings::init_user_ns,
            bindings::CAP_SYS_ADMIN as c_int,
        )
    }
}
