// mlpconv: the paper's micro network slid over every receptive field —
//   h1 = ReLU(conv_K×K(x, w1) + b1),  h2 = ReLU(h1·w2 + b2),  y = ReLU(h2·w3 + b3)
//   x: [N, H, W, Ci]   w1: [K, K, Ci, C1]   w2: [1, 1, C1, C2]   w3: [1, 1, C2, C3]   y: [N, H, W, C3]
//
// Fused forward (one dispatch): a workgroup takes TP consecutive output pixels and carries them
// through all three layers. The K×K layer is an implicit GEMM whose im2col tile is staged in
// workgroup memory; its TP×C1 result goes to workgroup memory `hs`; the 1×1 layers read `hs`,
// keep their outputs in registers until every thread has finished reading, then overwrite `hs`.
// So one buffer of TP·max(C1, C2) floats serves both hidden layers, and the hidden activations
// never touch global memory in inference. mlpconvTile picks CL from the widths (below) and then
// the most pixels per lane PI (8, 4, 2, 1) whose buffers fit the device's workgroup storage, so
// TP = (256 / CL)·PI, at most 256; a tuning table may choose another tile (kernels/tuning.ts).
//
// Threads: 256 = CL channel lanes × PL pixel lanes; a thread owns pixels pl + PL·i and channels
// cl + CL·j, so consecutive threads read consecutive weights (coalesced) and share pixel rows.
// CL (4…64) gives each thread about 4 channels and PI pixels in registers, so every value loaded
// feeds several FMAs instead of narrow layers idling most lanes.
//
// On CPU adapters (kernel style "simd", see kernels/gemm.ts) simdFusedKernel replaces all of the
// above: one-subgroup workgroups, 16 pixels each, h1/h2 through storage buffers.
//
// Backward: saves h1 and h2 (the fused forward writes them to global memory when a gradient is
// needed) rather than recomputing them: recomputing h1 would repeat the K×K conv, the most
// expensive part of the block, while storing costs two activation-sized writes. The backward then
// runs as GEMMs (kernels/conv2d.ts) with the hidden layers' ReLU masks fused into the grad-input
// stores (the output ReLU's mask, with relu3, is one reluBackward pass).
//
// Reading order: the op, mlpconv(), its backward and the unfused chain come first; then the
// choice of tile and the two kernels, fusedKernel() (tiled) and simdFusedKernel() (CPU adapters).
import { needsGrad, record } from '../engine/autograd.ts';
import { gpu, kernelStyle, simdWidth } from '../engine/device.ts';
import { dispatch, grid1d, LINEAR_WORKGROUP, type Kernel } from '../engine/runtime.ts';
import { noUnrollBound } from './loop-bounds.ts';
import { Tensor, expectRank, expectShape, opBody } from '../engine/tensor.ts';
import { biasGrad, checkedGeometry, conv2d, conv2dGradInput, conv2dGradWeight, isSameConv, type ConvGeometryOptions, type ConvShape } from './conv2d.ts';
import { NAN_WGSL, reluBackward } from './elementwise.ts';
import { simdAccumulators, simdColumnsPerLane, simdFmaStep } from './gemm.ts';
import { matrixMode } from './gemm-matrix.ts';
import { mlpconvKey, tunedMlpconvTile, type MlpconvTileChoice } from './tuning.ts';

export interface MlpconvParams {
  w1: Tensor;
  b1: Tensor;
  w2: Tensor;
  b2: Tensor;
  w3: Tensor;
  b3: Tensor;
}

/** `stride` and `padding` are the K×K layer's (ConvGeometryOptions); other than the stride-1 "same"
 * convolution, the block runs as the unfused chain (the fused kernel keeps the input's size). */
export interface MlpconvOptions extends ConvGeometryOptions {
  /**
   * ReLU after the last 1×1 layer (the paper: yes, also before global average pooling). A model
   * config's `linearOut` and the CLI's `--class-maps linear` are this switch, off.
   */
  relu3?: boolean;
  /** Workgroup storage to plan for, in bytes (default: what the device offers). */
  workgroupStorage?: number;
  /**
   * Run the fused kernel even where the tuning table says the unfused chain is faster on this
   * adapter (benchmarks and tests of the fused kernel itself).
   */
  forceFused?: boolean;
}

export interface MlpconvShape {
  N: number;
  H: number;
  W: number;
  Ci: number;
  K: number;
  C1: number;
  C2: number;
  C3: number;
}

const BK = 16; // im2col tile depth
const THREADS = 256;

function mlpconvShape(op: string, x: Tensor, p: MlpconvParams, g: ConvGeometryOptions = {}): MlpconvShape {
  expectRank(op, 'input', x, 4, 'NHWC');
  expectRank(op, 'w1', p.w1, 4, 'K×K×Cin×C1');
  expectRank(op, 'w2', p.w2, 4, '1×1×C1×C2');
  expectRank(op, 'w3', p.w3, 4, '1×1×C2×C3');
  const [N, H, W, Ci] = x.shape;
  const [K, K2, wCi, C1] = p.w1.shape;
  if (K !== K2 || (K % 2 !== 1 && g.padding === undefined)) throw new RangeError(`${op}: w1 has shape [${p.w1.shape.join(', ')}]; the kernel must be square with odd K (or an even K with padding given)`);
  if (wCi !== Ci) throw new RangeError(`${op}: input has shape [${x.shape.join(', ')}] with ${Ci} channels but w1 [${p.w1.shape.join(', ')}] expects ${wCi}`);
  const C2 = p.w2.shape[3];
  const C3 = p.w3.shape[3];
  expectShape(op, 'w2', p.w2, [1, 1, C1, C2]);
  expectShape(op, 'w3', p.w3, [1, 1, C2, C3]);
  expectShape(op, 'b1', p.b1, [C1]);
  expectShape(op, 'b2', p.b2, [C2]);
  expectShape(op, 'b3', p.b3, [C3]);
  checkedGeometry(op, K, H, W, g);
  return { N, H, W, Ci, K, C1, C2, C3 };
}

/** The fused mlpconv block (forward in one dispatch; see the top of this file). */
export function mlpconv(x: Tensor, p: MlpconvParams, opts: MlpconvOptions = {}): Tensor {
  const op = 'mlpconv';
  return opBody(op, () => {
    const s = mlpconvShape(op, x, p, opts);
    if (!isSameConv({ ...s, Co: s.C1, stride: opts.stride, pad: opts.padding })) {
      if (opts.forceFused) throw new RangeError(`${op}: forceFused: the fused kernel keeps the input's size (stride 1, padding (K − 1)/2); stride ${opts.stride ?? 1}, padding ${opts.padding ?? (s.K - 1) / 2} runs as the unfused chain`);
      return mlpconvUnfused(x, p, opts);
    }
    const relu3 = opts.relu3 ?? true;
    const offered = gpu().limits.maxComputeWorkgroupStorageSize;
    const storage = opts.workgroupStorage ?? offered;
    // (more than offered failed later, as a shader that did not compile, naming no option)
    if (!(storage > 0 && storage <= offered)) throw new RangeError(`${op}: workgroupStorage ${storage} bytes: this device offers up to ${offered} (maxComputeWorkgroupStorageSize)`);
    const simd = kernelStyle() === 'simd';
    const parents = [x, p.w1, p.b1, p.w2, p.b2, p.w3, p.b3];
    const writeHidden = needsGrad(...parents);
    const tuned = simd ? undefined : tunedMlpconvTile(mlpconvKey(s, writeHidden));
    if (!opts.forceFused && fusedKernelDeclined(s, simd, writeHidden, storage, tuned)) return mlpconvUnfused(x, p, opts);
    const M = s.N * s.H * s.W;
    const y = Tensor.empty([s.N, s.H, s.W, s.C3]);
    // The simd kernel always passes h1, h2 through memory (scratch when no gradient needs them).
    const h1 = writeHidden || simd ? Tensor.empty([s.N, s.H, s.W, s.C1]) : null;
    const h2 = writeHidden || simd ? Tensor.empty([s.N, s.H, s.W, s.C2]) : null;
    const bindings = [x, p.w1, p.b1, p.w2, p.b2, p.w3, p.b3, y, ...(h1 ? [h1, h2!] : [])];
    if (simd) {
      const kernel = memo(`simd|${simdWidth()}|${JSON.stringify(s)}|${relu3}`, () => simdFusedKernel(s, SIMD_PIXELS, relu3));
      dispatch(kernel, bindings, grid1d(Math.ceil(M / SIMD_PIXELS)));
      if (!writeHidden) { h1!.dispose(); h2!.dispose(); }
    } else {
      const tile = chosenMlpconvTile(s, writeHidden, storage, tuned);
      const kernel = fusedMlpconvKernel(s, tile, writeHidden, relu3);
      mlpconvCapture?.(s, writeHidden, relu3, bindings, tile);
      dispatch(kernel, bindings, grid1d(Math.ceil(M / tile.TP)));
    }
    // h1 and h2 exist whenever the backward is kept: writeHidden is record's own test, needsGrad(parents).
    return record(op, y, parents, (dy) => mlpconvBackward(s, x, p, h1!, h2!, y, dy, relu3), writeHidden ? [h1!, h2!] : []);
  });
}

/** Gradients for [x, w1, b1, w2, b2, w3, b3] from the saved hidden activations. */
function mlpconvBackward(s: MlpconvShape, x: Tensor, p: MlpconvParams, h1: Tensor, h2: Tensor, y: Tensor, dy: Tensor, relu3: boolean): (Tensor | null)[] {
  const conv = (K: number, Ci: number, Co: number): ConvShape => ({ N: s.N, H: s.H, W: s.W, Ci, Co, K });
  const s1 = conv(s.K, s.Ci, s.C1);
  const s2 = conv(1, s.C1, s.C2);
  const s3 = conv(1, s.C2, s.C3);
  // A frozen weight (requiresGrad false) gets no gradient, and a layer's input gradient is made
  // only where something below it needs one (fine-tuning the last layer runs two GEMMs, not seven).
  const need1 = x.requiresGrad || p.w1.requiresGrad || p.b1.requiresGrad;
  const need2 = need1 || p.w2.requiresGrad || p.b2.requiresGrad;
  const dz3 = relu3 ? reluBackward(dy, y) : dy;
  const dw3 = p.w3.requiresGrad ? conv2dGradWeight(s3, h2, dz3) : null;
  const db3 = p.b3.requiresGrad ? biasGrad(dz3, s.C3) : null;
  const dz2 = need2 ? conv2dGradInput(s3, dz3, p.w3, h2) : null; // ReLU mask of layer 2 fused into the store
  if (dz3 !== dy) dz3.dispose();
  if (!dz2) return [null, null, null, null, null, dw3, db3];
  const dw2 = p.w2.requiresGrad ? conv2dGradWeight(s2, h1, dz2) : null;
  const db2 = p.b2.requiresGrad ? biasGrad(dz2, s.C2) : null;
  const dz1 = need1 ? conv2dGradInput(s2, dz2, p.w2, h1) : null;
  dz2.dispose();
  if (!dz1) return [null, null, null, dw2, db2, dw3, db3];
  const dw1 = p.w1.requiresGrad ? conv2dGradWeight(s1, x, dz1) : null;
  const db1 = p.b1.requiresGrad ? biasGrad(dz1, s.C1) : null;
  const dx = x.requiresGrad ? conv2dGradInput(s1, dz1, p.w1) : null;
  dz1.dispose();
  return [dx, dw1, db1, dw2, db2, dw3, db3];
}

/**
 * The same block as three separate convolutions: the baseline the fused kernel must match and beat,
 * and what runs where the fused kernel does not (a strided or padded first layer, or
 * fusedKernelDeclined).
 */
export function mlpconvUnfused(x: Tensor, p: MlpconvParams, opts: MlpconvOptions = {}): Tensor {
  mlpconvShape('mlpconvUnfused', x, p, opts);
  const h1 = conv2d(x, p.w1, p.b1, { relu: true, stride: opts.stride, padding: opts.padding });
  const h2 = conv2d(h1, p.w2, p.b2, { relu: true });
  return conv2d(h2, p.w3, p.b3, { relu: opts.relu3 ?? true });
}

export interface MlpconvTile {
  /** Pixels per workgroup. */
  TP: number;
  /** Channel lanes (threads along channels); 256 / CL pixel lanes. */
  CL: number;
}

/** The fused kernel's smallest tile: 64 channel lanes, one pixel each on its THREADS / 64 pixel lanes. */
const SMALLEST_TP = THREADS / 64;

/** Workgroup tile for the fused kernel: lanes from the layer widths, pixels from the storage. */
export function mlpconvTile(s: MlpconvShape, storageBytes: number): MlpconvTile {
  const cmax = Math.max(s.C1, s.C2);
  const widest = Math.max(cmax, s.C3);
  // About 4 channels per thread: with PI pixels each, every value loaded feeds 4 or PI FMAs.
  const preferred = Math.min(64, Math.max(4, 2 ** Math.ceil(Math.log2(Math.ceil(widest / 4)))));
  for (const CL of [4, 8, 16, 32, 64].filter((c) => c >= preferred)) {
    const PL = THREADS / CL;
    for (const PI of [8, 4, 2, 1]) {
      const TP = PL * PI;
      if (TP <= 256 && workgroupBytes(TP, cmax) <= storageBytes) return { TP, CL };
    }
  }
  throw new RangeError(
    `mlpconv: hidden widths ${s.C1}/${s.C2} need ${workgroupBytes(SMALLEST_TP, cmax)} bytes of workgroup storage even at ${SMALLEST_TP} pixels per workgroup; the device offers ${storageBytes}`,
  );
}

/** Why a tile cannot run this block (null when it can). */
export function mlpconvTileProblem(s: MlpconvShape, { TP, CL }: MlpconvTile, storageBytes: number): string | null {
  if (![4, 8, 16, 32, 64, 128, 256].includes(CL)) return `CL must be a power of two from 4 to 256, got ${CL}`;
  const PL = THREADS / CL;
  if (TP % PL !== 0 || TP < PL || TP > 256) return `TP must be a multiple of the ${PL} pixel lanes, at most 256, got ${TP}`;
  const bytes = workgroupBytes(TP, Math.max(s.C1, s.C2));
  if (bytes > storageBytes) return `needs ${bytes} bytes of workgroup storage, the device offers ${storageBytes}`;
  return null;
}

/** Every tile that can run this block: the autotuner's candidates. */
export function mlpconvTileCandidates(s: MlpconvShape, storageBytes: number): MlpconvTile[] {
  // The heuristic's own choice (mlpconvTile) is always a candidate; the rest give each thread 4 or
  // 8 pixels over 16, 32 or 64 channel lanes (few enough that the tests can check every one).
  const out: MlpconvTile[] = [mlpconvTile(s, storageBytes)];
  for (const CL of [16, 32, 64]) {
    for (const PI of [4, 8]) {
      const t = { TP: (THREADS / CL) * PI, CL };
      // More than 64 accumulators a thread would spill registers on any GPU.
      const accumulators = PI * Math.ceil(Math.max(s.C1, s.C2, s.C3) / CL);
      if (!mlpconvTileProblem(s, t, storageBytes) && accumulators <= 64 && !out.some((o) => o.TP === t.TP && o.CL === t.CL)) out.push(t);
    }
  }
  return out;
}

/** Rows of both workgroup arrays are padded by one float so that pixel lanes hit different banks. */
function workgroupBytes(TP: number, cmax: number): number {
  return 4 * TP * (cmax + 1 + BK + 1);
}

/** Both fused kernels' bindings: x, the six parameters, y, and h1/h2 when they are written. */
function blockBindings(hidden: boolean): string {
  const names = ['xs', 'w1', 'b1', 'w2', 'b2', 'w3', 'b3'];
  return [
    ...names.map((n, i) => `@group(0) @binding(${i}) var<storage, read> ${n}: array<f32>;`),
    ...['ys', ...(hidden ? ['h1', 'h2'] : [])].map((n, i) => `@group(0) @binding(${7 + i}) var<storage, read_write> ${n}: array<f32>;`),
  ].join('\n');
}

function fusedKernel(s: MlpconvShape, { TP, CL }: MlpconvTile, writeHidden: boolean, relu3: boolean) {
  const PL = THREADS / CL;
  const M = s.N * s.H * s.W;
  const KK = s.K * s.K * s.Ci;
  const P = (s.K - 1) / 2;
  const PI = TP / PL;
  const cmax = Math.max(s.C1, s.C2);
  const jc = (c: number) => Math.ceil(c / CL);
  const storeHidden = (layer: 1 | 2, C: number) => `
  for (var j = 0u; j < ${jc(C)}u; j++) {
    let c = cl + ${CL}u * j;
    if (c < ${C}u) {
      for (var i = 0u; i < ${PI}u; i++) {
        let p = pl + ${PL}u * i;
        let v = reluKeepNan(acc${layer}[i * ${jc(C)}u + j] + b${layer}[c]);
        hs[p * ${C + 1}u + c] = v;
        ${writeHidden ? `if (m0 + p < M) { h${layer}[(m0 + p) * ${C}u + c] = v; }` : ''}
      }
    }
  }`;
  // One 1×1 layer reading hs (width Cin) into registers acc (width Cout).
  const dense = (layer: 2 | 3, Cin: number, Cout: number) => `
  var acc${layer}: array<f32, ${PI * jc(Cout)}>;
  for (var k = 0u; k < ${noUnrollBound(Cin)}; k++) {
    for (var j = 0u; j < ${jc(Cout)}u; j++) {
      let c = cl + ${CL}u * j;
      var wv = 0.0;
      if (c < ${Cout}u) { wv = w${layer}[k * ${Cout}u + c]; }
      for (var i = 0u; i < ${PI}u; i++) {
        acc${layer}[i * ${jc(Cout)}u + j] = fma(hs[(pl + ${PL}u * i) * ${Cin + 1}u + k], wv, acc${layer}[i * ${jc(Cout)}u + j]);
      }
    }
  }
  workgroupBarrier();`;
  const code = /* wgsl */ `
const M: u32 = ${M}u;
const KK: u32 = ${KK}u;
${blockBindings(writeHidden)}
${NAN_WGSL}
var<workgroup> hs: array<f32, ${TP * (cmax + 1)}>;
var<workgroup> at: array<f32, ${TP * (BK + 1)}>;

// x at output pixel m shifted by tap, with zero padding ("same" convolution).
fn readX(m: u32, k: u32) -> f32 {
  let ci = k % ${s.Ci}u;
  let tap = k / ${s.Ci}u;
  let x = m % ${s.W}u;
  let t = m / ${s.W}u;
  let y = t % ${s.H}u;
  let n = t / ${s.H}u;
  let iy = i32(y) + i32(tap / ${s.K}u) - ${P};
  let ix = i32(x) + i32(tap % ${s.K}u) - ${P};
  if (iy < 0 || iy >= ${s.H} || ix < 0 || ix >= ${s.W}) { return 0.0; }
  return xs[((n * ${s.H}u + u32(iy)) * ${s.W}u + u32(ix)) * ${s.Ci}u + ci];
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let m0 = (${LINEAR_WORKGROUP}) * ${TP}u;
  let cl = lid % ${CL}u;
  let pl = lid / ${CL}u;

  // Layer 1: K×K conv as an implicit GEMM over k = (tap, ci), im2col tile staged in \`at\`.
  var acc1: array<f32, ${PI * jc(s.C1)}>;
  for (var k0 = 0u; k0 < KK; k0 += ${BK}u) {
    for (var e = lid; e < ${TP * BK}u; e += ${THREADS}u) {
      let kk = e % ${BK}u;
      let p = e / ${BK}u;
      var v = 0.0;
      if (m0 + p < M && k0 + kk < KK) { v = readX(m0 + p, k0 + kk); }
      at[p * ${BK + 1}u + kk] = v;
    }
    workgroupBarrier();
    let kn = min(${BK}u, KK - k0);
    for (var kk = 0u; kk < kn; kk++) {
      for (var j = 0u; j < ${jc(s.C1)}u; j++) {
        let c = cl + ${CL}u * j;
        var wv = 0.0;
        if (c < ${s.C1}u) { wv = w1[(k0 + kk) * ${s.C1}u + c]; }
        for (var i = 0u; i < ${PI}u; i++) {
          acc1[i * ${jc(s.C1)}u + j] = fma(at[(pl + ${PL}u * i) * ${BK + 1}u + kk], wv, acc1[i * ${jc(s.C1)}u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  ${storeHidden(1, s.C1)}
  workgroupBarrier();

  // Layer 2: 1×1, reads h1 from hs; results wait in registers until all reads are done.
  ${dense(2, s.C1, s.C2)}
  ${storeHidden(2, s.C2)}
  workgroupBarrier();

  // Layer 3: 1×1 straight to the output.
  ${dense(3, s.C2, s.C3)}
  for (var j = 0u; j < ${jc(s.C3)}u; j++) {
    let c = cl + ${CL}u * j;
    if (c < ${s.C3}u) {
      for (var i = 0u; i < ${PI}u; i++) {
        let m = m0 + pl + ${PL}u * i;
        if (m < M) {
          let v = acc3[i * ${jc(s.C3)}u + j] + b3[c];
          ys[m * ${s.C3}u + c] = ${relu3 ? 'reluKeepNan(v)' : 'v'};
        }
      }
    }
  }
}`;
  return { name: `mlpconv${s.K}x${s.K}_fused_forward`, code };
}

/** Pixels per simd-style workgroup: the simd GEMM's 16 rows. */
const SIMD_PIXELS = 16;

/**
 * The fused forward for CPU adapters (kernel style "simd", see kernels/gemm.ts for why): a
 * workgroup is one subgroup of L lanes and takes TP pixels; each layer is a small GEMM whose
 * lanes span output channels (L·TN per pass) while the TP pixel rows are read at addresses every
 * lane shares. h1 and h2 pass through storage buffers, not workgroup memory: lavapipe turns a
 * workgroup-memory load inside a loop into a per-lane loop even when its address is uniform, so
 * it reads storage faster, and on a CPU both live in the same caches. (A storage load costs the
 * same whether its address is uniform or not: bench/simd-loads.ts.)
 */
function simdFusedKernel(s: MlpconvShape, TP: number, relu3: boolean) {
  const L = simdWidth();
  const M = s.N * s.H * s.W;
  const P = (s.K - 1) / 2;
  const rows = Array.from({ length: TP }, (_, i) => i);
  const lines = (n: number, f: (j: number) => string) => Array.from({ length: n }, (_, j) => f(j)).join('\n');
  // One layer: for each pass over L·TN output channels, accumulate over its inputs (`kLoop`
  // supplies the loop and a(i) the row value), then bias + ReLU and `emit` each value.
  const layer = (Cout: number, w: string, b: string, kLoop: (body: string) => string, a: (i: number) => string, emit: (i: number, j: number) => string, relu: boolean) => {
    const TN = simdColumnsPerLane(Cout, L);
    return `
  for (var c0 = 0u; c0 < ${Cout}u; c0 += ${L * TN}u) {
${lines(TN, (j) => `    let ch${j} = c0 + lane + ${L * j}u;\n    let col${j} = min(ch${j}, ${Cout - 1}u);`)}
${simdAccumulators(TP, TN)}
${kLoop(simdFmaStep(TP, TN, (j) => `${w}[k * ${Cout}u + col${j}]`, a))}
${lines(TN, (j) => `    if (ch${j} < ${Cout}u) {
      let bias = ${b}[col${j}];
${rows.map((i) => `      { let v = ${relu ? `reluKeepNan(c${i}_${j} + bias)` : `c${i}_${j} + bias`}; ${emit(i, j)} }`).join('\n')}
    }`)}
  }`;
  };
  const hidden = (l: 1 | 2, C: number) => (i: number, j: number) => `if (mBase + ${i}u < M) { h${l}[(mBase + ${i}u) * ${C}u + ch${j}] = v; }`;
  const code = /* wgsl */ `
const M: u32 = ${M}u;
${blockBindings(true)}
${NAN_WGSL}

@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let mBase = (${LINEAR_WORKGROUP}) * ${TP}u;
  // Each row's pixel (clamped at the end of the batch; those rows are computed but not stored).
${rows.map((i) => `  let m${i} = min(mBase + ${i}u, M - 1u);
  let px${i} = i32(m${i} % ${s.W}u);
  let py${i} = i32((m${i} / ${s.W}u) % ${s.H}u);
  let img${i} = m${i} / ${s.W * s.H}u;`).join('\n')}

  // Layer 1: K×K conv over k = (tap, ci); a tap's offset and zero-padding test are per row.
  ${layer(s.C1, 'w1', 'b1', (body) => `
    for (var tap = 0u; tap < ${noUnrollBound(s.K * s.K)}; tap++) {
      let dy = i32(tap / ${s.K}u) - ${P};
      let dx = i32(tap % ${s.K}u) - ${P};
${rows.map((i) => `      let iy${i} = py${i} + dy;
      let ix${i} = px${i} + dx;
      let in${i} = iy${i} >= 0 && iy${i} < ${s.H} && ix${i} >= 0 && ix${i} < ${s.W};
      let base${i} = select(0u, ((img${i} * ${s.H}u + u32(iy${i})) * ${s.W}u + u32(ix${i})) * ${s.Ci}u, in${i});`).join('\n')}
      for (var ci = 0u; ci < ${noUnrollBound(s.Ci)}; ci++) {
      let k = tap * ${s.Ci}u + ci;
${body}
      }
    }`, (i) => `select(0.0, xs[base${i} + ci], in${i})`, hidden(1, s.C1), true)}
  storageBarrier();

  // Layer 2: 1×1 over h1 (rows past the end read row M − 1, which this workgroup wrote).
  ${layer(s.C2, 'w2', 'b2', (body) => `    for (var k = 0u; k < ${noUnrollBound(s.C1)}; k++) {
${body}
    }`, (i) => `h1[m${i} * ${s.C1}u + k]`, hidden(2, s.C2), true)}
  storageBarrier();

  // Layer 3: 1×1 over h2, straight to the output.
  ${layer(s.C3, 'w3', 'b3', (body) => `    for (var k = 0u; k < ${noUnrollBound(s.C2)}; k++) {
${body}
    }`, (i) => `h2[m${i} * ${s.C2}u + k]`, (i, j) => `if (mBase + ${i}u < M) { ys[(mBase + ${i}u) * ${s.C3}u + ch${j}] = v; }`, relu3)}
}`;
  return { name: `mlpconv${s.K}x${s.K}_fused_forward`, code };
}

/** The fused kernel's tile: the tuning table's choice for this block (kernels/tuning.ts), else mlpconvTile. */
export function chosenMlpconvTile(s: MlpconvShape, writeHidden: boolean, storage: number, tuned = tunedMlpconvTile(mlpconvKey(s, writeHidden))): MlpconvTile {
  if (!tuned || tuned.TP === undefined) return mlpconvTile(s, storage);
  const problem = mlpconvTileProblem(s, tuned, storage);
  if (problem) throw new RangeError(`mlpconv: tuned tile ${JSON.stringify(tuned)} for ${mlpconvKey(s, writeHidden)}: ${problem}`);
  return { TP: tuned.TP, CL: tuned.CL };
}

/** Builds the tiled fused kernel with a given tile (the autotuner times each candidate this way). */
export function fusedMlpconvKernel(s: MlpconvShape, tile: MlpconvTile, writeHidden: boolean, relu3: boolean): Kernel {
  return memo(`tiled|${JSON.stringify(s)}|${JSON.stringify(tile)}|${writeHidden}|${relu3}`, () => fusedKernel(s, tile, writeHidden, relu3));
}

let mlpconvCapture: ((s: MlpconvShape, writeHidden: boolean, relu3: boolean, bindings: Tensor[], tile: MlpconvTile) => void) | null = null;
/** Sees every tiled fused mlpconv dispatched, with the tile its kernel and grid are built for (bench/autotune.ts; tests); null to stop. */
export function setMlpconvCapture(f: typeof mlpconvCapture): void {
  mlpconvCapture = f;
}

const built = new Map<string, Kernel>();
/** Generated WGSL by key: generating a fused kernel costs more than recording its dispatch. */
function memo(key: string, make: () => Kernel): Kernel {
  let k = built.get(key);
  if (!k) {
    if (built.size > 1024) built.clear();
    built.set(key, (k = make()));
  }
  return k;
}

/**
 * Whether a same-size block runs as three GEMMs (mlpconvUnfused) instead of the fused kernel:
 * - on matrix units when NIN_MATRIX asks for them (the fused kernel has no subgroup-matrix version);
 * - where the tuning table measured the chain faster on this adapter;
 * - where the hidden widths are too wide for even the tiled kernel's smallest tile (SMALLEST_TP) in
 *   the device's workgroup storage (a config may ask for widths far beyond NIN's);
 * - where the device binds fewer storage buffers a stage than the fused kernel's 8 (10 with h1 and
 *   h2): WebGPU's default is 8, and the pipeline would fail to build.
 */
function fusedKernelDeclined(s: MlpconvShape, simd: boolean, writeHidden: boolean, storage: number, tuned: MlpconvTileChoice | undefined): boolean {
  const noTileFits = !simd && workgroupBytes(SMALLEST_TP, Math.max(s.C1, s.C2)) > storage;
  const tooManyBindings = 8 + (writeHidden || simd ? 2 : 0) > gpu().limits.maxStorageBuffersPerShaderStage;
  return matrixMode() !== null || tuned?.fused === false || noTileFits || tooManyBindings;
}
