// SPDX-License-Identifier: GPL-2.0

//! Open regular files: the real file their I/O goes to, and overlayfs' rule that an open file
//! follows its object's copy-up.
//!
//! Opening for write (or with `O_TRUNC`) copies the object up first, with its data. A file
//! opened before its data was copied up (by another writer, a `chmod` without metacopy, ...)
//! keeps reading the lower file until then, and from its next I/O on goes to the upper copy,
//! which it opens once. A metacopy file's data is its lower data file's until it is written.

use crate::inode::real_data_path;
use crate::superblock::UnionFs;
use crate::vfs::{FileOps, FsInode, RealFile, RealPath, UserFile};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::SetOnce;

/// Per open regular file: the real file that I/O goes to.
pub(crate) struct OpenFile {
    real: RealFile,
    /// The upper copy, opened on first use when the object was copied up after this open (or
    /// for an `fsync` of a metacopy file, whose data `real` still is).
    upper: SetOnce<RealFile>,
}

impl OpenFile {
    pub(crate) fn new(real: RealFile) -> Self {
        Self {
            real,
            upper: SetOnce::new(),
        }
    }
}

/// The flags of the real file for a union file opened with `flags`: creating and truncating
/// happened on the union (by copy-up), not to be repeated on the real file.
fn real_flags(flags: u32) -> u32 {
    flags & !(bindings::O_CREAT | bindings::O_EXCL | bindings::O_NOCTTY | bindings::O_TRUNC)
        | bindings::O_LARGEFILE
}

/// What opening a file with `flags` asks of its inode (the kernel's `ACC_MODE`, with
/// `MAY_OPEN`).
fn open_mask(flags: u32) -> i32 {
    let access = match flags & bindings::O_ACCMODE {
        bindings::O_RDONLY => bindings::MAY_READ,
        bindings::O_WRONLY => bindings::MAY_WRITE,
        _ => bindings::MAY_READ | bindings::MAY_WRITE,
    };
    let append = if flags & bindings::O_APPEND != 0 {
        bindings::MAY_APPEND
    } else {
        0
    };
    (bindings::MAY_OPEN | access | append) as i32
}

/// Opens the real object with `inode`'s data (below a metacopy file, the lower file with its
/// data) as the backing file of `file`.
fn open_real(inode: &FsInode<UnionFs>, file: &UserFile) -> Result<RealFile> {
    open_real_path(inode, file, real_data_path(inode)?)
}

/// Opens real object `path` of `inode` as the backing file of `file`.
fn open_real_path(
    inode: &FsInode<UnionFs>,
    file: &UserFile,
    path: RealPath<'_>,
) -> Result<RealFile> {
    let fs = inode.sb().info();
    let real = path.dentry.inode().ok_or(ENOENT)?;
    let mut flags = real_flags(file.flags());
    fs.with_mounter(|m| {
        // The VFS checked the caller against the union's inode; the mounter must be allowed
        // to open the real file too, which after a copy-up is another one (overlayfs' check
        // for CVE-2020-16120).
        path.mnt.inode_permission(m, real, open_mask(flags))?;
        if !path.mnt.owner_or_capable(m, real) {
            flags &= !bindings::O_NOATIME;
        }
        RealFile::open_backing(m, file, path, flags, &fs.creds)
    })
}

/// The open file's upper file, `path` (the upper object of its inode), opened on first use.
fn upper_file<'a>(
    inode: &FsInode<UnionFs>,
    file: &UserFile,
    of: &'a OpenFile,
    path: RealPath<'_>,
) -> Result<&'a RealFile> {
    if of.upper.as_ref().is_none() {
        of.upper.populate(open_real_path(inode, file, path)?);
    }
    // Whoever won the race finishes publishing right away.
    loop {
        if let Some(u) = of.upper.as_ref() {
            // The upper object of an inode never changes once it is there.
            return match core::ptr::eq(u.dentry(), path.dentry) {
                true => Ok(u),
                false => Err(EIO),
            };
        }
        core::hint::spin_loop();
    }
}

#[vtable]
impl FileOps for UnionFs {
    type OpenFile = OpenFile;

    fn open(inode: &FsInode<Self>, file: &UserFile) -> Result<OpenFile> {
        let dentry = file.dentry();
        inode
            .sb()
            .info()
            .verify_lowerdata(inode.data()?, dentry.name())?;
        crate::copy_up::prepare_open(dentry, file.flags())?;
        Ok(OpenFile::new(open_real(inode, file)?))
    }

    fn io_file<'a>(
        inode: &FsInode<Self>,
        file: &UserFile,
        of: &'a OpenFile,
    ) -> Result<&'a RealFile> {
        let path = real_data_path(inode)?;
        if core::ptr::eq(path.dentry, of.real.dentry()) {
            return Ok(&of.real);
        }
        // Copied up since the open: from now on, the upper copy.
        upper_file(inode, file, of, path)
    }

    /// Not in a volatile union.
    fn syncs_writes(inode: &FsInode<Self>) -> bool {
        inode.sb().info().syncs()
    }

    fn fsync(
        inode: &FsInode<Self>,
        file: &UserFile,
        of: &OpenFile,
        start: i64,
        end: i64,
        datasync: bool,
    ) -> Result {
        let fs = inode.sb().info();
        if !fs.needs_sync()? {
            return Ok(());
        }
        // Only the upper file, never a lower one (overlayfs' `ovl_fsync`): a metacopy file's
        // metadata there, but not for `fdatasync` (its data is the lower file's).
        let data = inode.data()?;
        let Some(upper) = data.upper() else {
            return Ok(());
        };
        if datasync && data.is_metacopy() {
            return Ok(());
        }
        let path = fs.real_path(upper)?;
        let real = match core::ptr::eq(path.dentry, of.real.dentry()) {
            true => &of.real,
            false => upper_file(inode, file, of, path)?,
        };
        fs.with_mounter(|m| real.fsync_range(m, start, end, datasync))
    }

    fn fallocate(
        inode: &FsInode<Self>,
        file: &UserFile,
        of: &OpenFile,
        mode: i32,
        offset: i64,
        len: i64,
    ) -> Result {
        let real = Self::io_file(inode, file, of)?;
        let _lock = inode.lock();
        // As the caller: with the mounter's credentials the real filesystem would keep the
        // set-user-ID bit.
        file.remove_privs()?;
        let fs = inode.sb().info();
        let r = fs.with_mounter(|m| real.fallocate(m, mode, offset, len));
        inode.copy_size_from(real.inode());
        r
    }
}
