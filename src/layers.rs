// SPDX-License-Identifier: GPL-2.0

//! The layers of a mounted union, and lower layers added to it while it is mounted
//! (`mount -o remount,lowerdir+=DIR`, aufs' "append").
//!
//! The stack only grows, at its bottom, and a layer is never moved or dropped before the
//! union: every `&Layer` taken stays valid, and a reader sees the prefix of the stack that was
//! published when it loaded the length. What the union had cached about the layers is caught
//! up lazily: a negative dentry looked up with fewer layers is looked up again, and a merged
//! directory's stack of real directories is extended in place (see [`UnionFs::refresh_dir`]),
//! so that open files and working directories keep working.

use crate::inode::RealEntry;
use crate::params::{LayerSpec, MAX_LOWER_LAYERS};
use crate::superblock::{
    check_casefold, check_overlap, Layer, LayerKind, UnionFs, LOWER_MOUNT_FLAGS,
};
use crate::vfs::{show, Dentry, FhSupport, FsContext, LayerMount, SuperBlock};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;
use kernel::sync::SetOnce;

/// The layers of a union, upper first: those given at mount, then those added since.
///
/// # Invariants
///
/// `len` is at least `mounted.len()`, and every slot of `added` below `len - mounted.len()` is
/// populated; slots are populated in order and never emptied.
pub(crate) struct LayerStack {
    mounted: KVec<Layer>,
    /// Room for the layers added to the live mount, made at the first addition.
    added: SetOnce<KVVec<SetOnce<Layer>>>,
    /// How many layers are published (release: a reader that sees it sees the layers).
    len: AtomicUsize,
}

impl LayerStack {
    pub(crate) fn new(mounted: KVec<Layer>) -> Self {
        Self {
            len: AtomicUsize::new(mounted.len()),
            mounted,
            added: SetOnce::new(),
        }
    }

    /// How many layers are published now. Layers only come, so an index below it stays
    /// valid.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The layers given at mount.
    pub(crate) fn mounted(&self) -> usize {
        self.mounted.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Layer> {
        if let Some(l) = self.mounted.get(i) {
            return Some(l);
        }
        if i >= self.len() {
            return None;
        }
        self.added.as_ref()?.get(i - self.mounted.len())?.as_ref()
    }

    pub(crate) fn first(&self) -> Option<&Layer> {
        self.get(0)
    }

    pub(crate) fn last(&self) -> Option<&Layer> {
        self.get(self.len().checked_sub(1)?)
    }

    /// The layers published when it is called, upper first.
    pub(crate) fn iter(&self) -> LayerIter<'_> {
        LayerIter {
            stack: self,
            front: 0,
            back: self.len(),
        }
    }

    /// The layers added to the live mount, top first.
    pub(crate) fn added(&self) -> LayerIter<'_> {
        LayerIter {
            stack: self,
            front: self.mounted.len(),
            back: self.len(),
        }
    }

    /// Publishes `layer` below the others. Callers are serialized (the superblock's
    /// `s_umount`, held by a remount); `capacity` is how many layers may ever be added.
    fn push(&self, layer: Layer, capacity: usize) -> Result {
        if self.added.as_ref().is_none() {
            let mut slots = KVVec::with_capacity(capacity, GFP_KERNEL)?;
            for _ in 0..capacity {
                slots.push(SetOnce::new(), GFP_KERNEL)?;
            }
            // Only remounts populate it, one at a time: this one wins.
            self.added.populate(slots);
        }
        let len = self.len();
        let slot = self
            .added
            .as_ref()
            .and_then(|a| a.get(len - self.mounted.len()))
            .ok_or(EINVAL)?;
        if !slot.populate(layer) {
            return Err(EBUSY);
        }
        // Pairs with the acquire in `len`: whoever sees the new length sees the layer.
        self.len.store(len + 1, Ordering::Release);
        Ok(())
    }
}

/// An iterator over a prefix of a [`LayerStack`].
pub(crate) struct LayerIter<'a> {
    stack: &'a LayerStack,
    front: usize,
    back: usize,
}

impl<'a> Iterator for LayerIter<'a> {
    type Item = &'a Layer;

    fn next(&mut self) -> Option<&'a Layer> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        self.stack.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back.saturating_sub(self.front);
        (n, Some(n))
    }
}

impl DoubleEndedIterator for LayerIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.stack.get(self.back)
    }
}

impl ExactSizeIterator for LayerIter<'_> {}

impl UnionFs {
    /// Adds `specs` below the lower layers of the mounted union (`lowerdir+=` on remount), or
    /// refuses with a clear message what cannot be done while it is mounted. All are checked
    /// before any is published.
    pub(crate) fn add_lower_layers(&self, fc: &FsContext, specs: KVec<LayerSpec>) -> Result {
        let refuse = |what: &str| {
            Err(fc.fail(
                EINVAL,
                fmt!("lowerdir+: cannot add a layer to a mounted union {what}"),
            ))
        };
        let mut new = KVec::with_capacity(specs.len(), GFP_KERNEL)?;
        for spec in specs {
            // The same directory given again by a remount(2) that repeats the mount's
            // options, as mount(8) does with fstab's: nothing to add.
            let again = self.layers.iter().any(|l| {
                l.kind == LayerKind::Lower
                    && spec.path.dentry().as_ptr() == l.spec.path.dentry().as_ptr()
            });
            if !(again && fc.is_legacy_mount()) {
                new.push(spec, GFP_KERNEL)?;
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        if self.has_data_layers() {
            return refuse("with data-only layers (they must stay below the others)");
        }
        if self.index || self.nfs_export {
            // Index entries and stored file handles name lower objects by filesystem and
            // position, which a new layer would have to be checked for at mount.
            return refuse("with index=on or nfs_export=on");
        }
        let lowers = self.layers.iter().filter(|l| l.kind.is_lower()).count();
        if lowers + new.len() > MAX_LOWER_LAYERS {
            return Err(fc.fail(
                EINVAL,
                fmt!("too many lower directories, the limit is {MAX_LOWER_LAYERS}"),
            ));
        }
        let mut all = KVec::with_capacity(self.layers.len() + new.len() + 1, GFP_KERNEL)?;
        for l in self.layers.iter() {
            all.push((&l.spec, l.kind), GFP_KERNEL)?;
        }
        if let Some(w) = &self.work {
            all.push((w, LayerKind::Work), GFP_KERNEL)?;
        }
        for spec in new.iter() {
            all.push((spec, LayerKind::Lower), GFP_KERNEL)?;
        }
        check_overlap(fc, &all)?;
        check_casefold(fc, &all)?;
        drop(all);
        let encodes_fids = self
            .layers
            .iter()
            .all(|l| l.mnt.fh_support() != FhSupport::None);
        let mut ready = KVec::with_capacity(new.len(), GFP_KERNEL)?;
        for spec in new {
            if spec.path.stack_depth() >= self.stack_depth {
                return Err(fc.fail(
                    EINVAL,
                    fmt!(
                        "lowerdir+: '{}' is stacked deeper than the union's layers were",
                        show(&spec.name)
                    ),
                ));
            }
            let mnt = LayerMount::clone_private(&spec.path, LOWER_MOUNT_FLAGS).map_err(|e| {
                fc.fail(
                    e,
                    fmt!(
                        "lowerdir+: cannot clone the mount of '{}'",
                        show(&spec.name)
                    ),
                )
            })?;
            // Inode numbers and devices were chosen at mount for the filesystems known then
            // (the upper layer's counts: lower layers on it share its number).
            let fsid = self
                .layers
                .iter()
                .find(|l| l.kind != LayerKind::Data && l.mnt.sb_ptr() == mnt.sb_ptr())
                .map(|l| l.fsid);
            let Some(fsid) = fsid else {
                return Err(fc.fail(
                    EXDEV,
                    fmt!(
                        "lowerdir+: '{}' is not on a filesystem of the union's layers (only a new mount can add one)",
                        show(&spec.name)
                    ),
                ));
            };
            // The union gives file handles (for fanotify) if all its layers can.
            if encodes_fids && mnt.fh_support() == FhSupport::None {
                return Err(fc.fail(
                    EINVAL,
                    fmt!(
                        "lowerdir+: '{}' does not support file handles, the union's layers do",
                        show(&spec.name)
                    ),
                ));
            }
            let layer = Layer {
                spec,
                kind: LayerKind::Lower,
                mnt,
                fsid,
            };
            ready.push(layer, GFP_KERNEL)?;
        }
        let capacity = MAX_LOWER_LAYERS.saturating_sub(lowers - self.added_count());
        for layer in ready {
            let name = CString::try_from(&*layer.spec.name)?;
            self.layers.push(layer, capacity)?;
            fc.info(fmt!("lowerdir+: layer '{}' added", show(&name)));
        }
        Ok(())
    }

    /// How many layers were added to the live mount.
    pub(crate) fn added_count(&self) -> usize {
        self.layers.len() - self.layers.mounted()
    }

    /// Catches directory `d` of the union (and the directories above it) up with layers added
    /// since its stack was made: the lookup that made it is done again, and the real
    /// directories it finds in the new layers are appended to the stack, whose earlier part
    /// stays as it was (objects cached from it stay valid). A directory whose new lookup does
    /// not start with its old stack (a layer changed under the union) keeps its stack.
    pub(crate) fn refresh_dir(&self, d: &Dentry) -> Result {
        let count = self.layers.len();
        if self.added_count() == 0 {
            return Ok(());
        }
        // The stale directories from `d` up, refreshed from the top down: a directory's
        // lookup runs in its parent's stack.
        let mut chain: KVec<ARef<Dentry>> = KVec::new();
        let mut cur: ARef<Dentry> = d.into();
        while let Some(inode) = cur.inode().and_then(SuperBlock::<UnionFs>::our_inode) {
            let data = inode.data()?;
            if !data.is_dir() || data.layers_seen() >= count {
                break;
            }
            let top = cur.is_root();
            chain.push(cur.clone(), GFP_KERNEL)?;
            if top {
                break;
            }
            cur = cur.parent();
        }
        for x in chain.iter().rev() {
            self.catch_up_dir(x, count)?;
        }
        Ok(())
    }

    fn catch_up_dir(&self, d: &Dentry, count: usize) -> Result {
        let data = d
            .inode()
            .and_then(SuperBlock::<UnionFs>::our_inode)
            .ok_or(EIO)?
            .data()?;
        if data.layers_seen() >= count {
            return Ok(());
        }
        let stack = if data.is_root() {
            // Layer roots always merge.
            let mut stack = KVec::new();
            for (i, l) in self.layers.iter().enumerate().take(count) {
                if l.kind != LayerKind::Data {
                    stack.push(
                        RealEntry {
                            layer: i,
                            dentry: l.spec.path.dentry().into(),
                        },
                        GFP_KERNEL,
                    )?;
                }
            }
            stack
        } else if d.is_root() || d.is_unhashed() {
            // Disconnected or removed: no name to look up again.
            data.mark_caught_up(count);
            return Ok(());
        } else {
            let parent = d.parent();
            let pdata = parent
                .inode()
                .and_then(SuperBlock::<UnionFs>::our_inode)
                .ok_or(EIO)?
                .data()?;
            let name = d.name_copy()?;
            let stack = self
                .with_mounter(|m| self.lookup_stack(m, pdata, &name))?
                .stack;
            // Renamed meanwhile: what was found may be another object's; tried again later.
            if !core::ptr::eq(d.parent().as_ptr(), parent.as_ptr()) || d.name_copy()? != name {
                return Ok(());
            }
            stack
        };
        if !data.catch_up(&stack, self.has_upper(), count)? {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: '{}' changed while layers were added; their directories are merged on a later access",
                kernel::str::BStr::from_bytes(&d.name_copy().unwrap_or_default())
            ));
        }
        Ok(())
    }
}
