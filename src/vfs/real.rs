// SPDX-License-Identifier: GPL-2.0

//! Changes to real objects on a writable layer: creating, removing and renaming them, and
//! setting their attributes, xattrs and ACLs. Each call is one VFS operation with the write
//! access and locks it needs (`mnt_want_write`, then the directory locks through
//! `start_creating()` & co., or the inode lock); it takes an [`AsMounter`], so it runs with
//! the mounter's credentials. What to change, where and in which order is the union's
//! decision (src/).

use super::bindings as cb;
use super::cred::{AsMounter, Kgid, Kuid};
use super::dentry::Dentry;
use super::inode::Idmap;
use super::layer::{qstr, LayerMount};
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::sync::aref::ARef;

/// What to create.
#[derive(Clone, Copy)]
pub(crate) enum NewObject<'a> {
    /// A regular file, directory, device, fifo or socket (`mode` has the type bits).
    Node { mode: u32, rdev: u32 },
    /// A symbolic link to the target.
    Symlink(&'a CStr),
    /// Another name for an existing real object.
    Link(&'a Dentry),
}

/// Where a rename starts: a real dentry, or a name to look up under the locks.
#[derive(Clone, Copy)]
pub(crate) enum RenameEnd<'a> {
    Dentry(&'a Dentry),
    Name(&'a [u8]),
}

/// A rename on a layer.
pub(crate) struct Rename<'a> {
    pub(crate) old_parent: &'a Dentry,
    pub(crate) old: RenameEnd<'a>,
    pub(crate) new_parent: &'a Dentry,
    /// The target name, looked up under the locks.
    pub(crate) new: &'a [u8],
    /// `RENAME_*` flags for the real rename.
    pub(crate) flags: u32,
}

/// Write access to a layer mount (`mnt_want_write`), given back on drop.
///
/// # Invariants
///
/// `mnt_want_write` on `mnt` succeeded.
struct WriteAccess<'a> {
    mnt: &'a LayerMount,
}

impl<'a> WriteAccess<'a> {
    fn get(mnt: &'a LayerMount) -> Result<Self> {
        // SAFETY: the mount is live.
        to_result(unsafe { bindings::mnt_want_write(mnt.as_ptr()) })?;
        // INVARIANT: it succeeded.
        Ok(Self { mnt })
    }
}

impl Drop for WriteAccess<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold write access (type invariant).
        unsafe { bindings::mnt_drop_write(self.mnt.as_ptr()) };
    }
}

/// The inode lock of a real inode, released on drop.
///
/// # Invariants
///
/// `inode` is live and locked by us.
pub(crate) struct InodeLock<'a> {
    inode: &'a super::inode::Inode,
}

impl<'a> InodeLock<'a> {
    pub(super) fn lock(inode: &'a super::inode::Inode) -> Self {
        // SAFETY: the inode is live.
        unsafe { cb::unionrs_inode_lock(inode.as_ptr()) };
        // INVARIANT: locked above.
        Self { inode }
    }
}

impl Drop for InodeLock<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock (type invariant).
        unsafe { cb::unionrs_inode_unlock(self.inode.as_ptr()) };
    }
}

/// Takes over a dentry reference returned by C (or its error).
fn dentry_result(d: *mut bindings::dentry) -> Result<ARef<Dentry>> {
    let d = NonNull::new(from_err_ptr(d)?).ok_or(EIO)?;
    // SAFETY: C returned a referenced dentry, which the `ARef` now owns.
    Ok(unsafe { ARef::from_raw(d.cast()) })
}

impl LayerMount {
    /// Creates `name` in `parent`: returns the new dentry (positive unless the filesystem
    /// leaves it negative or unhashed, which the caller checks). `EEXIST` if the name is taken.
    pub(crate) fn create(
        &self,
        _m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        what: NewObject<'_>,
    ) -> Result<ARef<Dentry>> {
        let _w = WriteAccess::get(self)?;
        let idmap = self.idmap();
        let mut q = qstr(name)?;
        let dir = parent.inode().ok_or(ENOENT)?.as_ptr();
        // SAFETY: mount and parent are live; `q` points to `name`, which outlives the call.
        let d = from_err_ptr(unsafe { cb::start_creating(idmap, parent.as_ptr(), &mut q) })?;
        // SAFETY: `start_creating` returned a referenced dentry with `parent` locked.
        if unsafe { !(*d).d_inode.is_null() } {
            // SAFETY: as above; this ends the operation and drops the dentry.
            unsafe { cb::unionrs_end_creating(d) };
            return Err(EEXIST);
        }
        // SAFETY: `d` is a negative dentry in the locked `dir`, as the vfs_* calls require;
        // the string arguments are NUL-terminated.
        let (d, err) = unsafe {
            match what {
                NewObject::Link(old) => (
                    d,
                    bindings::vfs_link(old.as_ptr(), idmap, dir, d, core::ptr::null_mut()),
                ),
                NewObject::Symlink(target) => (
                    d,
                    bindings::vfs_symlink(
                        idmap,
                        dir,
                        d,
                        target.as_char_ptr(),
                        core::ptr::null_mut(),
                    ),
                ),
                NewObject::Node { mode, rdev } => match mode & bindings::S_IFMT {
                    bindings::S_IFREG => (
                        d,
                        bindings::vfs_create(
                            idmap,
                            d,
                            mode as bindings::umode_t,
                            core::ptr::null_mut(),
                        ),
                    ),
                    bindings::S_IFDIR => {
                        // `vfs_mkdir` may return another dentry, and drops `d` on failure.
                        let r = bindings::vfs_mkdir(
                            idmap,
                            dir,
                            d,
                            mode as bindings::umode_t,
                            core::ptr::null_mut(),
                        );
                        match from_err_ptr(r) {
                            Ok(r) => (r, 0),
                            Err(e) => return Err(e),
                        }
                    }
                    bindings::S_IFCHR
                    | bindings::S_IFBLK
                    | bindings::S_IFIFO
                    | bindings::S_IFSOCK => (
                        d,
                        bindings::vfs_mknod(
                            idmap,
                            dir,
                            d,
                            mode as bindings::umode_t,
                            rdev,
                            core::ptr::null_mut(),
                        ),
                    ),
                    _ => (d, -(bindings::EPERM as c_int)),
                },
            }
        };
        if err != 0 {
            // SAFETY: ends the operation started above and drops the dentry.
            unsafe { cb::unionrs_end_creating(d) };
            return Err(Error::from_errno(err));
        }
        // SAFETY: ends the operation, keeping a reference to the new dentry for us.
        dentry_result(unsafe { cb::unionrs_end_creating_keep(d) })
    }

    /// Unlinks or removes (if a directory) `child` of `parent`.
    pub(crate) fn remove(&self, _m: &AsMounter<'_>, parent: &Dentry, child: &Dentry) -> Result {
        let _w = WriteAccess::get(self)?;
        // SAFETY: both dentries are live; this locks `parent` and checks the parentage.
        let d = unsafe { cb::start_removing_dentry(parent.as_ptr(), child.as_ptr()) };
        let d = from_err_ptr(d)?;
        // SAFETY: `d` is `child`, referenced, with `parent` locked.
        let r = unsafe { self.remove_locked(parent, d) };
        // SAFETY: ends the operation started above.
        unsafe { cb::unionrs_end_removing(d) };
        r
    }

    /// Removes `name` from `parent` once `check` accepts what is there (under the lock).
    pub(crate) fn remove_name(
        &self,
        _m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        check: impl FnOnce(&Dentry) -> Result,
    ) -> Result {
        let _w = WriteAccess::get(self)?;
        let mut q = qstr(name)?;
        // SAFETY: mount and parent are live; `q` points to `name` for the call.
        let d = from_err_ptr(unsafe { cb::start_removing(self.idmap(), parent.as_ptr(), &mut q) })?;
        // SAFETY: `start_removing` returned a referenced positive dentry, `parent` locked.
        let child = unsafe { Dentry::from_raw(d) };
        let r = check(child).and_then(|()| {
            // SAFETY: as above.
            unsafe { self.remove_locked(parent, d) }
        });
        // SAFETY: ends the operation started above.
        unsafe { cb::unionrs_end_removing(d) };
        r
    }

    /// `vfs_rmdir` or `vfs_unlink` by the type of `d`.
    ///
    /// # Safety
    ///
    /// `d` is a referenced dentry in `parent`, which is locked for its removal.
    unsafe fn remove_locked(&self, parent: &Dentry, d: *mut bindings::dentry) -> Result {
        // SAFETY: as the caller promises.
        let (dir, child) = unsafe { ((*parent.as_ptr()).d_inode, Dentry::from_raw(d)) };
        // SAFETY: as above.
        to_result(unsafe {
            if child.is_dir() {
                bindings::vfs_rmdir(self.idmap(), dir, d, core::ptr::null_mut())
            } else {
                bindings::vfs_unlink(self.idmap(), dir, d, core::ptr::null_mut())
            }
        })
    }

    /// Renames, once `check(old, new)` accepts the dentries found under the rename locks;
    /// returns the dentry that was at the target: after `RENAME_EXCHANGE` the object now at
    /// the old name, after a plain rename the replaced one (negative or unhashed now).
    pub(crate) fn rename(
        &self,
        _m: &AsMounter<'_>,
        r: &Rename<'_>,
        check: impl FnOnce(&Dentry, &Dentry) -> Result,
    ) -> Result<ARef<Dentry>> {
        let _w = WriteAccess::get(self)?;
        // SAFETY: all-zero is a valid renamedata (no dentries, no flags) to fill.
        let mut rd: bindings::renamedata = unsafe { core::mem::zeroed() };
        rd.mnt_idmap = self.idmap();
        rd.old_parent = r.old_parent.as_ptr();
        rd.new_parent = r.new_parent.as_ptr();
        rd.flags = r.flags;
        let mut new_name = qstr(r.new)?;
        // SAFETY: the parents and named dentries are live; the qstrs point to names that
        // outlive the calls. On success the locks are held and `rd` names both dentries.
        to_result(unsafe {
            match r.old {
                RenameEnd::Dentry(o) => {
                    cb::start_renaming_dentry(&mut rd, 0, o.as_ptr(), &mut new_name)
                }
                RenameEnd::Name(n) => cb::start_renaming(&mut rd, 0, &mut qstr(n)?, &mut new_name),
            }
        })?;
        // SAFETY: both dentries are referenced by `rd` until `end_renaming`.
        let (old, new) = unsafe {
            (
                Dentry::from_raw(rd.old_dentry),
                Dentry::from_raw(rd.new_dentry),
            )
        };
        let r = check(old, new).and_then(|()| {
            // SAFETY: the locks are held and `rd` is complete.
            to_result(unsafe { bindings::vfs_rename(&mut rd) })?;
            Ok(ARef::from(new))
        });
        // SAFETY: ends the operation started above.
        unsafe { cb::end_renaming(&mut rd) };
        r
    }

    /// Sets (`Some`) or removes (`None`) xattr `name` of `d`.
    pub(crate) fn set_xattr(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        name: &CStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result {
        let _w = WriteAccess::get(self)?;
        // SAFETY: mount and dentry are live; name is NUL-terminated; value valid for its length.
        to_result(unsafe {
            match value {
                Some(v) => bindings::vfs_setxattr(
                    self.idmap(),
                    d.as_ptr(),
                    name.as_char_ptr(),
                    v.as_ptr().cast(),
                    v.len(),
                    flags,
                ),
                None => bindings::vfs_removexattr(self.idmap(), d.as_ptr(), name.as_char_ptr()),
            }
        })
    }

    /// Sets (`Some`) or removes the POSIX ACL `name` (`system.posix_acl_*`) of `d`.
    pub(crate) fn set_acl(
        &self,
        _m: &AsMounter<'_>,
        d: &Dentry,
        name: &CStr,
        acl: Option<PosixAcl>,
    ) -> Result {
        let _w = WriteAccess::get(self)?;
        // SAFETY: mount and dentry are live; the ACL is valid for the call.
        to_result(unsafe {
            match acl {
                Some(a) => cb::vfs_set_acl(self.idmap(), d.as_ptr(), name.as_char_ptr(), a.0),
                None => cb::vfs_remove_acl(self.idmap(), d.as_ptr(), name.as_char_ptr()),
            }
        })
    }

    /// Applies `attr` to `d` (`notify_change` under the inode lock; a size change with write
    /// access to the inode, as for `truncate(2)`).
    pub(crate) fn notify_change(&self, _m: &AsMounter<'_>, d: &Dentry, attr: &mut Iattr) -> Result {
        let inode = d.inode().ok_or(ENOENT)?;
        let _w = WriteAccess::get(self)?;
        let size = attr.valid() & bindings::ATTR_SIZE != 0;
        if size {
            // SAFETY: the inode is live.
            to_result(unsafe { cb::unionrs_get_write_access(inode.as_ptr()) })?;
        }
        let r = {
            let _lock = InodeLock::lock(inode);
            // SAFETY: mount, dentry and `attr` are valid; the inode is locked.
            to_result(unsafe {
                bindings::notify_change(
                    self.idmap(),
                    d.as_ptr(),
                    &mut attr.0,
                    core::ptr::null_mut(),
                )
            })
        };
        if size {
            // SAFETY: taken above.
            unsafe { cb::unionrs_put_write_access(inode.as_ptr()) };
        }
        r
    }
}

/// What the security module says about copying xattr `name` of `d` up.
pub(crate) fn lsm_copies_xattr(d: &Dentry, name: &CStr) -> Result<bool> {
    // SAFETY: the dentry is live; the name is NUL-terminated.
    let r = unsafe { cb::unionrs_security_inode_copy_up_xattr(d.as_ptr(), name.as_char_ptr()) };
    match r {
        r if r == -(bindings::ECANCELED as c_int) => Ok(false),
        r if r < 0 && r != -(bindings::EOPNOTSUPP as c_int) => Err(Error::from_errno(r)),
        _ => Ok(true),
    }
}

/// An attribute change: the caller's (a copy of the VFS' `iattr`), or one the union makes.
pub(crate) struct Iattr(pub(super) bindings::iattr);

impl Iattr {
    /// A change of nothing yet.
    pub(crate) fn new() -> Self {
        // SAFETY: all-zero is a valid iattr (no attribute valid).
        Self(unsafe { core::mem::zeroed() })
    }

    /// The `ATTR_*` bits of what changes.
    pub(crate) fn valid(&self) -> u32 {
        self.0.ia_valid
    }

    /// Drops `ATTR_*` bits from what changes.
    pub(crate) fn remove_valid(&mut self, bits: u32) {
        self.0.ia_valid &= !bits;
    }

    /// Detaches the change from the caller's open file (the real filesystem must not see
    /// ours).
    pub(crate) fn detach_file(&mut self) {
        self.0.ia_valid &= !bindings::ATTR_FILE;
        self.0.ia_file = core::ptr::null_mut();
    }

    /// Clears the set-group-ID bit (`notify_change` derives the new mode).
    pub(crate) fn kill_sgid(&mut self) {
        self.0.ia_valid |= bindings::ATTR_KILL_SGID;
    }

    pub(crate) fn set_size(&mut self, size: i64) {
        self.0.ia_valid |= bindings::ATTR_SIZE;
        self.0.ia_size = size;
    }

    pub(crate) fn set_mode(&mut self, mode: u32) {
        self.0.ia_valid |= bindings::ATTR_MODE;
        self.0.ia_mode = mode as bindings::umode_t;
    }

    /// Turns a new owner or group that came through a mount with `idmap` into the ids the
    /// filesystem (user namespace `ns`) keeps, so that the request can go on to a real
    /// filesystem through its own mount (the VFS checked that they map).
    pub(crate) fn unmap_owner(&mut self, idmap: Idmap, ns: *mut bindings::user_namespace) {
        // SAFETY: the idmap lives while the operation runs; `ns` is a filesystem's namespace;
        // the union fields are plain ids, read in the form `setattr_prepare` left them.
        unsafe {
            if self.0.ia_valid & bindings::ATTR_UID != 0 {
                let uid = bindings::from_vfsuid(idmap.0, ns, self.0.__bindgen_anon_1.ia_vfsuid);
                self.0.__bindgen_anon_1.ia_vfsuid = bindings::vfsuid_t { val: uid.val };
            }
            if self.0.ia_valid & bindings::ATTR_GID != 0 {
                let gid = bindings::from_vfsgid(idmap.0, ns, self.0.__bindgen_anon_2.ia_vfsgid);
                self.0.__bindgen_anon_2.ia_vfsgid = bindings::vfsgid_t { val: gid.val };
            }
        }
    }

    pub(crate) fn set_owner(&mut self, uid: Kuid, gid: Kgid) {
        self.0.ia_valid |= bindings::ATTR_UID | bindings::ATTR_GID;
        self.0.__bindgen_anon_1.ia_vfsuid = bindings::vfsuid_t { val: uid.val };
        self.0.__bindgen_anon_2.ia_vfsgid = bindings::vfsgid_t { val: gid.val };
    }

    /// Explicit access and modification times (and the change time, now).
    pub(crate) fn set_times(&mut self, atime: bindings::timespec64, mtime: bindings::timespec64) {
        self.0.ia_valid |= bindings::ATTR_ATIME
            | bindings::ATTR_MTIME
            | bindings::ATTR_ATIME_SET
            | bindings::ATTR_MTIME_SET
            | bindings::ATTR_CTIME;
        self.0.ia_atime = atime;
        self.0.ia_mtime = mtime;
    }
}

/// A POSIX ACL passed in by the VFS (borrowed for one call).
#[derive(Clone, Copy)]
pub(crate) struct PosixAcl(pub(super) *mut bindings::posix_acl);
