// SPDX-License-Identifier: GPL-2.0

//! Inodes.

use super::bindings as cb;
use super::cred::{AsMounter, Kgid, Kuid};
use super::fs_type::FileSystem;
use super::iops::AllOps;
use super::real::InodeLock;
use super::super_block::SuperBlock;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::bindings;

/// The longest fs-verity digest (`FS_VERITY_MAX_DIGEST_SIZE`, SHA-512's).
pub(crate) const VERITY_MAX_DIGEST: usize = cb::UNIONRS_FS_VERITY_MAX_DIGEST_SIZE as usize;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::aref::AlwaysRefCounted;
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

    /// One of the inode's dentries, if it has any (`d_find_any_alias`).
    pub(crate) fn find_any_alias(&self) -> Option<ARef<super::Dentry>> {
        // SAFETY: the inode is live; `d_find_any_alias` returns a referenced dentry or NULL.
        let d = unsafe { bindings::d_find_any_alias(self.as_ptr()) };
        // SAFETY: a referenced dentry (or NULL), which the `ARef` now owns.
        NonNull::new(d).map(|d| unsafe { ARef::from_raw(d.cast()) })
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

    pub(crate) fn is_reg(&self) -> bool {
        self.mode() & bindings::S_IFMT == bindings::S_IFREG
    }

    /// Whether the file has fs-verity enabled (`fsverity_active`, which is `IS_VERITY`), and
    /// whether its verity data is in memory (it is loaded when the file is first opened).
    pub(crate) fn verity_state(&self) -> (bool, bool) {
        (self.verity_active(), self.verity_loaded())
    }

    fn verity_loaded(&self) -> bool {
        // SAFETY: `self` is a live inode.
        unsafe { cb::unionrs_fsverity_info_loaded(self.as_ptr()) }
    }

    /// Whether fs-verity is in effect on the file (`fsverity_active`).
    pub(crate) fn verity_active(&self) -> bool {
        // SAFETY: `self` is a live inode.
        unsafe { cb::unionrs_fsverity_active(self.as_ptr()) }
    }

    /// The file's fs-verity digest into `digest` (`fsverity_get_digest`): its length and the
    /// hash algorithm (`FS_VERITY_HASH_ALG_*`), or `None` if the file has none (or its
    /// verity data is not loaded).
    pub(crate) fn verity_digest(
        &self,
        digest: &mut [u8; VERITY_MAX_DIGEST],
    ) -> Option<(usize, u8)> {
        let mut alg = 0u8;
        // SAFETY: `self` is a live inode; `digest` holds `FS_VERITY_MAX_DIGEST_SIZE` bytes.
        let n = unsafe {
            cb::unionrs_fsverity_get_digest(self.as_ptr(), digest.as_mut_ptr(), &mut alg)
        };
        usize::try_from(n)
            .ok()
            .filter(|&n| n > 0 && n <= VERITY_MAX_DIGEST)
            .map(|n| (n, alg))
    }

    /// Whether this is an overlayfs-format whiteout: a character device with number 0/0.
    pub(crate) fn is_whiteout(&self) -> bool {
        // SAFETY: `i_rdev` never changes after the inode is set up.
        let rdev = unsafe { (*self.as_ptr()).i_rdev };
        self.mode() & bindings::S_IFMT == bindings::S_IFCHR && rdev == bindings::WHITEOUT_DEV
    }

    /// The file size (a racy read, as `i_size_read` is on 64-bit).
    pub(crate) fn size(&self) -> i64 {
        // SAFETY: `self` is valid; a torn read is impossible for an aligned 64-bit field.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_size) }
    }

    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: `self` is valid and `i_ino` does not change after the inode is hashed.
        unsafe { (*self.as_ptr()).i_ino }
    }

    /// The link count (a racy read, as `stat` does).
    pub(crate) fn nlink(&self) -> u32 {
        // SAFETY: `self` is valid; `__i_nlink` is an aligned 32-bit field.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).__bindgen_anon_1.__i_nlink) }
    }

    /// One name fewer (after unlink or rename over it).
    pub(crate) fn drop_nlink(&self) {
        if self.nlink() > 0 {
            // SAFETY: the VFS holds the inode's lock for the operation that removed the name.
            unsafe { bindings::drop_nlink(self.as_ptr()) };
        }
    }

    /// No names left (a removed directory).
    pub(crate) fn clear_nlink(&self) {
        // SAFETY: as for `drop_nlink`.
        unsafe { bindings::clear_nlink(self.as_ptr()) };
    }

    /// The owning group.
    pub(crate) fn gid(&self) -> super::cred::Kgid {
        // SAFETY: `self` is valid; a racy read of the group, as `stat` does.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).i_gid) }
    }

    /// Whether the calling task may keep this inode's set-group-ID bit when it changes the
    /// inode through a mount with `idmap`: it is in the inode's group as the mount shows it,
    /// or has `CAP_FSETID` over it (the rule of `posix_acl_update_mode`, here for the caller
    /// rather than the mounter).
    pub(crate) fn caller_keeps_sgid(&self, idmap: Idmap) -> bool {
        // SAFETY: the inode and the mount's idmap are valid for the call; both read the
        // current task's credentials only.
        unsafe {
            let group = bindings::make_vfsgid(idmap.0, self.user_ns(), self.gid());
            bindings::in_group_or_capable(idmap.0, self.as_ptr(), group)
        }
    }

    /// The user namespace of the inode's filesystem (the one its ids are in).
    pub(crate) fn user_ns(&self) -> *mut bindings::user_namespace {
        // SAFETY: `i_sb` and its `s_user_ns` never change while the inode lives.
        unsafe { (*(*self.as_ptr()).i_sb).s_user_ns }
    }

    /// Whether the inode's filesystem supports POSIX ACLs (it was mounted with them).
    pub(crate) fn has_posix_acls(&self) -> bool {
        // SAFETY: `i_sb` and its flags never change while the inode lives.
        unsafe { (*(*self.as_ptr()).i_sb).s_flags & cb::UNIONRS_SB_POSIXACL as c_ulong != 0 }
    }

    /// Takes the inode lock until the guard is dropped.
    pub(crate) fn lock(&self) -> InodeLock<'_> {
        InodeLock::lock(self)
    }

    /// The caller's permission check on this inode's own attributes (mode, owner, ACL).
    pub(crate) fn generic_permission(&self, idmap: Idmap, mask: i32) -> Result {
        // SAFETY: the inode and idmap are valid for the call.
        kernel::error::to_result(unsafe {
            bindings::generic_permission(idmap.0, self.as_ptr(), mask)
        })
    }

    /// The ACL used in permission checks (`get_inode_acl`), for a real inode.
    pub(crate) fn permission_acl(
        &self,
        _m: &AsMounter<'_>,
        ty: i32,
    ) -> Result<Option<super::layer::Acl>> {
        // SAFETY: the inode is live; a returned ACL comes with a reference for us.
        let acl = unsafe { cb::get_inode_acl(self.as_ptr(), ty) };
        // SAFETY: as above.
        Ok(unsafe { super::layer::Acl::from_raw(kernel::error::from_err_ptr(acl)?) })
    }

    /// Marks an upper or work directory as in use by a union (overlayfs' `I_OVL_INUSE`);
    /// false if another union (or overlayfs) already uses it.
    pub(crate) fn inuse_trylock(&self) -> bool {
        let inuse = bindings::inode_state_flags_enum_I_OVL_INUSE as c_ulong;
        // SAFETY: the inode is live; its state is read and changed under `i_lock`.
        unsafe {
            bindings::spin_lock(&raw mut (*self.as_ptr()).i_lock);
            let free = cb::unionrs_inode_state_read(self.as_ptr()) & inuse == 0;
            if free {
                cb::unionrs_inode_state_set(self.as_ptr(), inuse);
            }
            bindings::spin_unlock(&raw mut (*self.as_ptr()).i_lock);
            free
        }
    }

    /// Undoes [`Self::inuse_trylock`].
    pub(crate) fn inuse_unlock(&self) {
        // SAFETY: as above.
        unsafe {
            bindings::spin_lock(&raw mut (*self.as_ptr()).i_lock);
            cb::unionrs_inode_state_clear(
                self.as_ptr(),
                bindings::inode_state_flags_enum_I_OVL_INUSE as c_ulong,
            );
            bindings::spin_unlock(&raw mut (*self.as_ptr()).i_lock);
        }
    }
}

/// Sets the owner and group of union inode `ours` to those of real inode `theirs` as the
/// layer's mount (`idmap`) shows them (overlayfs' `ovl_copyattr`): an idmapped layer's objects
/// belong to the mapped ids in the union.
///
/// # Safety
///
/// Both inodes must be live, and `ours` not changed by others meanwhile (new, or `i_lock`
/// held).
unsafe fn show_owner(ours: *mut bindings::inode, theirs: *mut bindings::inode, idmap: Idmap) {
    // SAFETY: as the caller promises; the idmap lives while its mount does.
    unsafe {
        let ns = (*(*theirs).i_sb).s_user_ns;
        let uid = bindings::make_vfsuid(idmap.0, ns, (*theirs).i_uid);
        let gid = bindings::make_vfsgid(idmap.0, ns, (*theirs).i_gid);
        // A vfsuid stands for the kuid it equals (the kernel's `vfsuid_into_kuid`).
        (*ours).i_uid = bindings::kuid_t { val: uid.val };
        (*ours).i_gid = bindings::kgid_t { val: gid.val };
    }
}

/// The id mapping of the mount an operation came through (the kernel's, or that of an
/// idmapped mount of the union).
#[derive(Clone, Copy)]
pub(crate) struct Idmap(pub(super) *mut bindings::mnt_idmap);

impl Idmap {
    /// The caller's file system ids as the filesystem (user namespace `ns`) keeps them, for
    /// an object the caller creates through this mount; `EOVERFLOW` if the mount maps them
    /// to nothing there (the VFS refuses such callers before they get here).
    pub(crate) fn caller_fs_ids(self, ns: *mut bindings::user_namespace) -> Result<(Kuid, Kgid)> {
        let (uid, gid) = super::cred::caller_fs_ids();
        // SAFETY: the idmap lives while the operation runs; `ns` is a filesystem's namespace.
        let (uid, gid) = unsafe {
            (
                bindings::from_vfsuid(self.0, ns, bindings::vfsuid_t { val: uid.val }),
                bindings::from_vfsgid(self.0, ns, bindings::vfsgid_t { val: gid.val }),
            )
        };
        if uid.val == u32::MAX || gid.val == u32::MAX {
            return Err(EOVERFLOW);
        }
        Ok((uid, gid))
    }
}

/// Attributes returned by `stat`, as the filesystem fills them in.
///
/// # Invariants
///
/// Wraps the live `kstat` of the current `getattr` call.
pub(crate) struct Kstat<'a>(pub(super) &'a mut bindings::kstat);

impl Kstat<'_> {
    pub(crate) fn ino(&self) -> u64 {
        self.0.ino
    }

    pub(crate) fn set_ino(&mut self, ino: u64) {
        self.0.ino = ino;
    }

    /// Reports the object as being on superblock `sb` (its `st_dev`).
    pub(crate) fn set_dev_of<T: FileSystem>(&mut self, sb: &SuperBlock<T>) {
        // SAFETY: `s_dev` of a live superblock never changes.
        self.0.dev = unsafe { (*sb.as_ptr()).s_dev };
    }

    /// Reports the object as being on device `dev` (its `st_dev`).
    pub(crate) fn set_dev(&mut self, dev: u32) {
        self.0.dev = dev;
    }

    pub(crate) fn set_nlink(&mut self, nlink: u32) {
        self.0.nlink = nlink;
    }

    /// The 512-byte blocks a file of this size would take, in whole `blksize` blocks.
    pub(crate) fn size_in_blocks(&self) -> u64 {
        let (size, bs) = (self.0.size.max(0) as u64, u64::from(self.0.blksize.max(1)));
        size.div_ceil(bs).saturating_mul(bs) >> 9
    }

    /// Reports `blocks` 512-byte blocks allocated.
    pub(crate) fn set_blocks(&mut self, blocks: u64) {
        self.0.blocks = blocks;
    }

    /// Shows the owner and group through `idmap` (as `generic_fillattr` does for an idmapped
    /// mount); `ns` is the filesystem's user namespace.
    pub(crate) fn map_owner(&mut self, idmap: Idmap, ns: *mut bindings::user_namespace) {
        // SAFETY: the idmap lives while the operation runs; `ns` is a filesystem's namespace.
        let (uid, gid) = unsafe {
            (
                bindings::make_vfsuid(idmap.0, ns, self.0.uid),
                bindings::make_vfsgid(idmap.0, ns, self.0.gid),
            )
        };
        // A vfsuid is handed to user space as a kuid (the kernel's `vfsuid_into_kuid`).
        self.0.uid = bindings::kuid_t { val: uid.val };
        self.0.gid = bindings::kgid_t { val: gid.val };
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

/// An inode of our own filesystem `T`: the VFS inode with our per-inode data around it.
///
/// Allocated by our `alloc_inode` (so that the VFS inode is embedded), its data dropped by
/// `destroy_inode` and its memory freed by `free_inode` after an RCU grace period, so that
/// RCU path walkers and the inode hash may look at it until then.
///
/// # Invariants
///
/// `inode` is the first field, so a `struct inode *` of our superblock points to an `FsInode`.
/// `key` is written only before the inode is hashed (under the hash lock). `data` is written
/// only while the inode is new (`I_NEW`, which no one else may use yet) or being destroyed.
#[repr(C)]
pub(crate) struct FsInode<T: FileSystem> {
    inode: Opaque<bindings::inode>,
    key: UnsafeCell<usize>,
    data: UnsafeCell<Option<Pin<KBox<T::InodeData>>>>,
    top: RealTop,
}

/// The real object an inode shows, where a permission check in RCU path walk can read it:
/// there the inode may already be in `destroy_inode`, which drops our per-inode data, so the
/// check must not touch that data (nor sleep). Overlayfs keeps its upper and lower dentry
/// pointers for the same reason.
///
/// # Invariants
///
/// A non-null pointer holds a dentry reference, dropped by `destroy_inode` after it clears the
/// pointer. `upper` goes from null to a dentry at most once while the inode lives; `lower` and
/// `lower_layer` are set while the inode is new. Dentries and inodes are freed after an RCU
/// grace period, so a pointer read inside an RCU read section (or while the inode is
/// referenced) stays valid until that section ends.
struct RealTop {
    upper: AtomicPtr<bindings::dentry>,
    lower: AtomicPtr<bindings::dentry>,
    lower_layer: AtomicUsize,
}

impl RealTop {
    const fn new() -> Self {
        Self {
            upper: AtomicPtr::new(core::ptr::null_mut()),
            lower: AtomicPtr::new(core::ptr::null_mut()),
            lower_layer: AtomicUsize::new(0),
        }
    }
}

/// What a permission check may use of one of our inodes. It is made for RCU path walk too,
/// where the per-inode data may already be gone: so it gives the inode, its superblock and its
/// real object (`FsInode::real_top`) but not the data.
pub(crate) struct PermInode<'a, T: FileSystem>(&'a FsInode<T>);

impl<'a, T: FileSystem> PermInode<'a, T> {
    /// # Safety
    ///
    /// `ptr` must be one of our inodes, valid for `'a` (referenced, or in an RCU read section
    /// that lasts `'a`).
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::inode) -> Self {
        // SAFETY: as the caller promises.
        Self(unsafe { FsInode::from_raw(ptr) })
    }

    pub(crate) fn inode(&self) -> &'a Inode {
        self.0.inode()
    }

    pub(crate) fn sb(&self) -> &'a SuperBlock<T> {
        self.0.sb()
    }

    /// The real inode the union inode shows, and its layer number (the filesystem's own
    /// numbering, with the upper layer as 0); `None` while the inode is being torn down.
    pub(crate) fn real_top(&self) -> Option<(&'a Inode, usize)> {
        self.0.real_top()
    }
}

// SAFETY: see the type invariants: the cells are only written while the inode is exclusive.
unsafe impl<T: FileSystem> Sync for FsInode<T> {}
// SAFETY: as for `Sync`; the data is `Send`.
unsafe impl<T: FileSystem> Send for FsInode<T> {}

impl<T: FileSystem> FsInode<T> {
    /// # Safety
    ///
    /// `ptr` must be a live inode of a superblock of `T`, valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: our inodes are allocated as `FsInode<T>` with the inode first (`repr(C)`).
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn inode(&self) -> &Inode {
        // SAFETY: the embedded inode is valid while `self` is.
        unsafe { Inode::from_raw(self.inode.get()) }
    }

    /// The per-inode data; `EIO` for an inode whose set-up failed.
    pub(crate) fn data(&self) -> Result<&T::InodeData> {
        // SAFETY: `data` is not written while others hold references (type invariant).
        match unsafe { &*self.data.get() } {
            Some(d) => Ok(d),
            None => Err(EIO),
        }
    }

    /// The superblock, whose private data is set (our inodes only exist on mounted unions).
    pub(crate) fn sb(&self) -> &SuperBlock<T> {
        // SAFETY: `i_sb` is one of our superblocks, which outlives its inodes.
        unsafe { SuperBlock::from_raw((*self.inode.get()).i_sb) }
    }

    /// The real inode the union inode shows (the upper one once there is one, else the top
    /// lower one), and its layer number (the upper layer is 0).
    pub(super) fn real_top(&self) -> Option<(&Inode, usize)> {
        let upper = self.top.upper.load(Ordering::Acquire);
        let (d, layer) = if upper.is_null() {
            (
                self.top.lower.load(Ordering::Acquire),
                self.top.lower_layer.load(Ordering::Relaxed),
            )
        } else {
            (upper, 0)
        };
        if d.is_null() {
            return None;
        }
        // SAFETY: `d` is valid while `self` is (type invariant of `RealTop`); `d_inode` is read
        // once, as `d_inode_rcu` does: a referenced dentry stays positive.
        let inode = unsafe { core::ptr::read_volatile(&raw const (*d).d_inode) };
        // SAFETY: the inode of a live dentry is freed after an RCU grace period too.
        NonNull::new(inode).map(|i| (unsafe { Inode::from_raw(i.as_ptr()) }, layer))
    }

    /// Records the upper object after a copy-up, for permission checks (see `RealTop`). The
    /// first one recorded stays.
    pub(crate) fn publish_upper(&self, upper: ARef<super::Dentry>) {
        let raw: *mut bindings::dentry = ARef::into_raw(upper).as_ptr().cast();
        let published = self.top.upper.compare_exchange(
            core::ptr::null_mut(),
            raw,
            Ordering::Release,
            Ordering::Relaxed,
        );
        if published.is_err() {
            // SAFETY: `raw` came from `ARef::into_raw` above and was not stored.
            drop(unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast::<super::Dentry>())) });
        }
    }

    /// Takes over the attributes of the real inode after it changed: owner (as the layer's
    /// mount `idmap` shows it), mode, times, size, and the inode flags of `T::INODE_FLAGS`
    /// (our own other flags stay).
    pub(crate) fn refresh_from(&self, real: &Inode, idmap: Idmap) {
        self.refresh(real, Some(idmap));
    }

    /// Like [`Self::refresh_from`], for a change that leaves the owner as it is (a write).
    pub(crate) fn refresh_keep_owner(&self, real: &Inode) {
        self.refresh(real, None);
    }

    fn refresh(&self, real: &Inode, owner: Option<Idmap>) {
        let (ours, theirs) = (self.inode.get(), real.as_ptr());
        // SAFETY: both inodes are live. The attributes are copied under our `i_lock`, which
        // serializes the writers (readers take no lock and see each field whole); the real
        // flags and owner stand in ours for the few instructions until they are set right.
        // The size is written with `i_size_write` semantics.
        unsafe {
            bindings::spin_lock(&raw mut (*ours).i_lock);
            let keep = (*ours).i_flags & !T::INODE_FLAGS;
            let (uid, gid) = ((*ours).i_uid, (*ours).i_gid);
            cb::fsstack_copy_attr_all(ours, theirs);
            match owner {
                Some(idmap) => show_owner(ours, theirs, idmap),
                None => ((*ours).i_uid, (*ours).i_gid) = (uid, gid),
            }
            (*ours).i_flags = keep | ((*theirs).i_flags & T::INODE_FLAGS);
            bindings::spin_unlock(&raw mut (*ours).i_lock);
            cb::fsstack_copy_inode_size(ours, theirs);
        }
    }

    /// Takes over the size of the real inode (after a write through it).
    pub(crate) fn copy_size_from(&self, real: &Inode) {
        // SAFETY: both inodes are live; `fsstack_copy_inode_size` does its own locking.
        unsafe { cb::fsstack_copy_inode_size(self.inode.get(), real.as_ptr()) };
    }

    /// Takes the inode lock until the guard is dropped.
    pub(crate) fn lock(&self) -> InodeLock<'_> {
        self.inode().lock()
    }

    /// `super_operations::alloc_inode`.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, for a superblock of `T`.
    pub(crate) unsafe extern "C" fn alloc_inode(
        _sb: *mut bindings::super_block,
    ) -> *mut bindings::inode {
        let b = KBox::new(
            FsInode::<T> {
                // SAFETY: an all-zero `struct inode` is the starting point `inode_init_once`
                // expects.
                inode: unsafe { core::mem::zeroed() },
                key: UnsafeCell::new(0),
                data: UnsafeCell::new(None),
                top: RealTop::new(),
            },
            GFP_KERNEL,
        );
        match b {
            Ok(b) => {
                let p = KBox::into_raw(b);
                // SAFETY: `p` is a fresh allocation; this is what slab constructors do.
                unsafe { bindings::inode_init_once((*p).inode.get()) };
                p.cast()
            }
            Err(_) => core::ptr::null_mut(),
        }
    }

    /// `super_operations::destroy_inode`: drops our data (it holds references on the layers),
    /// in process context, after the inode left the hash.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, once, for an inode of `T` that nobody uses any more.
    pub(crate) unsafe extern "C" fn destroy_inode(inode: *mut bindings::inode) {
        // SAFETY: the VFS destroys an inode nobody else uses any more.
        let this = unsafe { Self::from_raw(inode) };
        // SAFETY: exclusive access (type invariant: being destroyed).
        drop(unsafe { (*this.data.get()).take() });
        for p in [&this.top.upper, &this.top.lower] {
            let d = p.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if let Some(d) = NonNull::new(d) {
                // SAFETY: the pointer held a reference (type invariant of `RealTop`), now ours.
                drop(unsafe { ARef::<super::Dentry>::from_raw(d.cast()) });
            }
        }
    }

    /// `super_operations::free_inode`: frees the memory after an RCU grace period.
    ///
    /// # Safety
    ///
    /// Called by the VFS only, once, for an inode that [`Self::alloc_inode`] made, after
    /// [`Self::destroy_inode`] and a grace period.
    pub(crate) unsafe extern "C" fn free_inode(inode: *mut bindings::inode) {
        // SAFETY: allocated by `alloc_inode` as a `KBox<FsInode<T>>`; nobody can see it now.
        drop(unsafe { KBox::from_raw(inode.cast::<FsInode<T>>()) });
    }

    /// Installs data and attributes in an inode that is still exclusively ours (new).
    ///
    /// # Safety
    ///
    /// The inode must be new (`I_NEW` or fresh from `new_inode`) and not yet visible.
    unsafe fn setup(&self, data: Pin<KBox<T::InodeData>>, ino: u64, real: &Inode, idmap: Idmap)
    where
        T: AllOps,
    {
        let raw = self.inode.get();
        let (upper, lower) = T::permission_targets(&data);
        if let Some(u) = upper {
            self.top
                .upper
                .store(ARef::into_raw(u).as_ptr().cast(), Ordering::Relaxed);
        }
        if let Some((l, layer)) = lower {
            self.top.lower_layer.store(layer, Ordering::Relaxed);
            // Release: `lower_layer` is seen with it (the inode is published later anyway).
            self.top
                .lower
                .store(ARef::into_raw(l).as_ptr().cast(), Ordering::Release);
        }
        // SAFETY: exclusive access, as the caller promises. ACLs are asked from the real
        // inode every time (`ACL_DONT_CACHE`), never cached in ours.
        unsafe {
            *self.data.get() = Some(data);
            (*raw).i_ino = ino;
            cb::fsstack_copy_attr_all(raw, real.as_ptr());
            show_owner(raw, real.as_ptr(), idmap);
            cb::fsstack_copy_inode_size(raw, real.as_ptr());
            (*raw).i_flags = (*real.as_ptr()).i_flags & T::INODE_FLAGS;
            let dont_cache = cb::UNIONRS_ACL_DONT_CACHE as isize as *mut bindings::posix_acl;
            (*raw).i_acl = dont_cache;
            (*raw).i_default_acl = dont_cache;
            super::iops::set_ops::<T>(raw);
        }
    }

    /// The `test` callback of `iget5_locked`: whether `inode` has the key.
    ///
    /// # Safety
    ///
    /// Called by the inode hash only: `inode` is a hashed inode of `T` and `key` the `usize`
    /// key that `get_inode` passed.
    unsafe extern "C" fn test(inode: *mut bindings::inode, key: *mut c_void) -> c_int {
        // SAFETY: the hash only holds our inodes; `key` points to the key of `get_inode`.
        // The key is written before hashing and read under the hash lock.
        unsafe { c_int::from(*Self::from_raw(inode).key.get() == *key.cast::<usize>()) }
    }

    /// The `set` callback of `iget5_locked`: gives a new inode its key.
    ///
    /// # Safety
    ///
    /// Called by the inode hash only: `inode` is a new inode of `T`, not yet hashed, and
    /// `key` the `usize` key that `get_inode` passed.
    unsafe extern "C" fn set(inode: *mut bindings::inode, key: *mut c_void) -> c_int {
        // SAFETY: called for a new inode, under the hash lock, before it is hashed.
        unsafe { *Self::from_raw(inode).key.get() = *key.cast::<usize>() };
        0
    }
}

impl<T: AllOps> SuperBlock<T> {
    /// Finds our inode for `key` (hashed: the same key gives the same inode while it lives),
    /// or makes one with `data`, inode number `ino()` (asked only then) and the attributes
    /// and type of `real`.
    pub(crate) fn get_inode(
        &self,
        key: usize,
        ino: impl FnOnce() -> u64,
        real: &Inode,
        idmap: Idmap,
        data: Pin<KBox<T::InodeData>>,
    ) -> Result<ARef<Inode>> {
        let mut k = key;
        // SAFETY: `self` is a live superblock of `T`; `test`/`set` match our inode layout and
        // `k` outlives the call.
        let inode = unsafe {
            bindings::iget5_locked(
                self.as_ptr(),
                key as u64,
                Some(FsInode::<T>::test),
                Some(FsInode::<T>::set),
                (&raw mut k).cast(),
            )
        };
        let inode = NonNull::new(inode).ok_or(ENOMEM)?;
        // SAFETY: `iget5_locked` returned a referenced inode, which the `ARef` now owns.
        let aref: ARef<Inode> = unsafe { ARef::from_raw(inode.cast()) };
        // SAFETY: the inode is live.
        if unsafe { cb::unionrs_inode_is_new(inode.as_ptr()) } {
            // SAFETY: it is our inode, still `I_NEW`, so we are its only user.
            unsafe {
                FsInode::<T>::from_raw(inode.as_ptr()).setup(data, ino(), real, idmap);
                bindings::unlock_new_inode(inode.as_ptr());
            }
        }
        Ok(aref)
    }

    /// Our inode for `key`, if one is hashed (waiting for one being set up).
    pub(crate) fn find_inode(&self, key: usize) -> Option<ARef<Inode>> {
        let mut k = key;
        // SAFETY: `self` is a live superblock of `T`; `test` matches our inode layout and `k`
        // outlives the call.
        let inode = unsafe {
            bindings::ilookup5(
                self.as_ptr(),
                key as u64,
                Some(FsInode::<T>::test),
                (&raw mut k).cast(),
            )
        };
        // SAFETY: `ilookup5` returned a referenced inode (or NULL), which the `ARef` owns.
        NonNull::new(inode).map(|i| unsafe { ARef::from_raw(i.cast()) })
    }

    /// A dentry of `inode`, an inode of ours: an existing one, or a new disconnected one
    /// (`d_obtain_alias`, for an object reached by a file handle).
    pub(crate) fn obtain_alias(&self, inode: ARef<Inode>) -> Result<ARef<super::Dentry>> {
        // SAFETY: `d_obtain_alias` takes over our inode reference, also on failure.
        let d = unsafe { bindings::d_obtain_alias(ARef::into_raw(inode).as_ptr().cast()) };
        let d = kernel::error::from_err_ptr(d)?;
        // SAFETY: a referenced dentry, which the `ARef` now owns.
        Ok(unsafe { ARef::from_raw(NonNull::new(d).ok_or(ENOMEM)?.cast()) })
    }

    /// The root dentry.
    pub(crate) fn root(&self) -> ARef<super::Dentry> {
        // SAFETY: a mounted superblock's root is set and lives as long as the superblock.
        let root = unsafe { super::Dentry::from_raw((*self.as_ptr()).s_root) };
        root.into()
    }

    /// Our inode of dentry `d`, if it is a positive dentry of a superblock of ours.
    pub(crate) fn inode_of(d: &super::Dentry) -> Option<&FsInode<T>> {
        Self::our_inode(d.inode()?)
    }

    /// `inode` as one of ours, if it is.
    pub(crate) fn our_inode(inode: &Inode) -> Option<&FsInode<T>> {
        // SAFETY: the inode is live; `i_sb` and its type never change.
        let ours = unsafe {
            core::ptr::eq(
                (*(*inode.as_ptr()).i_sb).s_type,
                &raw const cb::unionrs_fs_type,
            )
        };
        // SAFETY: an inode of our filesystem type is an `FsInode<T>` (one filesystem per module).
        ours.then(|| unsafe { FsInode::<T>::from_raw(inode.as_ptr()) })
    }

    /// Makes an unhashed inode (the root).
    pub(crate) fn new_unhashed_inode(
        &self,
        ino: u64,
        real: &Inode,
        idmap: Idmap,
        data: Pin<KBox<T::InodeData>>,
    ) -> Result<ARef<Inode>> {
        // SAFETY: the superblock is valid.
        let inode = NonNull::new(unsafe { bindings::new_inode(self.as_ptr()) }).ok_or(ENOMEM)?;
        // SAFETY: `new_inode` gave us a referenced, unpublished inode of ours.
        unsafe { FsInode::<T>::from_raw(inode.as_ptr()).setup(data, ino, real, idmap) };
        // SAFETY: we own the reference from `new_inode`.
        Ok(unsafe { ARef::from_raw(inode.cast()) })
    }
}
