// Float64 CPU references, `<op>Ref`: plain loops, obviously correct, slow on purpose. Layouts match
// the engine: images NHWC, conv weights [K, K, Cin, Cout] (1×1 weights [1, 1, Cin, Cout]). The
// element-wise ops' references are one-line functions beside their tests (test/elementwise.test.ts), the
// GEMM contract's a loop in test/gemm.test.ts (and every convolution's GEMMs meet conv2dRef).

export type F64 = Float64Array;

export interface RefTensor {
  shape: number[];
  data: F64;
}

export function refTensor(shape: number[], data?: ArrayLike<number>): RefTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  if (data) d.set(Array.from(data));
  return { shape, data: d };
}

/** Convolution with stride S (default 1) and zero padding P on every side (default (K − 1)/2). */
export function conv2dRef(x: RefTensor, w: RefTensor, b: RefTensor, opts: { stride?: number; padding?: number } = {}): RefTensor {
  const [N, H, W, Ci] = x.shape;
  const [K, , , Co] = w.shape;
  const S = opts.stride ?? 1;
  const P = opts.padding ?? (K - 1) / 2;
  const Ho = Math.floor((H + 2 * P - K) / S) + 1;
  const Wo = Math.floor((W + 2 * P - K) / S) + 1;
  const y = refTensor([N, Ho, Wo, Co]);
  for (let n = 0; n < N; n++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++)
        for (let co = 0; co < Co; co++) {
          let s = b.data[co];
          for (let ky = 0; ky < K; ky++) {
            const iy = oy * S + ky - P;
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < K; kx++) {
              const ix = ox * S + kx - P;
              if (ix < 0 || ix >= W) continue;
              for (let ci = 0; ci < Ci; ci++) {
                s += x.data[((n * H + iy) * W + ix) * Ci + ci] * w.data[((ky * K + kx) * Ci + ci) * Co + co];
              }
            }
          }
          y.data[((n * Ho + oy) * Wo + ox) * Co + co] = s;
        }
  return y;
}

export function reluRef(x: RefTensor): RefTensor {
  return { shape: x.shape, data: x.data.map((v) => Math.max(v, 0)) };
}

/** The unfused mlpconv: K×K conv (with `geometry`'s stride and padding) + ReLU, 1×1 + ReLU, 1×1 (+ ReLU if relu3). */
export function mlpconvRef(
  x: RefTensor,
  w1: RefTensor, b1: RefTensor,
  w2: RefTensor, b2: RefTensor,
  w3: RefTensor, b3: RefTensor,
  relu3 = true,
  geometry: { stride?: number; padding?: number } = {},
): RefTensor {
  const h1 = reluRef(conv2dRef(x, w1, b1, geometry));
  const h2 = reluRef(conv2dRef(h1, w2, b2)); // w2, w3 are [1, 1, Cin, Cout]
  const y = conv2dRef(h2, w3, b3);
  return relu3 ? reluRef(y) : y;
}

/**
 * Pooling, Caffe conventions: window k, stride s, no padding, output size ceil((H − k)/s) + 1,
 * windows clipped at the image border; average divides by the clipped window's size.
 */
export function poolOutputSizeRef(H: number, k = 3, s = 2): number {
  return Math.ceil(Math.max(H - k, 0) / s) + 1;
}

export function maxPool2dRef(x: RefTensor, k = 3, s = 2): RefTensor {
  return poolRef(x, k, s, 'max');
}

export function avgPool2dRef(x: RefTensor, k = 3, s = 2): RefTensor {
  return poolRef(x, k, s, 'avg');
}

function poolRef(x: RefTensor, k: number, s: number, mode: 'max' | 'avg'): RefTensor {
  const [N, H, W, C] = x.shape;
  const OH = poolOutputSizeRef(H, k, s);
  const OW = poolOutputSizeRef(W, k, s);
  const y = refTensor([N, OH, OW, C]);
  for (let n = 0; n < N; n++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++)
        for (let c = 0; c < C; c++) {
          const y0 = oy * s, y1 = Math.min(y0 + k, H);
          const x0 = ox * s, x1 = Math.min(x0 + k, W);
          let acc = mode === 'max' ? -Infinity : 0;
          for (let iy = y0; iy < y1; iy++)
            for (let ix = x0; ix < x1; ix++) {
              const v = x.data[((n * H + iy) * W + ix) * C + c];
              acc = mode === 'max' ? Math.max(acc, v) : acc + v;
            }
          y.data[((n * OH + oy) * OW + ox) * C + c] = mode === 'max' ? acc : acc / ((y1 - y0) * (x1 - x0));
        }
  return y;
}

/** The row sum every reduction runs on (kernels/reduce.ts): x as [B, R, C] → y[b, c] = scale · Σ_r x[b, r, c]. */
export function reduceRowsRef(x: ArrayLike<number>, B: number, R: number, C: number, scale = 1): Float64Array {
  const y = new Float64Array(B * C);
  for (let b = 0; b < B; b++)
    for (let r = 0; r < R; r++)
      for (let c = 0; c < C; c++) y[b * C + c] += x[(b * R + r) * C + c];
  return y.map((v) => scale * v);
}

/** Global average pooling: [N, H, W, C] → [N, C]. */
export function globalAvgPoolRef(x: RefTensor): RefTensor {
  const [N, H, W, C] = x.shape;
  const y = refTensor([N, C]);
  for (let n = 0; n < N; n++)
    for (let p = 0; p < H * W; p++)
      for (let c = 0; c < C; c++) y.data[n * C + c] += x.data[(n * H * W + p) * C + c] / (H * W);
  return y;
}

/** Mean softmax cross-entropy of logits [N, C] against integer labels. */
export function softmaxCrossEntropyRef(logits: RefTensor, labels: ArrayLike<number>): number {
  const [N, C] = logits.shape;
  let total = 0;
  for (let n = 0; n < N; n++) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits.data[n * C + c]);
    let se = 0;
    for (let c = 0; c < C; c++) se += Math.exp(logits.data[n * C + c] - mx);
    total += mx + Math.log(se) - logits.data[n * C + labels[n]];
  }
  return total / N;
}

/** Σ y ⊙ r: turns any op into a scalar function whose gradient is the op's VJP with r. */
export function dotRef(y: RefTensor, r: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.data.length; i++) s += y.data[i] * r[i];
  return s;
}

/**
 * Central differences of scalar f with respect to `x.data` (modified in place and restored), at
 * the given indices (all when omitted). In float64 a step of 1e-6 leaves an error near 1e-10
 * (f's rounding over the step), far below the tests' fp32 tolerances; but a step across a kink (a
 * ReLU's input or a max-pool's tie within 1e-6) measures a slope between the two sides: random
 * inputs make that rare, and a test that hits it fails at that element rather than passing wrongly.
 */
export function numericalGrad(f: () => number, x: RefTensor, indices?: number[], eps = 1e-6): Float64Array {
  const idx = indices ?? Array.from(x.data.keys());
  const g = new Float64Array(idx.length);
  idx.forEach((i, j) => {
    const orig = x.data[i];
    x.data[i] = orig + eps;
    const fp = f();
    x.data[i] = orig - eps;
    const fm = f();
    x.data[i] = orig;
    g[j] = (fp - fm) / (2 * eps);
  });
  return g;
}

/** Row-wise softmax of logits [N, C]. */
export function softmaxRef(logits: RefTensor): RefTensor {
  const [N, C] = logits.shape;
  const y = refTensor([N, C]);
  for (let n = 0; n < N; n++) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits.data[n * C + c]);
    let se = 0;
    for (let c = 0; c < C; c++) se += Math.exp(logits.data[n * C + c] - mx);
    for (let c = 0; c < C; c++) y.data[n * C + c] = Math.exp(logits.data[n * C + c] - mx) / se;
  }
  return y;
}

/** CPU twin of the dropout kernel's PCG hash (Jarzynski & Olano 2020), in u32 arithmetic. */
export function pcgHashRef(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Dropout's keep mask for n elements: element i kept iff pcg(pcg(i + pcg(seed))) ≥ floor(p · 2³²). */
export function dropoutMaskRef(n: number, p: number, seed: number): Uint8Array {
  const threshold = Math.min(Math.floor(p * 2 ** 32), 2 ** 32 - 1);
  const hs = pcgHashRef(seed);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) keep[i] = pcgHashRef(pcgHashRef((i + hs) >>> 0)) >= threshold ? 1 : 0;
  return keep;
}

/** Training-mode inverted dropout: kept values divided by (1 − p), dropped ones 0. */
export function dropoutRef(x: RefTensor, p: number, seed: number): RefTensor {
  const keep = dropoutMaskRef(x.data.length, p, seed);
  return { shape: x.shape, data: x.data.map((v, i) => (keep[i] ? v / (1 - p) : 0)) };
}

/** One SGD step in place, the paper's (Caffe) convention: v ← μv − lr(g + wd·w); w ← w + v. */
export function sgdStepRef(w: F64, g: ArrayLike<number>, v: F64, lr: number, momentum: number, weightDecay: number): void {
  for (let i = 0; i < w.length; i++) {
    v[i] = momentum * v[i] - lr * (g[i] + weightDecay * w[i]);
    w[i] += v[i];
  }
}
