// SPDX-License-Identifier: GPL-2.0

//! Layers as the union sees them: a private clone of the layer's mount, and the reads of real
//! objects through it (lookup, stat, xattrs, ACLs, links, permission). Each takes an
//! [`AsMounter`]: it runs with the mounter's credentials.

use super::bindings as cb;
use super::cred::AsMounter;
use super::dentry::Dentry;
use super::inode::{Idmap, Inode};
use super::path::Path;
use super::real::PosixAcl;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;
use kernel::str::{CStrExt, CString};
use kernel::sync::aref::ARef;

/// A private clone of a layer's mount, made at mount time and released with the union.
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

/// A real filesystem's file handle (its `fid`): its type and its 32-bit words.
pub(crate) struct RealFh {
    pub(crate) fh_type: u8,
    pub(crate) words: KVec<u32>,
}

/// The longest file handle the kernel hands out (`MAX_HANDLE_SZ`), in 32-bit words.
pub(crate) const MAX_HANDLE_WORDS: usize = 128 / 4;

impl Inode {
    /// A file handle for this inode as its filesystem encodes it, not connectable (it finds
    /// the object, not a path to it): what overlayfs stores in `overlay.origin`.
    pub(crate) fn encode_fh(&self) -> Result<RealFh> {
        let mut words = KVec::from_elem(0u32, MAX_HANDLE_WORDS, GFP_KERNEL)?;
        let mut len = MAX_HANDLE_WORDS as i32;
        // SAFETY: the inode is live; `words` holds `len` words; no parent, no flags.
        let fh_type = unsafe {
            cb::exportfs_encode_inode_fh(
                self.as_ptr(),
                words.as_mut_ptr().cast(),
                &mut len,
                core::ptr::null_mut(),
                0,
            )
        };
        let used = usize::try_from(len).map_err(|_| EIO)?;
        // `FILEID_INVALID` (255) or an error: this inode has no handle.
        let fh_type = u8::try_from(fh_type)
            .ok()
            .filter(|&t| t != 255)
            .ok_or(EIO)?;
        if used > MAX_HANDLE_WORDS {
            return Err(EIO);
        }
        words.truncate(used);
        Ok(RealFh { fh_type, words })
    }
}

/// `MNT_*` flags of a layer mount.
pub(crate) const MNT_READONLY: u32 = bindings::mount_flags_MNT_READONLY;
pub(crate) const MNT_NOATIME: u32 = bindings::mount_flags_MNT_NOATIME;

impl LayerMount {
    /// Clones the mount that `path` is on, with `flags` (`MNT_*`) added to the clone's.
    pub(crate) fn clone_private(path: &Path, flags: u32) -> Result<Self> {
        // SAFETY: `path` is a valid, referenced path.
        let mnt = from_err_ptr(unsafe { bindings::clone_private_mount(path.as_raw()) })?;
        let mnt = NonNull::new(mnt).ok_or(ENOMEM)?;
        // SAFETY: the clone is ours and not visible to anyone yet.
        unsafe { (*mnt.as_ptr()).mnt_flags |= flags as c_int };
        // INVARIANT: `clone_private_mount` succeeded; we own the clone.
        Ok(Self { mnt })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::vfsmount {
        self.mnt.as_ptr()
    }

    /// The filesystem's superblock.
    fn sb(&self) -> *mut bindings::super_block {
        // SAFETY: the mount is valid and pins its superblock.
        unsafe { (*self.as_ptr()).mnt_sb }
    }

    /// Writes back and syncs the whole filesystem (as `syncfs(2)` on it would).
    pub(crate) fn sync_filesystem(&self) -> Result {
        let sb = self.sb();
        // SAFETY: `sb` is live (pinned by the mount); `sync_filesystem` needs `s_umount`
        // held, shared, which it is from here to the `up_read`.
        unsafe {
            bindings::down_read(&raw mut (*sb).s_umount);
            let r = bindings::sync_filesystem(sb);
            bindings::up_read(&raw mut (*sb).s_umount);
            to_result(r)
        }
    }

    /// The filesystem's writeback error state now (`errseq_sample`): what
    /// [`Self::writeback_error_since`] compares with.
    pub(crate) fn writeback_error_mark(&self) -> u32 {
        // SAFETY: `sb` is live; `errseq_sample` reads the field atomically.
        unsafe { bindings::errseq_sample(&raw mut (*self.sb()).s_wb_err) }
    }

    /// The writeback error the filesystem has had since `mark` (`errseq_check`), if any.
    pub(crate) fn writeback_error_since(&self, mark: u32) -> Result {
        // SAFETY: `sb` is live; `errseq_check` reads the field atomically.
        to_result(unsafe { bindings::errseq_check(&raw mut (*self.sb()).s_wb_err, mark) })
    }

    /// The id mapping of the mount, for permission checks and changes on its inodes.
    pub(crate) fn idmap(&self) -> *mut bindings::mnt_idmap {
        // SAFETY: the mount is valid.
        unsafe { cb::unionrs_mnt_idmap(self.as_ptr()) }
    }

    /// The id mapping of the mount, for the union inodes of its objects.
    pub(crate) fn id_map(&self) -> Idmap {
        Idmap(self.idmap())
    }

    /// `acl`, an ACL of real inode `real` of this layer, with its ids as the mount shows them
    /// (overlayfs' `ovl_idmap_posix_acl`): a copy with the entries mapped on an idmapped
    /// mount, the ACL itself on another.
    fn show_acl(&self, acl: Acl, real: &Inode) -> Result<Acl> {
        let idmap = self.idmap();
        if core::ptr::eq(idmap, &raw mut bindings::nop_mnt_idmap) {
            return Ok(acl);
        }
        // The real ACL may be its filesystem's cached one: map a copy.
        let copy = acl.copy()?;
        drop(acl);
        let ns = real.user_ns();
        let base = copy.0.as_ptr().cast::<u8>();
        // SAFETY: the copy is ours alone until we return it; the offsets are those of its
        // `a_count` and `a_entries` fields (from the C compiler), and it has `a_count` entries.
        unsafe {
            let count = *base
                .add(cb::UNIONRS_POSIX_ACL_COUNT_OFFSET as usize)
                .cast::<c_uint>();
            let entries = base
                .add(cb::UNIONRS_POSIX_ACL_ENTRIES_OFFSET as usize)
                .cast::<cb::posix_acl_entry>();
            for i in 0..count as usize {
                let e = &mut *entries.add(i);
                let tag = i32::from(e.e_tag);
                if tag == cb::UNIONRS_ACL_USER as i32 {
                    let uid = e.__bindgen_anon_1.e_uid.as_mut();
                    let id = bindings::make_vfsuid(idmap, ns, *uid);
                    *uid = bindings::kuid_t { val: id.val };
                } else if tag == cb::UNIONRS_ACL_GROUP as i32 {
                    let gid = e.__bindgen_anon_1.e_gid.as_mut();
                    let id = bindings::make_vfsgid(idmap, ns, *gid);
                    *gid = bindings::kgid_t { val: id.val };
                }
            }
        }
        Ok(copy)
    }

    /// The superblock of the layer's filesystem (for same-filesystem checks).
    pub(crate) fn sb_ptr(&self) -> *const bindings::super_block {
        // SAFETY: the mount and its superblock are valid while we own the mount.
        unsafe { (*self.as_ptr()).mnt_sb }
    }

    /// The uuid of the layer's filesystem (all zeroes if it has none).
    pub(crate) fn fs_uuid(&self) -> [u8; 16] {
        // SAFETY: the superblock lives while we own the mount; its uuid is set when it is
        // made and not changed while it is mounted.
        unsafe { (*self.sb_ptr()).s_uuid.b }
    }

    /// Whether the layer's filesystem can decode file handles, and how it encodes them, as
    /// overlayfs asks (`ovl_can_decode_fh`). Only a task with `CAP_DAC_READ_SEARCH` in the
    /// initial namespace may open by handle, so for any other mounter the answer is "no".
    pub(crate) fn fh_support(&self) -> FhSupport {
        // SAFETY: no preconditions; looks at the current task's credentials.
        if !unsafe { bindings::capable(bindings::CAP_DAC_READ_SEARCH as i32) } {
            return FhSupport::None;
        }
        // SAFETY: the superblock lives while we own the mount; `s_export_op` is set before
        // the filesystem is mounted and never changes.
        let ops = unsafe { (*self.sb_ptr()).s_export_op }.cast::<cb::export_operations>();
        // SAFETY: a non-null `s_export_op` points at the filesystem's static table (the
        // kernel's bindings declare the type opaque; ours has its fields).
        let Some(ops) = (unsafe { ops.as_ref() }) else {
            return FhSupport::None;
        };
        if ops.fh_to_dentry.is_none() {
            return FhSupport::None;
        }
        let ino32: unsafe extern "C" fn(_, _, _, _) -> _ = cb::generic_encode_ino32_fh;
        if ops.encode_fh.map(|f| f as usize) == Some(ino32 as usize) {
            FhSupport::Ino32
        } else {
            FhSupport::Other
        }
    }

    /// Finds the object that file handle `fh` (encoded by [`Inode::encode_fh`] on this layer's
    /// filesystem) stands for. `ESTALE` if there is none.
    ///
    /// Unless `connected`, the dentry may be disconnected (not reachable from the layer's
    /// root), so only fit for looking at the object. If `connected`, a directory is given
    /// connected, and refused (`EACCES`) when it was removed or lies outside this mount's
    /// tree (overlayfs' `ovl_acceptable`); other objects may still be disconnected.
    pub(crate) fn decode_fh(
        &self,
        _m: &AsMounter<'_>,
        fh: &RealFh,
        connected: bool,
    ) -> Result<ARef<Dentry>> {
        let mut words = KVec::with_capacity(fh.words.len(), GFP_KERNEL)?;
        words.extend_from_slice(&fh.words, GFP_KERNEL)?;
        let len = i32::try_from(words.len()).map_err(|_| EINVAL)?;
        let acceptable: Option<unsafe extern "C" fn(*mut c_void, *mut bindings::dentry) -> c_int> =
            if connected {
                Some(acceptable_in_mount)
            } else {
                None
            };
        // SAFETY: the mount is live; `words` is a 32-bit aligned buffer of `len` words that
        // outlives the call; the acceptance callback's context is the live mount.
        let d = unsafe {
            cb::exportfs_decode_fh(
                self.as_ptr(),
                words.as_mut_ptr().cast(),
                len,
                i32::from(fh.fh_type),
                acceptable,
                self.as_ptr().cast(),
            )
        };
        let d = NonNull::new(from_err_ptr(d)?).ok_or_else(super::errno::estale)?;
        // SAFETY: a referenced dentry, which the `ARef` now owns.
        Ok(unsafe { ARef::from_raw(d.cast()) })
    }

    /// The root of this mount's tree (the layer's directory).
    pub(crate) fn root(&self) -> &Dentry {
        // SAFETY: the mount is live while we own it, and so is its root dentry.
        unsafe { Dentry::from_raw((*self.as_ptr()).mnt_root) }
    }

    /// Looks up `name` in directory `dir` of this layer, with the mounter's permission checks.
    /// Returns the child, which may be negative; `None` when the name cannot exist there
    /// (`ENOENT`, `ENAMETOOLONG`).
    pub(crate) fn lookup(
        &self,
        _m: &AsMounter<'_>,
        dir: &Dentry,
        name: &[u8],
    ) -> Result<Option<ARef<Dentry>>> {
        let mut q = qstr(name)?;
        // SAFETY: the mount and `dir` are live; `q` points to `name`, which outlives the call.
        let d = unsafe { cb::lookup_one_unlocked(self.idmap(), &mut q, dir.as_ptr()) };
        match from_err_ptr(d) {
            // SAFETY: a referenced dentry, which the `ARef` now owns.
            Ok(d) => Ok(NonNull::new(d).map(|d| unsafe { ARef::from_raw(d.cast()) })),
            Err(e) if e == ENOENT || e == super::errno::enametoolong() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Resolves the absolute path `path` (a redirect) from the layer's root, never leaving
    /// the layer: no `..` above the root, no symlinks, no other mounts (overlayfs'
    /// `ovl_lookup_data_layer`).
    pub(crate) fn lookup_beneath(&self, _m: &AsMounter<'_>, path: &[u8]) -> Result<ARef<Dentry>> {
        let mut name = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
        name.extend_from_slice(path, GFP_KERNEL)?;
        name.push(0, GFP_KERNEL)?;
        let name = CStr::from_bytes_with_nul(&name).map_err(|_| EINVAL)?;
        let flags = cb::UNIONRS_LOOKUP_BENEATH
            | cb::UNIONRS_LOOKUP_NO_SYMLINKS
            | cb::UNIONRS_LOOKUP_NO_XDEV;
        // SAFETY: we hold our mount, and its root is in it.
        let found = unsafe { Path::lookup_at(self.as_ptr(), self.root(), name, flags) }?;
        Ok(found.dentry().into())
    }

    /// Reads xattr `name` of `d` into `buf` (or only its size, for an empty `buf`).
    pub(crate) fn getxattr(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        name: &CStr,
        buf: &mut [u8],
    ) -> Result<usize> {
        let ptr = out_ptr(buf);
        // SAFETY: mount and dentry are live; `ptr` is NULL or valid for `buf.len()` bytes.
        let r = unsafe {
            bindings::vfs_getxattr(
                self.idmap(),
                d.as_ptr(),
                name.as_char_ptr(),
                ptr.cast(),
                buf.len(),
            )
        };
        ssize_result(r)
    }

    /// Lists the xattr names of `d` into `buf` (or returns the size needed).
    pub(crate) fn listxattr(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        buf: &mut [u8],
    ) -> Result<usize> {
        let ptr = out_ptr(buf);
        // SAFETY: the dentry is live; `ptr` is NULL or valid for `buf.len()` bytes.
        ssize_result(unsafe { bindings::vfs_listxattr(d.as_ptr(), ptr.cast(), buf.len()) })
    }

    /// The attributes of `d`, as `stat` reports them.
    pub(crate) fn stat(&self, _m: &AsMounter<'_>, d: &Dentry) -> Result<RealStat> {
        let path = RealPath {
            mnt: self,
            dentry: d,
        }
        .raw();
        // SAFETY: all-zero is a valid kstat to be filled.
        let mut st = RealStat(unsafe { core::mem::zeroed() });
        // SAFETY: `path` borrows a live path; `st` is ours.
        to_result(unsafe {
            bindings::vfs_getattr(
                &path,
                &mut st.0,
                bindings::STATX_BASIC_STATS,
                bindings::AT_STATX_SYNC_AS_STAT,
            )
        })?;
        Ok(st)
    }

    /// Fills the caller's `stat` with the attributes of `d`, without asking the security
    /// module again: the caller's `vfs_getattr` asked it about the union object (overlayfs'
    /// `ovl_real_getattr_nosec`).
    pub(crate) fn getattr_nosec(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        stat: &mut super::Kstat<'_>,
        request_mask: u32,
        flags: u32,
    ) -> Result {
        let path = RealPath {
            mnt: self,
            dentry: d,
        }
        .raw();
        // SAFETY: `path` borrows a live path; `stat` is the caller's kstat.
        to_result(unsafe { bindings::vfs_getattr_nosec(&path, stat.0, request_mask, flags) })
    }

    /// The target of symlink `d`.
    pub(crate) fn read_link(&self, _m: &AsMounter<'_>, d: &Dentry) -> Result<CString> {
        let mut done = bindings::delayed_call {
            fn_: None,
            arg: core::ptr::null_mut(),
        };
        // SAFETY: the dentry is live; `done` is ours and run below.
        let link = unsafe { bindings::vfs_get_link(d.as_ptr(), &mut done) };
        let copy = from_err_ptr(link.cast_mut()).and_then(|p| {
            // SAFETY: a NUL-terminated string, valid until `done` runs.
            CString::try_from(unsafe { CStr::from_char_ptr(p) }).map_err(|_| ENOMEM)
        });
        // SAFETY: `done` was set up by `vfs_get_link` (or is empty).
        unsafe { cb::unionrs_do_delayed_call(&mut done) };
        copy
    }

    /// The POSIX ACL `name` (`system.posix_acl_*`) of `d`, as `getfacl` sees it.
    pub(crate) fn get_acl(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        name: &CStr,
    ) -> Result<Option<Acl>> {
        // SAFETY: mount and dentry are live; `name` is NUL-terminated.
        let acl = unsafe { cb::vfs_get_acl(self.idmap(), d.as_ptr(), name.as_char_ptr()) };
        match from_err_ptr(acl) {
            Ok(p) => match (NonNull::new(p).map(Acl), d.inode()) {
                (Some(acl), Some(real)) => Ok(Some(self.show_acl(acl, real)?)),
                (acl, _) => Ok(acl),
            },
            Err(e) if e == super::errno::enodata() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ACL `ty` that permission checks of `real`, a real inode of this layer, use, with
    /// its ids as the mount shows them.
    pub(crate) fn permission_acl(
        &self,
        m: &AsMounter<'_>,
        real: &Inode,
        ty: i32,
    ) -> Result<Option<Acl>> {
        match real.permission_acl(m, ty)? {
            Some(acl) => Ok(Some(self.show_acl(acl, real)?)),
            None => Ok(None),
        }
    }

    /// The mounter's permission check of `mask` on `inode`, a real inode of this layer (also
    /// in RCU walk: `inode_permission` honours `MAY_NOT_BLOCK`).
    pub(crate) fn inode_permission(&self, _m: &AsMounter<'_>, inode: &Inode, mask: i32) -> Result {
        // SAFETY: the inode and the mount's idmap are valid for the call.
        to_result(unsafe { bindings::inode_permission(self.idmap(), inode.as_ptr(), mask) })
    }

    /// Whether the mounter owns `inode`, a real inode of this layer, or may act as its owner.
    pub(crate) fn owner_or_capable(&self, _m: &AsMounter<'_>, inode: &Inode) -> bool {
        // SAFETY: the inode and the mount's idmap are valid for the call.
        unsafe { bindings::inode_owner_or_capable(self.idmap(), inode.as_ptr()) }
    }
}

/// The acceptance callback of [`LayerMount::decode_fh`] for connected objects: anything but
/// a directory; a directory that is still linked and lies below the mount's root.
///
/// # Safety
///
/// Called by exportfs only: `mnt` is the live mount passed as context, `dentry` a live
/// dentry of its filesystem.
unsafe extern "C" fn acceptable_in_mount(mnt: *mut c_void, dentry: *mut bindings::dentry) -> c_int {
    // SAFETY: a live dentry, as the function's contract says.
    let d = unsafe { Dentry::from_raw(dentry) };
    if !d.is_dir() {
        return 1;
    }
    if d.is_unhashed() {
        return 0;
    }
    // SAFETY: the mount is live, as the function's contract says; so is its root.
    let root = unsafe { Dentry::from_raw((*mnt.cast::<bindings::vfsmount>()).mnt_root) };
    c_int::from(d.is_subdir_of(root))
}

impl Drop for LayerMount {
    fn drop(&mut self) {
        // SAFETY: we own the private clone (type invariant).
        unsafe { bindings::kern_unmount(self.as_ptr()) };
    }
}

/// A `qstr` naming `name` (no hash; the lookup computes it).
pub(super) fn qstr(name: &[u8]) -> Result<bindings::qstr> {
    let len = u32::try_from(name.len()).map_err(|_| super::errno::enametoolong())?;
    // SAFETY: all-zero is a valid qstr (hash 0, length 0, NULL name).
    let mut q: bindings::qstr = unsafe { core::mem::zeroed() };
    q.__bindgen_anon_1.__bindgen_anon_1.len = len;
    q.name = name.as_ptr();
    Ok(q)
}

/// A buffer for C to fill: NULL for an empty one (a question for the size needed).
fn out_ptr(buf: &mut [u8]) -> *mut c_void {
    if buf.is_empty() {
        core::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// A byte count or a negative errno, from C.
pub(super) fn ssize_result(r: isize) -> Result<usize> {
    if r < 0 {
        Err(Error::from_errno(r as c_int))
    } else {
        Ok(r as usize)
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

/// What a layer's filesystem does with file handles (see [`LayerMount::fh_support`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FhSupport {
    /// It cannot decode them (or the mounter may not).
    None,
    /// It encodes 32-bit inode numbers (`generic_encode_ino32_fh`): its inode numbers fit in
    /// 32 bits.
    Ino32,
    /// It has its own encoding, with inode numbers of any size.
    Other,
}

/// Attributes of a real object, as `stat` reports them.
pub(crate) struct RealStat(pub(super) bindings::kstat);

impl RealStat {
    pub(crate) fn mode(&self) -> u32 {
        u32::from(self.0.mode)
    }

    pub(crate) fn rdev(&self) -> u32 {
        self.0.rdev
    }

    pub(crate) fn size(&self) -> i64 {
        self.0.size
    }

    /// Takes `size` as the size (of a copy that is truncated as it is made).
    pub(crate) fn set_size(&mut self, size: i64) {
        self.0.size = size;
    }

    pub(crate) fn ino(&self) -> u64 {
        self.0.ino
    }

    pub(crate) fn nlink(&self) -> u32 {
        self.0.nlink
    }

    /// 512-byte blocks allocated.
    pub(crate) fn blocks(&self) -> u64 {
        self.0.blocks
    }

    pub(crate) fn uid(&self) -> super::cred::Kuid {
        self.0.uid
    }

    pub(crate) fn gid(&self) -> super::cred::Kgid {
        self.0.gid
    }

    pub(crate) fn atime(&self) -> bindings::timespec64 {
        self.0.atime
    }

    pub(crate) fn mtime(&self) -> bindings::timespec64 {
        self.0.mtime
    }
}

/// A POSIX ACL we hold a reference on (released on drop).
///
/// # Invariants
///
/// The pointer is a valid `posix_acl` whose reference we own.
pub(crate) struct Acl(NonNull<bindings::posix_acl>);

impl Acl {
    /// A private copy, for a call that may change the ACL it is given (`vfs_set_acl` maps
    /// the entries in place on an idmapped mount; this one may be a filesystem's cached ACL).
    pub(crate) fn copy(&self) -> Result<Acl> {
        // SAFETY: the ACL is valid (type invariant); the copy comes with a reference for us.
        let copy = unsafe { cb::posix_acl_clone(self.0.as_ptr(), bindings::GFP_KERNEL) };
        // INVARIANT: a new ACL whose only reference is ours.
        NonNull::new(copy).map(Acl).ok_or(ENOMEM)
    }

    /// Borrows the ACL as the VFS passes ACLs in.
    pub(crate) fn as_passed(&self) -> PosixAcl {
        PosixAcl(self.0.as_ptr())
    }

    /// Gives up our reference to a caller that takes it over (the VFS' `get_acl`).
    pub(crate) fn into_raw(self) -> *mut bindings::posix_acl {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes over a reference the VFS gave us (or NULL for none).
    ///
    /// # Safety
    ///
    /// `p` must be NULL or an ACL whose reference the caller gives up.
    pub(crate) unsafe fn from_raw(p: *mut bindings::posix_acl) -> Option<Self> {
        // INVARIANT: as the caller promises.
        NonNull::new(p).map(Self)
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        // SAFETY: we own a reference (type invariant).
        unsafe { cb::unionrs_posix_acl_release(self.0.as_ptr()) };
    }
}
