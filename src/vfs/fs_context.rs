// SPDX-License-Identifier: GPL-2.0

//! Mount contexts (`struct fs_context`) and their parameters.

use super::bindings as cb;
use super::path::Path;
use core::fmt;
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::{CStrExt, CString};
use kernel::types::Opaque;

/// A mount context: what `fsopen()`/`mount()` is building or reconfiguring.
///
/// # Invariants
///
/// The wrapped context is valid for the lifetime of the reference: the VFS keeps it alive during
/// every callback we receive it in.
#[repr(transparent)]
pub(crate) struct FsContext(Opaque<cb::fs_context>);

impl FsContext {
    /// Borrows a C mount context.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut cb::fs_context) -> &'a FsContext {
        // SAFETY: `FsContext` is `repr(transparent)`; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    fn log(&self, level: u8, args: fmt::Arguments<'_>) {
        let fallback = c"(message lost: out of memory)";
        let msg = CString::try_from_fmt(args);
        let text: &CStr = match &msg {
            Ok(m) => m,
            Err(_) => fallback,
        };
        // SAFETY: `self` is valid; `log.log` is set when the context is made (`fsopen()`).
        let has_log = unsafe { !(*self.0.get()).log.log.is_null() };
        // Anyone may mount from a user namespace: such mounts get a rate-limited share of the
        // kernel log, so that a loop of bad mounts cannot flood it. `logfc` prints to the
        // kernel log itself (without a limit) when the context has no log (`mount(2)`).
        let privileged = super::cred::caller_is_sys_admin();
        if has_log || privileged {
            // SAFETY: `self` is valid and `text` is NUL-terminated; `logfc` copies it.
            unsafe { cb::unionrs_fc_log(self.0.get(), level, text.as_char_ptr()) };
        }
        // An `fsopen()` user's messages go to the kernel log too, so that the log tells what
        // happened to every mount.
        // SAFETY: no preconditions.
        if (has_log || !privileged) && (privileged || unsafe { cb::unionrs_log_ratelimit() }) {
            let text = super::show(text);
            match level {
                b'e' => pr_err!("{}\n", text),
                b'w' => pr_warn!("{}\n", text),
                _ => pr_info!("{}\n", text),
            }
        }
    }

    /// Reports an error to whoever mounts (`fsopen()` log, or the kernel log for `mount(2)`)
    /// and returns `err`, so that callers can write `return Err(fc.fail(EINVAL, ...))`.
    pub(crate) fn fail(&self, err: Error, args: fmt::Arguments<'_>) -> Error {
        self.log(b'e', args);
        err
    }

    /// Reports a note to whoever mounts.
    pub(crate) fn info(&self, args: fmt::Arguments<'_>) {
        self.log(b'i', args);
    }

    /// Reports a warning to whoever mounts.
    pub(crate) fn warn(&self, args: fmt::Arguments<'_>) {
        self.log(b'w', args);
    }

    /// Whether the calling task is in the user namespace the context was created in (an
    /// `fsopen()` descriptor can be handed to a task in another one).
    pub(crate) fn is_callers_user_ns(&self) -> bool {
        // SAFETY: `self` is valid; `user_ns` is set when the context is made.
        super::cred::caller_user_ns_is(unsafe { (*self.0.get()).user_ns })
    }

    /// Whether the calling task's user namespace is the context's or one below it (who may
    /// hand the union its credentials with `override_creds`).
    pub(crate) fn caller_is_within_user_ns(&self) -> bool {
        // SAFETY: `self` is valid; `user_ns` is set when the context is made.
        super::cred::caller_in_user_ns(unsafe { (*self.0.get()).user_ns })
    }

    /// Whether this context reconfigures an existing mount (remount).
    pub(crate) fn is_reconfigure(&self) -> bool {
        // SAFETY: `self` is valid; `purpose` is set when the context is made.
        let purpose = unsafe { (*self.0.get()).purpose() };
        purpose == cb::FS_CONTEXT_FOR_RECONFIGURE
    }

    /// Whether the options came through the legacy `mount(2)` string.
    pub(crate) fn is_legacy_mount(&self) -> bool {
        // SAFETY: `self` is valid; `oldapi` is set before any parameter is parsed.
        unsafe { (*self.0.get()).oldapi() }
    }
}

/// The value of one mount parameter, after the C parameter table checked its type.
pub(crate) enum ParamValue<'a> {
    /// A flag or an enum (the number is in [`Param::number`]).
    None,
    /// A string, as given.
    String(&'a CStr),
    /// An open directory passed by file descriptor (`fsconfig(FSCONFIG_SET_FD)`).
    File(Path),
}

/// One parsed mount parameter.
pub(crate) struct Param<'a> {
    /// The option number from the C parameter table (`UNIONRS_OPT_*` of `helpers.h`).
    pub(crate) opt: i32,
    pub(crate) value: ParamValue<'a>,
    /// The value of an enum option; for a flag, 0 in its `no` form (`nooverride_creds`),
    /// else 1.
    pub(crate) number: u32,
}

impl<'a> Param<'a> {
    /// Builds a parameter from what the C parser passes.
    ///
    /// # Safety
    ///
    /// `string`, if non-NULL, must be a NUL-terminated string valid for `'a`; `file`, if
    /// non-NULL, must be an open file.
    pub(crate) unsafe fn from_raw(
        opt: i32,
        string: *const c_char,
        file: *mut bindings::file,
        number: u32,
    ) -> Self {
        let value = if !string.is_null() {
            // SAFETY: the caller promises a valid string for `'a`.
            ParamValue::String(unsafe { CStr::from_char_ptr(string) })
        } else if !file.is_null() {
            // SAFETY: the caller promises an open file.
            ParamValue::File(unsafe { Path::from_file(file) })
        } else {
            ParamValue::None
        };
        Self { opt, value, number }
    }
}
