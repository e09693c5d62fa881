// GPU time per repetition for the benches: `reps` runs under one profiler, each run's per-kernel
// milliseconds taken as the difference of the profiler's running sums (never reset: telling
// whether Dawn quantizes timestamps needs 8 non-zero durations, more than one run may have).
// A quantized profile stops the bench: its kernel times would be 0 or multiples of 65.536 µs,
// not reportable (engine/device.ts dawnFlags turns the quantization off by default).
import { startProfiler } from '../engine/profiler.ts';
import { sync } from '../engine/runtime.ts';

let verified = false;

/** True until some profile had enough non-zero durations to show its timestamps are not quantized. */
export function timestampsUnchecked(): boolean {
  return !verified;
}

/**
 * Runs `run` once to warm up (pipeline creation), then `reps` times profiled; returns each rep's
 * GPU ms per kernel name. `what` names the measurement in errors and in the profiler's notes.
 */
export async function profileReps(run: () => void, reps: number, what: string): Promise<Map<string, number>[]> {
  run();
  await sync();
  const prof = await startProfiler();
  const perRep: Map<string, number>[] = [];
  const before = new Map<string, number>();
  try {
    for (let r = 0; r < reps; r++) {
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
