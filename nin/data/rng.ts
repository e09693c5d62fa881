// Seeded pseudo-random numbers for everything on the CPU that must be reproducible: weight
// initialisation, validation splits, per-epoch shuffles and augmentation. One generator per purpose, each seeded
// by `deriveSeed(seed, ...stream)`, so e.g. epoch 7's shuffle does not depend on how many random
// numbers augmentation happened to draw in epochs 0..6.

/** Mixes a base seed and any number of stream ids (epoch, purpose…) into one 32-bit seed. */
export function deriveSeed(seed: number, ...stream: number[]): number {
  let h = splitmix32(seed >>> 0);
  for (const s of stream) h = splitmix32((h ^ Math.imul(s >>> 0, 0x9e3779b9)) >>> 0);
  return h;
}

function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** xoshiro128** (Blackman & Vigna): small state, good statistical quality, 32-bit outputs. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // Expand the seed with splitmix32 so that nearby seeds give unrelated streams (and the state is never all zero).
    let x = seed >>> 0;
    const next = (): number => (x = splitmix32(x));
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`Rng.nextInt: bound ${n} must be an integer in [1, 2^32]`);
    const limit = 4294967296 - (4294967296 % n);
    let v: number;
    do v = this.nextUint32();
    while (v >= limit);
    return v % n;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A seeded random permutation of 0..n-1. */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return new Rng(seed).shuffle(p);
}

/** n seeded normal numbers N(0, std²) (Box–Muller on Rng). */
export function gaussian(n: number, seed: number, std: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.nextFloat())); // 1 − u ∈ (0, 1]: no log(0)
    const th = 2 * Math.PI * rng.nextFloat();
    out[i] = std * r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = std * r * Math.sin(th);
  }
  return out;
}
