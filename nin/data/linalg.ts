// Dense float64 linear algebra for preprocessing statistics (ZCA): a blocked Gram-matrix
// accumulator and a symmetric eigen-decomposition (Householder tridiagonalisation + implicit QL,
// after EISPACK tred2/tql2 as in JAMA).
//
// Layout: matrices are row-major Float64Arrays. For speed in JavaScript, every inner loop walks
// memory contiguously: the eigenvector matrix is kept transposed (eigenvector j is row j), so the
// QL rotations touch two contiguous rows instead of two strided columns.

/**
 * Accumulates G = Σ (x − offset)(x − offset)ᵀ over rows x of length `dim`, in float64.
 * Rows are gathered into a transposed chunk (dims × GRAM_CHUNK) so that each G entry is a
 * contiguous dot product, computed in 4×2 register tiles over the upper triangle.
 */
export class GramAccumulator {
  /** dim rounded up to a multiple of 4 (padding rows stay zero). */
  readonly padded: number;
  private readonly acc: Float64Array;
  private readonly chunk: Float64Array;
  /** Rows added so far. */
  count = 0;

  constructor(readonly dim: number) {
    if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`GramAccumulator: dimension ${dim} must be a positive integer`);
    this.padded = Math.ceil(dim / 4) * 4;
    this.acc = new Float64Array(this.padded * this.padded);
    this.chunk = new Float64Array(this.padded * GRAM_CHUNK);
  }

  /** Adds `rows` rows of `data` (row-major, `dim` per row), each minus `offset` if given. */
  add(data: ArrayLike<number>, rows: number, offset?: ArrayLike<number>): void {
    if (data.length < rows * this.dim) throw new RangeError(`GramAccumulator.add: ${rows} rows of ${this.dim} need ${rows * this.dim} values, got ${data.length}`);
    accumulateGramRows(data, 0, rows, this.dim, offset ?? null, this.acc, this.chunk, GRAM_CHUNK);
    this.count += rows;
  }

  /** Adds a partial result computed elsewhere (e.g. by a worker) on the same padded layout. */
  addPartial(acc: Float64Array, rows: number): void {
    if (acc.length !== this.acc.length) throw new RangeError(`GramAccumulator.addPartial: ${acc.length} values, expected ${this.acc.length}`);
    for (let i = 0; i < acc.length; i++) this.acc[i] += acc[i];
    this.count += rows;
  }

  /** The full symmetric dim×dim result (a new array), optionally scaled (e.g. 1/N for a covariance). */
  result(scale = 1): Float64Array {
    const { dim, padded: P, acc } = this;
    const out = new Float64Array(dim * dim);
    for (let i = 0; i < dim; i++) {
      for (let j = i; j < dim; j++) {
        const v = acc[i * P + j] * scale;
        out[i * dim + j] = v;
        out[j * dim + i] = v;
      }
    }
    return out;
  }
}

/** Rows per transposed chunk: 64 rows × 3072 dims × 8 B = 1.5 MiB, about one L2. */
export const GRAM_CHUNK = 64;

/**
 * The Gram kernel: adds Σ (x − offset)(x − offset)ᵀ over rows [begin, end) of `data` to the upper
 * triangle of `acc` (P×P, P = dim rounded up to 4; entries below the diagonal are scratch).
 * `chunk` is scratch of P·CH doubles. Self-contained (no outside references) because worker
 * threads run it from its source text (see parallel.ts).
 */
export function accumulateGramRows(
  data: ArrayLike<number>,
  begin: number,
  end: number,
  dim: number,
  offset: ArrayLike<number> | null,
  acc: Float64Array,
  chunk: Float64Array,
  CH: number,
): void {
  const P = Math.ceil(dim / 4) * 4;
  chunk.fill(0);
  let filled = 0;
  for (let r = begin; r <= end; r++) {
    if (r < end) {
      const base = r * dim;
      if (offset) for (let i = 0; i < dim; i++) chunk[i * CH + filled] = data[base + i] - offset[i];
      else for (let i = 0; i < dim; i++) chunk[i * CH + filled] = data[base + i];
      filled++;
      if (filled < CH) continue;
    }
    const K = filled;
    if (K === 0) break;
    const t = chunk;
    for (let i = 0; i < P; i += 4) {
      const a0 = i * CH;
      const a1 = a0 + CH;
      const a2 = a1 + CH;
      const a3 = a2 + CH;
      for (let j = i; j < P; j += 2) {
        const b0 = j * CH;
        const b1 = b0 + CH;
        let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
        for (let k = 0; k < K; k++) {
          const x0 = t[b0 + k];
          const x1 = t[b1 + k];
          const y0 = t[a0 + k];
          c00 += y0 * x0;
          c01 += y0 * x1;
          const y1 = t[a1 + k];
          c10 += y1 * x0;
          c11 += y1 * x1;
          const y2 = t[a2 + k];
          c20 += y2 * x0;
          c21 += y2 * x1;
          const y3 = t[a3 + k];
          c30 += y3 * x0;
          c31 += y3 * x1;
        }
        const o = i * P + j;
        acc[o] += c00;
        acc[o + 1] += c01;
        acc[o + P] += c10;
        acc[o + P + 1] += c11;
        acc[o + 2 * P] += c20;
        acc[o + 2 * P + 1] += c21;
        acc[o + 3 * P] += c30;
        acc[o + 3 * P + 1] += c31;
      }
    }
    filled = 0;
  }
}

/**
 * y = (x − mean)·W for rows [begin, end) of `x` (dim features each; W symmetric, dim×dim), written
 * to `out` starting at row `outRow`. Four rows at a time in float64 scratch, each output feature a
 * dot product with row j of W, in 4×2 register tiles. Self-contained, like accumulateGramRows.
 */
export function whitenRows(
  x: ArrayLike<number>,
  begin: number,
  end: number,
  dim: number,
  mean: ArrayLike<number>,
  w: ArrayLike<number>,
  out: Float32Array,
  outRow: number,
): void {
  const xs = new Float64Array(4 * dim);
  const ys = new Float64Array(4 * dim);
  const x1 = dim;
  const x2 = 2 * dim;
  const x3 = 3 * dim;
  for (let s0 = begin; s0 < end; s0 += 4) {
    const rows = Math.min(4, end - s0);
    xs.fill(0);
    for (let r = 0; r < rows; r++) {
      const base = (s0 + r) * dim;
      for (let k = 0; k < dim; k++) xs[r * dim + k] = x[base + k] - mean[k];
    }
    let j = 0;
    for (; j + 1 < dim; j += 2) {
      const w0 = j * dim;
      const w1 = w0 + dim;
      let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
      for (let k = 0; k < dim; k++) {
        const a = w[w0 + k];
        const b = w[w1 + k];
        const v0 = xs[k];
        c00 += v0 * a;
        c01 += v0 * b;
        const v1 = xs[x1 + k];
        c10 += v1 * a;
        c11 += v1 * b;
        const v2 = xs[x2 + k];
        c20 += v2 * a;
        c21 += v2 * b;
        const v3 = xs[x3 + k];
        c30 += v3 * a;
        c31 += v3 * b;
      }
      ys[j] = c00;
      ys[j + 1] = c01;
      ys[x1 + j] = c10;
      ys[x1 + j + 1] = c11;
      ys[x2 + j] = c20;
      ys[x2 + j + 1] = c21;
      ys[x3 + j] = c30;
      ys[x3 + j + 1] = c31;
    }
    for (; j < dim; j++) {
      const w0 = j * dim;
      for (let r = 0; r < 4; r++) {
        let accum = 0;
        for (let k = 0; k < dim; k++) accum += xs[r * dim + k] * w[w0 + k];
        ys[r * dim + j] = accum;
      }
    }
    for (let r = 0; r < rows; r++) out.set(ys.subarray(r * dim, (r + 1) * dim), (outRow + s0 - begin + r) * dim);
  }
}

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /** n×n row-major; ROW j is the unit eigenvector of values[j]. */
  vectors: Float64Array;
}

/**
 * Eigen-decomposition of a real symmetric n×n matrix (row-major; only symmetry is assumed, both
 * triangles are read). O(n³): ~50 s for n = 3072 on one busy, shared core (parallelSymmetricEigen
 * moves two thirds of the work to worker threads). `overwrite` lets the routine reuse `matrix` as the
 * eigenvector storage (saves n² doubles).
 */
export function symmetricEigen(matrix: Float64Array, n: number, opts: { overwrite?: boolean } = {}): SymmetricEigen {
  checkSymmetricInput(matrix, n);
  const a = opts.overwrite ? matrix : matrix.slice();
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(a, n, d, e);
  tql2(a, n, d, e);
  return { values: d, vectors: a };
}

export function checkSymmetricInput(matrix: Float64Array, n: number): void {
  if (!Number.isInteger(n) || n <= 0 || matrix.length !== n * n) {
    throw new RangeError(`symmetricEigen: expected an ${n}×${n} matrix (${n * n} values), got ${matrix.length} values`);
  }
  for (let i = 0; i < matrix.length; i++) {
    if (!Number.isFinite(matrix[i])) throw new RangeError(`symmetricEigen: entry (${Math.floor(i / n)}, ${i % n}) is ${matrix[i]}`);
  }
}

// In the routines below, JAMA's V[r][c] is stored at a[c * n + r] (transposed).

/** Householder reduction to tridiagonal form; on return a holds the accumulated transformation. */
function tred2(a: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  tridiagonalize(a, n, d, e);
  accumulateReflectors(a, n, d);
  for (let j = 0; j < n; j++) {
    d[j] = a[j * n + n - 1];
    a[j * n + n - 1] = 0;
  }
  a[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/**
 * The reduction proper. On return: e[1..n) the subdiagonal, the tridiagonal's diagonal on a's
 * diagonal, and for each step i the Householder vector in row i, entries 0..i−1, with d[i] its h.
 */
function tridiagonalize(a: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < n; j++) d[j] = a[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = a[j * n + i - 1];
        a[j * n + i] = 0;
        a[i * n + j] = 0;
      }
    } else {
      // Householder vector (scaled to avoid under/overflow).
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      const f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      symmetricTimesVector(a, n, i, d, e);
      let ff = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        ff += e[j] * d[j];
      }
      const hh = ff / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      rank2Update(a, n, i, d, e);
    }
    d[i] = h;
  }
}

/**
 * e = A·u over the leading i×i block (u = d[0..i), A's triangle stored as row j, entries k ≥ j), and
 * stores u as row i. Two rows per pass, so e and d are loaded once for both.
 */
function symmetricTimesVector(a: Float64Array, n: number, i: number, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < i; j++) e[j] = 0;
  const ui = i * n;
  let j = 0;
  for (; j + 1 < i; j += 2) {
    const r0 = j * n;
    const r1 = r0 + n;
    const f0 = d[j];
    const f1 = d[j + 1];
    a[ui + j] = f0;
    a[ui + j + 1] = f1;
    const v01 = a[r0 + j + 1];
    let g0 = e[j] + a[r0 + j] * f0 + v01 * f1;
    let g1 = e[j + 1] + v01 * f0 + a[r1 + j + 1] * f1;
    for (let k = j + 2; k < i; k++) {
      const v0 = a[r0 + k];
      const v1 = a[r1 + k];
      const dk = d[k];
      g0 += v0 * dk;
      g1 += v1 * dk;
      e[k] += v0 * f0 + v1 * f1;
    }
    e[j] = g0;
    e[j + 1] = g1;
  }
  if (j < i) {
    // i is odd: the last row has only its diagonal entry left.
    const f = d[j];
    a[ui + j] = f;
    e[j] += a[j * n + j] * f;
  }
}

/** A −= u·qᵀ + q·uᵀ on the stored triangle (u = d, q = e), two rows per pass; then d ← row i−1. */
function rank2Update(a: Float64Array, n: number, i: number, d: Float64Array, e: Float64Array): void {
  let j = 0;
  for (; j + 1 < i; j += 2) {
    const r0 = j * n;
    const r1 = r0 + n;
    const f0 = d[j];
    const g0 = e[j];
    const f1 = d[j + 1];
    const g1 = e[j + 1];
    a[r0 + j] -= f0 * e[j] + g0 * d[j];
    for (let k = j + 1; k < i; k++) {
      const ek = e[k];
      const dk = d[k];
      a[r0 + k] -= f0 * ek + g0 * dk;
      a[r1 + k] -= f1 * ek + g1 * dk;
    }
    d[j] = a[r0 + i - 1];
    a[r0 + i] = 0;
    d[j + 1] = a[r1 + i - 1];
    a[r1 + i] = 0;
  }
  if (j < i) {
    const r0 = j * n;
    a[r0 + j] -= d[j] * e[j] + e[j] * d[j];
    d[j] = a[r0 + i - 1];
    a[r0 + i] = 0;
  }
}

const REFLECTOR_BLOCK = 4;

/**
 * Forms the orthogonal matrix of the reduction from the stored Householder vectors (row t+1 holds the
 * vector of step t, d[t+1] its h). EISPACK applies one reflector per pass over a growing block; here
 * REFLECTOR_BLOCK consecutive reflectors are applied per pass (compact-WY style: all dot products in
 * one sweep, then one combined update), which cuts the memory traffic that dominates for large n.
 */
function accumulateReflectors(a: Float64Array, n: number, d: Float64Array): void {
  const B = REFLECTOR_BLOCK;
  const Y = new Float64Array(B * n);
  const invH = new Float64Array(B);
  const G = new Float64Array(B * B);
  const p = new Float64Array(B);
  const w = new Float64Array(B);
  for (let i = 0; i < n - 1; i += B) {
    const b = Math.min(B, n - 1 - i);
    const size = i + b; // the block [0, size) × [0, size) the reflectors act on
    // Stash each new diagonal (EISPACK keeps it in column n−1) and make the new columns unit vectors.
    for (let q = 0; q < b; q++) {
      const t = i + q;
      a[t * n + n - 1] = a[t * n + t];
      a[t * n + t] = 1;
    }
    Y.fill(0);
    for (let q = 0; q < b; q++) {
      const t = i + q;
      const src = (t + 1) * n;
      const h = d[t + 1];
      invH[q] = h !== 0 ? 1 / h : 0;
      if (h !== 0) for (let k = 0; k <= t; k++) Y[q * n + k] = a[src + k];
      for (let k = 0; k <= t; k++) a[src + k] = 0;
    }
    for (let q = 0; q < b; q++) {
      for (let r = 0; r < q; r++) {
        let s = 0;
        for (let k = 0; k < size; k++) s += Y[q * n + k] * Y[r * n + k];
        G[q * B + r] = s;
      }
    }
    for (let j = 0; j < size; j++) {
      const row = j * n;
      if (b === 4) {
        let p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (let k = 0; k < size; k++) {
          const x = a[row + k];
          p0 += Y[k] * x;
          p1 += Y[n + k] * x;
          p2 += Y[2 * n + k] * x;
          p3 += Y[3 * n + k] * x;
        }
        const w0 = p0 * invH[0];
        const w1 = (p1 - w0 * G[B]) * invH[1];
        const w2 = (p2 - w0 * G[2 * B] - w1 * G[2 * B + 1]) * invH[2];
        const w3 = (p3 - w0 * G[3 * B] - w1 * G[3 * B + 1] - w2 * G[3 * B + 2]) * invH[3];
        for (let k = 0; k < size; k++) {
          a[row + k] -= w0 * Y[k] + w1 * Y[n + k] + w2 * Y[2 * n + k] + w3 * Y[3 * n + k];
        }
      } else {
        for (let q = 0; q < b; q++) {
          let s = 0;
          for (let k = 0; k < size; k++) s += Y[q * n + k] * a[row + k];
          p[q] = s;
        }
        for (let q = 0; q < b; q++) {
          let s = p[q];
          for (let r = 0; r < q; r++) s -= w[r] * G[q * B + r];
          w[q] = s * invH[q];
        }
        for (let q = 0; q < b; q++) {
          const wq = w[q];
          for (let k = 0; k < size; k++) a[row + k] -= wq * Y[q * n + k];
        }
      }
    }
  }
}

/** Rotations recorded before they are applied to the eigenvectors (16 MiB of cos/sin). */
const ROTATION_BATCH = 1 << 20;

/** Collects QL rotations and their sweeps (l, m) in application order. */
class RotationLog {
  cs: Float64Array;
  sn: Float64Array;
  sweeps: Int32Array;
  count = 0;
  sweepCount = 0;

  constructor(capacity: number) {
    this.cs = new Float64Array(capacity);
    this.sn = new Float64Array(capacity);
    this.sweeps = new Int32Array(1024);
  }

  get capacity(): number {
    return this.cs.length;
  }

  /** Slot of rotation i of a sweep (l, m) that starts now: rotations run i = m−1 down to l. */
  push(l: number, m: number): number {
    if (this.sweepCount * 2 + 2 > this.sweeps.length) {
      const grown = new Int32Array(this.sweeps.length * 2);
      grown.set(this.sweeps);
      this.sweeps = grown;
    }
    this.sweeps[2 * this.sweepCount] = l;
    this.sweeps[2 * this.sweepCount + 1] = m;
    this.sweepCount++;
    const base = this.count + m - 1;
    this.count += m - l;
    return base;
  }

  grow(minCapacity: number): void {
    const cap = Math.max(minCapacity, this.cs.length * 2);
    const cs = new Float64Array(cap);
    const sn = new Float64Array(cap);
    cs.set(this.cs.subarray(0, this.count));
    sn.set(this.sn.subarray(0, this.count));
    this.cs = cs;
    this.sn = sn;
  }

  clear(): void {
    this.count = 0;
    this.sweepCount = 0;
  }
}

/**
 * Symmetric tridiagonal QL with implicit shifts (tql2 without the vector updates): eigenvalues into
 * d (unsorted). The plane rotations are recorded in `log`; `full` is called when it has no room for
 * the next sweep, and must apply and clear it (or grow it).
 */
function tql2Values(n: number, d: Float64Array, e: Float64Array, log: RotationLog, full: (needed: number) => void): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error(`symmetricEigen: QL did not converge for eigenvalue ${l} after 60 iterations`);
        // Implicit shift.
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        // Implicit QL transformation: rotations (i, i+1) for i = m−1 down to l.
        if (log.count + (m - l) > log.capacity) full(m - l);
        const base = log.push(l, m); // rotation i goes to slot base − i
        const cs = log.cs;
        const sn = log.sn;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          cs[base - i] = c;
          sn[base - i] = s;
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/**
 * tql2: eigenvalues into d, eigenvectors into the rows of a (which holds the reduction's
 * transformation on entry). The eigenvalue iteration never reads the vectors, so rotations are
 * recorded and applied in batches (applyRotationsToColumns) instead of one full pass over the n×n
 * matrix per QL sweep.
 */
function tql2(a: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  const log = new RotationLog(Math.max(n, Math.min(ROTATION_BATCH, n * n))); // a sweep has < n rotations
  const flush = (): void => {
    applyRotationsToColumns(a, n, 0, n, log.sweeps, log.sweepCount, log.cs, log.sn);
    log.clear();
  };
  tql2Values(n, d, e, log, flush);
  flush();
  sortEigenpairs(a, n, d);
}

/** Sorts eigenvalues ascending, moving the eigenvector rows along (at most n row swaps). */
function sortEigenpairs(a: Float64Array, n: number, d: Float64Array): void {
  const tmp = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i];
    for (let j = i + 1; j < n; j++) {
      if (d[j] < p) {
        k = j;
        p = d[j];
      }
    }
    if (k !== i) {
      d[k] = d[i];
      d[i] = p;
      tmp.set(a.subarray(i * n, i * n + n));
      a.copyWithin(i * n, k * n, k * n + n);
      a.set(tmp, k * n);
    }
  }
}

/**
 * Applies recorded QL sweeps (sweeps[2s], sweeps[2s+1] = l, m; rotations in application order in
 * cs/sn) to columns [c0, c1) of the row-major n×n matrix a. A rotation of rows (i, i+1) acts on each
 * column independently, so columns are processed in blocks small enough for L2 (copied into a
 * contiguous buffer), each taking every recorded rotation: the matrix streams through memory once
 * per batch rather than once per sweep, and disjoint column ranges can go to different threads.
 * Self-contained apart from rotateColumns8 (worker threads run both from their source text).
 */
export function applyRotationsToColumns(
  a: Float64Array,
  n: number,
  c0: number,
  c1: number,
  sweeps: Int32Array,
  sweepCount: number,
  cs: Float64Array,
  sn: Float64Array,
): void {
  if (sweepCount === 0 || c1 <= c0) return;
  const CB = Math.max(8, Math.min(64, Math.floor(98304 / n) & ~7)); // ≈ 768 KiB per block
  const buf = new Float64Array(n * CB);
  for (let kb = c0; kb < c1; kb += CB) {
    const w = Math.min(CB, c1 - kb);
    for (let r = 0; r < n; r++) buf.set(a.subarray(r * n + kb, r * n + kb + w), r * CB);
    let first = 0;
    for (let sw = 0; sw < sweepCount; sw++) {
      const l = sweeps[2 * sw];
      const m = sweeps[2 * sw + 1];
      const base = first + m - 1;
      let col = 0;
      for (; col + 8 <= w; col += 8) rotateColumns8(buf, CB, col, l, m, base, cs, sn);
      for (; col < w; col++) {
        let x = buf[m * CB + col];
        for (let i = m - 1; i >= l; i--) {
          const c = cs[base - i];
          const s = sn[base - i];
          const r = i * CB + col;
          const v = buf[r];
          buf[r + CB] = s * v + c * x;
          x = c * v - s * x;
        }
        buf[l * CB + col] = x;
      }
      first += m - l;
    }
    for (let r = 0; r < n; r++) a.set(buf.subarray(r * CB, r * CB + w), r * n + kb);
  }
}

/** One sweep on 8 adjacent columns, carrying the running value of row i+1 in registers. */
export function rotateColumns8(buf: Float64Array, stride: number, c0: number, l: number, m: number, base: number, cs: Float64Array, sn: Float64Array): void {
  const top = m * stride + c0;
  let x0 = buf[top], x1 = buf[top + 1], x2 = buf[top + 2], x3 = buf[top + 3];
  let x4 = buf[top + 4], x5 = buf[top + 5], x6 = buf[top + 6], x7 = buf[top + 7];
  for (let i = m - 1; i >= l; i--) {
    const c = cs[base - i];
    const s = sn[base - i];
    const r = i * stride + c0;
    const o = r + stride;
    let v = buf[r];
    buf[o] = s * v + c * x0;
    x0 = c * v - s * x0;
    v = buf[r + 1];
    buf[o + 1] = s * v + c * x1;
    x1 = c * v - s * x1;
    v = buf[r + 2];
    buf[o + 2] = s * v + c * x2;
    x2 = c * v - s * x2;
    v = buf[r + 3];
    buf[o + 3] = s * v + c * x3;
    x3 = c * v - s * x3;
    v = buf[r + 4];
    buf[o + 4] = s * v + c * x4;
    x4 = c * v - s * x4;
    v = buf[r + 5];
    buf[o + 5] = s * v + c * x5;
    x5 = c * v - s * x5;
    v = buf[r + 6];
    buf[o + 6] = s * v + c * x6;
    x6 = c * v - s * x6;
    v = buf[r + 7];
    buf[o + 7] = s * v + c * x7;
    x7 = c * v - s * x7;
  }
  const bottom = l * stride + c0;
  buf[bottom] = x0;
  buf[bottom + 1] = x1;
  buf[bottom + 2] = x2;
  buf[bottom + 3] = x3;
  buf[bottom + 4] = x4;
  buf[bottom + 5] = x5;
  buf[bottom + 6] = x6;
  buf[bottom + 7] = x7;
}

// ---------------------------------------------------------------------------------------------
// Pieces of the decomposition for the worker-thread version (parallel.ts): the same arithmetic,
// split where the work is independent across rows or columns.

/**
 * Reduces a symmetric matrix (in place) to tridiagonal form. Returns the tridiagonal (d: diagonal,
 * e: subdiagonal with e[0] = 0) and 1/h of every reflector step (0 for skipped steps); the reflector
 * vectors stay in a's rows (see orthogonalRows).
 */
export function tridiagonalForm(a: Float64Array, n: number): { d: Float64Array; e: Float64Array; invH: Float64Array } {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(a, n, d, e);
  const invH = new Float64Array(n);
  for (let i = 0; i + 1 < n; i++) invH[i] = d[i + 1] !== 0 ? 1 / d[i + 1] : 0;
  for (let j = 0; j < n; j++) d[j] = a[j * n + j];
  e[0] = 0;
  return { d, e, invH };
}

/**
 * Rows [j0, j1) of the reduction's orthogonal matrix, into `out` (n×n, row j = H_{n−2}⋯H_j e_j;
 * the reflector of step i is row i+1 of `reduced`, entries 0..i, scaled by invH[i]). Each row only
 * needs the reflectors, not the other rows, so row ranges can go to different threads. Rows are
 * done 16 at a time (each reflector is streamed once per 16 rows), in tiles of 4 rows × 2
 * consecutive reflectors (compact-WY: both dot products in one sweep, then one combined update).
 * Self-contained (worker threads run it from its source text).
 */
export function orthogonalRows(reduced: Float64Array, invH: Float64Array, n: number, j0: number, j1: number, out: Float64Array): void {
  const BLOCK = 16;
  for (let b0 = j0; b0 < j1; b0 += BLOCK) {
    const b1 = Math.min(j1, b0 + BLOCK);
    for (let r = b0; r < b1; r++) {
      out.fill(0, r * n, (r + 1) * n);
      out[r * n + r] = 1;
    }
    let i = b0;
    // Pairs of reflectors (i, i+1). Rows > i+1 are unit vectors they leave alone; row i+1 is
    // e_{i+1}, which reflector i does not touch (its entry i+1 is not part of it).
    for (; i + 1 <= n - 2; i += 2) {
      const ha = invH[i];
      const hb = invH[i + 1];
      const ya = (i + 1) * n; // reflector i: entries 0..i
      const yb = ya + n; // reflector i+1: entries 0..i+1
      const ybLast = reduced[yb + i + 1];
      let gab = 0; // y_{i+1}·y_i
      for (let k = 0; k <= i; k++) gab += reduced[yb + k] * reduced[ya + k];
      const rEnd = Math.min(b1, i + 2);
      let r = b0;
      for (; r + 4 <= rEnd; r += 4) {
        const x0 = r * n;
        const x1 = x0 + n;
        const x2 = x1 + n;
        const x3 = x2 + n;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (let k = 0; k <= i; k++) {
          const ua = reduced[ya + k];
          const ub = reduced[yb + k];
          const v0 = out[x0 + k];
          a0 += ua * v0;
          c0 += ub * v0;
          const v1 = out[x1 + k];
          a1 += ua * v1;
          c1 += ub * v1;
          const v2 = out[x2 + k];
          a2 += ua * v2;
          c2 += ub * v2;
          const v3 = out[x3 + k];
          a3 += ua * v3;
          c3 += ub * v3;
        }
        const k1 = i + 1;
        a0 *= ha;
        a1 *= ha;
        a2 *= ha;
        a3 *= ha;
        c0 = (c0 + ybLast * out[x0 + k1] - a0 * gab) * hb;
        c1 = (c1 + ybLast * out[x1 + k1] - a1 * gab) * hb;
        c2 = (c2 + ybLast * out[x2 + k1] - a2 * gab) * hb;
        c3 = (c3 + ybLast * out[x3 + k1] - a3 * gab) * hb;
        for (let k = 0; k <= i; k++) {
          const ua = reduced[ya + k];
          const ub = reduced[yb + k];
          out[x0 + k] -= a0 * ua + c0 * ub;
          out[x1 + k] -= a1 * ua + c1 * ub;
          out[x2 + k] -= a2 * ua + c2 * ub;
          out[x3 + k] -= a3 * ua + c3 * ub;
        }
        out[x0 + k1] -= c0 * ybLast;
        out[x1 + k1] -= c1 * ybLast;
        out[x2 + k1] -= c2 * ybLast;
        out[x3 + k1] -= c3 * ybLast;
      }
      for (; r < rEnd; r++) {
        const x = r * n;
        let pa = 0;
        let pb = 0;
        for (let k = 0; k <= i; k++) {
          const v = out[x + k];
          pa += reduced[ya + k] * v;
          pb += reduced[yb + k] * v;
        }
        const wa = pa * ha;
        const wb = (pb + ybLast * out[x + i + 1] - wa * gab) * hb;
        for (let k = 0; k <= i; k++) out[x + k] -= wa * reduced[ya + k] + wb * reduced[yb + k];
        out[x + i + 1] -= wb * ybLast;
      }
    }
    // A last single reflector (when the number of steps left is odd).
    if (i <= n - 2) {
      const ha = invH[i];
      const ya = (i + 1) * n;
      for (let r = b0; r < Math.min(b1, i + 1); r++) {
        const x = r * n;
        let pa = 0;
        for (let k = 0; k <= i; k++) pa += reduced[ya + k] * out[x + k];
        const wa = pa * ha;
        for (let k = 0; k <= i; k++) out[x + k] -= wa * reduced[ya + k];
      }
    }
  }
}

/**
 * The QL phase for a caller that applies the rotations itself: eigenvalues of the tridiagonal
 * (d, e; overwritten, unsorted) and every rotation, in application order.
 */
export function tridiagonalEigenvalues(n: number, d: Float64Array, e: Float64Array): { sweeps: Int32Array; sweepCount: number; cs: Float64Array; sn: Float64Array } {
  const log = new RotationLog(Math.max(n, Math.min(n * n, 1 << 24)));
  tql2Values(n, d, e, log, (needed) => log.grow(log.count + needed));
  return { sweeps: log.sweeps, sweepCount: log.sweepCount, cs: log.cs, sn: log.sn };
}

export { sortEigenpairs };

function hypot(x: number, y: number): number {
  const ax = Math.abs(x);
  const ay = Math.abs(y);
  if (ax > ay) {
    const r = ay / ax;
    return ax * Math.sqrt(1 + r * r);
  }
  if (ay === 0) return 0;
  const r = ax / ay;
  return ay * Math.sqrt(1 + r * r);
}
