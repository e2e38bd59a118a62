// SPDX-License-Identifier: GPL-2.0

//! Credentials: the one place where the module switches them.
//!
//! Every operation on a real object (lookup, stat, xattrs, create, rename, open, ...) takes an
//! [`AsMounter`] token, and the only ways to get one are [`MounterCreds::with_mounter`] and
//! [`MounterCreds::with_creator`], which switch the task to the mounter's credentials for the
//! closure they run and lend it the token. So a real object cannot be reached with the
//! caller's credentials by mistake, and no other code overrides credentials. (The kernel's
//! backing-file helpers switch to the credentials we hand them themselves, for the I/O they
//! forward.)

use super::bindings as cb;
use super::Dentry;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::cred::Credential;
use kernel::error::to_result;
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
    /// Captures the current task's credentials (when the superblock is made, or when
    /// `override_creds` is given), minus the capabilities in `dropped` (a mask of `CAP_*`
    /// bit numbers' bits).
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

    /// Runs `f` as the mounter: the task's credentials are switched to these for the call,
    /// and `f` gets the proof. (A closure rather than a guard that callers hold: a guard could
    /// be leaked with `mem::forget`, which would leave the task on our credentials.)
    pub(crate) fn with_mounter<R>(&self, f: impl FnOnce(&AsMounter<'_>) -> R) -> R {
        // SAFETY: `self.0` is a valid credential that outlives the token, which reverts the
        // override when dropped at the end of this function, on this task.
        let old = unsafe { cb::unionrs_override_creds(self.0.as_ptr()) };
        // INVARIANT: `old` is what the override returned; the token does not leave this frame.
        let token = AsMounter {
            old,
            _creds: PhantomData,
        };
        f(&token)
    }

    /// Like [`Self::with_mounter`], but with `fsuid` and `fsgid` as the file system ids, so
    /// that the objects `f` makes for union dentry `dentry` (of type and mode `mode`) get that
    /// owner; a security module may set the context they are created in from the caller's
    /// (as overlayfs lets it).
    pub(crate) fn with_creator<R>(
        &self,
        fsuid: Kuid,
        fsgid: Kgid,
        dentry: &Dentry,
        mode: u32,
        f: impl FnOnce(&AsMounter<'_>) -> R,
    ) -> Result<R> {
        self.with_mounter(|m| {
            // SAFETY: no preconditions; a copy of the current (mounter's) credentials.
            let cred = NonNull::new(unsafe { bindings::prepare_creds() }).ok_or(ENOMEM)?;
            // SAFETY: `prepare_creds` gave us a reference, which the `ARef` now owns.
            let creator: ARef<Credential> = unsafe { ARef::from_raw(cred.cast()) };
            // SAFETY: the copy is ours alone; it is used only from the override below on.
            unsafe {
                (*cred.as_ptr()).fsuid = fsuid;
                (*cred.as_ptr()).fsgid = fsgid;
            }
            // SAFETY: `dentry` is live; `m.old` is the caller's credentials (what the
            // mounter's override replaced), `cred` our unshared copy, which the hook may
            // change.
            to_result(unsafe {
                cb::unionrs_security_dentry_create_files_as(
                    dentry.as_ptr(),
                    mode as c_int,
                    m.old,
                    cred.as_ptr(),
                )
            })?;
            // SAFETY: `creator` outlives the override, which `revert` undoes at the end of
            // this closure, on this task, before `creator` is released.
            let old = unsafe { cb::unionrs_override_creds(creator.as_ptr()) };
            // INVARIANT: `old` is what the override returned (the mounter's credentials).
            let revert = Revert(old);
            let r = f(m);
            drop(revert);
            drop(creator);
            Ok(r)
        })
    }

    /// The credentials, for the kernel's backing-file helpers (which switch to them for the
    /// I/O they forward).
    pub(crate) fn as_ptr(&self) -> *const bindings::cred {
        self.0.as_ptr()
    }
}

/// Proof that the task runs with a union's mounter credentials; real objects are reached only
/// through functions that take one. Only [`MounterCreds::with_mounter`] makes one, and lends
/// it to its closure.
///
/// # Invariants
///
/// `old` is what `override_creds` returned when the token was made; the token is not `Send`
/// (the raw pointer), so it is dropped on the task that made it, where it was made.
pub(crate) struct AsMounter<'a> {
    old: *const bindings::cred,
    _creds: PhantomData<&'a MounterCreds>,
}

impl AsMounter<'_> {
    /// Runs `f` with the credentials a security module asks for while union dentry `dentry`
    /// is copied up (the label its copy must get), or as they are if it asks for none.
    pub(crate) fn with_copy_up_creds<R>(
        &self,
        dentry: &Dentry,
        f: impl FnOnce() -> R,
    ) -> Result<R> {
        let mut new: *mut bindings::cred = core::ptr::null_mut();
        // SAFETY: `dentry` is live; the hook stores a new credential (or nothing) in `new`.
        to_result(unsafe { cb::unionrs_security_inode_copy_up(dentry.as_ptr(), &mut new) })?;
        let Some(new) = NonNull::new(new) else {
            return Ok(f());
        };
        // SAFETY: the hook gave us its reference, which the `ARef` now owns.
        let creds: ARef<Credential> = unsafe { ARef::from_raw(new.cast()) };
        // SAFETY: `creds` outlives the override, which `revert` undoes before this function
        // returns, on this task.
        let old = unsafe { cb::unionrs_override_creds(creds.as_ptr()) };
        // INVARIANT: `old` is what the override returned (the mounter's credentials).
        let revert = Revert(old);
        let r = f();
        drop(revert);
        drop(creds);
        Ok(r)
    }

    /// Whether `uid` and `gid` both have a mapping in the mounter's user namespace (the
    /// current one while the token lives): an object owned by an unmapped id cannot be
    /// recreated faithfully by the mounter (overlayfs' check for CVE-2023-0386).
    pub(crate) fn maps_ids(&self, uid: Kuid, gid: Kgid) -> bool {
        // SAFETY: the current task's credentials are valid for the call and hold a reference
        // to their user namespace; `from_kuid`/`from_kgid` only read it.
        unsafe {
            let ns = (*cb::unionrs_current_cred()).user_ns;
            bindings::from_kuid(ns, uid) != u32::MAX && bindings::from_kgid(ns, gid) != u32::MAX
        }
    }
}

impl Drop for AsMounter<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` came from `override_creds` on this task (type invariant).
        unsafe { cb::unionrs_revert_creds(self.old) };
    }
}

/// Reverts an inner override (the creator's ids) when dropped.
///
/// # Invariants
///
/// `.0` is what `override_creds` returned on this task; the value never leaves the frame of
/// [`MounterCreds::with_creator`] or [`AsMounter::with_copy_up_creds`].
struct Revert(*const bindings::cred);

impl Drop for Revert {
    fn drop(&mut self) {
        // SAFETY: as the type invariant says.
        unsafe { cb::unionrs_revert_creds(self.0) };
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

/// Whether the calling task's user namespace is `ns`.
pub(crate) fn caller_user_ns_is(ns: *const bindings::user_namespace) -> bool {
    // SAFETY: the current task's credentials are valid for the call.
    core::ptr::eq(unsafe { (*cb::unionrs_current_cred()).user_ns }, ns)
}

/// Whether the calling task's user namespace is `ns` or a descendant of it.
pub(crate) fn caller_in_user_ns(ns: *const bindings::user_namespace) -> bool {
    // SAFETY: `ns` is a live namespace (the caller's reference); the function only reads.
    unsafe { bindings::current_in_userns(ns) }
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

/// Whether the calling task may open objects by file handle: `CAP_DAC_READ_SEARCH` in the
/// initial user namespace (what overlayfs asks before it decodes a real handle).
pub(crate) fn caller_may_decode_fh() -> bool {
    // SAFETY: no preconditions; checks the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_DAC_READ_SEARCH as c_int) }
}
