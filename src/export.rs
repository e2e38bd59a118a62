// SPDX-License-Identifier: GPL-2.0

//! File handles of union objects (overlayfs' `export.c`). So far the handles overlayfs gives
//! with `nfs_export=off`: they identify an object for fanotify and
//! `name_to_handle_at(AT_HANDLE_FID)`, and are never decoded.

use crate::superblock::UnionFs;
use crate::vfs::FsInode;
use kernel::prelude::*;

/// The handle type overlayfs gives its handles (`OVL_FILEID_V1`).
const FILEID_V1: u8 = 0xf8;

impl UnionFs {
    /// The file handle of union object `inode` (overlayfs' `ovl_encode_fh` without
    /// `nfs_export`): that of the real object it is known by, which is its top lower object,
    /// except for an object only on the upper layer and the root of a union with an upper
    /// layer (their upper object); in overlayfs' format, three zero bytes and then the bytes
    /// `overlay.origin` holds for that object (with the upper flag for an upper one).
    pub(crate) fn encode_union_fh(&self, inode: &FsInode<UnionFs>) -> Result<(u8, KVec<u8>)> {
        let data = inode.data()?;
        let lower = data.lower().first();
        let by_upper = match (self.has_upper(), data.upper(), lower) {
            (true, Some(_), None) => true,
            (true, Some(_), Some(_)) => data.is_root(),
            _ => false,
        };
        let fb = match (by_upper, data.upper(), lower) {
            (true, Some(upper), _) => self.handle_of(&upper.dentry, true)?,
            (false, _, Some(lower)) => self.origin_value(lower)?,
            _ => return Err(EIO),
        };
        let mut fh = KVec::with_capacity(3 + fb.len(), GFP_KERNEL)?;
        fh.extend_from_slice(&[0; 3], GFP_KERNEL)?;
        fh.extend_from_slice(&fb, GFP_KERNEL)?;
        Ok((FILEID_V1, fh))
    }
}
