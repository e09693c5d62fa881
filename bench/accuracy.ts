// Accuracy of the fp32 GPU kernels against a float64 CPU reference at the paper's CIFAR-10 shapes.
//   node --import tsx bench/accuracy.ts [--batch 8] [--blocks cifar1,cifar2,cifar3] [--variant fused|unfused] [--no-naive] [--json out.json]
// The tests check every kernel on small shapes; here the sums are as long as in training: the K×K
// conv sums K²·Cin terms (2400 in block 2), weight and bias gradients sum over N·H·W pixels
// (131,072 for block 1 at batch 128), GAP over H·W, the loss over the batch. Per block: the
// mlpconv output and the gradients of its input and six parameters, backward from a fixed random
// upstream gradient r (the gradient of dot(y, r)), then the ops that follow the block in the
// net: pooling 3/2 (max and average; the Caffe model averages after block 2, the paper's text
// max-pools), or GAP and the loss after the last block.
// Each quantity gets three errors against the float64 result:
//   GPU    the engine's kernels (this adapter's kernel style, NIN_KERNELS=tiled|simd overrides);
//   floor  the float64 result rounded to fp32 (Math.fround): the best an fp32 output can do;
//   naive  a plain CPU fp32 implementation: every value stored as fp32, each sum accumulated
//          sequentially into an fp32 array (fused multiply-add), e.g. dW over all N·H·W pixels in order.
// and n, the longest sum behind it, with √n·u and n·u (u = 2⁻²⁴): the typical and worst-case
// relative error of a sequential fp32 sum of n terms of one sign.
// ReLU masks: where a pre-activation lies within rounding of 0, fp32 and float64 may take opposite
// sides and that entry's gradient differs by O(1) in any fp32 implementation (a few such entries in
// 10⁷ at batch 128). So the float64 backward above takes the GPU's masks (read from the hidden
// activations the engine keeps), which leaves the arithmetic; the last column is the GPU against
// float64 with its own masks, and the table's footer counts the entries that disagree.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backward, param } from '../engine/autograd.ts';
import { closeGpu, getGpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { dot } from '../kernels/elementwise.ts';
import { globalAvgPool } from '../kernels/gap.ts';
import { mlpconv, mlpconvUnfused, type MlpconvParams } from '../kernels/mlpconv.ts';
import { avgPool2d, maxPool2d, poolOutputSize } from '../kernels/pool2d.ts';
import { labelTensor, softmaxCrossEntropy } from '../kernels/softmax-cross-entropy.ts';
import { randomArray, relErrNorm } from '../test/numeric.ts';
import { isMainModule } from '../nin/is-main.ts';
import { BLOCKS, type BlockSpec } from './mlpconv.ts';

const U = 2 ** -24;

/** What follows a block in the net; each is measured at the block's output shape. */
export type TailOp = 'maxpool' | 'avgpool' | 'gap' | 'loss';

export interface StudyBlock {
  block: BlockSpec;
  after: TailOp[];
}

/** The CIFAR-10 NIN: block 1, pool, block 2, pool, block 3, GAP, loss (as nin/model.ts's cifar10). */
export const CIFAR10_STUDY: StudyBlock[] = [
  { block: BLOCKS.find((b) => b.name === 'cifar1')!, after: ['maxpool'] },
  { block: BLOCKS.find((b) => b.name === 'cifar2')!, after: ['avgpool', 'maxpool'] },
  { block: BLOCKS.find((b) => b.name === 'cifar3')!, after: ['gap', 'loss'] },
];

export interface AccuracyRow {
  op: string;
  quantity: string;
  shape: string;
  batch: number;
  /** Terms in the longest sum behind the quantity (1: no sum). */
  n: number;
  /** What n counts. */
  sum: string;
  /** ‖gpu − ref‖ / ‖ref‖ and max|gpu − ref| / max|ref|. */
  gpuRel: number;
  gpuMax: number;
  /** The same for the float64 result rounded to fp32. */
  floorRel: number;
  floorMax: number;
  /** The same for the naive sequential fp32 CPU implementation (absent with --no-naive). */
  naiveRel?: number;
  naiveMax?: number;
  /**
   * mlpconv gradients: the GPU against the float64 backward with float64's own ReLU masks. The
   * columns above give the float64 backward the GPU's masks, so they measure arithmetic alone.
   */
  endToEndRel?: number;
  endToEndMax?: number;
  /** mlpconv y rows: ReLU mask entries (of h1, h2, y) where the GPU's forward and float64's disagree. */
  maskFlips?: MaskFlips;
}

export interface StudyTimes {
  gpuS: number;
  refS: number;
  naiveS: number;
}

type FloatArray = Float32Array | Float64Array;
type FloatArrayType = Float32ArrayConstructor | Float64ArrayConstructor;

/** max|a − b| / max|b|. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / Math.max(m, 1e-300);
}

// ---- The reference, in float64 (Float64Array) or naive fp32 (Float32Array). ----
// Every sum accumulates into an array of the chosen type (out[i] += a·b), so with Float32Array each
// step rounds to fp32 (a·b of two fp32 values is exact in float64: a fused multiply-add) and the
// terms come in plain sequential order; with Float64Array it is the float64 reference.

/** An mlpconv block's inputs: fp32 values, weights [K, K, Ci, C1], [C1, C2], [C2, C3]. */
export interface BlockData {
  x: Float32Array;
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
  w3: Float32Array;
  b3: Float32Array;
  /** Upstream gradient at the output. */
  r: Float32Array;
}

export interface BlockResult {
  y: FloatArray;
  dx: FloatArray;
  dw1: FloatArray;
  db1: FloatArray;
  dw2: FloatArray;
  db2: FloatArray;
  dw3: FloatArray;
  db3: FloatArray;
}

/** out[p, :] = b + in[p, :]·w for P pixels ([Ci, Co] weights); zero inputs (after a ReLU) skipped, which is exact. */
function dense(inp: FloatArray, w: Float32Array, b: Float32Array, out: FloatArray, P: number, Ci: number, Co: number): void {
  for (let p = 0; p < P; p++) {
    const o = p * Co;
    for (let c = 0; c < Co; c++) out[o + c] = b[c];
    for (let ci = 0; ci < Ci; ci++) {
      const v = inp[p * Ci + ci];
      if (v === 0) continue;
      const wr = ci * Co;
      for (let c = 0; c < Co; c++) out[o + c] += v * w[wr + c];
    }
  }
}

function reluInPlace(a: FloatArray): void {
  for (let i = 0; i < a.length; i++) if (!(a[i] > 0)) a[i] = 0;
}

/** [R, C] → [C, R]. */
function transpose(a: Float32Array, R: number, C: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) t[j * R + i] = a[i * C + j];
  return t;
}

/** A block's activations h1, h2, y ([N, H, W, C] each): the ReLU masks (> 0) a backward may take from them. */
export interface Activations {
  h1: ArrayLike<number>;
  h2: ArrayLike<number>;
  y: ArrayLike<number>;
}

/** How many ReLU mask entries of given activations differ from the reference's own forward. */
export type MaskFlips = Record<keyof Activations, number>;

/**
 * The block forward (ReLU after each layer, the last only if relu3) and the gradients of dot(y, r),
 * one image at a time: the parameter gradients accumulate over the batch in pixel order. The
 * backward runs once with the forward's own ReLU masks (unless ownMasks is false) and once more
 * with each of `masks`' (then a ReLU input within rounding of 0 that lands on the other side is
 * not counted as arithmetic error: it moves a gradient by O(1), whatever the precision).
 */
export function mlpconvReference(
  b: BlockSpec, N: number, d: BlockData, A: FloatArrayType,
  opts: { relu3?: boolean; masks?: Activations[]; ownMasks?: boolean } = {},
): { results: BlockResult[]; flips: MaskFlips[] } {
  const { relu3 = true, masks = [], ownMasks = true } = opts;
  const { H, Ci, K } = b;
  const W = H;
  const [C1, C2, C3] = b.C;
  const P = H * W;
  const R = (K - 1) / 2;
  const result = (): BlockResult => ({
    y: new A(N * P * C3), dx: new A(N * P * Ci),
    dw1: new A(K * K * Ci * C1), db1: new A(C1), dw2: new A(C1 * C2), db2: new A(C2), dw3: new A(C2 * C3), db3: new A(C3),
  });
  const results = [...(ownMasks ? [result()] : []), ...masks.map(result)];
  const flips: MaskFlips[] = masks.map(() => ({ h1: 0, h2: 0, y: 0 }));
  const h1 = new A(P * C1), h2 = new A(P * C2), y = new A(P * C3);
  const dz1 = new A(P * C1), dz2 = new A(P * C2), dz3 = new A(P * C3);
  const m1 = new Uint8Array(P * C1), m2 = new Uint8Array(P * C2), m3 = new Uint8Array(P * C3);
  const w2T = transpose(d.w2, C1, C2), w3T = transpose(d.w3, C2, C3);
  // w1 as [tap, C1, Ci]: the input gradient's innermost loop runs over contiguous input channels.
  const w1T = new Float32Array(d.w1.length);
  for (let t = 0; t < K * K; t++) w1T.set(transpose(d.w1.subarray(t * Ci * C1, (t + 1) * Ci * C1), Ci, C1), t * Ci * C1);
  /** Calls f(pixel, tap, input pixel) for each in-image tap of each output pixel. */
  const taps = (n: number, f: (p: number, t: number, q: number) => void) => {
    for (let oy = 0; oy < H; oy++)
      for (let ox = 0; ox < W; ox++)
        for (let ky = 0; ky < K; ky++) {
          const iy = oy + ky - R;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < K; kx++) {
            const ix = ox + kx - R;
            if (ix >= 0 && ix < W) f(oy * W + ox, ky * K + kx, (n * H + iy) * W + ix);
          }
        }
  };
  /** Backward of image n with the masks in m1, m2, m3, accumulated into `out`. */
  const backprop = (n: number, out: BlockResult) => {
    const r = d.r.subarray(n * P * C3, (n + 1) * P * C3);
    for (let i = 0; i < dz3.length; i++) dz3[i] = relu3 && !m3[i] ? 0 : r[i];
    weightGrads(h2, dz3, out.dw3, out.db3, P, C2, C3);
    dense(dz3, w3T, new Float32Array(C2), dz2, P, C3, C2);
    for (let i = 0; i < dz2.length; i++) if (!m2[i]) dz2[i] = 0;
    weightGrads(h1, dz2, out.dw2, out.db2, P, C1, C2);
    dense(dz2, w2T, new Float32Array(C1), dz1, P, C2, C1);
    for (let i = 0; i < dz1.length; i++) if (!m1[i]) dz1[i] = 0;
    for (let p = 0; p < P; p++) for (let c = 0; c < C1; c++) out.db1[c] += dz1[p * C1 + c];
    taps(n, (p, t, q) => {
      for (let ci = 0; ci < Ci; ci++) {
        const v = d.x[q * Ci + ci];
        const wr = (t * Ci + ci) * C1;
        for (let c = 0; c < C1; c++) out.dw1[wr + c] += v * dz1[p * C1 + c];
      }
      for (let c = 0; c < C1; c++) {
        const g = dz1[p * C1 + c];
        if (g === 0) continue;
        const wr = (t * C1 + c) * Ci;
        for (let ci = 0; ci < Ci; ci++) out.dx[q * Ci + ci] += g * w1T[wr + ci];
      }
    });
  };
  /** Sets m from the activations `a` of image n (> 0); returns how many entries differ from `own`. */
  const maskOf = (m: Uint8Array, a: ArrayLike<number>, n: number, own: FloatArray) => {
    let differ = 0;
    for (let i = 0, o = n * m.length; i < m.length; i++) {
      m[i] = a[o + i] > 0 ? 1 : 0;
      if (m[i] !== (own[i] > 0 ? 1 : 0)) differ++;
    }
    return differ;
  };
  for (let n = 0; n < N; n++) {
    // Forward.
    for (let p = 0; p < P; p++) for (let c = 0; c < C1; c++) h1[p * C1 + c] = d.b1[c];
    taps(n, (p, t, q) => {
      for (let ci = 0; ci < Ci; ci++) {
        const v = d.x[q * Ci + ci];
        const wr = (t * Ci + ci) * C1;
        for (let c = 0; c < C1; c++) h1[p * C1 + c] += v * d.w1[wr + c];
      }
    });
    reluInPlace(h1);
    dense(h1, d.w2, d.b2, h2, P, C1, C2);
    reluInPlace(h2);
    dense(h2, d.w3, d.b3, y, P, C2, C3);
    if (relu3) reluInPlace(y);
    for (const out of results) out.y.set(y, n * P * C3);
    // Backward: dz = the gradient at each layer's pre-activation.
    if (ownMasks) {
      maskOf(m1, h1, 0, h1);
      maskOf(m2, h2, 0, h2);
      maskOf(m3, y, 0, y);
      backprop(n, results[0]);
    }
    masks.forEach((a, k) => {
      flips[k].h1 += maskOf(m1, a.h1, n, h1);
      flips[k].h2 += maskOf(m2, a.h2, n, h2);
      flips[k].y += relu3 ? maskOf(m3, a.y, n, y) : 0;
      backprop(n, results[k + (ownMasks ? 1 : 0)]);
    });
  }
  return { results, flips };
}

/** dw += inᵀ·dz and db += Σ_p dz, over P pixels in order. */
function weightGrads(inp: FloatArray, dz: FloatArray, dw: FloatArray, db: FloatArray, P: number, Ci: number, Co: number): void {
  for (let p = 0; p < P; p++) {
    const o = p * Co;
    for (let c = 0; c < Co; c++) db[c] += dz[o + c];
    for (let ci = 0; ci < Ci; ci++) {
      const v = inp[p * Ci + ci];
      if (v === 0) continue;
      const wr = ci * Co;
      for (let c = 0; c < Co; c++) dw[wr + c] += v * dz[o + c];
    }
  }
}

/** Pooling k×k stride s, Caffe conventions (see kernels/pool2d.ts): y and the gradient of dot(y, r). */
export function poolReference(x: Float32Array, r: Float32Array, [N, H, W, C]: number[], mode: 'max' | 'avg', A: FloatArrayType, k = 3, s = 2): { y: FloatArray; dx: FloatArray } {
  const OH = poolOutputSize(H, k, s), OW = poolOutputSize(W, k, s);
  const y = new A(N * OH * OW * C), dx = new A(x.length);
  for (let n = 0; n < N; n++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++)
        for (let c = 0; c < C; c++) {
          const o = ((n * OH + oy) * OW + ox) * C + c;
          const y0 = oy * s, y1 = Math.min(y0 + k, H), x0 = ox * s, x1 = Math.min(x0 + k, W);
          const at = (iy: number, ix: number) => ((n * H + iy) * W + ix) * C + c;
          if (mode === 'max') {
            let best = at(y0, x0); // strict >: the first maximum, as the kernel
            for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) if (x[at(iy, ix)] > x[best]) best = at(iy, ix);
            y[o] = x[best];
            dx[best] += r[o];
          } else {
            const count = (y1 - y0) * (x1 - x0);
            for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) y[o] += x[at(iy, ix)];
            y[o] /= count;
            for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) dx[at(iy, ix)] += r[o] / count;
          }
        }
  return { y, dx };
}

/** Global average pooling [N, H, W, C] → [N, C] and the gradient of dot(y, r). */
export function gapReference(x: Float32Array, r: Float32Array, [N, H, W, C]: number[], A: FloatArrayType): { y: FloatArray; dx: FloatArray } {
  const P = H * W;
  const y = new A(N * C), dx = new A(x.length);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) y[n * C + c] += x[(n * P + p) * C + c];
    for (let c = 0; c < C; c++) y[n * C + c] /= P;
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) dx[(n * P + p) * C + c] = r[n * C + c] / P;
  }
  return { y, dx };
}

/** Mean softmax cross-entropy of logits [N, C] and its gradient. */
export function lossReference(z: Float32Array, labels: number[], N: number, C: number, A: FloatArrayType): { loss: FloatArray; dz: FloatArray } {
  const loss = new A(1), dz = new A(N * C), row = new A(2);
  for (let n = 0; n < N; n++) {
    row[0] = -Infinity;
    row[1] = 0;
    for (let c = 0; c < C; c++) row[0] = Math.max(row[0], z[n * C + c]);
    for (let c = 0; c < C; c++) row[1] += Math.exp(z[n * C + c] - row[0]);
    loss[0] += row[0] + Math.log(row[1]) - z[n * C + labels[n]];
    for (let c = 0; c < C; c++) dz[n * C + c] = (Math.exp(z[n * C + c] - row[0]) / row[1] - (c === labels[n] ? 1 : 0)) / N;
  }
  loss[0] /= N;
  return { loss, dz };
}

// ---- The study. ----

/** Unit-variance uniform values (the CIFAR inputs are whitened; pooled activations are O(1)). */
const unitVariance = (n: number, seed: number) => randomArray(n, seed, -Math.sqrt(3), Math.sqrt(3));
/** He initialisation (variance 2/fan-in), uniform. */
const he = (n: number, fanIn: number, seed: number) => randomArray(n, seed, -Math.sqrt(6 / fanIn), Math.sqrt(6 / fanIn));

function blockData(b: BlockSpec, N: number, seed: number): BlockData {
  const [C1, C2, C3] = b.C;
  return {
    x: unitVariance(N * b.H * b.H * b.Ci, seed),
    w1: he(b.K * b.K * b.Ci * C1, b.K * b.K * b.Ci, seed + 1),
    b1: randomArray(C1, seed + 2, -0.1, 0.1),
    w2: he(C1 * C2, C1, seed + 3),
    b2: randomArray(C2, seed + 4, -0.1, 0.1),
    w3: he(C2 * C3, C2, seed + 5),
    b3: randomArray(C3, seed + 6, -0.1, 0.1),
    r: randomArray(N * b.H * b.H * C3, seed + 7),
  };
}

/** Runs `ref` in float64 and (unless skipped) naive fp32, timing each. */
function bothReferences<T>(ref: (A: FloatArrayType, naive: boolean) => T, naive: boolean, times: StudyTimes): { f64: T; f32?: T } {
  let t0 = performance.now();
  const f64 = ref(Float64Array, false);
  times.refS += (performance.now() - t0) / 1000;
  if (!naive) return { f64 };
  t0 = performance.now();
  const f32 = ref(Float32Array, true);
  times.naiveS += (performance.now() - t0) / 1000;
  return { f64, f32 };
}

type RowBase = Omit<AccuracyRow, 'gpuRel' | 'gpuMax' | 'floorRel' | 'floorMax' | 'naiveRel' | 'naiveMax' | 'endToEndRel' | 'endToEndMax'>;

/** `ownMasks`: the float64 result with its own ReLU masks, where `ref` took the GPU's. */
function row(base: RowBase, gpu: ArrayLike<number>, ref: FloatArray, naive?: FloatArray, ownMasks?: FloatArray): AccuracyRow {
  const floor = Float32Array.from(ref); // Math.fround of each
  return {
    ...base,
    ...(ownMasks ? { endToEndRel: relErrNorm(gpu, ownMasks), endToEndMax: maxRelErr(gpu, ownMasks) } : {}),
    gpuRel: relErrNorm(gpu, ref), gpuMax: maxRelErr(gpu, ref),
    floorRel: relErrNorm(floor, ref), floorMax: maxRelErr(floor, ref),
    ...(naive ? { naiveRel: relErrNorm(naive, ref), naiveMax: maxRelErr(naive, ref) } : {}),
  };
}

async function studyBlock(b: BlockSpec, N: number, unfused: boolean, naive: boolean, seed: number, times: StudyTimes): Promise<AccuracyRow[]> {
  const [C1, C2, C3] = b.C;
  const d = blockData(b, N, seed);
  const t0 = performance.now();
  const x = param(Tensor.fromArray(d.x, [N, b.H, b.H, b.Ci])); // also the first block's input gradient, which the net skips
  const p: MlpconvParams = {
    w1: param(Tensor.fromArray(d.w1, [b.K, b.K, b.Ci, C1])), b1: param(Tensor.fromArray(d.b1, [C1])),
    w2: param(Tensor.fromArray(d.w2, [1, 1, C1, C2])), b2: param(Tensor.fromArray(d.b2, [C2])),
    w3: param(Tensor.fromArray(d.w3, [1, 1, C2, C3])), b3: param(Tensor.fromArray(d.b3, [C3])),
  };
  const y = unfused ? mlpconvUnfused(x, p) : mlpconv(x, p, { forceFused: true });
  const r = Tensor.fromArray(d.r, y.shape);
  const gy = await y.toArray();
  // The hidden activations the backward will use (freed by backward()): their ReLU masks.
  const [h1, h2] = unfused ? [y.parents[0].parents[0], y.parents[0]] : y.saved;
  if (h1?.shape.join() !== [N, b.H, b.H, C1].join() || h2?.shape.join() !== [N, b.H, b.H, C2].join()) {
    throw new Error(`accuracy study: ${unfused ? 'conv2d' : 'mlpconv'} no longer keeps h1 [${N}, ${b.H}, ${b.H}, ${C1}] and h2 where this study reads them`);
  }
  const gpuActs: Activations = { h1: await h1.toArray(), h2: await h2.toArray(), y: gy };
  backward(dot(y, r));
  const names = ['dx', 'dw1', 'db1', 'dw2', 'db2', 'dw3', 'db3'] as const;
  const grads = await Promise.all([x, p.w1, p.b1, p.w2, p.b2, p.w3, p.b3].map((t) => t.grad!.toArray()));
  for (const t of [x, r, y, ...Object.values(p)]) t.dispose();
  times.gpuS += (performance.now() - t0) / 1000;

  // float64: own masks (end to end) and the GPU's; naive fp32: the GPU's.
  const { f64, f32 } = bothReferences((A, isNaive) => mlpconvReference(b, N, d, A, { masks: [gpuActs], ownMasks: !isNaive }), naive, times);
  const [own, ref] = f64.results;
  const naiveRes = f32?.results[0];
  const flips = f64.flips[0];
  const NHW = N * b.H * b.H;
  const K2 = b.K * b.K;
  const sums: Record<(typeof names)[number], [number, string]> = {
    dx: [K2 * C1, `K²·C1 (after C3, C2)`],
    dw1: [NHW, 'N·H·W'], db1: [NHW, 'N·H·W'], dw2: [NHW, 'N·H·W'], db2: [NHW, 'N·H·W'], dw3: [NHW, 'N·H·W'], db3: [NHW, 'N·H·W'],
  };
  const shapes = { dx: [N, b.H, b.H, b.Ci], dw1: [b.K, b.K, b.Ci, C1], db1: [C1], dw2: [C1, C2], db2: [C2], dw3: [C2, C3], db3: [C3] };
  const op = `mlpconv ${b.name}${unfused ? ' (unfused)' : ''}`;
  const rows = [
    row({ op, quantity: 'y', shape: [N, b.H, b.H, C3].join('×'), batch: N, n: Math.max(K2 * b.Ci, C1, C2), sum: `K²·Ci=${K2 * b.Ci}, C1, C2` }, gy, ref.y, naiveRes?.y),
    ...names.map((q, i) => row({ op, quantity: q, shape: shapes[q].join('×'), batch: N, n: sums[q][0], sum: sums[q][1] }, grads[i], ref[q], naiveRes?.[q], own[q])),
  ];
  rows[0].maskFlips = flips;
  return rows;
}

async function studyTail(what: TailOp, shape: number[], naive: boolean, seed: number, times: StudyTimes): Promise<AccuracyRow[]> {
  const [N, H, W, C] = shape;
  const t0 = performance.now();
  if (what === 'loss') {
    const zs = randomArray(N * C, seed, -6, 6); // logits of a few units, as a trained net's
    const labels = Array.from(randomArray(N, seed + 1, 0, C), Math.floor);
    const z = param(Tensor.fromArray(zs, [N, C]));
    const lt = labelTensor(labels, C);
    const loss = softmaxCrossEntropy(z, lt);
    const gl = await loss.toArray();
    backward(loss);
    const gdz = await z.grad!.toArray();
    for (const t of [z, lt, loss]) t.dispose();
    times.gpuS += (performance.now() - t0) / 1000;
    const { f64, f32 } = bothReferences((A) => lossReference(zs, labels, N, C, A), naive, times);
    const base = { op: 'softmax cross-entropy', batch: N };
    return [
      row({ ...base, quantity: 'loss', shape: `${N}×${C}`, n: N, sum: 'N (mean), C (Σ exp)' }, gl, f64.loss, f32?.loss),
      row({ ...base, quantity: 'dlogits', shape: `${N}×${C}`, n: C, sum: 'C (Σ exp)' }, gdz, f64.dz, f32?.dz),
    ];
  }
  const xs = unitVariance(N * H * W * C, seed);
  const x = param(Tensor.fromArray(xs, shape));
  const y = what === 'gap' ? globalAvgPool(x) : what === 'maxpool' ? maxPool2d(x) : avgPool2d(x);
  const rs = randomArray(y.size, seed + 1);
  const r = Tensor.fromArray(rs, y.shape);
  const gy = await y.toArray();
  backward(dot(y, r));
  const gdx = await x.grad!.toArray();
  for (const t of [x, y, r]) t.dispose();
  times.gpuS += (performance.now() - t0) / 1000;
  const { f64, f32 } = bothReferences((A) => (what === 'gap' ? gapReference(xs, rs, shape, A) : poolReference(xs, rs, shape, what === 'maxpool' ? 'max' : 'avg', A)), naive, times);
  const op = what === 'gap' ? 'GAP' : `${what} 3/2`;
  const base = { op, batch: N, shape: shape.join('×') };
  // Forward sums: H·W (GAP), the 3×3 window (avg; max has none). Backward: a pixel lies in up to
  // ⌈3/2⌉² = 4 windows; GAP's backward is one division.
  const [nF, sF, nB, sB] = what === 'gap' ? [H * W, 'H·W', 1, '—'] : what === 'avgpool' ? [9, 'window', 4, 'windows'] : [1, '— (max)', 4, 'windows'];
  return [
    row({ ...base, quantity: 'y', n: nF, sum: sF }, gy, f64.y, f32?.y),
    row({ ...base, quantity: 'dx', n: nB, sum: sB }, gdx, f64.dx, f32?.dx),
  ];
}

export async function accuracyStudy(opts: { batch: number; blocks: StudyBlock[]; unfused?: boolean; naive?: boolean; seed?: number; log?: (line: string) => void }): Promise<{ rows: AccuracyRow[]; times: StudyTimes }> {
  const { batch: N, unfused = false, naive = true, seed = 1 } = opts;
  const times: StudyTimes = { gpuS: 0, refS: 0, naiveS: 0 };
  const rows: AccuracyRow[] = [];
  for (const [i, { block: b, after }] of opts.blocks.entries()) {
    const s = seed + 100 * i;
    const before = { ...times };
    rows.push(...(await studyBlock(b, N, unfused, naive, s, times)));
    for (const [j, what] of after.entries()) {
      rows.push(...(await studyTail(what, what === 'loss' ? [N, 1, 1, b.C[2]] : [N, b.H, b.H, b.C[2]], naive, s + 10 * (j + 1), times)));
    }
    const dt = (k: keyof StudyTimes) => (times[k] - before[k]).toFixed(1);
    opts.log?.(`${b.name} batch ${N}: GPU ${dt('gpuS')} s, float64 reference ${dt('refS')} s, naive fp32 ${dt('naiveS')} s`);
  }
  return { rows, times };
}

const e = (v: number | undefined) => (v === undefined ? '—' : v === 0 ? '0' : v.toExponential(1));

export function formatAccuracyRows(rows: AccuracyRow[]): string {
  const out = [
    '| op | quantity | shape | n (longest sum) | GPU rel L2 | GPU max/max | fp32 floor rel L2 | GPU / floor | naive fp32 rel L2 | naive max/max | √n·u | n·u | GPU rel L2, float64\'s own masks |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const ratio = r.floorRel > 0 ? `${(r.gpuRel / r.floorRel).toFixed(1)}×` : r.gpuRel === 0 ? 'exact' : '∞';
    out.push(`| ${r.op} | ${r.quantity} | ${r.shape} | ${r.n} (${r.sum}) | ${e(r.gpuRel)} | ${e(r.gpuMax)} | ${e(r.floorRel)} | ${ratio} | ${e(r.naiveRel)} | ${e(r.naiveMax)} | ${e(Math.sqrt(r.n) * U)} | ${e(r.n * U)} | ${e(r.endToEndRel)} |`);
  }
  const flips = rows.filter((r) => r.maskFlips);
  if (flips.length) {
    out.push('', 'ReLU mask entries where the GPU forward and the float64 one disagree (a pre-activation within rounding of 0):');
    for (const r of flips) out.push(`- ${r.op}, batch ${r.batch}: h1 ${r.maskFlips!.h1}, h2 ${r.maskFlips!.h2}, y ${r.maskFlips!.y}`);
  }
  return out.join('\n');
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      batch: { type: 'string', default: '8' },
      blocks: { type: 'string', default: CIFAR10_STUDY.map((s) => s.block.name).join(',') },
      variant: { type: 'string', default: 'fused' },
      'no-naive': { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  if (!['fused', 'unfused'].includes(values.variant!)) throw new RangeError(`--variant must be fused or unfused, got ${values.variant}`);
  const names = values.blocks!.split(',');
  const unknown = names.filter((n) => !CIFAR10_STUDY.some((s) => s.block.name === n));
  if (unknown.length) throw new RangeError(`--blocks: unknown ${unknown.join(', ')} (choose from ${CIFAR10_STUDY.map((s) => s.block.name).join(', ')})`);
  const batch = Number(values.batch);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`--batch must be a positive integer, got ${values.batch}`);
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.adapterName} (kernel style ${gpu.style}); batch ${batch}; mlpconv ${values.variant}`);
  const t0 = performance.now();
  const { rows, times } = await accuracyStudy({
    batch,
    blocks: CIFAR10_STUDY.filter((s) => names.includes(s.block.name)),
    unfused: values.variant === 'unfused',
    naive: !values['no-naive'],
    log: (line) => console.error(line),
  });
  const wallS = (performance.now() - t0) / 1000;
  console.log(`wall ${wallS.toFixed(1)} s (GPU incl. compiling ${times.gpuS.toFixed(1)} s, float64 reference ${times.refS.toFixed(1)} s, naive fp32 ${values['no-naive'] ? 'skipped' : `${times.naiveS.toFixed(1)} s`})`);
  console.log(formatAccuracyRows(rows));
  if (values.json) writeFileSync(values.json, JSON.stringify({ adapter: gpu.adapterName, style: gpu.style, batch, variant: values.variant, date: new Date().toISOString(), wallS, times, rows }, null, 2));
  closeGpu();
}
