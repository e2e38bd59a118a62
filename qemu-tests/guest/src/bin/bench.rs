//! The benchmark workloads' inner loops (driven by scripts/bench-guest.sh inside the guest).
//!
//! Each timing command prepares everything it can first (path strings, buffers), then times
//! only the system calls and prints `seconds=<t>` (churn prints one line per phase). It checks
//! what it saw (entry counts, bytes read) and exits non-zero when the filesystem misbehaved, so a
//! fast wrong answer never counts as a result. The generators write the layers: file names are
//! a function of (directory, index), so the timing commands need no list files.
//!
//!   bench gen-tree ROOT DIRS PER_DIR LAYER NLAYERS   tree layer (LAYER=all: every file)
//!   bench stat-tree ROOT DIRS PER_DIR                lstat every directory and file
//!   bench gen-flat DIR N LAYER NLAYERS               one big directory's layer share
//!   bench readdir DIR EXPECTED                       getdents64 the whole directory
//!   bench gen-files DIR N SIZE                       N files of SIZE bytes (1000 per subdir)
//!   bench read-files DIR N SIZE                      open+read+close each of them
//!   bench append-files DIR N                         append one byte to each of them
//!   bench gen-big FILE MIB                           one file of pseudo-random data
//!   bench verify-big FILE                            check gen-big's data as read back (untimed)
//!   bench append FILE                                append one byte
//!   bench churn DIR N                                create, rename, unlink N files

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::process::exit;
use std::time::Instant;

fn die(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    exit(1)
}

fn num(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| die(&format!("not a number: {s}")))
}

fn c(p: &str) -> CString {
    CString::new(p).unwrap_or_else(|_| die("path with NUL"))
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Which layer of NLAYERS holds file `i`: its own share (i mod NLAYERS), and the bottom layer
/// also holds every tenth file, shadowed by the copy above, so lookups must stop at the first hit.
fn in_layer(i: usize, layer: &str, nlayers: usize) -> bool {
    if layer == "all" {
        return true;
    }
    let l = num(layer);
    i % nlayers == l || (l == nlayers - 1 && i % 10 == 0)
}

fn tree_dir(root: &str, d: usize) -> String {
    format!("{root}/d{d:04}")
}

fn tree_file(root: &str, d: usize, i: usize) -> String {
    format!("{root}/d{d:04}/f{i:05}")
}

fn mkdirs(p: &str) {
    fs::create_dir_all(p).unwrap_or_else(|e| die(&format!("mkdir {p}: {e}")));
}

fn write_file(p: &str, data: &[u8]) {
    fs::write(p, data).unwrap_or_else(|e| die(&format!("write {p}: {e}")));
}

fn report(start: Instant) {
    println!("seconds={:.6}", start.elapsed().as_secs_f64());
}

fn gen_tree(root: &str, dirs: usize, per_dir: usize, layer: &str, nlayers: usize) {
    for d in 0..dirs {
        mkdirs(&tree_dir(root, d));
        for i in 0..per_dir {
            if in_layer(d * per_dir + i, layer, nlayers) {
                write_file(&tree_file(root, d, i), b"");
            }
        }
    }
}

fn stat_tree(root: &str, dirs: usize, per_dir: usize) {
    let mut paths = Vec::with_capacity(dirs * (per_dir + 1));
    for d in 0..dirs {
        paths.push(c(&tree_dir(root, d)));
        for i in 0..per_dir {
            paths.push(c(&tree_file(root, d, i)));
        }
    }
    // SAFETY: a plain C struct, filled by lstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let start = Instant::now();
    for p in &paths {
        // SAFETY: p is NUL-terminated, st is writable.
        if unsafe { libc::lstat(p.as_ptr(), &mut st) } != 0 {
            die(&format!("lstat {:?}: {}", p, errno()));
        }
    }
    report(start);
}

fn gen_flat(dir: &str, n: usize, layer: &str, nlayers: usize) {
    mkdirs(dir);
    for i in 0..n {
        if in_layer(i, layer, nlayers) {
            write_file(&format!("{dir}/entry-{i:07}"), b"");
        }
    }
}

fn readdir(dir: &str, expected: usize) {
    let mut buf = vec![0u8; 1 << 20];
    let path = c(dir);
    let start = Instant::now();
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if fd < 0 {
        die(&format!("open {dir}: {}", errno()));
    }
    let mut count = 0usize;
    loop {
        // SAFETY: buf is writable for its length; fd is an open directory.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            die(&format!("getdents64 {dir}: {}", errno()));
        }
        if n == 0 {
            break;
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                count += 1;
            }
            off += reclen;
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    report(start);
    if count != expected {
        die(&format!("readdir {dir}: {count} entries, expected {expected}"));
    }
}

fn small_file(dir: &str, i: usize) -> String {
    format!("{dir}/s{:03}/f{i:06}", i / 1000)
}

/// Deterministic, incompressible-looking bytes (xorshift), so no layer can cheat with zeros.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn gen_files(dir: &str, n: usize, size: usize) {
    let mut buf = vec![0u8; size];
    for i in 0..n {
        if i % 1000 == 0 {
            mkdirs(&format!("{dir}/s{:03}", i / 1000));
        }
        fill(&mut buf, i as u64 + 1);
        write_file(&small_file(dir, i), &buf);
    }
}

fn read_files(dir: &str, n: usize, size: usize) {
    let paths: Vec<CString> = (0..n).map(|i| c(&small_file(dir, i))).collect();
    let mut buf = vec![0u8; size + 4096];
    let mut total = 0usize;
    let start = Instant::now();
    for p in &paths {
        // SAFETY: p is NUL-terminated.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            die(&format!("open {:?}: {}", p, errno()));
        }
        // SAFETY: buf is writable for its length.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            die(&format!("read {:?}: {}", p, errno()));
        }
        total += r as usize;
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    }
    report(start);
    if total < n * size {
        die(&format!("read {total} bytes, expected at least {}", n * size));
    }
}

fn append_one(p: &CString) {
    // SAFETY: p is NUL-terminated.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_APPEND) };
    if fd < 0 {
        die(&format!("open {:?}: {}", p, errno()));
    }
    // SAFETY: one byte from a static buffer.
    if unsafe { libc::write(fd, b"+".as_ptr().cast(), 1) } != 1 {
        die(&format!("append {:?}: {}", p, errno()));
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

fn append_files(dir: &str, n: usize) {
    let paths: Vec<CString> = (0..n).map(|i| c(&small_file(dir, i))).collect();
    let start = Instant::now();
    for p in &paths {
        append_one(p);
    }
    report(start);
}

fn gen_big(file: &str, mib: usize) {
    let mut f = fs::File::create(file).unwrap_or_else(|e| die(&format!("create {file}: {e}")));
    let mut buf = vec![0u8; 1 << 20];
    for m in 0..mib {
        fill(&mut buf, 0x9e37_79b9 + m as u64);
        f.write_all(&buf).unwrap_or_else(|e| die(&format!("write {file}: {e}")));
    }
    f.sync_all().unwrap_or_else(|e| die(&format!("fsync {file}: {e}")));
}

fn open_ro(file: &str) -> (i32, usize) {
    let p = c(file);
    // SAFETY: p is NUL-terminated.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        die(&format!("open {file}: {}", errno()));
    }
    // SAFETY: an all-zero stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is ours, st is writable.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        die(&format!("fstat {file}: {}", errno()));
    }
    (fd, st.st_size as usize)
}

fn pread_full(fd: i32, buf: &mut [u8], off: usize, file: &str) -> usize {
    // SAFETY: buf is writable for its length; fd is open.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
    if r < 0 {
        die(&format!("pread {file} at {off}: {}", errno()));
    }
    r as usize
}

/// Checks a gen-big file as read back (untimed; fio does the timed reads): its size, and the
/// first word of every MiB against what gen-big wrote there.
fn verify_big(file: &str) {
    let (fd, size) = open_ro(file);
    let mut buf = vec![0u8; 1 << 20];
    let mut want = [0u8; 8];
    let mut off = 0usize;
    loop {
        let n = pread_full(fd, &mut buf, off, file);
        if n == 0 {
            break;
        }
        if n >= 8 && off % (1 << 20) == 0 {
            fill(&mut want, 0x9e37_79b9 + (off >> 20) as u64);
            if buf[..8] != want {
                die(&format!("{file}: wrong data at {off}"));
            }
        }
        off += n;
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if off != size {
        die(&format!("{file}: read {off} bytes of {size}"));
    }
}

fn churn(dir: &str, n: usize) {
    mkdirs(dir);
    let a: Vec<CString> = (0..n).map(|i| c(&format!("{dir}/new-{i:07}"))).collect();
    let b: Vec<CString> = (0..n).map(|i| c(&format!("{dir}/renamed-{i:07}"))).collect();
    let start = Instant::now();
    for p in &a {
        // SAFETY: p is NUL-terminated.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o644) };
        if fd < 0 {
            die(&format!("create {:?}: {}", p, errno()));
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
    }
    println!("create={:.6}", start.elapsed().as_secs_f64());
    let start = Instant::now();
    for (p, q) in a.iter().zip(&b) {
        // SAFETY: both NUL-terminated.
        if unsafe { libc::rename(p.as_ptr(), q.as_ptr()) } != 0 {
            die(&format!("rename {:?}: {}", p, errno()));
        }
    }
    println!("rename={:.6}", start.elapsed().as_secs_f64());
    let start = Instant::now();
    for q in &b {
        // SAFETY: NUL-terminated.
        if unsafe { libc::unlink(q.as_ptr()) } != 0 {
            die(&format!("unlink {:?}: {}", q, errno()));
        }
    }
    println!("unlink={:.6}", start.elapsed().as_secs_f64());
    match fs::read_dir(dir) {
        Ok(mut d) => {
            if d.next().is_some() {
                die(&format!("{dir} not empty after unlinking everything"));
            }
        }
        Err(e) => die(&format!("readdir {dir}: {e}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["gen-tree", root, dirs, per, layer, nl] => gen_tree(root, num(dirs), num(per), layer, num(nl)),
        ["stat-tree", root, dirs, per] => stat_tree(root, num(dirs), num(per)),
        ["gen-flat", dir, n, layer, nl] => gen_flat(dir, num(n), layer, num(nl)),
        ["readdir", dir, expected] => readdir(dir, num(expected)),
        ["gen-files", dir, n, size] => gen_files(dir, num(n), num(size)),
        ["read-files", dir, n, size] => read_files(dir, num(n), num(size)),
        ["append-files", dir, n] => append_files(dir, num(n)),
        ["gen-big", file, mib] => gen_big(file, num(mib)),
        ["verify-big", file] => verify_big(file),
        ["append", file] => {
            let p = c(file);
            let start = Instant::now();
            append_one(&p);
            report(start);
        }
        ["churn", dir, n] => churn(dir, num(n)),
        _ => die("usage: see the top of qemu-tests/guest/src/bin/bench.rs"),
    }
}
