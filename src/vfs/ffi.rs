// SPDX-License-Identifier: GPL-2.0

//! Declarations of C functions that `kernel::bindings` does not provide: the
//! helpers of `glue.c` and exported VFS functions from headers that the
//! kernel's bindings do not include.

use kernel::bindings;
use kernel::prelude::*;

#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn unionrs_register(owner: *mut bindings::module) -> c_int;
    pub(crate) fn unionrs_unregister();
    pub(crate) fn unionrs_fc_log(fc: *mut bindings::fs_context, level: c_char, msg: *const c_char);
    pub(crate) fn unionrs_fc_is_reconfigure(fc: *mut bindings::fs_context) -> bool;
    pub(crate) fn unionrs_fc_oldapi(fc: *mut bindings::fs_context) -> bool;
    pub(crate) fn unionrs_kern_path(
        name: *const c_char,
        follow: bool,
        path: *mut bindings::path,
    ) -> c_int;
    pub(crate) fn unionrs_sb_set_rdonly(sb: *mut bindings::super_block);
    pub(crate) fn unionrs_mnt_is_readonly(mnt: *mut bindings::vfsmount) -> bool;
    pub(crate) fn unionrs_copy_attr_all(dest: *mut bindings::inode, src: *const bindings::inode);
    pub(crate) fn unionrs_set_file_aops(inode: *mut bindings::inode);
    pub(crate) fn unionrs_seq_show_option(
        m: *mut bindings::seq_file,
        name: *const c_char,
        value: *const c_char,
    );
}

#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn unionrs_prepare_mounter_creds() -> *mut bindings::cred;
    pub(crate) fn unionrs_override_creds(cred: *const bindings::cred) -> *const bindings::cred;
    pub(crate) fn unionrs_revert_creds(old: *const bindings::cred);
    pub(crate) fn unionrs_lookup_one(
        mnt: *mut bindings::vfsmount,
        name: *const c_char,
        len: c_int,
        base: *mut bindings::dentry,
    ) -> *mut bindings::dentry;
    pub(crate) fn unionrs_clone_layer_mount(
        path: *const bindings::path,
        readonly: bool,
    ) -> *mut bindings::vfsmount;
    pub(crate) fn unionrs_mnt_idmap(mnt: *mut bindings::vfsmount) -> *mut bindings::mnt_idmap;
    pub(crate) fn unionrs_statfs(
        real: *const bindings::path,
        buf: *mut bindings::kstatfs,
        magic: c_long,
    ) -> c_int;
    pub(crate) fn unionrs_inode_is_new(inode: *mut bindings::inode) -> bool;
    pub(crate) fn unionrs_backing_open(
        user_file: *mut bindings::file,
        real: *const bindings::path,
        cred: *const bindings::cred,
    ) -> *mut bindings::file;
    pub(crate) fn unionrs_backing_read_iter(
        real: *mut bindings::file,
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
        cred: *const bindings::cred,
    ) -> isize;
    pub(crate) fn unionrs_backing_splice_read(
        real: *mut bindings::file,
        input: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        pipe: *mut bindings::pipe_inode_info,
        len: usize,
        flags: c_uint,
        cred: *const bindings::cred,
    ) -> isize;
    pub(crate) fn unionrs_backing_mmap(
        real: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
        cred: *const bindings::cred,
    ) -> c_int;
    pub(crate) fn unionrs_file_llseek(
        file: *mut bindings::file,
        real: *mut bindings::file,
        offset: bindings::loff_t,
        whence: c_int,
    ) -> bindings::loff_t;
}

#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn unionrs_parent_ino(dentry: *mut bindings::dentry) -> u64;
    pub(crate) fn unionrs_capable_sys_admin() -> bool;
    pub(crate) fn unionrs_sb_set_posixacl(sb: *mut bindings::super_block);
    pub(crate) fn unionrs_get_inode_acl(
        real: *mut bindings::inode,
        ty: c_int,
    ) -> *mut bindings::posix_acl;
    pub(crate) fn unionrs_get_acl(
        mnt: *mut bindings::vfsmount,
        real: *mut bindings::dentry,
        ty: c_int,
    ) -> *mut bindings::posix_acl;
}

// Writes to the upper layer (glue.c).
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn unionrs_create_real(
        mnt: *mut bindings::vfsmount,
        parent: *mut bindings::dentry,
        name: *const c_char,
        len: c_int,
        mode: bindings::umode_t,
        rdev: bindings::dev_t,
        link: *const c_char,
        hardlink: *mut bindings::dentry,
    ) -> *mut bindings::dentry;
    pub(crate) fn unionrs_remove_real(
        mnt: *mut bindings::vfsmount,
        parent: *mut bindings::dentry,
        child: *mut bindings::dentry,
    ) -> c_int;
    pub(crate) fn unionrs_rename_real(
        mnt: *mut bindings::vfsmount,
        old_parent: *mut bindings::dentry,
        old: *mut bindings::dentry,
        old_name: *const c_char,
        old_len: c_int,
        new_parent: *mut bindings::dentry,
        new: *mut bindings::dentry,
        new_name: *const c_char,
        new_len: c_int,
        flags: c_uint,
        expect_old: *mut bindings::inode,
        expect_new: *mut bindings::inode,
        new_negative: bool,
        replaced: *mut *mut bindings::dentry,
    ) -> c_int;
    pub(crate) fn unionrs_setxattr_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        name: *const c_char,
        value: *const c_void,
        size: usize,
        flags: c_int,
    ) -> c_int;
    pub(crate) fn unionrs_removexattr_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        name: *const c_char,
    ) -> c_int;
    pub(crate) fn unionrs_setattr_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        attr: *mut bindings::iattr,
    ) -> c_int;
    pub(crate) fn unionrs_copy_attrs_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        st: *const bindings::kstat,
    ) -> c_int;
    pub(crate) fn unionrs_getattr_real(p: *const bindings::path, st: *mut bindings::kstat)
        -> c_int;
    pub(crate) fn unionrs_copy_xattrs_real(
        from: *const bindings::path,
        mnt: *mut bindings::vfsmount,
        to: *mut bindings::dentry,
        skip_prefix: *const c_char,
    ) -> c_int;
    pub(crate) fn unionrs_copy_data_real(
        from: *const bindings::path,
        to: *const bindings::path,
        len: bindings::loff_t,
    ) -> c_int;
    pub(crate) fn unionrs_readlink_real(d: *mut bindings::dentry) -> *mut c_char;
    pub(crate) fn unionrs_creator_begin(
        mounter: *const bindings::cred,
        dir: *mut bindings::inode,
    ) -> *const bindings::cred;
    pub(crate) fn unionrs_creator_end(old: *const bindings::cred);
    pub(crate) fn unionrs_backing_write_iter(
        real: *mut bindings::file,
        iocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
        cred: *const bindings::cred,
    ) -> isize;
    pub(crate) fn unionrs_backing_splice_write(
        real: *mut bindings::file,
        pipe: *mut bindings::pipe_inode_info,
        out: *mut bindings::file,
        ppos: *mut bindings::loff_t,
        len: usize,
        flags: c_uint,
        cred: *const bindings::cred,
    ) -> isize;
    pub(crate) fn unionrs_fallocate_real(
        file: *mut bindings::file,
        real: *mut bindings::file,
        mode: c_int,
        offset: bindings::loff_t,
        len: bindings::loff_t,
        cred: *const bindings::cred,
    ) -> c_long;
    pub(crate) fn unionrs_fsync_file(
        real: *mut bindings::file,
        start: bindings::loff_t,
        end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int;
    pub(crate) fn unionrs_d_drop(d: *mut bindings::dentry);
    pub(crate) fn unionrs_d_instantiate(d: *mut bindings::dentry, inode: *mut bindings::inode);
    pub(crate) fn unionrs_dget_parent(d: *mut bindings::dentry) -> *mut bindings::dentry;
    pub(crate) fn unionrs_dentry_name(
        d: *mut bindings::dentry,
        buf: *mut c_char,
        size: c_int,
    ) -> c_int;
    pub(crate) fn unionrs_copy_attr(dest: *mut bindings::inode, src: *mut bindings::inode);
    pub(crate) fn unionrs_is_whiteout_dentry(d: *mut bindings::dentry) -> bool;
    pub(crate) fn unionrs_inuse_trylock(d: *mut bindings::dentry) -> bool;
    pub(crate) fn unionrs_inuse_unlock(d: *mut bindings::dentry);
    pub(crate) fn unionrs_is_our_sb(sb: *mut bindings::super_block) -> bool;
    pub(crate) fn unionrs_backing_tmpfile(
        user_file: *mut bindings::file,
        parent: *const bindings::path,
        mode: bindings::umode_t,
    ) -> *mut bindings::file;
    pub(crate) fn unionrs_tmpfile_finish(
        file: *mut bindings::file,
        inode: *mut bindings::inode,
    ) -> c_int;
    pub(crate) fn unionrs_file_opened(file: *mut bindings::file) -> bool;
    pub(crate) fn unionrs_uuid_gen(out: *mut u8);
    pub(crate) fn unionrs_d_unhashed(d: *mut bindings::dentry) -> bool;
    pub(crate) fn unionrs_remove_name(
        mnt: *mut bindings::vfsmount,
        parent: *mut bindings::dentry,
        name: *const c_char,
        len: c_int,
        expect: *mut bindings::inode,
    ) -> c_int;
    pub(crate) fn unionrs_set_times_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        st: *const bindings::kstat,
    ) -> c_int;
    pub(crate) fn unionrs_sb_set_uuid(sb: *mut bindings::super_block, uuid: *const u8);
    pub(crate) fn unionrs_set_acl_real(
        mnt: *mut bindings::vfsmount,
        d: *mut bindings::dentry,
        ty: c_int,
        acl: *mut bindings::posix_acl,
    ) -> c_int;
}
