//! The upper directory as an OCI layer: what the union changed, in the image-spec's form
//! (layer.md): whiteouts become empty `.wh.NAME` files, opaque directories get a
//! `.wh..wh..opq` entry, the union's private xattrs are left out, hard links stay links. OCI has
//! no renames and no metadata-only copies: a redirected directory is written whole (opaque,
//! with what the union shows in it), a metacopy file with its data from the lower layers.

use crate::tree::{self, join, on_disk, parent_and_name, show, Data, Entry, Kind, Lowers, Node, Private, Rel, Tree};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One entry of the layer.
pub enum Item {
    Object(Rel, Node),
    /// A hard link to an object written before.
    Link(Rel, Rel),
    Whiteout(Rel),
    Opaque(Rel),
}

pub struct Export {
    pub items: Vec<Item>,
    /// What could not go into the layer (sockets).
    pub skipped: Vec<String>,
}

/// What the layer of upper directory `upper` holds.
pub fn plan(upper: &Path, lowers: Option<&Lowers>, px: Private) -> Result<Export, String> {
    let mut ex = Export { items: Vec::new(), skipped: Vec::new() };
    let mut links = HashMap::new();
    plan_dir(&mut ex, &mut links, upper, b"", b"", lowers, px)?;
    Ok(ex)
}

fn plan_dir(
    ex: &mut Export,
    links: &mut HashMap<(u64, u64), Rel>,
    upper: &Path,
    dir: &[u8],
    lower_dir: &[u8],
    lowers: Option<&Lowers>,
    px: Private,
) -> Result<(), String> {
    let disk = on_disk(upper, dir);
    for (name, entry) in tree::read_layer_dir(&disk, px)? {
        let p = join(dir, &name);
        match entry {
            Entry::Whiteout => ex.items.push(Item::Whiteout(p)),
            Entry::Dir { node, opaque, redirect: Some(r) } => {
                // Moved here by a rename: OCI cannot say so, so the directory is written as
                // the union shows it, opaque over whatever the lower layers have here.
                let lowers = lowers.ok_or_else(|| tree::needs_lowers(&p))?;
                let target = tree::resolve_redirect(lower_dir, &r)?;
                let mut t = Tree::new();
                if !opaque {
                    let sub = tree::lower_subtree(lowers, &target, px)?;
                    if sub.get(&Vec::new()).is_some_and(|n| n.kind == Kind::Dir) {
                        tree::graft(&mut t, &p, &sub);
                    }
                }
                t.insert(p.clone(), node);
                tree::overlay_upper(&mut t, upper, &p, &target, Some(lowers), px)?;
                ex.items.push(Item::Object(p.clone(), t.remove(&p).expect("inserted above")));
                ex.items.push(Item::Opaque(p.clone()));
                for (k, n) in t {
                    match n.kind {
                        Kind::Socket => ex.skipped.push(show(&k)),
                        Kind::Dir => ex.items.push(Item::Object(k, n)),
                        _ => push_object(ex, links, k, n),
                    }
                }
            }
            Entry::Dir { node, opaque, redirect: None } => {
                ex.items.push(Item::Object(p.clone(), node));
                if opaque {
                    ex.items.push(Item::Opaque(p.clone()));
                }
                plan_dir(ex, links, upper, &p, &join(lower_dir, &name), lowers, px)?;
            }
            Entry::Metacopy { mut node, redirect } => {
                let lowers = lowers.ok_or_else(|| tree::needs_lowers(&p))?;
                let data_path = match &redirect {
                    Some(r) => tree::resolve_redirect(lower_dir, r)?,
                    None => join(lower_dir, &name),
                };
                let data = tree::find_data(lowers, &data_path, px)?;
                node.data = data.data;
                node.size = data.size;
                push_object(ex, links, p, node);
            }
            Entry::Other(node) if node.kind == Kind::Socket => ex.skipped.push(show(&p)),
            Entry::Other(node) => push_object(ex, links, p, node),
        }
    }
    Ok(())
}

fn push_object(ex: &mut Export, links: &mut HashMap<(u64, u64), Rel>, p: Rel, node: Node) {
    if node.nlink > 1 {
        if let Some(first) = links.get(&node.id) {
            ex.items.push(Item::Link(p, first.clone()));
            return;
        }
        links.insert(node.id, p.clone());
    }
    ex.items.push(Item::Object(p, node));
}

fn whiteout_path(p: &[u8], name: &[u8]) -> Rel {
    join(p, &[b".wh.", name].concat())
}

/// Writes the layer as a tar stream (GNU long names, PAX records for xattrs and sub-second
/// times).
pub fn write<W: Write>(items: &[Item], out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    for item in items {
        match item {
            Item::Object(p, n) => {
                let mut pax: Vec<(String, Vec<u8>)> =
                    n.xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)), v.clone())).collect();
                if n.mtime_nsec != 0 {
                    pax.push(("mtime".into(), format!("{}.{:09}", n.mtime, n.mtime_nsec).into_bytes()));
                }
                if !pax.is_empty() {
                    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
                }
                let mut h = header(n);
                let path = Path::new(std::ffi::OsStr::from_bytes(p));
                match &n.kind {
                    Kind::Dir => {
                        h.set_entry_type(tar::EntryType::Directory);
                        b.append_data(&mut h, path, io::empty())?;
                    }
                    Kind::Reg => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(n.size);
                        match &n.data {
                            Data::Disk(src) => {
                                let f = File::open(src)?;
                                b.append_data(&mut h, path, io::Read::take(f, n.size))?;
                            }
                            _ => b.append_data(&mut h, path, io::empty())?,
                        }
                    }
                    Kind::Symlink(target) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        b.append_link(&mut h, path, Path::new(std::ffi::OsStr::from_bytes(target)))?;
                    }
                    Kind::Char(rdev) | Kind::Block(rdev) => {
                        h.set_entry_type(if matches!(n.kind, Kind::Char(_)) { tar::EntryType::Char } else { tar::EntryType::Block });
                        h.set_device_major(rustix::fs::major(*rdev))?;
                        h.set_device_minor(rustix::fs::minor(*rdev))?;
                        b.append_data(&mut h, path, io::empty())?;
                    }
                    Kind::Fifo => {
                        h.set_entry_type(tar::EntryType::Fifo);
                        b.append_data(&mut h, path, io::empty())?;
                    }
                    Kind::Socket => {}
                }
            }
            Item::Link(p, target) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, Path::new(std::ffi::OsStr::from_bytes(p)), Path::new(std::ffi::OsStr::from_bytes(target)))?;
            }
            Item::Whiteout(p) => {
                let (dir, name) = parent_and_name(p);
                marker(&mut b, &whiteout_path(dir, name))?;
            }
            Item::Opaque(p) => marker(&mut b, &join(p, tree::OCI_OPAQUE))?,
        }
    }
    b.into_inner()
}

fn header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_uid(n.uid.into());
    h.set_gid(n.gid.into());
    h.set_mtime(n.mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// An empty marker file (a whiteout or an opaque marker): as other tools write them.
fn marker<W: Write>(b: &mut tar::Builder<W>, p: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    b.append_data(&mut h, Path::new(std::ffi::OsStr::from_bytes(p)), io::empty())
}
