// One register-tiled GEMM, C[M×N] = A[M×K]·B[K×N], that every convolution pass is built on.
// The caller supplies WGSL functions that fetch A and B elements (so im2col never materialises:
// implicit GEMM) and one that stores a result (bias, ReLU, split-K slices live there).
//
// Tiling: a 16×16 workgroup computes a (16·TM)×(16·TN) tile, each thread TM×TN outputs kept in
// registers; A and B tiles of depth BK are staged in workgroup memory. Thread (tx, ty) owns rows
// ty + 16·i and columns tx + 16·j, so neighbouring threads read neighbouring B columns.
// Global loads are laid out so that consecutive threads read consecutive addresses of whichever
// operand dimension is contiguous in memory (`aContiguous` / `bContiguous`).
//
// Split-K: with splitK > 1, workgroup z handles k ∈ [z·KC, (z+1)·KC) and `store` gets z, so the
// caller writes partial sums to slices and reduces them afterwards (WGSL has no float atomics).
import { dispatch, type BufferRef, type Kernel } from '../engine/runtime.ts';
import { gpu } from '../engine/device.ts';

export interface GemmSpec {
  name: string;
  M: number;
  N: number;
  K: number;
  /** WGSL binding declarations used by the functions below. */
  bindings: string;
  /** WGSL: `fn loadA(m: u32, k: u32) -> f32` (called with m < M, k < K). */
  loadA: string;
  /** WGSL: `fn loadB(k: u32, n: u32) -> f32` (called with k < K, n < N). */
  loadB: string;
  /** WGSL: `fn store(m: u32, n: u32, z: u32, v: f32)` (called with m < M, n < N). */
  store: string;
  aContiguous: 'm' | 'k';
  bContiguous: 'k' | 'n';
  splitK?: number;
  /** Extra WGSL (constants, helpers) shared by the functions. */
  prelude?: string;
}

/**
 * Tile shape for an M×N output: up to 8 rows × 4 columns per thread (128×64 per workgroup) and a
 * k-depth of 32 where the device's workgroup storage holds it, else 16. Small M or N get thinner
 * tiles so that few threads idle. (On lavapipe, 8×4 with depth 32 ran a 3×3 conv about 1.5×
 * faster than 4×4 with depth 16.)
 */
export function gemmTiles(M: number, N: number, K = Infinity) {
  const TN = N <= 16 ? 1 : N <= 32 ? 2 : 4;
  const TM = M <= 16 ? 1 : M <= 32 ? 2 : M <= 64 ? 4 : 8;
  const BM = 16 * TM;
  const BN = 16 * TN;
  // A depth beyond K would multiply zero padding.
  const BK = K > 16 && 4 * 32 * (BM + BN) <= gpu().limits.maxComputeWorkgroupStorageSize ? 32 : 16;
  return { TM, TN, BM, BN, BK };
}

/** Picks a split-K factor so that enough workgroups exist to fill the device. */
export function chooseSplitK(M: number, N: number, K: number): number {
  const { BM, BN } = gemmTiles(M, N);
  const tiles = Math.ceil(M / BM) * Math.ceil(N / BN);
  const target = 512; // workgroups: a few per SM on big GPUs
  const maxSplits = Math.max(1, Math.floor(K / 512)); // keep ≥ 512 k per split
  return Math.max(1, Math.min(maxSplits, Math.ceil(target / tiles), gpu().limits.maxComputeWorkgroupsPerDimension));
}

export function gemmKernel(s: GemmSpec): { kernel: Kernel; groups: [number, number, number] } {
  const { TM, TN, BM, BN, BK } = gemmTiles(s.M, s.N, s.K);
  const splitK = s.splitK ?? 1;
  const KC = Math.ceil(s.K / splitK / BK) * BK;
  const aIndex = s.aContiguous === 'k' ? 'let kk = e % BK; let mm = e / BK;' : 'let mm = e % BM; let kk = e / BM;';
  const bIndex = s.bContiguous === 'n' ? 'let nn = e % BN; let kk = e / BN;' : 'let kk = e % BK; let nn = e / BK;';
  const code = /* wgsl */ `
const M: u32 = ${s.M}u;
const N: u32 = ${s.N}u;
const K: u32 = ${s.K}u;
const KC: u32 = ${KC}u;
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
const TM: u32 = ${TM}u;
const TN: u32 = ${TN}u;
${s.bindings}
${s.prelude ?? ''}
${s.loadA}
${s.loadB}
${s.store}
var<workgroup> As: array<f32, ${BK * BM}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let tx = lid3.x;
  let ty = lid3.y;
  let m0 = wid.x * BM;
  let n0 = wid.y * BN;
  let kBegin = wid.z * KC;
  let kEnd = min(K, kBegin + KC);
  var acc: array<f32, ${TM * TN}>;
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (var r = 0u; r < ${(BK * BM) / 256}u; r++) {
      let e = lid + 256u * r;
      ${aIndex}
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < M && k < kEnd) { v = loadA(m, k); }
      As[kk * BM + mm] = v;
    }
    for (var r = 0u; r < ${(BK * BN) / 256}u; r++) {
      let e = lid + 256u * r;
      ${bIndex}
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < N && k < kEnd) { v = loadB(k, n); }
      Bs[kk * BN + nn] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, ${TM}>;
      var b: array<f32, ${TN}>;
      for (var i = 0u; i < TM; i++) { a[i] = As[kk * BM + ty + 16u * i]; }
      for (var j = 0u; j < TN; j++) { b[j] = Bs[kk * BN + tx + 16u * j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      let m = m0 + ty + 16u * i;
      let n = n0 + tx + 16u * j;
      if (m < M && n < N) { store(m, n, wid.z, acc[i * TN + j]); }
    }
  }
}`;
  return { kernel: { name: s.name, code }, groups: [Math.ceil(s.M / BM), Math.ceil(s.N / BN), splitK] };
}

/** Builds and dispatches a GEMM. */
export function runGemm(s: GemmSpec, bindings: BufferRef[]): void {
  const { kernel, groups } = gemmKernel(s);
  dispatch(kernel, bindings, groups);
}
