// Version 3 of the tiled GEMM: matrix units (NVIDIA tensor cores, Apple simdgroup matrices, Intel
// XMX) from WGSL through Dawn's experimental subgroup matrices. Off unless asked for:
//   NIN_MATRIX=f32            f32 operands, f32 accumulation (needs an f32 configuration)
//   NIN_MATRIX=f16            operands rounded to f16 when staged, f32 accumulation (needs an
//                             f16→f32 configuration and shader-f16)
//   NIN_MATRIX=f32-emulated   the same kernels with the matrix operations written out in plain
//   NIN_MATRIX=f16-emulated   WGSL (8×8×8, "subgroups" of 64 threads): runs on any adapter, so the
//                             tiling, layouts, barriers and f16 rounding are tested on lavapipe
// The real modes need NIN_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis and an adapter whose
// subgroup size is fixed (a workgroup is one subgroup). NIN_MATRIX_TILE=FMxFNxBK picks the tile.
//
// Tiling: a workgroup is one subgroup, owning FM × FN result fragments (each a cM×cN subgroup
// matrix): BM = FM·cM rows by BN = FN·cN columns. One subgroup, because WGSL's uniformity rules
// want a fragment's store offset uniform across the workgroup, so subgroups of one workgroup could
// not store to different places; and the staging cost per output is the same either way.
// A and B are staged exactly as versions 1 and 2 stage them (tiledParts: implicit GEMM, the
// caller's loaders), A as As[k][m] and B as Bs[k][n]; a k step loads FM left fragments
// (column-major from As) and FN right fragments (row-major from Bs) and does FM·FN
// multiply-accumulates. The epilogue goes through workgroup memory one fragment at a time,
// because the caller's store() (bias, ReLU masks, split-K slices) takes one element at a time.
import { GpuError, gpu, MATRIX_MODE_SYNTAX, type Gpu } from '../engine/device.ts';
import { gpuUnrollBound } from './loop-bounds.ts';
import { tiledParts, type BuiltGemm, type GemmSpec } from './gemm.ts';

export type MatrixComponent = 'f32' | 'f16';

export interface MatrixMode {
  component: MatrixComponent;
  /** One subgroup-matrix multiply: (M×K)·(K×N). */
  shape: { M: number; N: number; K: number };
  /** Invocations per subgroup the kernel assumes. */
  subgroupSize: number;
  /** Matrix operations written out in plain WGSL (any adapter) instead of Dawn's builtins. */
  emulated: boolean;
}

export interface MatrixTile {
  /** Result fragments per workgroup (one subgroup) along M and N. */
  FM: number;
  FN: number;
  /** k-depth of the staged tiles (a multiple of the matrix K). */
  BK: number;
}

/** The workgroup's output tile and thread count for `tile` in `mode`. */
function matrixTileSize(mode: MatrixMode, t: MatrixTile) {
  return { BM: t.FM * mode.shape.M, BN: t.FN * mode.shape.N, threads: mode.subgroupSize };
}

/**
 * Elements each staged k-row is padded by: 16 bytes, which keeps every fragment's start and
 * stride 16-byte aligned (what cooperative-matrix loads want) while moving rows off one bank.
 */
function stagePad(c: MatrixComponent): number {
  return c === 'f16' ? 8 : 4;
}

/** Workgroup memory: staged A and B in the component type, plus one f32 fragment. */
function matrixTileBytes(mode: MatrixMode, t: MatrixTile): number {
  const { BM, BN } = matrixTileSize(mode, t);
  const size = mode.component === 'f16' ? 2 : 4;
  return size * t.BK * (BM + BN + 2 * stagePad(mode.component)) + 4 * mode.shape.M * mode.shape.N;
}

/** Why `t` cannot run in `mode` on a device with these limits (null when it can). */
export function matrixTileProblem(mode: MatrixMode, t: MatrixTile, storageBytes: number, maxThreads: number): string | null {
  if (t.BK % mode.shape.K !== 0) return `BK = ${t.BK} is not a multiple of the matrix K = ${mode.shape.K}`;
  if (mode.subgroupSize > maxThreads) return `a ${mode.subgroupSize}-wide subgroup exceeds the device's ${maxThreads} threads a workgroup`;
  const bytes = matrixTileBytes(mode, t);
  if (bytes > storageBytes) return `needs ${bytes} bytes of workgroup storage, the device offers ${storageBytes}`;
  return null;
}

/**
 * The tile every matrix GEMM uses: NIN_MATRIX_TILE=FMxFNxBK (e.g. 2x4x32) if set, else about
 * 32×64 of output (at least one fragment each way) at BK 32 (or the matrix K if larger), halved in
 * depth, then in fragments, until it fits the device.
 */
export function matrixTile(mode: MatrixMode): MatrixTile {
  if (forcedTile) return forcedTile;
  const env = process.env.NIN_MATRIX_TILE;
  if (env) {
    // Parsed once per value and mode, not on every GEMM dispatch.
    if (envTile?.value !== env || envTile.mode !== mode) envTile = { value: env, mode, tile: parseMatrixTile(env, mode) };
    return envTile.tile;
  }
  const { M, N, K } = mode.shape;
  const t: MatrixTile = { FM: Math.max(1, Math.round(32 / M)), FN: Math.max(1, Math.round(64 / N)), BK: Math.max(K, 32) };
  const { maxComputeWorkgroupStorageSize: bytes, maxComputeInvocationsPerWorkgroup: threads } = gpu().limits;
  while (matrixTileProblem(mode, t, bytes, threads)) {
    if (t.BK > K) t.BK /= 2;
    else if (t.FM > 1 || t.FN > 1) [t.FM, t.FN] = [Math.max(1, t.FM >> 1), Math.max(1, t.FN >> 1)];
    else throw new RangeError(`no subgroup-matrix tile fits this device: ${matrixTileProblem(mode, t, bytes, threads)}`);
  }
  return t;
}

/** NIN_MATRIX_TILE's value → a tile that runs in `mode` on this device, or an error saying why not. */
function parseMatrixTile(value: string, mode: MatrixMode): MatrixTile {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(value);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1 || Number(m[3]) < 1) throw new GpuError(`NIN_MATRIX_TILE='${value}': expected FMxFNxBK, e.g. 2x4x32 (fragments along M and N, k-depth)`);
  const t = { FM: Number(m[1]), FN: Number(m[2]), BK: Number(m[3]) };
  const { maxComputeWorkgroupStorageSize: bytes, maxComputeInvocationsPerWorkgroup: threads } = gpu().limits;
  const problem = matrixTileProblem(mode, t, bytes, threads);
  if (problem) throw new GpuError(`NIN_MATRIX_TILE=${value}: ${problem}`);
  return t;
}

/**
 * The matrix operations as WGSL: Dawn's builtins, or the same semantics written out in plain WGSL
 * (cheap to compile: lavapipe took minutes over whole fragments held by every lane).
 */
function matrixOps(mode: MatrixMode) {
  const { M: cM, N: cN, K: cK } = mode.shape;
  const T = mode.component;
  if (!mode.emulated) {
    return {
      enable: `enable chromium_experimental_subgroup_matrix;${T === 'f16' ? '\nenable f16;' : ''}`,
      helpers: '',
      zero: `subgroup_matrix_result<f32, ${cN}, ${cM}>()`,
      loadA: (off: string) => `subgroupMatrixLoad<subgroup_matrix_left<${T}, ${cK}, ${cM}>, col_major>(&As, ${off}, AS)`,
      loadB: (off: string) => `subgroupMatrixLoad<subgroup_matrix_right<${T}, ${cN}, ${cK}>, row_major>(&Bs, ${off}, BS)`,
      mma: (a: string, b: string, c: string) => `subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${c})`,
      storeC: (off: string, c: string) => `subgroupMatrixStore<row_major>(&Cs, ${off}, ${c}, ${cN}u)`,
    };
  }
  // Lane L of the cM·cN-lane "subgroup" owns result element e = cM·cN − 1 − L, (r, c) = (e / cN,
  // e % cN): reversed, so that the epilogue's lanes read elements other lanes stored, as on a GPU,
  // where which lane holds which element is the implementation's; its barriers then matter here
  // too. A "loaded" fragment is its offset into As / Bs, read at the multiply (barriers keep the
  // tiles unchanged in between). One scalar per lane and fragment keeps the kernel cheap to compile.
  if (mode.subgroupSize !== cM * cN) throw new RangeError(`emulated subgroup matrices need one lane per result element: ${cM}×${cN} with ${mode.subgroupSize} lanes`);
  return {
    enable: T === 'f16' ? 'enable f16;' : '',
    helpers: /* wgsl */ `
// Emulated subgroup matrices (NIN_MATRIX=…-emulated): acc + (A·B)(r, c) for this lane's (r, c),
// A (cM×cK) column-major in As at aOff (A(r, k) = As[aOff + k·AS + r]),
// B (cK×cN) row-major in Bs at bOff (B(k, c) = Bs[bOff + k·BS + c]).
fn emuMma(aOff: u32, bOff: u32, acc: f32, lane: u32) -> f32 {
  let e = ${cM * cN - 1}u - lane;
  let r = e / ${cN}u;
  let c = e % ${cN}u;
  var s = acc;
  for (var k = 0u; k < ${cK}u; k++) { s = fma(f32(As[aOff + k * AS + r]), f32(Bs[bOff + k * BS + c]), s); }
  return s;
}`,
    zero: '0.0',
    loadA: (off: string) => off,
    loadB: (off: string) => off,
    mma: (a: string, b: string, c: string) => `emuMma(${a}, ${b}, ${c}, lane)`,
    // Row-major into Cs at off (stride cN): lane L's element is element cM·cN − 1 − L.
    storeC: (off: string, c: string) => `Cs[${off} + ${cM * cN - 1}u - lane] = ${c}`,
  };
}

export function gemmMatrixKernel(s: GemmSpec, mode: MatrixMode, tile: MatrixTile): BuiltGemm {
  const { M: cM, N: cN } = mode.shape;
  const { FM, FN, BK } = tile;
  const { BM, BN, threads } = matrixTileSize(mode, tile);
  const T = mode.component;
  const pad = stagePad(T);
  const ops = matrixOps(mode);
  const t = tiledParts(s, { BM, BN, BK }, threads);
  const rows = Array.from({ length: FM }, (_, i) => i);
  const cols = Array.from({ length: FN }, (_, j) => j);
  const frags = rows.flatMap((i) => cols.map((j) => [i, j] as const));
  const code = /* wgsl */ `${ops.enable}
${t.head(`const SG: u32 = ${mode.subgroupSize}u;
const AS: u32 = ${BM + pad}u;
const BS: u32 = ${BN + pad}u;
var<workgroup> As: array<${T}, ${BK * (BM + pad)}>;
var<workgroup> Bs: array<${T}, ${BK * (BN + pad)}>;
var<workgroup> Cs: array<f32, ${cM * cN}>;
${ops.helpers}`)}
  let lane = lid;
${frags.map(([i, j]) => `  var c${i}_${j} = ${ops.zero};`).join('\n')}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
${t.stage(`As[kk * AS + mm] = ${T}(v);`, `Bs[kk * BS + nn] = ${T}(v);`)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${gpuUnrollBound('BK')}; kk += ${mode.shape.K}u) {
${rows.map((i) => `      let a${i} = ${ops.loadA(`kk * AS + ${i * cM}u`)};`).join('\n')}
${cols.map((j) => `      let b${j} = ${ops.loadB(`kk * BS + ${j * cN}u`)};`).join('\n')}
${frags.map(([i, j]) => `      c${i}_${j} = ${ops.mma(`a${i}`, `b${j}`, `c${i}_${j}`)};`).join('\n')}
    }
    workgroupBarrier();
  }
${frags.map(([i, j]) => `  ${ops.storeC('0u', `c${i}_${j}`)};
  workgroupBarrier();
  for (var e = lane; e < ${cM * cN}u; e += SG) {
    let m = m0 + ${i * cM}u + e / ${cN}u;
    let n = n0 + ${j * cN}u + e % ${cN}u;
    if (m < M && n < N) { store(m, n, wid.z, Cs[e]); }
  }
  workgroupBarrier();`).join('\n')}
}`;
  return { kernel: { name: s.name, code }, groups: t.groups, used: { style: 'matrix', tile: { FM, FN, BK } } };
}

let forcedMode: MatrixMode | null | undefined;
let forcedTile: MatrixTile | undefined;
let fromEnv: { device: GPUDevice; mode: MatrixMode | null } | null = null;
let envTile: { value: string; mode: MatrixMode; tile: MatrixTile } | null = null;

let exactDepth = 0;

/** The subgroup-matrix mode in force (NIN_MATRIX, unless a test forces one); null: off. */
export function matrixMode(): MatrixMode | null {
  if (exactDepth > 0) return null;
  if (forcedMode !== undefined) return forcedMode;
  const g = gpu();
  if (fromEnv?.device !== g.device) fromEnv = { device: g.device, mode: parseMatrixMode(process.env.NIN_MATRIX, g) };
  return fromEnv.mode;
}

/**
 * The matrix settings checked whole, for a command to call before its work: NIN_MATRIX's mode
 * (matrixMode), and its tile, NIN_MATRIX_TILE's or the default, that fits this device (matrixTile;
 * otherwise the first GEMM, after a preprocessing fit, would fail). NIN_MATRIX_TILE without
 * NIN_MATRIX changes nothing: said, not ignored.
 */
export function checkedMatrixSettings(): MatrixMode | null {
  const mode = matrixMode();
  if (mode) matrixTile(mode);
  else if (process.env.NIN_MATRIX_TILE) console.warn(`[nin] NIN_MATRIX_TILE=${process.env.NIN_MATRIX_TILE} is unused: NIN_MATRIX is off`);
  return mode;
}

/**
 * Runs `record` (which records GPU work, synchronously) with matrix units off, whatever NIN_MATRIX
 * says: for work outside the network whose precision must not depend on it (ZCA whitening).
 */
export function withoutMatrixUnits<T>(record: () => T): T {
  exactDepth++;
  try {
    return record();
  } finally {
    exactDepth--;
  }
}

/**
 * Tests: run GEMMs in `mode` (null: off) regardless of NIN_MATRIX, with `tile` instead of
 * matrixTile's; undefined goes back to NIN_MATRIX.
 */
export function forceMatrixMode(mode: MatrixMode | null | undefined, tile?: MatrixTile): void {
  forcedMode = mode;
  forcedTile = tile;
}

/** The emulated modes' matrix shape and "subgroup" size (one lane per result element). */
export const EMULATED_MATRIX = { shape: { M: 8, N: 8, K: 8 }, subgroupSize: 64 } as const;

/**
 * NIN_MATRIX's value → a mode for this device, or an error that says what the adapter lacks. A real
 * mode takes the adapter's largest configuration with `component` operands and f32 results.
 */
export function parseMatrixMode(value: string | undefined, g: Pick<Gpu, 'adapterName' | 'features' | 'subgroupSize' | 'subgroupMatrixConfigs'>): MatrixMode | null {
  if (!value || value === 'off') return null;
  const m = MATRIX_MODE_SYNTAX.exec(value);
  const where = `NIN_MATRIX=${value}`;
  if (!m) throw new GpuError(`${where}: expected off, f32, f16, f32-emulated or f16-emulated`);
  const component = m[1] as MatrixComponent;
  if (component === 'f16' && !g.features.has('shader-f16')) throw new GpuError(`${where}: the adapter '${g.adapterName}' has no shader-f16`);
  if (m[2]) return { component, shape: { ...EMULATED_MATRIX.shape }, subgroupSize: EMULATED_MATRIX.subgroupSize, emulated: true };
  if (!g.features.has('chromium-experimental-subgroup-matrix')) {
    throw new GpuError(`${where}: the adapter '${g.adapterName}' offers no subgroup matrices (Dawn's chromium-experimental-subgroup-matrix needs NIN_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis and a GPU that has them)`);
  }
  if (!g.subgroupSize) throw new GpuError(`${where}: the adapter '${g.adapterName}' has no fixed subgroup size, which the kernel's subgroup layout assumes`);
  const fits = g.subgroupMatrixConfigs.filter((c) => c.componentType === component && c.resultComponentType === 'f32');
  if (!fits.length) {
    const offered = g.subgroupMatrixConfigs.map((c) => `${c.M}×${c.N}×${c.K} ${c.componentType}→${c.resultComponentType}`).join(', ') || 'none';
    throw new GpuError(`${where}: the adapter '${g.adapterName}' has no ${component}→f32 subgroup-matrix configuration (offered: ${offered})`);
  }
  const best = fits.reduce((a, b) => (b.M * b.N * b.K > a.M * a.N * a.K ? b : a));
  return { component, shape: { M: best.M, N: best.N, K: best.K }, subgroupSize: g.subgroupSize, emulated: false };
}

/** One line naming the mode, for logs and benchmark names: "f16 subgroup matrices 16×16×16". */
export function describeMatrixMode(m: MatrixMode): string {
  return `${m.component} subgroup matrices ${m.shape.M}×${m.shape.N}×${m.shape.K}${m.emulated ? ' (emulated)' : ''}`;
}
