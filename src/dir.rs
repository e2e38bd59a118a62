// SPDX-License-Identifier: GPL-2.0

//! Directories: lookup, the namespace changes (create, link, unlink, rmdir, rename, tmpfile)
//! and their open files.
//!
//! Everything lands on the upper layer, parents copied up first. A name that the lower
//! layers still have is hidden by a whiteout when removed; a directory made over a whiteout
//! is opaque. Whenever the result must appear in one step (replacing a whiteout, hiding a
//! directory), the new object is made in the work directory and renamed into place.

use crate::copy_up::{copy_up, has_upper_alias, union_inode};
use crate::file::OpenFile;
use crate::index::NlinkBase;
use crate::inode::{RealEntry, UnionInode};
use crate::namei::{Xattr, OCI_OPAQUE_MARKER, OCI_WHITEOUT_PREFIX};
use crate::params::Redirect;
use crate::readdir::DirState;
use crate::superblock::UnionFs;
use crate::vfs::{
    errno, AsMounter, Dentry, DentryKind, DirEmitter, DirOps, FsInode, Idmap, Inode, IteratedDir,
    NewObject, RealFile, RealPath, Rename, RenameEnd, SuperBlock, UserFile,
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

const RENAME_NOREPLACE: u32 = crate::vfs::bindings::UNIONRS_RENAME_NOREPLACE;
const RENAME_EXCHANGE: u32 = crate::vfs::bindings::UNIONRS_RENAME_EXCHANGE;
const RENAME_WHITEOUT: u32 = crate::vfs::bindings::UNIONRS_RENAME_WHITEOUT;

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
            if let (Some(real), Ok(upper)) = (u.dentry.inode(), dir.sb().info().upper_layer()) {
                dir.refresh_from(real, upper.mnt.id_map());
            }
        }
    }
}

/// What a rename on the upper layer must find under its locks, else the union's view was
/// stale (`ESTALE`).
#[derive(Default)]
pub(crate) struct Expect<'a> {
    /// The source is this object.
    old: Option<&'a Inode>,
    /// The target is this object.
    new: Option<&'a Inode>,
    /// The target is negative or a whiteout (a free name in the union).
    new_free: bool,
}

impl Expect<'_> {
    fn check(&self, old: &Dentry, new: &Dentry) -> Result {
        let is = |d: &Dentry, want: &Inode| d.inode().is_some_and(|i| core::ptr::eq(i, want));
        let stale = self.old.is_some_and(|o| !is(old, o))
            || self.new.is_some_and(|n| !is(new, n))
            || (self.new_free && new.inode().is_some_and(|i| !i.is_whiteout()))
            || old.inode().is_some_and(|o| is(new, o));
        if stale {
            Err(errno::estale())
        } else {
            Ok(())
        }
    }
}

/// Numbers the temporary names in the work directory.
static TEMP_ID: AtomicU32 = AtomicU32::new(0);

/// A name for a temporary object in the work directory: `#` and a number in hex, as
/// overlayfs names its own.
pub(crate) fn temp_name(buf: &mut [u8; 16]) -> &[u8] {
    let id = TEMP_ID.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    buf[0] = b'#';
    let digits = (32 - id.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, b) in buf[1..=digits].iter_mut().enumerate() {
        let nibble = (id >> (4 * (digits - 1 - i))) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    &buf[..=digits]
}

impl UnionFs {
    /// Creates `name` in upper directory `parent`: the new real object. An upper filesystem
    /// that leaves the new dentry negative or unhashed (case-folding ones) cannot hold a
    /// union's objects: `EIO`, as in overlayfs.
    pub(crate) fn create_real(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        what: NewObject<'_>,
    ) -> Result<ARef<Dentry>> {
        let d = self.upper_layer()?.mnt.create(m, parent, name, what)?;
        if d.inode().is_none() || d.is_unhashed() {
            return Err(EIO);
        }
        Ok(d)
    }

    /// Runs `f` with the mounter credentials and the owner new object `dentry` (of type and
    /// mode `mode`) in union directory `dir` gets, for a caller that came through a mount
    /// with `idmap`: the caller's fsuid, and the directory's group if it is set-group-ID (else
    /// the caller's fsgid), so that the real object belongs to whom the union object would.
    fn with_creator<R>(
        &self,
        dir: &Inode,
        dentry: &Dentry,
        mode: u32,
        idmap: Idmap,
        f: impl FnOnce(&AsMounter<'_>) -> R,
    ) -> Result<R> {
        // Through an idmapped mount of the union, the caller's ids as the union keeps them.
        let (uid, mut gid) = idmap.caller_fs_ids(dir.user_ns())?;
        if dir.mode() & bindings::S_ISGID != 0 {
            gid = dir.gid();
        }
        self.creds.with_creator(uid, gid, dentry, mode, f)
    }

    /// Makes `what` under a temporary name in the work directory and lets `finish` complete
    /// it and move it into place; if that fails, the temporary is removed again. This is how
    /// everything that must appear in one step reaches the upper layer.
    pub(crate) fn build_in_work<R>(
        &self,
        m: &AsMounter<'_>,
        what: NewObject<'_>,
        finish: impl FnOnce(&Dentry) -> Result<R>,
    ) -> Result<(ARef<Dentry>, R)> {
        let work = self.work_dir()?;
        let temp = self.create_real(m, work, temp_name(&mut [0; 16]), what)?;
        match finish(&temp) {
            Ok(r) => Ok((temp, r)),
            Err(e) => {
                // Best effort: what is left is removed at the next mount anyway.
                let _ = self.upper_layer()?.mnt.remove(m, work, &temp);
                Err(e)
            }
        }
    }

    /// Puts a new real object at `name` in upper directory `parent`: straight there, or, if
    /// a whiteout is there, made in the work directory and moved over it (a directory then
    /// made opaque, since the names below are not its own).
    fn create_upper(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        what: NewObject<'_>,
    ) -> Result<ARef<Dentry>> {
        let mnt = &self.upper_layer()?.mnt;
        let over_whiteout = mnt
            .lookup(m, parent, name)?
            .is_some_and(|d| d.is_whiteout());
        if !over_whiteout {
            let is_dir = matches!(what, NewObject::Node { mode, .. }
                if mode & bindings::S_IFMT == bindings::S_IFDIR);
            if !is_dir || !self.has_oci_whiteout(m, self.upper_layer()?, parent, name)? {
                return self.create_real(m, parent, name, what);
            }
            // A directory where the upper layer has an OCI whiteout of the name: opaque from
            // the start, or it would show the removed directory's names below.
            let (new, _) = self.build_in_work(m, what, |temp| {
                mnt.set_xattr(m, temp, self.xattr_name(Xattr::Opaque), Some(b"y"), 0)?;
                let expect = Expect {
                    new_free: true,
                    ..Default::default()
                };
                self.move_into_place(m, temp, parent, name, RENAME_NOREPLACE, &expect)
            })?;
            return Ok(new);
        }
        let work = self.work_dir()?;
        let (new, ()) = self.build_in_work(m, what, |temp| {
            let is_dir = temp.is_dir();
            if is_dir {
                mnt.set_xattr(m, temp, self.xattr_name(Xattr::Opaque), Some(b"y"), 0)?;
                self.add_oci_opaque_marker(m, temp)?;
            }
            // A directory cannot replace a non-directory: swap, then drop the whiteout.
            let flags = if is_dir { RENAME_EXCHANGE } else { 0 };
            let expect = Expect {
                new_free: true,
                ..Default::default()
            };
            let replaced = self.move_into_place(m, temp, parent, name, flags, &expect)?;
            if is_dir {
                let _ = mnt.remove(m, work, &replaced);
            }
            Ok(())
        })?;
        Ok(new)
    }

    /// Moves `temp`, built in the work directory, to `name` in upper directory `parent` (with
    /// `RENAME_*` `flags`), once what the rename finds under its locks is what `expect` says;
    /// returns the dentry that was at the target (with `RENAME_EXCHANGE`, what is at the
    /// temporary name now).
    pub(crate) fn move_into_place(
        &self,
        m: &AsMounter<'_>,
        temp: &Dentry,
        parent: &Dentry,
        name: &[u8],
        flags: u32,
        expect: &Expect<'_>,
    ) -> Result<ARef<Dentry>> {
        let rename = Rename {
            old_parent: self.work_dir()?,
            old: RenameEnd::Dentry(temp),
            new_parent: parent,
            new: name,
            flags,
        };
        self.upper_layer()?
            .mnt
            .rename(m, &rename, |o, n| expect.check(o, n))
    }

    /// Replaces upper directory `upper` (at `name` in `parent`), which holds only whiteouts,
    /// by an empty opaque copy of itself, in one step; then removes the old one.
    fn clear_whiteouts(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        upper: &Dentry,
    ) -> Result<ARef<Dentry>> {
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let path = RealPath { mnt, dentry: upper };
        let st = mnt.stat(m, upper)?;
        let (new, old) = self.build_in_work(
            m,
            NewObject::Node {
                mode: st.mode(),
                rdev: 0,
            },
            |temp| {
                self.copy_xattrs(m, path, temp)?;
                mnt.set_xattr(m, temp, self.xattr_name(Xattr::Opaque), Some(b"y"), 0)?;
                self.copy_attrs(m, temp, &st)?;
                let expect = Expect {
                    new: upper.inode(),
                    ..Default::default()
                };
                self.move_into_place(m, temp, parent, name, RENAME_EXCHANGE, &expect)
            },
        )?;
        let _ = self.remove_tree(m, work, &old, 1);
        Ok(new)
    }

    /// Removes `d` (in `parent`) from the upper filesystem, with what it contains down to
    /// `depth` levels (work directory leftovers: whiteouts, copy-up temporaries).
    pub(crate) fn remove_tree(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        d: &Dentry,
        depth: u32,
    ) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        if d.is_dir() && depth > 0 {
            let dir = RealFile::open_dir(m, RealPath { mnt, dentry: d })?;
            let names = crate::readdir::real_entries(m, &dir)?;
            for (n, _) in names.iter() {
                if let Some(child) = mnt.lookup(m, d, n)? {
                    if child.inode().is_some() {
                        self.remove_tree(m, d, &child, depth - 1)?;
                    }
                }
            }
        }
        mnt.remove(m, parent, d)
    }

    /// Hides whatever is at `name` in upper directory `parent` behind a whiteout, in one
    /// step: `upper` is the real object there (if any), which is removed.
    pub(crate) fn whiteout(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        upper: Option<&Dentry>,
    ) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        let work = self.work_dir()?;
        let is_dir = upper.is_some_and(|u| u.is_dir());
        // A whiteout is a 0/0 character device (mode bits 0).
        let wh = NewObject::Node {
            mode: bindings::S_IFCHR,
            rdev: bindings::WHITEOUT_DEV,
        };
        let (_, replaced) = self.build_in_work(m, wh, |temp| {
            let expect = Expect {
                new: upper.and_then(|u| u.inode()),
                new_free: upper.is_none(),
                ..Default::default()
            };
            let flags = if is_dir { RENAME_EXCHANGE } else { 0 };
            self.move_into_place(m, temp, parent, name, flags, &expect)
        })?;
        if is_dir {
            let _ = mnt.remove(m, work, &replaced);
        }
        Ok(())
    }

    /// With `whiteout=oci`, puts an OCI opaque marker (`.wh..wh..opq`) in upper directory
    /// `dir`, which is made opaque: so that the upper layer reads as an OCI layer too.
    pub(crate) fn add_oci_opaque_marker(&self, m: &AsMounter<'_>, dir: &Dentry) -> Result {
        if !self.oci_whiteouts {
            return Ok(());
        }
        self.make_oci_marker(m, dir, OCI_OPAQUE_MARKER)
    }

    /// Makes the empty file an OCI marker is (mode bits 0, as overlayfs' whiteouts), unless
    /// there is one already.
    fn make_oci_marker(&self, m: &AsMounter<'_>, dir: &Dentry, name: &[u8]) -> Result {
        let file = NewObject::Node {
            mode: bindings::S_IFREG,
            rdev: 0,
        };
        match self.create_real(m, dir, name, file) {
            Err(e) if e != EEXIST => Err(e),
            _ => Ok(()),
        }
    }

    /// With `whiteout=oci`, hides `name` in upper directory `parent` by an OCI whiteout: an
    /// empty `.wh.NAME` file, then `upper` (the real object at `name`, emptied of whiteouts if
    /// a directory) is removed. Until it is, the upper layer's own object is what the union
    /// shows (an OCI whiteout hides only the layers below), so a crash in between leaves the
    /// name as it was.
    pub(crate) fn oci_whiteout(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        upper: Option<&Dentry>,
    ) -> Result {
        self.make_oci_marker(m, parent, &oci_whiteout_name(name)?)?;
        // By name: `upper` may be the dentry of another hard link of the same inode.
        match upper.map(|u| u.inode().ok_or(EIO)).transpose()? {
            Some(expect) => self.remove_name(m, parent, name, expect),
            None => Ok(()),
        }
    }

    /// Removes the OCI whiteout of `name` from upper directory `parent` (a rename that made
    /// it failed).
    fn remove_oci_whiteout(&self, m: &AsMounter<'_>, parent: &Dentry, name: &[u8]) -> Result {
        let mnt = &self.upper_layer()?.mnt;
        match mnt.lookup(m, parent, &oci_whiteout_name(name)?)? {
            Some(wh) if wh.inode().is_some() => mnt.remove(m, parent, &wh),
            _ => Ok(()),
        }
    }

    /// Removes `name` from upper directory `parent` if it is still `expect` (hard links share
    /// an inode, so a name is checked by the object it names).
    fn remove_name(
        &self,
        m: &AsMounter<'_>,
        parent: &Dentry,
        name: &[u8],
        expect: &Inode,
    ) -> Result {
        self.upper_layer()?.mnt.remove_name(m, parent, name, |d| {
            if d.inode().is_some_and(|i| core::ptr::eq(i, expect)) {
                Ok(())
            } else {
                Err(errno::estale())
            }
        })
    }
}

/// Whether a directory can be renamed (overlayfs' `ovl_can_move`): with `redirect_dir=on` any,
/// else only one that exists on the upper layer alone. Non-directories always can.
fn can_move(inode: &FsInode<UnionFs>) -> Result<bool> {
    Ok(inode.sb().info().redirect == Redirect::On
        || !inode.inode().is_dir()
        || inode.data()?.lower().is_empty())
}

/// Whether renaming the object needs a redirect (overlayfs' `ovl_type_merge_or_lower`, after
/// the copy-up): a directory with lower directories, or a metacopy file (its data is found
/// by its lower name).
fn needs_redirect(inode: &FsInode<UnionFs>) -> Result<bool> {
    let data = inode.data()?;
    Ok(match inode.inode().is_dir() {
        true => !data.lower().is_empty(),
        false => data.is_metacopy(),
    })
}

/// Records on the upper copy of `dentry` (a directory or a metacopy file), about to be renamed
/// or linked, where its lower objects are (overlayfs' `ovl_set_redirect`): its name, for a
/// rename in the same directory (not of a lower hard link), else its path from the root, both
/// as they were before any rename. A redirect
/// already there is kept if it still says the same. A path longer than `redirect_max`, or an
/// upper layer without xattrs, fails with `EXDEV` (`mv` then copies).
fn set_redirect(fs: &UnionFs, m: &AsMounter<'_>, dentry: &Dentry, samedir: bool) -> Result {
    let (_, inode) = union_inode(dentry)?;
    let data = inode.data()?;
    // A lower hard link's names may end up in different directories (overlayfs'
    // `ovl_need_absolute_redirect`).
    let lower_hard_link = || {
        data.lower()
            .first()
            .and_then(|l| l.dentry.inode())
            .is_some_and(|i| i.nlink() > 1)
    };
    let absolute = !samedir || !inode.inode().is_dir() && lower_hard_link();
    if let Some(r) = data.redirect()? {
        if !absolute || r.first() == Some(&b'/') {
            return Ok(());
        }
    }
    let value = match absolute {
        true => absolute_redirect(dentry, crate::defaults::redirect_max())?,
        false => dentry.name_copy()?,
    };
    let upper = data.upper().ok_or(EIO)?;
    match fs.set_private_xattr(m, &upper.dentry, Xattr::Redirect, &value) {
        Ok(true) => {
            data.set_redirect(value);
            Ok(())
        }
        r => {
            // No xattrs on the upper layer: overlayfs' `ovl_check_setxattr` says EXDEV.
            let e = r.err().unwrap_or(errno::exdev());
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: failed to set redirect ({})",
                e.to_errno()
            ));
            Err(errno::exdev())
        }
    }
}

/// The path of union dentry `dentry` from the root as the lower layers know it (overlayfs'
/// `ovl_get_redirect`): each ancestor by its redirect, or else its name, up to the root or
/// an absolute redirect. `EXDEV` if longer than `max`.
fn absolute_redirect(dentry: &Dentry, max: usize) -> Result<KVec<u8>> {
    let mut parts: KVec<KVec<u8>> = KVec::new();
    let mut total = 0usize;
    let mut d: ARef<Dentry> = dentry.into();
    while !d.is_root() {
        let (_, inode) = union_inode(&d)?;
        let part = match inode.data()?.redirect()? {
            Some(r) => r,
            None => d.name_copy()?,
        };
        let absolute = part.first() == Some(&b'/');
        total += part.len() + usize::from(!absolute);
        if total > max {
            return Err(errno::exdev());
        }
        parts.push(part, GFP_KERNEL)?;
        if absolute {
            break;
        }
        d = d.parent();
    }
    let mut path = KVec::with_capacity(total, GFP_KERNEL)?;
    for part in parts.iter().rev() {
        if part.first() != Some(&b'/') {
            path.push(b'/', GFP_KERNEL)?;
        }
        path.extend_from_slice(part, GFP_KERNEL)?;
    }
    Ok(path)
}

/// Before a name is removed, replaced or linked to (overlayfs' `ovl_nlink_start`): an object
/// that copy-up puts in the index (a lower hard link; with `nfs_export` anything lower) is
/// copied up first, and a non-directory's link count is recorded relative to its upper inode,
/// whose count the change moves along with the union's.
fn nlink_start(sb: &SuperBlock<UnionFs>, dentry: &Dentry, data: &UnionInode) -> Result {
    let fs = sb.info();
    if fs.needs_index(data) && !has_upper_alias(dentry)? {
        copy_up(sb, dentry)?;
    }
    if data.is_indexed() && !data.is_dir() {
        fs.with_mounter(|m| fs.set_nlink_xattr(m, data, NlinkBase::Upper))?;
    }
    Ok(())
}

/// After a name of indexed `data` was added (`more`) or removed: the union's count follows,
/// and once no name is left the index entry goes (overlayfs' `ovl_nlink_end`).
fn nlink_end(fs: &UnionFs, data: &UnionInode, more: bool) {
    if !data.is_indexed() {
        return;
    }
    // A directory's index entry goes with the directory (`nlink_end` only follows its
    // removal).
    if !data.is_dir() {
        data.change_union_nlink(more);
    }
    if data.is_dir() || data.union_nlink() == 0 {
        fs.with_mounter(|m| fs.cleanup_index(m, data));
    }
}

/// Whether union dentry `d` is negative with a whiteout on the upper layer at its name.
fn is_upper_whiteout(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    d: &Dentry,
    parent: &FsInode<UnionFs>,
) -> Result<bool> {
    if d.inode().is_some() {
        return Ok(false);
    }
    let Some(up) = parent.data()?.upper() else {
        return Ok(false);
    };
    Ok(fs
        .upper_layer()?
        .mnt
        .lookup(m, &up.dentry, d.name())?
        .is_some_and(|c| c.is_whiteout()))
}

/// `.wh.NAME`: the OCI whiteout of `name`.
fn oci_whiteout_name(name: &[u8]) -> Result<KVec<u8>> {
    let mut marker = KVec::with_capacity(OCI_WHITEOUT_PREFIX.len() + name.len(), GFP_KERNEL)?;
    marker.extend_from_slice(OCI_WHITEOUT_PREFIX, GFP_KERNEL)?;
    marker.extend_from_slice(name, GFP_KERNEL)?;
    Ok(marker)
}

fn is_opaque(fs: &UnionFs, m: &AsMounter<'_>, e: &RealEntry) -> Result<bool> {
    fs.is_opaque_dir(m, fs.layers.get(e.layer).ok_or(EIO)?, &e.dentry)
}

/// `unlink` and `rmdir`.
fn remove(dir: &FsInode<UnionFs>, dentry: &Dentry, is_dir: bool) -> Result {
    let sb = dir.sb();
    let fs = sb.info();
    let (_, inode) = union_inode(dentry)?;
    let data: &UnionInode = inode.data()?;
    let name = dentry.name();
    let (lower_positive, clear) = fs.with_mounter(|m| -> Result<_> {
        let lower_positive = fs.lower_positive(m, dir.data()?, name)?;
        let mut clear = false;
        // A directory only on the upper layer, with nothing below its name, holds no
        // whiteouts: the real rmdir checks that it is empty (as overlayfs skips its check
        // then). With OCI whiteouts it may hold their markers, which the union does not show.
        if is_dir && (lower_positive || !data.lower().is_empty() || fs.oci_whiteouts) {
            let (visible, upper_used) = crate::readdir::emptiness(fs, m, data)?;
            if visible != 0 {
                return Err(errno::enotempty());
            }
            clear = upper_used;
        }
        Ok((lower_positive, clear))
    })?;
    let parent = dentry.parent();
    let up = upper_dir(sb, &parent, dir)?;
    nlink_start(sb, dentry, data)?;
    {
        // No copy-up of the object may slip in between looking at its upper copy and
        // removing it (an open for write races with unlink).
        let _no_copy_up = data.copy_up_lock.lock()?;
        fs.with_mounter(|m| -> Result {
            let mut upper: Option<ARef<Dentry>> = data.upper().map(|e| e.dentry.clone());
            if clear {
                if let Some(u) = upper.take() {
                    upper = Some(fs.clear_whiteouts(m, &up.dentry, name, &u)?);
                }
            }
            // A name too long for its OCI whiteout gets overlayfs' (layers may mix them).
            if lower_positive && fs.oci_whiteouts && UnionFs::fits_oci_whiteout(name) {
                fs.oci_whiteout(m, &up.dentry, name, upper.as_deref())
            } else if lower_positive {
                fs.whiteout(m, &up.dentry, name, upper.as_deref())
            } else {
                let u = upper.ok_or(EIO)?;
                fs.remove_name(m, &up.dentry, name, u.inode().ok_or(EIO)?)
            }
        })?;
    }
    if is_dir {
        inode.inode().clear_nlink();
    } else {
        inode.inode().drop_nlink();
    }
    nlink_end(fs, data, false);
    // The dentry's stack is stale now: the next lookup of the name starts afresh.
    dentry.drop_from_cache();
    dir_changed(dir);
    Ok(())
}

/// Makes the union inode of a new real object on the upper layer and gives it to `dentry`.
fn instantiate_new(dir: &FsInode<UnionFs>, dentry: &Dentry, real: ARef<Dentry>) -> Result {
    let sb = dir.sb();
    let mut stack = KVec::new();
    stack.push(
        RealEntry {
            layer: 0,
            dentry: real,
        },
        GFP_KERNEL,
    )?;
    let inode = sb.info().get_inode(sb, stack).inspect_err(|_| {
        // The object exists on the upper layer: let the next lookup find it.
        dentry.drop_from_cache();
        dir_changed(dir);
    })?;
    dentry.instantiate(inode);
    dir_changed(dir);
    Ok(())
}

#[vtable]
impl DirOps for UnionFs {
    type DirState = DirState;

    fn lookup(dir: &FsInode<Self>, dentry: &Dentry) -> Result<Option<ARef<Inode>>> {
        crate::namei::lookup(dir, dentry)
    }

    /// `create`, `mkdir`, `mknod`, `symlink`: the new object belongs to the caller.
    fn create(dir: &FsInode<Self>, dentry: &Dentry, what: NewObject<'_>, idmap: Idmap) -> Result {
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
        let mode = match what {
            NewObject::Node { mode, .. } => mode,
            _ => bindings::S_IFLNK | 0o777,
        };
        let merged_parent = dir.data()?.is_merged();
        let real = fs.with_creator(dir.inode(), dentry, mode, idmap, |m| {
            let real = fs.create_upper(m, &up.dentry, dentry.name(), what)?;
            // When the layers may not change offline, a directory made in a merged one is
            // made opaque at once, as overlayfs does (only to save lookups below it, so a
            // failure does not matter).
            if merged_parent && real.is_dir() && !fs.allow_offline_changes() {
                let _ = fs.set_private_xattr(m, &real, Xattr::Opaque, b"y");
            }
            Ok::<_, Error>(real)
        })??;
        instantiate_new(dir, dentry, real)
    }

    /// Another name for `old`'s object (copied up first).
    fn link(old: &Dentry, dir: &FsInode<Self>, new: &Dentry) -> Result {
        let sb = dir.sb();
        let fs = sb.info();
        let (_, inode) = union_inode(old)?;
        copy_up(sb, old)?;
        nlink_start(sb, old, inode.data()?)?;
        let parent = new.parent();
        let up = upper_dir(sb, &parent, dir)?;
        let target = inode.data()?.upper().ok_or(EIO)?;
        fs.with_mounter(|m| {
            // A metacopy file's new name must lead to its data too.
            if inode.data()?.is_metacopy() {
                set_redirect(fs, m, old, false)?;
            }
            // A name of a copy in a new directory: its number there must be looked up.
            if inode.data()?.has_origin() {
                fs.set_impure(m, dir.data()?)?;
            }
            fs.create_upper(m, &up.dentry, new.name(), NewObject::Link(&target.dentry))
        })?;
        inode.refresh_from(
            target.dentry.inode().ok_or(EIO)?,
            fs.upper_layer()?.mnt.id_map(),
        );
        nlink_end(fs, inode.data()?, true);
        new.instantiate(inode.inode().into());
        dir_changed(dir);
        Ok(())
    }

    fn unlink(dir: &FsInode<Self>, dentry: &Dentry) -> Result {
        remove(dir, dentry, false)
    }

    fn rmdir(dir: &FsInode<Self>, dentry: &Dentry) -> Result {
        remove(dir, dentry, true)
    }

    /// `rename` (flags `RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    fn rename(old: &Dentry, new: &Dentry, flags: u32) -> Result {
        rename(old, new, flags)
    }

    /// An unnamed file in the upper copy of `dir`, owned by the caller.
    fn tmpfile(
        dir: &FsInode<Self>,
        file: &UserFile,
        mode: u32,
        idmap: Idmap,
    ) -> Result<(ARef<Inode>, OpenFile)> {
        let sb = dir.sb();
        let fs = sb.info();
        let dentry = file.dentry();
        let parent = dentry.parent();
        let up = upper_dir(sb, &parent, dir)?;
        let flags = file.flags() | bindings::O_LARGEFILE | bindings::O_NOATIME;
        let real =
            fs.with_creator(dir.inode(), dentry, bindings::S_IFREG | mode, idmap, |m| {
                RealFile::open_backing_tmpfile(m, file, fs.real_path(up)?, mode, flags)
            })??;
        let mut stack = KVec::new();
        stack.push(
            RealEntry {
                layer: 0,
                dentry: real.dentry().into(),
            },
            GFP_KERNEL,
        )?;
        Ok((fs.get_inode(sb, stack)?, OpenFile::new(real)))
    }

    fn open_dir(dir: &FsInode<Self>, dentry: &Dentry) -> Result<DirState> {
        crate::readdir::open_dir(dir, dentry)
    }

    fn revalidate(sb: &SuperBlock<Self>, dentry: &Dentry) -> Result<bool> {
        crate::namei::revalidate(sb, dentry)
    }

    fn revalidate_rcu(sb: &SuperBlock<Self>, stamp: usize, kind: DentryKind) -> Result<bool> {
        crate::namei::revalidate_rcu(sb, stamp, kind)
    }

    /// The layers the union has now: a layer added from now on makes the dentry stale.
    fn initial_stamp(sb: &SuperBlock<Self>) -> usize {
        sb.info().layers.len()
    }

    fn iterate(
        dir: &FsInode<Self>,
        state: &DirState,
        file: &IteratedDir<'_>,
        out: &mut DirEmitter<'_>,
    ) -> Result {
        crate::readdir::iterate(dir, state, file, out)
    }

    /// `fsync` of a directory: its upper copy, if it has one (lower ones never change).
    fn fsync_dir(dir: &FsInode<Self>, _state: &DirState, datasync: bool) -> Result {
        let fs = dir.sb().info();
        if !fs.needs_sync()? {
            return Ok(());
        }
        match dir.data()?.upper() {
            Some(u) => {
                fs.with_mounter(|m| RealFile::open_dir(m, fs.real_path(u)?)?.fsync(m, datasync))
            }
            None => Ok(()),
        }
    }
}

/// `rename` (flags `RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
fn rename(old: &Dentry, new: &Dentry, flags: u32) -> Result {
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
        return Err(errno::exdev());
    }
    if let (false, Some(n)) = (overwrite, new_inode) {
        if !can_move(n)? {
            return Err(errno::exdev());
        }
    }
    let (clear, new_whiteout, old_lower_positive) = fs.with_mounter(|m| -> Result<_> {
        let mut clear = false;
        if let (true, Some(n)) = (overwrite, new_inode) {
            if n.inode().is_dir() && (!n.data()?.lower().is_empty() || fs.oci_whiteouts) {
                let (visible, upper_used) = crate::readdir::emptiness(fs, m, n.data()?)?;
                if visible != 0 {
                    return Err(errno::enotempty());
                }
                clear = upper_used;
            }
        }
        Ok((
            clear,
            is_upper_whiteout(fs, m, new, new_dir)?,
            fs.lower_positive(m, old_dir.data()?, old.name())?,
        ))
    })?;
    let mut real_flags = flags;
    let mut cleanup_whiteout = false;
    let mut oci_whiteout_old = false;
    if overwrite {
        if old_lower_positive {
            // The old name must stay hidden: leave a whiteout there (or swap the one at
            // the target into it); with OCI whiteouts, one is made before the rename.
            real_flags |= if new_whiteout {
                RENAME_EXCHANGE
            } else if fs.oci_whiteouts && UnionFs::fits_oci_whiteout(old.name()) {
                oci_whiteout_old = true;
                0
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
    // A name of an indexed object that is replaced: as for unlink and rmdir.
    let replaced_indexed = match (overwrite, new_inode) {
        (true, Some(n)) => {
            nlink_start(sb, new, n.data()?)?;
            Some(n.data()?)
        }
        _ => None,
    };
    let old_up_dir = old_dir.data()?.upper().ok_or(EIO)?;
    let old_upper = old_inode.data()?.upper().ok_or(EIO)?;
    let mnt = &fs.upper_layer()?.mnt;
    fs.with_mounter(|m| -> Result {
        // A copy moving to another directory: its number there must be looked up.
        if !core::ptr::eq(old_parent.as_ptr(), new_parent.as_ptr()) {
            if old_inode.data()?.has_origin() {
                fs.set_impure(m, new_dir.data()?)?;
            }
            if let (false, Some(n)) = (overwrite, new_inode) {
                if n.data()?.has_origin() {
                    fs.set_impure(m, old_dir.data()?)?;
                }
            }
        }
        let mut new_upper: Option<ARef<Dentry>> = match new_inode {
            Some(n) => n.data()?.upper().map(|e| e.dentry.clone()),
            None => None,
        };
        if clear {
            if let Some(u) = new_upper.take() {
                new_upper = Some(fs.clear_whiteouts(m, &new_up_dir.dentry, new.name(), &u)?);
            }
        }
        let samedir = core::ptr::eq(old_parent.as_ptr(), new_parent.as_ptr());
        // A directory with lower directories records where they are; one without that moves
        // into a merged directory must not pick up the names of a lower directory of the same
        // name there.
        if needs_redirect(old_inode)? {
            set_redirect(fs, m, old, samedir)?;
        } else if is_dir && !is_opaque(fs, m, old_upper)? && new_dir.data()?.is_merged() {
            fs.add_oci_opaque_marker(m, &old_upper.dentry)
                .map_err(|_| errno::exdev())?;
            mnt.set_xattr(
                m,
                &old_upper.dentry,
                fs.xattr_name(Xattr::Opaque),
                Some(b"y"),
                0,
            )
            .map_err(|_| errno::exdev())?;
        }
        if let (false, Some(n)) = (overwrite, new_inode) {
            if needs_redirect(n)? {
                set_redirect(fs, m, new, samedir)?;
            } else if n.inode().is_dir() && old_dir.data()?.is_merged() {
                if let Some(nu) = n.data()?.upper() {
                    if !is_opaque(fs, m, nu)? {
                        fs.add_oci_opaque_marker(m, &nu.dentry)
                            .map_err(|_| errno::exdev())?;
                        mnt.set_xattr(m, &nu.dentry, fs.xattr_name(Xattr::Opaque), Some(b"y"), 0)
                            .map_err(|_| errno::exdev())?;
                    }
                }
            }
        }
        let rename = Rename {
            old_parent: &old_up_dir.dentry,
            old: RenameEnd::Name(old.name()),
            new_parent: &new_up_dir.dentry,
            new: new.name(),
            flags: real_flags,
        };
        let expect = Expect {
            old: old_upper.dentry.inode(),
            new: new_upper.as_deref().and_then(|d| d.inode()),
            new_free: new_upper.is_none(),
        };
        // The OCI whiteout of the old name comes last, and goes if the rename fails: the old
        // name shows its upper object until the rename is done (a crash in between leaves
        // both, which shows the name as it was).
        if oci_whiteout_old {
            fs.oci_whiteout(m, &old_up_dir.dentry, old.name(), None)?;
        }
        let replaced = match mnt.rename(m, &rename, |o, n| expect.check(o, n)) {
            Ok(r) => r,
            Err(e) => {
                if oci_whiteout_old {
                    let _ = fs.remove_oci_whiteout(m, &old_up_dir.dentry, old.name());
                }
                return Err(e);
            }
        };
        if cleanup_whiteout {
            let _ = mnt.remove(m, &old_up_dir.dentry, &replaced);
        }
        Ok(())
    })?;
    if let (true, Some(n)) = (overwrite, new_inode) {
        if n.inode().is_dir() {
            n.inode().clear_nlink();
        } else {
            n.inode().drop_nlink();
        }
    }
    if let Some(data) = replaced_indexed {
        nlink_end(fs, data, false);
    }
    dir_changed(old_dir);
    dir_changed(new_dir);
    Ok(())
}
