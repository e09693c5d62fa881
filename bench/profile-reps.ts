// GPU time per repetition for the benches: `reps` runs under one profiler, each run's per-kernel
// milliseconds taken as the difference of the profiler's running sums (never reset: telling
// whether Dawn quantizes timestamps needs 8 non-zero durations, more than one run may have).
// A quantized profile stops the bench: its kernel times would be 0 or multiples of 65.536 µs,
// not reportable (engine/device.ts dawnFlags turns the quantization off by default).
import { startProfiler } from '../engine/profiler.ts';
import { dispatch, sync } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { elementwiseGrid, elementwiseKernel } from '../kernels/elementwise.ts';
import { median } from '../test/numeric.ts';

let verified = false;

/** True until some profile had enough non-zero durations to show its timestamps are not quantized. */
export function timestampsUnchecked(): boolean {
  return !verified;
}

/**
 * Runs `run` once to warm up (pipeline creation), then `reps` times profiled; returns each rep's
 * GPU ms per kernel name. `what` names the measurement in errors and in the profiler's notes.
 * `opts.before` (e.g. a cache flush) runs before each rep and is awaited, so its GPU work has
 * finished before the rep's is submitted (its tail is then neither charged to the rep's first
 * kernel nor sharing the memory bus with it). `opts.rawSpans`: the profiler's raw pass spans
 * (engine/profiler.ts passSpans), for timestampCarryOver.
 */
export async function profileReps(
  run: () => void, reps: number, what: string, opts: { before?: () => Promise<void>; rawSpans?: boolean } = {},
): Promise<Map<string, number>[]> {
  await opts.before?.();
  run();
  await sync();
  const prof = await startProfiler({ rawSpans: opts.rawSpans });
  const perRep: Map<string, number>[] = [];
  const before = new Map<string, number>();
  try {
    for (let r = 0; r < reps; r++) {
      await opts.before?.();
      run();
      await sync();
      const rep = new Map<string, number>();
      for (const row of await prof.collect()) {
        rep.set(row.name, row.totalMs - (before.get(row.name) ?? 0));
        before.set(row.name, row.totalMs);
      }
      perRep.push(rep);
      const quantized = prof.timestampsQuantized;
      if (quantized) {
        for (const n of prof.notes()) console.error(n);
        throw new Error(`${what}: Dawn quantizes the GPU timestamps (every duration a multiple of 65.536 µs), so these kernel times are not reportable; run with its timestamp_quantization off (engine/device.ts dawnFlags, NIN_DAWN_FLAGS)`);
      }
      if (quantized === false) verified = true;
    }
  } finally {
    prof.stop();
  }
  const notes = prof.notes();
  if (notes.length) console.error(`${what}:\n${notes.join('\n')}`);
  return perRep;
}

/** The sum of a rep's kernel times, over the kernels `keep` admits (all by default). */
export function repTotal(rep: Map<string, number>, keep: (name: string) => boolean = () => true): number {
  let ms = 0;
  for (const [name, t] of rep) if (keep(name)) ms += t;
  return ms;
}

export interface CarryOver {
  /** Median GPU ms of a 256-float kernel on an idle GPU, and recorded right after a big copy it must wait for. */
  aloneMs: number;
  afterMs: number;
  /** Median GPU ms of that copy. */
  bigMs: number;
  /** The small kernel's time after the copy exceeds its time alone by more than a quarter of the copy's. */
  carries: boolean;
}

/**
 * Whether this adapter's raw pass timestamps charge a kernel for the work before it. Dawn's Vulkan
 * backend writes a compute pass's beginning timestamp at TOP_OF_PIPE and the barrier that orders
 * the pass after earlier writes only after it; where the GPU's front end runs ahead (reported on
 * AMD, gfx-rs/wgpu#2521; Intel, kvark/blade#398), a kernel's raw span then includes the rest of
 * the kernel before it. The profiler corrects for it (each pass timed from the previous one's end
 * at the latest); this probe reads raw spans, to say whether the adapter needs that. A small
 * kernel that overwrites a big copy's output (so Dawn puts a barrier between them) is timed alone
 * and right after the copy, in one submission.
 */
export async function timestampCarryOver(bigMiB = 64, reps = 5): Promise<CarryOver> {
  const n = (bigMiB * 2 ** 20) / 8; // floats in each of the copy's two buffers
  const src = Tensor.fromArray(new Float32Array(n), [n]);
  const dst = Tensor.empty([n]);
  const decls = '@group(0) @binding(0) var<storage, read> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;';
  const big = elementwiseKernel('carry_probe_copy', n, decls, 'y[i] = x[i];');
  const small = elementwiseKernel('carry_probe_small', 256, decls, 'y[i] = x[i] + 1.0;');
  const runBig = () => dispatch(big, [src, dst], elementwiseGrid(n));
  const runSmall = () => dispatch(small, [src, dst], elementwiseGrid(256));
  try {
    const pick = (perRep: Map<string, number>[], name: string) => median(perRep.map((r) => r.get(name) ?? 0));
    const alone = await profileReps(runSmall, reps, 'timestamp carry-over probe (alone)', { rawSpans: true });
    const after = await profileReps(() => { runBig(); runSmall(); }, reps, 'timestamp carry-over probe (after a copy)', { rawSpans: true });
    const aloneMs = pick(alone, 'carry_probe_small');
    const afterMs = pick(after, 'carry_probe_small');
    const bigMs = pick(after, 'carry_probe_copy');
    return { aloneMs, afterMs, bigMs, carries: afterMs > aloneMs + 0.25 * bigMs };
  } finally {
    src.dispose();
    dst.dispose();
  }
}

/** One line for a report: the probe's numbers and what they mean for the GPU times beside them. */
export function formatCarryOver(c: CarryOver): string {
  const us = (ms: number) => `${(1000 * ms).toFixed(1)} µs`;
  return `timestamp check: a 256-float kernel reads ${us(c.aloneMs)} alone, ${us(c.afterMs)} right after a ${us(c.bigMs)} copy it waits for: ` +
    (c.carries
      ? "CARRIES OVER: this adapter's raw pass timestamps charge a kernel for the kernels before it; the profiler times each kernel from the previous one's end instead (its notes count how many)"
      : 'no carry-over');
}
