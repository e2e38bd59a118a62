// SPDX-License-Identifier: GPL-2.0

//! The inodes index (`index=on`), in overlayfs' format: `<workdir>/index` holds, for every
//! lower hard link that was copied up, its upper inode under a name made of the lower inode's
//! file handle (in hex), so that every name of the lower inode reaches the same upper inode:
//! a copy-up of one name copies the data once into the index, and each name is linked to it
//! (link-up) when it is changed. The union's link count of such an inode (`overlay.nlink` on
//! it, relative to the upper or lower inode's) counts the names the union shows.
//!
//! With the index on, the index directory is also where temporary objects are made.

use crate::inode::{RealEntry, UnionInode};
use crate::namei::{UnionFh, Xattr};
use crate::superblock::{LayerKind, UnionFs};
use crate::vfs::{errno, AsMounter, Dentry, FsContext, NewObject};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::BStr;
use kernel::sync::aref::ARef;

/// The name of the index directory in the work directory.
const INDEX_NAME: &[u8] = b"index";

/// Which real inode an `overlay.nlink` value counts from.
#[derive(Clone, Copy)]
pub(crate) enum NlinkBase {
    Upper,
    Lower,
}

/// `overlay.nlink`'s value: "U" or "L", then the union's link count minus that inode's, with
/// its sign ("U+0", "L-1").
fn nlink_value(base: NlinkBase, union_nlink: u32, real_nlink: u32) -> Result<KVec<u8>> {
    let diff = i64::from(union_nlink) - i64::from(real_nlink);
    let mut v = KVec::new();
    v.push(
        match base {
            NlinkBase::Upper => b'U',
            NlinkBase::Lower => b'L',
        },
        GFP_KERNEL,
    )?;
    v.push(if diff < 0 { b'-' } else { b'+' }, GFP_KERNEL)?;
    let mut digits = [0u8; 20];
    let mut n = diff.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    v.extend_from_slice(&digits[i..], GFP_KERNEL)?;
    Ok(v)
}

/// Reads an `overlay.nlink` value: the base and the difference; `None` if it is not one.
fn parse_nlink(v: &[u8]) -> Option<(NlinkBase, i64)> {
    let (&base, rest) = v.split_first()?;
    let base = match base {
        b'U' => NlinkBase::Upper,
        b'L' => NlinkBase::Lower,
        _ => return None,
    };
    let (&sign, digits) = rest.split_first()?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    match sign {
        b'+' => Some((base, n)),
        b'-' => Some((base, -n)),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> Result<KVec<u8>> {
    let mut out = KVec::with_capacity(bytes.len() * 2, GFP_KERNEL)?;
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            out.push(b"0123456789abcdef"[usize::from(nibble)], GFP_KERNEL)?;
        }
    }
    Ok(out)
}

/// The bytes of lower-case hex `name`; `None` if it is not that.
fn unhex(name: &[u8]) -> Option<KVec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = KVec::with_capacity(name.len() / 2, GFP_KERNEL).ok()?;
    for pair in name.chunks_exact(2) {
        let [hi, lo] = *pair else {
            return None;
        };
        out.push((digit(hi)? << 4) | digit(lo)?, GFP_KERNEL).ok()?;
    }
    Some(out)
}

impl UnionFs {
    /// The index directory, if the index is on.
    pub(crate) fn index_dir(&self) -> Option<&Dentry> {
        if self.index {
            self.work_dir().ok()
        } else {
            None
        }
    }

    /// Whether every copy-up goes through the index (overlayfs' `ovl_index_all`), and lookup
    /// checks that a merged directory's lower directory is its origin (`ovl_verify_lower`):
    /// with `nfs_export`, so that handles of lower objects stay valid after copy-up.
    pub(crate) fn index_all(&self) -> bool {
        self.index && self.nfs_export
    }

    /// Whether copying `data` up goes through the index (overlayfs' `ovl_need_index`): a
    /// lower non-directory with more than one link; with [`Self::index_all`], any object with
    /// a lower one.
    pub(crate) fn needs_index(&self, data: &UnionInode) -> bool {
        self.index
            && data.lower().first().is_some_and(|l| {
                self.index_all()
                    || l.dentry
                        .inode()
                        .is_some_and(|i| !i.is_dir() && i.nlink() > 1)
            })
    }

    /// The name of the index entry of lower object `origin`: its file handle in hex.
    pub(crate) fn index_name(&self, origin: &RealEntry) -> Result<KVec<u8>> {
        hex(&self.origin_value(origin)?)
    }

    /// The index entry of lower object `origin`, whose upper object (if the name has one) is
    /// `upper` (overlayfs' `ovl_lookup_index`): `None` if there is none, or if `upper` is
    /// another inode (a non-directory copied without the index).
    ///
    /// With `verify` (a lookup by name), an entry that is a whiteout or of another type than
    /// `origin` is refused with `EIO`, and so is a directory's entry unless it names `upper`
    /// as the directory's upper object. Without (a lookup by handle), a whiteout gives
    /// `ESTALE`: the object was removed.
    pub(crate) fn lookup_index(
        &self,
        m: &AsMounter<'_>,
        upper: Option<&Dentry>,
        origin: &RealEntry,
        verify: bool,
    ) -> Result<Option<ARef<Dentry>>> {
        let Some(dir) = self.index_dir() else {
            return Ok(None);
        };
        let name = self.index_name(origin)?;
        let mnt = &self.upper_layer()?.mnt;
        let index = match mnt.lookup(m, dir, &name) {
            Ok(Some(d)) if d.inode().is_some() => d,
            Ok(_) => return Ok(None),
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed inode index lookup (ino={}, key={}, err={:?}); mount with '-o index=off' to disable inodes index.",
                    origin.dentry.inode().map_or(0, |i| i.ino()),
                    BStr::from_bytes(&name),
                    e
                ));
                return Err(e);
            }
        };
        let (imode, omode) = (
            index.inode().map_or(0, |i| i.mode()),
            origin.dentry.inode().map_or(0, |i| i.mode()),
        );
        let fmt_mask = bindings::S_IFMT;
        if index.is_whiteout() && !verify {
            return Err(errno::estale());
        }
        if index.is_whiteout()
            || index.is_unusual_layer_root()
            || imode & fmt_mask != omode & fmt_mask
        {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: bad index found (index={}, ftype={:x}, origin ftype={:x}).",
                BStr::from_bytes(&name),
                imode & fmt_mask,
                omode & fmt_mask
            ));
            return Err(EIO);
        }
        if index.is_dir() {
            if !verify {
                return Ok(Some(index));
            }
            let Some(u) = upper else {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: suspected uncovered redirected dir found (origin={}, index={}).",
                    BStr::from_bytes(&origin.dentry.name_copy().unwrap_or_default()),
                    BStr::from_bytes(&name)
                ));
                return Err(EIO);
            };
            let r = self
                .handle_of(u, true)
                .and_then(|fh| verify_fh(self, m, &index, Xattr::Upper, &fh, false));
            if let Err(e) = r {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to verify upper ({}, ino={}, err={})",
                    BStr::from_bytes(&u.name_copy().unwrap_or_default()),
                    u.inode().map_or(0, |i| i.ino()),
                    e.to_errno()
                ));
                if e == errno::estale() {
                    crate::vfs::warn_ratelimited(fmt!(
                        "unionrs: suspected multiply redirected dir found (upper={}, origin={}, index={}).",
                        BStr::from_bytes(&u.name_copy().unwrap_or_default()),
                        BStr::from_bytes(&origin.dentry.name_copy().unwrap_or_default()),
                        BStr::from_bytes(&name)
                    ));
                }
                return Err(EIO);
            }
            return Ok(Some(index));
        }
        if let Some(u) = upper {
            let same = u.inode().map(|i| i.as_ptr()) == index.inode().map(|i| i.as_ptr());
            if !same {
                return Ok(None);
            }
        }
        Ok(Some(index))
    }

    /// The upper object of index entry `index` (overlayfs' `ovl_index_upper`): the entry
    /// itself for a non-directory; for a directory, the upper directory its `overlay.upper`
    /// names, connected (`ESTALE` if it is gone or the entry names none, `EIO` if it names
    /// something else than a directory).
    pub(crate) fn index_upper(&self, m: &AsMounter<'_>, index: &Dentry) -> Result<ARef<Dentry>> {
        self.index_upper_of(m, index, true)?
            .ok_or_else(errno::estale)
    }

    /// [`Self::index_upper`], with `None` for a directory entry without an `overlay.upper`
    /// this code can read, and the upper directory possibly disconnected unless `connected`.
    pub(crate) fn index_upper_of(
        &self,
        m: &AsMounter<'_>,
        index: &Dentry,
        connected: bool,
    ) -> Result<Option<ARef<Dentry>>> {
        if !index.is_dir() {
            return Ok(Some(index.into()));
        }
        let Some(value) = self.stored_fh(m, index, Xattr::Upper)? else {
            return Ok(None);
        };
        let Ok(Some(fh)) = UnionFh::parse(&value) else {
            return Ok(None);
        };
        let upper = self.decode_upper_fh(m, &fh, connected)?;
        if !upper.is_dir() {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: invalid index upper ({}, upper={}).",
                BStr::from_bytes(&index.name_copy().unwrap_or_default()),
                BStr::from_bytes(&upper.name_copy().unwrap_or_default())
            ));
            return Err(EIO);
        }
        Ok(Some(upper))
    }

    /// Checks that private xattr `which` of upper object `d` holds file handle `fh`
    /// (`ESTALE` if another, `ENODATA` if none).
    pub(crate) fn verify_fh_xattr(
        &self,
        m: &AsMounter<'_>,
        d: &Dentry,
        which: Xattr,
        fh: &[u8],
    ) -> Result {
        verify_fh(self, m, d, which, fh, false)
    }

    /// Makes the index entry of directory `origin` being copied up to `upper` (overlayfs'
    /// `ovl_create_index`): an empty directory of mode 0 named as the origin's entry, whose
    /// `overlay.upper` names the upper directory.
    pub(crate) fn create_dir_index(
        &self,
        m: &AsMounter<'_>,
        origin: &RealEntry,
        upper: &Dentry,
    ) -> Result {
        let dir = self.index_dir().ok_or(EIO)?;
        let name = self.index_name(origin)?;
        let upper_fh = self.handle_of(upper, true)?;
        let dir_node = NewObject::Node {
            mode: bindings::S_IFDIR,
            rdev: 0,
        };
        self.build_in_work(m, dir_node, |temp| {
            self.upper_layer()?.mnt.set_xattr(
                m,
                temp,
                self.xattr_name(Xattr::Upper),
                Some(&upper_fh),
                0,
            )?;
            self.move_into_place(m, temp, dir, &name, 0, &crate::dir::Expect::default())
        })?;
        Ok(())
    }

    /// The union's link count of a non-directory with `lower` and `upper` objects (overlayfs'
    /// `ovl_get_nlink`): from `overlay.nlink` on the upper one when the lower one has several
    /// links, else (or if the value is missing or bad, with a warning) `fallback`.
    pub(crate) fn stored_nlink(
        &self,
        m: &AsMounter<'_>,
        lower: &Dentry,
        upper: &Dentry,
        fallback: u32,
    ) -> u32 {
        let (Some(li), Some(ui)) = (lower.inode(), upper.inode()) else {
            return fallback;
        };
        if li.nlink() == 1 {
            return fallback;
        }
        let mut buf = [0u8; 12];
        let Ok(mnt) = self.upper_layer().map(|l| &l.mnt) else {
            return fallback;
        };
        let got = mnt.getxattr(m, upper, self.xattr_name(Xattr::Nlink), &mut buf);
        let parsed = got
            .ok()
            .and_then(|n| buf.get(..n))
            .and_then(parse_nlink)
            .map(|(base, diff)| {
                let real = match base {
                    NlinkBase::Upper => ui.nlink(),
                    NlinkBase::Lower => li.nlink(),
                };
                i64::from(real) + diff
            })
            .filter(|&n| n > 0)
            .and_then(|n| u32::try_from(n).ok());
        match parsed {
            Some(n) => n,
            None => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to get index nlink ({}, err={:?})",
                    BStr::from_bytes(upper.name()),
                    got.err()
                ));
                fallback
            }
        }
    }

    /// Records the union's link count of indexed `data` on its upper inode, relative to the
    /// upper or the lower inode's (overlayfs' `ovl_set_nlink_upper`/`_lower`).
    pub(crate) fn set_nlink_xattr(
        &self,
        m: &AsMounter<'_>,
        data: &UnionInode,
        base: NlinkBase,
    ) -> Result {
        let upper = data.upper().ok_or(EIO)?;
        let real = match base {
            NlinkBase::Upper => upper.dentry.inode(),
            NlinkBase::Lower => data.lower().first().and_then(|l| l.dentry.inode()),
        }
        .ok_or(EIO)?;
        let value = nlink_value(base, data.union_nlink(), real.nlink())?;
        self.upper_layer()?.mnt.set_xattr(
            m,
            &upper.dentry,
            self.xattr_name(Xattr::Nlink),
            Some(&value),
            0,
        )
    }

    /// After the last name of indexed `data` went (or indexed directory `data` was
    /// removed): its index entry goes too (overlayfs' `ovl_cleanup_index`), replaced by a
    /// whiteout with [`Self::index_all`] so that the lower object's handle is not decoded any
    /// more. A non-directory that other upper names still link to keeps its entry (the count
    /// is put right, with a warning). A failure is only reported: the next mount removes the
    /// entry as an orphan.
    pub(crate) fn cleanup_index(&self, m: &AsMounter<'_>, data: &UnionInode) {
        let r = (|| -> Result {
            let dir = self.index_dir().ok_or(EIO)?;
            let lower = data.lower().first().ok_or(EIO)?;
            let upper = data.upper().ok_or(EIO)?;
            let uinode = upper.dentry.inode().ok_or(EIO)?;
            if !uinode.is_dir() && uinode.nlink() != 1 {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: cleanup linked index ({}, ino={}, nlink={})",
                    BStr::from_bytes(upper.dentry.name()),
                    uinode.ino(),
                    uinode.nlink()
                ));
                data.set_union_nlink(uinode.nlink().saturating_sub(1));
                return self.set_nlink_xattr(m, data, NlinkBase::Upper);
            }
            let name = self.index_name(lower)?;
            let mnt = &self.upper_layer()?.mnt;
            let index = mnt.lookup(m, dir, &name)?.ok_or(ENOENT)?;
            if self.index_all() {
                let existing = index.inode().is_some().then_some(&*index);
                return self.whiteout(m, dir, &name, existing);
            }
            if index.inode().is_none() {
                return Err(ENOENT);
            }
            mnt.remove(m, dir, &index)
        })();
        if let Err(e) = r {
            pr_err!(
                "unionrs: cleanup index of '{}' failed ({:?})\n",
                data.upper()
                    .map_or(BStr::from_bytes(b""), |u| BStr::from_bytes(u.dentry.name())),
                e
            );
        }
    }
}

/// Sets up the index at mount (overlayfs' `ovl_get_indexdir`): the upper root records the
/// first lower root as its origin (checked on later mounts: the layers must be the same),
/// `<workdir>/index` is made (or taken as it is), records the upper root as its `upper` (also
/// checked), and is cleaned of stale entries. Returns the index directory, which from then on
/// is also the work directory.
pub(crate) fn setup(fs: &UnionFs, fc: &FsContext) -> Result<ARef<Dentry>> {
    let r = fs.with_mounter(|m| -> Result<ARef<Dentry>> {
        let upper = fs.upper_layer()?;
        let upper_root = upper.spec.path.dentry();
        let lower_root = fs
            .layers
            .iter()
            .enumerate()
            .find(|(_, l)| l.kind == LayerKind::Lower)
            .map(|(i, l)| RealEntry {
                layer: i,
                dentry: l.spec.path.dentry().into(),
            })
            .ok_or(EINVAL)?;
        let root_origin = fs.origin_value(&lower_root)?;
        verify_fh(fs, m, upper_root, Xattr::Origin, &root_origin, true)
            .map_err(|e| fc.fail(e, fmt!("failed to verify upper root origin")))?;

        let base = fs.work.as_ref().ok_or(EINVAL)?.path.dentry();
        let mnt = &upper.mnt;
        let dir = match mnt.lookup(m, base, INDEX_NAME)? {
            Some(d) if d.inode().is_some() => d,
            _ => make_index_dir(fs, m, base)?,
        };
        let upper_fh = fs.handle_of(upper_root, true)?;
        verify_fh(fs, m, &dir, Xattr::Upper, &upper_fh, true)
            .map_err(|e| fc.fail(e, fmt!("failed to verify index dir 'upper' xattr")))?;
        cleanup_dir(fs, m, &dir)
            .map_err(|e| fc.fail(e, fmt!("failed index dir cleanup ({:?})", e)))?;
        Ok(dir)
    });
    if r.is_err() {
        fc.warn(fmt!(
            "try deleting index dir or mounting with '-o index=off' to disable inodes index."
        ));
    }
    r
}

/// Makes `<workdir>/index`: mode 0, without inherited ACLs.
fn make_index_dir(fs: &UnionFs, m: &AsMounter<'_>, base: &Dentry) -> Result<ARef<Dentry>> {
    let mnt = &fs.upper_layer()?.mnt;
    let dir = fs.create_real(
        m,
        base,
        INDEX_NAME,
        NewObject::Node {
            mode: bindings::S_IFDIR,
            rdev: 0,
        },
    )?;
    for acl in [c"system.posix_acl_default", c"system.posix_acl_access"] {
        match mnt.set_xattr(m, &dir, acl, None, 0) {
            Err(e) if e != errno::enodata() && e != errno::eopnotsupp() => return Err(e),
            _ => {}
        }
    }
    let mut mode = crate::vfs::Iattr::new();
    mode.set_mode(bindings::S_IFDIR);
    mnt.notify_change(m, &dir, &mut mode)?;
    Ok(dir)
}

/// Checks that private xattr `which` of upper object `d` holds file handle `fh`; with `set`,
/// records it if there is none yet (overlayfs' `ovl_verify_set_fh`). `ESTALE` if another.
fn verify_fh(
    fs: &UnionFs,
    m: &AsMounter<'_>,
    d: &Dentry,
    which: Xattr,
    fh: &[u8],
    set: bool,
) -> Result {
    match fs.stored_fh(m, d, which)? {
        Some(stored) if stored.as_slice() == fh => Ok(()),
        Some(_) => Err(errno::estale()),
        None if set => fs
            .upper_layer()?
            .mnt
            .set_xattr(m, d, fs.xattr_name(which), Some(fh), 0),
        None => Err(errno::enodata()),
    }
}

/// Cleans the index directory at mount (overlayfs' `ovl_indexdir_cleanup`): leftovers of
/// temporary objects go; an entry whose origin is gone or that no name links to any more
/// (an orphan) goes; an entry that cannot be understood fails the mount, so that nothing is
/// lost.
fn cleanup_dir(fs: &UnionFs, m: &AsMounter<'_>, dir: &Dentry) -> Result {
    let mnt = &fs.upper_layer()?.mnt;
    let file = crate::vfs::RealFile::open_dir(m, crate::vfs::RealPath { mnt, dentry: dir })?;
    for (name, _) in crate::readdir::real_entries(m, &file)?.iter() {
        let Some(index) = mnt.lookup(m, dir, name)? else {
            continue;
        };
        if index.inode().is_none() {
            continue;
        }
        if name.first() == Some(&b'#') {
            fs.remove_tree(m, dir, &index, 2)?;
            continue;
        }
        match verify_index(fs, m, name, &index) {
            Ok(()) => {}
            // An orphan's handle must not be decoded any more: with `nfs_export` its entry
            // becomes a whiteout.
            Err(e) if e == ENOENT && fs.nfs_export => {
                let _ = fs.whiteout(m, dir, name, Some(&index));
            }
            Err(e) if e == errno::estale() || e == ENOENT => {
                let _ = mnt.remove(m, dir, &index);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether index entry `index` (named `name`) is sound (overlayfs' `ovl_verify_index`):
/// `ESTALE` if its upper object does not record the origin its name says, or that origin is
/// gone; `ENOENT` if it is an orphan (no name links to a non-directory any more, or a
/// directory's upper directory is gone); other errors for an entry that is not an index entry.
/// Whiteouts (removed objects, with `nfs_export`) are kept; so are directories' entries
/// without `nfs_export`, which does not look at them.
fn verify_index(fs: &UnionFs, m: &AsMounter<'_>, name: &[u8], index: &Dentry) -> Result {
    let inode = index.inode().ok_or(ENOENT)?;
    let orphan = || {
        pr_warn!(
            "unionrs: orphan index entry ({}, ftype={:x}, nlink={})\n",
            BStr::from_bytes(name),
            inode.mode() & bindings::S_IFMT,
            inode.nlink()
        );
        ENOENT
    };
    let r = (|| -> Result {
        if name.len() < 42 {
            return Err(EINVAL);
        }
        let fh_bytes = unhex(name).ok_or(EINVAL)?;
        let fh = UnionFh::parse(&fh_bytes)?.ok_or_else(errno::enodata)?;
        if inode.is_whiteout() || (inode.is_dir() && !fs.nfs_export) {
            return Ok(());
        }
        let upper = match fs.index_upper_of(m, index, false) {
            Ok(Some(upper)) => upper,
            Ok(None) => return Err(errno::estale()),
            Err(e) if e == errno::estale() => return Err(orphan()),
            Err(e) => return Err(e),
        };
        match fs.stored_fh(m, &upper, Xattr::Origin)? {
            Some(stored) if stored.as_slice() == fh_bytes.as_slice() => {}
            Some(_) => return Err(errno::estale()),
            None => return Err(errno::enodata()),
        }
        if !inode.is_dir() && inode.nlink() == 1 {
            let origin = fs
                .decode_origin_of(m, &fh, index)?
                .ok_or_else(errno::estale)?;
            if fs.stored_nlink(m, &origin.dentry, index, 0) == 0 {
                return Err(orphan());
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        if e != ENOENT {
            pr_warn!(
                "unionrs: failed to verify index ({}, ftype={:x}, err={:?})\n",
                BStr::from_bytes(name),
                inode.mode() & bindings::S_IFMT,
                e
            );
        }
    }
    r
}

#[kunit_tests(unionrs_index)]
mod tests {
    use super::*;

    #[test]
    fn nlink_values() {
        let v = nlink_value(NlinkBase::Upper, 2, 3);
        assert!(v.as_deref().ok() == Some(&b"U-1"[..]));
        let v = nlink_value(NlinkBase::Lower, 12, 2);
        assert!(v.as_deref().ok() == Some(&b"L+10"[..]));
        assert!(matches!(parse_nlink(b"U+0"), Some((NlinkBase::Upper, 0))));
        assert!(matches!(parse_nlink(b"L-1"), Some((NlinkBase::Lower, -1))));
        assert!(parse_nlink(b"X+1").is_none());
        assert!(parse_nlink(b"U1").is_none());
        assert!(parse_nlink(b"U+").is_none());
    }

    #[test]
    fn hex_round_trip() {
        let h = hex(&[0x00, 0xfb, 0x1d, 0xab]);
        assert!(h.as_deref().ok() == Some(&b"00fb1dab"[..]));
        assert!(unhex(b"00fb1dab").as_deref() == Some(&[0x00, 0xfb, 0x1d, 0xab][..]));
        assert!(unhex(b"0g").is_none());
    }
}
