// Plain numeric helpers shared by tests and benches (no test-runner imports, so benches can use them).

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/** ||a − b|| / ||b|| (b is the reference). */
export function relErrNorm(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErrNorm: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

/** Picks up to `count` distinct indices of [0, n), always including the first and last. */
export function sampleIndices(n: number, count: number, seed: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const r = randomArray(count, seed, 0, n);
  const set = new Set<number>([0, n - 1]);
  for (const v of r) if (set.size < count) set.add(Math.floor(v));
  return [...set].sort((a, b) => a - b);
}

export function pick(a: ArrayLike<number>, idx: number[]): number[] {
  return idx.map((i) => a[i]);
}

/** The median (mean of the two middle values for an even count); every bench reports these. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
