// SPDX-License-Identifier: GPL-2.0

//! Changes to the writable (upper) layer: creating, removing and renaming real objects, and
//! setting their attributes, xattrs and data. Each call is one VFS operation with its own
//! locks and freeze protection (see glue.c); the union logic decides what to call in which
//! order.

use super::dentry::Dentry;
use super::ffi;
use super::inode::Inode;
use super::layer::{LayerMount, RealPath};
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

/// Where a rename starts or ends: a real dentry, or a name to look up under the locks.
#[derive(Clone, Copy)]
pub(crate) enum RenameEnd<'a> {
    Dentry(&'a Dentry),
    Name(&'a [u8]),
}

/// A rename on the upper layer, with what the objects must be once the locks are held.
pub(crate) struct Rename<'a> {
    pub(crate) old_parent: &'a Dentry,
    pub(crate) old: RenameEnd<'a>,
    pub(crate) new_parent: &'a Dentry,
    pub(crate) new: RenameEnd<'a>,
    /// `RENAME_*` flags for the real rename.
    pub(crate) flags: u32,
    /// The source must be this inode (else `ESTALE`).
    pub(crate) expect_old: Option<&'a Inode>,
    /// The target must be this inode.
    pub(crate) expect_new: Option<&'a Inode>,
    /// The target must be negative or a whiteout.
    pub(crate) new_negative: bool,
}

fn name_len(name: &[u8]) -> Result<c_int> {
    c_int::try_from(name.len()).map_err(|_| super::errno::enametoolong())
}

/// Takes over a dentry reference returned by C (or its error).
fn dentry_result(d: *mut bindings::dentry) -> Result<ARef<Dentry>> {
    let d = from_err_ptr(d)?;
    let d = NonNull::new(d).ok_or(EIO)?;
    // SAFETY: the glue returned a referenced dentry, which the `ARef` now owns.
    Ok(unsafe { ARef::from_raw(d.cast()) })
}

/// Attributes of a real object, as `stat` reports them.
pub(crate) struct RealStat(bindings::kstat);

impl RealStat {
    pub(crate) fn of(path: RealPath<'_>) -> Result<Self> {
        let raw = path.raw();
        // SAFETY: all-zero is a valid kstat to be filled.
        let mut st = RealStat(unsafe { core::mem::zeroed() });
        // SAFETY: `raw` borrows a live path; `st` is ours.
        to_result(unsafe { ffi::unionrs_getattr_real(&raw, &mut st.0) })?;
        Ok(st)
    }

    pub(crate) fn mode(&self) -> u32 {
        u32::from(self.0.mode)
    }

    pub(crate) fn rdev(&self) -> u32 {
        self.0.rdev
    }

    pub(crate) fn size(&self) -> i64 {
        self.0.size
    }

    pub(crate) fn ino(&self) -> u64 {
        self.0.ino
    }
}

impl LayerMount {
    /// Creates `name` in `parent` (or a temporary name, for `None`): the new positive dentry.
    /// `EEXIST` if the name is taken.
    pub(crate) fn create(
        &self,
        parent: &Dentry,
        name: Option<&[u8]>,
        what: NewObject<'_>,
    ) -> Result<ARef<Dentry>> {
        let (nptr, nlen) = match name {
            Some(n) => (n.as_ptr(), name_len(n)?),
            None => (core::ptr::null(), 0),
        };
        let (mode, rdev, link, hardlink) = match what {
            NewObject::Node { mode, rdev } => {
                (mode, rdev, core::ptr::null(), core::ptr::null_mut())
            }
            NewObject::Symlink(target) => (
                bindings::S_IFLNK | 0o777,
                0,
                target.as_char_ptr(),
                core::ptr::null_mut(),
            ),
            NewObject::Link(old) => (0, 0, core::ptr::null(), old.as_ptr()),
        };
        // SAFETY: the mount and dentries are live; the name is valid for `nlen` bytes (or NULL);
        // `link` is NUL-terminated or NULL.
        dentry_result(unsafe {
            ffi::unionrs_create_real(
                self.as_ptr(),
                parent.as_ptr(),
                nptr.cast(),
                nlen,
                mode as bindings::umode_t,
                rdev,
                link,
                hardlink,
            )
        })
    }

    /// Unlinks or removes (if a directory) `child` of `parent`.
    pub(crate) fn remove(&self, parent: &Dentry, child: &Dentry) -> Result {
        // SAFETY: the mount and dentries are live; the glue checks the parentage under lock.
        to_result(unsafe {
            ffi::unionrs_remove_real(self.as_ptr(), parent.as_ptr(), child.as_ptr())
        })
    }

    /// Removes `name` from `parent` if it is still `expect` (else `ESTALE`).
    pub(crate) fn remove_name(&self, parent: &Dentry, name: &[u8], expect: &Inode) -> Result {
        // SAFETY: mount, dentry and inode are live; the name is valid for its length.
        to_result(unsafe {
            ffi::unionrs_remove_name(
                self.as_ptr(),
                parent.as_ptr(),
                name.as_ptr().cast(),
                name_len(name)?,
                expect.as_ptr(),
            )
        })
    }

    /// Renames; returns the dentry at the target after the rename.
    pub(crate) fn rename(&self, r: &Rename<'_>) -> Result<ARef<Dentry>> {
        let split = |e: RenameEnd<'_>| -> Result<(*mut bindings::dentry, *const u8, c_int)> {
            Ok(match e {
                RenameEnd::Dentry(d) => (d.as_ptr(), core::ptr::null(), 0),
                RenameEnd::Name(n) => (core::ptr::null_mut(), n.as_ptr(), name_len(n)?),
            })
        };
        let (od, on, ol) = split(r.old)?;
        let (nd, nn, nl) = split(r.new)?;
        if od.is_null() && !nd.is_null() {
            return Err(EINVAL);
        }
        let mut replaced: *mut bindings::dentry = core::ptr::null_mut();
        // SAFETY: mount and dentries are live, names valid for their lengths; the glue takes
        // the rename locks and checks everything again under them.
        to_result(unsafe {
            ffi::unionrs_rename_real(
                self.as_ptr(),
                r.old_parent.as_ptr(),
                od,
                on.cast(),
                ol,
                r.new_parent.as_ptr(),
                nd,
                nn.cast(),
                nl,
                r.flags,
                r.expect_old.map_or(core::ptr::null_mut(), Inode::as_ptr),
                r.expect_new.map_or(core::ptr::null_mut(), Inode::as_ptr),
                r.new_negative,
                &mut replaced,
            )
        })?;
        dentry_result(replaced)
    }

    /// Sets (`Some`) or removes (`None`) xattr `name` of a real object.
    pub(crate) fn set_xattr(
        &self,
        d: &Dentry,
        name: &CStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result {
        // SAFETY: mount and dentry are live; name is NUL-terminated; value valid for its length.
        to_result(unsafe {
            match value {
                Some(v) => ffi::unionrs_setxattr_real(
                    self.as_ptr(),
                    d.as_ptr(),
                    name.as_char_ptr(),
                    v.as_ptr().cast(),
                    v.len(),
                    flags,
                ),
                None => {
                    ffi::unionrs_removexattr_real(self.as_ptr(), d.as_ptr(), name.as_char_ptr())
                }
            }
        })
    }

    /// Sets (`Some`) or removes a POSIX ACL of a real object.
    pub(crate) fn set_acl(&self, d: &Dentry, ty: i32, acl: Option<&PosixAcl>) -> Result {
        // SAFETY: mount and dentry are live; the ACL is the caller's, valid for the call.
        to_result(unsafe {
            ffi::unionrs_set_acl_real(
                self.as_ptr(),
                d.as_ptr(),
                ty,
                acl.map_or(core::ptr::null_mut(), |a| a.0),
            )
        })
    }

    /// Gives a copy the size (regular files), mode, owner and times of the original.
    pub(crate) fn copy_attrs(&self, d: &Dentry, st: &RealStat) -> Result {
        // SAFETY: mount and dentry are live; `st` is a filled kstat.
        to_result(unsafe { ffi::unionrs_copy_attrs_real(self.as_ptr(), d.as_ptr(), &st.0) })
    }

    /// Puts back the access and modification times of `st` on a real object.
    pub(crate) fn set_times(&self, d: &Dentry, st: &RealStat) -> Result {
        // SAFETY: mount and dentry are live; `st` is a filled kstat.
        to_result(unsafe { ffi::unionrs_set_times_real(self.as_ptr(), d.as_ptr(), &st.0) })
    }

    /// Copies the xattrs of `from` to `to`, except names starting with `skip_prefix`.
    pub(crate) fn copy_xattrs(
        &self,
        from: RealPath<'_>,
        to: &Dentry,
        skip_prefix: &CStr,
    ) -> Result {
        let raw = from.raw();
        // SAFETY: the paths are live; the prefix is NUL-terminated.
        to_result(unsafe {
            ffi::unionrs_copy_xattrs_real(
                &raw,
                self.as_ptr(),
                to.as_ptr(),
                skip_prefix.as_char_ptr(),
            )
        })
    }

    /// Copies `len` bytes of data from `from` to the new file `to` on this mount, and syncs it.
    pub(crate) fn copy_data(&self, from: RealPath<'_>, to: &Dentry, len: i64) -> Result {
        let src = from.raw();
        let dst = RealPath {
            mnt: self,
            dentry: to,
        }
        .raw();
        // SAFETY: both paths are live for the call.
        to_result(unsafe { ffi::unionrs_copy_data_real(&src, &dst, len) })
    }

    /// Applies the caller's attribute change to a real object.
    pub(crate) fn setattr(&self, d: &Dentry, attr: &mut Iattr) -> Result {
        // SAFETY: mount and dentry are live; `attr.0` is a private copy.
        to_result(unsafe { ffi::unionrs_setattr_real(self.as_ptr(), d.as_ptr(), &mut attr.0) })
    }
}

/// An attribute change asked of the union (a copy of the VFS' `iattr`).
pub(crate) struct Iattr(pub(super) bindings::iattr);

impl Dentry {
    /// The target of a real symlink.
    pub(crate) fn read_link(&self) -> Result<kernel::str::CString> {
        // SAFETY: the dentry is live.
        let p = from_err_ptr(unsafe { ffi::unionrs_readlink_real(self.as_ptr()) })?;
        // SAFETY: the glue returned a NUL-terminated kmalloc'ed string that we now own.
        let s = unsafe { CStr::from_char_ptr(p) };
        let copy = kernel::str::CString::try_from(s);
        // SAFETY: `p` came from kstrdup and is not used afterwards.
        unsafe { bindings::kfree(p.cast()) };
        copy.map_err(|_| ENOMEM)
    }

    /// Whether this is a positive dentry of a 0/0 character device (a whiteout).
    pub(crate) fn is_whiteout(&self) -> bool {
        // SAFETY: the dentry is live.
        unsafe { ffi::unionrs_is_whiteout_dentry(self.as_ptr()) }
    }

    /// Marks an upper or work directory as in use by a union (overlayfs' `I_OVL_INUSE`);
    /// false if another union (or overlayfs) already uses it.
    pub(crate) fn inuse_trylock(&self) -> bool {
        // SAFETY: a live positive dentry.
        unsafe { ffi::unionrs_inuse_trylock(self.as_ptr()) }
    }

    pub(crate) fn inuse_unlock(&self) {
        // SAFETY: a live positive dentry.
        unsafe { ffi::unionrs_inuse_unlock(self.as_ptr()) }
    }

    /// The parent (the dentry itself for a root).
    pub(crate) fn parent(&self) -> ARef<Dentry> {
        // SAFETY: `dget_parent` returns a referenced dentry, never NULL.
        unsafe {
            ARef::from_raw(NonNull::new_unchecked(
                ffi::unionrs_dget_parent(self.as_ptr()).cast(),
            ))
        }
    }

    /// A copy of the name, stable against concurrent renames.
    pub(crate) fn name_copy(&self) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, bindings::NAME_MAX as usize + 1, GFP_KERNEL)?;
        // SAFETY: `buf` is valid for its length.
        let n = unsafe {
            ffi::unionrs_dentry_name(self.as_ptr(), buf.as_mut_ptr().cast(), buf.len() as c_int)
        };
        let n = usize::try_from(n).map_err(|_| super::errno::enametoolong())?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Whether the dentry was removed (unlinked, or dropped after a change).
    pub(crate) fn is_unhashed(&self) -> bool {
        // SAFETY: the dentry is live.
        unsafe { ffi::unionrs_d_unhashed(self.as_ptr()) }
    }

    /// Unhashes the dentry: the next lookup of its name builds a fresh one.
    pub(crate) fn drop_from_cache(&self) {
        // SAFETY: the dentry is live.
        unsafe { ffi::unionrs_d_drop(self.as_ptr()) }
    }

    /// Makes a negative dentry (being created, parent locked) positive with `inode`.
    pub(crate) fn instantiate(&self, inode: ARef<Inode>) {
        // SAFETY: `d_instantiate` takes over our inode reference.
        unsafe { ffi::unionrs_d_instantiate(self.as_ptr(), ARef::into_raw(inode).as_ptr().cast()) }
    }
}

/// A POSIX ACL passed in by the VFS (borrowed for one call).
pub(crate) struct PosixAcl(pub(super) *mut bindings::posix_acl);
