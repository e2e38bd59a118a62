// SPDX-License-Identifier: GPL-2.0

//! Mount options: overlayfs' syntax, parsed into a [`Config`].
//!
//! `lowerdir=` takes a colon-separated list, top layer first, in which `\` escapes the next
//! character (so `\:` is a colon inside a path and `\,` a comma). `lowerdir+=` appends one
//! layer and takes its path literally, as overlayfs does. Paths are resolved as soon as each
//! option is parsed, so that errors name the option that caused them.

use crate::vfs::bindings as cb;
use crate::vfs::{show, FsContext, MounterCreds, Param, ParamValue, Path};
use kernel::prelude::*;
use kernel::str::CString;

/// The most lower layers a union may have (overlayfs' `OVL_MAX_STACK`).
pub(crate) const MAX_LOWER_LAYERS: usize = 500;

/// Option numbers: those of the parameter table, from `helpers.h`.
mod opt {
    use super::cb;
    pub(super) const LOWERDIR: i32 = cb::UNIONRS_OPT_LOWERDIR as i32;
    pub(super) const LOWERDIR_ADD: i32 = cb::UNIONRS_OPT_LOWERDIR_ADD as i32;
    pub(super) const DATADIR_ADD: i32 = cb::UNIONRS_OPT_DATADIR_ADD as i32;
    pub(super) const UPPERDIR: i32 = cb::UNIONRS_OPT_UPPERDIR as i32;
    pub(super) const WORKDIR: i32 = cb::UNIONRS_OPT_WORKDIR as i32;
    pub(super) const USERXATTR: i32 = cb::UNIONRS_OPT_USERXATTR as i32;
    pub(super) const INDEX: i32 = cb::UNIONRS_OPT_INDEX as i32;
    pub(super) const METACOPY: i32 = cb::UNIONRS_OPT_METACOPY as i32;
    pub(super) const NFS_EXPORT: i32 = cb::UNIONRS_OPT_NFS_EXPORT as i32;
    pub(super) const REDIRECT_DIR: i32 = cb::UNIONRS_OPT_REDIRECT_DIR as i32;
    pub(super) const XINO: i32 = cb::UNIONRS_OPT_XINO as i32;
    pub(super) const UUID: i32 = cb::UNIONRS_OPT_UUID as i32;
    pub(super) const VERITY: i32 = cb::UNIONRS_OPT_VERITY as i32;
    pub(super) const WHITEOUT: i32 = cb::UNIONRS_OPT_WHITEOUT as i32;
    pub(super) const DEFAULT_PERMISSIONS: i32 = cb::UNIONRS_OPT_DEFAULT_PERMISSIONS as i32;
    pub(super) const FSYNC: i32 = cb::UNIONRS_OPT_FSYNC as i32;
    pub(super) const VOLATILE: i32 = cb::UNIONRS_OPT_VOLATILE as i32;
    pub(super) const OVERRIDE_CREDS: i32 = cb::UNIONRS_OPT_OVERRIDE_CREDS as i32;
}

/// `uuid=`: whether the upper layer keeps a persistent uuid in `overlay.uuid`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Uuid {
    Off,
    Null,
    /// Use a stored uuid, store a new one only on a fresh upper (overlayfs' default).
    #[default]
    Auto,
    On,
}

impl Uuid {
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Self::Off => c"off",
            Self::Null => c"null",
            Self::Auto => c"auto",
            Self::On => c"on",
        }
    }

    /// The value of the parameter table's `uuid` words.
    fn from_param(n: u32) -> Self {
        match n {
            cb::UNIONRS_UUID_OFF => Self::Off,
            cb::UNIONRS_UUID_NULL => Self::Null,
            cb::UNIONRS_UUID_ON => Self::On,
            _ => Self::Auto,
        }
    }
}

/// `verity=`: whether the fs-verity digest of a metacopy file's lower data is recorded at
/// copy-up and checked on open (`require`: and must be there).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) enum Verity {
    #[default]
    Off,
    On,
    Require,
}

impl Verity {
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Self::Off => c"off",
            Self::On => c"on",
            Self::Require => c"require",
        }
    }
}

/// `fsync=` (`volatile` is `fsync=volatile`): when the upper layer is synced.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) enum Fsync {
    /// A data copy-up is synced before it is named; `fsync(2)` and `syncfs(2)` reach the
    /// upper layer.
    #[default]
    Auto,
    /// Also every copy-up of a regular file or directory, after its metadata (for upper
    /// filesystems without ordered metadata).
    Strict,
    /// Nothing is synced: `fsync(2)` and `syncfs(2)` only report a writeback error of the
    /// upper filesystem since the mount; the work directory marks the upper as unsafe after
    /// a crash (see `crate::superblock`).
    Volatile,
}

impl Fsync {
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Self::Auto => c"auto",
            Self::Strict => c"strict",
            Self::Volatile => c"volatile",
        }
    }
}

/// Where the next option of a monolithic mount string ends: at the first comma not escaped by
/// a backslash (overlayfs' rule, so that `\,` can appear inside a path).
pub(crate) fn option_end(rest: &[u8]) -> usize {
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b',' => return i,
            _ => i += 1,
        }
    }
    rest.len()
}

/// One layer given on the command line: the name as the user wrote it (for mountinfo) and the
/// directory it resolved to.
pub(crate) struct LayerSpec {
    pub(crate) name: CString,
    pub(crate) path: Path,
}

/// Everything the mount options say.
pub(crate) struct Config {
    /// Lower layers, top first; the last `data_layers` of them are data-only layers.
    pub(crate) lowers: KVec<LayerSpec>,
    /// How many of the lower layers (the last ones) are data-only layers (`::` in
    /// `lowerdir=`, or `datadir+=`): never merged, only reached by absolute redirects of
    /// metacopy files.
    pub(crate) data_layers: usize,
    /// The `lowerdir=` string as given, if the lowers came from it (shown in mountinfo).
    pub(crate) lowerdir_all: Option<CString>,
    pub(crate) upper: Option<LayerSpec>,
    pub(crate) work: Option<LayerSpec>,
    /// Use `user.overlay.*` instead of `trusted.overlay.*` xattrs.
    pub(crate) userxattr: bool,
    /// `default_permissions`: shown, otherwise without effect (as in overlayfs 7.2).
    pub(crate) default_permissions: bool,
    /// `redirect_dir=`: whether directory renames record redirects, and lookups follow them.
    pub(crate) redirect: Redirect,
    /// `redirect_dir=` was given.
    pub(crate) redirect_given: bool,
    pub(crate) uuid: Uuid,
    pub(crate) xino: Xino,
    /// `index=on`: the inodes index (see `crate::index`).
    pub(crate) index: bool,
    /// `index=` was given (on or off).
    pub(crate) index_given: bool,
    /// `nfs_export=on`: file handles that can be decoded (see `crate::export`).
    pub(crate) nfs_export: bool,
    /// `nfs_export=` was given (on or off).
    pub(crate) nfs_export_given: bool,
    /// `metacopy=on`: metadata-only copy-up (see `crate::copy_up`).
    pub(crate) metacopy: bool,
    /// `metacopy=` was given (on or off).
    pub(crate) metacopy_given: bool,
    pub(crate) verity: Verity,
    /// `whiteout=oci`: the layers' OCI whiteouts (`.wh.NAME`) and opaque markers
    /// (`.wh..wh..opq`) count as overlayfs' do.
    pub(crate) oci_whiteouts: bool,
    pub(crate) fsync: Fsync,
    /// The credentials recorded by `override_creds` (those of the task that gave it), used
    /// instead of the superblock creator's.
    pub(crate) creds: Option<MounterCreds>,
}

impl Default for Config {
    /// What no option gives: the module parameters' defaults.
    fn default() -> Self {
        Self {
            lowers: KVec::new(),
            data_layers: 0,
            lowerdir_all: None,
            upper: None,
            work: None,
            userxattr: false,
            default_permissions: false,
            redirect: Redirect::default_mode(),
            redirect_given: false,
            uuid: Uuid::default(),
            xino: Xino::default_mode(),
            index: crate::defaults::index(),
            index_given: false,
            nfs_export: crate::defaults::nfs_export(),
            nfs_export_given: false,
            metacopy: crate::defaults::metacopy(),
            metacopy_given: false,
            verity: Verity::Off,
            oci_whiteouts: false,
            fsync: Fsync::Auto,
            creds: None,
        }
    }
}

/// `redirect_dir=`: overlayfs' modes (its "off" is "follow" with the module parameter
/// `redirect_always_follow`, else "nofollow").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Redirect {
    /// Lookups follow redirects; renames of lower and merged directories fail with `EXDEV`.
    Follow,
    /// Redirects are refused on lookup (`EPERM`), and never made.
    NoFollow,
    /// Renames of lower and merged directories record redirects, lookups follow them.
    On,
}

impl Redirect {
    /// The mode without `redirect_dir=` (overlayfs' `ovl_redirect_mode_def`).
    pub(crate) fn default_mode() -> Self {
        if crate::defaults::redirect_dir() {
            Self::On
        } else {
            Self::off()
        }
    }

    /// What `redirect_dir=off` means.
    fn off() -> Self {
        if crate::defaults::redirect_always_follow() {
            Self::Follow
        } else {
            Self::NoFollow
        }
    }

    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Self::Follow => c"follow",
            Self::NoFollow => c"nofollow",
            Self::On => c"on",
        }
    }

    /// Lookups follow redirects (overlayfs' `ovl_redirect_follow`).
    pub(crate) fn follows(self) -> bool {
        self != Self::NoFollow
    }
}

/// `xino=`: whether inode numbers of several filesystems are made unique on the union's own
/// device by putting the filesystem's number in their high bits (the default is `off`, or
/// `auto` with the module parameter `xino_auto`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Xino {
    Off,
    /// When the layers allow it; else off, with a warning.
    Auto,
    /// Always (with a warning for each number too big for it).
    On,
}

impl Xino {
    /// The mode without `xino=` (the module parameter `xino_auto`).
    pub(crate) fn default_mode() -> Self {
        if crate::defaults::xino_auto() {
            Self::Auto
        } else {
            Self::Off
        }
    }

    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Self::Off => c"off",
            Self::Auto => c"auto",
            Self::On => c"on",
        }
    }
}

/// Why a `lowerdir=` string is malformed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum SplitError {
    /// Starts with `:` (overlayfs' "cannot append lower layer").
    LeadingColon,
    /// Three or more colons in a row, or colons at the end.
    EmptyElement,
    /// More than [`MAX_LOWER_LAYERS`] elements.
    TooMany,
    /// Out of memory.
    NoMemory,
}

impl SplitError {
    fn message(self) -> &'static CStr {
        match self {
            Self::LeadingColon => c"lowerdir: cannot start with ':' (nothing to append to)",
            Self::EmptyElement => c"lowerdir: empty layer path (unescaped ':' at the end or ':::')",
            Self::TooMany => c"lowerdir: too many lower directories, the limit is 500",
            Self::NoMemory => c"lowerdir: out of memory",
        }
    }

    fn errno(self) -> Error {
        match self {
            Self::NoMemory => ENOMEM,
            _ => EINVAL,
        }
    }
}

/// One element of a `lowerdir=` value: the path, and whether it follows `::` (a data-only
/// layer; a regular one after it is refused when the layers are resolved, as overlayfs does).
pub(crate) struct SplitLayer {
    pub(crate) path: KVec<u8>,
    pub(crate) data_only: bool,
}

/// Removes the escapes of an `upperdir=` or `workdir=` value: a backslash stands for the
/// character after it, and a backslash at the end for nothing (overlayfs' `ovl_unescape`).
pub(crate) fn unescape(s: &[u8]) -> Result<KVec<u8>> {
    let mut out = KVec::with_capacity(s.len(), GFP_KERNEL)?;
    let mut bytes = s.iter();
    while let Some(&c) = bytes.next() {
        let c = if c == b'\\' {
            match bytes.next() {
                Some(&next) => next,
                None => break,
            }
        } else {
            c
        };
        out.push(c, GFP_KERNEL)?;
    }
    Ok(out)
}

/// Splits a `lowerdir=` value on unescaped colons and removes the escapes: `a:b` are two
/// lower layers, `a::d1::d2` a lower layer and two data-only ones (overlayfs' syntax).
///
/// Returns the layers, top first (each path without a trailing NUL). An empty string gives an
/// empty list: overlayfs treats `lowerdir=` as "forget the lower layers given so far".
pub(crate) fn split_lowerdir(s: &[u8]) -> Result<KVec<SplitLayer>, SplitError> {
    let mut layers = KVec::new();
    if s.is_empty() {
        return Ok(layers);
    }
    if s[0] == b':' {
        return Err(SplitError::LeadingColon);
    }
    let mut cur = KVec::new();
    let mut data_only = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                // A trailing lone backslash stands for itself.
                let c = s.get(i + 1).copied().unwrap_or(b'\\');
                cur.push(c, GFP_KERNEL).map_err(|_| SplitError::NoMemory)?;
                i += 2;
            }
            b':' => {
                let double = s.get(i + 1) == Some(&b':');
                let next = if double { i + 2 } else { i + 1 };
                if next == s.len() || double && s.get(next) == Some(&b':') {
                    return Err(SplitError::EmptyElement);
                }
                if layers.len() == MAX_LOWER_LAYERS {
                    return Err(SplitError::TooMany);
                }
                let path = core::mem::take(&mut cur);
                layers
                    .push(SplitLayer { path, data_only }, GFP_KERNEL)
                    .map_err(|_| SplitError::NoMemory)?;
                data_only = double;
                i = next;
            }
            c => {
                cur.push(c, GFP_KERNEL).map_err(|_| SplitError::NoMemory)?;
                i += 1;
            }
        }
    }
    if layers.len() == MAX_LOWER_LAYERS {
        return Err(SplitError::TooMany);
    }
    layers
        .push(
            SplitLayer {
                path: cur,
                data_only,
            },
            GFP_KERNEL,
        )
        .map_err(|_| SplitError::NoMemory)?;
    Ok(layers)
}

/// Makes a NUL-terminated copy of `bytes`.
fn to_cstring(bytes: &[u8]) -> Result<CString> {
    let mut v = KVec::with_capacity(bytes.len() + 1, GFP_KERNEL)?;
    v.extend_from_slice(bytes, GFP_KERNEL)?;
    v.push(0, GFP_KERNEL)?;
    Ok(CString::try_from(
        CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?,
    )?)
}

/// Resolves one layer directory, with the errors a user should see.
fn resolve_layer(fc: &FsContext, what: &str, name: &CStr) -> Result<Path> {
    if name.is_empty() {
        return Err(fc.fail(EINVAL, fmt!("{what}: empty path")));
    }
    let path = Path::lookup(name, true).map_err(|e| {
        fc.fail(
            e,
            fmt!(
                "{what}: failed to resolve '{}': {}",
                show(name),
                e.to_errno()
            ),
        )
    })?;
    check_dir(fc, what, name, path)
}

fn check_dir(fc: &FsContext, what: &str, name: &CStr, path: Path) -> Result<Path> {
    if !path.dentry().is_dir() {
        return Err(fc.fail(ENOTDIR, fmt!("{what}: '{}' is not a directory", show(name))));
    }
    if path.dentry().is_unusual_layer_root() {
        return Err(fc.fail(
            EINVAL,
            fmt!("{what}: filesystem on '{}' not supported", show(name)),
        ));
    }
    Ok(path)
}

/// Whether a layer option's path has `\` escapes (`upperdir=`, `workdir=`) or is taken
/// literally (`lowerdir+=`), as in overlayfs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    Removed,
    Literal,
}

/// Resolves the value of an option that takes a directory, given as a path or an fd. The
/// name shown in the mount options is the one given, escapes included.
fn layer_from_param(
    fc: &FsContext,
    what: &str,
    value: ParamValue<'_>,
    escapes: Escapes,
) -> Result<LayerSpec> {
    match value {
        ParamValue::String(s) => {
            let path = if escapes == Escapes::Removed {
                resolve_layer(fc, what, &to_cstring(&unescape(s.to_bytes())?)?)?
            } else {
                resolve_layer(fc, what, s)?
            };
            Ok(LayerSpec {
                name: CString::try_from(s)?,
                path,
            })
        }
        ParamValue::File(path) => {
            // The user gave an fd, not a name: show where it points, as overlayfs does.
            let name = path.name()?;
            let path = check_dir(fc, what, &name, path)?;
            Ok(LayerSpec { name, path })
        }
        ParamValue::None => Err(fc.fail(EINVAL, fmt!("{what}: missing value"))),
    }
}

fn add_lower(fc: &FsContext, cfg: &mut Config, layer: LayerSpec) -> Result {
    if cfg.lowers.len() >= MAX_LOWER_LAYERS {
        return Err(fc.fail(
            EINVAL,
            fmt!("too many lower directories, the limit is {MAX_LOWER_LAYERS}"),
        ));
    }
    cfg.lowers.push(layer, GFP_KERNEL)?;
    Ok(())
}

fn parse_lowerdir(fc: &FsContext, cfg: &mut Config, value: &CStr) -> Result {
    // `lowerdir=` replaces whatever lower layers were given before, as in overlayfs.
    cfg.lowers.clear();
    cfg.data_layers = 0;
    cfg.lowerdir_all = None;
    let parts = split_lowerdir(value.to_bytes())
        .map_err(|e| fc.fail(e.errno(), fmt!("{}", show(e.message()))))?;
    if parts.is_empty() {
        return Ok(());
    }
    cfg.lowers.reserve(parts.len(), GFP_KERNEL)?;
    for part in parts.iter() {
        // Checked where overlayfs checks it: before the regular layer is resolved.
        if !part.data_only && cfg.data_layers > 0 {
            return Err(fc.fail(
                EINVAL,
                fmt!("lowerdir: regular lower layers cannot follow data lower layers"),
            ));
        }
        let name = to_cstring(&part.path)?;
        let path = resolve_layer(fc, "lowerdir", &name)?;
        add_lower(fc, cfg, LayerSpec { name, path })?;
        cfg.data_layers += usize::from(part.data_only);
    }
    cfg.lowerdir_all = Some(CString::try_from(value)?);
    Ok(())
}

/// Takes one mount option into `cfg`.
pub(crate) fn parse_param(fc: &FsContext, cfg: &mut Config, param: Param<'_>) -> Result {
    if fc.is_reconfigure() {
        // A remount may add lower layers below the others (`crate::layers`): collected here,
        // added by the reconfigure once all options are read.
        if param.opt == opt::LOWERDIR_ADD {
            let layer = layer_from_param(fc, "lowerdir+", param.value, Escapes::Literal)?;
            return add_lower(fc, cfg, layer);
        }
        // remount(2) passes fstab's options again: a data-only layer there is not new.
        if param.opt == opt::DATADIR_ADD && !fc.is_legacy_mount() {
            return Err(fc.fail(
                EINVAL,
                fmt!("datadir+: data-only layers cannot be added to a mounted union"),
            ));
        }
        // Like overlayfs: remount ignores the other options of mount(2) (it always has, and
        // tools pass the old ones again), but fsconfig() callers get a clear refusal.
        if fc.is_legacy_mount() {
            return Ok(());
        }
        return Err(fc.fail(
            EINVAL,
            fmt!("no changes allowed in reconfigure (but lowerdir+ to add a lower layer)"),
        ));
    }
    match param.opt {
        opt::LOWERDIR => match param.value {
            ParamValue::String(s) => parse_lowerdir(fc, cfg, s),
            _ => Err(fc.fail(EINVAL, fmt!("lowerdir: expects a string"))),
        },
        opt::LOWERDIR_ADD | opt::DATADIR_ADD => {
            let data_only = param.opt == opt::DATADIR_ADD;
            let what = if data_only { "datadir+" } else { "lowerdir+" };
            // Resolved first: a bad path is reported before a misplaced one, as overlayfs does.
            let layer = layer_from_param(fc, what, param.value, Escapes::Literal)?;
            if cfg.lowerdir_all.is_some() {
                return Err(fc.fail(
                    EINVAL,
                    fmt!("lowerdir+ and datadir+ cannot follow lowerdir"),
                ));
            }
            if cfg.data_layers > 0 && !data_only {
                return Err(fc.fail(
                    EINVAL,
                    fmt!("regular lower layers cannot follow data layers"),
                ));
            }
            add_lower(fc, cfg, layer)?;
            cfg.data_layers += usize::from(data_only);
            Ok(())
        }
        opt::UPPERDIR => {
            let layer = layer_from_param(fc, "upperdir", param.value, Escapes::Removed)?;
            // Another stacking filesystem's objects are not the real ones we must write.
            let d = layer.path.dentry();
            if d.has_real_op() || d.sb_magic() == crate::superblock::UNIONRS_SUPER_MAGIC {
                return Err(fc.fail(
                    EINVAL,
                    fmt!(
                        "upperdir: filesystem on '{}' not supported as upperdir",
                        show(&layer.name)
                    ),
                ));
            }
            if layer.path.mount_is_readonly() {
                return Err(fc.fail(
                    EROFS,
                    fmt!(
                        "upperdir: filesystem on '{}' is read-only",
                        show(&layer.name)
                    ),
                ));
            }
            cfg.upper = Some(layer);
            Ok(())
        }
        opt::WORKDIR => {
            cfg.work = Some(layer_from_param(
                fc,
                "workdir",
                param.value,
                Escapes::Removed,
            )?);
            Ok(())
        }
        opt::USERXATTR => {
            cfg.userxattr = true;
            Ok(())
        }
        // Accepted and shown as overlayfs 7.2 does, where it changes nothing else: its
        // permission checks are the union inode's (with the caller's credentials) and the
        // real inode's (with the mounter's) either way, as unionrs' are.
        opt::DEFAULT_PERMISSIONS => {
            cfg.default_permissions = true;
            Ok(())
        }
        opt::INDEX => {
            cfg.index = param.number != 0;
            cfg.index_given = true;
            Ok(())
        }
        opt::METACOPY => {
            cfg.metacopy = param.number != 0;
            cfg.metacopy_given = true;
            Ok(())
        }
        opt::NFS_EXPORT => {
            cfg.nfs_export = param.number != 0;
            cfg.nfs_export_given = true;
            Ok(())
        }
        opt::REDIRECT_DIR => {
            cfg.redirect = match param.number {
                cb::UNIONRS_REDIRECT_DIR_ON => Redirect::On,
                cb::UNIONRS_REDIRECT_DIR_NOFOLLOW => Redirect::NoFollow,
                cb::UNIONRS_REDIRECT_DIR_FOLLOW => Redirect::Follow,
                _ => Redirect::off(),
            };
            cfg.redirect_given = true;
            Ok(())
        }
        opt::XINO => {
            cfg.xino = match param.number {
                cb::UNIONRS_XINO_ON => Xino::On,
                cb::UNIONRS_XINO_AUTO => Xino::Auto,
                _ => Xino::Off,
            };
            Ok(())
        }
        opt::UUID => {
            cfg.uuid = Uuid::from_param(param.number);
            Ok(())
        }
        opt::VERITY => {
            cfg.verity = match param.number {
                cb::UNIONRS_VERITY_ON => Verity::On,
                cb::UNIONRS_VERITY_REQUIRE => Verity::Require,
                _ => Verity::Off,
            };
            Ok(())
        }
        opt::FSYNC => {
            cfg.fsync = match param.number {
                cb::UNIONRS_FSYNC_STRICT => Fsync::Strict,
                cb::UNIONRS_FSYNC_VOLATILE => Fsync::Volatile,
                _ => Fsync::Auto,
            };
            Ok(())
        }
        opt::VOLATILE => {
            cfg.fsync = Fsync::Volatile;
            Ok(())
        }
        // As in overlayfs: the credentials of the task giving the option now (with the new
        // mount API, another task than the one that creates the superblock), or, in the `no`
        // form, those of the creator again.
        opt::OVERRIDE_CREDS => {
            if param.number == 0 {
                cfg.creds = None;
                return Ok(());
            }
            if !fc.caller_is_within_user_ns() {
                return Err(fc.fail(
                    EINVAL,
                    fmt!("override_creds: the caller is outside the mount's user namespace"),
                ));
            }
            cfg.creds = Some(MounterCreds::capture(crate::superblock::DROPPED_CAPS)?);
            Ok(())
        }
        opt::WHITEOUT => {
            cfg.oci_whiteouts = match param.value {
                ParamValue::String(s) if s.to_bytes() == b"overlay" => false,
                ParamValue::String(s) if s.to_bytes() == b"oci" => true,
                _ => return Err(fc.fail(EINVAL, fmt!("whiteout: expects overlay or oci"))),
            };
            Ok(())
        }
        _ => Err(fc.fail(EINVAL, fmt!("unknown mount option"))),
    }
}

#[kunit_tests(unionrs_params)]
mod tests {
    use super::*;

    /// Whether `s` splits into exactly `want` (`+` marks a data-only layer).
    fn splits_to(s: &[u8], want: &[&[u8]]) -> bool {
        match split_lowerdir(s) {
            Ok(got) => {
                got.len() == want.len()
                    && got
                        .iter()
                        .zip(want.iter())
                        .all(|(g, w)| match w.strip_prefix(b"+") {
                            Some(w) => g.data_only && &g.path[..] == w,
                            None => !g.data_only && &g.path[..] == *w,
                        })
            }
            Err(_) => false,
        }
    }

    fn fails_with(s: &[u8], err: SplitError) -> bool {
        split_lowerdir(s).err() == Some(err)
    }

    #[test]
    fn splits_on_colons_top_first() {
        assert!(splits_to(b"/a:/b:/c", &[b"/a", b"/b", b"/c"]));
        assert!(splits_to(b"/only", &[b"/only"]));
    }

    #[test]
    fn escapes() {
        assert!(splits_to(
            b"/a\\:b:/c\\,d:/e\\\\f",
            &[b"/a:b", b"/c,d", b"/e\\f"]
        ));
        assert!(splits_to(b"/a\\", &[b"/a\\"]));
        assert!(splits_to(b"/a\\:", &[b"/a:"]));
        assert!(!splits_to(b"/a\\:b", &[b"/a", b"b"]));
    }

    #[test]
    fn upper_and_work_unescaped() {
        let unescaped = |s: &[u8], want: &[u8]| matches!(unescape(s), Ok(v) if &v[..] == want);
        assert!(unescaped(b"/u\\:1\\,2\\\\3", b"/u:1,2\\3"));
        assert!(unescaped(b"/plain", b"/plain"));
        assert!(unescaped(b"/end\\", b"/end"));
        assert!(unescaped(b"", b""));
    }

    #[test]
    fn empty_string_resets() {
        assert!(matches!(split_lowerdir(b""), Ok(v) if v.is_empty()));
    }

    #[test]
    fn empty_elements_rejected() {
        assert!(fails_with(b":/a", SplitError::LeadingColon));
        assert!(fails_with(b":", SplitError::LeadingColon));
        assert!(fails_with(b"/a:", SplitError::EmptyElement));
        assert!(fails_with(b"/a:::/b", SplitError::EmptyElement));
        assert!(fails_with(b"/a::", SplitError::EmptyElement));
    }

    #[test]
    fn data_only_layers() {
        assert!(splits_to(b"/a::/d", &[b"/a", b"+/d"]));
        assert!(splits_to(
            b"/a:/b::/d1::/d2",
            &[b"/a", b"/b", b"+/d1", b"+/d2"]
        ));
        assert!(splits_to(b"/a\\::/b", &[b"/a:", b"/b"]));
        // A regular layer after a data-only one is refused when the layers are resolved.
        assert!(splits_to(b"/a::/d:/b", &[b"/a", b"+/d", b"/b"]));
    }

    /// `n` one-letter layers separated by colons.
    fn many(n: usize) -> Option<KVec<u8>> {
        let mut v = KVec::new();
        for i in 0..n {
            if i > 0 {
                v.push(b':', GFP_KERNEL).ok()?;
            }
            v.push(b'x', GFP_KERNEL).ok()?;
        }
        Some(v)
    }

    #[test]
    fn limit_is_500_layers() {
        let at_limit = many(MAX_LOWER_LAYERS);
        let over = many(MAX_LOWER_LAYERS + 1);
        assert!(
            matches!(at_limit.as_deref().map(split_lowerdir), Some(Ok(v)) if v.len() == MAX_LOWER_LAYERS)
        );
        assert!(matches!(
            over.as_deref().map(split_lowerdir),
            Some(Err(SplitError::TooMany))
        ));
    }

    #[test]
    fn options_split_on_unescaped_commas() {
        assert_eq!(option_end(b"lowerdir=/a,upperdir=/u"), 11);
        assert_eq!(option_end(b"lowerdir=/a\\,b,x"), 14);
        assert_eq!(option_end(b"userxattr"), 9);
        assert_eq!(option_end(b""), 0);
        // A trailing lone backslash does not swallow the end.
        assert_eq!(option_end(b"a\\"), 2);
        assert_eq!(option_end(b",x"), 0);
    }
}
