// SPDX-License-Identifier: GPL-2.0

//! Union inodes: what each one stands for (its stack of real objects), and the inode-level
//! operations: permission, stat, inode numbers.

use crate::copy_up::{copy_up, copy_up_with_data, union_inode};
use crate::readdir::MergedDir;
use crate::superblock::UnionFs;
use crate::vfs::sync::InterruptibleLock;
use crate::vfs::{
    Acl, AsMounter, Dentry, Fiemap, FsInode, Iattr, Idmap, Inode, InodeOps, Kstat, LinkTarget,
    PermInode, PosixAcl, RealPath, SymlinkOps,
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
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

/// The lower objects of a union inode, top first: those its lookup found, then (a directory
/// only) those found in layers added to the live mount since, a tail per catch-up. Only ever
/// appended to, so that borrowed entries stay valid.
struct LowerStack {
    found: KVec<RealEntry>,
    more: SetOnce<KBox<LowerTail>>,
}

struct LowerTail {
    entries: KVec<RealEntry>,
    more: SetOnce<KBox<LowerTail>>,
}

/// A view of a union inode's lower objects, top first (see [`UnionInode::lower`]).
#[derive(Clone, Copy)]
pub(crate) struct Lowers<'a> {
    found: &'a [RealEntry],
    more: Option<&'a LowerTail>,
}

impl<'a> Lowers<'a> {
    pub(crate) fn iter(self) -> LowerIter<'a> {
        LowerIter {
            cur: self.found.iter(),
            next: self.more,
        }
    }

    pub(crate) fn first(self) -> Option<&'a RealEntry> {
        self.iter().next()
    }

    pub(crate) fn last(self) -> Option<&'a RealEntry> {
        match self.more {
            None => self.found.last(),
            Some(_) => self.iter().last(),
        }
    }

    pub(crate) fn is_empty(self) -> bool {
        self.first().is_none()
    }

    pub(crate) fn len(self) -> usize {
        self.iter().count()
    }
}

impl<'a> IntoIterator for Lowers<'a> {
    type Item = &'a RealEntry;
    type IntoIter = LowerIter<'a>;

    fn into_iter(self) -> LowerIter<'a> {
        self.iter()
    }
}

/// An iterator over [`Lowers`].
#[derive(Clone)]
pub(crate) struct LowerIter<'a> {
    cur: core::slice::Iter<'a, RealEntry>,
    next: Option<&'a LowerTail>,
}

impl<'a> Iterator for LowerIter<'a> {
    type Item = &'a RealEntry;

    fn next(&mut self) -> Option<&'a RealEntry> {
        loop {
            if let Some(e) = self.cur.next() {
                return Some(e);
            }
            let tail = self.next.take()?;
            self.cur = tail.entries.iter();
            self.next = tail.more.as_ref().map(|t| &**t);
        }
    }
}

/// Per-inode data: the real objects, top layer first. A non-directory shows its top one; a
/// directory merges them (down to an opaque one).
///
/// The upper object is set once, when the object is created on the upper layer or copied up
/// (under `copy_up_lock`); the lower ones never change, but a directory's stack may grow at
/// its bottom when layers are added to the live mount (see `crate::layers`). After a copy-up
/// they stay, so that the object keeps its inode number as with overlayfs.
#[pin_data]
pub(crate) struct UnionInode {
    upper: SetOnce<RealEntry>,
    lower: LowerStack,
    /// How many layers the union had when the stack was made (or last caught up).
    layers_seen: AtomicUsize,
    /// Serializes catching the stack up with new layers.
    #[pin]
    catch_up_lock: Mutex<()>,
    /// Serializes copy-ups of this object (held for a whole copy: its waiters can be
    /// interrupted).
    #[pin]
    pub(crate) copy_up_lock: InterruptibleLock,
    /// The merged listing of a merged directory, built on first open, and the generation of
    /// the directory's entries it was built from (bumped by every change).
    #[pin]
    dir_cache: Mutex<(u64, Option<Arc<MergedDir>>)>,
    /// The inode is known by its first lower object (overlayfs' `OVL_CONST_INO`): its number
    /// is that object's, and `stat` keeps showing it after a copy-up.
    lower_numbered: bool,
    /// The upper directory is marked "impure" (`overlay.impure`): it may hold entries copied
    /// up or moved in, whose listed numbers must be looked up.
    impure: AtomicBool,
    /// The upper object is the object's index entry (overlayfs' `OVL_INDEX`): the names of a
    /// lower hard link are linked to it one by one.
    indexed: AtomicBool,
    /// The union's link count of an indexed object (its names the union shows).
    union_nlink: AtomicU32,
    /// This is the union's root.
    root: AtomicBool,
    /// Where the data of a metacopy file is in the data-only layers (an absolute path), and
    /// the file found there on first use (overlayfs' `lowerdata_redirect` and lazy
    /// `lowerdata`).
    lowerdata_redirect: Option<KVec<u8>>,
    lazy_data: SetOnce<RealEntry>,
    /// The data was checked against the metacopy file's fs-verity digest (overlayfs'
    /// `OVL_VERIFIED_DIGEST`).
    verity_checked: AtomicBool,
    /// The upper object holds the data (overlayfs' `OVL_UPPERDATA`): false for a metadata-only
    /// copy (`overlay.metacopy`), whose data is still the lower data object's until the first
    /// open for write copies it up.
    upperdata: AtomicBool,
    /// Where the directory's lower directories are (overlayfs' `redirect`): the value of its
    /// upper directory's `overlay.redirect`, set by lookup and by renames.
    #[pin]
    redirect: Mutex<Option<KVec<u8>>>,
}

impl UnionInode {
    /// `stack` is top first; an entry on layer 0 of a union with an upper layer is the upper.
    /// `upper_metacopy` if the upper object is a metadata-only copy, `lowerdata_redirect`
    /// where its data is in the data-only layers.
    pub(crate) fn new(
        mut stack: KVec<RealEntry>,
        has_upper: bool,
        lower_numbered: bool,
        redirect: Option<KVec<u8>>,
        upper_metacopy: bool,
        lowerdata_redirect: Option<KVec<u8>>,
        layers_seen: usize,
    ) -> Result<Pin<KBox<Self>>> {
        let upper = SetOnce::new();
        if has_upper && stack.first().is_some_and(|e| e.layer == 0) {
            upper.populate(stack.remove(0).map_err(|_| EIO)?);
        }
        KBox::pin_init(
            pin_init!(Self {
                upper,
                lower: LowerStack {
                    found: stack,
                    more: SetOnce::new(),
                },
                layers_seen: AtomicUsize::new(layers_seen),
                catch_up_lock <- new_mutex!(()),
                copy_up_lock <- InterruptibleLock::new(
                    c"UnionInode::copy_up_lock",
                    kernel::static_lock_class!()
                ),
                dir_cache <- new_mutex!((0, None)),
                lower_numbered,
                impure: AtomicBool::new(false),
                indexed: AtomicBool::new(false),
                union_nlink: AtomicU32::new(0),
                root: AtomicBool::new(false),
                upperdata: AtomicBool::new(!upper_metacopy),
                verity_checked: AtomicBool::new(false),
                lowerdata_redirect,
                lazy_data: SetOnce::new(),
                redirect <- new_mutex!(redirect),
            }),
            GFP_KERNEL,
        )
    }

    /// The top-most real object: the one whose attributes and data the union shows.
    pub(crate) fn top(&self) -> Result<&RealEntry> {
        self.upper
            .as_ref()
            .or_else(|| self.lower().first())
            .ok_or(EIO)
    }

    /// Whether the object is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.top().is_ok_and(|t| t.dentry.is_dir())
    }

    /// The real object on the upper layer, if there is one yet.
    pub(crate) fn upper(&self) -> Option<&RealEntry> {
        self.upper.as_ref()
    }

    /// The real objects on lower layers, top first.
    pub(crate) fn lower(&self) -> Lowers<'_> {
        Lowers {
            found: &self.lower.found,
            more: self.lower.more.as_ref().map(|t| &**t),
        }
    }

    /// How many layers the union had when the stack was made or last caught up.
    pub(crate) fn layers_seen(&self) -> usize {
        self.layers_seen.load(Ordering::Acquire)
    }

    /// Notes that the stack will not be caught up with the union's first `count` layers (the
    /// object has no name to look up again).
    pub(crate) fn mark_caught_up(&self, count: usize) {
        let _guard = self.catch_up_lock.lock();
        self.layers_seen.fetch_max(count, Ordering::AcqRel);
    }

    /// Catches the stack up with the union's first `count` layers: `stack` is what a lookup
    /// over them found (top first; its first entry is the upper object if `has_upper` and it
    /// is on layer 0). If its lower objects start with those the inode has (and its upper
    /// object, if both have one, is the inode's), the rest are appended (and the merged
    /// listing is forgotten). If not, the inode keeps its stack and `false` is returned: the
    /// lookup raced with a change (a copy-up, a rename) or a layer changed under the union,
    /// and the catch-up is tried again next time.
    pub(crate) fn catch_up(
        &self,
        stack: &[RealEntry],
        has_upper: bool,
        count: usize,
    ) -> Result<bool> {
        let _guard = self.catch_up_lock.lock();
        if self.layers_seen() >= count {
            return Ok(true);
        }
        let same = |a: &RealEntry, b: &RealEntry| {
            a.layer == b.layer && core::ptr::eq(a.dentry.as_ptr(), b.dentry.as_ptr())
        };
        let (new_upper, new_lower) = match stack.split_first() {
            Some((u, rest)) if has_upper && u.layer == 0 => (Some(u), rest),
            _ => (None, stack),
        };
        let upper_same = match (new_upper, self.upper()) {
            (Some(n), Some(o)) => same(n, o),
            _ => true,
        };
        let mut new = new_lower.iter();
        let prefix = upper_same
            && self
                .lower()
                .into_iter()
                .all(|old| new.next().is_some_and(|n| same(n, old)));
        if !prefix {
            return Ok(false);
        }
        let rest = new.as_slice();
        if !rest.is_empty() {
            let mut entries = KVec::with_capacity(rest.len(), GFP_KERNEL)?;
            for e in rest {
                entries.push(
                    RealEntry {
                        layer: e.layer,
                        dentry: e.dentry.clone(),
                    },
                    GFP_KERNEL,
                )?;
            }
            let tail = KBox::new(
                LowerTail {
                    entries,
                    more: SetOnce::new(),
                },
                GFP_KERNEL,
            )?;
            // Appended at the end of the chain (we are its only writer).
            let mut last = &self.lower.more;
            while let Some(t) = last.as_ref() {
                last = &t.more;
            }
            last.populate(tail);
            self.invalidate_listing();
        }
        self.layers_seen.store(count, Ordering::Release);
        Ok(true)
    }

    /// Whether the upper object (if any) holds the data; see `upperdata`.
    pub(crate) fn has_upperdata(&self) -> bool {
        // Pairs with `set_upperdata`: the copied data is visible once this is.
        self.upperdata.load(Ordering::Acquire)
    }

    /// Notes that the upper object holds the data now (its `overlay.metacopy` is gone).
    pub(crate) fn set_upperdata(&self) {
        self.upperdata.store(true, Ordering::Release);
    }

    /// Whether the data was checked against the recorded fs-verity digest.
    pub(crate) fn verity_checked(&self) -> bool {
        self.verity_checked.load(Ordering::Acquire)
    }

    /// Notes that the data matches the recorded fs-verity digest.
    pub(crate) fn set_verity_checked(&self) {
        self.verity_checked.store(true, Ordering::Release);
    }

    /// Notes that the upper object about to be published is a metadata-only copy.
    pub(crate) fn clear_upperdata(&self) {
        self.upperdata.store(false, Ordering::Release);
    }

    /// Whether the object shows another object's data (overlayfs' `ovl_is_metacopy_dentry`):
    /// a metadata-only upper copy, or a lower metacopy file over the lower file with its data.
    pub(crate) fn is_metacopy(&self) -> bool {
        if !self.top().is_ok_and(|t| t.dentry.is_reg()) {
            return false;
        }
        match self.upper() {
            Some(_) => !self.has_upperdata(),
            None => self.lower.found.len() > 1 || self.lowerdata_redirect.is_some(),
        }
    }

    /// The real object whose data the union shows (overlayfs' `ovl_path_realdata`): the upper
    /// one if it holds the data, else the lower one with the data (`EIO` if that one is in a
    /// data-only layer and was not looked up yet: see `UnionFs::verify_lowerdata`).
    pub(crate) fn data_entry(&self) -> Result<&RealEntry> {
        match self.upper() {
            Some(u) if self.has_upperdata() => Ok(u),
            None if self.lower().is_empty() => Err(EIO),
            u => match self.lowerdata_redirect {
                Some(_) => self.lazy_data.as_ref().ok_or(EIO),
                None => self.lower().last().or(u).ok_or(EIO),
            },
        }
    }

    /// The lower object with the data (overlayfs' `ovl_path_lowerdata`): the last lower one,
    /// or the one in a data-only layer once looked up.
    pub(crate) fn lower_data(&self) -> Option<&RealEntry> {
        match self.lowerdata_redirect {
            Some(_) => self.lazy_data.as_ref(),
            None => self.lower().last(),
        }
    }

    /// Where the data is in the data-only layers, if it is there.
    pub(crate) fn lowerdata_redirect(&self) -> Option<&[u8]> {
        self.lowerdata_redirect.as_deref()
    }

    /// Records the data object found in a data-only layer (caller holds `copy_up_lock`).
    pub(crate) fn set_lower_data(&self, e: RealEntry) {
        self.lazy_data.populate(e);
    }

    /// The first lower object whose number the inode shows (see `lower_numbered`).
    fn numbered_by(&self) -> Option<&RealEntry> {
        self.lower().first().filter(|_| self.lower_numbered)
    }

    /// Whether the object is on the upper layer and known by a lower one (overlayfs'
    /// `OVL_TYPE_ORIGIN`): it shows that one's number.
    pub(crate) fn has_origin(&self) -> bool {
        self.upper.as_ref().is_some() && self.numbered_by().is_some()
    }

    /// Whether the directory is marked "impure".
    pub(crate) fn is_impure(&self) -> bool {
        self.impure.load(Ordering::Relaxed)
    }

    /// Notes that the directory is marked "impure".
    pub(crate) fn set_impure(&self) {
        self.impure.store(true, Ordering::Relaxed);
    }

    /// The directory's redirect, if it has one.
    pub(crate) fn redirect(&self) -> Result<Option<KVec<u8>>> {
        match &*self.redirect.lock() {
            Some(r) => {
                let mut copy = KVec::with_capacity(r.len(), GFP_KERNEL)?;
                copy.extend_from_slice(r, GFP_KERNEL)?;
                Ok(Some(copy))
            }
            None => Ok(None),
        }
    }

    /// Records the directory's new redirect (set on its upper directory).
    pub(crate) fn set_redirect(&self, redirect: KVec<u8>) {
        *self.redirect.lock() = Some(redirect);
    }

    /// Whether this is the union's root.
    pub(crate) fn is_root(&self) -> bool {
        self.root.load(Ordering::Relaxed)
    }

    /// Notes that this is the union's root (before anyone else sees it).
    pub(crate) fn set_root(&self) {
        self.root.store(true, Ordering::Relaxed);
    }

    /// Whether the upper object is the object's index entry.
    pub(crate) fn is_indexed(&self) -> bool {
        self.indexed.load(Ordering::Relaxed)
    }

    /// Notes that the upper object is the object's index entry.
    pub(crate) fn set_indexed(&self) {
        self.indexed.store(true, Ordering::Relaxed);
    }

    /// The union's link count (of an indexed object).
    pub(crate) fn union_nlink(&self) -> u32 {
        self.union_nlink.load(Ordering::Relaxed)
    }

    pub(crate) fn set_union_nlink(&self, n: u32) {
        self.union_nlink.store(n, Ordering::Relaxed);
    }

    /// One name more (`true`) or less (`false`) of the object.
    pub(crate) fn change_union_nlink(&self, more: bool) {
        let _ = self
            .union_nlink
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(if more {
                    n.saturating_add(1)
                } else {
                    n.saturating_sub(1)
                })
            });
    }

    /// Notes that the directory is not marked "impure" any more.
    pub(crate) fn clear_impure(&self) {
        self.impure.store(false, Ordering::Relaxed);
    }

    /// Records the upper object made by a copy-up (caller holds `copy_up_lock`).
    pub(crate) fn set_upper(&self, e: RealEntry) {
        self.upper.populate(e);
    }

    /// The real objects a directory merges, top first; for a non-directory, the top one and
    /// the lower ones it hides.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &RealEntry> {
        Iterator::chain(self.upper.as_ref().into_iter(), self.lower())
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

/// `real_ino` of filesystem `fsid` with the filesystem's number in the top `bits` bits, as
/// overlayfs' `xino` lays numbers out: the number starts one bit above `64 - bits`, and the bit
/// at `64 - bits` is left for numbers the union makes up. `None` if `real_ino` does not fit
/// below them (or `bits` is 0).
pub(crate) fn xino_number(real_ino: u64, fsid: usize, bits: u32) -> Option<u64> {
    let shift = 64u32.checked_sub(bits).filter(|&s| s < 64)?;
    if real_ino >> shift != 0 {
        return None;
    }
    Some(real_ino | (fsid as u64).checked_shl(shift + 1).unwrap_or(0))
}

/// A number made up for a directory (`n` from the union's counter): with `xino`, in the range
/// real numbers never take (the bit at `64 - bits` set, no filesystem number).
pub(crate) fn made_up_number(n: u64, bits: u32) -> u64 {
    match 64u32.checked_sub(bits).filter(|&s| s < 64) {
        Some(shift) => (n & (u64::MAX >> bits)) | (1 << shift),
        None => n,
    }
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

    /// The filesystem number (`fsid`) of layer `layer`.
    pub(crate) fn fsid_of(&self, layer: usize) -> usize {
        self.layers.get(layer).map_or(0, |l| l.fsid)
    }

    /// Whether every object shows the union's own `st_dev` (all layers on one filesystem, or
    /// `xino` in effect).
    pub(crate) fn same_dev(&self) -> bool {
        self.same_fs || self.xino_bits > 0
    }

    /// The inode number of a new union inode known by real inode `real_ino` of layer `layer`
    /// (overlayfs' `ovl_map_ino`): the real number with all layers on one filesystem (real
    /// numbers are unique then), with the filesystem's number in the high bits with `xino`;
    /// otherwise a non-directory keeps its real number (its `st_dev` tells the filesystems
    /// apart) and a directory, which shows the union's `st_dev`, gets a made-up one that is
    /// unique while the union is mounted.
    pub(crate) fn inode_number(&self, layer: usize, real_ino: u64, is_dir: bool) -> u64 {
        if self.same_fs {
            return real_ino;
        }
        if let Some(n) = xino_number(real_ino, self.fsid_of(layer), self.xino_bits) {
            return n;
        }
        if !is_dir {
            return real_ino;
        }
        let mut n = self
            .last_ino
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if n == 0 {
            n = self
                .last_ino
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
        }
        made_up_number(n, self.xino_bits)
    }

    /// The `d_ino` of an entry read from layer `layer` (overlayfs' `ovl_remap_lower_ino`): with
    /// `xino`, the real number with the filesystem's in the high bits; else the real number.
    pub(crate) fn entry_number(&self, layer: usize, real_ino: u64) -> u64 {
        xino_number(real_ino, self.fsid_of(layer), self.xino_bits).unwrap_or(real_ino)
    }

    /// Finds or makes the union inode for `stack`, so that every path to the same object
    /// gives the same inode: hashed by the first lower object when there is one (it stays
    /// the same across a copy-up), else by the upper object. As in overlayfs, a lower hard
    /// link in a writable union without the index gets an inode of its own: a copy-up breaks
    /// the link.
    pub(crate) fn get_inode(
        &self,
        sb: &crate::vfs::SuperBlock<UnionFs>,
        stack: KVec<RealEntry>,
    ) -> Result<ARef<Inode>> {
        self.get_inode_of(sb, stack, false, None, false, None, self.layers.len())
    }

    /// [`Self::get_inode`] for a stack that lookup found, `indexed` if its upper object is an
    /// index entry: all names of a lower hard link then share the inode; the upper object's
    /// `redirect`; `upper_metacopy` if the upper object is a metadata-only copy;
    /// `lowerdata_redirect` where its data is in the data-only layers; `layers_seen` how many
    /// layers the union had when the lookup started.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn get_inode_of(
        &self,
        sb: &crate::vfs::SuperBlock<UnionFs>,
        stack: KVec<RealEntry>,
        indexed: bool,
        redirect: Option<KVec<u8>>,
        upper_metacopy: bool,
        lowerdata_redirect: Option<KVec<u8>>,
        layers_seen: usize,
    ) -> Result<ARef<Inode>> {
        let top = stack.first().ok_or(EIO)?;
        let real_d = top.dentry.clone();
        let real = real_d.inode().ok_or(ENOENT)?;
        let has_upper = self.has_upper();
        let top_is_upper = has_upper && top.layer == 0;
        let first_lower = stack
            .iter()
            .find(|e| !(has_upper && e.layer == 0))
            .map(|e| (e.dentry.clone(), e.layer));
        let (key_d, key_layer) = first_lower
            .as_ref()
            .map_or((&real_d, top.layer), |(d, l)| (d, *l));
        let key_inode = key_d.inode().ok_or(ENOENT)?;
        // A lower hard link whose copy-up breaks (or broke) the link (overlayfs'
        // `ovl_hash_bylower`).
        // With `nfs_export`, a copy made without the index (before the option was on) is
        // known by its upper object: its handle names that one (overlayfs'
        // `ovl_hash_bylower`).
        let by_upper = self.nfs_export && top_is_upper && first_lower.is_some() && !indexed;
        let broken_link = !by_upper
            && has_upper
            && first_lower.is_some()
            && !real.is_dir()
            && key_inode.nlink() > 1
            && !indexed
            && (top_is_upper || !self.index);
        // Numbered as it is known: by its first lower object, or (a lower hard link that a
        // copy-up will break, an upper-only object) by its top one.
        // The owner as the top object's layer mount shows it.
        let idmap = self.layers.get(top.layer).ok_or(EIO)?.mnt.id_map();
        let lower_numbered = first_lower.is_some() && !broken_link && !by_upper;
        let (top_layer, is_dir) = (top.layer, real.is_dir());
        // The union's link count: the stored one of an object both upper and lower.
        let nlink = match (&first_lower, top_is_upper && !is_dir && self.index) {
            (Some((lower, _)), true) => {
                self.with_mounter(|m| self.stored_nlink(m, lower, &real_d, real.nlink()))
            }
            _ => real.nlink(),
        };
        let data = UnionInode::new(
            stack,
            has_upper,
            lower_numbered,
            redirect,
            upper_metacopy,
            lowerdata_redirect,
            layers_seen,
        )?;
        data.set_union_nlink(nlink);
        if indexed {
            data.set_indexed();
        }
        if is_dir && data.upper().is_some() && self.with_mounter(|m| self.is_impure_dir(m, &real_d))
        {
            data.set_impure();
        }
        // A lower hard link not copied up yet gets an inode per name (the copy-up breaks the
        // link); once on the upper layer, it is known by its upper object, which its upper
        // names share (overlayfs' `ovl_get_inode`).
        if broken_link && !top_is_upper {
            let ino = self.inode_number(top_layer, real.ino(), false);
            return sb.new_unhashed_inode(ino, real, idmap, data);
        }
        let (key_layer, key_inode) = match by_upper || broken_link {
            true => (top_layer, real),
            false => (key_layer, key_inode),
        };
        // Only a new inode takes a number (a made-up one is used up then).
        let ino = || self.inode_number(key_layer, key_inode.ino(), is_dir);
        sb.get_inode(key_inode.as_ptr() as usize, ino, real, idmap, data)
    }
}

/// The real object behind `inode`: its metadata (and, but for a metacopy file, its data).
pub(crate) fn real_path(inode: &FsInode<UnionFs>) -> Result<RealPath<'_>> {
    inode.sb().info().real_path(inode.data()?.top()?)
}

/// The real object whose data `inode` shows (see [`UnionInode::data_entry`]).
pub(crate) fn real_data_path(inode: &FsInode<UnionFs>) -> Result<RealPath<'_>> {
    inode.sb().info().real_path(inode.data()?.data_entry()?)
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

/// The real object's attributes, with the device and inode numbers overlayfs gives (its
/// `ovl_getattr` and `ovl_map_dev_ino`), and one link for a merged directory (counting
/// subdirectories across layers is not worth it; `find` accepts 1, as with overlayfs).
///
/// The number is the real object's, or, for an object known by a lower one and copied up
/// while mounted (every merged directory among them), the lower one's (only a directory, or a
/// file that is not a hard link there: the copy broke the link). It shows the union's device
/// when all layers are on one filesystem, or with the filesystem's number in its high bits
/// (`xino`); otherwise a directory shows its union inode's number and a non-directory the
/// pseudo-device of its filesystem.
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
        let (dev, ino) = shown_number(fs, m, inode, stat.ino())?;
        match dev {
            ShownDev::Union => stat.set_dev_of(inode.sb()),
            ShownDev::Pseudo(fsid) => stat.set_dev(fs.pseudo_devs.get(fsid).map_or(0, |d| d.dev())),
        }
        stat.set_ino(ino);
        // A metacopy file's blocks are its data's (overlayfs' `metacopy_blocks`); guessed
        // from its size while its data in a data-only layer was not looked up.
        if data.is_metacopy() {
            match data.lower_data() {
                Some(lower) => {
                    let path = fs.real_path(lower)?;
                    stat.set_blocks(path.mnt.stat(m, path.dentry)?.blocks());
                }
                None => stat.set_blocks(stat.size_in_blocks()),
            }
        }
        if inode.inode().is_dir() && data.is_merged() {
            stat.set_nlink(1);
        } else if data.is_indexed() {
            // The names the union shows, not the real inode's (which counts the index's).
            stat.set_nlink(data.union_nlink());
        }
        Ok(())
    })
}

/// Which device `stat` shows an object on.
enum ShownDev {
    /// The union's own.
    Union,
    /// The pseudo-device of the filesystem with this `fsid`.
    Pseudo(usize),
}

/// The device and inode number `stat` shows for `inode`, whose top real object has number
/// `real_ino` (see [`getattr`]).
fn shown_number(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    inode: &FsInode<UnionFs>,
    real_ino: u64,
) -> Result<(ShownDev, u64)> {
    let data = inode.data()?;
    let is_dir = inode.inode().is_dir();
    let top = data.top()?;
    let mut fsid = 0;
    let mut ino = real_ino;
    if !is_dir || fs.same_dev() {
        if data.upper().is_none() {
            fsid = fs.fsid_of(top.layer);
        } else if let Some(origin) = data.numbered_by() {
            let path = fs.real_path(origin)?;
            let lst = path.mnt.stat(m, path.dentry)?;
            if is_dir || lst.nlink() == 1 || data.is_indexed() {
                fsid = fs.fsid_of(origin.layer);
                ino = lst.ino();
            }
        }
    }
    if fs.same_fs {
        return Ok((ShownDev::Union, ino));
    }
    if let Some(n) = xino_number(ino, fsid, fs.xino_bits) {
        return Ok((ShownDev::Union, n));
    }
    if fs.xino == crate::params::Xino::On {
        crate::vfs::warn_ratelimited(fmt!(
            "unionrs: inode number too big (ino={}, xinobits={})",
            ino,
            fs.xino_bits
        ));
    }
    if is_dir {
        Ok((ShownDev::Union, inode.inode().ino()))
    } else {
        Ok((ShownDev::Pseudo(fsid), ino))
    }
}

/// The inode number `stat` shows for `inode` (listings number some entries so).
pub(crate) fn st_ino(fs: &UnionFs, m: &AsMounter<'_>, inode: &FsInode<UnionFs>) -> Result<u64> {
    let real = real_path(inode)?;
    let st = real.mnt.stat(m, real.dentry)?;
    Ok(shown_number(fs, m, inode, st.ino())?.1)
}

/// A change of attributes, on the upper copy (data included for a size change, as for any
/// copy-up).
pub(crate) fn setattr(dentry: &Dentry, attr: &mut Iattr) -> Result {
    let (sb, inode) = union_inode(dentry)?;
    let fs = sb.info();
    // Only a change of size needs the data (with metacopy, the rest copies metadata only).
    if attr.valid() & bindings::ATTR_SIZE != 0 {
        copy_up_with_data(sb, dentry)?;
    } else {
        copy_up(sb, dentry)?;
    }
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

    /// The extents of the real file with the data, from its own filesystem.
    fn fiemap(inode: &FsInode<Self>, info: &mut Fiemap<'_>, start: u64, len: u64) -> Result {
        let fs = inode.sb().info();
        let real = real_data_path(inode)?.dentry.inode().ok_or(ENOENT)?;
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

    /// overlayfs' layout with 2 bits (an upper and one other filesystem): the filesystem
    /// number at bit 63, bit 62 for made-up numbers.
    #[test]
    fn xino_two_bits() {
        assert_eq!(xino_number(5, 0, 2), Some(5));
        assert_eq!(xino_number(5, 1, 2), Some((1 << 63) | 5));
        assert_eq!(xino_number(1 << 62, 1, 2), None);
        assert_eq!(made_up_number(7, 2), (1 << 62) | 7);
    }

    /// 32-bit inode numbers: the filesystem's number from bit 33 on.
    #[test]
    fn xino_ino32() {
        assert_eq!(
            xino_number(u64::from(u32::MAX), 3, 32),
            Some((3 << 33) | 0xffff_ffff)
        );
        assert_eq!(xino_number(1 << 32, 3, 32), None);
        assert_eq!(made_up_number(9, 32), (1 << 32) | 9);
    }

    /// Without xino nothing is mapped, and made-up numbers are the counter's.
    #[test]
    fn xino_off() {
        assert_eq!(xino_number(5, 1, 0), None);
        assert_eq!(made_up_number(9, 0), 9);
    }

    /// The most filesystems a union may have (an upper and 500 lowers) get distinct numbers
    /// for the same real number.
    #[test]
    fn xino_distinct_for_501_filesystems() {
        let bits = usize::BITS - 500usize.leading_zeros() + 1;
        let mut seen = KVec::new();
        for fsid in 0..501 {
            let ino = xino_number(2, fsid, bits);
            assert!(ino.is_some() && !seen.contains(&ino));
            assert!(seen.push(ino, GFP_KERNEL).is_ok());
        }
    }
}
