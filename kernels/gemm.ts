// One register-tiled GEMM, C[M×N] = A[M×K]·B[K×N], that every convolution pass is built on.
// The caller supplies WGSL functions that fetch A and B elements (so im2col never materialises:
// implicit GEMM) and one that stores a result (bias, ReLU, split-K slices live there).
//
// Tiling: a 16×16 workgroup computes a (16·TM)×(16·TN) tile, each thread TM×TN outputs kept in
// registers; A and B tiles of depth BK are staged in workgroup memory. Thread (tx, ty) owns rows
// ty + 16·i and columns tx + 16·j, so neighbouring threads read neighbouring B columns.
// Global loads are laid out so that consecutive threads read consecutive addresses of whichever
// operand dimension is contiguous in memory (`aContiguous` / `bContiguous`); the staged rows are
// padded so that those writes spread over memory banks (kernels/tuning.ts gemmStagePad).
// Tile sizes come from gemmTiles, or from a tuning table measured on the adapter, which may also
// pick version 2 (gemmKernelV2: contiguous rows/columns a thread, vec4 reads from the tiles).
// With NIN_MATRIX set, every GEMM runs on matrix units instead (kernels/gemm-matrix.ts), staged
// by the same code (tiledParts).
//
// Two styles, chosen by the adapter (engine/device.ts kernelStyle()):
//   tiled (GPUs)  — the kernel below: 256 threads share A and B tiles through workgroup memory.
//   simd (CPUs)   — simdGemmKernel: a workgroup is one subgroup; lanes take columns n, and the
//                   rows m are the same for every lane. Why: lavapipe runs a workgroup on one core
//                   with invocations as SIMD lanes; a load whose address differs across lanes
//                   becomes a loop of scalar loads, one whose address is uniform (built from the
//                   workgroup id and loop counters only) is one load and a broadcast, and a barrier
//                   is a coroutine switch. So A is read uniformly straight from memory (no tiles,
//                   no barriers) and only B's loads are per lane. With the simd fused mlpconv
//                   forward, a training step on lavapipe went from 237 to 118 ms (bench/RESULTS.md,
//                   session 3). Measured since (bench/simd-loads.ts): a uniform f32 load costs
//                   lavapipe as much as a per-lane one; the loads, fewer here than through tiles,
//                   are most of the time.
//
// Split-K: with splitK > 1, workgroup z handles k ∈ [z·KC, (z+1)·KC) and `store` gets z, so the
// caller writes partial sums to slices and reduces them afterwards (WGSL has no float atomics).
import { dispatch, grid1d, LINEAR_WORKGROUP, type BufferRef, type Kernel } from '../engine/runtime.ts';
import { gpuUnrollBound } from './loop-bounds.ts';
import { gpu, kernelStyle, simdWidth, type KernelStyle } from '../engine/device.ts';
import { gemmMatrixKernel, matrixMode, matrixTile, type MatrixTile } from './gemm-matrix.ts';
import { gemmKey, gemmStagePad, gemmTileBytes, gemmTileProblem, tunedGemmTile, tunedSplitK, type GemmTile } from './tuning.ts';

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
  /**
   * Optional shortcut the simd kernel uses (splitK 1 only): k = t·KI + c and
   * A(m, k) = aAt(aRow(m, t) + c), or 0 where aRow(m, t) < 0. For a convolution t is the tap and
   * aRow the shifted pixel's offset (−1 in the zero padding), so the pixel arithmetic and the
   * padding test run once per tap instead of once per k. WGSL: `fn aRow(m: u32, t: u32) -> i32`
   * and `fn aAt(i: u32) -> f32`.
   */
  aTaps?: { KI: number; aRow: string; aAt: string };
  /**
   * Optional shortcut the simd kernel uses: A(m, k) = aAt(aRowOff(m) + aColOff(k)), so a row's
   * part of the address is computed once and a k's part once for all rows (a weight gradient's
   * im2col over a zero-padded input has this form). WGSL: `fn aRowOff(m: u32) -> u32`,
   * `fn aColOff(k: u32) -> u32`, `fn aAt(i: u32) -> f32`.
   */
  aOffsets?: { aRowOff: string; aColOff: string; aAt: string };
}

/**
 * Which kernel a built GEMM is and the tile it was built with, as its builder reports it (so that
 * setGemmCapture shows what runs, not what runGemm meant to run): a tiled GemmTile (v: 2 only for
 * version 2), a simd tile, or a subgroup-matrix tile.
 */
export type GemmDispatch =
  | { style: 'tiled'; tile: GemmTile }
  | { style: 'simd'; tile: { L: number; TM: number; TN: number } }
  | { style: 'matrix'; tile: MatrixTile };

/** What a GEMM builder returns: the kernel, its workgroup grid, and what it is (GemmDispatch). */
export interface BuiltGemm {
  kernel: Kernel;
  groups: [number, number, number];
  used: GemmDispatch;
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
  const BK = K > 16 && gemmTileBytes({ TM, TN, BK: 32 }) <= gpu().limits.maxComputeWorkgroupStorageSize ? 32 : 16;
  return { TM, TN, BM, BN, BK };
}

/**
 * Which GEMM kernel runs: the subgroup-matrix one when NIN_MATRIX asks for it, else the adapter's
 * style (kernelStyle(), which tests may force). Convolutions ask this; the fused mlpconv asks
 * kernelStyle() and matrixMode() apart, as it has no subgroup-matrix version.
 */
export function gemmStyle(): 'matrix' | KernelStyle {
  return matrixMode() ? 'matrix' : kernelStyle();
}

/**
 * Picks a split-K factor so that enough workgroups exist to fill the device, unless the tuning
 * table (tiled kernels) measured one for the GEMM called `name` at these sizes.
 */
export function chooseSplitK(M: number, N: number, K: number, name: string): number {
  const simd = gemmStyle() === 'simd';
  const tuned = simd ? undefined : tunedSplitK(gemmKey(name, M, N, K, 1));
  if (tuned !== undefined) return Math.max(1, Math.min(tuned, K, gpu().limits.maxComputeWorkgroupsPerDimension));
  const { BM, BN } = simd ? simdGemmTiles(M, N) : gemmTiles(M, N);
  const tiles = Math.ceil(M / BM) * Math.ceil(N / BN);
  // Workgroups: a few per SM on big GPUs; on a CPU a few per core is plenty, and fewer slices
  // means less to sum afterwards.
  const target = simd ? 64 : 512;
  const maxSplits = Math.max(1, Math.floor(K / 512)); // keep ≥ 512 k per split
  return Math.max(1, Math.min(maxSplits, Math.ceil(target / tiles), gpu().limits.maxComputeWorkgroupsPerDimension));
}

/** Sizes, the caller's bindings and its loader/store functions: the start of every GEMM kernel (tiled, simd, matrix). */
function specHeader(s: GemmSpec, KC: number): string {
  return `const M: u32 = ${s.M}u;
const N: u32 = ${s.N}u;
const K: u32 = ${s.K}u;
const KC: u32 = ${KC}u;
${s.bindings}
${s.prelude ?? ''}
${s.loadA}
${s.loadB}
${s.store}`;
}

/** The tile a tiled GEMM uses: the tuning table's choice for this shape (kernels/tuning.ts), else gemmTiles. */
export function chosenGemmTile(s: GemmSpec): GemmTile {
  const { TM, TN, BK } = gemmTiles(s.M, s.N, s.K);
  return tunedGemmTile(gemmKey(s.name, s.M, s.N, s.K, s.splitK ?? 1)) ?? { TM, TN, BK };
}

export function gemmKernel(s: GemmSpec, tile: GemmTile = chosenGemmTile(s)): BuiltGemm {
  const problem = gemmTileProblem(tile, gpu().limits.maxComputeWorkgroupStorageSize);
  if (problem) throw new RangeError(`${s.name}: tile ${tile.TM}×${tile.TN}×${tile.BK}${tile.v === 2 ? ' v2' : ''}: ${problem}`);
  if (tile.v === 2) return gemmKernelV2(s, tile);
  const { TM, TN, BK } = tile;
  const [BM, BN] = [16 * TM, 16 * TN];
  const t = tiledParts(s, { BM, BN, BK });
  const code = /* wgsl */ `
${t.head(`const TM: u32 = ${TM}u;
const TN: u32 = ${TN}u;
// Staged rows padded by one float (see gemmStagePad).
const AS: u32 = ${BM + 1}u;
const BS: u32 = ${BN + 1}u;
var<workgroup> As: array<f32, ${BK * (BM + 1)}>;
var<workgroup> Bs: array<f32, ${BK * (BN + 1)}>;`)}
  var acc: array<f32, ${TM * TN}>;
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
${t.stage('As[kk * AS + mm] = v;', 'Bs[kk * BS + nn] = v;')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${gpuUnrollBound('BK')}; kk++) {
      var a: array<f32, ${TM}>;
      var b: array<f32, ${TN}>;
      for (var i = 0u; i < TM; i++) { a[i] = As[kk * AS + ty + 16u * i]; }
      for (var j = 0u; j < TN; j++) { b[j] = Bs[kk * BS + tx + 16u * j]; }
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
  return { kernel: { name: s.name, code }, groups: t.groups, used: { style: 'tiled', tile: { TM, TN, BK } } };
}

/** A GEMM's workgroup grid: its output tiles (row tiles fastest) as one linear index, folded into
 * x and y as grid1d folds (the row tiles alone pass the 65,535-per-dimension limit at about a
 * million output rows for the simd style), and the split-K slices in z. */
function tileGrid(M: number, N: number, BM: number, BN: number, splitK: number): [number, number, number] {
  const [x, y] = grid1d(Math.ceil(M / BM) * Math.ceil(N / BN));
  return [x, y, splitK];
}

/** WGSL: the output tile (mTile, nTile) of this workgroup of a tileGrid dispatch. The workgroups
 * that fold leaves past the last tile return at once (the same for the whole workgroup, so the
 * barriers after stay in uniform control flow). */
function tileOfWorkgroup(M: number, N: number, BM: number, BN: number): string {
  const MT = Math.ceil(M / BM);
  return `  let tileIndex = ${LINEAR_WORKGROUP};
  if (tileIndex >= ${MT * Math.ceil(N / BN)}u) { return; }
  let mTile = tileIndex % ${MT}u;
  let nTile = tileIndex / ${MT}u;`;
}

/**
 * What the tiled versions share (1, 2 and the subgroup-matrix one, kernels/gemm-matrix.ts): the
 * kernel's head (sizes, the caller's functions, `decls` for the version's constants and workgroup
 * arrays, the entry point up to its k range) and the loops that stage a BK-deep slice of A and B
 * in workgroup memory, consecutive threads reading consecutive addresses of each operand's
 * contiguous dimension; `writeA` / `writeB` put the value `v` of (mm, kk) / (kk, nn) into the
 * version's layout. `threads`: the workgroup's size (256 = 16×16 for versions 1 and 2).
 * The head leaves `fn main {` open and defines, for the version's body: M N K KC BM BN BK (sizes),
 * tx ty lid wid (thread and workgroup ids), m0 n0 (the tile's first row and column) and kBegin kEnd.
 */
export function tiledParts(s: GemmSpec, { BM, BN, BK }: { BM: number; BN: number; BK: number }, threads = 256) {
  const splitK = s.splitK ?? 1;
  const KC = Math.ceil(s.K / splitK / BK) * BK;
  const aIndex = s.aContiguous === 'k' ? 'let kk = e % BK; let mm = e / BK;' : 'let mm = e % BM; let kk = e / BM;';
  const bIndex = s.bContiguous === 'n' ? 'let nn = e % BN; let kk = e / BN;' : 'let kk = e % BK; let nn = e / BK;';
  // A 16×16 workgroup (versions 1 and 2) names its threads (tx, ty); others use lid alone.
  const square = threads === 256;
  const head = (decls: string) => `${specHeader(s, KC)}
const BM: u32 = ${BM}u;
const BN: u32 = ${BN}u;
const BK: u32 = ${BK}u;
${decls}

@compute @workgroup_size(${square ? '16, 16' : threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u,
        @builtin(local_invocation_index) lid: u32) {${square ? `
  let tx = lid3.x;
  let ty = lid3.y;` : ''}
${tileOfWorkgroup(s.M, s.N, BM, BN)}
  let m0 = mTile * BM;
  let n0 = nTile * BN;
  let kBegin = wid.z * KC;
  let kEnd = min(K, kBegin + KC);`;
  const loop = (count: number, body: string) => `    for (var r = 0u; r < ${gpuUnrollBound(`${Math.ceil(count / threads)}u`)}; r++) {
      let e = lid + ${threads}u * r;${count % threads ? `
      if (e >= ${count}u) { break; }` : ''}
${body}
    }`;
  const stage = (writeA: string, writeB: string) => `${loop(BK * BM, `      ${aIndex}
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < M && k < kEnd) { v = loadA(m, k); }
      ${writeA}`)}
${loop(BK * BN, `      ${bIndex}
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < N && k < kEnd) { v = loadB(k, n); }
      ${writeB}`)}`;
  return { head, stage, groups: tileGrid(s.M, s.N, BM, BN, splitK) };
}

/**
 * Version 2 of the tiled GEMM (a tuning-table choice, `v: 2`): thread (tx, ty) owns the TM
 * consecutive rows ty·TM + i and TN consecutive columns tx·TN + j, so its values in the staged
 * tiles are contiguous and come out of workgroup memory as vec4 loads: TM/4 + TN/4 loads feed
 * TM·TN FMAs per k, against TM + TN scalar loads in version 1 (workgroup-memory bandwidth, not
 * FMAs, is what a register-tiled GEMM runs out of first on GPUs). Global loads and the tile
 * staging are version 1's (tiledParts). TM and TN must be 4 or 8.
 * Staging writes one component of a workgroup vec4 (`As[i][mm % 4u] = v`), four threads to a vec4.
 * SPIR-V (Vulkan) and Metal store that one float; Tint's HLSL output for D3D12 writes a dynamically
 * indexed component as a select over the whole vector, a read-modify-write that could race there
 * (not run: no D3D12 here). Only a tuning table picks version 2, and autotune installs a table only
 * after its steps repeat the untuned losses.
 */
function gemmKernelV2(s: GemmSpec, tile: GemmTile): BuiltGemm {
  const { TM, TN, BK } = tile;
  const t = tiledParts(s, { BM: 16 * TM, BN: 16 * TN, BK });
  // vec4s per staged k-row, padded by one vec4 (see gemmStagePad)
  const pad = gemmStagePad(tile) / 4;
  const [AM, BNV] = [(16 * TM) / 4 + pad, (16 * TN) / 4 + pad];
  const rows = Array.from({ length: TM }, (_, i) => i);
  const groups = Array.from({ length: TN / 4 }, (_, g) => g);
  const code = /* wgsl */ `
${t.head(`var<workgroup> As: array<vec4<f32>, ${BK * AM}>;
var<workgroup> Bs: array<vec4<f32>, ${BK * BNV}>;`)}
${rows.flatMap((i) => groups.map((g) => `  var c${i}_${g} = vec4<f32>(0.0);`)).join('\n')}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
${t.stage(`As[kk * ${AM}u + mm / 4u][mm % 4u] = v;`, `Bs[kk * ${BNV}u + nn / 4u][nn % 4u] = v;`)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${gpuUnrollBound('BK')}; kk++) {
${Array.from({ length: TM / 4 }, (_, q) => `      let a${q} = As[kk * ${AM}u + ty * ${TM / 4}u + ${q}u];`).join('\n')}
${groups.map((g) => `      let b${g} = Bs[kk * ${BNV}u + tx * ${TN / 4}u + ${g}u];`).join('\n')}
${rows.flatMap((i) => groups.map((g) => `      c${i}_${g} = fma(vec4<f32>(a${Math.floor(i / 4)}[${i % 4}]), b${g}, c${i}_${g});`)).join('\n')}
    }
    workgroupBarrier();
  }
${rows.map((i) => `  {
    let m = m0 + ty * ${TM}u + ${i}u;
    if (m < M) {
${groups.map((g) => `      for (var c = 0u; c < 4u; c++) {
        let n = n0 + tx * ${TN}u + ${4 * g}u + c;
        if (n < N) { store(m, n, wid.z, c${i}_${g}[c]); }
      }`).join('\n')}
    }
  }`).join('\n')}
}`;
  return { kernel: { name: s.name, code }, groups: t.groups, used: { style: 'tiled', tile: { TM, TN, BK, v: 2 } } };
}

const built = new Map<string, BuiltGemm>();

/**
 * Builds (once per spec and style: generating the WGSL costs more than recording the dispatch)
 * and dispatches a GEMM: on matrix units when NIN_MATRIX asks for them (kernels/gemm-matrix.ts),
 * else in the adapter's kernel style.
 */
export function runGemm(s: GemmSpec, bindings: BufferRef[]): void {
  const style = gemmStyle();
  const matrix = style === 'matrix' ? matrixMode() : null;
  const tile = matrix ? matrixTile(matrix) : style === 'tiled' ? chosenGemmTile(s) : undefined;
  const key = [matrix && JSON.stringify(matrix), style, gpu().cpuAdapter, simdWidth(), tile && JSON.stringify(tile), gpu().limits.maxComputeWorkgroupStorageSize, gpu().limits.maxComputeWorkgroupsPerDimension, s.name, s.M, s.N, s.K, s.splitK ?? 1, s.bindings, s.prelude, s.loadA, s.loadB, s.store,
    s.aContiguous, s.bContiguous, s.aTaps && Object.values(s.aTaps).join('|'), s.aOffsets && Object.values(s.aOffsets).join('|')].join('\u0000');
  let b = built.get(key);
  if (!b) {
    if (built.size > 4096) built.clear();
    b = matrix ? gemmMatrixKernel(s, matrix, tile as MatrixTile) : style === 'simd' ? simdGemmKernel(s) : gemmKernel(s, tile as GemmTile);
    built.set(key, b);
  }
  gemmCapture?.(s, bindings, b.used);
  dispatch(b.kernel, bindings, b.groups);
}

let gemmCapture: ((s: GemmSpec, bindings: BufferRef[], used: GemmDispatch) => void) | null = null;
/**
 * Sees every GEMM runGemm dispatches, with the kernel style and tile its builder reports
 * (bench/autotune.ts collects a training step's GEMMs this way; tests check what ran); null to stop.
 */
export function setGemmCapture(f: ((s: GemmSpec, bindings: BufferRef[], used: GemmDispatch) => void) | null): void {
  gemmCapture = f;
}

/**
 * Columns per lane for an N-wide simd GEMM: the output's columns are covered by as few passes of
 * at most 8 columns a lane as possible, split evenly (N = 48: one pass of 6; 128: two of 8).
 */
export function simdColumnsPerLane(N: number, L: number): number {
  const perLane = Math.ceil(N / L);
  return Math.ceil(perLane / Math.ceil(perLane / 8));
}

/**
 * simd tile: TM = 16 rows (uniform across the workgroup) × L·TN columns (lane + L·j). Each B
 * value a lane loads (the costly, per-lane load) feeds TM FMAs. Training step on lavapipe
 * (mnist-small batch 16 / paper MNIST batch 8): TM 4 95 / 458 ms, 8 88 / 347, 16 79–85 / 324–327,
 * 24 97 / 333, 32 92 / 337. Earlier, with TN fixed at 4: L = 16 lanes was 1.2× slower than 8.
 */
export function simdGemmTiles(M: number, N: number) {
  const L = simdWidth();
  const TN = simdColumnsPerLane(N, L);
  const TM = Math.min(16, M);
  return { L, TM, TN, BM: TM, BN: L * TN };
}

/** WGSL: the TM×TN accumulators c{i}_{j} of a simd tile, zeroed. */
export function simdAccumulators(TM: number, TN: number): string {
  return Array.from({ length: TM }, (_, i) => Array.from({ length: TN }, (_, j) => `  var c${i}_${j} = 0.0;`).join('\n')).join('\n');
}

/**
 * WGSL: one k step of a simd tile — TN per-lane loads b{j} (`b(j)`), TM uniform loads a{i}
 * (`a(i)`), TM·TN FMAs into c{i}_{j}. Shared by the simd GEMM and the simd fused mlpconv.
 */
export function simdFmaStep(TM: number, TN: number, b: (j: number) => string, a: (i: number) => string): string {
  const cols = Array.from({ length: TN }, (_, j) => j);
  const bs = cols.map((j) => `    let b${j} = ${b(j)};`);
  const rows = Array.from({ length: TM }, (_, i) => [`    let a${i} = ${a(i)};`, ...cols.map((j) => `    c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`)]);
  return [...bs, ...rows.flat()].join('\n');
}

export function simdGemmKernel(s: GemmSpec): BuiltGemm {
  const { L, TM, TN, BM, BN } = simdGemmTiles(s.M, s.N);
  const splitK = s.splitK ?? 1;
  const taps = splitK === 1 ? s.aTaps : undefined;
  if (taps && s.K % taps.KI !== 0) throw new RangeError(`${s.name}: K = ${s.K} is not a multiple of the tap width ${taps.KI}`);
  const KC = Math.ceil(s.K / splitK);
  const rows = Array.from({ length: TM }, (_, i) => i);
  const cols = Array.from({ length: TN }, (_, j) => j);
  const each = (f: (i: number, j: number) => string) => rows.flatMap((i) => cols.map((j) => f(i, j))).join('\n');
  const inner = (a: (i: number) => string) => simdFmaStep(TM, TN, (j) => `loadB(k, col${j})`, a);
  const tapLoop = (KI: number, T: number) => `  for (var t = 0u; t < ${T}u; t++) {
${rows.map((i) => `    let r${i} = aRow(row${i}, t);\n    let ok${i} = r${i} >= 0;\n    let base${i} = u32(max(r${i}, 0));`).join('\n')}
    for (var c = 0u; c < ${KI}u; c++) {
    let k = t * ${KI}u + c;
${inner((i) => `select(0.0, aAt(base${i} + c), ok${i})`)}
    }
  }`;
  const offsetLoop = `${rows.map((i) => `  let rowOff${i} = aRowOff(row${i});`).join('\n')}
  for (var k = kBegin; k < kEnd; k++) {
    let colOff = aColOff(k);
${inner((i) => `aAt(rowOff${i} + colOff)`)}
  }`;
  const plainLoop = `  for (var k = kBegin; k < kEnd; k++) {
${inner((i) => `loadA(row${i}, k)`)}
  }`;
  // The k loop in the cheapest form the spec allows (see GemmSpec.aTaps and aOffsets).
  const kLoop = taps ? tapLoop(taps.KI, s.K / taps.KI) : s.aOffsets ? offsetLoop : plainLoop;
  // Rows and columns past the edge are clamped for loading (the loop body stays branch-free and
  // the rows stay uniform) and skipped when storing. Loops over i, j are unrolled here so that
  // the accumulators are plain registers on every compiler.
  const code = /* wgsl */ `
${specHeader(s, KC)}
${taps ? `${taps.aRow}\n${taps.aAt}` : ''}
${!taps && s.aOffsets ? `${s.aOffsets.aRowOff}\n${s.aOffsets.aColOff}\n${s.aOffsets.aAt}` : ''}

@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
${tileOfWorkgroup(s.M, s.N, BM, BN)}
  let mBase = mTile * ${BM}u;
  let nBase = nTile * ${BN}u + lane;
  let kBegin = wid.z * KC;
  let kEnd = min(K, kBegin + KC);
${rows.map((i) => `  let row${i} = min(mBase + ${i}u, M - 1u);`).join('\n')}
${cols.map((j) => `  let col${j} = min(nBase + ${L * j}u, N - 1u);`).join('\n')}
${simdAccumulators(TM, TN)}
${kLoop}
${each((i, j) => `  if (mBase + ${i}u < M && nBase + ${L * j}u < N) { store(mBase + ${i}u, nBase + ${L * j}u, wid.z, c${i}_${j}); }`)}
}`;
  return { kernel: { name: s.name, code }, groups: tileGrid(s.M, s.N, BM, BN, splitK), used: { style: 'simd', tile: { L, TM, TN } } };
}
