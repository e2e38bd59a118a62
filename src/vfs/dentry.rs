// SPDX-License-Identifier: GPL-2.0

//! Directory entries.

use super::bindings as cb;
use super::inode::Inode;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::bindings;
use kernel::prelude::*;
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
        // SAFETY: `self` is valid; a referenced dentry's inode pointer is stable (it only goes
        // from NULL to an inode, under the parent's lock, and the inode lives while the dentry
        // points to it).
        let inode = unsafe { (*self.as_ptr()).d_inode };
        // SAFETY: a non-null `d_inode` is a live inode (see above).
        (!inode.is_null()).then(|| unsafe { Inode::from_raw(inode) })
    }

    fn flags(&self) -> u32 {
        // SAFETY: `self` is valid; a racy read of the flags, as `d_managed()` and friends do.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).d_flags) }
    }

    /// Whether the dentry's filesystem applies a name encoding (case-folding) to it.
    fn sb_has_encoding(&self) -> bool {
        // SAFETY: `self` is valid, and so is its superblock while it lives.
        unsafe { cb::unionrs_sb_has_encoding((*self.as_ptr()).d_sb) }
    }

    /// Whether a layer cannot be rooted here, as overlayfs decides: an automount point or a
    /// dentry managed in transit, or one whose filesystem hashes or compares names in its own
    /// way other than by case-folding (lookups of the union would not match its names).
    pub(crate) fn is_unusual_layer_root(&self) -> bool {
        let flags = self.flags();
        let special = bindings::dentry_flags_DCACHE_NEED_AUTOMOUNT
            | bindings::dentry_flags_DCACHE_MANAGE_TRANSIT;
        let own_names =
            bindings::dentry_flags_DCACHE_OP_HASH | bindings::dentry_flags_DCACHE_OP_COMPARE;
        flags & special != 0 || (!self.sb_has_encoding() && flags & own_names != 0)
    }

    /// Whether the dentry belongs to a stacking filesystem that hands out other real
    /// dentries (overlayfs' `d_real`).
    pub(crate) fn has_real_op(&self) -> bool {
        self.flags() & bindings::dentry_flags_DCACHE_OP_REAL != 0
    }

    /// The magic number of the dentry's filesystem.
    pub(crate) fn sb_magic(&self) -> u64 {
        // SAFETY: `self` is valid, and so is its superblock while it lives; `s_magic` is set
        // before the filesystem is mounted and never changes.
        unsafe { (*(*self.as_ptr()).d_sb).s_magic as u64 }
    }

    /// Whether the dentry is a case-folded directory.
    pub(crate) fn is_casefolded(&self) -> bool {
        if !self.sb_has_encoding() {
            return false;
        }
        let Some(inode) = self.inode() else {
            return false;
        };
        // SAFETY: `i_flags` of a live inode; a racy read, as `IS_CASEFOLDED` is.
        let flags = unsafe { core::ptr::read_volatile(&raw const (*inode.as_ptr()).i_flags) };
        flags & bindings::S_CASEFOLD != 0
    }

    /// Whether this is a positive dentry of a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.inode().is_some_and(Inode::is_dir)
    }

    /// Whether this is a positive dentry of a regular file.
    pub(crate) fn is_reg(&self) -> bool {
        self.inode().is_some_and(Inode::is_reg)
    }

    /// Whether this is a positive dentry of a 0/0 character device (a whiteout).
    pub(crate) fn is_whiteout(&self) -> bool {
        self.inode().is_some_and(Inode::is_whiteout)
    }

    /// Whether `self` is `ancestor` or lies below it (in the same filesystem).
    pub(crate) fn is_subdir_of(&self, ancestor: &Dentry) -> bool {
        // SAFETY: both dentries are valid; `is_subdir` takes the rename lock itself.
        unsafe { bindings::is_subdir(self.as_ptr(), ancestor.as_ptr()) }
    }

    /// The name of this dentry. Stable while the dentry is referenced and its parent is
    /// locked or it is being looked up (which is when we read it).
    pub(crate) fn name(&self) -> &[u8] {
        // SAFETY: `d_name` is valid while the dentry is referenced; see above for stability.
        unsafe {
            let q = &(*self.as_ptr()).__bindgen_anon_1.d_name;
            core::slice::from_raw_parts(q.name, q.__bindgen_anon_1.__bindgen_anon_1.len as usize)
        }
    }

    /// A copy of the name, stable against concurrent renames.
    pub(crate) fn name_copy(&self) -> Result<KVec<u8>> {
        // SAFETY: all-zero is a valid snapshot to fill.
        let mut n: bindings::name_snapshot = unsafe { core::mem::zeroed() };
        // SAFETY: the dentry is live; the snapshot is released below.
        unsafe { bindings::take_dentry_name_snapshot(&mut n, self.as_ptr()) };
        // SAFETY: the snapshot's name is valid until it is released.
        let name = unsafe {
            core::slice::from_raw_parts(
                n.name.name,
                n.name.__bindgen_anon_1.__bindgen_anon_1.len as usize,
            )
        };
        let mut copy = KVec::new();
        let r = copy.extend_from_slice(name, GFP_KERNEL);
        // SAFETY: taken above.
        unsafe { bindings::release_dentry_name_snapshot(&mut n) };
        r?;
        Ok(copy)
    }

    /// The parent (the dentry itself for a root).
    pub(crate) fn parent(&self) -> ARef<Dentry> {
        // SAFETY: `dget_parent` returns a referenced dentry, never NULL.
        unsafe {
            ARef::from_raw(NonNull::new_unchecked(
                bindings::dget_parent(self.as_ptr()).cast(),
            ))
        }
    }

    /// The number the filesystem noted on the dentry with [`Self::set_stamp`]: its `d_time`,
    /// which is the filesystem's to use for revalidation.
    pub(crate) fn stamp(&self) -> usize {
        // SAFETY: the dentry is live.
        unsafe { stamp_of(self.as_ptr()) }.load(Ordering::Relaxed)
    }

    /// Notes `stamp` on the dentry (see [`Self::stamp`]).
    pub(crate) fn set_stamp(&self, stamp: usize) {
        // SAFETY: the dentry is live.
        unsafe { stamp_of(self.as_ptr()) }.store(stamp, Ordering::Relaxed);
    }

    /// Whether the dentry was removed (unlinked, or dropped after a change).
    pub(crate) fn is_unhashed(&self) -> bool {
        // SAFETY: the dentry is live; a racy read of `d_hash.pprev` is what `d_unhashed` does
        // (`hlist_bl_unhashed`).
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).d_hash.pprev).is_null() }
    }

    /// Whether the dentry is not (yet) connected to its filesystem's root: one that a file
    /// handle gave, or a removed directory.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.flags() & bindings::dentry_flags_DCACHE_DISCONNECTED != 0
    }

    /// Whether this is the root of its tree (its own parent).
    pub(crate) fn is_root(&self) -> bool {
        // SAFETY: `self` is valid; a racy read of the parent pointer, as `IS_ROOT` is.
        unsafe {
            core::ptr::eq(
                core::ptr::read_volatile(&raw const (*self.as_ptr()).d_parent).cast_const(),
                self.as_ptr().cast_const(),
            )
        }
    }

    /// Looks `name` up in directory `self` of our own filesystem, without permission checks
    /// and without the directory's lock: the child's dentry, positive or negative.
    pub(crate) fn lookup_child_noperm(&self, name: &[u8]) -> Result<ARef<Dentry>> {
        let mut q = super::layer::qstr(name)?;
        // SAFETY: `self` is live; `q` points to `name`, which outlives the call.
        let d = unsafe { cb::lookup_noperm_unlocked(&mut q, self.as_ptr()) };
        let d = kernel::error::from_err_ptr(d)?;
        // SAFETY: a referenced dentry, which the `ARef` now owns.
        Ok(unsafe { ARef::from_raw(NonNull::new(d).ok_or(ENOENT)?.cast()) })
    }

    /// Unhashes the dentry: the next lookup of its name builds a fresh one.
    pub(crate) fn drop_from_cache(&self) {
        // SAFETY: the dentry is live.
        unsafe { bindings::d_drop(self.as_ptr()) }
    }

    /// Makes a negative dentry (being created, parent locked) positive with `inode`.
    pub(crate) fn instantiate(&self, inode: ARef<Inode>) {
        // SAFETY: `d_instantiate` takes over our inode reference.
        unsafe { bindings::d_instantiate(self.as_ptr(), ARef::into_raw(inode).as_ptr().cast()) }
    }
}

/// The `d_time` of dentry `d`, as an atomic.
///
/// # Safety
///
/// `d` is a dentry of one of our filesystems that stays allocated for `'a` (referenced, or
/// under `rcu_read_lock` in RCU walk). Its `d_time` is an aligned `unsigned long` (the size of
/// a `usize`) that only our filesystem uses, always atomically (set by `d_init` before the
/// dentry is published).
pub(super) unsafe fn stamp_of<'a>(d: *mut bindings::dentry) -> &'a AtomicUsize {
    // SAFETY: as the caller promises.
    unsafe { AtomicUsize::from_ptr((&raw mut (*d).d_time).cast()) }
}

/// What RCU walk may know of a dentry without a reference to it (its type bits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DentryKind {
    Negative,
    Dir,
    Other,
}

/// The kind of dentry `d` from its type bits in `d_flags` (as `d_is_negative` and `d_is_dir`
/// read them).
///
/// # Safety
///
/// `d` stays allocated for the call (referenced, or under `rcu_read_lock`).
pub(super) unsafe fn kind_of(d: *mut bindings::dentry) -> DentryKind {
    // SAFETY: as the caller promises; a racy read of the flags, as `__d_entry_type` does.
    let flags = unsafe { core::ptr::read_volatile(&raw const (*d).d_flags) };
    match flags & bindings::dentry_flags_DCACHE_ENTRY_TYPE {
        bindings::dentry_flags_DCACHE_MISS_TYPE => DentryKind::Negative,
        bindings::dentry_flags_DCACHE_DIRECTORY_TYPE
        | bindings::dentry_flags_DCACHE_AUTODIR_TYPE => DentryKind::Dir,
        _ => DentryKind::Other,
    }
}

// SAFETY: `lockref_get` (what `dget` does) and `dput` are the dentry refcount operations.
unsafe impl AlwaysRefCounted for Dentry {
    fn inc_ref(&self) {
        // SAFETY: the dentry is valid and referenced, as `dget` requires.
        unsafe { bindings::lockref_get(&raw mut (*self.as_ptr()).d_lockref) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference that it gives up here.
        unsafe { bindings::dput(obj.cast().as_ptr()) };
    }
}
