// SPDX-License-Identifier: GPL-2.0

//! Reading union directories.
//!
//! A directory that comes from one layer is read straight from that layer, with the real
//! filesystem's positions. A merged directory is read from a listing built once per
//! directory inode: every layer's names, deduplicated (the top-most entry wins), without
//! whiteouts and the names they hide. Positions in it are plain indexes, so they stay stable
//! across `getdents64` calls, `telldir`/`seekdir` and `rewinddir`.

use crate::inode::UnionInode;
use crate::superblock::UnionFs;
use crate::vfs::{DirEmitter, FsInode, RealFile};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;

/// One entry of a merged listing; the name is `names[off..off + len]`.
struct Entry {
    off: usize,
    len: usize,
    ino: u64,
    d_type: u8,
}

/// The merged listing of a directory.
/// Large directories need more than kmalloc can give: these vectors fall back to vmalloc.
pub(crate) struct MergedDir {
    names: KVVec<u8>,
    entries: KVVec<Entry>,
}

impl MergedDir {
    fn name(&self, e: &Entry) -> &[u8] {
        self.names.get(e.off..e.off + e.len).unwrap_or(&[])
    }
}

/// An open union directory.
pub(crate) enum DirState {
    /// A directory of one layer: read through.
    Single(RealFile),
    /// A merged directory: read from the shared listing.
    Merged(Arc<MergedDir>),
}

const DT_DIR: u32 = bindings::DT_DIR;
const DT_CHR: u8 = bindings::DT_CHR as u8;
const DT_REG: u8 = bindings::DT_REG as u8;
const DT_UNKNOWN: u8 = bindings::DT_UNKNOWN as u8;

/// A name as read from one layer, before merging.
#[derive(Clone, Copy)]
struct RawEntry {
    off: usize,
    len: usize,
    /// Position of the layer in the directory's stack (0 = top).
    rank: usize,
    ino: u64,
    d_type: u8,
}

fn build_merged(fs: &UnionFs, dir: &UnionInode) -> Result<MergedDir> {
    let mut names = KVVec::new();
    let mut raw: KVVec<RawEntry> = KVVec::new();
    let mut xwhiteouts = KVec::new();
    for (rank, e) in dir.entries().enumerate() {
        let layer = fs.layers.get(e.layer).ok_or(EIO)?;
        xwhiteouts.push(fs.opaque_value(layer, &e.dentry) == b'x', GFP_KERNEL)?;
        let file = RealFile::open_dir(fs.real_path(e)?, &fs.creds)?;
        let failed = core::cell::Cell::new(false);
        let mut take = |name: &[u8], _off: i64, ino: u64, d_type: u32| -> bool {
            if name == b"." || name == b".." {
                return true;
            }
            let off = names.len();
            let r = names
                .extend_from_slice(name, GFP_KERNEL)
                .and_then(|_| raw.push(RawEntry { off, len: name.len(), rank, ino, d_type: d_type as u8 }, GFP_KERNEL));
            if r.is_err() {
                failed.set(true);
                return false;
            }
            true
        };
        // Read the whole layer directory; it returns early only when `take` fails.
        let mut pos = 0;
        loop {
            let next = file.read_dir(pos, &mut take)?;
            if next == pos || failed.get() {
                break;
            }
            pos = next;
        }
        if failed.get() {
            return Err(ENOMEM);
        }
    }

    let name_of = |r: &RawEntry| -> &[u8] { names.get(r.off..r.off + r.len).unwrap_or(&[]) };
    // Sort positions rather than the entries: moving a word is what keeps the sort cheap for
    // directories of 100 000 names (moving whole entries took most of a cold listing's time).
    let mut order = KVVec::with_capacity(raw.len(), GFP_KERNEL)?;
    for i in 0..raw.len() {
        order.push(i, GFP_KERNEL)?;
    }
    merge_sort(&mut order, |&a, &b| match (raw.get(a), raw.get(b)) {
        (Some(x), Some(y)) => name_of(x).cmp(name_of(y)).then(x.rank.cmp(&y.rank)).is_le(),
        _ => true,
    })?;
    let mut sorted = KVVec::with_capacity(raw.len(), GFP_KERNEL)?;
    for &i in order.iter() {
        sorted.push(*raw.get(i).ok_or(EIO)?, GFP_KERNEL)?;
    }
    let raw = sorted;

    let mut entries = KVVec::with_capacity(raw.len(), GFP_KERNEL)?;
    let mut i = 0;
    while i < raw.len() {
        let first = i;
        let top = &raw[i];
        let name = name_of(top);
        let mut j = i + 1;
        while j < raw.len() && name_of(&raw[j]) == name {
            j += 1;
        }
        i = j;
        let below = raw.get(first + 1).filter(|_| first + 1 < j);
        // Only entries that may be whiteouts need a look at the real object.
        let xw = xwhiteouts.get(top.rank).copied().unwrap_or(false);
        if top.d_type == DT_CHR || top.d_type == DT_UNKNOWN || (xw && top.d_type == DT_REG) {
            let e = dir.entry(top.rank).ok_or(EIO)?;
            let layer = fs.layers.get(e.layer).ok_or(EIO)?;
            if let Some(child) = e.dentry.lookup_child(&layer.mnt, name)? {
                if let Some(inode) = child.inode() {
                    if fs.is_whiteout(layer, &child, inode) {
                        continue;
                    }
                }
            }
        }
        let mut layer = dir.entry(top.rank).map_or(0, |e| e.layer);
        let mut ino = top.ino;
        let is_dir = u32::from(top.d_type) == DT_DIR;
        // As `stat` reports it: an upper directory merged with a lower one on the same
        // filesystem shows the lower one's number.
        if let Some(next) = below.filter(|n| {
            is_dir && fs.same_fs && top.rank == 0 && dir.upper().is_some() && u32::from(n.d_type) == DT_DIR
        }) {
            let e = dir.entry(0).ok_or(EIO)?;
            let upper_layer = fs.layers.get(e.layer).ok_or(EIO)?;
            let opaque = match e.dentry.lookup_child(&upper_layer.mnt, name)? {
                Some(child) if child.inode().is_some() => fs.opaque_value(upper_layer, &child) == b'y',
                _ => true,
            };
            if !opaque {
                layer = dir.entry(next.rank).map_or(layer, |e| e.layer);
                ino = next.ino;
            }
        }
        let ino = fs.map_ino(layer, ino, is_dir);
        entries.push(Entry { off: top.off, len: top.len, ino, d_type: top.d_type }, GFP_KERNEL)?;
    }
    Ok(MergedDir { names, entries })
}

/// `file_operations::open` of a union directory.
pub(crate) fn open_dir(inode: &FsInode<UnionFs>) -> Result<DirState> {
    let fs = inode.sb().info();
    let data = inode.data()?;
    if !data.is_merged() {
        return Ok(DirState::Single(RealFile::open_dir(fs.real_path(data.top()?)?, &fs.creds)?));
    }
    let mut cache = data.dir_cache.lock();
    if let Some(m) = cache.as_ref() {
        return Ok(DirState::Merged(m.clone()));
    }
    let merged = Arc::new(build_merged(fs, data)?, GFP_KERNEL)?;
    *cache = Some(merged.clone());
    Ok(DirState::Merged(merged))
}

/// `file_operations::iterate_shared` of a union directory.
pub(crate) fn iterate(inode: &FsInode<UnionFs>, dir: &DirState, parent_ino: u64, out: &mut DirEmitter<'_>) -> Result {
    let self_ino = inode.ino();
    match dir {
        DirState::Single(file) => {
            // "." and ".." as the union sees them; everything else as the layer has it.
            let fs = inode.sb().info();
            let layer = inode.data()?.top()?.layer;
            let next = file.read_dir(out.pos(), &mut |name, off, ino, d_type| {
                let ino = match name {
                    b"." => self_ino,
                    b".." => parent_ino,
                    _ => fs.map_ino(layer, ino, d_type == DT_DIR),
                };
                out.emit_at(name, off, ino, d_type)
            })?;
            out.set_pos(next);
        }
        DirState::Merged(m) => {
            let mut pos = out.pos().max(0) as usize;
            while pos < m.entries.len() + 2 {
                let ok = match pos {
                    0 => out.emit(b".", self_ino, DT_DIR),
                    1 => out.emit(b"..", parent_ino, DT_DIR),
                    _ => match m.entries.get(pos - 2) {
                        Some(e) => out.emit(m.name(e), e.ino, u32::from(e.d_type)),
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

/// How many entries a directory shows (for rmdir's emptiness check), and whether its upper
/// directory holds anything (whiteouts, when nothing is visible).
pub(crate) fn emptiness(fs: &UnionFs, dir: &UnionInode) -> Result<(usize, bool)> {
    let visible = build_merged(fs, dir)?.entries.len();
    let upper_used = match dir.upper() {
        Some(u) => !real_names(fs, fs.real_path(u)?)?.is_empty(),
        None => false,
    };
    Ok((visible, upper_used))
}

/// The real entries of a real directory (for cleaning the work directory).
pub(crate) fn real_names(fs: &UnionFs, dir: crate::vfs::RealPath<'_>) -> Result<KVec<KVec<u8>>> {
    let file = RealFile::open_dir(dir, &fs.creds)?;
    let mut names = KVec::new();
    let mut failed = false;
    let mut pos = 0;
    loop {
        let next = file.read_dir(pos, &mut |name, _, _, _| {
            if name == b"." || name == b".." {
                return true;
            }
            let mut n = KVec::new();
            if n.extend_from_slice(name, GFP_KERNEL).is_err() || names.push(n, GFP_KERNEL).is_err() {
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
    Ok(names)
}

/// Sorts `v` stably by `le` (a total "less or equal"): insertion-sorted runs, then bottom-up
/// merges through a scratch copy. Ours rather than `sort_unstable_by`, whose panic on an
/// inconsistent order objtool does not know to be noreturn (it warns about the fall-through).
fn merge_sort<T: Copy>(v: &mut KVVec<T>, le: impl Fn(&T, &T) -> bool) -> Result {
    const RUN: usize = 16;
    let n = v.len();
    for start in (0..n).step_by(RUN) {
        let end = n.min(start + RUN);
        for i in start + 1..end {
            let x = v[i];
            let mut j = i;
            while j > start && !le(&v[j - 1], &x) {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
        }
    }
    if n <= RUN {
        return Ok(());
    }
    let mut scratch = KVVec::with_capacity(n, GFP_KERNEL)?;
    for x in v.iter() {
        scratch.push(*x, GFP_KERNEL)?;
    }
    let mut width = RUN;
    let mut sorted_in_v = true;
    while width < n {
        let (src, dst): (&[T], &mut [T]) =
            if sorted_in_v { (&v[..], &mut scratch[..]) } else { (&scratch[..], &mut v[..]) };
        for lo in (0..n).step_by(2 * width) {
            let mid = n.min(lo + width);
            let hi = n.min(lo + 2 * width);
            let (mut i, mut j) = (lo, mid);
            for slot in &mut dst[lo..hi] {
                if i < mid && (j >= hi || le(&src[i], &src[j])) {
                    *slot = src[i];
                    i += 1;
                } else {
                    *slot = src[j];
                    j += 1;
                }
            }
        }
        sorted_in_v = !sorted_in_v;
        width *= 2;
    }
    if !sorted_in_v {
        // (Not `copy_from_slice`: its length-mismatch panic is another one objtool misses.)
        for (d, s) in v.iter_mut().zip(scratch.iter()) {
            *d = *s;
        }
    }
    Ok(())
}

#[kunit_tests(unionrs_readdir)]
mod tests {
    use super::*;

    /// `n` pseudo-random (key, original position) pairs with many equal keys.
    fn shuffled(n: usize, keys: u32) -> Option<KVVec<(u32, usize)>> {
        let mut v = KVVec::with_capacity(n, GFP_KERNEL).ok()?;
        let mut x: u32 = 0x9e37_79b9;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push((x % keys, i), GFP_KERNEL).ok()?;
        }
        Some(v)
    }

    /// Sorted by key, equal keys in their original order, and a permutation of the input.
    fn sorted_stably(n: usize, keys: u32) -> bool {
        let Some(mut v) = shuffled(n, keys) else { return false };
        if merge_sort(&mut v, |a, b| a.0 <= b.0).is_err() {
            return false;
        }
        let ordered = v.windows(2).all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
        let Ok(mut seen) = KVVec::from_elem(false, n, GFP_KERNEL) else { return false };
        for &(_, i) in v.iter() {
            match seen.get_mut(i) {
                Some(s) if !*s => *s = true,
                _ => return false,
            }
        }
        ordered && v.len() == n
    }

    #[test]
    fn merge_sort_small_and_odd_sizes() {
        for n in [0, 1, 2, 15, 16, 17, 31, 33, 100] {
            assert!(sorted_stably(n, 7));
        }
    }

    #[test]
    fn merge_sort_large() {
        assert!(sorted_stably(10_000, 100));
        assert!(sorted_stably(4_099, 1_000_000));
    }
}
