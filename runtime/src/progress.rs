//! How far the current array operation has come, for progress bars: the runtime counts the
//! elements it has finished (one atomic add per segment, so the cost is nil), and a front
//! end such as the REPL reads the counters from another thread. Process-wide: meaningful
//! when one operation runs at a time, as at the REPL.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static DONE: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

/// An operation over `total` elements starts.
pub fn begin(total: usize) {
    DONE.store(0, Relaxed);
    TOTAL.store(total, Relaxed);
}

/// `n` more elements are done.
pub fn advance(n: usize) {
    DONE.fetch_add(n, Relaxed);
}

/// `(done, total)` of the latest operation (`total` 0: none with a known size yet).
pub fn snapshot() -> (usize, usize) {
    (DONE.load(Relaxed), TOTAL.load(Relaxed))
}
