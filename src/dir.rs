// SPDX-License-Identifier: GPL-2.0

//! Namespace changes: create, link, unlink, rmdir, rename.
//!
//! Everything lands on the upper layer, parents copied up first. A name that the lower
//! layers still have is hidden by a whiteout when removed; a directory made over a whiteout
//! is opaque. Whenever the result must appear in one step (replacing a whiteout, hiding a
//! directory), the new object is made in the work directory and renamed into place.

use crate::copy_up::{copy_up, union_inode};
use crate::inode::{RealEntry, UnionInode};
use crate::namei::Xattr;
use crate::superblock::UnionFs;
use crate::vfs::{Dentry, FsInode, NewObject, RealStat, Rename, RenameEnd, SuperBlock};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

const RENAME_NOREPLACE: u32 = 1 << 0;
const RENAME_EXCHANGE: u32 = 1 << 1;
const RENAME_WHITEOUT: u32 = 1 << 2;

/// The upper directory of union directory `dir`, copied up first.
fn upper_dir<'a>(
    sb: &SuperBlock<UnionFs>,
    dir_dentry: &Dentry,
    dir: &'a FsInode<UnionFs>,
) -> Result<&'a RealEntry> {
    copy_up(sb, dir_dentry)?;
    dir.data()?.upper().ok_or(EIO)
}

/// After a change of `dir`'s entries: its listing and attributes (times, links) are new.
fn dir_changed(dir: &FsInode<UnionFs>) {
    if let Ok(data) = dir.data() {
        data.invalidate_listing();
        if let Some(u) = data.upper() {
            if let Some(real) = u.dentry.inode() {
                dir.refresh_from(real);
            }
        }
    }
}

impl UnionFs {
    /// Makes `what` under a temporary name in the work directory and lets `finish` complete
    /// it and move it into place; if that fails, the temporary is removed again. This is how
    /// everything that must appear in one step reaches the upper layer.
    pub(crate) fn build_in_work<R>(
        &self,
        what: NewObject<'_>,
        finish: impl FnOnce(&Dentry) -> Result<R>,
    ) -> Result<(ARef<Dentry>, R)> {
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let temp = mnt.create(work, None, what)?;
        match finish(&temp) {
            Ok(r) => Ok((temp, r)),
            Err(e) => {
                // Best effort: what is left is removed at the next mount anyway.
                let _ = mnt.remove(work, &temp);
                Err(e)
            }
        }
    }

    /// Puts a new real object at `name` in upper directory `parent`: straight there, or, if
    /// a whiteout is there, made in the work directory and moved over it (a directory then
    /// made opaque, since the names below are not its own).
    fn create_upper(
        &self,
        parent: &Dentry,
        name: &[u8],
        what: NewObject<'_>,
    ) -> Result<ARef<Dentry>> {
        let mnt = &self.upper_layer()?.mnt;
        let over_whiteout = parent
            .lookup_child(mnt, name)?
            .is_some_and(|d| d.is_whiteout());
        if !over_whiteout {
            return mnt.create(parent, Some(name), what);
        }
        let work = self.work_dir()?;
        let (new, ()) = self.build_in_work(what, |temp| {
            let is_dir = temp.is_dir();
            if is_dir {
                mnt.set_xattr(temp, self.xattr_name(Xattr::Opaque), Some(b"y"), 0)?;
            }
            let replaced = mnt.rename(&Rename {
                old_parent: work,
                old: RenameEnd::Dentry(temp),
                new_parent: parent,
                new: RenameEnd::Name(name),
                // A directory cannot replace a non-directory: swap, then drop the whiteout.
                flags: if is_dir { RENAME_EXCHANGE } else { 0 },
                expect_old: None,
                expect_new: None,
                new_negative: true,
            })?;
            if is_dir {
                let _ = mnt.remove(work, &replaced);
            }
            Ok(())
        })?;
        Ok(new)
    }

    /// Replaces upper directory `upper` (at `name` in `parent`), which holds only whiteouts,
    /// by an empty opaque copy of itself, in one step; then removes the old one.
    fn clear_whiteouts(
        &self,
        parent: &Dentry,
        name: &[u8],
        upper: &Dentry,
    ) -> Result<ARef<Dentry>> {
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let path = crate::vfs::RealPath { mnt, dentry: upper };
        let st = RealStat::of(path)?;
        let (new, old) = self.build_in_work(
            NewObject::Node {
                mode: st.mode(),
                rdev: 0,
            },
            |temp| {
                mnt.copy_xattrs(path, temp, self.own_prefix_cstr())?;
                mnt.set_xattr(temp, self.xattr_name(Xattr::Opaque), Some(b"y"), 0)?;
                mnt.copy_attrs(temp, &st)?;
                mnt.rename(&Rename {
                    old_parent: work,
                    old: RenameEnd::Dentry(temp),
                    new_parent: parent,
                    new: RenameEnd::Name(name),
                    flags: RENAME_EXCHANGE,
                    expect_old: None,
                    expect_new: upper.inode(),
                    new_negative: false,
                })
            },
        )?;
        let _ = self.remove_tree(work, &old, 1);
        Ok(new)
    }

    /// Removes `d` (in `parent`) from the upper filesystem, with what it contains down to
    /// `depth` levels (work directory leftovers: whiteouts, copy-up temporaries).
    pub(crate) fn remove_tree(&self, parent: &Dentry, d: &Dentry, depth: u32) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        if d.is_dir() && depth > 0 {
            let names = crate::readdir::real_names(self, crate::vfs::RealPath { mnt, dentry: d })?;
            for n in names.iter() {
                if let Some(child) = d.lookup_child(mnt, n)? {
                    if child.inode().is_some() {
                        self.remove_tree(d, &child, depth - 1)?;
                    }
                }
            }
        }
        mnt.remove(parent, d)
    }

    /// Hides whatever is at `name` in upper directory `parent` behind a whiteout, in one
    /// step: `upper` is the real object there (if any), which is removed.
    fn whiteout(&self, parent: &Dentry, name: &[u8], upper: Option<&Dentry>) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let is_dir = upper.is_some_and(|u| u.is_dir());
        // A whiteout is a 0/0 character device (mode bits 0).
        let wh = NewObject::Node {
            mode: bindings::S_IFCHR,
            rdev: bindings::WHITEOUT_DEV,
        };
        let (_, replaced) = self.build_in_work(wh, |temp| {
            mnt.rename(&Rename {
                old_parent: work,
                old: RenameEnd::Dentry(temp),
                new_parent: parent,
                new: RenameEnd::Name(name),
                flags: if is_dir { RENAME_EXCHANGE } else { 0 },
                expect_old: None,
                expect_new: upper.and_then(|u| u.inode()),
                new_negative: upper.is_none(),
            })
        })?;
        if is_dir {
            let _ = mnt.remove(work, &replaced);
        }
        Ok(())
    }
}

/// `create`, `mkdir`, `mknod`, `symlink`.
pub(crate) fn create(dir: &FsInode<UnionFs>, dentry: &Dentry, what: NewObject<'_>) -> Result {
    // A 0/0 character device is a whiteout on the upper layer: not something to create.
    if let NewObject::Node { mode, rdev: 0 } = what {
        if mode & bindings::S_IFMT == bindings::S_IFCHR {
            return Err(EPERM);
        }
    }
    let sb = dir.sb();
    let fs = sb.info();
    let parent = dentry.parent();
    let up = upper_dir(sb, &parent, dir)?;
    let name = dentry.name();
    let real = {
        // The new object belongs to the caller, as the union inode would.
        let _creds = fs.creds.use_as_creator(dir.inode())?;
        fs.create_upper(&up.dentry, name, what)?
    };
    let mut stack = KVec::new();
    stack.push(
        RealEntry {
            layer: 0,
            dentry: real,
        },
        GFP_KERNEL,
    )?;
    let inode = fs.get_inode(sb, stack).inspect_err(|_| {
        // The object exists on the upper layer: let the next lookup find it.
        dentry.drop_from_cache();
        dir_changed(dir);
    })?;
    dentry.instantiate(inode);
    dir_changed(dir);
    Ok(())
}

/// `tmpfile`: an unnamed file in the upper copy of `dir`, owned by the caller.
pub(crate) fn tmpfile(
    dir: &FsInode<UnionFs>,
    dentry: &Dentry,
    open: &mut dyn FnMut(crate::vfs::RealPath<'_>) -> Result<ARef<Dentry>>,
) -> Result<ARef<crate::vfs::Inode>> {
    let sb = dir.sb();
    let fs = sb.info();
    let parent = dentry.parent();
    let up = upper_dir(sb, &parent, dir)?;
    let real = {
        let _creds = fs.creds.use_as_creator(dir.inode())?;
        open(fs.real_path(up)?)?
    };
    let mut stack = KVec::new();
    stack.push(
        RealEntry {
            layer: 0,
            dentry: real,
        },
        GFP_KERNEL,
    )?;
    fs.get_inode(sb, stack)
}

/// `link`: another name for `old`'s object (copied up first).
pub(crate) fn link(old: &Dentry, dir: &FsInode<UnionFs>, new: &Dentry) -> Result {
    let sb = dir.sb();
    let fs = sb.info();
    let (_, inode) = union_inode(old)?;
    copy_up(sb, old)?;
    let parent = new.parent();
    let up = upper_dir(sb, &parent, dir)?;
    let target = inode.data()?.upper().ok_or(EIO)?;
    {
        let _creds = fs.creds.use_here();
        fs.create_upper(&up.dentry, new.name(), NewObject::Link(&target.dentry))?;
    }
    inode.refresh_from(target.dentry.inode().ok_or(EIO)?);
    new.instantiate(inode.inode().into());
    dir_changed(dir);
    Ok(())
}

/// `unlink` and `rmdir`.
pub(crate) fn remove(dir: &FsInode<UnionFs>, dentry: &Dentry, is_dir: bool) -> Result {
    let sb = dir.sb();
    let fs = sb.info();
    let (_, inode) = union_inode(dentry)?;
    let data: &UnionInode = inode.data()?;
    let name = dentry.name();
    let lower_positive = fs.lower_positive(dir.data()?, name)?;
    let mut clear = false;
    // A directory only on the upper layer, with nothing below its name, holds no whiteouts:
    // the real rmdir checks that it is empty (as overlayfs skips its check then).
    if is_dir && (lower_positive || !data.lower().is_empty()) {
        let (visible, upper_used) = crate::readdir::emptiness(fs, data)?;
        if visible != 0 {
            return Err(crate::vfs::errno::enotempty());
        }
        clear = upper_used;
    }
    let parent = dentry.parent();
    let up = upper_dir(sb, &parent, dir)?;
    {
        // No copy-up of the object may slip in between looking at its upper copy and
        // removing it (an open for write races with unlink).
        let _no_copy_up = data.copy_up_lock.lock();
        let _creds = fs.creds.use_here();
        let mut upper: Option<ARef<Dentry>> = data.upper().map(|e| e.dentry.clone());
        if clear {
            if let Some(u) = upper.take() {
                upper = Some(fs.clear_whiteouts(&up.dentry, name, &u)?);
            }
        }
        if lower_positive {
            fs.whiteout(&up.dentry, name, upper.as_deref())?;
        } else {
            let u = upper.ok_or(EIO)?;
            fs.upper_layer()?
                .mnt
                .remove_name(&up.dentry, name, u.inode().ok_or(EIO)?)?;
        }
    }
    if is_dir {
        inode.inode().clear_nlink();
    } else {
        inode.inode().drop_nlink();
    }
    // The dentry's stack is stale now: the next lookup of the name starts afresh.
    dentry.drop_from_cache();
    dir_changed(dir);
    Ok(())
}

/// Whether a directory can be renamed: only one that exists on the upper layer alone (no
/// `redirect_dir`, as overlayfs without it). Non-directories always can.
fn can_move(inode: &FsInode<UnionFs>) -> Result<bool> {
    Ok(!inode.inode().is_dir() || inode.data()?.lower().is_empty())
}

/// Whether union dentry `d` is negative with a whiteout on the upper layer at its name.
fn is_upper_whiteout(fs: &UnionFs, d: &Dentry, parent: &FsInode<UnionFs>) -> Result<bool> {
    if d.inode().is_some() {
        return Ok(false);
    }
    let Some(up) = parent.data()?.upper() else {
        return Ok(false);
    };
    let mnt = &fs.upper_layer()?.mnt;
    Ok(up
        .dentry
        .lookup_child(mnt, d.name())?
        .is_some_and(|c| c.is_whiteout()))
}

fn is_opaque(fs: &UnionFs, e: &RealEntry) -> Result<bool> {
    Ok(fs.opaque_value(fs.layers.get(e.layer).ok_or(EIO)?, &e.dentry) == b'y')
}

/// `rename` (flags `RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
pub(crate) fn rename(old: &Dentry, new: &Dentry, flags: u32) -> Result {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
        return Err(EINVAL);
    }
    let flags = flags & !RENAME_NOREPLACE;
    let overwrite = flags & RENAME_EXCHANGE == 0;
    let (sb, old_inode) = union_inode(old)?;
    let fs = sb.info();
    let new_inode = union_inode(new).ok().map(|(_, i)| i);
    let (old_parent, new_parent) = (old.parent(), new.parent());
    let (_, old_dir) = union_inode(&old_parent)?;
    let (_, new_dir) = union_inode(&new_parent)?;
    let is_dir = old_inode.inode().is_dir();

    if !can_move(old_inode)? {
        return Err(crate::vfs::errno::exdev());
    }
    if let (false, Some(n)) = (overwrite, new_inode) {
        if !can_move(n)? {
            return Err(crate::vfs::errno::exdev());
        }
    }
    let mut clear = false;
    if let (true, Some(n)) = (overwrite, new_inode) {
        if n.inode().is_dir() && !n.data()?.lower().is_empty() {
            let (visible, upper_used) = crate::readdir::emptiness(fs, n.data()?)?;
            if visible != 0 {
                return Err(crate::vfs::errno::enotempty());
            }
            clear = upper_used;
        }
    }

    let new_whiteout = is_upper_whiteout(fs, new, new_dir)?;
    let old_lower_positive = fs.lower_positive(old_dir.data()?, old.name())?;
    let mut real_flags = flags;
    let mut cleanup_whiteout = false;
    if overwrite {
        if old_lower_positive {
            // The old name must stay hidden: leave a whiteout there (or swap the one at
            // the target into it).
            real_flags |= if new_whiteout {
                RENAME_EXCHANGE
            } else {
                RENAME_WHITEOUT
            };
        } else if is_dir && new_whiteout {
            real_flags |= RENAME_EXCHANGE;
            cleanup_whiteout = true;
        }
    }

    copy_up(sb, old)?;
    let new_up_dir = upper_dir(sb, &new_parent, new_dir)?;
    if !overwrite {
        copy_up(sb, new)?;
    }
    let old_up_dir = old_dir.data()?.upper().ok_or(EIO)?;
    let old_upper = old_inode.data()?.upper().ok_or(EIO)?;
    let mnt = &fs.upper_layer()?.mnt;
    let _creds = fs.creds.use_here();

    let mut new_upper: Option<ARef<Dentry>> = match new_inode {
        Some(n) => n.data()?.upper().map(|e| e.dentry.clone()),
        None => None,
    };
    if clear {
        if let Some(u) = new_upper.take() {
            new_upper = Some(fs.clear_whiteouts(&new_up_dir.dentry, new.name(), &u)?);
        }
    }
    // A directory that moves into a merged directory must not pick up the names of a lower
    // directory of the same name there.
    if is_dir && !is_opaque(fs, old_upper)? && new_dir.data()?.is_merged() {
        mnt.set_xattr(
            &old_upper.dentry,
            fs.xattr_name(Xattr::Opaque),
            Some(b"y"),
            0,
        )
        .map_err(|_| crate::vfs::errno::exdev())?;
    }
    if let (false, Some(n)) = (overwrite, new_inode) {
        if n.inode().is_dir() && old_dir.data()?.is_merged() {
            if let Some(nu) = n.data()?.upper() {
                if !is_opaque(fs, nu)? {
                    mnt.set_xattr(&nu.dentry, fs.xattr_name(Xattr::Opaque), Some(b"y"), 0)
                        .map_err(|_| crate::vfs::errno::exdev())?;
                }
            }
        }
    }
    let replaced = mnt.rename(&Rename {
        old_parent: &old_up_dir.dentry,
        old: RenameEnd::Name(old.name()),
        new_parent: &new_up_dir.dentry,
        new: RenameEnd::Name(new.name()),
        flags: real_flags,
        expect_old: old_upper.dentry.inode(),
        expect_new: new_upper.as_deref().and_then(|d| d.inode()),
        new_negative: new_upper.is_none(),
    })?;
    if cleanup_whiteout {
        let _ = mnt.remove(&old_up_dir.dentry, &replaced);
    }
    if let (true, Some(n)) = (overwrite, new_inode) {
        if n.inode().is_dir() {
            n.inode().clear_nlink();
        } else {
            n.inode().drop_nlink();
        }
    }
    dir_changed(old_dir);
    dir_changed(new_dir);
    Ok(())
}

/// `setattr`: on the upper copy (data included for a size change, as for any copy-up).
pub(crate) fn setattr(dentry: &Dentry, attr: &mut crate::vfs::Iattr) -> Result {
    let (sb, inode) = union_inode(dentry)?;
    let fs = sb.info();
    copy_up(sb, dentry)?;
    let upper = inode.data()?.upper().ok_or(EIO)?;
    {
        let _creds = fs.creds.use_here();
        fs.upper_layer()?.mnt.setattr(&upper.dentry, attr)?;
    }
    inode.refresh_from(upper.dentry.inode().ok_or(EIO)?);
    Ok(())
}

/// `fsync` of a directory: its upper copy, if it has one (lower ones never change).
pub(crate) fn fsync_dir(dir: &FsInode<UnionFs>, datasync: bool) -> Result {
    let fs = dir.sb().info();
    match dir.data()?.upper() {
        Some(u) => crate::vfs::RealFile::open_dir(fs.real_path(u)?, &fs.creds)?.fsync(datasync),
        None => Ok(()),
    }
}
