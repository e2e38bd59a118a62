// SPDX-License-Identifier: GPL-2.0

//! Lookup across the layers.
//!
//! A name is looked up in each real directory behind the parent, top layer first. A whiteout
//! hides the name in every layer below it; a non-directory hides everything below it;
//! directories merge until one is opaque.

use crate::inode::{RealEntry, UnionInode};
use crate::params::{Uuid, Verity};
use crate::superblock::{Layer, LayerKind, UnionFs};
use crate::vfs::layer::{FhSupport, RealFh};
use crate::vfs::{
    errno, AsMounter, Dentry, DentryKind, FsInode, Inode, SuperBlock, VERITY_MAX_DIGEST,
};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::str::BStr;
use kernel::sync::aref::ARef;

/// overlayfs' file handle (`struct ovl_fb`), as `overlay.origin` holds it: a header (version,
/// magic, length, flags, the real handle's type, the uuid of the real filesystem), then the
/// real filesystem's handle.
pub(crate) struct UnionFh {
    flags: u8,
    uuid: [u8; 16],
    real: RealFh,
}

const FH_HEADER: usize = 21;
const FH_VERSION: u8 = 0;
const FH_MAGIC: u8 = 0xfb;
const FH_FLAG_BIG_ENDIAN: u8 = 1 << 0;
const FH_FLAG_ANY_ENDIAN: u8 = 1 << 1;
const FH_FLAG_PATH_UPPER: u8 = 1 << 2;
const FH_FLAG_ALL: u8 = FH_FLAG_BIG_ENDIAN | FH_FLAG_ANY_ENDIAN | FH_FLAG_PATH_UPPER;
/// The real handle's words are stored as this CPU orders bytes, and the flags say which.
const FH_FLAG_CPU_ENDIAN: u8 = if cfg!(target_endian = "big") {
    FH_FLAG_BIG_ENDIAN
} else {
    0
};

impl UnionFh {
    /// The flags (`OVL_FH_FLAG_*`).
    pub(crate) fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether this is the handle of an upper object.
    pub(crate) fn is_upper(&self) -> bool {
        self.flags & FH_FLAG_PATH_UPPER != 0
    }

    /// Whether the handle is of the filesystem whose handles carry `uuid`.
    pub(crate) fn names_fs(&self, uuid: [u8; 16]) -> bool {
        self.uuid == uuid
    }

    /// The stored form.
    pub(crate) fn to_bytes(&self) -> Result<KVec<u8>> {
        let len = FH_HEADER + self.real.words.len() * 4;
        let mut b = KVec::with_capacity(len, GFP_KERNEL)?;
        let header = [
            FH_VERSION,
            FH_MAGIC,
            u8::try_from(len).map_err(|_| EIO)?,
            self.flags,
            self.real.fh_type,
        ];
        b.extend_from_slice(&header, GFP_KERNEL)?;
        b.extend_from_slice(&self.uuid, GFP_KERNEL)?;
        for w in self.real.words.iter() {
            b.extend_from_slice(&w.to_ne_bytes(), GFP_KERNEL)?;
        }
        Ok(b)
    }

    /// Reads a stored handle (overlayfs' `ovl_check_fb_len`): `EINVAL` if it is malformed,
    /// `None` if it is of a later version, has flags we do not know or is in the other byte
    /// order ("origin unknown", as overlayfs takes it).
    pub(crate) fn parse(b: &[u8]) -> Result<Option<Self>> {
        let (Some(&[version, magic, len, flags, fh_type]), Some(uuid)) =
            (b.get(..5), b.get(5..FH_HEADER))
        else {
            return Err(EINVAL);
        };
        let len = usize::from(len);
        if b.len() < len || len < FH_HEADER || magic != FH_MAGIC {
            return Err(EINVAL);
        }
        if version > FH_VERSION || flags & !FH_FLAG_ALL != 0 {
            return Ok(None);
        }
        if flags & FH_FLAG_ANY_ENDIAN == 0 && flags & FH_FLAG_BIG_ENDIAN != FH_FLAG_CPU_ENDIAN {
            return Ok(None);
        }
        let fid = b.get(FH_HEADER..len).ok_or(EINVAL)?;
        let mut words = KVec::with_capacity(fid.len() / 4, GFP_KERNEL)?;
        for w in fid.chunks_exact(4) {
            words.push(
                u32::from_ne_bytes(w.try_into().map_err(|_| EINVAL)?),
                GFP_KERNEL,
            )?;
        }
        Ok(Some(Self {
            flags,
            uuid: uuid.try_into().map_err(|_| EINVAL)?,
            real: RealFh { fh_type, words },
        }))
    }
}

impl UnionFs {
    /// The name of one of our private xattrs ("trusted.overlay.X" or "user.overlay.X").
    pub(crate) fn xattr_name(&self, which: Xattr) -> &'static CStr {
        match (self.userxattr, which) {
            (false, Xattr::Opaque) => c"trusted.overlay.opaque",
            (false, Xattr::Whiteout) => c"trusted.overlay.whiteout",
            (true, Xattr::Opaque) => c"user.overlay.opaque",
            (true, Xattr::Whiteout) => c"user.overlay.whiteout",
            (false, Xattr::Uuid) => c"trusted.overlay.uuid",
            (true, Xattr::Uuid) => c"user.overlay.uuid",
            (false, Xattr::Impure) => c"trusted.overlay.impure",
            (true, Xattr::Impure) => c"user.overlay.impure",
            (false, Xattr::Origin) => c"trusted.overlay.origin",
            (true, Xattr::Origin) => c"user.overlay.origin",
            (false, Xattr::Nlink) => c"trusted.overlay.nlink",
            (true, Xattr::Nlink) => c"user.overlay.nlink",
            (false, Xattr::Upper) => c"trusted.overlay.upper",
            (true, Xattr::Upper) => c"user.overlay.upper",
            (false, Xattr::Redirect) => c"trusted.overlay.redirect",
            (true, Xattr::Redirect) => c"user.overlay.redirect",
            (false, Xattr::Metacopy) => c"trusted.overlay.metacopy",
            (true, Xattr::Metacopy) => c"user.overlay.metacopy",
        }
    }

    /// The value of a directory's `overlay.opaque` xattr: `y` (opaque), `x` (contains xattr
    /// whiteouts) or 0.
    pub(crate) fn opaque_value(&self, m: &AsMounter<'_>, layer: &Layer, dir: &Dentry) -> u8 {
        let mut v = [0u8; 1];
        match layer
            .mnt
            .getxattr(m, dir, self.xattr_name(Xattr::Opaque), &mut v)
        {
            Ok(1) => v[0],
            _ => 0,
        }
    }

    /// Whether a positive real dentry is a whiteout: a 0/0 character device, or an empty
    /// regular file with the `overlay.whiteout` xattr (overlayfs' xattr whiteouts).
    pub(crate) fn is_whiteout(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        d: &Dentry,
        inode: &Inode,
    ) -> bool {
        if inode.is_whiteout() {
            return true;
        }
        inode.is_reg()
            && inode.size() == 0
            && layer
                .mnt
                .getxattr(m, d, self.xattr_name(Xattr::Whiteout), &mut [])
                .is_ok()
    }

    /// Looks `name` up below the real directories `parent`: the new stack, whether it is an
    /// indexed object (its upper object is its index entry), and the upper directory's
    /// redirect.
    ///
    /// An upper non-directory is followed to its origin, a merged directory gets one if it
    /// has none; with the index on, a non-directory with an origin (or only on lower layers)
    /// is looked for in the index: a name not linked up yet gets the index entry as its
    /// upper object, so that all names of a lower hard link show one object.
    pub(crate) fn lookup_stack(
        &self,
        m: &AsMounter<'_>,
        parent: &UnionInode,
        name: &[u8],
    ) -> Result<Found> {
        let Layers {
            mut stack,
            upper_redirect: mut redirect,
            mut upper_metacopy,
            lowerdata_redirect,
        } = self.lookup_layers(m, parent, name)?;
        let top_is_upper = stack
            .first()
            .is_some_and(|e| e.layer == 0 && self.has_upper());
        let found = |stack, indexed, redirect, upper_metacopy| Found {
            stack,
            indexed,
            redirect,
            upper_metacopy,
            lowerdata_redirect,
        };
        let Some(top) = stack.first() else {
            return Ok(found(stack, false, redirect, false));
        };
        if top.dentry.is_dir() {
            if let (true, Some(lower)) = (top_is_upper, stack.get(1)) {
                self.fix_dir_origin(m, parent, &top.dentry, lower)?;
                if self.index_all() {
                    // A merged directory's lower directory must be its origin, else the
                    // directory is the upper one alone (overlayfs' `ovl_verify_lower`).
                    if !self.is_origin_of(m, &top.dentry, lower)? {
                        stack.truncate(1);
                        return Ok(found(stack, false, redirect, false));
                    }
                    let index = self.lookup_index(m, Some(&top.dentry), lower, true)?;
                    return Ok(found(stack, index.is_some(), redirect, false));
                }
            } else if !top_is_upper && self.index_all() {
                // Only an error to find: a lower directory in the index has an upper one.
                self.lookup_index(m, None, top, true)?;
            }
            return Ok(found(stack, false, redirect, false));
        }
        if top_is_upper {
            let origin = self.origin_of(m, &top.dentry)?;
            match (stack.get(1), origin) {
                (None, Some(origin)) => stack.push(origin, GFP_KERNEL)?,
                // A metacopy file, whose lower objects lookup found by path: with the index,
                // the first must be its recorded origin (overlayfs' `ovl_verify_origin`).
                (Some(lower), Some(_)) if self.index => {
                    if !self.is_origin_of(m, &top.dentry, lower)? {
                        return Err(errno::estale());
                    }
                }
                // No verified origin: not looked for in the index.
                (Some(_), _) => return Ok(found(stack, false, redirect, upper_metacopy)),
                (None, None) => {}
            }
        }
        let (upper, origin) = match top_is_upper {
            true => (stack.first().map(|e| &e.dentry), stack.get(1)),
            false => (None, stack.first()),
        };
        let Some(origin) = origin else {
            return Ok(found(stack, false, redirect, upper_metacopy));
        };
        let Some(index) = self.lookup_index(m, upper.map(|d| &**d), origin, true)? else {
            return Ok(found(stack, false, redirect, upper_metacopy));
        };
        if !top_is_upper {
            // The index entry is the object's upper copy, maybe a metadata-only one, maybe
            // renamed (overlayfs reads both from it).
            let upper_layer = self.upper_layer()?;
            redirect = self.read_redirect(m, upper_layer, &index)?;
            upper_metacopy = self.metacopy_size(m, upper_layer, &index)?.is_some();
            if upper_metacopy && !self.metacopy {
                return Err(refuse_metacopy(name));
            }
            if redirect.is_some() && !self.redirect.follows() {
                return Err(refuse_redirect(name));
            }
            stack.reserve(1, GFP_KERNEL)?;
            stack
                .insert_within_capacity(
                    0,
                    RealEntry {
                        layer: 0,
                        dentry: index,
                    },
                )
                .map_err(|_| ENOMEM)?;
        }
        Ok(found(stack, true, redirect, upper_metacopy))
    }

    /// Looks `name` up in the layers below `parent` (overlayfs' `ovl_lookup_layers`): in its
    /// upper directory, then in its lower ones, following redirects (a directory or metacopy
    /// file renamed with `redirect_dir=on` names where its lower objects are: another name in
    /// the same lower directories, or a path from the layers' roots) and metacopy files down
    /// to the file with their data. Returns the stack, top first (of the metacopy files below
    /// the upper layer only the first, and the data file), the upper object's redirect, and
    /// whether the upper object is a metacopy file.
    fn lookup_layers(&self, m: &AsMounter<'_>, parent: &UnionInode, name: &[u8]) -> Result<Layers> {
        let follows = self.redirect.follows();
        let has_data = self.has_data_layers();
        // Redirects are read where they can be followed, and where a metacopy file may lead
        // into a data-only layer.
        let reads_redirects = follows || has_data;
        let mut d = LookupData::new(name)?;
        // Without following, a redirect is not even read where nothing is below.
        d.last = !reads_redirects && parent.lower().is_empty();
        let mut stack = KVec::new();
        let mut upper_redirect = None;
        let mut upper_metacopy = false;
        let mut lowers = 0usize;
        // The real directories to look in below the upper one: the parent's lower ones, or,
        // after an absolute redirect, the layers' roots.
        let mut bases: KVec<(usize, &Dentry)> =
            KVec::with_capacity(parent.lower().len(), GFP_KERNEL)?;
        let mut from_roots = false;
        for e in parent.lower() {
            bases.push((e.layer, &e.dentry), GFP_KERNEL)?;
        }
        if let Some(up) = parent.upper() {
            if let Some(found) = self.lookup_layer(m, up.layer, &up.dentry, &mut d)? {
                upper_metacopy = d.metacopy;
                if d.redirected {
                    upper_redirect = Some(d.copy_name()?);
                    if d.is_absolute() {
                        bases = self.roots_below(up.layer)?;
                        from_roots = true;
                    }
                }
                stack.push(
                    RealEntry {
                        layer: up.layer,
                        dentry: found,
                    },
                    GFP_KERNEL,
                )?;
            }
        }
        // The bottom merged layer (data-only layers are below it).
        let bottom = self
            .layers
            .iter()
            .rposition(|l| l.kind == LayerKind::Lower)
            .unwrap_or(0);
        let mut i = 0;
        while !d.stop {
            let Some(&(layer, base)) = bases.get(i) else {
                break;
            };
            self.check_follow(&d, name)?;
            if !reads_redirects {
                d.last = i + 1 == bases.len();
            } else if d.is_dir || !has_data {
                d.last = layer == bottom;
            }
            if let Some(found) = self.lookup_layer(m, layer, base, &mut d)? {
                // Of the metacopy files below the upper layer only the first counts: it
                // numbers the object.
                if !(d.metacopy && lowers > 0) {
                    stack.push(
                        RealEntry {
                            layer,
                            dentry: found,
                        },
                        GFP_KERNEL,
                    )?;
                    lowers += 1;
                }
            }
            if d.stop {
                break;
            }
            if d.redirected && d.is_absolute() && !from_roots {
                // Go on from the layers' roots, below this layer.
                bases = self.roots_below(layer)?;
                from_roots = true;
                i = 0;
                continue;
            }
            i += 1;
        }
        // A lower metacopy file whose absolute redirect leads into the data-only layers: its
        // data is looked up there on first use (overlayfs' lazy `lowerdata`), whatever
        // `redirect_dir` and `metacopy` say.
        let mut lowerdata_redirect = None;
        if d.metacopy && lowers > 0 && has_data && d.absolute_redirect {
            d.metacopy = false;
            lowerdata_redirect = Some(d.copy_name()?);
        } else {
            self.check_follow(&d, name)?;
        }
        if d.metacopy || upper_metacopy && lowers == 0 {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: metacopy with no lower data found - abort lookup ({})",
                BStr::from_bytes(name)
            ));
            return Err(EIO);
        }
        Ok(Layers {
            stack,
            upper_redirect,
            upper_metacopy,
            lowerdata_redirect,
        })
    }

    /// Whether the lookup may follow what it met (overlayfs' `ovl_check_follow_redirect`): a
    /// redirect only where redirects are followed, a metacopy file only with `metacopy=on`,
    /// as either could show a lower object that the union's own permissions would hide.
    fn check_follow(&self, d: &LookupData, name: &[u8]) -> Result {
        if d.metacopy && !self.metacopy {
            return Err(refuse_metacopy(name));
        }
        if d.redirected && !self.redirect.follows() {
            return Err(refuse_redirect(name));
        }
        Ok(())
    }

    /// The size of the `overlay.metacopy` xattr of real object `d` on `layer` (overlayfs'
    /// `ovl_check_metacopy_xattr`), `None` if it is not a metacopy file (only a regular file
    /// can be). An empty value stands for the 4-byte header without digest; a shorter one
    /// than the header fails with `EIO`.
    pub(crate) fn metacopy_size(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        d: &Dentry,
    ) -> Result<Option<usize>> {
        if !d.is_reg() {
            return Ok(None);
        }
        match layer
            .mnt
            .getxattr(m, d, self.xattr_name(Xattr::Metacopy), &mut [])
        {
            Ok(0) => Ok(Some(METACOPY_MIN_SIZE)),
            Ok(n) if n < METACOPY_MIN_SIZE => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: metacopy file '{}' has too small xattr",
                    BStr::from_bytes(&d.name_copy().unwrap_or_default())
                ));
                Err(EIO)
            }
            Ok(n) => Ok(Some(n)),
            Err(e) if e == errno::enodata() || e == errno::eopnotsupp() => Ok(None),
            // A `user.*` xattr of a file the mounter may not read: taken as none.
            Err(e) if e == EACCES && self.userxattr => Ok(None),
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to get metacopy ({})",
                    e.to_errno()
                ));
                Err(e)
            }
        }
    }

    /// The roots of the lower layers below layer `layer`, top first.
    fn roots_below(&self, layer: usize) -> Result<KVec<(usize, &Dentry)>> {
        let mut roots = KVec::new();
        for (i, l) in self.layers.iter().enumerate().skip(layer + 1) {
            if l.kind == LayerKind::Lower {
                roots.push((i, l.spec.path.dentry()), GFP_KERNEL)?;
            }
        }
        Ok(roots)
    }

    /// Looks the name (or path) `d` holds up in one layer, below `base` (overlayfs'
    /// `ovl_lookup_layer`): a path from the layer's root one component at a time.
    fn lookup_layer(
        &self,
        m: &AsMounter<'_>,
        layer: usize,
        base: &Dentry,
        d: &mut LookupData,
    ) -> Result<Option<ARef<Dentry>>> {
        if !d.is_absolute() {
            let len = d.name.len();
            return self.lookup_single(m, layer, base, d, 0..len);
        }
        // The path is walked counting from its end: a redirect on the way changes its start.
        let mut rem = d.name.len() - 1;
        let mut at: Option<ARef<Dentry>> = None;
        loop {
            let start = d.name.len() - rem;
            let rest = d.name.get(start..).ok_or(EIO)?;
            let len = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
            let end = len == rest.len();
            let dir = match &at {
                Some(a) => &**a,
                None => base,
            };
            let next = self.lookup_single(m, layer, dir, d, start..start + len)?;
            match next {
                Some(n) if !end && n.is_dir() => at = Some(n),
                other => return Ok(other.filter(|_| end)),
            }
            rem = rem.checked_sub(len + 1).ok_or(EIO)?;
        }
    }

    /// Looks component `range` of the name `d` holds up below `base`, on layer `layer`
    /// (overlayfs' `ovl_lookup_single`): what it finds decides whether the lookup goes on
    /// below, and a directory's redirect changes what is looked for there.
    fn lookup_single(
        &self,
        m: &AsMounter<'_>,
        layer_index: usize,
        base: &Dentry,
        d: &mut LookupData,
        range: core::ops::Range<usize>,
    ) -> Result<Option<ARef<Dentry>>> {
        let layer = self.layers.get(layer_index).ok_or(EIO)?;
        let last_element = range.end == d.name.len();
        let component = d.name.get(range.clone()).ok_or(EIO)?;
        let child = layer.mnt.lookup(m, base, component);
        let child = match child {
            Ok(Some(c)) if c.inode().is_some() => c,
            Ok(_) => {
                // Not in this layer: with OCI whiteouts, a whiteout of it here hides it below.
                if self.has_oci_whiteout(m, layer, base, component)? {
                    d.stop = true;
                }
                return Ok(None);
            }
            Err(e) if e == errno::enametoolong() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(inode) = child.inode() else {
            return Ok(None);
        };
        if self.is_whiteout(m, layer, &child, inode) {
            d.stop = true;
            return Ok(None);
        }
        // A directory next to an OCI whiteout of its name in its own lower layer: the whiteout
        // hides the layers below, as an opaque marker would. Not on the upper layer, where
        // unionrs marks what it makes opaque itself, and where a whiteout left by a deletion
        // must not cut off a directory renamed there later (its redirect decides).
        let oci_opaque = inode.is_dir()
            && !self.is_upper_layer(layer_index)
            && self.has_oci_whiteout(m, layer, base, component)?;
        // Below a metacopy file only a regular file can hold its data.
        if last_element && d.metacopy && !inode.is_reg() {
            d.stop = true;
            return Ok(None);
        }
        if !inode.is_dir() {
            // A non-directory is only visible on top; below a directory it is hidden.
            if d.is_dir || !last_element {
                d.stop = true;
                return Ok(None);
            }
            // A metacopy file has its data below: the lookup goes on, where its redirect says.
            d.metacopy = self.metacopy_size(m, layer, &child)?.is_some();
            d.stop = !d.metacopy;
            if d.metacopy && !d.last {
                d.absolute_redirect = false;
                if let Some(redirect) = self.read_redirect(m, layer, &child)? {
                    d.redirect_to(&redirect, range)?;
                }
            }
            return Ok(Some(child));
        }
        if self.is_trap(inode) {
            return Err(overlapping_layers(layer, component));
        }
        if last_element {
            d.is_dir = true;
        }
        if d.last {
            return Ok(Some(child));
        }
        // Directories merge down to an opaque one.
        if oci_opaque || self.is_opaque_dir(m, layer, &child)? {
            d.stop = true;
            return Ok(Some(child));
        }
        d.absolute_redirect = false;
        if let Some(redirect) = self.read_redirect(m, layer, &child)? {
            d.redirect_to(&redirect, range)?;
        }
        Ok(Some(child))
    }

    /// Whether layer directory `dir` has an OCI whiteout (`.wh.NAME`) of `name`, with
    /// `whiteout=oci`. In the image-spec's rules it hides `name` in the layers below only, so
    /// it matters where the layer itself has no `name`.
    pub(crate) fn has_oci_whiteout(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        dir: &Dentry,
        name: &[u8],
    ) -> Result<bool> {
        if !self.oci_whiteouts {
            return Ok(false);
        }
        let mut marker = [0u8; NAME_MAX];
        // Longer than a name can be: no layer can hold such a whiteout.
        let Some(whole) = marker.get_mut(..OCI_WHITEOUT_PREFIX.len() + name.len()) else {
            return Ok(false);
        };
        let Some((prefix, tail)) = whole.split_at_mut_checked(OCI_WHITEOUT_PREFIX.len()) else {
            return Ok(false);
        };
        prefix.copy_from_slice(OCI_WHITEOUT_PREFIX);
        tail.copy_from_slice(name);
        self.layer_has(m, layer, dir, whole)
    }

    /// Whether layer `index` is the upper layer.
    fn is_upper_layer(&self, index: usize) -> bool {
        index == 0 && self.has_upper()
    }

    /// Whether `name` can be hidden by an OCI whiteout: its `.wh.` name fits in a name.
    pub(crate) fn fits_oci_whiteout(name: &[u8]) -> bool {
        OCI_WHITEOUT_PREFIX.len() + name.len() <= NAME_MAX
    }

    /// Whether layer directory `dir` has an entry `name`.
    fn layer_has(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        dir: &Dentry,
        name: &[u8],
    ) -> Result<bool> {
        match layer.mnt.lookup(m, dir, name) {
            Ok(found) => Ok(found.is_some_and(|c| c.inode().is_some())),
            Err(e) if e == errno::enametoolong() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether layer directory `dir` hides the layers below it: overlayfs' `overlay.opaque`
    /// of "y", or with `whiteout=oci` an OCI opaque marker (`.wh..wh..opq`) in it.
    pub(crate) fn is_opaque_dir(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        dir: &Dentry,
    ) -> Result<bool> {
        if self.opaque_value(m, layer, dir) == b'y' {
            return Ok(true);
        }
        Ok(self.oci_whiteouts && self.layer_has(m, layer, dir, OCI_OPAQUE_MARKER)?)
    }

    /// The value of a directory's `overlay.redirect` (overlayfs' `ovl_get_redirect_xattr`),
    /// checked: an absolute one is a path of non-empty components, a relative one a single
    /// name. A malformed one fails the lookup with `EINVAL`.
    pub(crate) fn read_redirect(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        dir: &Dentry,
    ) -> Result<Option<KVec<u8>>> {
        let name = self.xattr_name(Xattr::Redirect);
        let failed = |e: Error| {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: failed to get redirect ({})",
                e.to_errno()
            ));
            e
        };
        let size = match layer.mnt.getxattr(m, dir, name, &mut []) {
            Ok(n) => n,
            Err(e) if e == errno::enodata() || e == errno::eopnotsupp() => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let mut value = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        let n = layer
            .mnt
            .getxattr(m, dir, name, &mut value)
            .map_err(failed)?;
        value.truncate(n);
        let raw_empty = value.is_empty();
        // overlayfs reads the value as a C string: it ends at a NUL.
        if let Some(nul) = value.iter().position(|&c| c == 0) {
            value.truncate(nul);
        }
        if raw_empty || !is_valid_redirect(&value) {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: invalid redirect ({})",
                BStr::from_bytes(&value)
            ));
            return Err(EINVAL);
        }
        Ok(Some(value))
    }

    /// Looks `name` up below the given real directories (top first).
    pub(crate) fn lookup_in<'a>(
        &self,
        m: &AsMounter<'_>,
        dirs: impl Iterator<Item = &'a RealEntry>,
        name: &[u8],
    ) -> Result<KVec<RealEntry>> {
        let mut stack = KVec::new();
        for e in dirs {
            let layer = self.layers.get(e.layer).ok_or(EIO)?;
            let child = layer.mnt.lookup(m, &e.dentry, name)?;
            let Some((child, inode)) = child.as_ref().and_then(|c| Some((c, c.inode()?))) else {
                if self.has_oci_whiteout(m, layer, &e.dentry, name)? {
                    break;
                }
                continue;
            };
            if self.is_whiteout(m, layer, child, inode) {
                break;
            }
            let is_dir = inode.is_dir();
            if is_dir && self.is_trap(inode) {
                return Err(overlapping_layers(layer, name));
            }
            // A non-directory is only visible on top; below a directory it is hidden.
            if !is_dir && !stack.is_empty() {
                break;
            }
            let opaque = is_dir
                && (self.is_opaque_dir(m, layer, child)?
                    || (!self.is_upper_layer(e.layer)
                        && self.has_oci_whiteout(m, layer, &e.dentry, name)?));
            stack.push(
                RealEntry {
                    layer: e.layer,
                    dentry: child.clone(),
                },
                GFP_KERNEL,
            )?;
            // Directories merge down to an opaque one; a non-directory ends the stack.
            if !is_dir || opaque {
                break;
            }
        }
        Ok(stack)
    }
}

/// What a lookup found (see [`UnionFs::lookup_stack`]).
pub(crate) struct Found {
    pub(crate) stack: KVec<RealEntry>,
    pub(crate) indexed: bool,
    pub(crate) redirect: Option<KVec<u8>>,
    /// The upper object is a metadata-only copy.
    pub(crate) upper_metacopy: bool,
    /// Where in the data-only layers the data is, to be looked up on first use.
    pub(crate) lowerdata_redirect: Option<KVec<u8>>,
}

/// What [`UnionFs::lookup_layers`] found.
struct Layers {
    stack: KVec<RealEntry>,
    upper_redirect: Option<KVec<u8>>,
    upper_metacopy: bool,
    lowerdata_redirect: Option<KVec<u8>>,
}

/// The state of a lookup going down the layers (overlayfs' `ovl_lookup_data`).
struct LookupData {
    /// What is looked for: the union's name, the name a relative redirect gave, or a path
    /// from the layers' roots (starting with `/`) that an absolute one gave.
    name: KVec<u8>,
    /// A directory was found: only directories merge with it below.
    is_dir: bool,
    /// Nothing below is looked at (a non-directory, a whiteout or an opaque directory).
    stop: bool,
    /// A redirect changed what is looked for.
    redirected: bool,
    /// Nothing is looked for below this layer: its redirects are not read.
    last: bool,
    /// The last object found is a metacopy file: the lookup goes on for its data.
    metacopy: bool,
    /// The last redirect read (on the last object that could have one) is absolute.
    absolute_redirect: bool,
}

impl LookupData {
    fn new(name: &[u8]) -> Result<Self> {
        let mut n = KVec::with_capacity(name.len(), GFP_KERNEL)?;
        n.extend_from_slice(name, GFP_KERNEL)?;
        Ok(Self {
            name: n,
            is_dir: false,
            stop: false,
            redirected: false,
            last: false,
            metacopy: false,
            absolute_redirect: false,
        })
    }

    fn is_absolute(&self) -> bool {
        self.name.first() == Some(&b'/')
    }

    fn copy_name(&self) -> Result<KVec<u8>> {
        let mut n = KVec::with_capacity(self.name.len(), GFP_KERNEL)?;
        n.extend_from_slice(&self.name, GFP_KERNEL)?;
        Ok(n)
    }

    /// Component `at` of the name was found redirected to `redirect` (overlayfs'
    /// `ovl_check_redirect`): an absolute redirect replaces the path up to it (and the
    /// lookup goes on below even past an opaque directory on the way), a relative one
    /// replaces the component.
    fn redirect_to(&mut self, redirect: &[u8], at: core::ops::Range<usize>) -> Result {
        let post = self.name.get(at.end..).ok_or(EIO)?;
        let mut name = KVec::with_capacity(at.start + redirect.len() + post.len(), GFP_KERNEL)?;
        self.absolute_redirect = redirect.first() == Some(&b'/');
        if self.absolute_redirect {
            self.stop = false;
        } else {
            name.extend_from_slice(self.name.get(..at.start).ok_or(EIO)?, GFP_KERNEL)?;
        }
        name.extend_from_slice(redirect, GFP_KERNEL)?;
        name.extend_from_slice(post, GFP_KERNEL)?;
        self.name = name;
        self.redirected = true;
        Ok(())
    }
}

/// Whether `v` is a well-formed redirect: `/` and non-empty components, or one name (which
/// only a lookup can refuse).
fn is_valid_redirect(v: &[u8]) -> bool {
    match v.split_first() {
        Some((b'/', path)) => path.split(|&c| c == b'/').all(|c| !c.is_empty()),
        _ => !v.contains(&b'/'),
    }
}

/// A layer root or the work directory met below `name` on `layer` (moved there after the
/// mount): overlayfs' trap, `ELOOP` rather than a loop.
fn overlapping_layers(layer: &Layer, name: &[u8]) -> Error {
    let which = match layer.kind {
        LayerKind::Upper => "upper",
        _ => "lower",
    };
    crate::vfs::warn_ratelimited(fmt!(
        "unionrs: failed lookup in {} ('{}'): overlapping layers",
        which,
        BStr::from_bytes(name)
    ));
    errno::eloop()
}

/// A metacopy file met where `metacopy=off` forbids following it to its data.
fn refuse_metacopy(name: &[u8]) -> Error {
    crate::vfs::warn_ratelimited(fmt!(
        "unionrs: refusing to follow metacopy origin for ({})",
        BStr::from_bytes(name)
    ));
    EPERM
}

/// The size of `overlay.metacopy`'s header (overlayfs' `OVL_METACOPY_MIN_SIZE`): version,
/// length, flags and digest algorithm, one byte each.
pub(crate) const METACOPY_MIN_SIZE: usize = 4;

/// The fs-verity digest of a lower data file.
struct VerityDigest {
    /// The hash algorithm (`FS_VERITY_HASH_ALG_*`).
    algo: u8,
    /// How many bytes of `bytes` the digest is.
    len: usize,
    bytes: [u8; VERITY_MAX_DIGEST],
}

impl VerityDigest {
    fn digest(&self) -> Option<&[u8]> {
        self.bytes.get(..self.len)
    }
}

/// A lower data file that fails its fs-verity check: logged (rate-limited), `EIO`.
fn lower_verity_error(lower: &RealEntry, what: &str) -> Error {
    // Without memory for the name the message goes out without it.
    let name = lower.dentry.name_copy().unwrap_or_else(|_| KVec::new());
    crate::vfs::warn_ratelimited(fmt!(
        "unionrs: lower file '{}' {}",
        BStr::from_bytes(&name),
        what
    ));
    EIO
}

/// The prefix of an OCI whiteout: `.wh.NAME` hides `NAME` in the layers below (the OCI image
/// spec, layer.md), with `whiteout=oci`.
pub(crate) const OCI_WHITEOUT_PREFIX: &[u8] = b".wh.";
/// An OCI opaque marker: the directory that holds it hides the layers below.
pub(crate) const OCI_OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The longest name a layer can hold.
const NAME_MAX: usize = kernel::bindings::NAME_MAX as usize;

/// A redirect met where `redirect_dir=nofollow` forbids following it.
fn refuse_redirect(name: &[u8]) -> Error {
    crate::vfs::warn_ratelimited(fmt!(
        "unionrs: refusing to follow redirect for ({})",
        BStr::from_bytes(name)
    ));
    EPERM
}

/// Hex of up to 64 bytes of `b`, for messages about bad xattr values.
struct Hex<'a>(&'a [u8]);

impl kernel::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        for byte in self.0.iter().take(64) {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl UnionFs {
    /// The uuid a file handle of layer `layer`'s filesystem carries: the filesystem's, or
    /// none with `uuid=off`.
    pub(crate) fn handle_uuid(&self, layer: &Layer) -> [u8; 16] {
        match self.uuid {
            Uuid::Off => [0; 16],
            _ => layer.mnt.fs_uuid(),
        }
    }

    /// The value of `overlay.origin` for a copy of `lower` (overlayfs' `ovl_get_origin_fh`):
    /// its file handle, or an empty value when its filesystem cannot decode handles (or the
    /// mounter may not open by handle), which still tells a copy from an object made on the
    /// upper layer.
    pub(crate) fn origin_value(&self, lower: &RealEntry) -> Result<KVec<u8>> {
        let layer = self.layers.get(lower.layer).ok_or(EIO)?;
        if layer.mnt.fh_support() == FhSupport::None {
            return Ok(KVec::new());
        }
        let real = lower.dentry.inode().ok_or(EIO)?.encode_fh()?;
        UnionFh {
            flags: FH_FLAG_CPU_ENDIAN,
            uuid: self.handle_uuid(layer),
            real,
        }
        .to_bytes()
    }

    /// The stored file handle of upper object `d` (overlayfs' `ovl_encode_real_fh` with
    /// `is_upper`): what the index directory's `overlay.upper` holds for the upper root.
    pub(crate) fn handle_of(&self, d: &Dentry, is_upper: bool) -> Result<KVec<u8>> {
        let layer = self.upper_layer()?;
        let real = d.inode().ok_or(EIO)?.encode_fh()?;
        let path_flag = if is_upper { FH_FLAG_PATH_UPPER } else { 0 };
        UnionFh {
            flags: FH_FLAG_CPU_ENDIAN | path_flag,
            uuid: self.handle_uuid(layer),
            real,
        }
        .to_bytes()
    }

    /// The file handle that private xattr `which` of upper object `d` holds (overlayfs'
    /// `ovl_get_fh`): `None` if there is none, it is empty ("origin unknown"), of a kind this
    /// code does not know, or malformed (with a warning).
    pub(crate) fn stored_fh(
        &self,
        m: &AsMounter<'_>,
        d: &Dentry,
        which: Xattr,
    ) -> Result<Option<KVec<u8>>> {
        let mnt = &self.upper_layer()?.mnt;
        let name = self.xattr_name(which);
        let mut value = match mnt.getxattr(m, d, name, &mut []) {
            Ok(0) => return Ok(None),
            Ok(n) => KVec::from_elem(0u8, n, GFP_KERNEL)?,
            Err(e) if e == errno::enodata() || e == errno::eopnotsupp() => return Ok(None),
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!("unionrs: failed to get origin ({:?})", e));
                return Ok(None);
            }
        };
        let n = match mnt.getxattr(m, d, name, &mut value) {
            Ok(n) => n,
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!("unionrs: failed to get origin ({:?})", e));
                return Ok(None);
            }
        };
        value.truncate(n);
        match UnionFh::parse(&value) {
            Ok(Some(_)) => Ok(Some(value)),
            Ok(None) => Ok(None),
            Err(_) => {
                crate::vfs::warn_ratelimited(fmt!("unionrs: invalid origin ({})", Hex(&value)));
                Ok(None)
            }
        }
    }

    /// Sets private xattr `which` of upper object `d` (overlayfs' `ovl_check_setxattr`): if
    /// the upper filesystem does not take xattrs, says so once and from then on sets none.
    /// Returns whether the xattr was set.
    pub(crate) fn set_private_xattr(
        &self,
        m: &AsMounter<'_>,
        d: &Dentry,
        which: Xattr,
        value: &[u8],
    ) -> Result<bool> {
        if self.noxattr.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mnt = &self.upper_layer()?.mnt;
        match mnt.set_xattr(m, d, self.xattr_name(which), Some(value), 0) {
            Ok(()) => Ok(true),
            Err(e) if e == errno::eopnotsupp() => {
                if !self.noxattr.swap(true, Ordering::Relaxed) {
                    pr_warn!(
                        "unionrs: cannot set {} xattr on upper\n",
                        self.xattr_name(which).to_str().unwrap_or("overlay")
                    );
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Records on upper object `upper` that it is a copy of `lower` (`overlay.origin`). A
    /// filesystem that takes no `user.*` xattr on a symlink or special file refuses with
    /// `EPERM`: the copy then just has no origin, as with overlayfs.
    pub(crate) fn set_origin(
        &self,
        m: &AsMounter<'_>,
        upper: &Dentry,
        lower: &RealEntry,
    ) -> Result {
        let value = self.origin_value(lower)?;
        match self.set_private_xattr(m, upper, Xattr::Origin, &value) {
            Err(e) if e == EPERM => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Marks union directory `dir` "impure" (`overlay.impure` on its upper copy): it may hold
    /// copied-up or moved entries, whose numbers a listing must look up (overlayfs'
    /// `ovl_set_impure`).
    pub(crate) fn set_impure(&self, m: &AsMounter<'_>, dir: &UnionInode) -> Result {
        if dir.is_impure() {
            return Ok(());
        }
        let upper = dir.upper().ok_or(EIO)?;
        if self.set_private_xattr(m, &upper.dentry, Xattr::Impure, b"y")? {
            dir.set_impure();
        }
        Ok(())
    }

    /// Whether upper directory `d` is marked "impure".
    pub(crate) fn is_impure_dir(&self, m: &AsMounter<'_>, d: &Dentry) -> bool {
        let mut v = [0u8; 1];
        let Ok(upper) = self.upper_layer() else {
            return false;
        };
        matches!(
            upper.mnt.getxattr(m, d, self.xattr_name(Xattr::Impure), &mut v),
            Ok(1) if v[0] == b'y'
        )
    }

    /// The lower object that upper non-directory `upper` was copied from, found by its
    /// `overlay.origin` (overlayfs' `ovl_check_origin`). `None` when it has none, or one that
    /// is unknown, malformed (with a warning), stale, of a filesystem whose handles cannot be
    /// told apart, or of another type of file (with a warning): as overlayfs, such an object
    /// just has no origin. The dentry found may be disconnected: it serves to number the
    /// object, never to reach it by path.
    fn origin_of(&self, m: &AsMounter<'_>, upper: &Dentry) -> Result<Option<RealEntry>> {
        let Some(value) = self.stored_fh(m, upper, Xattr::Origin)? else {
            return Ok(None);
        };
        let Some(fh) = UnionFh::parse(&value)? else {
            return Ok(None);
        };
        self.decode_origin_of(m, &fh, upper)
    }

    /// The lower object of file handle `fh`, recorded as the origin of upper object `upper`:
    /// `None` if it cannot be found, or is of another type of file than `upper` (with a
    /// warning).
    pub(crate) fn decode_origin_of(
        &self,
        m: &AsMounter<'_>,
        fh: &UnionFh,
        upper: &Dentry,
    ) -> Result<Option<RealEntry>> {
        let Some(origin) = self.decode_lower_fh(m, fh, false)? else {
            return Ok(None);
        };
        let (upper_mode, origin_mode) = (
            upper.inode().map_or(0, |i| i.mode()),
            origin.dentry.inode().map_or(0, |i| i.mode()),
        );
        let fmt_mask = kernel::bindings::S_IFMT;
        if !upper.is_whiteout() && upper_mode & fmt_mask != origin_mode & fmt_mask {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: invalid origin ({}, ftype={:x}, origin ftype={:x}).",
                kernel::str::BStr::from_bytes(upper.name()),
                upper_mode & fmt_mask,
                origin_mode & fmt_mask
            ));
            return Ok(None);
        }
        Ok(Some(origin))
    }

    /// Finds the lower object of file handle `fh` (overlayfs' `ovl_check_origin_fh`): on the
    /// first lower layer whose filesystem it names and can decode it; a directory inside
    /// that layer's tree if `connected`.
    pub(crate) fn decode_lower_fh(
        &self,
        m: &AsMounter<'_>,
        fh: &UnionFh,
        connected: bool,
    ) -> Result<Option<RealEntry>> {
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.kind != LayerKind::Lower
                || (layer.fsid != 0 && self.bad_uuid.get(layer.fsid).copied().unwrap_or(true))
                || layer.mnt.fh_support() == FhSupport::None
                || fh.uuid != self.handle_uuid(layer)
            {
                continue;
            }
            match layer.mnt.decode_fh(m, &fh.real, connected) {
                Ok(d) => {
                    let weird = d.is_unusual_layer_root() || d.is_whiteout() || d.inode().is_none();
                    if !weird {
                        return Ok(Some(RealEntry {
                            layer: i,
                            dentry: d,
                        }));
                    }
                }
                Err(e) if e == errno::estale() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Whether upper object `upper` records lower object `lower` as its origin (overlayfs'
    /// `ovl_verify_origin`), with overlayfs' warning when it does not (or cannot be told).
    fn is_origin_of(&self, m: &AsMounter<'_>, upper: &Dentry, lower: &RealEntry) -> Result<bool> {
        let r = self
            .origin_value(lower)
            .and_then(|fh| self.verify_fh_xattr(m, upper, Xattr::Origin, &fh));
        match r {
            Ok(()) => Ok(true),
            Err(e) => {
                crate::vfs::warn_ratelimited(fmt!(
                    "unionrs: failed to verify origin ({}, ino={}, err={})",
                    BStr::from_bytes(&lower.dentry.name_copy().unwrap_or_default()),
                    lower.dentry.inode().map_or(0, |i| i.ino()),
                    e.to_errno()
                ));
                Ok(false)
            }
        }
    }

    /// Finds the upper object of file handle `fh` (overlayfs' `ovl_decode_real_fh` on the
    /// upper layer): `EACCES` without an upper layer, `ESTALE` if it is not of the upper
    /// filesystem, cannot be decoded (by this caller), or is gone; a directory inside the
    /// upper layer's tree if `connected`.
    pub(crate) fn decode_upper_fh(
        &self,
        m: &AsMounter<'_>,
        fh: &UnionFh,
        connected: bool,
    ) -> Result<ARef<Dentry>> {
        let layer = self.upper_layer().map_err(|_| EACCES)?;
        if layer.mnt.fh_support() == FhSupport::None || !fh.names_fs(self.handle_uuid(layer)) {
            return Err(errno::estale());
        }
        let upper = layer.mnt.decode_fh(m, &fh.real, connected)?;
        if upper.is_unusual_layer_root() {
            return Err(errno::estale());
        }
        Ok(upper)
    }

    /// Gives upper directory `upper`, merged with lower directory `lower`, an
    /// `overlay.origin` if it has none, and marks its parent `parent` impure: what overlayfs
    /// does on lookup (`ovl_fix_origin`), so that the directory keeps its number.
    fn fix_dir_origin(
        &self,
        m: &AsMounter<'_>,
        parent: &UnionInode,
        upper: &Dentry,
        lower: &RealEntry,
    ) -> Result {
        if self.noxattr.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mnt = &self.upper_layer()?.mnt;
        if mnt
            .getxattr(m, upper, self.xattr_name(Xattr::Origin), &mut [])
            .is_ok()
        {
            return Ok(());
        }
        self.set_origin(m, upper, lower)?;
        self.set_impure(m, parent)
    }
}

impl UnionFs {
    /// Whether `name` is visible in the lower layers of directory `parent` (then removing it
    /// from the union needs a whiteout on the upper layer).
    pub(crate) fn lower_positive(
        &self,
        m: &AsMounter<'_>,
        parent: &UnionInode,
        name: &[u8],
    ) -> Result<bool> {
        Ok(!self.lookup_in(m, parent.lower().iter(), name)?.is_empty())
    }
}

impl UnionFs {
    /// What must hold before a metacopy file's data is used (overlayfs'
    /// `ovl_verify_lowerdata`): its data found (see [`Self::find_lowerdata`]) and, with
    /// `verity=`, checked against the digest its metacopy xattr records.
    pub(crate) fn verify_lowerdata(&self, data: &UnionInode, name: &[u8]) -> Result {
        self.find_lowerdata(data, name)?;
        self.validate_verity(data, name)
    }

    /// Checks a metacopy file's data against the fs-verity digest in its `overlay.metacopy`,
    /// once (overlayfs' `ovl_maybe_validate_verity`): a file without a digest passes unless
    /// `verity=require`; a digest that the data does not have fails with `EIO`.
    fn validate_verity(&self, data: &UnionInode, name: &[u8]) -> Result {
        if self.verity == Verity::Off || !data.is_metacopy() || data.verity_checked() {
            return Ok(());
        }
        let meta = data.top()?;
        let lower = data.lower_data().ok_or(EIO)?;
        let _serialized = data.copy_up_lock.lock()?;
        if data.verity_checked() {
            return Ok(());
        }
        let layer = self.layers.get(meta.layer).ok_or(EIO)?;
        self.with_mounter(|m| {
            let Some((algo, want)) = self.metacopy_digest(m, layer, &meta.dentry)? else {
                if self.verity == Verity::Require {
                    crate::vfs::warn_ratelimited(fmt!(
                        "unionrs: metacopy file '{}' has no digest specified",
                        BStr::from_bytes(name)
                    ));
                    return Err(EIO);
                }
                return Ok(());
            };
            let Some(real) = self.lower_verity_digest(m, lower)? else {
                return Err(lower_verity_error(lower, "has no fs-verity digest"));
            };
            if real.algo != algo || real.digest() != Some(&want[..]) {
                return Err(lower_verity_error(lower, "has the wrong fs-verity digest"));
            }
            data.set_verity_checked();
            Ok(())
        })
    }

    /// The fs-verity digest of lower data file `lower`, its verity data loaded first
    /// (overlayfs' `ovl_ensure_verity_loaded` and `fsverity_get_digest`); `None` if the file
    /// has none. A failure to load is logged and fails with `EIO`.
    fn lower_verity_digest(
        &self,
        m: &AsMounter<'_>,
        lower: &RealEntry,
    ) -> Result<Option<VerityDigest>> {
        self.load_verity(m, lower)
            .map_err(|_| lower_verity_error(lower, "failed to load fs-verity info"))?;
        let mut bytes = [0u8; VERITY_MAX_DIGEST];
        let inode = lower.dentry.inode().ok_or(EIO)?;
        Ok(inode
            .verity_digest(&mut bytes)
            .map(|(len, algo)| VerityDigest { algo, len, bytes }))
    }

    /// Makes sure the fs-verity data of lower file `e` is in memory (overlayfs'
    /// `ovl_ensure_verity_loaded`): a verity file never opened yet is opened once.
    pub(crate) fn load_verity(&self, m: &AsMounter<'_>, e: &RealEntry) -> Result {
        let (is_verity, loaded) = e.dentry.inode().ok_or(EIO)?.verity_state();
        if is_verity && !loaded {
            let path = self.real_path(e)?;
            drop(crate::vfs::RealFile::open(
                m,
                path,
                kernel::bindings::O_RDONLY,
            )?);
        }
        Ok(())
    }

    /// The fs-verity digest (algorithm, digest) that the `overlay.metacopy` of `d` on `layer`
    /// records, `None` if it records none (overlayfs' `ovl_check_metacopy_xattr` with its
    /// header read): a header of another version, or whose length is not the value's, fails
    /// with `EIO`.
    fn metacopy_digest(
        &self,
        m: &AsMounter<'_>,
        layer: &Layer,
        d: &Dentry,
    ) -> Result<Option<(u8, KVec<u8>)>> {
        let Some(size) = self.metacopy_size(m, layer, d)? else {
            return Ok(None);
        };
        let mut value = [0u8; METACOPY_MIN_SIZE + VERITY_MAX_DIGEST];
        let n = match size {
            // An empty value: the header without digest.
            METACOPY_MIN_SIZE => 0,
            _ => layer
                .mnt
                .getxattr(m, d, self.xattr_name(Xattr::Metacopy), &mut value)?,
        };
        let name = d.name_copy()?;
        let bad = |what: &str| {
            crate::vfs::warn_ratelimited(fmt!(
                "unionrs: metacopy file '{}' has {}",
                BStr::from_bytes(&name),
                what
            ));
            EIO
        };
        if n == 0 {
            return Ok(None);
        }
        let [version, len, _flags, algo] = value
            .get(..METACOPY_MIN_SIZE)
            .map_or([1, 0, 0, 0], |h| [h[0], h[1], h[2], h[3]]);
        if version != 0 {
            return Err(bad("unsupported version"));
        }
        if usize::from(len) != n {
            return Err(bad("invalid xattr size"));
        }
        if algo == 0 || n == METACOPY_MIN_SIZE {
            return Ok(None);
        }
        let mut digest = KVec::with_capacity(n - METACOPY_MIN_SIZE, GFP_KERNEL)?;
        digest.extend_from_slice(value.get(METACOPY_MIN_SIZE..n).ok_or(EIO)?, GFP_KERNEL)?;
        Ok(Some((algo, digest)))
    }

    /// The `overlay.metacopy` value of a metadata-only copy whose data is lower file `lower`
    /// (overlayfs' `ovl_get_verity_digest` and `ovl_set_metacopy_xattr`): empty (the header
    /// without digest), or with `verity=`, the header and the fs-verity digest of the data
    /// (which `verity=require` insists on).
    pub(crate) fn metacopy_value(&self, m: &AsMounter<'_>, lower: &RealEntry) -> Result<KVec<u8>> {
        let mut value = KVec::new();
        if self.verity == Verity::Off || !lower.dentry.is_reg() {
            return Ok(value);
        }
        match self.lower_verity_digest(m, lower)? {
            Some(real) => {
                let digest = real.digest().ok_or(EIO)?;
                let len = u8::try_from(METACOPY_MIN_SIZE + digest.len()).map_err(|_| EIO)?;
                value.extend_from_slice(&[0, len, 0, real.algo], GFP_KERNEL)?;
                value.extend_from_slice(digest, GFP_KERNEL)?;
            }
            None if self.verity == Verity::Require => {
                return Err(lower_verity_error(lower, "has no fs-verity digest"))
            }
            None => {}
        }
        Ok(value)
    }

    /// Whether a metadata-only copy of lower data file `lower` may be made (overlayfs'
    /// `ovl_need_meta_copy_up` with `verity=require`): only of a file with fs-verity, else
    /// the data is copied too.
    pub(crate) fn verity_allows_metacopy(&self, m: &AsMounter<'_>, lower: &RealEntry) -> bool {
        self.verity != Verity::Require
            || self.load_verity(m, lower).is_ok()
                && lower.dentry.inode().is_some_and(|i| i.verity_active())
    }

    /// Finds the data of a metacopy file whose redirect leads into the data-only layers, if
    /// not done yet (overlayfs' `ovl_maybe_lookup_lowerdata`): the first data-only layer
    /// that has a regular file at that path, never leaving the layer.
    pub(crate) fn find_lowerdata(&self, data: &UnionInode, name: &[u8]) -> Result {
        let Some(redirect) = data.lowerdata_redirect() else {
            return Ok(());
        };
        if data.lower_data().is_some() {
            return Ok(());
        }
        if redirect.first() != Some(&b'/') {
            return Err(EIO);
        }
        let _serialized = data.copy_up_lock.lock()?;
        if data.lower_data().is_some() {
            return Ok(());
        }
        let mut err = ENOENT;
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.kind != LayerKind::Data {
                continue;
            }
            match self.with_mounter(|m| layer.mnt.lookup_beneath(m, redirect)) {
                Ok(d) if d.is_unusual_layer_root() => err = errno::eremote(),
                Ok(d) if !d.is_reg() => err = ENOENT,
                Ok(d) => {
                    data.set_lower_data(RealEntry {
                        layer: i,
                        dentry: d,
                    });
                    return Ok(());
                }
                Err(e) => err = e,
            }
        }
        crate::vfs::warn_ratelimited(fmt!(
            "unionrs: lazy lowerdata lookup failed ({}, err={})",
            BStr::from_bytes(name),
            err.to_errno()
        ));
        Err(err)
    }
}

/// Our private xattrs.
#[derive(Clone, Copy)]
pub(crate) enum Xattr {
    Opaque,
    Whiteout,
    Uuid,
    Impure,
    Origin,
    Nlink,
    Upper,
    Redirect,
    Metacopy,
}

/// `inode_operations::lookup` of a union directory.
pub(crate) fn lookup(dir: &FsInode<UnionFs>, dentry: &Dentry) -> Result<Option<ARef<Inode>>> {
    let fs = dir.sb().info();
    let name = dentry.name();
    if name.len() > fs.namelen {
        return Err(errno::enametoolong());
    }
    // With OCI whiteouts, such a name is a marker of the layers, never an object of the
    // union: it can be neither seen nor made (aufs refuses its whiteout names alike).
    if fs.oci_whiteouts && name.starts_with(OCI_WHITEOUT_PREFIX) {
        return Err(EPERM);
    }
    // The layers the answer stands for: a layer added to the live mount from now on makes
    // it be checked again (`revalidate`). The directory merges those added before first.
    let seen = fs.layers.len();
    // (Checked here too: taking the parent costs two atomic operations per lookup.)
    if fs.added_count() > 0 {
        fs.refresh_dir(&dentry.parent())?;
    }
    let data = dir.data()?;
    let found = fs.with_mounter(|m| fs.lookup_stack(m, data, name))?;
    dentry.set_stamp(seen);
    let Some(top) = found.stack.first() else {
        return Ok(None);
    };
    let is_dir = top.dentry.is_dir();
    let real_inode = |e: Option<&RealEntry>| e.and_then(|e| e.dentry.inode()).map(|i| i.as_ptr());
    let has_upper = fs.has_upper() && top.layer == 0;
    let want = (
        real_inode(found.stack.first().filter(|_| has_upper)),
        real_inode(found.stack.get(usize::from(has_upper))),
    );
    // A directory's cached inode may predate layers added to the live mount: caught up with
    // what was found (its stack must start as it did).
    let mut dir_stack = KVec::new();
    if is_dir && fs.added_count() > 0 {
        for e in found.stack.iter() {
            let e = RealEntry {
                layer: e.layer,
                dentry: e.dentry.clone(),
            };
            dir_stack.push(e, GFP_KERNEL)?;
        }
    }
    let inode = fs.get_inode_of(
        dir.sb(),
        found.stack,
        found.indexed,
        found.redirect,
        found.upper_metacopy,
        found.lowerdata_redirect,
        seen,
    )?;
    // An object found again must be the one cached (overlayfs' `ovl_verify_inode`): a lower
    // object that two redirects lead to (two metacopy files, two directories), or a directory
    // moved to the upper layer under us, would otherwise have two names. A directory must
    // match exactly; a non-directory in the real objects found.
    let cached = SuperBlock::<UnionFs>::our_inode(&inode)
        .ok_or(EIO)?
        .data()?;
    if !dir_stack.is_empty() {
        cached.catch_up(&dir_stack, fs.has_upper(), seen)?;
    }
    let has = (
        real_inode(cached.upper()),
        real_inode(cached.lower().first()),
    );
    let matches = match is_dir {
        true => has == want,
        false => (want.0.is_none() || has.0 == want.0) && (want.1.is_none() || has.1 == want.1),
    };
    if !matches {
        crate::vfs::warn_ratelimited(fmt!("unionrs: failed to get inode (-116)"));
        return Err(errno::estale());
    }
    Ok(Some(inode))
}

/// `d_revalidate` of a union dentry found in the dentry cache. Only layers added to the live
/// mount make an entry stale (the layers themselves must not change under a mounted union, as
/// with overlayfs): a negative entry looked up with fewer layers is looked up again; a
/// positive one has its parent caught up (a path walk does not revalidate the directory it
/// starts from, and a removal decides its whiteout from the parent's stack), a directory
/// itself too (in place: it stays the same object for whoever holds it). A layer added below
/// cannot change which object a name shows.
pub(crate) fn revalidate(sb: &SuperBlock<UnionFs>, d: &Dentry) -> Result<bool> {
    let fs = sb.info();
    let count = fs.layers.len();
    if d.stamp() >= count {
        return Ok(true);
    }
    if d.inode().is_none() {
        return Ok(false);
    }
    if !d.is_root() {
        fs.refresh_dir(&d.parent())?;
    }
    if d.is_dir() {
        fs.refresh_dir(d)?;
    }
    d.set_stamp(count);
    Ok(true)
}

/// [`revalidate`] in RCU walk: a stale negative entry is dropped at once, a stale positive
/// one is caught up outside RCU walk.
pub(crate) fn revalidate_rcu(
    sb: &SuperBlock<UnionFs>,
    stamp: usize,
    kind: DentryKind,
) -> Result<bool> {
    if stamp >= sb.info().layers.len() {
        return Ok(true);
    }
    match kind {
        DentryKind::Negative => Ok(false),
        _ => Err(ECHILD),
    }
}

#[kunit_tests(unionrs_namei)]
mod tests {
    use super::*;

    #[test]
    fn redirect_values() {
        for ok in [&b"/a"[..], b"/a/b", b"a", b"..", b""] {
            assert!(is_valid_redirect(ok));
        }
        for bad in [&b"/"[..], b"//a", b"/a//b", b"/a/", b"a/b", b"a/"] {
            assert!(!is_valid_redirect(bad));
        }
    }

    /// What a redirect met on the way makes of the name looked for.
    fn redirected(name: &[u8], at: core::ops::Range<usize>, redirect: &[u8]) -> Result<KVec<u8>> {
        let mut d = LookupData::new(name)?;
        d.stop = true;
        d.redirect_to(redirect, at)?;
        assert!(d.redirected);
        assert_eq!(d.stop, redirect.first() != Some(&b'/'));
        Ok(d.name)
    }

    #[test]
    fn redirect_names() -> Result {
        assert_eq!(&redirected(b"n", 0..1, b"m")?[..], b"m");
        assert_eq!(&redirected(b"n", 0..1, b"/p/q")?[..], b"/p/q");
        assert_eq!(&redirected(b"/a/b/c", 3..4, b"x")?[..], b"/a/x/c");
        assert_eq!(&redirected(b"/a/b/c", 3..4, b"/y")?[..], b"/y/c");
        assert_eq!(&redirected(b"/a/b/c", 5..6, b"z")?[..], b"/a/b/z");
        Ok(())
    }
}
