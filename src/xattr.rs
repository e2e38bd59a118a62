// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs: those of the real object, minus our private
//! `overlay.*` ones.
//!
//! As in overlayfs, a layer may carry escaped names (`trusted.overlay.overlay.X`, written by
//! a union stacked on this one): the union shows them unescaped (`trusted.overlay.X`), a
//! read or write of `trusted.overlay.X` through the union reaches the escaped name, and
//! copy-up keeps them. This file is the one definition of that rule.

use crate::copy_up::{copy_up, union_inode};
use crate::superblock::UnionFs;
use crate::vfs::bindings::UNIONRS_ACL_TYPE_ACCESS;
use crate::vfs::{caller_is_sys_admin, Acl, Dentry, FsInode, Iattr, Idmap, PosixAcl, XattrOps};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;

/// The escape infix after our prefix.
const ESCAPE: &[u8] = b"overlay.";

/// The xattr names of POSIX ACLs.
const ACL_ACCESS: &CStr = c"system.posix_acl_access";
const ACL_DEFAULT: &CStr = c"system.posix_acl_default";

impl UnionFs {
    /// Our private xattr prefix: `trusted.overlay.` or `user.overlay.`.
    fn own_prefix(&self) -> &'static [u8] {
        if self.userxattr {
            b"user.overlay."
        } else {
            b"trusted.overlay."
        }
    }

    /// Whether a real object's xattr `name` is one of ours (hidden from the union's users and
    /// not copied up): our prefix, but not an escaped name.
    pub(crate) fn is_private_xattr(&self, name: &[u8]) -> bool {
        name.strip_prefix(self.own_prefix())
            .is_some_and(|rest| !rest.starts_with(ESCAPE))
    }

    /// The name on the real object of the union's xattr `name`: our own names are escaped.
    fn real_xattr_name(&self, name: &CStr) -> Result<Option<CString>> {
        let prefix = self.own_prefix();
        match name.to_bytes().strip_prefix(prefix) {
            Some(rest) => Ok(Some(cstring(&[prefix, ESCAPE, rest].concat_kvec()?)?)),
            None => Ok(None),
        }
    }
}

/// Concatenation into a kernel vector.
trait ConcatKVec {
    fn concat_kvec(&self) -> Result<KVec<u8>>;
}

impl ConcatKVec for [&[u8]] {
    fn concat_kvec(&self) -> Result<KVec<u8>> {
        let mut v = KVec::with_capacity(self.iter().map(|p| p.len()).sum(), GFP_KERNEL)?;
        for part in self {
            v.extend_from_slice(part, GFP_KERNEL)?;
        }
        Ok(v)
    }
}

/// A NUL-terminated copy of `bytes`.
pub(crate) fn cstring(bytes: &[u8]) -> Result<CString> {
    let v = [bytes, b"\0"].concat_kvec()?;
    Ok(CString::try_from(
        CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?,
    )?)
}

/// Whether `name` is a POSIX ACL (which goes through the ACL API, not the xattr one).
pub(crate) fn is_posix_acl(name: &CStr) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// The xattr name of ACL type `ty` (`ACL_TYPE_*`).
fn acl_name(ty: i32) -> &'static CStr {
    if ty == UNIONRS_ACL_TYPE_ACCESS as i32 {
        ACL_ACCESS
    } else {
        ACL_DEFAULT
    }
}

#[vtable]
impl XattrOps for UnionFs {
    /// `getxattr` of a union object: the real object's (our own names escaped).
    fn get(inode: &FsInode<Self>, name: &CStr, buf: &mut [u8]) -> Result<usize> {
        let fs = inode.sb().info();
        let real = crate::inode::real_path(inode)?;
        let escaped = fs.real_xattr_name(name)?;
        let real_name = escaped.as_deref().unwrap_or(name);
        fs.with_mounter(|m| real.mnt.getxattr(m, real.dentry, real_name, buf))
    }

    /// `setxattr`/`removexattr` of a union object: on its upper copy (copied up first). A
    /// lower object is not copied up to remove an xattr it does not have (`ENODATA`), as in
    /// overlayfs.
    fn set(dentry: &Dentry, name: &CStr, value: Option<&[u8]>, flags: i32) -> Result {
        let (sb, inode) = union_inode(dentry)?;
        let fs = sb.info();
        let escaped = fs.real_xattr_name(name)?;
        let real_name = escaped.as_deref().unwrap_or(name);
        if value.is_none() && inode.data()?.upper().is_none() {
            let real = crate::inode::real_path(inode)?;
            fs.with_mounter(|m| real.mnt.getxattr(m, real.dentry, real_name, &mut []))?;
        }
        copy_up(sb, dentry)?;
        let upper = inode.data()?.upper().ok_or(EIO)?;
        let mnt = &fs.upper_layer()?.mnt;
        fs.with_mounter(|m| mnt.set_xattr(m, &upper.dentry, real_name, value, flags))?;
        inode.refresh_from(upper.dentry.inode().ok_or(EIO)?, mnt.id_map());
        Ok(())
    }
}

/// `listxattr` of a union object: the real list, filtered in place.
pub(crate) fn listxattr(inode: &FsInode<UnionFs>, buf: &mut [u8]) -> Result<usize> {
    let fs = inode.sb().info();
    let real = crate::inode::real_path(inode)?;
    // Decided for the caller, before switching to the mounter's credentials.
    let may_list_trusted = caller_is_sys_admin();
    let n = fs.with_mounter(|m| real.mnt.listxattr(m, real.dentry, buf))?;
    if buf.is_empty() {
        // Only the size was asked for: an upper bound is enough.
        return Ok(n);
    }
    let n = n.min(buf.len());
    let prefix = fs.own_prefix();
    let (mut read, mut write) = (0usize, 0usize);
    while read < n {
        let len = buf[read..n].iter().position(|&c| c == 0).ok_or(EIO)?;
        let end = read + len + 1;
        let name = &buf[read..end - 1];
        let hidden_trusted = !may_list_trusted && name.starts_with(b"trusted.");
        let (skip, cut) = match name.strip_prefix(prefix) {
            Some(rest) if rest.starts_with(ESCAPE) => (hidden_trusted, ESCAPE.len()),
            Some(_) => (true, 0),
            None => (hidden_trusted, 0),
        };
        if !skip {
            // Copy the name down, dropping the escape infix if there is one.
            let p = prefix.len().min(len);
            buf.copy_within(read..read + p, write);
            buf.copy_within(read + p + cut..end, write + p);
            write += end - read - cut;
        }
        read = end;
    }
    Ok(write)
}

/// The ACL permission checks use: the real inode's (no check of its own), if its filesystem
/// has ACLs.
pub(crate) fn get_inode_acl(inode: &FsInode<UnionFs>, ty: i32) -> Result<Option<Acl>> {
    let fs = inode.sb().info();
    let real = crate::inode::real_path(inode)?;
    let real_inode = real.dentry.inode().ok_or(ENOENT)?;
    if !real_inode.has_posix_acls() {
        return Ok(None);
    }
    fs.with_mounter(|m| real.mnt.permission_acl(m, real_inode, ty))
}

/// The ACL as `getfacl` sees it: the real object's, through its layer; none ("no ACL", as
/// overlayfs answers) on a layer without ACLs.
pub(crate) fn get_acl(inode: &FsInode<UnionFs>, ty: i32) -> Result<Option<Acl>> {
    let fs = inode.sb().info();
    let real = crate::inode::real_path(inode)?;
    if !real.dentry.inode().ok_or(ENOENT)?.has_posix_acls() {
        return Ok(None);
    }
    fs.with_mounter(|m| real.mnt.get_acl(m, real.dentry, acl_name(ty)))
}

/// `set_acl` of a union object: on its upper copy. As for xattrs, a lower object is not copied
/// up to remove an ACL it does not have (`ENODATA`).
pub(crate) fn set_acl(dentry: &Dentry, ty: i32, acl: Option<PosixAcl>, idmap: Idmap) -> Result {
    let (sb, inode) = union_inode(dentry)?;
    let fs = sb.info();
    if acl.is_none() && inode.data()?.upper().is_none() {
        let real = crate::inode::real_path(inode)?;
        if fs
            .with_mounter(|m| real.mnt.get_acl(m, real.dentry, acl_name(ty)))?
            .is_none()
        {
            return Err(crate::vfs::errno::enodata());
        }
    }
    // The ACL is set with the mounter's capabilities, with which the real filesystem keeps
    // the set-group-ID bit where the caller's would not (CVE-2016-7097): drop it first, for
    // the caller, as overlayfs does.
    let union = inode.inode();
    if ty == UNIONRS_ACL_TYPE_ACCESS as i32
        && union.mode() & bindings::S_ISGID != 0
        && !union.caller_keeps_sgid(idmap)
    {
        let mut kill = Iattr::new();
        kill.kill_sgid();
        crate::inode::setattr(dentry, &mut kill)?;
    }
    copy_up(sb, dentry)?;
    let upper = inode.data()?.upper().ok_or(EIO)?;
    let mnt = &fs.upper_layer()?.mnt;
    fs.with_mounter(|m| mnt.set_acl(m, &upper.dentry, acl_name(ty), acl))?;
    inode.refresh_from(upper.dentry.inode().ok_or(EIO)?, mnt.id_map());
    Ok(())
}
