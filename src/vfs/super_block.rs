// SPDX-License-Identifier: GPL-2.0

//! Superblocks of our own filesystem.

use super::bindings as cb;
use super::fs_type::FileSystem;
use core::marker::PhantomData;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::{ForeignOwnable, Opaque};

/// A superblock being set up by `fill_super`: its private data is not there yet.
///
/// # Invariants
///
/// The superblock is valid and not yet visible to anyone but the mounting task.
#[repr(transparent)]
pub(crate) struct NewSuperBlock(Opaque<bindings::super_block>);

impl NewSuperBlock {
    /// # Safety
    ///
    /// `ptr` must be a superblock inside `fill_super`, valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `repr(transparent)`; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    fn raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// Sets the magic number, maximum file size, time granularity and stacking depth.
    pub(crate) fn set_params(&self, magic: u64, maxbytes: i64, time_gran: u32, stack_depth: i32) {
        // SAFETY: nobody else uses the superblock during `fill_super` (type invariant).
        unsafe {
            (*self.raw()).s_magic = magic as c_ulong;
            (*self.raw()).s_maxbytes = maxbytes;
            (*self.raw()).s_time_gran = time_gran;
            (*self.raw()).s_stack_depth = stack_depth;
        }
    }

    /// Sets the filesystem's uuid (what `statx` and `FS_IOC_GETFSUUID` report).
    pub(crate) fn set_uuid(&self, uuid: &[u8; 16]) {
        // SAFETY: the superblock is being set up by us; `uuid` is 16 valid bytes.
        unsafe { cb::unionrs_super_set_uuid(self.raw(), uuid.as_ptr()) };
    }

    /// Marks the filesystem read-only.
    pub(crate) fn set_readonly(&self) {
        // SAFETY: nobody else uses the superblock during `fill_super` (type invariant).
        unsafe { (*self.raw()).s_flags |= cb::UNIONRS_SB_RDONLY as c_ulong };
    }

    /// Leaves the filesystem out of `sync(2)`, which syncs the filesystems it stacks on by
    /// itself (`syncfs(2)` still calls `sync_fs`).
    pub(crate) fn set_skip_global_sync(&self) {
        // SAFETY: nobody else uses the superblock during `fill_super` (type invariant).
        unsafe { (*self.raw()).s_iflags |= cb::UNIONRS_SB_I_SKIP_SYNC as c_ulong };
    }

    /// Lets the VFS ask the filesystem for POSIX ACLs in permission checks.
    pub(crate) fn set_posix_acls(&self) {
        // SAFETY: nobody else uses the superblock during `fill_super` (type invariant).
        unsafe { (*self.raw()).s_flags |= cb::UNIONRS_SB_POSIXACL as c_ulong };
    }
}

/// A superblock of filesystem `T` whose private data (`T::Info`) is set.
///
/// # Invariants
///
/// The superblock is valid and its `s_fs_info` holds a `KBox<T::Info>` from `into_foreign`,
/// which lives until `kill_sb`.
#[repr(transparent)]
pub(crate) struct SuperBlock<T: FileSystem>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T: FileSystem> SuperBlock<T> {
    /// # Safety
    ///
    /// `ptr` must be a live superblock of `T` whose private data is set, valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::super_block) -> &'a Self {
        // SAFETY: `repr(transparent)`; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    fn raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// Whether the filesystem is mounted read-only (now; a remount may change it).
    pub(crate) fn is_readonly(&self) -> bool {
        // SAFETY: the superblock is live; `s_flags` is read as a plain word.
        unsafe { (*self.raw()).s_flags & cb::UNIONRS_SB_RDONLY as c_ulong != 0 }
    }

    /// The filesystem's private data.
    pub(crate) fn info(&self) -> &T::Info {
        // SAFETY: by the type invariant `s_fs_info` holds a `KBox<T::Info>` that outlives
        // every reference to the superblock.
        unsafe { <KBox<T::Info> as ForeignOwnable>::borrow((*self.raw()).s_fs_info) }
    }
}

/// An anonymous device number (`get_anon_bdev`): the `st_dev` the union reports for objects
/// of one of its layers' filesystems when their inode numbers cannot be made unique on the
/// union's own device (overlayfs' `pseudo_dev`).
///
/// # Invariants
///
/// `.0` came from `get_anon_bdev` and is freed only by `drop`.
pub(crate) struct AnonDev(bindings::dev_t);

impl AnonDev {
    pub(crate) fn new() -> Result<Self> {
        let mut dev: bindings::dev_t = 0;
        // SAFETY: `dev` is a valid place for the number.
        kernel::error::to_result(unsafe { bindings::get_anon_bdev(&mut dev) })?;
        // INVARIANT: the number is ours until drop.
        Ok(Self(dev))
    }

    pub(crate) fn dev(&self) -> u32 {
        self.0
    }
}

impl Drop for AnonDev {
    fn drop(&mut self) {
        // SAFETY: the number came from `get_anon_bdev` and is freed once (type invariant).
        unsafe { bindings::free_anon_bdev(self.0) };
    }
}
