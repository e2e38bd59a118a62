//! Scratch directories for the tests: a private tmpfs per test, unmounted on drop.

use crate::sys;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Scratch {
    pub root: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Scratch {
    /// A fresh tmpfs at /tmp/unionrs-tests/<name>.
    pub fn new(name: &str) -> Self {
        let root = PathBuf::from("/tmp/unionrs-tests").join(name);
        let _ = fs::create_dir_all(&root);
        let rc = sys::mount("scratch", &root, "tmpfs", 0, "mode=0755");
        assert_eq!(rc, 0, "mounting scratch tmpfs at {}", root.display());
        Self { root, mounts: vec![] }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Creates directory `rel` (and parents) and returns its path.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("mkdir in scratch");
        p
    }

    pub fn file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir in scratch");
        }
        fs::write(&p, content).expect("write in scratch");
        p
    }

    /// Mounts another tmpfs (a different filesystem) at `rel`.
    pub fn other_fs(&mut self, rel: &str) -> PathBuf {
        let p = self.dir(rel);
        assert_eq!(sys::mount("scratch2", &p, "tmpfs", 0, "mode=0755"), 0);
        self.mounts.push(p.clone());
        p
    }

    /// Remembers a mount made by a test, so that it is undone even if the test fails.
    pub fn track(&mut self, p: &Path) {
        self.mounts.push(p.to_path_buf());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            while sys::umount(m) == 0 {}
        }
        while sys::umount(&self.root) == 0 {}
        let _ = fs::remove_dir(&self.root);
    }
}
