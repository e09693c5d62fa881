// Data augmentation for NHWC batches: random translation (zero-pad by P, crop back at a random
// offset, i.e. shift by dy, dx ∈ [−P, P]) and random horizontal flip, the kind of augmentation the
// NIN paper's 8.81 % on CIFAR-10 used. The paper gives no shift; training uses P = 4 (the maxout
// paper's pylearn2 script shifts up to 8: `pad_randomized: 8`). Run it after preprocessing: the
// zero padding then means "the mean input". Labels are not touched (each image keeps its position).
import type { Rng } from './rng.ts';

export interface AugmentOptions {
  /** Maximum shift in pixels (P); 0 disables translation. */
  pad?: number;
  /** Mirror left–right with probability 1/2. */
  flip?: boolean;
}

export interface BatchDims {
  count: number;
  height: number;
  width: number;
  channels: number;
}

/** The transformation drawn for each image, for logging and tests. */
export interface AugmentRecord {
  /** Row shift: output(y, x) = input(y − dy, …). */
  dy: Int32Array;
  dx: Int32Array;
  flipped: Uint8Array;
}

/**
 * Writes an augmented copy of `src` into `out` (a new array by default; must not alias `src`).
 * Random draws per image, in order: dy, dx (only if pad > 0), flip (only if flip). So the same
 * seed, options and batch always give the same result.
 */
export function augmentBatch(src: Float32Array, dims: BatchDims, opts: AugmentOptions, rng: Rng, out?: Float32Array, record?: AugmentRecord): Float32Array {
  const { count, height: H, width: W, channels: C } = dims;
  const per = H * W * C;
  if (src.length !== count * per) throw new RangeError(`augmentBatch: ${src.length} values, expected ${count}×${H}×${W}×${C} = ${count * per}`);
  const dst = out ?? new Float32Array(src.length);
  if (dst.length !== src.length) throw new RangeError(`augmentBatch: output has ${dst.length} values, input ${src.length}`);
  if (dst.buffer === src.buffer && dst.byteOffset < src.byteOffset + src.byteLength && src.byteOffset < dst.byteOffset + dst.byteLength) {
    throw new RangeError('augmentBatch: output must not overlap the input');
  }
  const P = opts.pad ?? 0;
  if (!Number.isInteger(P) || P < 0 || P >= Math.min(H, W)) throw new RangeError(`augmentBatch: pad ${P} must be an integer in 0..${Math.min(H, W) - 1}`);
  for (let i = 0; i < count; i++) {
    const dy = P > 0 ? rng.nextInt(2 * P + 1) - P : 0;
    const dx = P > 0 ? rng.nextInt(2 * P + 1) - P : 0;
    const flip = opts.flip ? rng.nextUint32() >>> 31 === 1 : false;
    if (record) {
      record.dy[i] = dy;
      record.dx[i] = dx;
      record.flipped[i] = flip ? 1 : 0;
    }
    shiftFlipImage(src, dst, i * per, H, W, C, dy, dx, flip);
  }
  return dst;
}

/** A fresh record for `count` images. */
export function augmentRecord(count: number): AugmentRecord {
  return { dy: new Int32Array(count), dx: new Int32Array(count), flipped: new Uint8Array(count) };
}

/**
 * One image: out(y, x) = in(y − dy, x' − dx) with x' = W−1−x when flipped (flip applied to the
 * shifted image), zero where the source falls outside the image.
 */
export function shiftFlipImage(src: Float32Array, dst: Float32Array, offset: number, H: number, W: number, C: number, dy: number, dx: number, flip: boolean): void {
  const row = W * C;
  for (let y = 0; y < H; y++) {
    const sy = y - dy;
    const d = offset + y * row;
    if (sy < 0 || sy >= H) {
      dst.fill(0, d, d + row);
      continue;
    }
    const s = offset + sy * row;
    if (!flip) {
      // Contiguous run of valid source columns, zeros either side.
      const x0 = Math.max(0, dx);
      const x1 = Math.min(W, W + dx);
      dst.fill(0, d, d + x0 * C);
      dst.set(src.subarray(s + (x0 - dx) * C, s + (x1 - dx) * C), d + x0 * C);
      dst.fill(0, d + x1 * C, d + row);
      continue;
    }
    for (let x = 0; x < W; x++) {
      const sx = W - 1 - x - dx;
      const o = d + x * C;
      if (sx < 0 || sx >= W) {
        for (let c = 0; c < C; c++) dst[o + c] = 0;
      } else {
        const si = s + sx * C;
        for (let c = 0; c < C; c++) dst[o + c] = src[si + c];
      }
    }
  }
}
