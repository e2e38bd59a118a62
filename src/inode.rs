// SPDX-License-Identifier: GPL-2.0

//! Union inodes: what each one stands for (its stack of real objects), and the inode-level
//! operations: permission, stat, inode numbers.

use crate::readdir::MergedDir;
use crate::superblock::UnionFs;
use crate::vfs::{Dentry, FsInode, Idmap, Inode, Kstat, RealPath};
use kernel::bindings;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex};

/// One real object behind a union object: a dentry on layer `layer` (index into
/// `UnionFs::layers`, upper first).
pub(crate) struct RealEntry {
    pub(crate) layer: usize,
    pub(crate) dentry: ARef<Dentry>,
}

/// Per-inode data: the real objects, top layer first. A non-directory has exactly one; a
/// directory has one per layer it is merged from (stopping at an opaque one).
#[pin_data]
pub(crate) struct UnionInode {
    pub(crate) stack: KVec<RealEntry>,
    /// The merged listing of a merged directory, built on first open.
    #[pin]
    pub(crate) dir_cache: Mutex<Option<Arc<MergedDir>>>,
}

impl UnionInode {
    pub(crate) fn new(stack: KVec<RealEntry>) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(pin_init!(Self { stack, dir_cache <- new_mutex!(None) }), GFP_KERNEL)
    }

    /// The top-most real object: the one whose attributes and data the union shows.
    pub(crate) fn top(&self) -> Result<&RealEntry> {
        self.stack.first().ok_or(EIO)
    }

    /// Whether this is a directory merged from more than one layer.
    pub(crate) fn is_merged(&self) -> bool {
        self.stack.len() > 1
    }
}

impl UnionFs {
    /// The layer path of a real entry.
    pub(crate) fn real_path<'a>(&'a self, e: &'a RealEntry) -> Result<RealPath<'a>> {
        let layer = self.layers.get(e.layer).ok_or(EIO)?;
        Ok(RealPath { mnt: &layer.mnt, dentry: &e.dentry })
    }

    /// The inode number the union shows for a real object on layer `layer`.
    ///
    /// With all layers on one filesystem, real inode numbers are unique and are used as they
    /// are (as overlayfs does). Otherwise directories, which all show the union's `st_dev`,
    /// get the number of the filesystem they come from in the top bits, which keeps them
    /// unique and stable across lookups and remounts; non-directories keep their real
    /// `st_dev` and `st_ino`.
    pub(crate) fn map_ino(&self, layer: usize, real_ino: u64, is_dir: bool) -> u64 {
        if self.same_fs || !is_dir {
            return real_ino;
        }
        let fs_index = self.layers.get(layer).map_or(0, |l| l.fs_index) as u64;
        const SHIFT: u32 = 56;
        if real_ino >> SHIFT != 0 {
            // Does not fit: fall back to a number that is at least unique for this mount.
            return real_ino;
        }
        ((fs_index + 1) << SHIFT) | real_ino
    }

    /// Finds or makes the union inode for `stack`, hashed by its top real inode so that every
    /// path to the same object (hard links included) gives the same inode.
    pub(crate) fn get_inode(
        &self,
        sb: &crate::vfs::SuperBlock<UnionFs>,
        stack: KVec<RealEntry>,
    ) -> Result<ARef<Inode>> {
        let top = stack.first().ok_or(EIO)?;
        let (layer, dentry) = (top.layer, top.dentry.clone());
        let real = dentry.inode().ok_or(ENOENT)?;
        let ino = self.map_ino(layer, real.ino(), real.is_dir());
        let key = real.as_ptr() as usize;
        sb.get_inode(key, ino, real, UnionInode::new(stack)?)
    }
}

/// The real object behind `inode`.
pub(crate) fn real_path(inode: &FsInode<UnionFs>) -> Result<RealPath<'_>> {
    inode.sb().info().real_path(inode.data()?.top()?)
}

/// The caller needs `mask` on the union inode, and the mounter on the real one (overlayfs'
/// model): the first keeps the union's own permission bits meaningful, the second stops the
/// union from giving access the mounter does not have.
pub(crate) fn permission(inode: &FsInode<UnionFs>, idmap: Idmap, mask: i32) -> Result {
    inode.inode().generic_permission(idmap, mask)?;
    let fs = inode.sb().info();
    let real = real_path(inode)?;
    let mut real_mask = mask;
    let real_inode = real.dentry.inode().ok_or(ENOENT)?;
    let special = !(real_inode.is_reg() || real_inode.is_dir() || real_inode.mode() & bindings::S_IFMT == bindings::S_IFLNK);
    if inode.data()?.top()?.layer != 0 || !fs.has_upper() {
        // A write to a lower object will copy it up first; the mounter then needs to read it.
        if !special && mask & bindings::MAY_WRITE as i32 != 0 {
            real_mask &= !((bindings::MAY_WRITE | bindings::MAY_APPEND) as i32);
            real_mask |= bindings::MAY_READ as i32;
        }
    }
    let _creds = fs.creds.use_here();
    real.inode_permission(real_mask)
}

/// Adjusts what the real inode reported: the union's device and inode numbers, and one link
/// for a merged directory (counting subdirectories across layers is not worth it; `find`
/// accepts 1, as with overlayfs).
pub(crate) fn fix_stat(inode: &FsInode<UnionFs>, stat: &mut Kstat<'_>) -> Result {
    let fs = inode.sb().info();
    let data = inode.data()?;
    let is_dir = inode.inode().is_dir();
    if fs.same_fs || is_dir {
        stat.set_dev_of(inode.sb());
    }
    let top = data.top()?;
    let ino = fs.map_ino(top.layer, stat.ino(), is_dir);
    stat.set_ino(ino);
    if is_dir && data.is_merged() {
        stat.set_nlink(1);
    }
    Ok(())
}
