// Streaming a large object allocates and frees thousands of 64 KiB-1 MiB buffers. With glibc's
// default thresholds the freed memory goes back to the kernel almost at once and the next buffers
// fault their pages in again: measured on a 2-vCPU VM, 1.75 s of CPU per GiB of 1 MiB buffers, and
// about a fifth of a whole files backup. glibc raises its thresholds by itself when an mmap-ed
// chunk of up to 32 MiB is freed (mmap threshold := its size, trim threshold := twice that), so one
// large short-lived buffer tunes the allocator for the rest of the process: 0.08 s per GiB after it.
// Other allocators (musl, jemalloc) merely see one transient allocation.
//
// V8 counts ArrayBuffer memory toward the limit that starts its next full collection. While a
// backup streams, the JS heap is small (~14 MB) and allocates little, so V8 sets that limit barely
// above it (a growing factor of 1.1): a full collection every few tens of MB of buffers, 60-70
// during a 1 GB backup, 1.2-2 s of CPU (marking, mostly on helper threads) out of 12 on a 2-vCPU VM.
// With a factor of 5 there were 2, and peak RSS was no higher (the buffers die young: scavenges
// free them).

import { setFlagsFromString } from 'node:v8';

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

/** Heap limit after a full collection: live size x (1 + this / 100), i.e. 5x; V8's own factors go from 1.1 to 4. */
const HEAP_GROWING_PERCENT = 400;

let tuned = false;

/**
 * Prepares the process for streaming object data: allocator priming, and fewer full garbage
 * collections. For the commands that stream (backup, restore, verify, drill); a long-lived process
 * (serve, daemon) keeps V8's defaults. Idempotent.
 */
export function prepareForStreaming(): void {
  primeAllocatorForStreaming();
  if (tuned) return;
  tuned = true;
  // Read by V8 each time it sets the next limit, so it takes effect from the next collection on.
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
