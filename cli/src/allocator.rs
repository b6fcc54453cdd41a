//! Memory allocator settings for training. A training step allocates and frees many tensors of
//! megabytes each. glibc's allocator serves blocks above its mmap threshold with fresh pages from
//! the kernel and returns them on free, so every step pays page faults and page zeroing again;
//! raising the threshold to its maximum and never trimming the heap keeps those pages for reuse.
//! Measured with `pixelcnn bench` on this project's 2-core machine: about 10% off a training
//! step. Peak memory is unchanged: the heap keeps what the step needed at its peak.
//!
//! `pixelcnn serve` does without it: a server runs for long and should give back what a burst
//! of draws took.
//!
//! This belongs to the `pixelcnn` program, not to the library: it changes the allocator of the
//! whole process, which only the program that owns the process should decide. (The benchmarks
//! of `benches/model.rs` include this file too, to measure what the program runs.)

/// Keeps freed memory in the process for reuse (glibc only; elsewhere nothing changes).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's largest mmap threshold on 64-bit targets.
        const MMAP_THRESHOLD_MAX: libc::c_int = 32 * 1024 * 1024;
        // SAFETY: mallopt only changes allocator parameters; it is called before any threads
        // start and takes no pointers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
