//! Thin, checked wrappers over the system calls the tests use.

use std::ffi::CString;
use std::io;
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

/// mount(2); returns 0 or the errno.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> i32 {
    let (s, t, f, d) = (cstr(source), cpath(target), cstr(fstype), cstr(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

pub fn umount(target: &Path) -> i32 {
    let t = cpath(target);
    // SAFETY: valid string.
    if unsafe { libc::umount2(t.as_ptr(), 0) } == 0 {
        0
    } else {
        errno()
    }
}

/// A mount context from fsopen(2), for the new mount API and its error messages.
pub struct FsContext {
    fd: i32,
}

pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_SET_FD: u32 = 5;
pub const FSCONFIG_CMD_CREATE: u32 = 6;

impl FsContext {
    pub fn open(fstype: &str) -> Result<Self, i32> {
        let f = cstr(fstype);
        // SAFETY: valid string; fsopen returns an fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, f.as_ptr(), libc::FSOPEN_CLOEXEC) } as i32;
        if fd < 0 {
            Err(errno())
        } else {
            Ok(Self { fd })
        }
    }

    /// fsconfig(2); returns 0 or the errno.
    pub fn config(&self, cmd: u32, key: Option<&str>, value: Option<&str>, aux: i32) -> i32 {
        let k = key.map(cstr);
        let v = value.map(cstr);
        let kp = k.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
        let vp = v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: pointers are NULL or valid strings.
        let r = unsafe { libc::syscall(libc::SYS_fsconfig, self.fd, cmd, kp, vp, aux) };
        if r == 0 {
            0
        } else {
            errno()
        }
    }

    /// Sets `key` (=`value`) as `mount -o key=value` would.
    pub fn set(&self, key: &str, value: Option<&str>) -> i32 {
        match value {
            Some(v) => self.config(FSCONFIG_SET_STRING, Some(key), Some(v), 0),
            None => self.config(FSCONFIG_SET_FLAG, Some(key), None, 0),
        }
    }

    pub fn create(&self) -> i32 {
        self.config(FSCONFIG_CMD_CREATE, None, None, 0)
    }

    /// Drains the messages the filesystem logged to this context.
    pub fn messages(&self) -> String {
        let mut out = String::new();
        let mut buf = [0u8; 1024];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
            out.push('\n');
        }
        out
    }
}

impl Drop for FsContext {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
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

pub fn load_module(path: &str) -> i32 {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    let params = cstr("");
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
    let (c, n) = (cpath(p), cstr(name));
    // SAFETY: valid strings; value is valid for its length.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

/// lgetxattr(2): the whole value of xattr `name`.
pub fn lgetxattr(p: &Path, name: &[u8]) -> Result<Vec<u8>, i32> {
    let c = cpath(p);
    let n = CString::new(name).map_err(|_| libc::EINVAL)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid strings; buf is valid for its length.
        let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf);
        }
        let e = errno();
        if e != libc::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len() * 4;
        buf.resize(len, 0);
    }
}

/// llistxattr(2): the xattr names of the object itself, in the order the filesystem gave them.
pub fn llistxattr(p: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let c = cpath(p);
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: valid string; buf is valid for its length.
        let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf.split(|b| *b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect());
        }
        let e = errno();
        if e != libc::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len() * 4;
        buf.resize(len, 0);
    }
}
