// SPDX-License-Identifier: GPL-2.0

//! Union inodes: what each one stands for (its stack of real objects), and the inode-level
//! operations: permission, stat, inode numbers.

use crate::copy_up::{copy_up, union_inode};
use crate::readdir::MergedDir;
use crate::superblock::UnionFs;
use crate::vfs::sync::InterruptibleLock;
use crate::vfs::{
    Acl, Dentry, Fiemap, FsInode, Iattr, Idmap, Inode, InodeOps, Kstat, LinkTarget, PermInode,
    PosixAcl, RealPath, SymlinkOps,
};
use kernel::bindings;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex, SetOnce};

/// One real object behind a union object: a dentry on layer `layer` (index into
/// `UnionFs::layers`, upper first).
pub(crate) struct RealEntry {
    pub(crate) layer: usize,
    pub(crate) dentry: ARef<Dentry>,
}

/// Per-inode data: the real objects, top layer first. A non-directory shows its top one; a
/// directory merges them (down to an opaque one).
///
/// The upper object is set once, when the object is created on the upper layer or copied up
/// (under `copy_up_lock`); the lower ones never change. After a copy-up they stay, so that the
/// object keeps its inode number as with overlayfs.
#[pin_data]
pub(crate) struct UnionInode {
    upper: SetOnce<RealEntry>,
    lower: KVec<RealEntry>,
    /// Serializes copy-ups of this object (held for a whole copy: its waiters can be
    /// interrupted).
    #[pin]
    pub(crate) copy_up_lock: InterruptibleLock,
    /// The merged listing of a merged directory, built on first open, and the generation of
    /// the directory's entries it was built from (bumped by every change).
    #[pin]
    dir_cache: Mutex<(u64, Option<Arc<MergedDir>>)>,
}

impl UnionInode {
    /// `stack` is top first; an entry on layer 0 of a union with an upper layer is the upper.
    pub(crate) fn new(mut stack: KVec<RealEntry>, has_upper: bool) -> Result<Pin<KBox<Self>>> {
        let upper = SetOnce::new();
        if has_upper && stack.first().is_some_and(|e| e.layer == 0) {
            upper.populate(stack.remove(0).map_err(|_| EIO)?);
        }
        KBox::pin_init(
            pin_init!(Self {
                upper,
                lower: stack,
                copy_up_lock <- InterruptibleLock::new(
                    c"UnionInode::copy_up_lock",
                    kernel::static_lock_class!()
                ),
                dir_cache <- new_mutex!((0, None)),
            }),
            GFP_KERNEL,
        )
    }

    /// The top-most real object: the one whose attributes and data the union shows.
    pub(crate) fn top(&self) -> Result<&RealEntry> {
        self.upper
            .as_ref()
            .or_else(|| self.lower.first())
            .ok_or(EIO)
    }

    /// The real object on the upper layer, if there is one yet.
    pub(crate) fn upper(&self) -> Option<&RealEntry> {
        self.upper.as_ref()
    }

    /// The real objects on lower layers, top first.
    pub(crate) fn lower(&self) -> &[RealEntry] {
        &self.lower
    }

    /// Records the upper object made by a copy-up (caller holds `copy_up_lock`).
    pub(crate) fn set_upper(&self, e: RealEntry) {
        self.upper.populate(e);
    }

    /// The real objects a directory merges, top first; for a non-directory, the top one and
    /// the lower ones it hides.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &RealEntry> {
        Iterator::chain(self.upper.as_ref().into_iter(), self.lower.iter())
    }

    /// Whether this is a directory merged from more than one layer.
    pub(crate) fn is_merged(&self) -> bool {
        self.entries().nth(1).is_some()
    }

    /// Forgets the merged listing (after a change of the directory's entries).
    pub(crate) fn invalidate_listing(&self) {
        let mut cache = self.dir_cache.lock();
        cache.0 = cache.0.wrapping_add(1);
        cache.1 = None;
    }

    /// The cached merged listing, or the generation to build a new one from. (The lock is
    /// not held while a listing is built, which may take long.)
    pub(crate) fn cached_listing(&self) -> Result<Arc<MergedDir>, u64> {
        let cache = self.dir_cache.lock();
        cache.1.clone().ok_or(cache.0)
    }

    /// Keeps `listing`, built from generation `generation`, unless the directory changed
    /// since.
    pub(crate) fn cache_listing(&self, generation: u64, listing: Arc<MergedDir>) {
        let mut cache = self.dir_cache.lock();
        if cache.0 == generation {
            cache.1 = Some(listing);
        }
    }
}

/// Where the filesystem's number starts in the inode number of a directory of a union over
/// `filesystems` filesystems: bit 56 (what unionrs has always used) unless more than 255
/// filesystems need more bits.
pub(crate) fn dir_ino_shift(filesystems: usize) -> u32 {
    let bits = usize::BITS - filesystems.leading_zeros();
    (u64::BITS - bits).min(56)
}

/// The inode number of a directory that is inode `real_ino` of the union's `fs_index`-th
/// filesystem: the filesystem's number + 1 above `shift`. A real number that does not fit
/// below `shift` is used as it is (unique at least among that filesystem's).
pub(crate) fn dir_ino(fs_index: usize, real_ino: u64, shift: u32) -> u64 {
    if real_ino >> shift != 0 {
        return real_ino;
    }
    ((fs_index as u64 + 1) << shift) | real_ino
}

impl UnionFs {
    /// The layer path of a real entry.
    pub(crate) fn real_path<'a>(&'a self, e: &'a RealEntry) -> Result<RealPath<'a>> {
        let layer = self.layers.get(e.layer).ok_or(EIO)?;
        Ok(RealPath {
            mnt: &layer.mnt,
            dentry: &e.dentry,
        })
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
        let fs_index = self.layers.get(layer).map_or(0, |l| l.fs_index);
        dir_ino(fs_index, real_ino, self.dir_ino_shift)
    }

    /// Finds or makes the union inode for `stack`, so that every path to the same object
    /// gives the same inode: hashed by the first lower object when there is one (it stays
    /// the same across a copy-up), else by the upper object. As in overlayfs, a lower hard
    /// link in a writable union gets an inode of its own: a copy-up breaks the link.
    pub(crate) fn get_inode(
        &self,
        sb: &crate::vfs::SuperBlock<UnionFs>,
        stack: KVec<RealEntry>,
    ) -> Result<ARef<Inode>> {
        let top = stack.first().ok_or(EIO)?;
        let real_d = top.dentry.clone();
        let real = real_d.inode().ok_or(ENOENT)?;
        let ino = self.map_ino(top.layer, real.ino(), real.is_dir());
        let has_upper = self.has_upper();
        let first_lower = stack
            .iter()
            .find(|e| !(has_upper && e.layer == 0))
            .map(|e| e.dentry.clone());
        let key_d = first_lower.as_ref().unwrap_or(&real_d);
        let key_inode = key_d.inode().ok_or(ENOENT)?;
        // The owner as the top object's layer mount shows it.
        let idmap = self.layers.get(top.layer).ok_or(EIO)?.mnt.id_map();
        let data = UnionInode::new(stack, has_upper)?;
        if has_upper && first_lower.is_some() && !real.is_dir() && key_inode.nlink() > 1 {
            return sb.new_unhashed_inode(ino, real, idmap, data);
        }
        sb.get_inode(key_inode.as_ptr() as usize, ino, real, idmap, data)
    }
}

/// The real object behind `inode`.
pub(crate) fn real_path(inode: &FsInode<UnionFs>) -> Result<RealPath<'_>> {
    inode.sb().info().real_path(inode.data()?.top()?)
}

/// The caller needs `mask` on the union inode, and the mounter on the real one (overlayfs'
/// model): the first keeps the union's own permission bits meaningful, the second stops the
/// union from giving access the mounter does not have. Runs in RCU path walk too, so it looks
/// only at the union inode and its real inode, never at the per-inode data.
fn permission(inode: PermInode<'_, UnionFs>, idmap: Idmap, mask: i32) -> Result {
    // Being torn down under an RCU walker: let the walk retry with references.
    let (real, layer) = inode.real_top().ok_or(ECHILD)?;
    inode.inode().generic_permission(idmap, mask)?;
    let fs = inode.sb().info();
    let mut real_mask = mask;
    let special =
        !(real.is_reg() || real.is_dir() || real.mode() & bindings::S_IFMT == bindings::S_IFLNK);
    if layer != 0 || !fs.has_upper() {
        // A write to a lower object will copy it up first; the mounter then needs to read it.
        if !special && mask & bindings::MAY_WRITE as i32 != 0 {
            real_mask &= !((bindings::MAY_WRITE | bindings::MAY_APPEND) as i32);
            real_mask |= bindings::MAY_READ as i32;
        }
    }
    let mnt = &fs.layers.get(layer).ok_or(EIO)?.mnt;
    fs.with_mounter(|m| mnt.inode_permission(m, real, real_mask))
}

/// What permission checks look at (`FsInode::real_top`): the upper object and the top lower
/// one.
pub(crate) fn permission_targets(data: &UnionInode) -> crate::vfs::fs_type::PermissionTargets {
    let upper = data.upper().map(|e| e.dentry.clone());
    let lower = data.lower().first().map(|e| (e.dentry.clone(), e.layer));
    (upper, lower)
}

/// The real object's attributes, with the union's device and inode numbers, and one link for
/// a merged directory (counting subdirectories across layers is not worth it; `find` accepts
/// 1, as with overlayfs).
fn getattr(
    inode: &FsInode<UnionFs>,
    stat: &mut Kstat<'_>,
    request_mask: u32,
    flags: u32,
) -> Result {
    let fs = inode.sb().info();
    let data = inode.data()?;
    let real = real_path(inode)?;
    fs.with_mounter(|m| {
        real.mnt
            .getattr_nosec(m, real.dentry, stat, request_mask, flags)?;
        let is_dir = inode.inode().is_dir();
        if fs.same_fs || is_dir {
            stat.set_dev_of(inode.sb());
        }
        let top = data.top()?;
        let mut ino = fs.map_ino(top.layer, stat.ino(), is_dir);
        // A merged directory on one filesystem shows its first lower directory's number (as
        // overlayfs does), which stays the same when the directory is copied up. Copied-up
        // non-directories show the copy's number: keeping the original's would need the
        // `overlay.origin` xattr to survive a remount, which unionrs does not write yet.
        if let (true, Some(_), Some(origin)) =
            (is_dir && fs.same_fs, data.upper(), data.lower().first())
        {
            let path = fs.real_path(origin)?;
            let lst = path.mnt.stat(m, path.dentry)?;
            ino = fs.map_ino(origin.layer, lst.ino(), is_dir);
        }
        stat.set_ino(ino);
        if is_dir && data.is_merged() {
            stat.set_nlink(1);
        }
        Ok(())
    })
}

/// A change of attributes, on the upper copy (data included for a size change, as for any
/// copy-up).
pub(crate) fn setattr(dentry: &Dentry, attr: &mut Iattr) -> Result {
    let (sb, inode) = union_inode(dentry)?;
    let fs = sb.info();
    copy_up(sb, dentry)?;
    let upper = inode.data()?.upper().ok_or(EIO)?;
    // The real filesystem must not see our open file. A kill of the set-user-ID and
    // set-group-ID bits is derived from the mode by `notify_change` itself, so an explicit
    // mode change, which the VFS computed from our inode, goes.
    attr.detach_file();
    attr.remove_valid(bindings::ATTR_OPEN);
    if attr.valid() & (bindings::ATTR_KILL_SUID | bindings::ATTR_KILL_SGID) != 0 {
        attr.remove_valid(bindings::ATTR_MODE);
    }
    let mnt = &fs.upper_layer()?.mnt;
    fs.with_mounter(|m| mnt.notify_change(m, &upper.dentry, attr))?;
    inode.refresh_from(upper.dentry.inode().ok_or(EIO)?, mnt.id_map());
    Ok(())
}

#[vtable]
impl InodeOps for UnionFs {
    fn permission(inode: PermInode<'_, Self>, idmap: Idmap, mask: i32) -> Result {
        permission(inode, idmap, mask)
    }

    fn getattr(
        inode: &FsInode<Self>,
        stat: &mut Kstat<'_>,
        request_mask: u32,
        flags: u32,
    ) -> Result {
        getattr(inode, stat, request_mask, flags)
    }

    fn setattr(dentry: &Dentry, attr: &mut Iattr) -> Result {
        setattr(dentry, attr)
    }

    fn listxattr(inode: &FsInode<Self>, buf: &mut [u8]) -> Result<usize> {
        crate::xattr::listxattr(inode, buf)
    }

    fn get_inode_acl(inode: &FsInode<Self>, ty: i32) -> Result<Option<Acl>> {
        crate::xattr::get_inode_acl(inode, ty)
    }

    fn get_acl(inode: &FsInode<Self>, ty: i32) -> Result<Option<Acl>> {
        crate::xattr::get_acl(inode, ty)
    }

    fn set_acl(dentry: &Dentry, ty: i32, acl: Option<PosixAcl>, idmap: Idmap) -> Result {
        crate::xattr::set_acl(dentry, ty, acl, idmap)
    }

    /// The real file's extents, from its own filesystem.
    fn fiemap(inode: &FsInode<Self>, info: &mut Fiemap<'_>, start: u64, len: u64) -> Result {
        let fs = inode.sb().info();
        let real = real_path(inode)?.dentry.inode().ok_or(ENOENT)?;
        fs.with_mounter(|m| info.forward(m, real, start, len))
    }
}

#[vtable]
impl SymlinkOps for UnionFs {
    /// The real symlink's target.
    fn get_link(inode: &FsInode<Self>, out: &mut LinkTarget<'_>) -> Result {
        let fs = inode.sb().info();
        let real = real_path(inode)?;
        fs.with_mounter(|m| out.resolve(m, real.dentry))
    }
}

#[kunit_tests(unionrs_inode)]
mod tests {
    use super::*;

    #[test]
    fn dir_ino_shift_keeps_bit_56_up_to_255_filesystems() {
        assert_eq!(dir_ino_shift(1), 56);
        assert_eq!(dir_ino_shift(2), 56);
        assert_eq!(dir_ino_shift(255), 56);
        assert_eq!(dir_ino_shift(256), 55);
        assert_eq!(dir_ino_shift(501), 55);
    }

    /// Inode 2 of every filesystem of a 501-filesystem union (an upper and 500 lowers, each
    /// on its own) gets a number of its own.
    #[test]
    fn dir_inos_distinct_for_501_filesystems() {
        let shift = dir_ino_shift(501);
        let mut seen = KVec::new();
        for fs_index in 0..501 {
            let ino = dir_ino(fs_index, 2, shift);
            assert!(!seen.contains(&ino));
            assert!(seen.push(ino, GFP_KERNEL).is_ok());
        }
    }

    #[test]
    fn dir_ino_too_big_is_kept() {
        assert_eq!(dir_ino(3, 1 << 60, 56), 1 << 60);
        assert_eq!(dir_ino(0, 5, 56), (1 << 56) | 5);
    }
}
