// SPDX-License-Identifier: GPL-2.0

//! Extended attributes: those of the real object, minus our private `overlay.*` ones.
//!
//! As in overlayfs, a layer may carry escaped names (`trusted.overlay.overlay.X`, written by
//! a union stacked on this one): the union shows them unescaped (`trusted.overlay.X`), and a
//! read of `trusted.overlay.X` through the union reads the escaped name.

use crate::superblock::UnionFs;
use crate::vfs::{caller_is_sys_admin, Dentry, FsInode, PosixAcl};
use kernel::prelude::*;
use kernel::str::CString;

/// The escape infix after our prefix.
const ESCAPE: &[u8] = b"overlay.";

impl UnionFs {
    /// [`Self::own_prefix`] as a C string.
    pub(crate) fn own_prefix_cstr(&self) -> &'static CStr {
        if self.userxattr {
            c"user.overlay."
        } else {
            c"trusted.overlay."
        }
    }

    /// Our private xattr prefix: `trusted.overlay.` or `user.overlay.`.
    fn own_prefix(&self) -> &'static [u8] {
        if self.userxattr {
            b"user.overlay."
        } else {
            b"trusted.overlay."
        }
    }
}

/// `getxattr` of a union object.
pub(crate) fn getxattr(inode: &FsInode<UnionFs>, name: &CStr, buf: &mut [u8]) -> Result<usize> {
    let fs = inode.sb().info();
    let real = crate::inode::real_path(inode)?;
    let prefix = fs.own_prefix();
    let bytes = name.to_bytes();
    let _creds = fs.creds.use_here();
    if let Some(rest) = bytes.strip_prefix(prefix) {
        // Read the escaped form on the layer.
        return real.dentry.getxattr(real.mnt, &escape(prefix, rest)?, buf);
    }
    real.dentry.getxattr(real.mnt, name, buf)
}

/// `prefix` + "overlay." + `rest`: how a union object's `overlay.*` xattr is stored.
fn escape(prefix: &[u8], rest: &[u8]) -> Result<CString> {
    let mut escaped =
        KVec::with_capacity(prefix.len() + rest.len() + ESCAPE.len() + 1, GFP_KERNEL)?;
    escaped.extend_from_slice(prefix, GFP_KERNEL)?;
    escaped.extend_from_slice(ESCAPE, GFP_KERNEL)?;
    escaped.extend_from_slice(rest, GFP_KERNEL)?;
    escaped.push(0, GFP_KERNEL)?;
    Ok(CString::try_from(
        CStr::from_bytes_with_nul(&escaped).map_err(|_| EINVAL)?,
    )?)
}

/// `setxattr`/`removexattr` of a union object: on its upper copy (copied up first), with our
/// own names escaped as overlayfs does.
pub(crate) fn setxattr(dentry: &Dentry, name: &CStr, value: Option<&[u8]>, flags: i32) -> Result {
    let (sb, inode) = crate::copy_up::union_inode(dentry)?;
    let fs = sb.info();
    crate::copy_up::copy_up(sb, dentry)?;
    let upper = inode.data()?.upper().ok_or(EIO)?;
    let mnt = &fs.upper_layer()?.mnt;
    let prefix = fs.own_prefix();
    let _creds = fs.creds.use_here();
    match name.to_bytes().strip_prefix(prefix) {
        Some(rest) => mnt.set_xattr(&upper.dentry, &escape(prefix, rest)?, value, flags)?,
        None => mnt.set_xattr(&upper.dentry, name, value, flags)?,
    }
    inode.refresh_from(upper.dentry.inode().ok_or(EIO)?);
    Ok(())
}

/// `listxattr` of a union object: the real list, filtered in place.
pub(crate) fn listxattr(inode: &FsInode<UnionFs>, buf: &mut [u8]) -> Result<usize> {
    let fs = inode.sb().info();
    let real = crate::inode::real_path(inode)?;
    // Decided for the caller, before switching to the mounter's credentials.
    let may_list_trusted = caller_is_sys_admin();
    let n = {
        let _creds = fs.creds.use_here();
        real.dentry.listxattr(buf)?
    };
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

/// `set_acl` of a union object: on its upper copy.
pub(crate) fn set_acl(dentry: &Dentry, ty: i32, acl: Option<&PosixAcl>) -> Result {
    let (sb, inode) = crate::copy_up::union_inode(dentry)?;
    let fs = sb.info();
    crate::copy_up::copy_up(sb, dentry)?;
    let upper = inode.data()?.upper().ok_or(EIO)?;
    {
        let _creds = fs.creds.use_here();
        fs.upper_layer()?.mnt.set_acl(&upper.dentry, ty, acl)?;
    }
    inode.refresh_from(upper.dentry.inode().ok_or(EIO)?);
    Ok(())
}
