// SPDX-License-Identifier: GPL-2.0

//! unionrs: a union (overlay) filesystem, compatible with overlayfs' mount options and
//! on-disk format.

mod copy_up;
mod dir;
mod export;
mod file;
mod index;
mod inode;
mod namei;
mod params;
mod readdir;
mod superblock;
mod vfs;
mod xattr;

use kernel::prelude::*;

module! {
    type: Unionrs,
    name: "unionrs",
    authors: ["The unionrs developers"],
    description: "Union (overlay) filesystem in Rust",
    license: "GPL",
    alias: ["fs-unionrs"],
}

vfs::fs_type::declare_filesystem!(superblock::UnionFs);

struct Unionrs {
    _fs: vfs::Registration,
}

impl kernel::Module for Unionrs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let fs = vfs::Registration::new(module)?;
        pr_info!("registered filesystem type unionrs\n");
        Ok(Self { _fs: fs })
    }
}
