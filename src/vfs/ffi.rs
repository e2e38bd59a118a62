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
    pub(crate) fn unionrs_seq_show_option(
        m: *mut bindings::seq_file,
        name: *const c_char,
        value: *const c_char,
    );
}

