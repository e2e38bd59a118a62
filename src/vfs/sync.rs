// SPDX-License-Identifier: GPL-2.0

//! A lock whose waiters a signal can interrupt, for locks held across long operations (a
//! whole-file copy-up): waiting on it is neither an unkillable task nor a hung-task report,
//! as with overlayfs' `mutex_lock_interruptible`. (The kernel crate's `Mutex` waits
//! uninterruptibly.)

use super::bindings as cb;
use core::marker::PhantomData;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::LockClassKey;
use kernel::types::Opaque;

/// A kernel `struct mutex` that guards no data of its own: what it serializes is said where
/// it is declared.
///
/// # Invariants
///
/// `mutex` was initialised by `__mutex_init` and is pinned.
#[pin_data]
pub(crate) struct InterruptibleLock {
    #[pin]
    mutex: Opaque<bindings::mutex>,
}

// SAFETY: a kernel mutex may be locked and unlocked from any task (the guard is not `Send`,
// so the task that locked it unlocks it).
unsafe impl Send for InterruptibleLock {}
// SAFETY: all operations on the mutex synchronise internally.
unsafe impl Sync for InterruptibleLock {}

impl InterruptibleLock {
    /// A new, unlocked lock of lockdep class `key`, called `name` in lockdep's reports.
    pub(crate) fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid, pinned memory for a mutex; `name` and `key` are static.
            mutex <- Opaque::ffi_init(|slot| unsafe {
                bindings::__mutex_init(slot, name.as_char_ptr(), key.as_ptr())
            }),
        })
    }

    /// Waits for the lock; a signal ends the wait with `EINTR`.
    pub(crate) fn lock(&self) -> Result<InterruptibleGuard<'_>> {
        // SAFETY: the mutex is initialised and pinned (type invariant).
        let r = unsafe { cb::unionrs_mutex_lock_interruptible(self.mutex.get()) };
        kernel::error::to_result(r)?;
        // INVARIANT: the lock is held by this task.
        Ok(InterruptibleGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }
}

/// Holds an [`InterruptibleLock`] until dropped.
///
/// # Invariants
///
/// The current task holds `lock`; the guard stays on that task (it is not `Send`).
pub(crate) struct InterruptibleGuard<'a> {
    lock: &'a InterruptibleLock,
    _not_send: PhantomData<*mut ()>,
}

impl Drop for InterruptibleGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this task holds the mutex (type invariant).
        unsafe { bindings::mutex_unlock(self.lock.mutex.get()) };
    }
}
