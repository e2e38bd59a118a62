// SPDX-License-Identifier: GPL-2.0

//! The C declarations the module uses beyond `kernel::bindings`: generated at build time by
//! `scripts/gen-bindings` from `helpers.h` (exported kernel functions of headers the kernel's
//! bindings leave out, the C helpers, the Rust hooks the C tables call, and the constants
//! shared with C). Nothing here is written by hand.

#[allow(
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    clippy::all,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks
)]
// bindgen's bitfield accessors transmute (rustc warns since 1.88), as in `kernel::bindings`.
#[cfg_attr(not(CONFIG_RUSTC_HAS_UNNECESSARY_TRANSMUTES), allow(unknown_lints))]
#[allow(unnecessary_transmutes)]
mod generated {
    include!("bindings_generated.rs");
}

pub(crate) use generated::*;
