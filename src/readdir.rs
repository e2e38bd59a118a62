// SPDX-License-Identifier: GPL-2.0

//! Reading union directories.
//!
//! A directory that comes from one layer is read straight from that layer, with the real
//! filesystem's positions. A merged directory is read from a listing built once per
//! directory inode: every layer's names, deduplicated (the top-most entry wins), without
//! whiteouts and the names they hide. Positions in it are plain indexes, so they stay stable
//! across `getdents64` calls, `telldir`/`seekdir` and `rewinddir`.

use crate::inode::{st_ino, RealEntry, UnionInode};
use crate::namei::{OCI_OPAQUE_MARKER, OCI_WHITEOUT_PREFIX};
use crate::superblock::UnionFs;
use crate::vfs::{AsMounter, Dentry, DirEmitter, FsInode, IteratedDir, RealFile, SuperBlock};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{Arc, SetOnce};

/// One entry of a merged listing; the name is `names[off..off + len]`.
struct Entry {
    off: usize,
    len: usize,
    /// The number the top layer that has the name lists.
    raw_ino: u64,
    /// The number listed is found by looking the name up through the union (see
    /// [`listed_number`]), on first need.
    look_up: bool,
    /// The number so found (`NOT_YET` before; `GONE` if the name has gone meanwhile, which
    /// hides it, as overlayfs does).
    found_ino: AtomicU64,
    d_type: u8,
}

const NOT_YET: u64 = 0;
const GONE: u64 = u64::MAX;

/// The merged listing of a directory.
/// Large directories need more than kmalloc can give: these vectors fall back to vmalloc.
pub(crate) struct MergedDir {
    names: KVVec<u8>,
    entries: KVVec<Entry>,
    /// The numbers of "." and ".." as the top layer lists them.
    dots: [u64; 2],
}

impl MergedDir {
    fn name(&self, e: &Entry) -> &[u8] {
        self.names.get(e.off..e.off + e.len).unwrap_or(&[])
    }
}

/// An open union directory.
pub(crate) enum DirState {
    /// A directory of one layer: read through.
    Single(SingleDir),
    /// A merged directory: read from the shared listing.
    Merged(Arc<MergedDir>),
}

/// An open directory of one layer.
pub(crate) struct SingleDir {
    file: RealFile,
    /// The directory was on the upper layer when it was opened.
    is_upper: bool,
    /// For an impure directory: the entries whose listed number is not the layer's, by name
    /// (sorted), found on first need.
    renumbered: SetOnce<KVec<(KVec<u8>, u64)>>,
}

const DT_DIR: u32 = bindings::DT_DIR;
const DT_CHR: u8 = bindings::DT_CHR as u8;
const DT_REG: u8 = bindings::DT_REG as u8;
const DT_UNKNOWN: u8 = bindings::DT_UNKNOWN as u8;
/// The type of an entry that stands for an OCI whiteout (BSD's whiteout type, which no Linux
/// filesystem lists).
const DT_WHT: u8 = bindings::DT_WHT as u8;

/// The top-most entry of a name, as read from its layer.
#[derive(Clone, Copy)]
struct RawEntry {
    off: usize,
    len: usize,
    /// Position of the layer in the directory's stack (0 = top).
    rank: usize,
    ino: u64,
    d_type: u8,
}

/// Every layer's names, deduplicated while they are read, top layer first: the first entry of a
/// name wins, and the listing keeps the order the names were read in (as overlayfs' does).
/// An open-addressing hash table finds a name in O(1), where sorting the whole listing afterwards
/// took O(n log n) name comparisons.
struct Dedup {
    names: KVVec<u8>,
    raw: KVVec<RawEntry>,
    /// Index + 1 into `raw` (0: empty). The length is 0 or a power of two, kept at least twice
    /// `raw.len()` so that probe sequences stay short.
    slots: KVVec<u32>,
}

impl Dedup {
    fn new() -> Self {
        Self {
            names: KVVec::new(),
            raw: KVVec::new(),
            slots: KVVec::new(),
        }
    }

    fn name_of<'a>(names: &'a [u8], r: &RawEntry) -> &'a [u8] {
        names.get(r.off..r.off + r.len).unwrap_or(&[])
    }

    /// FNV-1a: short names, cheap and well spread.
    fn hash(name: &[u8]) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in name {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h as usize
    }

    /// The slot holding `name`, or the empty slot where it would go, and its entry if present.
    /// `slots` must not be full.
    fn find(&self, name: &[u8]) -> (usize, Option<usize>) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut slot = Self::hash(name) & mask;
        loop {
            match self.slots.get(slot) {
                Some(&0) | None => return (slot, None),
                Some(&s) => {
                    let i = s as usize - 1;
                    if let Some(r) = self.raw.get(i) {
                        if Self::name_of(&self.names, r) == name {
                            return (slot, Some(i));
                        }
                    }
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Doubles the table and puts every entry back.
    fn grow(&mut self) -> Result {
        let len = (self.slots.len() * 2).max(256);
        self.slots = KVVec::from_elem(0u32, len, GFP_KERNEL)?;
        for i in 0..self.raw.len() {
            let Some(r) = self.raw.get(i) else { break };
            let (slot, _) = self.find(Self::name_of(&self.names, r));
            if let Some(s) = self.slots.get_mut(slot) {
                *s = u32::try_from(i + 1).map_err(|_| EOVERFLOW)?;
            }
        }
        Ok(())
    }

    /// Adds one entry of the layer at `rank`; layers must come top first.
    fn add(&mut self, name: &[u8], rank: usize, ino: u64, d_type: u8) -> Result {
        if (self.raw.len() + 1) * 2 > self.slots.len() {
            self.grow()?;
        }
        let (slot, found) = self.find(name);
        if let Some(i) = found {
            // An OCI whiteout hides the name in the layers below only: the same layer's own
            // entry of it (read in any order) is listed.
            if let Some(r) = self.raw.get_mut(i) {
                if r.rank == rank && r.d_type == DT_WHT && d_type != DT_WHT {
                    r.ino = ino;
                    r.d_type = d_type;
                }
            }
            // A lower entry of a name already listed: hidden.
            return Ok(());
        }
        let index = u32::try_from(self.raw.len() + 1).map_err(|_| EOVERFLOW)?;
        let off = self.names.len();
        self.names.extend_from_slice(name, GFP_KERNEL)?;
        self.raw.push(
            RawEntry {
                off,
                len: name.len(),
                rank,
                ino,
                d_type,
            },
            GFP_KERNEL,
        )?;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = index;
        }
        Ok(())
    }
}

fn build_merged(fs: &UnionFs, m: &AsMounter<'_>, dir: &UnionInode) -> Result<MergedDir> {
    // One view of the stack for the whole build: a copy-up of the directory meanwhile adds
    // an upper entry on top, which would shift every rank by one.
    let mut stack: KVec<&RealEntry> = KVec::new();
    for e in dir.entries() {
        stack.push(e, GFP_KERNEL)?;
    }
    let has_upper = dir
        .upper()
        .is_some_and(|u| stack.first().is_some_and(|e| core::ptr::eq(*e, u)));
    let mut seen = Dedup::new();
    let mut dots = [0u64; 2];
    let mut xwhiteouts = KVec::new();
    for (rank, e) in stack.iter().copied().enumerate() {
        let layer = fs.layers.get(e.layer).ok_or(EIO)?;
        xwhiteouts.push(fs.opaque_value(m, layer, &e.dentry) == b'x', GFP_KERNEL)?;
        let file = RealFile::open_dir(m, fs.real_path(e)?)?;
        let failed = core::cell::Cell::new(None);
        let mut take = |name: &[u8], _off: i64, ino: u64, d_type: u32| -> bool {
            if name == b"." || name == b".." {
                if rank == 0 {
                    dots[name.len() - 1] = ino;
                }
                return true;
            }
            let added = match name.strip_prefix(OCI_WHITEOUT_PREFIX) {
                // An OCI marker is never listed; a whiteout hides its name below.
                Some(hidden) if fs.oci_whiteouts => match name == OCI_OPAQUE_MARKER {
                    true => Ok(()),
                    false => seen.add(hidden, rank, 0, DT_WHT),
                },
                _ => seen.add(name, rank, ino, d_type as u8),
            };
            if let Err(err) = added {
                failed.set(Some(err));
                return false;
            }
            true
        };
        // Read the whole layer directory; it returns early only when `take` fails.
        let mut pos = 0;
        loop {
            let next = file.read_dir(m, pos, &mut take)?;
            if next == pos || failed.get().is_some() {
                break;
            }
            pos = next;
        }
        if let Some(err) = failed.get() {
            return Err(err);
        }
    }

    let Dedup { names, raw, .. } = seen;
    let mut entries = KVVec::with_capacity(raw.len(), GFP_KERNEL)?;
    for top in raw.iter() {
        let name = Dedup::name_of(&names, top);
        if top.d_type == DT_WHT {
            continue;
        }
        // Only entries that may be whiteouts need a look at the real object.
        let xw = xwhiteouts.get(top.rank).copied().unwrap_or(false);
        if top.d_type == DT_CHR || top.d_type == DT_UNKNOWN || (xw && top.d_type == DT_REG) {
            let e = stack.get(top.rank).ok_or(EIO)?;
            let layer = fs.layers.get(e.layer).ok_or(EIO)?;
            // One entry that cannot be looked up is listed as the layer has it, as overlayfs
            // does, rather than failing the listing; only a fatal signal stops it.
            match layer.mnt.lookup(m, &e.dentry, name) {
                Ok(Some(child)) => {
                    if let Some(inode) = child.inode() {
                        if fs.is_whiteout(m, layer, &child, inode) {
                            continue;
                        }
                    }
                }
                Ok(None) => {}
                Err(err) if err == EINTR => return Err(err),
                Err(_) => {}
            }
        }
        // overlayfs' `ovl_calc_d_ino`: with `xino` every number, in an impure upper
        // directory the upper entries' numbers are what a lookup finds; else the layer's.
        let from_upper = has_upper && top.rank == 0;
        let look_up = fs.same_dev() && (fs.xino_bits > 0 || (from_upper && dir.is_impure()));
        entries.push(
            Entry {
                off: top.off,
                len: top.len,
                raw_ino: top.ino,
                look_up,
                found_ino: AtomicU64::new(NOT_YET),
                d_type: top.d_type,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(MergedDir {
        names,
        entries,
        dots,
    })
}

/// `file_operations::open` of a union directory.
pub(crate) fn open_dir(inode: &FsInode<UnionFs>, dentry: &Dentry) -> Result<DirState> {
    let fs = inode.sb().info();
    // Layers added to the live mount since the directory was looked up are merged now.
    fs.refresh_dir(dentry)?;
    let data = inode.data()?;
    if !data.is_merged() {
        let top = data.top()?;
        let path = fs.real_path(top)?;
        let file = fs.with_mounter(|m| RealFile::open_dir(m, path))?;
        return Ok(DirState::Single(SingleDir {
            file,
            is_upper: data.upper().is_some(),
            renumbered: SetOnce::new(),
        }));
    }
    let generation = match data.cached_listing() {
        Ok(merged) => return Ok(DirState::Merged(merged)),
        Err(generation) => generation,
    };
    let merged = fs.with_mounter(|m| build_merged(fs, m, data))?;
    let merged = Arc::new(merged, GFP_KERNEL)?;
    data.cache_listing(generation, merged.clone());
    Ok(DirState::Merged(merged))
}

/// The number a listing shows for union object `inode`, which the layer lists as `raw`
/// (overlayfs' `ovl_cache_update`): an object known by a lower one shows the number `stat`
/// shows; with `xino`, a lower object the layer's number with its filesystem's in the high bits;
/// anything else the layer's number.
fn listed_number(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    inode: &FsInode<UnionFs>,
    raw: u64,
) -> Result<u64> {
    let data = inode.data()?;
    if data.has_origin() {
        return st_ino(fs, m, inode);
    }
    if fs.xino_bits > 0 && data.upper().is_none() {
        return Ok(fs.entry_number(data.top()?.layer, raw));
    }
    Ok(raw)
}

/// The listed number of entry `name` of the directory being read: `None` if the name is gone.
fn looked_up_number(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    dir: &IteratedDir<'_>,
    name: &[u8],
    raw: u64,
) -> Result<Option<u64>> {
    let Some(child) = dir.lookup(m, name)? else {
        return Ok(None);
    };
    let inode = SuperBlock::<UnionFs>::inode_of(&child).ok_or(EIO)?;
    listed_number(fs, m, inode, raw).map(Some)
}

/// `file_operations::iterate_shared` of a union directory, with the numbers overlayfs lists.
///
/// Without `xino`, with the layers on several filesystems, every number is the layer's. Else,
/// in a merged directory, "." and ".." (and, with `xino` or in an impure upper directory, every
/// entry) are numbered by [`listed_number`]; a directory of one layer is read through,
/// with ".." numbered as `stat` numbers a merged parent, an impure upper directory's entries
/// as [`listed_number`] says, and with `xino` the rest with the layer's filesystem in the high
/// bits.
pub(crate) fn iterate(
    inode: &FsInode<UnionFs>,
    dir: &DirState,
    file: &IteratedDir<'_>,
    out: &mut DirEmitter<'_>,
) -> Result {
    let fs = inode.sb().info();
    let data = inode.data()?;
    let parent_dentry = file.dentry().parent();
    let parent = SuperBlock::<UnionFs>::inode_of(&parent_dentry).ok_or(EIO)?;
    match dir {
        DirState::Single(single) => {
            let layer = data.top()?.layer;
            let impure = single.is_upper && data.is_impure();
            let parent_merged = parent.data()?.is_merged();
            let translate = fs.xino_bits > 0 || (fs.same_fs && (impure || parent_merged));
            let (parent_ino, renumbered) = if translate {
                fs.with_mounter(|m| -> Result<_> {
                    let parent_ino = match parent_merged {
                        true => Some(st_ino(fs, m, parent)?),
                        false => None,
                    };
                    let renumbered = match impure {
                        true => Some(single.renumbered(fs, m, data, file)?),
                        false => None,
                    };
                    Ok((parent_ino, renumbered))
                })?
            } else {
                (None, None)
            };
            let pos = out.pos();
            let next = fs.with_mounter(|m| {
                single.file.read_dir(m, pos, &mut |name, off, ino, d_type| {
                    // OCI markers are the layer's, not the union's.
                    if fs.oci_whiteouts && name.starts_with(OCI_WHITEOUT_PREFIX) {
                        return true;
                    }
                    let ino = match (name, parent_ino, renumbered) {
                        (_, _, _) if !translate => ino,
                        (b"..", Some(p), _) => p,
                        (_, _, Some(r)) => r
                            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
                            .ok()
                            .and_then(|i| r.get(i))
                            .map_or(ino, |(_, n)| *n),
                        _ if fs.xino_bits > 0 => fs.entry_number(layer, ino),
                        _ => ino,
                    };
                    out.emit_at(name, off, ino, d_type)
                })
            })?;
            out.set_pos(next);
        }
        DirState::Merged(list) => {
            let [dot, dotdot] = match fs.same_dev() {
                true => fs.with_mounter(|m| -> Result<_> {
                    Ok([
                        listed_number(fs, m, inode, list.dots[0])?,
                        listed_number(fs, m, parent, list.dots[1])?,
                    ])
                })?,
                false => list.dots,
            };
            let mut pos = out.pos().max(0) as usize;
            while pos < list.entries.len() + 2 {
                let ok = match pos {
                    0 => out.emit(b".", dot, DT_DIR),
                    1 => out.emit(b"..", dotdot, DT_DIR),
                    _ => match list.entries.get(pos - 2) {
                        Some(e) => match list.shown_number(fs, file, e)? {
                            Some(ino) => out.emit(list.name(e), ino, u32::from(e.d_type)),
                            None => true,
                        },
                        None => break,
                    },
                };
                if !ok {
                    break;
                }
                pos += 1;
                out.set_pos(pos as i64);
            }
        }
    }
    Ok(())
}

impl MergedDir {
    /// The number entry `e` is listed with, `None` if it is gone.
    fn shown_number(&self, fs: &UnionFs, dir: &IteratedDir<'_>, e: &Entry) -> Result<Option<u64>> {
        if !e.look_up {
            return Ok(Some(e.raw_ino));
        }
        match e.found_ino.load(Ordering::Relaxed) {
            NOT_YET => {}
            GONE => return Ok(None),
            n => return Ok(Some(n)),
        }
        let found = fs.with_mounter(|m| looked_up_number(fs, m, dir, self.name(e), e.raw_ino))?;
        e.found_ino.store(found.unwrap_or(GONE), Ordering::Relaxed);
        Ok(found)
    }
}

impl SingleDir {
    /// The entries of impure upper directory `data` whose listed number is not the layer's,
    /// found once per open (overlayfs keeps them per directory). If there is none, the
    /// directory is not impure any more: the mark goes (as overlayfs removes it).
    fn renumbered(
        &self,
        fs: &UnionFs,
        m: &AsMounter<'_>,
        data: &UnionInode,
        dir: &IteratedDir<'_>,
    ) -> Result<&[(KVec<u8>, u64)]> {
        if let Some(r) = self.renumbered.as_ref() {
            return Ok(r);
        }
        let mut found: KVec<(KVec<u8>, u64)> = KVec::new();
        for (name, raw) in real_entries(m, &self.file)?.iter() {
            // OCI markers are not the union's: never looked up, never listed.
            if fs.oci_whiteouts && name.starts_with(OCI_WHITEOUT_PREFIX) {
                continue;
            }
            if let Some(n) = looked_up_number(fs, m, dir, name, *raw)? {
                if n != *raw {
                    let mut copy = KVec::new();
                    copy.extend_from_slice(name, GFP_KERNEL)?;
                    found.push((copy, n), GFP_KERNEL)?;
                }
            }
        }
        if found.is_empty() {
            if let Some(upper) = data.upper() {
                let mnt = &fs.upper_layer()?.mnt;
                let impure = fs.xattr_name(crate::namei::Xattr::Impure);
                let _ = mnt.set_xattr(m, &upper.dentry, impure, None, 0);
            }
            data.clear_impure();
        }
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.renumbered.populate(found);
        Ok(self.renumbered.as_ref().map_or(&[], |r| r.as_slice()))
    }
}

/// Every entry of an open real directory but "." and "..", with its number (the list may
/// be long: it may live in vmalloc'ed memory).
pub(crate) fn real_entries(m: &AsMounter<'_>, file: &RealFile) -> Result<KVVec<(KVec<u8>, u64)>> {
    let mut entries = KVVec::new();
    let mut failed = false;
    let mut pos = 0;
    loop {
        let next = file.read_dir(m, pos, &mut |name, _, ino, _| {
            if name == b"." || name == b".." {
                return true;
            }
            let mut n = KVec::new();
            if n.extend_from_slice(name, GFP_KERNEL).is_err()
                || entries.push((n, ino), GFP_KERNEL).is_err()
            {
                failed = true;
                return false;
            }
            true
        })?;
        if next == pos || failed {
            break;
        }
        pos = next;
    }
    if failed {
        return Err(ENOMEM);
    }
    Ok(entries)
}

/// How many entries a directory shows (for rmdir's emptiness check), and whether its upper
/// directory holds anything (whiteouts, when nothing is visible).
pub(crate) fn emptiness(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    dir: &UnionInode,
) -> Result<(usize, bool)> {
    let visible = build_merged(fs, m, dir)?.entries.len();
    let upper_used = match dir.upper() {
        Some(u) => has_real_entries(m, fs.real_path(u)?)?,
        None => false,
    };
    Ok((visible, upper_used))
}

/// Whether a real directory holds anything but "." and "..": reads up to its first entry.
fn has_real_entries(m: &AsMounter<'_>, dir: crate::vfs::RealPath<'_>) -> Result<bool> {
    let file = RealFile::open_dir(m, dir)?;
    let mut found = false;
    let mut pos = 0;
    loop {
        let next = file.read_dir(m, pos, &mut |name, _, _, _| {
            found = name != b"." && name != b"..";
            !found
        })?;
        if next == pos || found {
            return Ok(found);
        }
        pos = next;
    }
}

#[kunit_tests(unionrs_readdir)]
mod tests {
    use super::*;

    /// Decimal digits of `n` as a name.
    fn name(n: usize, buf: &mut [u8; 24]) -> &[u8] {
        let mut i = buf.len();
        let mut n = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &buf[i..]
    }

    /// Three layers over `n` names: layer 0 has the even ones, layer 1 the multiples of three
    /// (as directories), layer 2 all of them. Every name must be listed once, from the highest
    /// layer that has it, in the order the layers were read.
    fn three_layers(n: usize) -> bool {
        let mut d = Dedup::new();
        let mut buf = [0u8; 24];
        type Layer = (u8, fn(usize) -> bool);
        let layers: [Layer; 3] = [
            (DT_DIR as u8, |i| i % 2 == 0),
            (DT_DIR as u8, |i| i % 3 == 0),
            (DT_REG, |_| true),
        ];
        for (rank, (d_type, has)) in layers.iter().enumerate() {
            for i in (0..n).filter(|&i| has(i)) {
                if d.add(name(i, &mut buf), rank, (rank * n + i) as u64, *d_type)
                    .is_err()
                {
                    return false;
                }
            }
        }
        let mut expected = KVec::new();
        for (rank, (_, has)) in layers.iter().enumerate() {
            for i in (0..n).filter(|&i| has(i) && !layers[..rank].iter().any(|(_, h)| h(i))) {
                if expected.push((i, rank), GFP_KERNEL).is_err() {
                    return false;
                }
            }
        }
        d.raw.len() == n
            && d.raw.iter().zip(expected.iter()).all(|(r, &(i, rank))| {
                Dedup::name_of(&d.names, r) == name(i, &mut [0u8; 24])
                    && r.rank == rank
                    && r.ino == (rank * n + i) as u64
            })
    }

    #[test]
    fn dedup_small() {
        for n in [0, 1, 2, 3, 7, 100] {
            assert!(three_layers(n));
        }
    }

    #[test]
    fn dedup_grows() {
        assert!(three_layers(20_000));
    }
}
