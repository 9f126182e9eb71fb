//! [`lock`], the one way the VMM takes a mutex.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the value over from a thread that panicked while
/// holding it (the VM then ends anyway; its state stays readable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
