//! Signals. Ctrl-C for the REPL: a SIGINT handler that sets [`kiln_interp::INTERRUPT`], which running
//! kernels poll (the interpreter at every block, native code on every loop back-edge, the
//! runtime between the pieces of an array operation), so a runaway loop stops with
//! "interrupted" and the session and its variables survive.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

/// Installs the handler (once; later calls do nothing). On platforms without POSIX signals
/// Ctrl-C keeps its default meaning.
pub fn install_handler() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" fn on_sigint(_: libc::c_int) {
                // Only an atomic store: async-signal-safe.
                kiln_interp::INTERRUPT.store(true, Ordering::Relaxed);
            }
            let handler: extern "C" fn(libc::c_int) = on_sigint;
            // SAFETY: the handler only stores to an atomic; `signal` with a valid function
            // pointer has no other precondition.
            unsafe {
                libc::signal(libc::SIGINT, handler as libc::sighandler_t);
            }
        });
    }
}

/// Gives SIGPIPE its default action back (Rust ignores it, so that a write to a closed pipe
/// returns an error): `kiln run s.kl | head -2` then ends quietly when `head` is done, as
/// Unix tools do, instead of failing to print its error to the closed pipe (which panicked).
/// For the `kiln` command only; a library must not change a process's signals.
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with `SIG_DFL` has no precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Clears a pending interrupt before the next computation.
pub fn clear() {
    kiln_interp::INTERRUPT.store(false, Ordering::Relaxed);
}

/// Asks running kernels to stop, as Ctrl-C does (for tests and embedders).
pub fn request() {
    kiln_interp::INTERRUPT.store(true, Ordering::Relaxed);
}
