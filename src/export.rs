// SPDX-License-Identifier: GPL-2.0

//! File handles of union objects (overlayfs' `export.c`), in overlayfs' format: three zero
//! bytes, then an `ovl_fb` (what `overlay.origin` holds) of the real object the union object
//! is known by.
//!
//! Without `nfs_export` the handles only identify objects (fanotify,
//! `name_to_handle_at(AT_HANDLE_FID)`). With it they are decoded too (`open_by_handle_at`,
//! NFS): an object is known by its lower object when it has one and is either not copied up
//! or copied up through the index, so that its handle stays the same across copy-up; by its
//! upper object otherwise. Decoding finds the union object from the real one: a non-directory
//! may be given disconnected, a directory is connected by walking its real ancestors up to
//! one the union knows (in the dentry cache, or through the index) and looking the names up
//! again through the union.

use crate::copy_up::{copy_up, union_inode};
use crate::inode::RealEntry;
use crate::namei::{UnionFh, Xattr};
use crate::superblock::UnionFs;
use crate::vfs::{errno, AsMounter, Dentry, FsInode, SuperBlock};
use kernel::prelude::*;
use kernel::str::BStr;
use kernel::sync::aref::ARef;

/// The handle type overlayfs gives its handles (`OVL_FILEID_V1`: the `ovl_fb` after three
/// bytes of padding, so that the real handle is 32-bit aligned).
const FILEID_V1: u8 = 0xf8;
/// The older handle type overlayfs still decodes (`OVL_FILEID_V0`: the `ovl_fb` at once).
const FILEID_V0: u8 = 0xfb;
/// The padding before the `ovl_fb` in a handle of type [`FILEID_V1`].
const WIRE_OFFSET: usize = 3;
/// The shortest handle: the padding and an `ovl_fb` header (`sizeof(struct ovl_fh)`).
const MIN_HANDLE: usize = WIRE_OFFSET + 21;

/// Which real object a union object's handle names.
#[derive(PartialEq, Eq, Clone, Copy)]
enum EncodeBy {
    Upper,
    Lower,
}

impl UnionFs {
    /// The file handle of union object `inode` (overlayfs' `ovl_encode_fh`): its type and
    /// bytes.
    pub(crate) fn encode_union_fh(&self, inode: &FsInode<UnionFs>) -> Result<(u8, KVec<u8>)> {
        let data = inode.data()?;
        let by = match self.encode_by(inode) {
            Ok(by) => by,
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to encode file handle (ino={}, err={})",
                    inode.inode().ino(),
                    e.to_errno()
                ));
                return Err(e);
            }
        };
        let fb = match (by, data.upper(), data.lower().first()) {
            (EncodeBy::Upper, Some(upper), _) => self.handle_of(&upper.dentry, true)?,
            (EncodeBy::Lower, _, Some(lower)) => self.origin_value(lower)?,
            _ => return Err(EIO),
        };
        let mut fh = KVec::with_capacity(WIRE_OFFSET + fb.len(), GFP_KERNEL)?;
        fh.extend_from_slice(&[0; WIRE_OFFSET], GFP_KERNEL)?;
        fh.extend_from_slice(&fb, GFP_KERNEL)?;
        Ok((FILEID_V1, fh))
    }

    /// Whether `inode`'s handle names its upper or its lower object (overlayfs'
    /// `ovl_check_encode_origin`): the lower one without an upper layer, for an object not
    /// copied up, and (only with `nfs_export`) for one copied up through the index; the upper
    /// one for an object only on the upper layer, for the root, and (only with `nfs_export`)
    /// for one copied up without the index. Before a handle of a lower directory is given,
    /// the directory is made decodable ([`Self::connect_layer`]).
    fn encode_by(&self, inode: &FsInode<UnionFs>) -> Result<EncodeBy> {
        let data = inode.data()?;
        let decodable = self.nfs_export;
        if !self.has_upper() || (data.upper().is_none() && !decodable) {
            return Ok(EncodeBy::Lower);
        }
        if data.lower().is_empty() || data.is_root() {
            return Ok(EncodeBy::Upper);
        }
        if data.upper().is_some() && decodable && !data.is_indexed() {
            return Ok(EncodeBy::Upper);
        }
        if !decodable || !inode.inode().is_dir() {
            return Ok(EncodeBy::Lower);
        }
        let dentry = inode.inode().find_any_alias().ok_or(ENOENT)?;
        self.connect_layer(inode.sb(), &dentry)?;
        Ok(EncodeBy::Lower)
    }

    /// The lowest layer from which union dentry `d` can be found again by a real object's
    /// handle (overlayfs' `ovl_connectable_layer`): the bottom layer for the root, none (0,
    /// the upper layer) for a merged directory not in the index, else its top lower layer.
    fn connectable_layer(&self, d: &Dentry) -> Result<usize> {
        let data = union_inode(d)?.1.data()?;
        if data.is_root() {
            return Ok(self.layers.len().saturating_sub(1));
        }
        if data.upper().is_some() && !data.is_indexed() {
            return Ok(0);
        }
        Ok(data.lower().first().ok_or(EIO)?.layer)
    }

    /// Makes lower directory `dentry` decodable from its lower object (overlayfs'
    /// `ovl_connect_layer`): walking up to an ancestor that is indexed or the root, every
    /// ancestor must be reachable from the directory's layer; below the first one that is not,
    /// the directory's ancestor is copied up (and so indexed).
    fn connect_layer(&self, sb: &SuperBlock<UnionFs>, dentry: &Dentry) -> Result {
        let origin_layer = union_inode(dentry)?
            .1
            .data()?
            .lower()
            .first()
            .ok_or(EIO)?
            .layer;
        let mut next: ARef<Dentry> = dentry.into();
        loop {
            let parent = next.parent();
            if core::ptr::eq(parent.as_ptr(), next.as_ptr()) {
                return Err(EIO);
            }
            if self.connectable_layer(&parent)? < origin_layer {
                return copy_up(sb, &next).inspect_err(|e| {
                    crate::vfs::warn_ratelimited(fmt!(
                        "unionrs: failed to copy up on encode ({}, err={})",
                        BStr::from_bytes(&next.name_copy().unwrap_or_default()),
                        e.to_errno()
                    ))
                });
            }
            let pdata = union_inode(&parent)?.1.data()?;
            if pdata.is_root() || pdata.is_indexed() {
                return Ok(());
            }
            next = parent;
        }
    }

    /// The union dentry of file handle `fh` of type `ty` (overlayfs' `ovl_fh_to_dentry`).
    pub(crate) fn fh_to_dentry(
        &self,
        sb: &SuperBlock<UnionFs>,
        ty: u8,
        fh: &[u8],
    ) -> Result<ARef<Dentry>> {
        // The caller's right to decode the real handles (overlayfs asks it of the caller, not
        // of the mounter, whose credentials the work below runs with).
        if !crate::vfs::cred::caller_may_decode_fh() {
            return Err(errno::estale());
        }
        let mut flags = 0;
        let r = self.with_mounter(|m| -> Result<ARef<Dentry>> {
            let fb = match ty {
                FILEID_V1 => fh.get(WIRE_OFFSET..),
                FILEID_V0 if fh.len() > WIRE_OFFSET => fh.get(..fh.len() - WIRE_OFFSET),
                _ => None,
            }
            .ok_or(EINVAL)?;
            if fh.len() < MIN_HANDLE {
                return Err(EINVAL);
            }
            let parsed = UnionFh::parse(fb)?.ok_or_else(errno::enodata)?;
            flags = parsed.flags();
            if parsed.is_upper() {
                self.upper_fh_to_dentry(m, sb, &parsed)
            } else {
                // The bytes the handle is stored as (what names its index entry).
                let len = fb.get(2).copied().ok_or(EINVAL)?;
                let stored = fb.get(..usize::from(len)).ok_or(EINVAL)?;
                self.lower_fh_to_dentry(m, sb, &parsed, stored)
            }
        });
        if let Err(e) = &r {
            if *e != errno::estale() {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to decode file handle (len={}, type={}, flags={:x}, err={})",
                    fh.len() / 4,
                    ty,
                    flags,
                    e.to_errno()
                ));
            }
        }
        r
    }

    /// The union dentry of an upper object's handle (overlayfs' `ovl_upper_fh_to_d`).
    fn upper_fh_to_dentry(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        fh: &UnionFh,
    ) -> Result<ARef<Dentry>> {
        let upper = self.decode_upper_fh(m, fh, true)?;
        self.get_dentry(m, sb, Some(upper), None, None)
    }

    /// The union dentry of a lower object's handle (overlayfs' `ovl_lower_fh_to_d`): the
    /// union inode that knows it, if one is cached; else through its index entry (a copied-up
    /// directory's upper one, or a non-directory's upper copy); else the lower object itself.
    fn lower_fh_to_dentry(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        fh: &UnionFh,
        stored: &[u8],
    ) -> Result<ARef<Dentry>> {
        let mut origin = self
            .decode_lower_fh(m, fh, false)?
            .ok_or_else(errno::estale)?;
        if !origin.dentry.is_dir() || !origin.dentry.is_disconnected() {
            if let Some(d) = self.cached_union_dentry(sb, &origin.dentry, false)? {
                return Ok(d);
            }
        }
        let index = match self.index_dir() {
            Some(_) => self.index_of_fh(m, stored)?,
            None => None,
        };
        if let Some(index) = index.as_ref().filter(|i| i.is_dir()) {
            let upper = self.index_upper(m, index)?;
            return self.get_dentry(m, sb, Some(upper), None, None);
        }
        if origin.dentry.is_dir() {
            origin = self
                .decode_lower_fh(m, fh, true)?
                .ok_or_else(errno::estale)?;
        }
        if let Some(index) = &index {
            self.verify_fh_xattr(m, index, Xattr::Origin, &self.origin_value(&origin)?)?;
        }
        self.get_dentry(m, sb, None, Some(origin), index)
    }

    /// The union dentry of real objects (overlayfs' `ovl_get_dentry`): for a non-directory,
    /// a dentry (maybe disconnected) of the union inode made of `upper` (or `index`) and
    /// `lower`; for a directory, the connected union dentry whose real object it is.
    fn get_dentry(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        upper: Option<ARef<Dentry>>,
        lower: Option<RealEntry>,
        index: Option<ARef<Dentry>>,
    ) -> Result<ARef<Dentry>> {
        let (real, layer) = match (&upper, &index, &lower) {
            (Some(u), _, _) => (u.clone(), 0),
            (None, Some(i), Some(l)) => (i.clone(), l.layer),
            (None, None, Some(l)) => (l.dentry.clone(), l.layer),
            _ => return Err(EIO),
        };
        if !real.is_dir() {
            let indexed = upper.is_none() && index.is_some();
            let mut stack = KVec::new();
            if let Some(top) = upper.or(index) {
                stack.push(
                    RealEntry {
                        layer: 0,
                        dentry: top,
                    },
                    GFP_KERNEL,
                )?;
            }
            if let Some(lower) = lower {
                stack.push(lower, GFP_KERNEL)?;
            }
            let inode =
                self.get_inode_of(sb, stack, indexed, None, false, None, self.layers.len())?;
            return sb.obtain_alias(inode);
        }
        // A removed directory.
        if real.is_disconnected() || real.is_unhashed() {
            return Err(ENOENT);
        }
        self.lookup_real(m, sb, &real, layer)
    }

    /// The real object on layer `layer` of union dentry `d`, if it has one there (overlayfs'
    /// `ovl_dentry_real_at`).
    fn real_at(&self, d: &Dentry, layer: usize) -> Result<Option<ARef<Dentry>>> {
        let data = union_inode(d)?.1.data()?;
        if layer == 0 && self.has_upper() {
            return Ok(data.upper().map(|u| u.dentry.clone()));
        }
        Ok(data
            .lower()
            .iter()
            .find(|e| e.layer == layer)
            .map(|e| e.dentry.clone()))
    }

    /// Whether union dentry `d` has `real` on layer `layer`.
    fn is_real_at(&self, d: &Dentry, layer: usize, real: &Dentry) -> Result<bool> {
        Ok(self
            .real_at(d, layer)?
            .is_some_and(|r| core::ptr::eq(r.as_ptr(), real.as_ptr())))
    }

    /// A dentry of the cached union inode known by real object `real` (overlayfs'
    /// `ovl_lookup_inode` and `d_find_any_alias`); `ESTALE` if the inode found does not have
    /// `real` as its upper (`is_upper`) or first lower object, or `real` is a layer's root.
    fn cached_union_dentry(
        &self,
        sb: &SuperBlock<UnionFs>,
        real: &Dentry,
        is_upper: bool,
    ) -> Result<Option<ARef<Dentry>>> {
        let key = real.inode().ok_or(ENOENT)?;
        // A layer's root (or the work directory) is never an object of the union: overlayfs
        // keeps a "trap" inode for each in its inode cache, which fails this check. So the
        // handle of the root of a union without an upper layer (its top lower root's) is
        // stale, as with overlayfs.
        if self.is_trap(key) {
            return Err(errno::estale());
        }
        let Some(inode) = sb.find_inode(key.as_ptr() as usize) else {
            return Ok(None);
        };
        let data = SuperBlock::<UnionFs>::our_inode(&inode)
            .ok_or(EIO)?
            .data()?;
        let known = match is_upper {
            true => data.upper(),
            false => data.lower().first(),
        };
        let same = known
            .and_then(|e| e.dentry.inode())
            .is_some_and(|i| core::ptr::eq(i.as_ptr(), key.as_ptr()));
        if !same {
            return Err(errno::estale());
        }
        Ok(inode.find_any_alias())
    }

    /// The union dentry known by real object `real` of layer `layer`, if the dentry cache or
    /// (for a lower directory) the index has it (overlayfs' `ovl_lookup_real_inode`).
    fn lookup_real_inode(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        real: &Dentry,
        layer: usize,
    ) -> Result<Option<ARef<Dentry>>> {
        let is_upper = layer == 0 && self.has_upper();
        let mut this = self.cached_union_dentry(sb, real, is_upper)?;
        if this.is_none() && !is_upper && self.index_dir().is_some() && real.is_dir() {
            let origin = RealEntry {
                layer,
                dentry: real.into(),
            };
            if let Some(index) = self.lookup_index(m, None, &origin, false)? {
                // An entry that names no upper directory: go on with the parent.
                let Some(upper) = self.index_upper_of(m, &index, true)? else {
                    return Ok(None);
                };
                this = Some(self.lookup_real(m, sb, &upper, 0)?);
            }
        }
        match this {
            Some(d) if !self.is_real_at(&d, layer, real)? => Err(EIO),
            this => Ok(this),
        }
    }

    /// The top-most union dentry known (cached or indexed) whose real object on layer
    /// `layer` is an ancestor of `real` (or `real` itself); the root if none is (overlayfs'
    /// `ovl_lookup_real_ancestor`).
    fn lookup_real_ancestor(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        real: &Dentry,
        layer: usize,
    ) -> Result<ARef<Dentry>> {
        let layer_root = self.layers.get(layer).ok_or(EIO)?.mnt.root();
        if core::ptr::eq(real.as_ptr(), layer_root.as_ptr()) {
            return Ok(sb.root());
        }
        let mut next: ARef<Dentry> = real.into();
        loop {
            let parent = next.parent();
            if let Some(found) = self.lookup_real_inode(m, sb, &next, layer)? {
                return Ok(found);
            }
            if core::ptr::eq(parent.as_ptr(), layer_root.as_ptr()) {
                return Ok(sb.root());
            }
            // Moved out of the layer: not by a rename through the union.
            if core::ptr::eq(parent.as_ptr(), next.as_ptr()) {
                return Err(errno::exdev());
            }
            next = parent;
        }
    }

    /// The connected union dentry whose real object on layer `layer` is `real` (overlayfs'
    /// `ovl_lookup_real`): from the top-most known ancestor, the names of the real path
    /// down to `real` are looked up through the union one by one.
    fn lookup_real(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        real: &Dentry,
        layer: usize,
    ) -> Result<ARef<Dentry>> {
        let r = self.lookup_real_walk(m, sb, real, layer);
        if let Err(e) = &r {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: failed to lookup by real ({}, layer={}, err={})",
                BStr::from_bytes(&real.name_copy().unwrap_or_default()),
                layer,
                e.to_errno()
            ));
        }
        r
    }

    fn lookup_real_walk(
        &self,
        m: &AsMounter<'_>,
        sb: &SuperBlock<UnionFs>,
        real: &Dentry,
        layer: usize,
    ) -> Result<ARef<Dentry>> {
        let layer_root = self.layers.get(layer).ok_or(EIO)?.mnt.root();
        let mut connected = self.lookup_real_ancestor(m, sb, real, layer)?;
        loop {
            let real_connected = self.real_at(&connected, layer)?.ok_or(EIO)?;
            if core::ptr::eq(real_connected.as_ptr(), real.as_ptr()) {
                return Ok(connected);
            }
            // The top-most real ancestor of `real` not connected yet.
            let mut next: ARef<Dentry> = real.into();
            loop {
                let parent = next.parent();
                if core::ptr::eq(parent.as_ptr(), real_connected.as_ptr()) {
                    break;
                }
                // Moved out of `real_connected` meanwhile: start again from the root.
                if core::ptr::eq(parent.as_ptr(), layer_root.as_ptr()) {
                    connected = sb.root();
                    break;
                }
                if core::ptr::eq(parent.as_ptr(), next.as_ptr()) {
                    return Err(errno::exdev());
                }
                next = parent;
            }
            connected = match self.lookup_real_one(&connected, &next, layer) {
                Ok(this) => this,
                // The union's parent was renamed away meanwhile: find where to go on from.
                Err(e) if e == ECHILD => self.lookup_real_ancestor(m, sb, real, layer)?,
                Err(e) => return Err(e),
            };
        }
    }

    /// The child of union dentry `connected` whose real object on layer `layer` is `real`,
    /// a child of `connected`'s real object, looked up by `real`'s name (overlayfs'
    /// `ovl_lookup_real_one`). `ECHILD` if `real` is no longer a child of `connected`'s real
    /// object, `ESTALE` if the name leads elsewhere.
    fn lookup_real_one(
        &self,
        connected: &Dentry,
        real: &Dentry,
        layer: usize,
    ) -> Result<ARef<Dentry>> {
        // A copy of the name: the real object may be renamed meanwhile.
        let name = real.name_copy()?;
        let this = connected.lookup_child_noperm(&name);
        if !self.is_real_at(connected, layer, &real.parent())? {
            return Err(ECHILD);
        }
        let this = this?;
        if this.inode().is_none() {
            return Err(ENOENT);
        }
        if !self.is_real_at(&this, layer, real)? {
            return Err(errno::estale());
        }
        Ok(this)
    }

    /// The index entry of the lower handle stored as `stored` (overlayfs' `ovl_get_index_fh`): `None` if
    /// there is none, `ESTALE` for a whiteout (the object was removed), `EIO` for an odd one.
    fn index_of_fh(&self, m: &AsMounter<'_>, stored: &[u8]) -> Result<Option<ARef<Dentry>>> {
        let dir = self.index_dir().ok_or(EIO)?;
        let name = crate::index::hex(stored)?;
        let Some(index) = self.upper_layer()?.mnt.lookup(m, dir, &name)? else {
            return Ok(None);
        };
        if index.inode().is_none() {
            return Ok(None);
        }
        if index.is_whiteout() {
            return Err(errno::estale());
        }
        if index.is_unusual_layer_root() {
            return Err(EIO);
        }
        Ok(Some(index))
    }
}
