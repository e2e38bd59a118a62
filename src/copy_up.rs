// SPDX-License-Identifier: GPL-2.0

//! Copy-up: before a lower object is changed, it is copied to the upper layer, parents
//! first.
//!
//! The copy is built in the work directory (data, xattrs, then attributes; data synced) and
//! put into place in one step, so that after a crash the upper layer shows either no copy or a
//! complete one: a regular file unnamed (`O_TMPFILE`) and linked into place, where the upper
//! filesystem can (a crash leaves an orphan the filesystem frees), anything else under a
//! temporary name and renamed (leftovers are removed at the next mount). Copy-ups of one
//! object are serialized by its `copy_up_lock`.

use crate::dir::Expect;
use crate::index::NlinkBase;
use crate::inode::{RealEntry, UnionInode};
use crate::namei::Xattr;
use crate::params::Fsync;
use crate::superblock::UnionFs;
use crate::vfs::bindings::UNIONRS_RENAME_NOREPLACE as RENAME_NOREPLACE;
use crate::vfs::real::lsm_copies_xattr;
use crate::vfs::{
    AsMounter, Dentry, FsInode, Iattr, NewObject, RealFile, RealPath, RealStat, SuperBlock,
};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;

/// How much data one copy call moves (and how often a fatal signal is noticed).
const COPY_CHUNK: usize = 1 << 20;

/// How a copy is opened to write its data.
const WRITE_FLAGS: u32 = bindings::O_LARGEFILE | bindings::O_WRONLY;

/// The superblock and union inode of one of our positive dentries.
pub(crate) fn union_inode(d: &Dentry) -> Result<(&SuperBlock<UnionFs>, &FsInode<UnionFs>)> {
    let inode = SuperBlock::<UnionFs>::inode_of(d).ok_or(ENOENT)?;
    Ok((inode.sb(), inode))
}

/// Whether union dentry `d`'s name is on the upper layer already: its object is there, and
/// for an indexed object (whose names reach the upper layer one by one) the upper copy of
/// the parent holds this name as that object.
pub(crate) fn has_upper_alias(d: &Dentry) -> Result<bool> {
    let (sb, inode) = union_inode(d)?;
    let data = inode.data()?;
    let Some(upper) = data.upper() else {
        return Ok(false);
    };
    // A directory's upper copy is always at its name (its index entry only points to it).
    if !data.is_indexed() || data.is_dir() {
        return Ok(true);
    }
    // A dentry that a file handle gave has no name in the union (see `copy_up`).
    if d.is_root() && !data.is_root() {
        return Ok(false);
    }
    let parent = d.parent();
    let Some(upper_parent) = union_inode(&parent)?.1.data()?.upper() else {
        return Ok(false);
    };
    let fs = sb.info();
    let name = d.name_copy()?;
    let found =
        fs.with_mounter(|m| fs.upper_layer()?.mnt.lookup(m, &upper_parent.dentry, &name))?;
    Ok(found.and_then(|c| c.inode().map(|i| i.as_ptr()))
        == upper.dentry.inode().map(|i| i.as_ptr()))
}

/// Whether an open with `flags` writes the file (or truncates it): then its data must be on
/// the upper layer (overlayfs' `ovl_open_flags_need_copy_up`).
fn flags_need_data(flags: u32) -> bool {
    flags & bindings::O_ACCMODE != bindings::O_RDONLY || flags & bindings::O_TRUNC != 0
}

/// Whether what an operation with open flags `flags` needs of `dentry`'s object is on the
/// upper layer (overlayfs' `ovl_already_copied_up`): its name, and its data if `flags` write.
/// A dentry that a file handle gave (see [`copy_up`]) needs only the object.
fn already_copied_up(dentry: &Dentry, flags: u32, disconnected: bool) -> Result<bool> {
    let data = union_inode(dentry)?.1.data()?;
    let object_up = match disconnected {
        true => data.upper().is_some(),
        false => has_upper_alias(dentry)?,
    };
    Ok(object_up && (data.has_upperdata() || !flags_need_data(flags)))
}

/// Copies `dentry`'s object up, with its parents, if its name is not on the upper layer yet:
/// with `metacopy=on` a regular file only as a metadata-only copy (its data stays the lower
/// file's), unless the operation writes it (see [`copy_up_with_data`]).
///
/// A dentry that a file handle gave and that is not connected to the union's tree (only a
/// non-directory can be) is copied into the index alone, as overlayfs does: its names are
/// linked up to the copy when they are used.
pub(crate) fn copy_up(sb: &SuperBlock<UnionFs>, dentry: &Dentry) -> Result {
    copy_up_flags(sb, dentry, 0)
}

/// Copies `dentry`'s object up with its data (for a change of size).
pub(crate) fn copy_up_with_data(sb: &SuperBlock<UnionFs>, dentry: &Dentry) -> Result {
    copy_up_flags(sb, dentry, bindings::O_WRONLY)
}

/// Copies `dentry`'s object up for an open with `flags` (overlayfs' `ovl_copy_up_flags`): its
/// data too if they write, none of it if they truncate.
fn copy_up_flags(sb: &SuperBlock<UnionFs>, dentry: &Dentry, flags: u32) -> Result {
    let fs = sb.info();
    if !fs.has_upper() {
        return Err(EROFS);
    }
    // The data a copy may need, found first (before any lock of the copy is taken).
    fs.verify_lowerdata(union_inode(dentry)?.1.data()?, dentry.name())?;
    if dentry.is_root() {
        let (_, inode) = union_inode(dentry)?;
        if inode.data()?.is_root() {
            return Ok(());
        }
        return copy_up_one(sb, None, dentry, flags);
    }
    // Top-down without recursion: each round copies the highest ancestor still missing.
    while !already_copied_up(dentry, flags, false)? {
        let mut d: ARef<Dentry> = dentry.into();
        loop {
            let p = d.parent();
            if core::ptr::eq(p.as_ptr(), d.as_ptr()) || has_upper_alias(&p)? {
                break;
            }
            d = p;
        }
        copy_up_one(sb, Some(&d.parent()), &d, flags)?;
    }
    Ok(())
}

/// Copies `dentry`'s object up into `parent`'s upper directory (or, for a disconnected
/// dentry, without a `parent`, into the index only), for an open with `flags`.
fn copy_up_one(
    sb: &SuperBlock<UnionFs>,
    parent: Option<&Dentry>,
    dentry: &Dentry,
    flags: u32,
) -> Result {
    let fs = sb.info();
    let pinode = match parent {
        Some(p) => Some(union_inode(p)?.1),
        None => None,
    };
    let (_, inode) = union_inode(dentry)?;
    let data = inode.data()?;
    let _serialized = data.copy_up_lock.lock()?;
    if already_copied_up(dentry, flags, parent.is_none())? {
        return Ok(());
    }
    if dentry.is_unhashed() && parent.is_some() && !has_upper_alias(dentry)? {
        // Removed from the union (by unlink or rename) since it was looked up.
        return Err(ENOENT);
    }
    let upper_parent = match pinode {
        Some(p) => Some(p.data()?.upper().ok_or(EIO)?),
        None => None,
    };
    let lower = data.lower().first().ok_or(EIO)?;
    let name = dentry.name_copy()?;
    let mnt = &fs.upper_layer()?.mnt;
    let is_dir = data.is_dir();
    if data.upper().is_none() {
        let lower_data = data.lower_data().ok_or(EIO)?;
        let metacopy = fs.metacopy
            && inode.inode().is_reg()
            && !flags_need_data(flags)
            && fs.with_mounter(|m| fs.verity_allows_metacopy(m, lower_data));
        let source = CopySource {
            meta: lower,
            data: lower_data,
            metacopy,
            truncated: flags & bindings::O_TRUNC != 0,
        };
        let indexed = fs.needs_index(data);
        let to_index = indexed && !is_dir;
        // Only a non-directory copied into the index can do without a parent.
        if upper_parent.is_none() && !to_index {
            return Err(EIO);
        }
        let copy = fs.with_mounter(|m| -> Result<_> {
            // The parent may now hold a copy, whose listed number must be looked up (an
            // indexed copy gets there by its link-up).
            if let (false, Some(p)) = (to_index, pinode) {
                fs.set_impure(m, p.data()?)?;
            }
            // A security module may ask for other credentials for the copy (its label).
            m.with_copy_up_creds(dentry, || {
                let upper_parent = match (to_index, upper_parent) {
                    (false, Some(p)) => p,
                    _ => {
                        let index_dir = fs.index_dir().ok_or(EIO)?;
                        let index_name = fs.index_name(lower)?;
                        return fs.copy_to_upper(m, &source, index_dir, &index_name, true);
                    }
                };
                // Moving the copy in changes the directory's times, but the union's view of
                // the directory has not changed: put them back, as overlayfs does.
                let parent_times = mnt.stat(m, &upper_parent.dentry)?;
                let copy = fs.copy_to_upper(m, &source, &upper_parent.dentry, &name, indexed)?;
                let mut times = Iattr::new();
                times.set_times(parent_times.atime(), parent_times.mtime());
                let _ = mnt.notify_change(m, &upper_parent.dentry, &mut times);
                Ok(copy)
            })?
        })?;
        inode.refresh_from(copy.inode().ok_or(EIO)?, mnt.id_map());
        // Before the copy is published: nobody may read its data that is not there.
        if source.metacopy {
            data.clear_upperdata();
        }
        inode.publish_upper(copy.clone());
        data.set_upper(RealEntry {
            layer: 0,
            dentry: copy,
        });
        if indexed {
            data.set_indexed();
        }
        if to_index {
            fs.with_mounter(|m| fs.set_nlink_xattr(m, data, NlinkBase::Upper))?;
        }
    }
    let linked = has_upper_alias(dentry)?;
    if let (true, false, false, Some(p), Some(up)) =
        (data.is_indexed(), is_dir, linked, pinode, upper_parent)
    {
        fs.with_mounter(|m| link_up(fs, m, data, p.data()?, &up.dentry, &name))?;
    }
    // The object's inode number in the parent's listing is the copy's now.
    if let Some(p) = pinode {
        p.data()?.invalidate_listing();
    }
    if flags_need_data(flags) && !data.has_upperdata() {
        fs.with_mounter(|m| copy_up_data(fs, m, data, flags))?;
    }
    Ok(())
}

/// Copies the data of a metadata-only copy up into it, in place (overlayfs'
/// `ovl_copy_up_meta_inode_data`): the data, synced, then `overlay.metacopy` removed, so that
/// a crash leaves either the metacopy file or the complete one. Writing the data drops
/// `security.capability`, which is put back. An open that truncates copies no data.
fn copy_up_data(fs: &UnionFs, m: &AsMounter<'_>, data: &UnionInode, flags: u32) -> Result {
    let upper = data.upper().ok_or(EIO)?;
    let lower = data.lower_data().ok_or(EIO)?;
    let upper_layer = fs.upper_layer()?;
    let mnt = &upper_layer.mnt;
    // Another union inode of the same upper file (a name looked up before the copy) may have
    // copied the data already.
    if fs.metacopy_size(m, upper_layer, &upper.dentry)?.is_none() {
        data.set_upperdata();
        return Ok(());
    }
    let meta = fs.real_path(data.lower().first().ok_or(EIO)?)?;
    let size = match flags & bindings::O_TRUNC {
        0 => meta.mnt.stat(m, meta.dentry)?.size(),
        _ => 0,
    };
    let capability = match size {
        0 => None,
        _ => xattr_value(mnt, m, &upper.dentry, c"security.capability")?,
    };
    let to = RealPath {
        mnt,
        dentry: &upper.dentry,
    };
    let output = RealFile::open(m, to, WRITE_FLAGS)?;
    // As in overlayfs, only `fsync=auto` syncs this data (`strict` syncs a copy-up's
    // metadata, and there is none here).
    let sync = fs.fsync == Fsync::Auto;
    fs.copy_data(m, fs.real_path(lower)?, &output, size, sync)?;
    if let Some(cap) = capability {
        mnt.set_xattr(m, &upper.dentry, c"security.capability", Some(&cap), 0)?;
    }
    mnt.set_xattr(m, &upper.dentry, fs.xattr_name(Xattr::Metacopy), None, 0)?;
    data.set_upperdata();
    Ok(())
}

/// The value of xattr `name` of `d`, `None` if it has none (or the filesystem takes none).
fn xattr_value(
    mnt: &crate::vfs::LayerMount,
    m: &AsMounter<'_>,
    d: &Dentry,
    name: &CStr,
) -> Result<Option<KVec<u8>>> {
    let absent =
        |e: Error| e == crate::vfs::errno::enodata() || e == crate::vfs::errno::eopnotsupp();
    let size = match mnt.getxattr(m, d, name, &mut []) {
        Err(e) if absent(e) => return Ok(None),
        r => r?,
    };
    let mut value = KVVec::from_elem(0u8, size, GFP_KERNEL)?;
    let n = mnt.getxattr(m, d, name, &mut value)?;
    let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
    out.extend_from_slice(value.get(..n).ok_or(EIO)?, GFP_KERNEL)?;
    Ok(Some(out))
}

/// What a copy-up copies: the lower object (first lower) whose metadata it takes, the one
/// with the data (below metacopy files), whether only the metadata is copied, and whether the
/// data is not copied because the open that copies it up truncates it.
struct CopySource<'a> {
    meta: &'a RealEntry,
    data: &'a RealEntry,
    metacopy: bool,
    truncated: bool,
}

/// Links one more name, `name` in `upper_parent`, to the upper object of indexed `data`
/// (overlayfs' `ovl_link_up`), keeping its recorded link count right before and after.
fn link_up(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    data: &UnionInode,
    parent: &UnionInode,
    upper_parent: &Dentry,
    name: &[u8],
) -> Result {
    let mnt = &fs.upper_layer()?.mnt;
    let upper = data.upper().ok_or(EIO)?;
    fs.set_impure(m, parent)?;
    fs.set_nlink_xattr(m, data, NlinkBase::Lower)?;
    let parent_times = mnt.stat(m, upper_parent)?;
    fs.create_real(m, upper_parent, name, NewObject::Link(&upper.dentry))?;
    let mut times = Iattr::new();
    times.set_times(parent_times.atime(), parent_times.mtime());
    let _ = mnt.notify_change(m, upper_parent, &mut times);
    fs.set_nlink_xattr(m, data, NlinkBase::Upper)
}

impl UnionFs {
    /// Copies the real object `source` to `name` in upper directory `upper_parent`, through a
    /// temporary in the work directory (see the module's comment); `indexed` if the copy goes
    /// through the index (a directory then gets its index entry). A metadata-only copy gets
    /// `overlay.metacopy` and the size of the original, without data. Returns the upper
    /// dentry.
    fn copy_to_upper(
        &self,
        m: &AsMounter<'_>,
        source: &CopySource<'_>,
        upper_parent: &Dentry,
        name: &[u8],
        indexed: bool,
    ) -> Result<ARef<Dentry>> {
        let lower = source.meta;
        let lpath = self.real_path(lower)?;
        let mut st = lpath.mnt.stat(m, lpath.dentry)?;
        if source.truncated {
            st.set_size(0);
        }
        // The copy could not get the owner of the original (say a set-user-ID file of the
        // initial namespace's root, under a user namespace's mount): refuse, as overlayfs does.
        if !m.maps_ids(st.uid(), st.gid()) {
            return Err(EOVERFLOW);
        }
        let mnt = &self.upper_layer()?.mnt;
        let mode = st.mode();
        let target: CString;
        let what = match mode & bindings::S_IFMT {
            bindings::S_IFLNK => {
                target = lpath.mnt.read_link(m, lpath.dentry)?;
                NewObject::Symlink(&target)
            }
            bindings::S_IFREG | bindings::S_IFDIR => NewObject::Node { mode, rdev: 0 },
            _ => NewObject::Node {
                mode,
                rdev: st.rdev(),
            },
        };
        let metacopy_value = match source.metacopy {
            true => Some(self.metacopy_value(m, source.data)?),
            false => None,
        };
        let is_reg = mode & bindings::S_IFMT == bindings::S_IFREG;
        let is_dir = mode & bindings::S_IFMT == bindings::S_IFDIR;
        // `fsync=auto` syncs a data copy before it is named; `strict` a whole copy of a file
        // or directory (its data and metadata) before it is named (overlayfs' rules).
        let data_sync = self.fsync == Fsync::Auto;
        let metadata_sync = self.fsync == Fsync::Strict && (is_reg || is_dir);
        // Everything the copy gets before it appears in the upper layer; `output` is the copy
        // open for writing, if it already is.
        let fill = |temp: &Dentry, output: Option<&RealFile>| -> Result {
            if is_reg && !source.metacopy {
                let from = self.real_path(source.data)?;
                match output {
                    Some(output) => self.copy_data(m, from, output, st.size(), data_sync)?,
                    None => {
                        let to = RealPath { mnt, dentry: temp };
                        let output = RealFile::open(m, to, WRITE_FLAGS)?;
                        self.copy_data(m, from, &output, st.size(), data_sync)?;
                    }
                }
            }
            if is_dir && indexed {
                self.create_dir_index(m, lower, temp)?;
            }
            self.copy_xattrs(m, lpath, temp)?;
            // Which lower object this is a copy of, so that it keeps that one's number (not
            // for a hard link, whose copy-up breaks the link).
            if is_dir || st.nlink() == 1 || indexed {
                self.set_origin(m, temp, lower)?;
            }
            // The 4-byte header without a digest is stored as an empty value (overlayfs'
            // `ovl_set_metacopy_xattr`).
            if let Some(value) = &metacopy_value {
                if !self.set_private_xattr(m, temp, Xattr::Metacopy, value)? {
                    return Err(crate::vfs::errno::eopnotsupp());
                }
            }
            self.copy_attrs(m, temp, &st)?;
            if metadata_sync {
                let path = RealPath { mnt, dentry: temp };
                match output {
                    Some(output) => output.fsync(m, false)?,
                    None if is_dir => RealFile::open_dir(m, path)?.fsync(m, false)?,
                    None => RealFile::open(m, path, bindings::O_LARGEFILE | bindings::O_RDONLY)?
                        .fsync(m, false)?,
                }
            }
            Ok(())
        };
        // A regular file is built unnamed (`O_TMPFILE`) in the work directory and linked into
        // place, as overlayfs does where the upper filesystem can: only the upper directory
        // gets an entry, and a crash leaves an orphan the filesystem frees itself.
        if is_reg {
            let work = RealPath {
                mnt,
                dentry: self.work_dir()?,
            };
            match RealFile::open_tmpfile(m, work, mode) {
                Ok(tmpfile) => {
                    fill(tmpfile.dentry(), Some(&tmpfile))?;
                    // Never over anything, not even a whiteout: a whiteout there means the
                    // object was removed meanwhile.
                    let link = NewObject::Link(tmpfile.dentry());
                    return self.create_real(m, upper_parent, name, link);
                }
                Err(e) if e != crate::vfs::errno::eopnotsupp() => return Err(e),
                Err(_) => {}
            }
        }
        let (copy, _) = self.build_in_work(m, what, |temp| {
            fill(temp, None)?;
            self.move_into_place(
                m,
                temp,
                upper_parent,
                name,
                RENAME_NOREPLACE,
                &Expect::default(),
            )
        })?;
        // The temporary dentry was moved: it is the upper object now.
        Ok(copy)
    }

    /// Copies the first `len` bytes of `from` to the new regular file `output`: cloned where
    /// the filesystems can share extents, else copied range by range (`copy_file_range`, or
    /// splice across filesystems), skipping the holes of the source so that sparse files stay
    /// sparse. With `sync`, a copy is synced before it is put into place, so that a crash
    /// cannot leave a named copy without its data.
    fn copy_data(
        &self,
        m: &AsMounter<'_>,
        from: RealPath<'_>,
        output: &RealFile,
        len: i64,
        sync: bool,
    ) -> Result {
        let input = RealFile::open(m, from, bindings::O_LARGEFILE | bindings::O_RDONLY)?;
        // A clone shares the extents in one metadata transaction, which the filesystem's log
        // orders before the link or rename that follows: no fsync, as in overlayfs.
        if len > 0 && input.clone_to(m, output, len).is_ok_and(|n| n == len) {
            return Ok(());
        }
        let (mut pos, mut seek_holes) = (0i64, true);
        while pos < len {
            if crate::vfs::fatal_signal_pending() {
                return Err(EINTR);
            }
            if seek_holes {
                match input.next_data(m, pos) {
                    // Only a hole up to the end.
                    Ok(None) => break,
                    Ok(Some(data)) if data > pos => {
                        pos = data;
                        continue;
                    }
                    Ok(Some(_)) => {}
                    // The filesystem cannot tell: copy everything.
                    Err(_) => seek_holes = false,
                }
            }
            let chunk = usize::try_from(len - pos).map_or(COPY_CHUNK, |left| left.min(COPY_CHUNK));
            let n = match input.copy_range_to(m, pos, output, chunk) {
                Err(e)
                    if e == crate::vfs::errno::exdev()
                        || e == crate::vfs::errno::eopnotsupp()
                        || e == EINVAL =>
                {
                    input.splice_to(m, pos, output, chunk)?
                }
                r => r?,
            };
            // The source ends early (a metacopy file's data shorter than its size): the rest
            // stays a hole, as in overlayfs.
            if n == 0 {
                break;
            }
            pos += n as i64;
        }
        match sync {
            true => output.fsync(m, false),
            false => Ok(()),
        }
    }

    /// Copies the xattrs of `from` to `to`, except our private ones (escaped names are
    /// copied: they belong to a union stacked on ours) and those the security module keeps
    /// back. POSIX ACLs go through the ACL API. As in overlayfs, an xattr the upper
    /// filesystem does not support (`EOPNOTSUPP`) is left behind, unless it is an ACL or a
    /// `security.*` one, whose loss would change who may do what: then the copy-up fails.
    pub(crate) fn copy_xattrs(&self, m: &AsMounter<'_>, from: RealPath<'_>, to: &Dentry) -> Result {
        let upper = &self.upper_layer()?.mnt;
        let size = match from.mnt.listxattr(m, from.dentry, &mut []) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e == crate::vfs::errno::eopnotsupp() => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut list = KVVec::from_elem(0u8, size, GFP_KERNEL)?;
        let n = from.mnt.listxattr(m, from.dentry, &mut list)?;
        let mut value: KVVec<u8> = KVVec::new();
        for name in list[..n.min(list.len())]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
        {
            if self.is_private_xattr(name) {
                continue;
            }
            let name = crate::xattr::cstring(name)?;
            if !lsm_copies_xattr(from.dentry, &name)? {
                continue;
            }
            if crate::xattr::is_posix_acl(&name) {
                if let Some(acl) = from.mnt.get_acl(m, from.dentry, &name)? {
                    // A copy: an idmapped upper layer's mount maps what it is given in place.
                    upper.set_acl(m, to, &name, Some(acl.copy()?.as_passed()))?;
                }
                continue;
            }
            let len = loop {
                if value.is_empty() {
                    let need = from.mnt.getxattr(m, from.dentry, &name, &mut [])?;
                    if need == 0 {
                        break 0;
                    }
                    value = KVVec::from_elem(0u8, need, GFP_KERNEL)?;
                }
                match from.mnt.getxattr(m, from.dentry, &name, &mut value) {
                    // Bigger than the buffer (or grown meanwhile): ask for the size again.
                    Err(e) if e == ERANGE => value = KVVec::new(),
                    r => break r?,
                }
            };
            match upper.set_xattr(m, to, &name, Some(&value[..len]), 0) {
                Err(e)
                    if e == crate::vfs::errno::eopnotsupp()
                        && !name.to_bytes().starts_with(b"security.") => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Gives a copy the attributes of the original: size (regular files), mode (not for
    /// symlinks), owner, and the access and modification times, in one change (one
    /// transaction of the upper filesystem, not one per attribute as in overlayfs). The
    /// explicit times win over what the size change would set; the set-group-ID bit is kept
    /// by the new group's rights, as a change of group then mode would.
    pub(crate) fn copy_attrs(&self, m: &AsMounter<'_>, d: &Dentry, st: &RealStat) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        let fmt = st.mode() & bindings::S_IFMT;
        let mut a = Iattr::new();
        if fmt == bindings::S_IFREG {
            a.set_size(st.size());
        }
        if fmt != bindings::S_IFLNK {
            a.set_mode(st.mode());
        }
        a.set_owner(st.uid(), st.gid());
        a.set_times(st.atime(), st.mtime());
        mnt.notify_change(m, d, &mut a)
    }
}

/// Copies up the object of `dentry`, with its data, if an open with `flags` may write it.
pub(crate) fn prepare_open(dentry: &Dentry, flags: u32) -> Result {
    if !flags_need_data(flags) {
        return Ok(());
    }
    let (sb, inode) = union_inode(dentry)?;
    if inode.inode().mode() & bindings::S_IFMT != bindings::S_IFREG {
        return Ok(());
    }
    copy_up_flags(sb, dentry, flags)
}
