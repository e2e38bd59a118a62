// SPDX-License-Identifier: GPL-2.0

//! Lookup across the layers.
//!
//! A name is looked up in each real directory behind the parent, top layer first. A whiteout
//! hides the name in every layer below it; a non-directory hides everything below it;
//! directories merge until one is opaque.

use crate::inode::{RealEntry, UnionInode};
use crate::superblock::{Layer, LayerKind, UnionFs};
use crate::vfs::{errno, AsMounter, Dentry, FsInode, Inode};
use kernel::prelude::*;
use kernel::sync::aref::ARef;

impl UnionFs {
    /// The name of one of our private xattrs ("trusted.overlay.X" or "user.overlay.X").
    pub(crate) fn xattr_name(&self, which: Xattr) -> &'static CStr {
        match (self.userxattr, which) {
            (false, Xattr::Opaque) => c"trusted.overlay.opaque",
            (false, Xattr::Whiteout) => c"trusted.overlay.whiteout",
            (true, Xattr::Opaque) => c"user.overlay.opaque",
            (true, Xattr::Whiteout) => c"user.overlay.whiteout",
            (false, Xattr::Uuid) => c"trusted.overlay.uuid",
            (true, Xattr::Uuid) => c"user.overlay.uuid",
            (false, Xattr::Impure) => c"trusted.overlay.impure",
            (true, Xattr::Impure) => c"user.overlay.impure",
        }
    }

    /// The value of a directory's `overlay.opaque` xattr: `y` (opaque), `x` (contains xattr
    /// whiteouts) or 0.
    pub(crate) fn opaque_value(&self, m: &AsMounter<'_>, layer: &Layer, dir: &Dentry) -> u8 {
        let mut v = [0u8; 1];
        match layer
            .mnt
            .getxattr(m, dir, self.xattr_name(Xattr::Opaque), &mut v)
        {
            Ok(1) => v[0],
            _ => 0,
        }
    }

    /// Whether a positive real dentry is a whiteout: a 0/0 character device, or an empty
    /// regular file with the `overlay.whiteout` xattr (overlayfs' xattr whiteouts).
    pub(crate) fn is_whiteout(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        d: &Dentry,
        inode: &Inode,
    ) -> bool {
        if inode.is_whiteout() {
            return true;
        }
        inode.is_reg()
            && inode.size() == 0
            && layer
                .mnt
                .getxattr(m, d, self.xattr_name(Xattr::Whiteout), &mut [])
                .is_ok()
    }

    /// Looks `name` up below the real directories `parent` and returns the new stack.
    pub(crate) fn lookup_stack(
        &self,
        m: &AsMounter<'_>,
        parent: &UnionInode,
        name: &[u8],
    ) -> Result<KVec<RealEntry>> {
        self.lookup_in(m, parent.entries(), name)
    }

    /// Looks `name` up below the given real directories (top first).
    pub(crate) fn lookup_in<'a>(
        &self,
        m: &AsMounter<'_>,
        dirs: impl Iterator<Item = &'a RealEntry>,
        name: &[u8],
    ) -> Result<KVec<RealEntry>> {
        let mut stack = KVec::new();
        for e in dirs {
            let layer = self.layers.get(e.layer).ok_or(EIO)?;
            let Some(child) = layer.mnt.lookup(m, &e.dentry, name)? else {
                continue;
            };
            let Some(inode) = child.inode() else { continue };
            if self.is_whiteout(m, layer, &child, inode) {
                break;
            }
            let is_dir = inode.is_dir();
            if is_dir && self.is_trap(inode) {
                let which = if layer.kind == LayerKind::Upper {
                    "upper"
                } else {
                    "lower"
                };
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed lookup in {} ('{}'): overlapping layers",
                    which,
                    kernel::str::BStr::from_bytes(name)
                ));
                return Err(errno::eloop());
            }
            // A non-directory is only visible on top; below a directory it is hidden.
            if !is_dir && !stack.is_empty() {
                break;
            }
            let opaque = is_dir && self.opaque_value(m, layer, &child) == b'y';
            stack.push(
                RealEntry {
                    layer: e.layer,
                    dentry: child,
                },
                GFP_KERNEL,
            )?;
            // Directories merge down to an opaque one; a non-directory ends the stack.
            if !is_dir || opaque {
                break;
            }
        }
        Ok(stack)
    }
}

impl UnionFs {
    /// Whether `name` is visible in the lower layers of directory `parent` (then removing it
    /// from the union needs a whiteout on the upper layer).
    pub(crate) fn lower_positive(
        &self,
        m: &AsMounter<'_>,
        parent: &UnionInode,
        name: &[u8],
    ) -> Result<bool> {
        Ok(!self.lookup_in(m, parent.lower().iter(), name)?.is_empty())
    }
}

/// Our private xattrs.
#[derive(Clone, Copy)]
pub(crate) enum Xattr {
    Opaque,
    Whiteout,
    Uuid,
    Impure,
}

/// `inode_operations::lookup` of a union directory.
pub(crate) fn lookup(dir: &FsInode<UnionFs>, name: &[u8]) -> Result<Option<ARef<Inode>>> {
    let fs = dir.sb().info();
    if name.len() > fs.namelen {
        return Err(errno::enametoolong());
    }
    let data = dir.data()?;
    let stack = fs.with_mounter(|m| fs.lookup_stack(m, data, name))?;
    if stack.is_empty() {
        return Ok(None);
    }
    Ok(Some(fs.get_inode(dir.sb(), stack)?))
}
