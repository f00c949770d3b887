//! A counting global allocator: live heap bytes, live allocations, and live allocations by
//! exact size (up to 4 KiB). It counts only after [`enable`], which only the held-locks
//! child processes call, so the latency workloads pay one relaxed load per allocation.
//!
//! It explains where memory per held lock goes: the live allocations a lock adds, by size,
//! next to `size_of` of the types that could be them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);
const MAX_TRACKED: usize = 4096;
/// Live allocations by requested size; the last slot counts everything larger.
static BY_SIZE: [AtomicI64; MAX_TRACKED + 1] = [const { AtomicI64::new(0) }; MAX_TRACKED + 1];
/// Live bytes in allocations of `MAX_TRACKED` bytes or more (hash tables, vectors).
static LARGE_BYTES: AtomicI64 = AtomicI64::new(0);

pub fn enable() {
    ENABLED.store(true, Relaxed);
}

fn add(size: usize, sign: i64) {
    LIVE_BYTES.fetch_add(sign * size as i64, Relaxed);
    LIVE_ALLOCS.fetch_add(sign, Relaxed);
    BY_SIZE[size.min(MAX_TRACKED)].fetch_add(sign, Relaxed);
    if size >= MAX_TRACKED {
        LARGE_BYTES.fetch_add(sign * size as i64, Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters have no effect on the
// memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && ENABLED.load(Relaxed) {
            add(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && ENABLED.load(Relaxed) {
            add(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if ENABLED.load(Relaxed) {
            add(layout.size(), -1);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() && ENABLED.load(Relaxed) {
            add(layout.size(), -1);
            add(new_size, 1);
        }
        p
    }
}

/// The counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub live_bytes: i64,
    pub live_allocs: i64,
    pub by_size: Vec<i64>,
    pub large_bytes: i64,
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        live_bytes: LIVE_BYTES.load(Relaxed),
        live_allocs: LIVE_ALLOCS.load(Relaxed),
        by_size: BY_SIZE.iter().map(|c| c.load(Relaxed)).collect(),
        large_bytes: LARGE_BYTES.load(Relaxed),
    }
}

impl Snapshot {
    /// The sizes whose live bytes grew most from `before` to `self`, as
    /// `(size, added count, added bytes)`, most bytes first. Size `MAX_TRACKED` stands for
    /// every larger allocation (its count can stay flat while a table is reallocated larger;
    /// its bytes are exact).
    pub fn grown_since(&self, before: &Snapshot, top: usize) -> Vec<(usize, i64, i64)> {
        let mut grown: Vec<(usize, i64, i64)> = self
            .by_size
            .iter()
            .zip(&before.by_size)
            .enumerate()
            .map(|(size, (a, b))| {
                let bytes = if size == MAX_TRACKED {
                    self.large_bytes - before.large_bytes
                } else {
                    size as i64 * (a - b)
                };
                (size, a - b, bytes)
            })
            .filter(|(_, _, bytes)| *bytes > 0)
            .collect();
        grown.sort_by_key(|(_, _, bytes)| std::cmp::Reverse(*bytes));
        grown.truncate(top);
        grown
    }
}
