// SPDX-License-Identifier: GPL-2.0

//! The union superblock: checks the layers given at mount, holds them for the life of the
//! mount, and answers the superblock-level operations.

use crate::params::{self, Config, LayerSpec};
use crate::vfs::fs_type::seq_show_option;
use crate::vfs::super_block::NewSuperBlock;
use crate::vfs::{errno, show, FileSystem, FsContext, NewInode, Param, SuperBlock};
use kernel::bindings;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::str::CString;

/// `statfs(2)` `f_type` of a union: "unio" in ASCII.
pub(crate) const UNIONRS_SUPER_MAGIC: u64 = 0x756e_696f;

/// Which role a layer plays.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    Upper,
    Work,
    Lower,
}

impl LayerKind {
    fn option(self) -> &'static str {
        match self {
            Self::Upper => "upperdir",
            Self::Work => "workdir",
            Self::Lower => "lowerdir",
        }
    }
}

/// One layer of a mounted union.
pub(crate) struct Layer {
    pub(crate) spec: LayerSpec,
    pub(crate) kind: LayerKind,
}

/// The filesystem: per-superblock state of a mounted union.
pub(crate) struct UnionFs {
    /// Upper layer first (if any), then the lower layers top to bottom.
    pub(crate) layers: KVec<Layer>,
    pub(crate) work: Option<LayerSpec>,
    lowerdir_all: Option<CString>,
    pub(crate) userxattr: bool,
}

impl UnionFs {
    /// The layer whose root gives the union root its attributes.
    fn top(&self) -> Option<&Layer> {
        self.layers.first()
    }
}

/// Refuses layers that are the same directory or lie inside one another: a union over itself
/// would loop, and writing the upper layer would change a lower one.
fn check_overlap(fc: &FsContext, all: &[(&LayerSpec, LayerKind)]) -> Result {
    for (i, (a, ak)) in all.iter().enumerate() {
        for (b, bk) in all.iter().skip(i + 1) {
            let (da, db) = (a.path.dentry(), b.path.dentry());
            if core::ptr::eq(da.as_ptr(), db.as_ptr()) {
                return Err(fc.fail(
                    errno::eloop(),
                    fmt!(
                        "conflicting layers: '{}' ({}) and '{}' ({}) are the same directory",
                        show(&a.name), ak.option(), show(&b.name), bk.option()
                    ),
                ));
            }
            let (inner, ik, outer, ok) = if da.is_subdir_of(db) {
                (a, ak, b, bk)
            } else if db.is_subdir_of(da) {
                (b, bk, a, ak)
            } else {
                continue;
            };
            return Err(fc.fail(
                errno::eloop(),
                fmt!(
                    "overlapping layers: '{}' ({}) is inside '{}' ({})",
                    show(&inner.name), ik.option(), show(&outer.name), ok.option()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks upperdir and workdir against each other, as overlayfs does.
fn check_upper_work(fc: &FsContext, upper: &LayerSpec, work: &LayerSpec) -> Result {
    if !upper.path.same_mount(&work.path) {
        return Err(fc.fail(EINVAL, fmt!("workdir and upperdir must reside under the same mount")));
    }
    let (u, w) = (upper.path.dentry(), work.path.dentry());
    if u.is_subdir_of(w) || w.is_subdir_of(u) {
        return Err(fc.fail(EINVAL, fmt!("workdir and upperdir must be separate subtrees")));
    }
    Ok(())
}

impl FileSystem for UnionFs {
    type Config = Config;
    type Info = UnionFs;

    fn parse_param(fc: &FsContext, cfg: &mut Config, param: Param<'_>) -> Result {
        params::parse_param(fc, cfg, param)
    }

    fn reconfigure(_fc: &FsContext, _cfg: &mut Config) -> Result {
        Ok(())
    }

    fn fill_super(fc: &FsContext, sb: &NewSuperBlock, cfg: &mut Config) -> Result<KBox<UnionFs>> {
        if cfg.lowers.is_empty() {
            return Err(fc.fail(EINVAL, fmt!("missing 'lowerdir'")));
        }
        if cfg.upper.is_some() && cfg.work.is_none() {
            return Err(fc.fail(EINVAL, fmt!("missing 'workdir' (upperdir needs one)")));
        }
        if cfg.upper.is_none() && cfg.work.is_some() {
            fc.warn(fmt!("option 'workdir' is useless without 'upperdir', ignored"));
            cfg.work = None;
        }
        if let (Some(upper), Some(work)) = (&cfg.upper, &cfg.work) {
            check_upper_work(fc, upper, work)?;
        }

        let mut all = KVec::with_capacity(cfg.lowers.len() + 2, GFP_KERNEL)?;
        if let Some(u) = &cfg.upper {
            all.push((u, LayerKind::Upper), GFP_KERNEL)?;
        }
        if let Some(w) = &cfg.work {
            all.push((w, LayerKind::Work), GFP_KERNEL)?;
        }
        for l in cfg.lowers.iter() {
            all.push((l, LayerKind::Lower), GFP_KERNEL)?;
        }
        check_overlap(fc, &all)?;
        let depth = all.iter().map(|(l, _)| l.path.stack_depth()).max().unwrap_or(0) + 1;
        drop(all);
        if depth > bindings::FILESYSTEM_MAX_STACK_DEPTH as i32 {
            return Err(fc.fail(EINVAL, fmt!("maximum filesystem stacking depth exceeded")));
        }

        let mut layers = KVec::with_capacity(cfg.lowers.len() + 1, GFP_KERNEL)?;
        if let Some(upper) = cfg.upper.take() {
            layers.push(Layer { spec: upper, kind: LayerKind::Upper }, GFP_KERNEL)?;
        }
        for spec in core::mem::take(&mut cfg.lowers) {
            layers.push(Layer { spec, kind: LayerKind::Lower }, GFP_KERNEL)?;
        }
        let info = KBox::new(
            UnionFs {
                layers,
                work: cfg.work.take(),
                lowerdir_all: cfg.lowerdir_all.take(),
                userxattr: cfg.userxattr,
            },
            GFP_KERNEL,
        )?;

        sb.set_params(UNIONRS_SUPER_MAGIC, i64::MAX, 1, depth);
        if info.work.is_none() {
            sb.set_readonly();
        }
        Ok(info)
    }

    fn root_inode(sb: &SuperBlock<Self>) -> Result<NewInode> {
        let top = sb.info().top().ok_or(EINVAL)?;
        let real = top.spec.path.dentry().inode().ok_or(ENOENT)?;
        let mut inode = sb.new_inode()?;
        inode.set_ino(real.ino());
        inode.copy_attrs_from(real);
        inode.set_simple_dir_ops();
        Ok(inode)
    }

    fn show_options(m: &SeqFile, sb: &SuperBlock<Self>) -> Result {
        let fs = sb.info();
        match &fs.lowerdir_all {
            Some(all) => seq_show_option(m, c"lowerdir", Some(all)),
            None => {
                for l in fs.layers.iter().filter(|l| l.kind == LayerKind::Lower) {
                    seq_show_option(m, c"lowerdir+", Some(&l.spec.name));
                }
            }
        }
        for l in fs.layers.iter().filter(|l| l.kind == LayerKind::Upper) {
            seq_show_option(m, c"upperdir", Some(&l.spec.name));
        }
        if let Some(w) = &fs.work {
            seq_show_option(m, c"workdir", Some(&w.name));
        }
        if fs.userxattr {
            seq_show_option(m, c"userxattr", None);
        }
        Ok(())
    }
}
