//! `--verify`: the layer applied onto the lower layers by the image-spec's rules must give the
//! union's view: the same objects with the same kind, mode, owner, size, data, link target,
//! device number, xattrs and modification time (to the second; sub-second too where the layer
//! carries it).

use crate::tree::{self, clear_below, join, parent_and_name, remove_subtree, show, Data, Kind, Node, Rel, Tree};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Read};
use std::path::Path;

/// One entry of a layer tarball, its extension records applied.
struct TarEntry {
    path: Rel,
    link: Option<Vec<u8>>,
    header: tar::Header,
    /// PAX records (`SCHILY.xattr.*`, `mtime`, ...).
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    size: u64,
    /// A regular file's data.
    hash: Option<u64>,
}

/// PAX records: "LEN KEY=VALUE\n", LEN counting the whole record. Values are binary (an
/// xattr's may hold newlines), so the length is what delimits a record.
/// (key, value) pairs.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_pax(data: &[u8]) -> Result<Records, String> {
    let bad = || "a malformed PAX record".to_string();
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let record = rest.get(sp + 1..len).ok_or_else(bad)?;
        let record = record.strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Reads a layer tarball: GNU long names and PAX records are read here (the tar crate's own
/// PAX reader splits records at newlines, which binary xattr values can hold).
fn read_layer(layer: &Path) -> Result<Vec<TarEntry>, String> {
    let err = |e: io::Error| format!("{}: {e}", layer.display());
    let mut archive = tar::Archive::new(File::open(layer).map_err(err)?);
    let (mut pax, mut long_name, mut long_link) = (Vec::new(), None, None);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(err)?.raw(true) {
        let mut entry = entry.map_err(err)?;
        let kind = entry.header().entry_type();
        let mut data = || -> Result<Vec<u8>, String> {
            let mut d = Vec::new();
            entry.read_to_end(&mut d).map_err(err)?;
            Ok(d)
        };
        if kind.is_pax_local_extensions() {
            pax = parse_pax(&data()?)?;
            continue;
        }
        if kind.is_pax_global_extensions() {
            continue;
        }
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let mut d = data()?;
            while d.last() == Some(&0) {
                d.pop();
            }
            if kind.is_gnu_longname() {
                long_name = Some(d);
            } else {
                long_link = Some(d);
            }
            continue;
        }
        let from_pax = |key: &[u8]| pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let header = entry.header().clone();
        let path = from_pax(b"path").or(long_name.take()).unwrap_or_else(|| header.path_bytes().into_owned());
        let link = from_pax(b"linkpath").or(long_link.take()).or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        let size = entry.size();
        let hash = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => Some(hash_reader(&mut entry).map_err(err)?),
            _ => None,
        };
        out.push(TarEntry { path: clean(&path)?, link, header, pax: std::mem::take(&mut pax), size, hash });
    }
    Ok(out)
}

/// Applies the layer tarball at `layer` onto `tree`: whiteouts and opaque markers remove from
/// what is below (never from the layer itself), then the layer's entries are added, a
/// directory over a directory replacing only its metadata. Returns the hard links it holds.
pub fn apply(tree: &mut Tree, layer: &Path) -> Result<Vec<(Rel, Rel)>, String> {
    let err = |e: io::Error| format!("{}: {e}", layer.display());
    let entries = read_layer(layer)?;
    // Pass 1: the markers.
    for e in &entries {
        let (dir, name) = parent_and_name(&e.path);
        if name == b".wh..wh..opq" {
            clear_below(tree, dir);
        } else if let Some(hidden) = name.strip_prefix(b".wh.") {
            remove_subtree(tree, &join(dir, hidden));
        }
    }
    // Pass 2: the objects.
    let mut links = Vec::new();
    for e in entries {
        let p = e.path.clone();
        if p.is_empty() || parent_and_name(&p).1.starts_with(b".wh.") {
            continue;
        }
        let (parent, _) = parent_and_name(&p);
        if tree.get(parent).is_none_or(|n| n.kind != Kind::Dir) {
            return Err(format!("'{}' in the layer has no parent directory", show(&p)));
        }
        let h = &e.header;
        let mut xattrs = BTreeMap::new();
        let mut mtime_nsec = 0;
        for (key, value) in &e.pax {
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.insert(name.to_vec(), value.clone());
            } else if key == b"mtime" {
                let v = String::from_utf8_lossy(value).into_owned();
                if let Some((_, frac)) = v.split_once('.') {
                    mtime_nsec = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
                }
            }
        }
        let meta = |kind: Kind, size: u64, data: Data| -> io::Result<Node> {
            Ok(Node {
                kind,
                mode: h.mode()? & 0o7777,
                uid: h.uid()? as u32,
                gid: h.gid()? as u32,
                mtime: h.mtime()? as i64,
                mtime_nsec,
                size,
                xattrs: xattrs.clone(),
                data,
                id: (0, 0),
                nlink: 1,
            })
        };
        let dev = || -> io::Result<u64> { Ok(rustix::fs::makedev(h.device_major()?.unwrap_or(0), h.device_minor()?.unwrap_or(0))) };
        let node = match h.entry_type() {
            tar::EntryType::Directory => {
                let node = meta(Kind::Dir, 0, Data::None).map_err(err)?;
                if tree.get(&p).is_none_or(|n| n.kind != Kind::Dir) {
                    remove_subtree(tree, &p);
                }
                tree.insert(p, node);
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => meta(Kind::Reg, e.size, Data::Hash(e.hash.unwrap_or(0))),
            tar::EntryType::Symlink => {
                let target = e.link.clone().ok_or_else(|| format!("symlink '{}' without target", show(&p)))?;
                meta(Kind::Symlink(target), 0, Data::None)
            }
            tar::EntryType::Link => {
                let target = clean(e.link.as_deref().ok_or_else(|| format!("hard link '{}' without target", show(&p)))?)?;
                let node = tree
                    .get(&target)
                    .cloned()
                    .ok_or_else(|| format!("hard link '{}' to '{}', which is not there", show(&p), show(&target)))?;
                links.push((p.clone(), target));
                remove_subtree(tree, &p);
                tree.insert(p, node);
                continue;
            }
            tar::EntryType::Char => dev().and_then(|d| meta(Kind::Char(d), 0, Data::None)),
            tar::EntryType::Block => dev().and_then(|d| meta(Kind::Block(d), 0, Data::None)),
            tar::EntryType::Fifo => meta(Kind::Fifo, 0, Data::None),
            other => return Err(format!("'{}': entry type {other:?} is not for an image layer", show(&p))),
        }
        .map_err(err)?;
        remove_subtree(tree, &p);
        tree.insert(p, node);
    }
    Ok(links)
}

/// A tar path as a tree path: no leading "./" or "/", no trailing "/", no "..".
fn clean(p: &[u8]) -> Result<Rel, String> {
    let comps: Vec<&[u8]> = p.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
    if comps.contains(&&b".."[..]) {
        return Err(format!("'{}' in the layer leaves the tree", String::from_utf8_lossy(p)));
    }
    Ok(comps.join(&b'/'))
}

fn hash_reader(r: &mut impl Read) -> io::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.write(&buf[..n]);
    }
}

fn data_hash(n: &Node) -> Result<Option<u64>, String> {
    match &n.data {
        Data::None => Ok(None),
        Data::Hash(h) => Ok(Some(*h)),
        Data::Disk(p) => File::open(p).and_then(|mut f| hash_reader(&mut f)).map(Some).map_err(|e| format!("{}: {e}", p.display())),
    }
}

/// The differences between `want` (the union's view) and `got` (the layer applied), at most
/// `limit` of them. Sockets are left out (a tar cannot hold them); so is the root's metadata
/// (a layer does not carry it).
pub fn compare(want: &Tree, got: &Tree, limit: usize) -> Result<Vec<String>, String> {
    let mut diffs = Vec::new();
    let skip = |n: &Node| n.kind == Kind::Socket;
    for (p, w) in want.iter().filter(|(_, n)| !skip(n)) {
        if diffs.len() >= limit {
            break;
        }
        let Some(g) = got.get(p) else {
            diffs.push(format!("'{}': in the view, not in the layer applied", show(p)));
            continue;
        };
        if p.is_empty() {
            continue;
        }
        let mut what = Vec::new();
        if w.kind != g.kind {
            what.push(format!("kind {:?} != {:?}", w.kind, g.kind));
        } else {
            if w.mode != g.mode {
                what.push(format!("mode {:o} != {:o}", w.mode, g.mode));
            }
            if (w.uid, w.gid) != (g.uid, g.gid) {
                what.push(format!("owner {}:{} != {}:{}", w.uid, w.gid, g.uid, g.gid));
            }
            if w.mtime != g.mtime || (g.mtime_nsec != 0 && w.mtime_nsec != g.mtime_nsec) {
                what.push(format!("mtime {}.{:09} != {}.{:09}", w.mtime, w.mtime_nsec, g.mtime, g.mtime_nsec));
            }
            if w.xattrs != g.xattrs {
                what.push(format!("xattrs {:?} != {:?}", names(&w.xattrs), names(&g.xattrs)));
            }
            if w.kind == Kind::Reg && (w.size != g.size || data_hash(w)? != data_hash(g)?) {
                what.push(format!("data ({} bytes) != ({} bytes)", w.size, g.size));
            }
        }
        if !what.is_empty() {
            diffs.push(format!("'{}': view {} layer applied", show(p), what.join(", ")));
        }
    }
    for p in got.iter().filter(|(_, n)| !skip(n)).map(|(p, _)| p) {
        if diffs.len() >= limit {
            break;
        }
        if !want.contains_key(p) {
            diffs.push(format!("'{}': in the layer applied, not in the view", show(p)));
        }
    }
    Ok(diffs)
}

fn names(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    x.iter().map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))).collect()
}

/// With a mounted view: every hard link of the layer must be one object there too.
pub fn check_links(view: &Path, links: &[(Rel, Rel)]) -> Vec<String> {
    let mut ids: HashMap<Rel, (u64, u64)> = HashMap::new();
    let mut id = |p: &Rel| -> Option<(u64, u64)> {
        if let Some(i) = ids.get(p) {
            return Some(*i);
        }
        let n = tree::read_node(&tree::on_disk(view, p)).ok()?;
        ids.insert(p.clone(), n.id);
        Some(n.id)
    };
    links
        .iter()
        .filter_map(|(p, t)| match (id(p), id(t)) {
            (Some(a), Some(b)) if a == b => None,
            (a, b) => Some(format!(
                "'{}' is a hard link of '{}' in the layer, not in the view (st_dev, st_ino {a:?} and {b:?})",
                show(p),
                show(t)
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{clean, parse_pax};

    #[test]
    fn pax_records_are_delimited_by_length() {
        let value = b"a\nb=c";
        let record = |k: &str, v: &[u8]| {
            let body = [k.as_bytes(), b"=", v, b"\n"].concat();
            let mut len = body.len() + 2;
            while format!("{len} ").len() + body.len() != len {
                len += 1;
            }
            [format!("{len} ").as_bytes(), &body].concat()
        };
        let data = [record("SCHILY.xattr.user.x", value), record("mtime", b"1.5")].concat();
        let got = parse_pax(&data).unwrap();
        assert_eq!(got, [(b"SCHILY.xattr.user.x".to_vec(), value.to_vec()), (b"mtime".to_vec(), b"1.5".to_vec())]);
        assert!(parse_pax(b"99 x=y\n").is_err());
    }

    #[test]
    fn tar_paths_become_tree_paths() {
        assert_eq!(clean(b"./a/b/").unwrap(), b"a/b");
        assert_eq!(clean(b"a//b").unwrap(), b"a/b");
        assert_eq!(clean(b"./").unwrap(), b"");
        assert!(clean(b"a/../b").is_err());
    }
}
