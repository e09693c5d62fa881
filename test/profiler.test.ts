import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeGpu, dawnFlags, getGpu } from '../engine/device.ts';
import { backward, param } from '../engine/autograd.ts';
import { currentProfileScope, profileScope, runtimeStats, sync } from '../engine/runtime.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { formatProfile, formatScopeProfile, passSpans, Profiler, startProfiler, timestampNotes } from '../engine/profiler.ts';
import { conv2d } from '../kernels/conv2d.ts';
import { add, dot, relu } from '../kernels/elementwise.ts';
import { gpuBufferPrototype, randomArray } from './helpers.ts';

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

function makeConv(seed: number, N = 2, H = 8, W = 8, Ci = 3, Co = 16, K = 5) {
  const x = Tensor.fromArray(randomArray(N * H * W * Ci, seed), [N, H, W, Ci]);
  const w = Tensor.fromArray(randomArray(K * K * Ci * Co, seed + 1, -0.3, 0.3), [K, K, Ci, Co]);
  const b = Tensor.fromArray(randomArray(Co, seed + 2), [Co]);
  return { x, w, b };
}

describe('GPU profiler', () => {
  it('times each conv2d dispatch under its kernel name', async () => {
    const { x, w, b } = makeConv(1);
    const w1 = Tensor.fromArray(randomArray(16 * 8, 7, -0.3, 0.3), [1, 1, 16, 8]);
    const b1 = Tensor.fromArray(randomArray(8, 8), [8]);
    tidy(() => conv2d(conv2d(x, w, b, { relu: true }), w1, b1)); // compile both pipelines first (untimed)
    await sync();
    const prof = await startProfiler();
    const before = runtimeStats().dispatches;
    const steps = 3;
    for (let s = 0; s < steps; s++) {
      tidy(() => {
        const y = conv2d(x, w, b, { relu: true });
        conv2d(y, w1, b1);
      });
      prof.markStep();
    }
    const dispatched = runtimeStats().dispatches - before;
    prof.stop();
    const rows = await prof.collect();
    console.log(formatProfile(rows));
    const byName = new Map(rows.map((r) => [r.name, r]));
    expect([...byName.keys()].sort()).toEqual(['conv1x1_forward', 'conv5x5_forward']);
    for (const r of rows) {
      expect(r.calls).toBe(steps);
      expect(r.steps).toBe(steps);
      expect(r.callsPerStep).toBe(1);
      expect(r.totalMs).toBeGreaterThan(0);
      expect(r.meanMs).toBeCloseTo(r.totalMs / r.calls, 12);
      expect(r.msPerStep).toBeCloseTo(r.totalMs / steps, 12);
    }
    expect(rows.reduce((s, r) => s + r.calls, 0)).toBe(dispatched);
    expect(rows.reduce((s, r) => s + r.share, 0)).toBeCloseTo(1, 9);
    expect(rows[0].totalMs).toBeGreaterThanOrEqual(rows[1].totalMs);
    expect(prof.timestampsQuantized).toBeNull(); // fewer than 8 durations seen
    const table = formatProfile(rows);
    expect(table).toMatch(/conv5x5_forward/);
    expect(table).toMatch(/% of step/);
    for (const t of [x, w, b, w1, b1]) t.dispose();
  });

  it('counts forward and backward kernels and spans several query-set chunks', async () => {
    const { x, w, b } = makeConv(11, 1, 6, 6, 4, 8, 3);
    param(w); param(b);
    const r = Tensor.fromArray(randomArray(6 * 6 * 8, 14), [1, 6, 6, 8]);
    await sync();
    // 4 queries per chunk = 2 dispatches: every submission below spans several chunks.
    const prof = await startProfiler({ queriesPerSet: 4 });
    const before = runtimeStats().dispatches;
    tidy(() => {
      const y = conv2d(x, w, b, { relu: true });
      backward(dot(y, r));
    });
    const dispatched = runtimeStats().dispatches - before;
    prof.stop();
    const rows = await prof.collect();
    console.log(formatProfile(rows));
    const names = rows.map((row) => row.name);
    expect(names).toContain('conv3x3_forward');
    expect(names).toContain('conv3x3_grad_weight');
    expect(names).toContain('bias_grad'); // the row sums are named by what they are for
    expect(names).toContain('dot_sum');
    expect(rows.reduce((s, row) => s + row.calls, 0)).toBe(dispatched);
    expect(dispatched).toBeGreaterThan(2);
    for (const row of rows) expect(row.steps).toBe(1);
    expect(rows.find((row) => row.name === 'conv3x3_forward')!.totalMs).toBeGreaterThan(0);
    expect(prof.notes()).toEqual([]); // lavapipe runs passes one after another: no beginning moved, across chunks too
    w.grad?.dispose(); b.grad?.dispose();
    for (const t of [x, w, b, r]) t.dispose();
  });

  it("attributes each dispatch to its profile scope, and an op's backward to its forward's scope + ' backward'", async () => {
    const { x, w, b } = makeConv(21, 1, 5, 7, 3, 4, 3);
    param(w); param(b);
    const r = Tensor.fromArray(randomArray(5 * 7 * 4, 22), [1, 5, 7, 4]);
    await sync();
    const prof = await startProfiler();
    tidy(() => {
      const y = profileScope('block', () => profileScope('conv', () => conv2d(x, w, b, { relu: true })));
      const loss = profileScope('loss', () => dot(y, r));
      expect(currentProfileScope()).toBe('');
      backward(loss);
    });
    prof.stop();
    const scopes = await prof.collectByScope();
    const kernelsOf = (scope: string) => scopes.find((s) => s.scope === scope)?.kernels.map((k) => k.name).sort();
    expect(scopes.map((s) => s.scope).sort()).toEqual(['block / conv', 'block / conv backward', 'loss', 'loss backward'].sort());
    expect(kernelsOf('block / conv')).toEqual(['conv3x3_forward']);
    expect(kernelsOf('block / conv backward')).toEqual(expect.arrayContaining(['conv3x3_grad_weight', 'bias_grad']));
    expect(kernelsOf('block / conv backward')).not.toContain('conv3x3_forward');
    expect(kernelsOf('loss')).toEqual(['dot_sum', 'mul']); // dot: a product, then its sum
    expect(kernelsOf('loss backward')).toContain('fill'); // the loss's seed gradient, 1
    // The scopes split the kernels' time: the same calls and milliseconds as collect()'s rows.
    const rows = await prof.collect();
    const sum = (list: { calls: number; totalMs: number }[]) => list.reduce((t, q) => ({ calls: t.calls + q.calls, totalMs: t.totalMs + q.totalMs }), { calls: 0, totalMs: 0 });
    expect(sum(scopes).calls).toBe(sum(rows).calls);
    expect(sum(scopes).totalMs).toBeCloseTo(sum(rows).totalMs, 9);
    for (const s of scopes) expect(sum(s.kernels).totalMs).toBeCloseTo(s.totalMs, 9);
    expect(scopes.reduce((t, s) => t + s.share, 0)).toBeCloseTo(1, 9);
    // Slowest scope first.
    const order = scopes.map((s) => s.totalMs);
    expect(order).toEqual([...order].sort((p, q) => q - p));
    // A scope ends with its function, also when it throws.
    expect(() => profileScope('failing', () => { throw new Error('x'); })).toThrow('x');
    expect(currentProfileScope()).toBe('');
    w.grad?.dispose(); b.grad?.dispose();
    for (const t of [x, w, b, r]) t.dispose();
  });

  it("a tensor used twice adds its gradients in the backward of the op whose gradient comes second; a second backward() without zeroGrad adds under 'gradient accumulation'", async () => {
    const x = param(Tensor.fromArray(randomArray(30, 23), [2, 3, 5]));
    const r = Tensor.fromArray(randomArray(30, 24), [2, 3, 5]);
    await sync();
    const prof = await startProfiler();
    for (let pass = 0; pass < 2; pass++) {
      tidy(() => {
        const loss = profileScope('second', () => dot(add(profileScope('first', () => relu(x)), x), r)); // x read by relu and by add
        backward(loss);
      });
    }
    prof.stop();
    const scopes = await prof.collectByScope();
    const kernelsOf = (scope: string) => scopes.find((s) => s.scope === scope)?.kernels.map((k) => k.name).sort();
    // (backward reaches add first, then relu, whose gradient for x is the one added to add's)
    expect(kernelsOf('second / first backward')).toContain('add_inplace');
    expect(kernelsOf('second backward')).not.toContain('add_inplace');
    expect(kernelsOf('gradient accumulation')).toEqual(['add_inplace']);
    expect(scopes.map((s) => s.scope)).not.toContain('backward');
    expect(scopes.map((s) => s.scope)).not.toContain('');
    x.grad?.dispose();
    for (const t of [x, r]) t.dispose();
  });

  it('formatScopeProfile: slowest scope first, its share, its slowest kernel, and a total row', () => {
    const row = (name: string, calls: number, totalMs: number, share: number) =>
      ({ name, calls, totalMs, meanMs: totalMs / calls, share, steps: 2, callsPerStep: calls / 2, msPerStep: totalMs / 2 });
    const scope = (name: string, kernels: ReturnType<typeof row>[]) => ({
      ...row(name, kernels.reduce((t, k) => t + k.calls, 0), kernels.reduce((t, k) => t + k.totalMs, 0), kernels.reduce((t, k) => t + k.share, 0)),
      scope: name, kernels,
    });
    const table = formatScopeProfile([scope('layer 1 backward', [row('grad_input', 2, 3, 0.6), row('bias_grad', 2, 1, 0.2)]), scope('', [row('fill', 2, 1, 0.2)])]).split('\n');
    expect(table[0]).toBe('GPU time per scope (2 steps; GPU timestamps)');
    const cells = table.map((l) => l.split(/\s{2,}/));
    expect(cells[1]).toEqual(['scope', 'calls/step', 'ms/step', '% of step', 'slowest kernel (ms/step)']);
    expect(cells.slice(3, 5)).toEqual([
      ['layer 1 backward', '2', '2.000', '80.0', 'grad_input 1.500'],
      ['(no scope)', '1', '0.5000', '20.0', 'fill 0.5000'],
    ]);
    expect(cells[6]).toEqual(['total', '3', '2.500', '100.0']);
  });

  it('records nothing while profiling is off, and reset() forgets earlier work', async () => {
    const { x, w, b } = makeConv(21);
    await sync();
    const prof = await startProfiler();
    tidy(() => conv2d(x, w, b));
    await prof.reset();
    expect(await prof.collect()).toEqual([]);
    prof.stop();
    // Off: dispatches after stop() are not timed.
    tidy(() => { conv2d(x, w, b); conv2d(x, w, b); });
    await sync();
    expect(await prof.collect()).toEqual([]);
    // A profiler that was never started sees nothing either.
    const idle = new Profiler(await getGpu());
    tidy(() => conv2d(x, w, b));
    await sync();
    expect(await idle.collect()).toEqual([]);
    for (const t of [x, w, b]) t.dispose();
  });

  it('times at ns resolution by default: Dawn\'s timestamp quantization is off unless NIN_DAWN_FLAGS names it', async () => {
    expect(dawnFlags(undefined)).toEqual(['disable-dawn-features=timestamp_quantization']);
    expect(dawnFlags('enable-dawn-features=allow_unsafe_apis disable-dawn-features=lazy_clear_resource_on_first_use')).toEqual([
      'enable-dawn-features=allow_unsafe_apis', 'disable-dawn-features=lazy_clear_resource_on_first_use,timestamp_quantization',
    ]);
    expect(dawnFlags(' enable-dawn-features=timestamp_quantization ')).toEqual(['enable-dawn-features=timestamp_quantization']);
    // A malformed flag made Dawn's instance fail, reported as "no adapter" without the variable.
    expect(() => dawnFlags('garbage')).toThrow("NIN_DAWN_FLAGS='garbage': 'garbage' is not a key=value Dawn flag");
    expect(() => dawnFlags('backend=d3d12')).toThrow("NIN_DAWN_FLAGS='backend=d3d12': set the backend with NIN_BACKEND, not in the Dawn flags");
    if (process.env.NIN_DAWN_FLAGS?.includes('timestamp_quantization')) return; // the run chose otherwise
    const { x, w, b } = makeConv(31);
    await sync();
    const prof = await startProfiler();
    for (let i = 0; i < 12; i++) tidy(() => conv2d(x, w, b));
    prof.stop();
    const rows = await prof.collect();
    expect(prof.timestampsQuantized).toBe(false); // 12 timed dispatches, not all on the 65.536 µs grid
    expect(prof.notes()).toEqual([]);
    const table = formatProfile(rows, { notes: ['note: first', 'note: second'] }).split('\n');
    expect(table.slice(-3)).toEqual([expect.stringMatching(/^total /), 'note: first', 'note: second']);
    for (const t of [x, w, b]) t.dispose();
  });

  it('notes quantized timestamps under the table (a process with quantization on)', () => {
    const script = `
      const { getGpu } = await import('./engine/device.ts');
      const { startProfiler } = await import('./engine/profiler.ts');
      const { Tensor, tidy } = await import('./engine/tensor.ts');
      const { conv2d } = await import('./kernels/conv2d.ts');
      await getGpu();
      const t = (shape) => Tensor.fromArray(Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.sin(i)), shape);
      const x = t([2, 8, 8, 3]), w = t([3, 3, 3, 16]), b = t([16]);
      const prof = await startProfiler();
      for (let i = 0; i < 12; i++) tidy(() => conv2d(x, w, b));
      prof.stop();
      await prof.collect();
      console.log(JSON.stringify({ quantized: prof.timestampsQuantized, notes: prof.notes() }));
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8', stdio: 'pipe', timeout: 60_000, env: { ...process.env, NIN_DAWN_FLAGS: 'enable-dawn-features=timestamp_quantization' },
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(r.quantized).toBe(true);
    expect(r.notes).toEqual([expect.stringMatching(/^note: every duration is a multiple of 65\.536 µs, so Dawn quantizes timestamps/)]);
  });

  it('counts dispatches after the last markStep() as one more step', async () => {
    const { x, w, b } = makeConv(41);
    tidy(() => conv2d(x, w, b));
    await sync();
    const prof = await startProfiler();
    for (let s = 0; s < 3; s++) {
      tidy(() => conv2d(x, w, b));
      if (s < 2) prof.markStep(); // the third step is not marked
    }
    prof.stop();
    const [row, ...others] = await prof.collect();
    expect(others).toEqual([]);
    expect([row.calls, row.steps, row.callsPerStep]).toEqual([3, 3, 1]);
    expect(row.msPerStep).toBeCloseTo(row.totalMs / 3, 12);
    for (const t of [x, w, b]) t.dispose();
  });

  it('formatProfile: slowest kernel first, per step, its share in percent, and a total row', () => {
    const row = (name: string, calls: number, totalMs: number, share: number) =>
      ({ name, calls, totalMs, meanMs: totalMs / calls, share, steps: 2, callsPerStep: calls / 2, msPerStep: totalMs / 2 });
    const table = formatProfile([row('fast', 2, 1, 0.25), row('slow', 4, 3, 0.75)]).split('\n');
    expect(table[0]).toBe('GPU time per kernel (2 steps; GPU timestamps)');
    const cells = table.map((l) => l.trimEnd().split(/\s{2,}/));
    expect(cells[1]).toEqual(['kernel', 'calls/step', 'ms/step', '% of step', 'ms/call']);
    expect(cells.slice(3, 5)).toEqual([
      ['slow', '2', '1.500', '75.0', '0.7500'],
      ['fast', '1', '0.5000', '25.0', '0.5000'],
    ]);
    expect(cells[6]).toEqual(['total', '3', '2.000', '100.0']); // 1.5 + 0.5 ms a step
    expect(table).toHaveLength(7);
  });

  it('passSpans: a pass is timed from the end of the passes before it where its beginning came earlier (carried-over timestamps)', () => {
    const spans = (stamps: number[], previousEnd: number | null = null, moveBegins = true) => {
      const r = passSpans(BigUint64Array.from(stamps.map(BigInt)), previousEnd === null ? null : BigInt(previousEnd), moveBegins);
      return { ...r, lastEnd: r.lastEnd === null ? null : Number(r.lastEnd) };
    };
    // Passes one after another: their spans as they are.
    expect(spans([0, 10, 12, 20, 20, 35])).toEqual({ ns: [10, 8, 15], negative: 0, moved: 0, movedNs: 0, lastEnd: 35 });
    // Each beginning stamped while the pass before still ran: timed from its end; the sum is the wall span.
    expect(spans([0, 10, 2, 18, 3, 30])).toEqual({ ns: [10, 8, 12], negative: 0, moved: 2, movedNs: 8 + 15, lastEnd: 30 });
    expect(spans([0, 10, 2, 18, 3, 30], null, false)).toEqual({ ns: [10, 16, 27], negative: 0, moved: 0, movedNs: 0, lastEnd: 30 });
    // The end of the previous chunk of the same submission counts.
    expect(spans([5, 9], 7)).toEqual({ ns: [2], negative: 0, moved: 1, movedNs: 2, lastEnd: 9 });
    expect(spans([5, 9], 7, false)).toEqual({ ns: [4], negative: 0, moved: 0, movedNs: 0, lastEnd: 9 });
    // A pass inside the one before (they overlapped): 0 ns, and the later end stays the reference.
    expect(spans([0, 20, 5, 15, 16, 30])).toEqual({ ns: [20, 0, 10], negative: 0, moved: 2, movedNs: 10 + 4, lastEnd: 30 });
    // An end before its beginning: 0 ns, counted, and not a reference for the next.
    expect(spans([10, 5, 6, 12])).toEqual({ ns: [0, 6], negative: 1, moved: 0, movedNs: 0, lastEnd: 12 });
  });

  // lavapipe's passes never carry over, so the profiler's own use of passSpans is shown on timestamps
  // read back as a GPU whose front end runs ahead would write them: each pass stamped as begun 50 µs
  // before the one before it ended, then running 100 µs; queriesPerSet 4, so the 7 passes of the
  // one submission span four chunks and the previous end must carry across them.
  it('times each pass from the end of the one before across query-set chunks, and not with rawSpans (timestamps as a carrying-over GPU writes them)', async () => {
    const x = Tensor.fromArray(randomArray(64, 3), [64]);
    tidy(() => relu(x)); // compiled before timing
    await sync();
    const proto = gpuBufferPrototype();
    const real = proto.getMappedRange;
    let clock = 0n;
    const mapped = vi.spyOn(proto, 'getMappedRange').mockImplementation(function (this: GPUBuffer, offset?: number, size?: number) {
      if (this.label !== 'profiler staging') return real.call(this, offset, size);
      const stamps = new BigUint64Array(size! / 8);
      for (let j = 0; j < stamps.length; j += 2) {
        stamps[j] = clock - 50_000n;
        clock += 100_000n;
        stamps[j + 1] = clock;
      }
      return stamps.buffer;
    });
    try {
      for (const rawSpans of [false, true]) {
        clock = 1_000_000n;
        const prof = await startProfiler({ queriesPerSet: 4, rawSpans });
        for (let i = 0; i < 7; i++) tidy(() => relu(x));
        prof.stop();
        const [row, ...others] = await prof.collect();
        expect(others).toEqual([]);
        expect(row.calls).toBe(7);
        if (rawSpans) {
          expect(row.totalMs).toBeCloseTo(7 * 0.15, 9); // each raw span 150 µs
          expect(prof.notes()).toEqual([]);
        } else {
          expect(row.totalMs).toBeCloseTo(0.15 + 6 * 0.1, 9); // the first as stamped, the six after it from the end before
          expect(prof.notes()).toEqual([expect.stringMatching(/^note: by their timestamps, 6 dispatches began before the one before ended .*took 0\.300 ms off their raw spans$/)]);
        }
      }
    } finally {
      mapped.mockRestore();
      x.dispose();
    }
  });

  it("timestampNotes: one line for each thing the timestamps showed, none when they were clean", () => {
    expect(timestampNotes({ quantized: false, negative: 0, moved: 0, movedNs: 0 })).toEqual([]);
    const [quantized, negative, moved] = timestampNotes({ quantized: true, negative: 1, moved: 3, movedNs: 1_234_567 });
    expect(quantized).toMatch(/^note: every duration is a multiple of 65\.536 µs/);
    expect(negative).toBe('note: by their timestamps, 1 dispatch ended before beginning; counted as 0 ms');
    expect(moved).toBe("note: by their timestamps, 3 dispatches began before the one before ended (timestamps that carry over, or passes that overlapped): each timed from that end, which took 1.235 ms off their raw spans");
    expect(timestampNotes({ quantized: false, negative: 2, moved: 1, movedNs: 500 })).toEqual([
      'note: by their timestamps, 2 dispatches ended before beginning; counted as 0 ms',
      expect.stringMatching(/^note: by their timestamps, 1 dispatch began .* took 0\.001 ms off/),
    ]);
  });

  it('refuses a queriesPerSet that is odd or outside [2, 4096]', async () => {
    const g = await getGpu();
    for (const n of [3, 0, 4098]) expect(() => new Profiler(g, { queriesPerSet: n }), String(n)).toThrow(`queriesPerSet must be an even number in [2, 4096], got ${n}`);
    expect(() => new Profiler(g, { queriesPerSet: 2 })).not.toThrow();
  });

  it('explains a missing timestamp-query feature', async () => {
    const g = await getGpu();
    const fake = { ...g, features: new Set<string>() };
    expect(() => new Profiler(fake)).toThrow(/timestamp-query/);
  });
});
