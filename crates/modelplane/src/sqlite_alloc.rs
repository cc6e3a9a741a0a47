//! SQLite's own allocations through mimalloc. The bundled SQLite calls the
//! C library's `malloc` for every value it binds, every record it builds and
//! every page it caches; glibc's malloc took about a quarter of the SQLite
//! thread's time writing usage records. SQLite supports a replacement
//! allocator (`SQLITE_CONFIG_MALLOC`) set before it first initialises.
//! The functions are the C callbacks SQLite calls, hence `unsafe` here.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use libsqlite3_sys as ffi;

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    // SAFETY: mimalloc's malloc; SQLite never asks for a negative size.
    unsafe { libmimalloc_sys::mi_malloc(usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    // SAFETY: `p` came from `x_malloc` or `x_realloc` (or is null).
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SAFETY: `p` came from `x_malloc` or `x_realloc`.
    unsafe { libmimalloc_sys::mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from `x_malloc` or `x_realloc`.
    let size = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    n
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Routes SQLite's allocations to mimalloc. Call it first thing in `main`,
/// before anything opens a database; later it changes nothing (SQLite
/// refuses the setting once initialised) and says so with `false`.
pub fn use_mimalloc() -> bool {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC reads the methods table and keeps its
    // own copy before returning; before SQLite initialises it takes it,
    // after it answers MISUSE and changes nothing.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &methods as *const ffi::sqlite3_mem_methods,
        )
    };
    rc == ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callbacks_allocate_report_size_and_grow_keeping_the_bytes() {
        // SAFETY: the callbacks as SQLite uses them, on memory they returned.
        unsafe {
            let p = x_malloc(24).cast::<u8>();
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0, "SQLite needs 8-byte alignment");
            assert!(x_size(p.cast()) >= 24);
            for i in 0..24 {
                *p.add(i) = i as u8;
            }
            let q = x_realloc(p.cast(), 4096).cast::<u8>();
            assert!(x_size(q.cast()) >= 4096);
            assert_eq!(
                std::slice::from_raw_parts(q, 24),
                (0..24).collect::<Vec<u8>>()
            );
            x_free(q.cast());
            x_free(std::ptr::null_mut());
            assert_eq!(x_roundup(100), 100);
        }
    }
}
