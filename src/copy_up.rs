// SPDX-License-Identifier: GPL-2.0

//! Copy-up: before a lower object is changed, it is copied to the upper layer, parents
//! first.
//!
//! The copy is built under a temporary name in the work directory (data, xattrs, then
//! attributes; data synced) and renamed into place in one step, so that after a crash the
//! upper layer shows either no copy or a complete one; leftovers in the work directory are
//! removed at the next mount. Copy-ups of one object are serialized by its `copy_up_lock`.

use crate::inode::RealEntry;
use crate::superblock::UnionFs;
use crate::vfs::{Dentry, FsInode, NewObject, RealStat, Rename, RenameEnd, SuperBlock};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

/// `RENAME_NOREPLACE` of `include/uapi/linux/fs.h`.
const RENAME_NOREPLACE: u32 = 1 << 0;

/// The superblock and union inode of one of our positive dentries.
pub(crate) fn union_inode(d: &Dentry) -> Result<(&SuperBlock<UnionFs>, &FsInode<UnionFs>)> {
    let inode = SuperBlock::<UnionFs>::inode_of(d).ok_or(ENOENT)?;
    Ok((inode.sb(), inode))
}

/// Whether the object of union dentry `d` is on the upper layer already.
fn has_upper(d: &Dentry) -> Result<bool> {
    Ok(union_inode(d)?.1.data()?.upper().is_some())
}

/// Copies `dentry`'s object up, with its parents, if it is not on the upper layer yet.
pub(crate) fn copy_up(sb: &SuperBlock<UnionFs>, dentry: &Dentry) -> Result {
    if !sb.info().has_upper() {
        return Err(EROFS);
    }
    // Top-down without recursion: each round copies the highest ancestor still missing.
    while !has_upper(dentry)? {
        let mut d: ARef<Dentry> = dentry.into();
        loop {
            let p = d.parent();
            if core::ptr::eq(p.as_ptr(), d.as_ptr()) || has_upper(&p)? {
                break;
            }
            d = p;
        }
        copy_up_one(sb, &d.parent(), &d)?;
    }
    Ok(())
}

fn copy_up_one(sb: &SuperBlock<UnionFs>, parent: &Dentry, dentry: &Dentry) -> Result {
    let fs = sb.info();
    let (_, pinode) = union_inode(parent)?;
    let (_, inode) = union_inode(dentry)?;
    let data = inode.data()?;
    let _serialized = data.copy_up_lock.lock();
    if data.upper().is_some() {
        return Ok(());
    }
    if dentry.is_unhashed() {
        // Removed from the union (by unlink or rename) since it was looked up.
        return Err(ENOENT);
    }
    let upper_parent = pinode.data()?.upper().ok_or(EIO)?;
    let lower = data.lower().first().ok_or(EIO)?;
    let name = dentry.name_copy()?;
    let _creds = fs.creds.use_here();
    let mnt = &fs.upper_layer()?.mnt;
    // Moving the copy in changes the directory's times, but the union's view of the
    // directory has not changed: put them back, as overlayfs does.
    let parent_times = RealStat::of(crate::vfs::RealPath {
        mnt,
        dentry: &upper_parent.dentry,
    })?;
    let copy = fs.copy_to_upper(lower, &upper_parent.dentry, &name)?;
    let _ = mnt.set_times(&upper_parent.dentry, &parent_times);
    inode.refresh_from(copy.inode().ok_or(EIO)?);
    inode.publish_upper(copy.clone());
    data.set_upper(RealEntry {
        layer: 0,
        dentry: copy,
    });
    // The object's inode number in the parent's listing is the copy's now.
    pinode.data()?.invalidate_listing();
    Ok(())
}

impl UnionFs {
    /// Copies the real object `lower` to `name` in upper directory `upper_parent`, through a
    /// temporary in the work directory. Returns the upper dentry.
    fn copy_to_upper(
        &self,
        lower: &RealEntry,
        upper_parent: &Dentry,
        name: &[u8],
    ) -> Result<ARef<Dentry>> {
        let lpath = self.real_path(lower)?;
        let st = RealStat::of(lpath)?;
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let mode = st.mode();
        let target;
        let what = match mode & bindings::S_IFMT {
            bindings::S_IFLNK => {
                target = lower.dentry.read_link()?;
                NewObject::Symlink(&target)
            }
            bindings::S_IFREG | bindings::S_IFDIR => NewObject::Node { mode, rdev: 0 },
            _ => NewObject::Node {
                mode,
                rdev: st.rdev(),
            },
        };
        let (copy, _) = self.build_in_work(what, |temp| {
            if mode & bindings::S_IFMT == bindings::S_IFREG {
                mnt.copy_data(lpath, temp, st.size())?;
            }
            mnt.copy_xattrs(lpath, temp, self.own_prefix_cstr())?;
            mnt.copy_attrs(temp, &st)?;
            mnt.rename(&Rename {
                old_parent: work,
                old: RenameEnd::Dentry(temp),
                new_parent: upper_parent,
                new: RenameEnd::Name(name),
                // Never over anything, not even a whiteout: a whiteout there means the
                // object was removed meanwhile.
                flags: RENAME_NOREPLACE,
                expect_old: None,
                expect_new: None,
                new_negative: false,
            })
        })?;
        // The temporary dentry was moved: it is the upper object now.
        Ok(copy)
    }
}

/// Copies up the object of `dentry` if an open with `flags` may write it.
pub(crate) fn prepare_open(dentry: &Dentry, flags: u32) -> Result {
    let writes =
        flags & bindings::O_ACCMODE != bindings::O_RDONLY || flags & bindings::O_TRUNC != 0;
    if !writes {
        return Ok(());
    }
    let (sb, inode) = union_inode(dentry)?;
    if inode.inode().mode() & bindings::S_IFMT != bindings::S_IFREG {
        return Ok(());
    }
    copy_up(sb, dentry)
}
