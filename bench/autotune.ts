// Autotuner for the tiled (GPU) kernels: finds, for every GEMM and fused mlpconv that a NIN
// training step (and a forward pass, fused and unfused) runs, the fastest tile on this adapter,
// and writes the choices as a tuning table (kernels/tuning.ts).
//   node --import tsx bench/autotune.ts [--models cifar10,mnist] [--batch 128] [--reps 7] [--out table.json] [--install path.json] [--budget SECONDS]
// Then: NIN_TUNED=table.json for a run, or commit it as kernels/tuned/<adapter>.json.
// Weight gradients' split-K factors are tuned first (each timed with the sum of its slices).
// For each fused block it also compares the best fused time with the sum of the best times of the
// same three convolutions unfused, and marks the block `fused: false` where the chain wins.
//
// How: one training step per model is recorded with capture hooks on, which collects each
// distinct GEMM spec / mlpconv shape and its buffer sizes. Each is then timed on buffers of those
// sizes, every candidate tile `reps` times, candidates interleaved (so clock drift hits all
// alike), GPU time from timestamp queries; the median per candidate decides. Last, a check that
// the tuned kernels train the same: a few steps from the same initial weights with and without
// the table must give the same losses (to float rounding), and their step times side by side,
// interleaved; the table is installed (--install) only if the tuned steps' median is at least
// INSTALL_MARGIN faster. It stops if Dawn quantizes timestamps (engine/device.ts turns that off).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { noGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu, gpu, kernelStyle } from '../engine/device.ts';
import { dispatch, grid1d, sync, type BufferRef } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { gemmKernel, chosenGemmTile, setGemmCapture, type GemmSpec } from '../kernels/gemm.ts';
import { sumSlices } from '../kernels/conv2d.ts';
import { chosenMlpconvTile, fusedMlpconvKernel, mlpconvTileCandidates, setMlpconvCapture, type MlpconvShape } from '../kernels/mlpconv.ts';
import { forceTuning, GEMM_DEPTHS, GEMM_TILE_SIZES, gemmKey, gemmTileProblem, mlpconvKey, type GemmTile, type MlpconvTileChoice, type TuningTable } from '../kernels/tuning.ts';
import { median } from '../test/numeric.ts';
import { profileReps, repTotal, timestampsUnchecked } from './profile-reps.ts';
import { stepSetup } from './train-step.ts';

interface Captured<T> {
  key: string;
  what: T;
  sizes: number[];
  /** Dispatches per training step (+ forward passes) with this key. */
  uses: number;
}

const tileName = (t: GemmTile) => `${t.TM}×${t.TN}×${t.BK}${t.v === 2 ? 'v2' : ''}`;
const mTileName = (t: MlpconvTileChoice) => `TP${t.TP}/CL${t.CL}`;

/** Runs `fn` with capture hooks on; returns every distinct GEMM and fused block it dispatched. */
function capture(fn: () => void) {
  const gemms = new Map<string, Captured<GemmSpec>>();
  const blocks = new Map<string, Captured<{ s: MlpconvShape; save: boolean; relu3: boolean }>>();
  const sizes = (b: BufferRef[]) => b.map((x) => x.byteLength);
  setGemmCapture((s, b) => {
    const key = gemmKey(s.name, s.M, s.N, s.K, s.splitK ?? 1);
    const c = gemms.get(key);
    if (c) c.uses++;
    else gemms.set(key, { key, what: s, sizes: sizes(b), uses: 1 });
  });
  setMlpconvCapture((s, save, relu3, b) => {
    const key = mlpconvKey(s, save);
    const c = blocks.get(key);
    if (c) c.uses++;
    else blocks.set(key, { key, what: { s, save, relu3 }, sizes: sizes(b), uses: 1 });
  });
  try {
    fn();
  } finally {
    setGemmCapture(null);
    setMlpconvCapture(null);
  }
  return { gemms, blocks };
}

/** Install the table only if the tuned training steps' median is at least this much faster (2 %). */
const INSTALL_MARGIN = 0.02;

/** "x % faster" or "x % slower": tuned against default time. */
const change = (def: number, tuned: number) => (tuned <= def ? `${(100 * (1 - tuned / def)).toFixed(1)} % faster` : `${(100 * (tuned / def - 1)).toFixed(1)} % slower`);

/** Times `variants` (each a dispatch-recording function) interleaved, `reps` times; median GPU ms each. */
async function timeVariants(variants: { name: string; run: () => void }[], reps: number, what: string): Promise<Map<string, number>> {
  const perRep = await profileReps(() => variants.forEach((v) => v.run()), reps, `autotune (${what})`);
  return new Map(variants.map((v) => [v.name, median(perRep.map((rep) => rep.get(v.name) ?? 0))]));
}

/** Times each variant on its own (all its kernels, summed), `reps` times; median GPU ms each. */
async function timeEach(variants: { name: string; run: () => void }[], reps: number, what: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of variants) out.set(v.name, median((await profileReps(v.run, reps, `autotune (${what} ${v.name})`)).map((rep) => repTotal(rep))));
  return out;
}

/**
 * Split-K for each weight gradient (long k = pixels, small M×N): around the heuristic's factor S,
 * S/4 … 4S and 1, each timed with the reduction of its slices.
 */
async function tuneSplits(gemms: Iterable<Captured<GemmSpec>>, reps: number, lines: string[], outOfTime: () => boolean): Promise<Record<string, number>> {
  const splits: Record<string, number> = {};
  const maxDim = gpu().limits.maxComputeWorkgroupsPerDimension;
  for (const c of gemms) {
    const s = c.what;
    if (!s.name.endsWith('_grad_weight') || outOfTime()) continue;
    const S0 = s.splitK ?? 1;
    const cands = [...new Set([1, S0 / 4, S0 / 2, S0, 2 * S0, 4 * S0].map(Math.round))].filter((v) => v >= 1 && v <= Math.min(maxDim, Math.floor(s.K / 64)));
    if (!cands.includes(S0)) cands.push(S0);
    const inputs = c.sizes.slice(0, -1).map((bytes) => Tensor.empty([bytes / 4]));
    const outs: Tensor[] = [];
    const variants = cands.map((S) => {
      const spec = { ...s, splitK: S };
      const k = gemmKernel(spec, chosenGemmTile(spec));
      const out = Tensor.empty([S * s.M * s.N]);
      outs.push(out);
      return { name: String(S), run: () => { dispatch(k.kernel, [...inputs, out], k.groups); if (S > 1) sumSlices(out, S, [s.M * s.N]).dispose(); } };
    });
    const ms = await timeEach(variants, reps, `${gemmKey(s.name, s.M, s.N, s.K, 1)} split-K`);
    const best = cands.reduce((a, b) => (ms.get(String(b))! < ms.get(String(a))! ? b : a));
    splits[gemmKey(s.name, s.M, s.N, s.K, 1)] = best;
    lines.push(`| ${gemmKey(s.name, s.M, s.N, s.K, 1)} split-K (+ slice sum) | ${c.uses} | /${S0} | ${ms.get(String(S0))!.toFixed(3)} | /${best} | ${ms.get(String(best))!.toFixed(3)} | ${(ms.get(String(S0))! / ms.get(String(best))!).toFixed(2)}× | |`);
    [...inputs, ...outs].forEach((t) => t.dispose());
  }
  return splits;
}

/** Captured kernels ordered by `work × uses`, largest first: with a time budget, the kernels that matter most are tuned first. */
function biggestFirst<T extends { uses: number }>(items: Iterable<T>, work: (c: T) => number): T[] {
  return [...items].sort((a, b) => work(b) * b.uses - work(a) * a.uses);
}

const gemmWork = (c: Captured<GemmSpec>) => c.what.M * c.what.N * c.what.K;

/** Version 1 tiles of 2..8 rows/columns a thread, and version 2 (vec4 reads) ones of 4 or 8. */
function gemmCandidates(storage: number): GemmTile[] {
  const sizes = GEMM_TILE_SIZES.filter((t) => t >= 2);
  return sizes.flatMap((TM) => sizes.flatMap((TN) => GEMM_DEPTHS.flatMap((BK) => [{ TM, TN, BK }, { TM, TN, BK, v: 2 as const }])))
    .filter((t) => gemmTileProblem(t, storage) === null);
}

async function main() {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'cifar10,mnist' },
      batch: { type: 'string', default: '128' },
      reps: { type: 'string', default: '7' },
      // Training steps (after 2 warm-up ones) with and without the table: losses compared, and
      // the timed samples for the install decision, taken interleaved.
      'check-steps': { type: 'string', default: '9' },
      // Smoke tests on a CPU adapter: only the first N candidates (plus the default) per kernel.
      'max-candidates': { type: 'string', default: '1000' },
      out: { type: 'string', default: 'bench/out/tuned.json' },
      // Also written here, but only if the tuned training steps beat the default ones end to end.
      install: { type: 'string' },
      // Seconds for the whole search: kernels not reached in time keep their defaults (biggest
      // kernels first), and the loss check and table still come out inside a device call's limit.
      budget: { type: 'string' },
    },
  });
  const g = await getGpu();
  if (kernelStyle() !== 'tiled') throw new NothingToTune(`autotune: tables apply to the tiled kernels; this adapter uses '${kernelStyle()}' (set NIN_KERNELS=tiled to tune them anyway)`);
  const batch = Number(values.batch);
  const reps = Number(values.reps);
  const maxCandidates = Number(values['max-candidates']);
  const budgetS = values.budget === undefined ? Infinity : Number(values.budget);
  if (!(budgetS > 0)) throw new Error(`autotune: --budget must be a positive number of seconds, got '${values.budget}'`);
  const storage = g.limits.maxComputeWorkgroupStorageSize;
  forceTuning({ table: null }); // capture and time the heuristic defaults
  const table: TuningTable = { adapter: g.adapterName, date: new Date().toISOString().slice(0, 10), gemm: {}, mlpconv: {}, splitK: {} };
  const lines: string[] = [];
  const t0 = performance.now();
  // The search stops at 80 % of the budget: the rest is for the loss check and the report.
  const outOfTime = () => performance.now() - t0 > 0.8 * budgetS * 1000;
  let untuned = 0;
  let stepDefaultMs = 0;
  let stepTunedMs = 0;
  for (const modelName of values.models!.split(',')) {
    const m = stepSetup(modelName, batch);
    // What a training step, fused and unfused, and a forward pass run.
    const record = () => capture(() => {
      for (const unfused of [false, true]) {
        m.step(0, unfused).dispose();
        noGrad(() => tidy(() => { m.model.forward(m.x, { train: false, unfused }); }));
      }
    });
    // First the weight gradients' split-K factors (with the heuristic tiles), then, recorded again
    // with those splits, every GEMM's tile and every fused block's tile.
    const first = record();
    await sync();
    table.splitK = { ...table.splitK, ...(await tuneSplits(biggestFirst(first.gemms.values(), gemmWork), reps, lines, outOfTime)) };
    forceTuning({ table: { ...table, gemm: {}, mlpconv: {} } });
    const found = record();
    await sync();
    forceTuning({ table: null });
    console.error(`${modelName}: ${found.gemms.size} GEMM shapes, ${found.blocks.size} fused blocks; timing candidates…`);
    for (const c of biggestFirst(found.gemms.values(), gemmWork)) {
      if (outOfTime()) { untuned++; continue; }
      const bufs = c.sizes.map((bytes) => Tensor.empty([bytes / 4]));
      const def = chosenGemmTile(c.what);
      const cands = gemmCandidates(storage).slice(0, maxCandidates);
      if (!cands.some((t) => tileName(t) === tileName(def))) cands.push(def);
      const variants = cands.map((tile) => {
        const k = gemmKernel({ ...c.what, name: `${c.what.name}@${tileName(tile)}` }, tile);
        return { name: k.kernel.name, tile, run: () => dispatch(k.kernel, bufs, k.groups) };
      });
      const ms = await timeVariants(variants, reps, c.key);
      const best = variants.reduce((a, b) => (ms.get(b.name)! < ms.get(a.name)! ? b : a));
      const defMs = ms.get(`${c.what.name}@${tileName(def)}`)!;
      const bestMs = ms.get(best.name)!;
      table.gemm[c.key] = { ...best.tile, ms: +bestMs.toFixed(4), defaultMs: +defMs.toFixed(4) };
      lines.push(`| ${c.key} | ${c.uses} | ${tileName(def)} | ${defMs.toFixed(3)} | ${tileName(best.tile)} | ${bestMs.toFixed(3)} | ${(defMs / bestMs).toFixed(2)}× | |`);
      bufs.forEach((b) => b.dispose());
    }
    for (const c of biggestFirst(found.blocks.values(), (b) => b.what.s.N * b.what.s.H * b.what.s.W * b.what.s.C1)) {
      if (outOfTime()) { untuned++; continue; }
      const bufs = c.sizes.map((bytes) => Tensor.empty([bytes / 4]));
      const { s, save, relu3 } = c.what;
      const def = chosenMlpconvTile(s, save, storage);
      const cands = mlpconvTileCandidates(s, storage).slice(0, maxCandidates);
      if (!cands.some((t) => mTileName(t) === mTileName(def))) cands.push(def);
      const M = s.N * s.H * s.W;
      const variants = cands.map((tile) => {
        const k = fusedMlpconvKernel(s, tile, save, relu3);
        const named = { name: `${k.name}@${mTileName(tile)}${save ? '+h' : ''}`, code: k.code };
        return { name: named.name, tile, run: () => dispatch(named, bufs, grid1d(Math.ceil(M / tile.TP))) };
      });
      const ms = await timeVariants(variants, reps, c.key);
      const best = variants.reduce((a, b) => (ms.get(b.name)! < ms.get(a.name)! ? b : a));
      const defMs = ms.get(variants.find((v) => mTileName(v.tile) === mTileName(def))!.name)!;
      const bestMs = ms.get(best.name)!;
      // The same block as three GEMMs, each at its best tile (timed above from the unfused pass).
      const M1 = s.N * s.H * s.W;
      const chain = [gemmKey(`conv${s.K}x${s.K}_forward`, M1, s.C1, s.K * s.K * s.Ci, 1), gemmKey('conv1x1_forward', M1, s.C2, s.C1, 1), gemmKey('conv1x1_forward', M1, s.C3, s.C2, 1)];
      const parts = chain.map((k) => table.gemm[k]?.ms);
      const unfusedMs = parts.every((v) => v !== undefined) ? parts.reduce((a, b) => a! + b!, 0)! : undefined;
      const fused = unfusedMs === undefined || bestMs <= unfusedMs;
      table.mlpconv[c.key] = { TP: best.tile.TP, CL: best.tile.CL, ...(fused ? {} : { fused: false }), ms: +bestMs.toFixed(4), defaultMs: +defMs.toFixed(4), ...(unfusedMs === undefined ? {} : { unfusedMs: +unfusedMs.toFixed(4) }) };
      lines.push(`| ${c.key} | ${c.uses} | ${mTileName(def)} | ${defMs.toFixed(3)} | ${mTileName(best.tile)} | ${bestMs.toFixed(3)} | ${(defMs / bestMs).toFixed(2)}× | ${unfusedMs === undefined ? '—' : `${unfusedMs.toFixed(3)} → ${fused ? 'fused' : 'UNFUSED'}`} |`);
      bufs.forEach((b) => b.dispose());
    }
    m.dispose();
    // Same losses with and without the table, from the same initial weights; step times side by
    // side, interleaved so that drift (clocks, heat, other work on the machine) hits both alike:
    // both models are set up, then each step index runs on both, the order alternating (default
    // first on even steps, tuned first on odd ones: ABBA…), so neither side always runs first.
    const steps = Number(values['check-steps']);
    const warm = 2;
    const sides = ([null, table] as const).map((t) => {
      forceTuning({ table: t });
      const r = stepSetup(modelName, batch);
      forceTuning({ table: null });
      return { t, r, losses: [] as number[], times: [] as number[] };
    });
    try {
      for (let s = 0; s < warm + steps; s++) {
        for (const side of s % 2 === 0 ? sides : [...sides].reverse()) {
          forceTuning({ table: side.t });
          const ts = performance.now();
          const l = side.r.step(s);
          side.losses.push(await l.item());
          const ms = performance.now() - ts;
          if (s >= warm) side.times.push(ms);
          l.dispose();
        }
      }
    } finally {
      forceTuning({ table: null });
      for (const side of sides) side.r.dispose();
    }
    const [before, after] = sides.map((side) => ({ losses: side.losses, ms: median(side.times) }));
    const worst = Math.max(...before.losses.map((l, i) => Math.abs(l - after.losses[i]) / Math.max(1e-6, Math.abs(l))));
    console.error(`${modelName}: losses without / with the table: ${before.losses.map((l) => l.toFixed(6)).join(' ')} / ${after.losses.map((l) => l.toFixed(6)).join(' ')} (worst relative difference ${worst.toExponential(2)})`);
    if (!(worst <= 1e-4)) throw new Error(`autotune: the tuned kernels changed ${modelName}'s losses by ${worst.toExponential(2)} (relative): not writing a table`);
    console.error(`${modelName}: training step batch ${batch}, wall median of ${steps} interleaved samples each: ${before.ms.toFixed(2)} ms default, ${after.ms.toFixed(2)} ms tuned (${change(before.ms, after.ms)})`);
    stepDefaultMs += before.ms;
    stepTunedMs += after.ms;
  }
  writeFileSync(values.out!, JSON.stringify(table, null, 1) + '\n');
  // Per-kernel wins need not add up (timer noise, caches warmed by a kernel's neighbours): the
  // table is installed only if the whole training step got faster with it, by at least
  // INSTALL_MARGIN (a smaller difference is within what the medians of a few samples resolve).
  const faster = stepTunedMs <= (1 - INSTALL_MARGIN) * stepDefaultMs;
  if (values.install && faster) writeFileSync(values.install, JSON.stringify(table, null, 1) + '\n');
  console.log(`## Autotune — ${gpu().adapterName}, batch ${batch}, ${reps} reps (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  // (uses: dispatches in what record() runs, a fused and an unfused training step and a forward pass of each: not one step's)
  console.log('| kernel (shape) | uses (fused + unfused step and forwards) | default tile | ms | best tile | ms | gain | unfused chain ms → choice |\n|---|---|---|---|---|---|---|---|');
  console.log(lines.join('\n'));
  if (untuned) console.log(`\nbudget of ${budgetS} s spent: ${untuned} kernel shape(s) not timed keep their default tiles`);
  if (timestampsUnchecked()) console.log('\nnote: no profile had the 8 non-zero kernel durations needed to tell whether Dawn quantizes timestamps; GPU times unchecked');
  console.log(`\ntraining steps (sum over models), wall medians of ${values['check-steps']} interleaved samples each: ${stepDefaultMs.toFixed(2)} ms default, ${stepTunedMs.toFixed(2)} ms tuned (${change(stepDefaultMs, stepTunedMs)}; installing needs ≥ ${100 * INSTALL_MARGIN} % faster); table written to ${values.out}`);
  const verdict = faster ? `tuned steps ${change(stepDefaultMs, stepTunedMs)} (≥ ${100 * INSTALL_MARGIN} %)` : `tuned steps not ${100 * INSTALL_MARGIN} % faster (${change(stepDefaultMs, stepTunedMs)})`;
  console.log(values.install ? `${verdict}: ${faster ? `installed as ${values.install}` : `${values.install} not written`}` : `${verdict}: would ${faster ? '' : 'not '}be installed (no --install)`);
  closeGpu();
}

/** A refusal to say in one line, not a failure with a stack trace. */
class NothingToTune extends Error {}

void main().catch((e) => {
  console.error(e instanceof NothingToTune ? e.message : e);
  process.exit(1);
});
