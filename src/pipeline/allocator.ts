// Streaming a large object allocates and frees thousands of 64 KiB-1 MiB buffers. With glibc's
// default thresholds the freed memory goes back to the kernel almost at once and the next buffers
// fault their pages in again: measured on a 2-vCPU VM, 1.75 s of CPU per GiB of 1 MiB buffers, and
// about a fifth of a whole files backup. glibc raises its thresholds by itself when an mmap-ed
// chunk of up to 32 MiB is freed (mmap threshold := its size, trim threshold := twice that), so one
// large short-lived buffer tunes the allocator for the rest of the process: 0.08 s per GiB after it.
// Other allocators (musl, jemalloc) merely see one transient allocation.

/** Just under glibc's largest dynamic mmap threshold (32 MiB): freed memory is then kept up to 2 x 24 MiB per arena. */
const PRIMING_BYTES = 24 * 1024 * 1024;

let primed = false;

/**
 * Makes glibc keep freed buffer memory for reuse instead of returning it at once. Idempotent; takes
 * effect when the garbage collector frees the priming buffer, which streaming makes happen soon.
 */
export function primeAllocatorForStreaming(): void {
  if (primed) return;
  primed = true;
  // Zero-filled (calloc), so mmap-ed and never touched: it costs address space, not memory.
  const priming = new ArrayBuffer(PRIMING_BYTES);
  void priming.byteLength;
}
