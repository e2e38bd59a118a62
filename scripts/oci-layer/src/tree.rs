//! A directory tree in memory, and the overlay rules that build one from layers on disk:
//! whiteouts (a character device 0/0, or an empty file with an `overlay.whiteout` xattr),
//! opaque directories (`overlay.opaque` = "y"), redirects (`overlay.redirect`) and metacopy
//! files (`overlay.metacopy`), as overlayfs reads them (Documentation/filesystems/overlayfs.rst).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A path relative to a tree's root, as bytes, without leading or trailing slash; the root is
/// empty.
pub type Rel = Vec<u8>;

/// What an object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Reg,
    Symlink(Vec<u8>),
    Char(u64),
    Block(u64),
    Fifo,
    Socket,
}

/// Where a regular file's data is.
#[derive(Clone, Debug)]
pub enum Data {
    None,
    /// In this file on disk.
    Disk(PathBuf),
    /// Already read: its hash.
    Hash(u64),
}

/// One object: its kind and the metadata an OCI layer carries.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits, set-id and sticky bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub size: u64,
    /// Extended attributes, the union's private ones left out.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub data: Data,
    /// The object on disk it was read from (device, inode), for hard links.
    pub id: (u64, u64),
    pub nlink: u64,
}

/// A tree: every object by its path. Parents sort before their children.
pub type Tree = BTreeMap<Rel, Node>;

/// How the union marks things in its layers: the prefix of its private xattrs, and whether
/// whiteouts and opaque directories may also be OCI's marker files (`whiteout=oci`).
#[derive(Clone, Copy)]
pub struct Private {
    prefix: &'static str,
    oci: bool,
}

/// An OCI whiteout's name is this, then the name it hides.
const OCI_WHITEOUT: &[u8] = b".wh.";
/// An OCI opaque directory holds this.
pub const OCI_OPAQUE: &[u8] = b".wh..wh..opq";

impl Private {
    pub fn new(userxattr: bool, oci: bool) -> Self {
        Private { prefix: if userxattr { "user.overlay." } else { "trusted.overlay." }, oci }
    }

    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Whether `name` is one of the union's own xattrs (of either namespace: neither belongs
    /// in an image layer).
    pub fn is_private(name: &[u8]) -> bool {
        name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
    }
}

pub fn join(dir: &[u8], name: &[u8]) -> Rel {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

pub fn parent_and_name(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&[], p),
    }
}

pub fn on_disk(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

pub fn show(p: &[u8]) -> String {
    if p.is_empty() {
        "/".to_string()
    } else {
        String::from_utf8_lossy(p).into_owned()
    }
}

/// The keys of `p`'s subtree below it (not `p` itself).
fn below(tree: &Tree, p: &[u8]) -> Vec<Rel> {
    if p.is_empty() {
        return tree.keys().filter(|k| !k.is_empty()).cloned().collect();
    }
    let from = [p, b"/"].concat();
    let to = [p, b"0"].concat(); // '0' follows '/'
    tree.range(from..to).map(|(k, _)| k.clone()).collect()
}

/// Removes what is below `p`.
pub fn clear_below(tree: &mut Tree, p: &[u8]) {
    for k in below(tree, p) {
        tree.remove(&k);
    }
}

/// Removes `p` and what is below it.
pub fn remove_subtree(tree: &mut Tree, p: &[u8]) {
    clear_below(tree, p);
    tree.remove(p);
}

/// Copies `src`'s subtree into `dst` at `at` (re-rooted).
pub fn graft(dst: &mut Tree, at: &[u8], src: &Tree) {
    for (k, n) in src {
        let p = if k.is_empty() { at.to_vec() } else { join(at, k) };
        dst.insert(p, n.clone());
    }
}

fn xattr_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let size = rustix::fs::llistxattr_query(path)?;
    let mut buf = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    Ok(buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect())
}

pub fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    let size = match rustix::fs::lgetxattr_query(path, name) {
        Ok(n) => n,
        Err(rustix::io::Errno::NODATA) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut buf = vec![0u8; size];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Reads one object on disk (not its data).
pub fn read_node(path: &Path) -> io::Result<Node> {
    let md = fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::Reg
    } else if ft.is_symlink() {
        Kind::Symlink(fs::read_link(path)?.into_os_string().into_encoded_bytes())
    } else if ft.is_char_device() {
        Kind::Char(md.rdev())
    } else if ft.is_block_device() {
        Kind::Block(md.rdev())
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let mut xattrs = BTreeMap::new();
    for name in xattr_names(path)? {
        if Private::is_private(&name) {
            continue;
        }
        if let Some(v) = get_xattr(path, &name)? {
            xattrs.insert(name, v);
        }
    }
    let data = if kind == Kind::Reg { Data::Disk(path.to_path_buf()) } else { Data::None };
    Ok(Node {
        size: if kind == Kind::Reg { md.size() } else { 0 },
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec() as u32,
        xattrs,
        data,
        id: (md.dev(), md.ino()),
        nlink: md.nlink(),
    })
}

/// The names in directory `dir`, sorted.
pub fn read_names(dir: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut names: Vec<Vec<u8>> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name().into_encoded_bytes())).collect::<io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// The entries of layer directory `disk` as the union reads them, by name. With OCI markers,
/// `.wh.NAME` is a whiteout of NAME and `.wh..wh..opq` no entry (`read_entry` reads it as its
/// directory's opacity). Whiteouts come first: an OCI whiteout hides what the layers below
/// have, not NAME in its own layer.
pub fn read_layer_dir(disk: &Path, px: Private) -> Result<Vec<(Vec<u8>, Entry)>, String> {
    let mut whiteouts = Vec::new();
    let mut entries = Vec::new();
    for name in read_names(disk).map_err(|e| format!("{}: {e}", disk.display()))? {
        let path = disk.join(OsStr::from_bytes(&name));
        match name.strip_prefix(OCI_WHITEOUT) {
            Some(_) if px.oci && name == OCI_OPAQUE => {}
            Some(hidden) if px.oci && !hidden.is_empty() => whiteouts.push((hidden.to_vec(), Entry::Whiteout)),
            _ => entries.push((name, read_entry(&path, px).map_err(|e| format!("{}: {e}", path.display()))?)),
        }
    }
    whiteouts.extend(entries);
    Ok(whiteouts)
}

/// Whether layer directory `dir` (on disk) holds an OCI whiteout of `name`.
fn has_oci_whiteout(dir: &Path, name: &[u8], px: Private) -> bool {
    px.oci && fs::symlink_metadata(dir.join(OsStr::from_bytes(&[OCI_WHITEOUT, name].concat()))).is_ok()
}

/// How the union reads one object of a layer.
pub enum Entry {
    Whiteout,
    Dir {
        node: Node,
        opaque: bool,
        redirect: Option<Vec<u8>>,
    },
    /// A metadata-only copy: its data is in a lower layer, at `redirect` if it has one.
    Metacopy {
        node: Node,
        redirect: Option<Vec<u8>>,
    },
    Other(Node),
}

pub fn read_entry(path: &Path, px: Private) -> io::Result<Entry> {
    let node = read_node(path)?;
    let private = |what: &str| get_xattr(path, px.name(what).as_bytes());
    Ok(match node.kind {
        Kind::Char(0) => Entry::Whiteout,
        Kind::Reg if node.size == 0 && private("whiteout")?.is_some() => Entry::Whiteout,
        Kind::Dir => {
            let opaque = private("opaque")?.is_some_and(|v| v == b"y")
                || px.oci && fs::symlink_metadata(path.join(OsStr::from_bytes(OCI_OPAQUE))).is_ok();
            Entry::Dir { node, opaque, redirect: private("redirect")? }
        }
        Kind::Reg if private("metacopy")?.is_some() => Entry::Metacopy { node, redirect: private("redirect")? },
        _ => Entry::Other(node),
    })
}

/// The lower layers of a union, top first, as `lowerdir=` gives them: `a:b::d1::d2` has the
/// layers a and b, and the data-only layers d1 and d2 (reachable only through redirects of
/// metacopy files). `\:` and `\\` escape.
pub struct Lowers {
    pub layers: Vec<PathBuf>,
    pub data: Vec<PathBuf>,
}

impl Lowers {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts: Vec<(String, bool)> = vec![(String::new(), false)];
        let mut chars = spec.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => parts.last_mut().unwrap().0.push(chars.next().ok_or("a trailing backslash in the layer list")?),
                ':' if chars.peek() == Some(&':') => {
                    chars.next();
                    parts.push((String::new(), true));
                }
                ':' => {
                    let data = parts.last().unwrap().1;
                    parts.push((String::new(), data));
                }
                c => parts.last_mut().unwrap().0.push(c),
            }
        }
        if parts.iter().any(|(p, _)| p.is_empty()) {
            return Err(format!("an empty layer in '{spec}'"));
        }
        let (data, layers): (Vec<_>, Vec<_>) = parts.into_iter().partition(|(_, data)| *data);
        if layers.is_empty() {
            return Err(format!("no regular lower layer in '{spec}'"));
        }
        Ok(Lowers { layers: layers.into_iter().map(|(p, _)| p.into()).collect(), data: data.into_iter().map(|(p, _)| p.into()).collect() })
    }
}

/// Applies one layer on disk, `root`, onto `tree` by the overlay rules: what it has hides what
/// is below, directories merge unless opaque, whiteouts remove.
pub fn apply_layer(tree: &mut Tree, root: &Path, px: Private) -> Result<(), String> {
    let node = read_node(root).map_err(|e| format!("{}: {e}", root.display()))?;
    match tree.get(&Vec::new()) {
        Some(n) if n.kind == Kind::Dir => {}
        _ => remove_subtree(tree, b""),
    }
    tree.insert(Vec::new(), node);
    apply_dir(tree, root, b"", px)
}

fn apply_dir(tree: &mut Tree, root: &Path, dir: &[u8], px: Private) -> Result<(), String> {
    let disk = on_disk(root, dir);
    for (name, entry) in read_layer_dir(&disk, px)? {
        let p = join(dir, &name);
        match entry {
            Entry::Whiteout => remove_subtree(tree, &p),
            Entry::Dir { redirect: Some(_), .. } | Entry::Metacopy { .. } => {
                return Err(format!("{}: a redirect or metacopy file in a lower layer is not supported here", on_disk(root, &p).display()))
            }
            Entry::Dir { node, opaque, .. } => {
                if opaque || tree.get(&p).is_none_or(|n| n.kind != Kind::Dir) {
                    remove_subtree(tree, &p);
                }
                tree.insert(p.clone(), node);
                apply_dir(tree, root, &p, px)?;
            }
            Entry::Other(node) => {
                remove_subtree(tree, &p);
                tree.insert(p, node);
            }
        }
    }
    Ok(())
}

/// The merged view of the lower layers alone.
pub fn merge_lowers(lowers: &Lowers, px: Private) -> Result<Tree, String> {
    let mut tree = Tree::new();
    for layer in lowers.layers.iter().rev() {
        apply_layer(&mut tree, layer, px)?;
    }
    Ok(tree)
}

/// The merged subtree of the lower layers at `path` (as a redirect leads there), re-rooted:
/// the layers are looked up from the top, stopping at a whiteout, a non-directory or an
/// opaque directory, as overlayfs' lookup does.
pub fn lower_subtree(lowers: &Lowers, path: &[u8], px: Private) -> Result<Tree, String> {
    let mut found = Vec::new();
    'layers: for layer in &lowers.layers {
        let mut at = Vec::new();
        // An opaque directory on the way: this layer is the last one looked at.
        let mut last_layer = false;
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            let whited_out = has_oci_whiteout(&on_disk(layer, &at), c, px);
            at = join(&at, c);
            let disk = on_disk(layer, &at);
            if fs::symlink_metadata(&disk).is_err() {
                if last_layer || whited_out {
                    break 'layers;
                }
                continue 'layers;
            }
            // What this layer has at `c` is seen; the layers below are hidden.
            last_layer |= whited_out;
            let last = i + 1 == comps.len();
            match read_entry(&disk, px).map_err(|e| format!("{}: {e}", disk.display()))? {
                Entry::Whiteout => break 'layers,
                Entry::Dir { opaque, .. } if last => {
                    found.push(disk);
                    if opaque || last_layer {
                        break 'layers;
                    }
                    continue 'layers;
                }
                Entry::Dir { opaque: true, .. } => last_layer = true,
                Entry::Dir { .. } => {}
                _ if last && found.is_empty() => {
                    found.push(disk);
                    break 'layers;
                }
                _ => break 'layers,
            }
        }
        if comps.is_empty() {
            found.push(layer.clone());
        }
    }
    let mut tree = Tree::new();
    for disk in found.iter().rev() {
        match read_entry(disk, px).map_err(|e| format!("{}: {e}", disk.display()))? {
            Entry::Dir { .. } => apply_layer(&mut tree, disk, px)?,
            Entry::Other(node) => {
                tree.clear();
                tree.insert(Vec::new(), node);
            }
            _ => return Err(format!("{}: not a directory or file", disk.display())),
        }
    }
    Ok(tree)
}

/// The data of a metacopy file whose lower path (after its redirect) is `path`: the first
/// regular file there that is not itself a metacopy file, in the lower layers, then in the
/// data-only ones (which only absolute redirects reach, as here).
pub fn find_data(lowers: &Lowers, path: &[u8], px: Private) -> Result<Node, String> {
    let mut path = path.to_vec();
    for layer in lowers.layers.iter().chain(&lowers.data) {
        let disk = on_disk(layer, &path);
        if fs::symlink_metadata(&disk).is_err() {
            continue;
        }
        match read_entry(&disk, px).map_err(|e| format!("{}: {e}", disk.display()))? {
            Entry::Other(node) if node.kind == Kind::Reg => return Ok(node),
            Entry::Metacopy { redirect, .. } => {
                if let Some(r) = redirect {
                    path = resolve_redirect(parent_and_name(&path).0, &r)?;
                }
            }
            _ => break,
        }
    }
    Err(format!("no data for metacopy file '{}' in the lower layers", show(&path)))
}

/// Where a redirect leads: an absolute one from the layers' root, a relative one (a name) next
/// to the object's lower parent `lower_parent`.
pub fn resolve_redirect(lower_parent: &[u8], redirect: &[u8]) -> Result<Rel, String> {
    let bad = || format!("a bad redirect '{}'", String::from_utf8_lossy(redirect));
    if let Some(abs) = redirect.strip_prefix(b"/") {
        let comps: Vec<&[u8]> = abs.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
        if comps.iter().any(|c| *c == b"." || *c == b"..") {
            return Err(bad());
        }
        Ok(comps.join(&b'/'))
    } else if redirect.is_empty() || redirect.contains(&b'/') || redirect == b"." || redirect == b".." {
        Err(bad())
    } else {
        Ok(join(lower_parent, redirect))
    }
}

/// Overlays upper directory `upper` (on disk) onto `tree` at `at`, whose lower path is
/// `lower_path`: the union's view of that subtree, redirects and metacopy files resolved
/// through `lowers`.
pub fn overlay_upper(
    tree: &mut Tree,
    upper: &Path,
    at: &[u8],
    lower_path: &[u8],
    lowers: Option<&Lowers>,
    px: Private,
) -> Result<(), String> {
    let disk = on_disk(upper, at);
    for (name, entry) in read_layer_dir(&disk, px)? {
        let p = join(at, &name);
        let child_lower = join(lower_path, &name);
        match entry {
            Entry::Whiteout => remove_subtree(tree, &p),
            Entry::Dir { node, opaque, redirect } => {
                let child_lower = match &redirect {
                    Some(r) => resolve_redirect(lower_path, r)?,
                    None => child_lower,
                };
                if redirect.is_some() {
                    remove_subtree(tree, &p);
                    if !opaque {
                        let lowers = lowers.ok_or_else(|| needs_lowers(&p))?;
                        let sub = lower_subtree(lowers, &child_lower, px)?;
                        if sub.get(&Vec::new()).is_some_and(|n| n.kind == Kind::Dir) {
                            graft(tree, &p, &sub);
                        }
                    }
                } else if opaque || tree.get(&p).is_none_or(|n| n.kind != Kind::Dir) {
                    remove_subtree(tree, &p);
                }
                tree.insert(p.clone(), node);
                overlay_upper(tree, upper, &p, &child_lower, lowers, px)?;
            }
            Entry::Metacopy { mut node, redirect } => {
                let lowers = lowers.ok_or_else(|| needs_lowers(&p))?;
                let data_path = match &redirect {
                    Some(r) => resolve_redirect(lower_path, r)?,
                    None => child_lower,
                };
                let data = find_data(lowers, &data_path, px)?;
                node.data = data.data;
                node.size = data.size;
                remove_subtree(tree, &p);
                tree.insert(p, node);
            }
            Entry::Other(node) => {
                remove_subtree(tree, &p);
                tree.insert(p, node);
            }
        }
    }
    Ok(())
}

pub fn needs_lowers(p: &[u8]) -> String {
    format!("'{}' has a redirect or is a metacopy file: its content is in the lower layers, give them with --lowers", show(p))
}

/// A plain walk of a directory (a mounted union's view), no overlay rules.
pub fn walk(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    tree.insert(Vec::new(), read_node(root).map_err(|e| format!("{}: {e}", root.display()))?);
    walk_dir(&mut tree, root, b"")?;
    Ok(tree)
}

fn walk_dir(tree: &mut Tree, root: &Path, dir: &[u8]) -> Result<(), String> {
    let disk = on_disk(root, dir);
    for name in read_names(&disk).map_err(|e| format!("{}: {e}", disk.display()))? {
        let p = join(dir, &name);
        let path = on_disk(root, &p);
        let node = read_node(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_dir = node.kind == Kind::Dir;
        tree.insert(p.clone(), node);
        if is_dir {
            walk_dir(tree, root, &p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_split_as_lowerdir_does() {
        let l = Lowers::parse("/a:/b\\:c::/d1::/d2").unwrap();
        assert_eq!(l.layers, [PathBuf::from("/a"), PathBuf::from("/b:c")]);
        assert_eq!(l.data, [PathBuf::from("/d1"), PathBuf::from("/d2")]);
        assert!(Lowers::parse("/a::").is_err());
        assert!(Lowers::parse("::/d").is_err());
        assert!(Lowers::parse("/a\\").is_err());
    }

    #[test]
    fn redirects_resolve_as_overlayfs_reads_them() {
        assert_eq!(resolve_redirect(b"p/q", b"/x/y").unwrap(), b"x/y");
        assert_eq!(resolve_redirect(b"p/q", b"name").unwrap(), b"p/q/name");
        assert_eq!(resolve_redirect(b"", b"name").unwrap(), b"name");
        for bad in [&b"/x/../y"[..], b"a/b", b"..", b"", b"/."] {
            assert!(resolve_redirect(b"p", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oci_markers_read_as_whiteouts_and_opacity() {
        let root = std::env::temp_dir().join(format!("oci-layer-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let layer = root.join("layer");
        fs::create_dir_all(layer.join("d")).unwrap();
        for f in [".wh.a", "a", ".wh.gone", "d/.wh..wh..opq", "d/f"] {
            fs::write(layer.join(f), b"").unwrap();
        }
        let lower = root.join("lower");
        fs::create_dir_all(lower.join("d")).unwrap();
        for f in ["a", "gone", "kept", "d/hidden"] {
            fs::write(lower.join(f), b"lower").unwrap();
        }
        let names = |px| -> Vec<(String, bool)> {
            read_layer_dir(&layer, px)
                .unwrap()
                .into_iter()
                .map(|(n, e)| (String::from_utf8(n).unwrap(), matches!(e, Entry::Whiteout)))
                .collect()
        };
        let oci = Private::new(false, true);
        assert_eq!(names(oci), [("a".into(), true), ("gone".into(), true), ("a".into(), false), ("d".into(), false)]);
        assert!(matches!(read_entry(&layer.join("d"), oci).unwrap(), Entry::Dir { opaque: true, .. }));
        // Without the option they are plain files, as overlayfs reads them.
        assert_eq!(names(Private::new(false, false)).len(), 4);
        assert!(matches!(read_entry(&layer.join("d"), Private::new(false, false)).unwrap(), Entry::Dir { opaque: false, .. }));

        let lowers = Lowers { layers: vec![layer.clone(), lower.clone()], data: vec![] };
        let merged = merge_lowers(&lowers, oci).unwrap();
        let seen: Vec<&[u8]> = merged.keys().map(|k| k.as_slice()).collect();
        // The layer's own "a" stays; "gone" and what the opaque "d" covers are hidden.
        assert_eq!(seen, [&b""[..], b"a", b"d", b"d/f", b"kept"]);
        assert_eq!(merged[&b"a".to_vec()].size, 0);
        // A redirect's lookup stops at a whiteout too.
        assert!(lower_subtree(&lowers, b"gone", oci).unwrap().is_empty());
        assert_eq!(lower_subtree(&lowers, b"a", oci).unwrap()[&Vec::new()].size, 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn subtrees_are_removed_whole_and_only_them() {
        let node = || Node {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            xattrs: BTreeMap::new(),
            data: Data::None,
            id: (0, 0),
            nlink: 1,
        };
        let mut t = Tree::new();
        for p in ["", "a", "a/b", "a/b/c", "a-b", "a0", "ab"] {
            t.insert(p.as_bytes().to_vec(), node());
        }
        remove_subtree(&mut t, b"a");
        let left: Vec<&[u8]> = t.keys().map(|k| k.as_slice()).collect();
        assert_eq!(left, [&b""[..], b"a-b", b"a0", b"ab"]);
        clear_below(&mut t, b"");
        assert_eq!(t.len(), 1);
    }
}
