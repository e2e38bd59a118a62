// SPDX-License-Identifier: GPL-2.0

//! unionrs: a union (overlay) filesystem, compatible with overlayfs' mount options and
//! on-disk format.

mod copy_up;
mod dir;
mod export;
mod file;
mod index;
mod inode;
mod layers;
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
    // overlayfs' module parameters, with the defaults of Debian's kernel configuration. Rust
    // modules take integers only, set at load time (`modprobe unionrs index=1`): 0 is off,
    // anything else on.
    params: {
        redirect_dir: u8 {
            default: 0,
            description: "Default to on or off for the redirect_dir feature",
        },
        redirect_always_follow: u8 {
            default: 1,
            description: "Follow redirects even if redirect_dir feature is turned off",
        },
        redirect_max: u16 {
            default: 256,
            description: "Maximum length of absolute redirect xattr value",
        },
        index: u8 {
            default: 0,
            description: "Default to on or off for the inodes index feature",
        },
        nfs_export: u8 {
            default: 0,
            description: "Default to on or off for the NFS export feature",
        },
        xino_auto: u8 {
            default: 0,
            description: "Auto enable xino feature",
        },
        metacopy: u8 {
            default: 0,
            description: "Default to on or off for the metadata only copy up feature",
        },
    },
}

/// The defaults the module parameters set.
pub(crate) mod defaults {
    use super::module_parameters as p;

    /// `redirect_dir`: whether `redirect_dir=on` is the default.
    pub(crate) fn redirect_dir() -> bool {
        *p::redirect_dir.value() != 0
    }

    /// `redirect_always_follow`: whether "redirect_dir=off" follows redirects.
    pub(crate) fn redirect_always_follow() -> bool {
        *p::redirect_always_follow.value() != 0
    }

    /// The longest absolute redirect a rename records (`redirect_max`); a longer path makes
    /// the rename fail with `EXDEV`.
    pub(crate) fn redirect_max() -> usize {
        usize::from(*p::redirect_max.value())
    }

    /// `index`: whether the inodes index is on by default.
    pub(crate) fn index() -> bool {
        *p::index.value() != 0
    }

    /// `nfs_export`: whether `nfs_export=on` is the default.
    pub(crate) fn nfs_export() -> bool {
        *p::nfs_export.value() != 0
    }

    /// `xino_auto`: whether `xino=auto` is the default.
    pub(crate) fn xino_auto() -> bool {
        *p::xino_auto.value() != 0
    }

    /// `metacopy`: whether `metacopy=on` is the default.
    pub(crate) fn metacopy() -> bool {
        *p::metacopy.value() != 0
    }
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
