//! The C allocator's settings for the training loop.
//!
//! A GRPO update allocates and frees the same large tensors every step: the logits
//! (50 MB for 256 completion tokens of SmolLM2), the tied embedding's gradient (113
//! MB), every activation and its gradient. glibc serves an allocation above its mmap
//! threshold (at most 32 MiB) with a fresh mapping and gives it back on free, and
//! trims the heap's free top, so each step faulted its memory in page by page again
//! (2.3 million page faults in 6 steps of the TRL bench's settings, a fifth of the
//! process's CPU time in the kernel). With mappings off and the trim threshold at
//! its maximum, freed memory stays in the heap for the next step: 1.2 million faults,
//! the update 4.5 → 4.1 s, peak RSS +70 MB. The settings hold for the process; only
//! the training commands set them.

/// Keeps freed memory in the heap: no fresh mappings for large blocks, no trimming.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocation parameters; both are valid
    // options and values (glibc falls back to a mapping if the heap cannot grow).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}
