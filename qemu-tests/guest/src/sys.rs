//! Thin, checked wrappers over the system calls the tests use.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("test strings have no NUL")
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL")
}

/// errno of the last failed call.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// An errno with its name (the one table of the tests), or with libc's text for the rare
/// ones.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "success",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::ENOTDIR => "ENOTDIR",
        libc::ELOOP => "ELOOP",
        libc::EBUSY => "EBUSY",
        libc::EROFS => "EROFS",
        libc::ENODEV => "ENODEV",
        libc::EAGAIN => "EAGAIN",
        libc::EEXIST => "EEXIST",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EISDIR => "EISDIR",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ERANGE => "ERANGE",
        libc::EBADF => "EBADF",
        libc::EIO => "EIO",
        libc::EXDEV => "EXDEV",
        libc::ENOSPC => "ENOSPC",
        libc::ENXIO => "ENXIO",
        libc::ESPIPE => "ESPIPE",
        libc::EMLINK => "EMLINK",
        libc::EFBIG => "EFBIG",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFAULT => "EFAULT",
        libc::ESTALE => "ESTALE",
        _ => return format!("{e} ({})", io::Error::from_raw_os_error(e)),
    };
    format!("{e} {name}")
}

/// The errno of a failed rustix call, as the tests compare them.
fn rc(r: rustix::io::Result<()>) -> i32 {
    r.map_or_else(|e| e.raw_os_error(), |()| 0)
}

/// mount(2); returns 0 or the errno.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> i32 {
    let data = cstr(data);
    let flags = rustix::mount::MountFlags::from_bits_retain(flags as _);
    rc(rustix::mount::mount(source, target, fstype, flags, data.as_c_str()))
}

pub fn umount(target: &Path) -> i32 {
    rc(rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()))
}

/// A mount context from fsopen(2), for the new mount API and its error messages.
pub struct FsContext {
    fd: OwnedFd,
}

impl FsContext {
    pub fn open(fstype: &str) -> Result<Self, i32> {
        let fd = rustix::mount::fsopen(fstype, rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| e.raw_os_error())?;
        Ok(Self { fd })
    }

    /// Sets `key` (=`value`) as `mount -o key=value` would; returns 0 or the errno.
    pub fn set(&self, key: &str, value: Option<&str>) -> i32 {
        match value {
            Some(v) => rc(rustix::mount::fsconfig_set_string(&self.fd, key, v)),
            None => rc(rustix::mount::fsconfig_set_flag(&self.fd, key)),
        }
    }

    /// Passes descriptor `fd` as `key` (FSCONFIG_SET_FD); returns 0 or the errno.
    pub fn set_fd(&self, key: &str, fd: BorrowedFd<'_>) -> i32 {
        rc(rustix::mount::fsconfig_set_fd(&self.fd, key, fd))
    }

    pub fn create(&self) -> i32 {
        rc(rustix::mount::fsconfig_create(&self.fd))
    }

    /// Mounts the filesystem created by [`Self::create`] at `target` (fsmount, move_mount).
    pub fn mount_at(&self, target: &Path) -> Result<(), String> {
        use rustix::mount::{fsmount, move_mount, FsMountFlags, MountAttrFlags, MoveMountFlags};
        let mnt = fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| format!("fsmount: {}", errno_name(e.raw_os_error())))?;
        move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(|e| format!("move_mount to {}: {}", target.display(), errno_name(e.raw_os_error())))
    }

    /// Drains the messages the filesystem logged to this context.
    pub fn messages(&self) -> String {
        let mut out = String::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = rustix::io::read(&self.fd, &mut buf) {
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
            out.push('\n');
        }
        out
    }
}

/// Reads the kernel log records appended since `from` (a byte offset into our reading).
pub struct Kmsg {
    fd: i32,
}

impl Kmsg {
    /// Opens /dev/kmsg positioned at the end, so only new records are read.
    pub fn new() -> Self {
        let p = cstr("/dev/kmsg");
        // SAFETY: valid string.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: fd is open.
            unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
        }
        Self { fd }
    }

    /// The message texts logged since the last call.
    pub fn read_new(&mut self) -> String {
        let mut out = String::new();
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && errno() == libc::EPIPE {
                continue;
            }
            if n <= 0 {
                break;
            }
            let rec = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            if let Some((_, text)) = rec.split_once(';') {
                out.push_str(text);
            }
        }
        out
    }
}

impl Drop for Kmsg {
    fn drop(&mut self) {
        // SAFETY: we own the fd (or it is -1, which close rejects harmlessly).
        unsafe { libc::close(self.fd) };
    }
}

pub fn delete_module(name: &str) -> i32 {
    let n = cstr(name);
    // SAFETY: valid string.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, n.as_ptr(), libc::O_NONBLOCK) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

/// Loads the module at `path` with module parameters `params` ("name=value ...").
pub fn load_module(path: &str, params: &str) -> i32 {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    let params = cstr(params);
    use std::os::fd::AsRawFd;
    // SAFETY: valid fd and string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

pub fn statfs_type(p: &Path) -> Result<i64, i32> {
    let c = cpath(p);
    // SAFETY: zeroed statfs is a valid out parameter.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid string and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } == 0 {
        Ok(s.f_type as i64)
    } else {
        Err(errno())
    }
}

pub fn statvfs_flags(p: &Path) -> Result<u64, i32> {
    statvfs(p).map(|s| s.f_flag as u64)
}

pub fn statvfs(p: &Path) -> Result<libc::statvfs, i32> {
    let c = cpath(p);
    // SAFETY: zeroed statvfs is a valid out parameter.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid string and out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0 {
        Ok(s)
    } else {
        Err(errno())
    }
}

/// lstat(2): the object itself, not what a symlink points to.
pub fn lstat(p: &Path) -> Result<libc::stat, i32> {
    let c = cpath(p);
    // SAFETY: zeroed stat is a valid out parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid string and out pointer.
    if unsafe { libc::lstat(c.as_ptr(), &mut st) } == 0 {
        Ok(st)
    } else {
        Err(errno())
    }
}

/// mknod(2) (`mode` includes the file type); returns 0 or the errno.
pub fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) -> i32 {
    let c = cpath(p);
    // SAFETY: valid string.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } == 0 {
        0
    } else {
        errno()
    }
}

/// utimensat(2) on the object itself (AT_SYMLINK_NOFOLLOW); times are (seconds, nanoseconds),
/// and a nanosecond value of libc::UTIME_OMIT leaves that time alone. Returns 0 or the errno.
pub fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> i32 {
    let c = cpath(p);
    // SAFETY: all-zero timespecs are valid; the fields are set below.
    let mut ts: [libc::timespec; 2] = unsafe { std::mem::zeroed() };
    ts[0].tv_sec = atime.0;
    ts[0].tv_nsec = atime.1;
    ts[1].tv_sec = mtime.0;
    ts[1].tv_nsec = mtime.1;
    // SAFETY: valid string and a pointer to two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

/// lsetxattr(2); returns 0 or the errno.
pub fn lsetxattr(p: &Path, name: &str, value: &[u8]) -> i32 {
    rc(rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty()))
}

/// Calls `get` with a growing buffer until the value fits (ERANGE: it grew meanwhile).
fn sized(mut get: impl FnMut(&mut Vec<u8>) -> rustix::io::Result<usize>) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; 256];
    loop {
        match get(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e == rustix::io::Errno::RANGE && buf.len() <= 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e.raw_os_error()),
        }
    }
}

/// lgetxattr(2): the whole value of xattr `name`.
pub fn lgetxattr(p: &Path, name: &[u8]) -> Result<Vec<u8>, i32> {
    let name = CString::new(name).map_err(|_| libc::EINVAL)?;
    sized(|buf| rustix::fs::lgetxattr(p, name.as_c_str(), buf.as_mut_slice()))
}

/// name_to_handle_at(2) of `p` (not following a final symlink), with `flags` (`AT_HANDLE_FID`):
/// the handle's type and bytes. A raw call: rustix has no file-handle calls.
pub fn file_handle(p: &Path, flags: i32) -> Result<(i32, Vec<u8>), i32> {
    const MAX: usize = 128;
    // `struct file_handle`: handle_bytes, handle_type, then the handle (4-byte aligned).
    let mut buf = vec![0u32; 2 + MAX / 4];
    buf[0] = MAX as u32;
    let mut mount_id: libc::c_int = 0;
    let path = cpath(p);
    // SAFETY: `buf` is an aligned `struct file_handle` with room for MAX bytes of handle;
    // `path` is NUL-terminated; `mount_id` is ours.
    let r = unsafe { libc::name_to_handle_at(libc::AT_FDCWD, path.as_ptr(), buf.as_mut_ptr().cast(), &mut mount_id, flags) };
    if r != 0 {
        return Err(errno());
    }
    let len = (buf[0] as usize).min(MAX);
    let bytes: Vec<u8> = buf[2..].iter().flat_map(|w| w.to_ne_bytes()).take(len).collect();
    Ok((buf[1] as i32, bytes))
}

/// open_by_handle_at(2): opens the object of handle `ty`/`bytes` (from [`file_handle`]) on
/// the filesystem of `mount_dir`, with `flags`. A raw call, as [`file_handle`].
pub fn open_by_handle(mount_dir: &Path, ty: i32, bytes: &[u8], flags: i32) -> Result<OwnedFd, i32> {
    let mount = rustix::fs::open(mount_dir, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY, rustix::fs::Mode::empty())
        .map_err(|e| e.raw_os_error())?;
    let mut buf = vec![0u32; 2 + bytes.len().div_ceil(4)];
    buf[0] = bytes.len() as u32;
    buf[1] = ty as u32;
    // SAFETY: the words after the header have room for `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf[2..].as_mut_ptr().cast::<u8>(), bytes.len()) };
    // SAFETY: `buf` is an aligned `struct file_handle` holding `bytes.len()` bytes of handle;
    // `mount` is an open descriptor.
    let fd = unsafe { libc::open_by_handle_at(mount.as_raw_fd(), buf.as_mut_ptr().cast(), flags) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: a new descriptor, ours alone.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// llistxattr(2): the xattr names of the object itself, in the order the filesystem gave them.
pub fn llistxattr(p: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let list = sized(|buf| rustix::fs::llistxattr(p, buf.as_mut_slice()))?;
    Ok(list.split(|b| *b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect())
}

/// A user namespace with the given id maps, held by a child process that waits until this is
/// dropped; `fd` refers to it (for `MOUNT_ATTR_IDMAP`).
pub struct UserNs {
    pub fd: i32,
    pid: i32,
    release: i32,
}

impl UserNs {
    /// `map` is one "inside outside count" line, for both the uid and the gid map.
    pub fn new(map: &str) -> Result<Self, String> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe2: {}", errno_name(errno())));
        }
        // SAFETY: the child makes only async-signal-safe syscalls and ends in _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                let mut byte = 0u8;
                // Only the parent's end keeps the pipe open (or the read below never ends).
                libc::close(fds[1]);
                if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    // Until the parent closes its end.
                    libc::read(fds[0], (&raw mut byte).cast(), 1);
                }
                libc::_exit(0);
            }
        }
        // SAFETY: the child has its own copy of the read end.
        unsafe { libc::close(fds[0]) };
        let mut ns = Self { fd: -1, pid, release: fds[1] };
        if pid < 0 {
            return Err(format!("fork: {}", errno_name(errno())));
        }
        write_id_maps(pid, map)?;
        let p = cstr(&format!("/proc/{pid}/ns/user"));
        // SAFETY: valid string.
        ns.fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if ns.fd < 0 {
            return Err(format!("opening the namespace: {}", errno_name(errno())));
        }
        Ok(ns)
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        // SAFETY: our descriptors and our child.
        unsafe {
            if self.fd >= 0 {
                libc::close(self.fd);
            }
            libc::close(self.release);
            if self.pid > 0 {
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Waits until process `pid` is in a user namespace of its own, then writes `map` (lines of
/// "inside outside count") as its uid and gid maps, as newuidmap would.
pub fn write_id_maps(pid: i32, map: &str) -> Result<(), String> {
    let mine = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    loop {
        match std::fs::read_link(format!("/proc/{pid}/ns/user")) {
            Ok(ns) if ns != mine => break,
            Ok(_) => {}
            Err(e) => return Err(format!("process {pid} went away before its maps were written: {e}")),
        }
        if start.elapsed().as_secs() > 30 {
            return Err(format!("process {pid} made no user namespace in 30 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{f}"), format!("{map}\n")).map_err(|e| format!("writing /proc/{pid}/{f}: {e}"))?;
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Bind-mounts `src` at `dst` as an idmapped mount with the maps of `ns` (what util-linux's
/// `mount --bind -o X-mount.idmap=` does): open_tree, mount_setattr, move_mount. rustix has
/// no mount_setattr: that one is a raw system call.
pub fn idmapped_bind(src: &Path, dst: &Path, ns: &UserNs) -> Result<(), String> {
    use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let tree = open_tree(rustix::fs::CWD, src, OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC)
        .map_err(|e| format!("open_tree {}: {}", src.display(), errno_name(e.raw_os_error())))?;
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: ns.fd as u64 };
    let empty = cstr("");
    // SAFETY: `tree` is the detached tree; `attr` is a valid mount_attr of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(format!("mount_setattr(MOUNT_ATTR_IDMAP) on {}: {}", src.display(), errno_name(errno())));
    }
    move_mount(&tree, "", rustix::fs::CWD, dst, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| format!("move_mount to {}: {}", dst.display(), errno_name(e.raw_os_error())))
}

/// Sets this thread's file system ids until dropped (then back to root's).
pub struct FsIds;

impl FsIds {
    pub fn set(uid: u32, gid: u32) -> Self {
        // SAFETY: plain syscalls on this thread's credentials (glibc's setfsuid is per thread).
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
        FsIds
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as above; root's ids (the tests run as root) bring the capabilities back.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}
