// What limits the simd GEMM (kernels/gemm.ts simdGemmKernel) on a CPU adapter such as lavapipe:
// the cost of one storage load by address pattern, and the simd k step in a few forms at one
// conv-sized shape. Each GEMM variant is checked against a float64 CPU product first. Variants
// run interleaved, round after round, so that a VM whose speed drifts (ours did, 2× within
// minutes) favours none; min and median per variant.
//   node --import tsx bench/simd-loads.ts [--rounds 5]
import { parseArgs } from 'node:util';
import { closeGpu, getGpu } from '../engine/device.ts';
import { dispatch, sync } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(values.rounds);
const gpu = await getGpu();
const L = 8; // lanes: a workgroup is one subgroup, as in the simd kernels (lavapipe's subgroups are 8 wide)

type Variant = { code: string; groups: number; bindings: Tensor[]; check?: () => Promise<number> };
async function compare(title: string, unit: string, perUnit: number, variants: [string, Variant][]) {
  const times = new Map<string, number[]>(variants.map(([n]) => [n, []]));
  for (const [name, v] of variants) {
    dispatch({ name: name.replace(/\W/g, '_'), code: v.code }, v.bindings, [v.groups]); // compile, warm
    await sync();
    const err = v.check ? await v.check() : 0;
    if (!(err < 1e-3)) throw new Error(`${name}: max error ${err} against the float64 product`);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, v] of variants) {
      const t0 = performance.now();
      dispatch({ name: name.replace(/\W/g, '_'), code: v.code }, v.bindings, [v.groups]);
      await sync();
      times.get(name)!.push(performance.now() - t0);
    }
  }
  console.log(`\n${title}`);
  for (const [name, ts] of times) {
    ts.sort((a, b) => a - b);
    const [min, med] = [ts[0], ts[Math.floor(ts.length / 2)]];
    console.log(`  ${name.padEnd(34)} min ${min.toFixed(1).padStart(6)} ms  median ${med.toFixed(1).padStart(6)} ms  ${(perUnit / min).toFixed(2).padStart(7)} ${unit} at min`);
  }
}

// 1. One load, by pattern: 16 loads an iteration into four sums, 2048 iterations, 512 workgroups.
const ITER = 2048, GROUPS = 512, LOADS = 16;
const src = Tensor.fromArray(new Float32Array(1 << 22).fill(1), [1 << 22]);
const sink = Tensor.empty([GROUPS * L]);
const loadKernel = (decl: string, addr: (l: number) => string, vec = false): Variant => ({
  code: `
@group(0) @binding(0) var<storage, read> X: ${decl};
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let g = wid.x % 8u;
  var s0 = ${vec ? 'vec4f()' : '0.0'}; var s1 = s0; var s2 = s0; var s3 = s0;
  for (var k = 0u; k < ${ITER}u; k++) {
${Array.from({ length: LOADS }, (_, l) => `    s${l % 4} += ${addr(l)};`).join('\n')}
  }
  let t = s0 + s1 + s2 + s3;
  Y[wid.x * ${L}u + lane] = ${vec ? 't.x + t.y + t.z + t.w' : 't'};
}`,
  groups: GROUPS,
  bindings: [src, sink],
});
const row = `(g * ${ITER}u + k)`;
await compare('one storage load (8 lanes), by address pattern', 'G loads/s', (ITER * GROUPS * LOADS) / 1e6, [
  ['f32, the same address in every lane', loadKernel('array<f32>', (l) => `X[${row} * 16u + ${l}u]`)],
  ['f32, consecutive across lanes', loadKernel('array<f32>', (l) => `X[${row} * 128u + ${l * L}u + lane]`)],
  ['f32, 64 apart across lanes', loadKernel('array<f32>', (l) => `X[(${row} * 16u + ${l}u + lane * 64u) % ${1 << 22}u]`)],
  ['vec4f, the same address in every lane', loadKernel('array<vec4f>', (l) => `X[${row} * 16u + ${l}u]`, true)],
  ['vec4f, consecutive across lanes', loadKernel('array<vec4f>', (l) => `X[(${row} * 128u + ${l * L}u + lane) % ${1 << 20}u]`, true)],
]);

// 2. The simd GEMM's k step at a conv-sized shape (block 2's 5×5 conv has K = 2400, N = 192):
// TM rows uniform across the lanes, TN columns a lane (lane + 8j). `form`: as the kernel does
// (B loads, then per row an A load and its FMAs), with A or B loaded once outside the loop (wrong
// results: the cost of the other operand's loads alone), or with no loads in the loop.
const [M, N, K] = [2048, 192, 1200];
const wave = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s) * 0.5);
const [A, B] = [wave(M * K, 12.9898), wave(K * N, 78.233)];
const [a, b, c] = [Tensor.fromArray(A, [M, K]), Tensor.fromArray(B, [K, N]), Tensor.empty([M, N])];
const checkC = async () => {
  const out = await c.toArray();
  let err = 0;
  for (let m = 0; m < M; m += 97) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[m * K + k] * B[k * N + n];
      err = Math.max(err, Math.abs(out[m * N + n] - s));
    }
  }
  return err;
};
function gemm(TM: number, TN: number, form: 'kernel' | 'A outside' | 'B outside' | 'no loads'): Variant {
  const BN = L * TN;
  const rows = [...Array(TM).keys()], cols = [...Array(TN).keys()];
  const bLoad = (j: number, k: string) => `    let b${j} = B[${k} * ${N}u + nBase + ${L * j}u];`;
  const aLoad = (i: number, k: string) => `    let a${i} = A[(mBase + ${i}u) * ${K}u + ${k}];`;
  const bOutside = form === 'B outside' || form === 'no loads', aOutside = form === 'A outside' || form === 'no loads';
  const code = `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let mTile = wid.x % ${M / TM}u;
  let mBase = mTile * ${TM}u;
  let nBase = (wid.x / ${M / TM}u) * ${BN}u + lane;
${rows.map((i) => cols.map((j) => `  var c${i}_${j} = 0.0;`).join('\n')).join('\n')}
${bOutside ? cols.map((j) => bLoad(j, '0u')).join('\n') : ''}
${aOutside ? rows.map((i) => aLoad(i, '0u')).join('\n') : ''}
  for (var k = 0u; k < ${K}u; k++) {
${bOutside ? '' : cols.map((j) => bLoad(j, 'k')).join('\n')}
${rows.map((i) => (aOutside ? '' : aLoad(i, 'k') + '\n') + cols.map((j) => `    c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`).join('\n')).join('\n')}
  }
${rows.map((i) => cols.map((j) => `  C[(mBase + ${i}u) * ${N}u + nBase + ${L * j}u] = c${i}_${j};`).join('\n')).join('\n')}
}`;
  return { code, groups: (M / TM) * (N / BN), bindings: [a, b, c], check: form === 'kernel' ? checkC : undefined };
}
await compare(`simd GEMM ${M}×${N}×${K}, TM rows × TN columns a lane`, 'GFLOP/s', (2 * M * N * K) / 1e6, [
  ['TM 16, TN 8 (the kernel\'s tile)', gemm(16, 8, 'kernel')],
  ['TM 8, TN 8', gemm(8, 8, 'kernel')],
  ['TM 32, TN 8', gemm(32, 8, 'kernel')],
  ['TM 16, TN 12', gemm(16, 12, 'kernel')],
  ['TM 16, TN 8, A loaded outside', gemm(16, 8, 'A outside')],
  ['TM 16, TN 8, B loaded outside', gemm(16, 8, 'B outside')],
  ['TM 16, TN 8, no loads in the loop', gemm(16, 8, 'no loads')],
]);
console.log(`\n${gpu.adapterName}, ${ROUNDS} rounds`);
closeGpu();
