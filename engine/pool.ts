// Buffer pool: GPU buffers are expensive to create, and a training step allocates the same sizes
// every time, so freed buffers are kept by size class and handed out again (to a tensor of their
// class, or of a class down to half theirs).
//
// Reuse is safe without waiting for the GPU: WebGPU executes a queue's commands in order, so a
// dispatch that writes a recycled buffer runs after every earlier dispatch that read it.

export interface PoolStats {
  /** Bytes in buffers handed out and not yet released. */
  liveBytes: number;
  /** Bytes in buffers kept for reuse. */
  pooledBytes: number;
  /** Buffers created on the device (each a real allocation). */
  allocations: number;
  /** Acquisitions served from the pool. */
  reuses: number;
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  /** The most bytes handed out at once, since the pool was made or resetPeaks(). */
  peakLiveBytes: number;
  /** The most bytes held on the device at once (handed out and kept for reuse), likewise. */
  peakHeldBytes: number;
}

const USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

/** Rounds up to the next of 2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k (≤ 25 % waste), at least 256 bytes. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75]) {
    const c = p * f;
    if (c >= bytes) return c;
  }
  return 2 * p;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private classOf = new WeakMap<GPUBuffer, number>();
  readonly stats: PoolStats = { liveBytes: 0, pooledBytes: 0, allocations: 0, reuses: 0, liveBuffers: 0, peakLiveBytes: 0, peakHeldBytes: 0 };
  /** Buffers the device failed to allocate (discard()): dropped when released, never handed out again. */
  private failed = new WeakSet<GPUBuffer>();
  /**
   * Tests (runtime.ts setOutOfBoundsGuard): above 0, every buffer handed out is a new one, at least
   * this many bytes longer than asked for and filled with NaN, so what lies past a tensor's end is NaN
   * (except a buffer whose size class passes maxBufferSize: made at its exact size, with no guard).
   */
  guardBytes = 0;
  /** The buffers handed out while guardBytes > 0, each with the bytes asked for (runtime.ts writesPastTheEnd). */
  guarded: { buffer: GPUBuffer; bytes: number }[] = [];

  /** `create` makes a buffer on the device (runtime.ts watches each for the device running out of memory). */
  constructor(private create: (descriptor: GPUBufferDescriptor) => GPUBuffer, private maxBufferSize: number) {}

  acquire(bytes: number): GPUBuffer {
    const guard = this.guardBytes;
    let size = sizeClass(bytes + guard);
    if (size > this.maxBufferSize) size = Math.ceil(bytes / 4) * 4; // exact size near the device limit
    // Its own class first, else the smallest idle buffer up to twice its size (a binding is the
    // tensor's size, not the buffer's): the backward's gradients take what the forward freed. The
    // CIFAR-10 NIN at batch 128 held 739 MiB with it, 784 without (lavapipe; 523 MiB in tensors at once).
    let buf: GPUBuffer | undefined;
    if (!guard) {
      for (let c = size; c <= 2 * size && !buf; c = sizeClass(c + 1)) {
        buf = this.free.get(c)?.pop();
        if (buf) size = c;
      }
    }
    if (buf) {
      this.stats.pooledBytes -= size;
      this.stats.reuses++;
    } else {
      buf = this.create({ size, usage: USAGE, mappedAtCreation: guard > 0 });
      if (guard) {
        new Float32Array(buf.getMappedRange()).fill(NaN);
        buf.unmap();
        this.guarded.push({ buffer: buf, bytes });
      }
      this.classOf.set(buf, size);
      this.stats.allocations++;
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    this.stats.peakHeldBytes = Math.max(this.stats.peakHeldBytes, this.stats.liveBytes + this.stats.pooledBytes);
    return buf;
  }

  /** Starts the peaks afresh from what is held now (a training run's own peak, in a process that ran others). */
  resetPeaks(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
    this.stats.peakHeldBytes = this.stats.liveBytes + this.stats.pooledBytes;
  }

  /** A buffer the device failed to allocate: out of the free lists now, or dropped when released. */
  discard(buf: GPUBuffer): void {
    this.failed.add(buf);
    const size = this.classOf.get(buf);
    const list = size === undefined ? undefined : this.free.get(size);
    const at = list?.indexOf(buf) ?? -1;
    if (at >= 0) {
      list!.splice(at, 1);
      this.stats.pooledBytes -= size!;
    }
  }

  /** Destroys every buffer kept for reuse (the live ones stay); returns the bytes freed. The
   * caller must have submitted every recorded command that uses them (runtime.ts trimPool). */
  trim(): number {
    const freed = this.stats.pooledBytes;
    const destroyed = new Set<GPUBuffer>();
    for (const list of this.free.values()) for (const buf of list) { buf.destroy(); destroyed.add(buf); }
    this.guarded = this.guarded.filter((g) => !destroyed.has(g.buffer));
    this.free.clear();
    this.stats.pooledBytes = 0;
    return freed;
  }

  release(buf: GPUBuffer): void {
    const size = this.classOf.get(buf);
    if (size === undefined) throw new Error('BufferPool.release: buffer was not acquired from this pool');
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    if (this.failed.has(buf)) {
      buf.destroy();
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.stats.pooledBytes += size;
  }
}
