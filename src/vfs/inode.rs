// SPDX-License-Identifier: GPL-2.0

//! Inodes.

use core::ptr::NonNull;
use kernel::bindings;
use kernel::sync::aref::{ARef, AlwaysRefCounted};
use kernel::types::Opaque;

/// An inode of any filesystem.
///
/// # Invariants
///
/// The wrapped `struct inode` is valid while a reference to an `Inode` exists: shared references
/// are only created while the inode is pinned by a reference count or by a dentry that holds it.
#[repr(transparent)]
pub(crate) struct Inode(Opaque<bindings::inode>);

// SAFETY: inodes are reference counted and protected by their own locks.
unsafe impl Send for Inode {}
// SAFETY: the methods here only read fields under the rules the VFS gives for them.
unsafe impl Sync for Inode {}

impl Inode {
    /// Borrows a C inode.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid inode that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Inode {
        // SAFETY: `Inode` is `repr(transparent)`; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The file type and permission bits.
    pub(crate) fn mode(&self) -> u32 {
        // SAFETY: `self` is valid; the type bits of `i_mode` never change and a racy read of
        // the permission bits is what `stat` does too.
        u32::from(unsafe { (*self.as_ptr()).i_mode })
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.mode() & bindings::S_IFMT == bindings::S_IFDIR
    }

    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: `self` is valid and `i_ino` does not change after the inode is hashed.
        unsafe { (*self.as_ptr()).i_ino }
    }
}

// SAFETY: `ihold` and `iput` are the inode refcount operations.
unsafe impl AlwaysRefCounted for Inode {
    fn inc_ref(&self) {
        // SAFETY: `self` is valid and already referenced, as `ihold` requires.
        unsafe { bindings::ihold(self.as_ptr()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference that it gives up here.
        unsafe { bindings::iput(obj.cast().as_ptr()) };
    }
}

/// A freshly allocated inode of our own superblock that nobody else can see yet, so its fields
/// may be written without locks.
///
/// # Invariants
///
/// `inode` comes from `new_inode`, we own its only reference, and it is not yet reachable from
/// any dentry.
pub(crate) struct NewInode {
    inode: ARef<Inode>,
}

impl NewInode {
    /// Takes ownership of an inode returned by `new_inode`.
    ///
    /// # Safety
    ///
    /// `ptr` must come from `new_inode` and must not be visible to anyone else.
    pub(crate) unsafe fn from_new(ptr: NonNull<bindings::inode>) -> Self {
        // INVARIANT: the caller hands over the only reference of an unpublished inode.
        // SAFETY: `new_inode` returned a counted reference, which we take over.
        Self { inode: unsafe { ARef::from_raw(ptr.cast()) } }
    }

    fn raw(&self) -> *mut bindings::inode {
        self.inode.as_ptr()
    }

    /// Sets the inode number.
    pub(crate) fn set_ino(&mut self, ino: u64) {
        // SAFETY: the inode is ours alone (type invariant).
        unsafe { (*self.raw()).i_ino = ino };
    }

    /// Copies mode, owner, rdev, times, flags and link count from `src`.
    pub(crate) fn copy_attrs_from(&mut self, src: &Inode) {
        // SAFETY: `self` is unpublished (type invariant) and `src` is valid.
        unsafe { super::ffi::unionrs_copy_attr_all(self.raw(), src.as_ptr()) };
    }

    /// Makes this an empty directory served by the VFS' simple directory operations.
    pub(crate) fn set_simple_dir_ops(&mut self) {
        // SAFETY: the inode is ours alone; the simple operations are static and live forever.
        unsafe {
            (*self.raw()).i_op = &raw const bindings::simple_dir_inode_operations;
            (*self.raw()).__bindgen_anon_3.i_fop = &raw const bindings::simple_dir_operations;
        }
    }

    /// Gives up ownership, returning the raw inode with its reference.
    pub(crate) fn into_raw(self) -> *mut bindings::inode {
        ARef::into_raw(self.inode).as_ptr().cast()
    }
}
