// `nin train --dry-run`: the run's own first steps, timed; what the whole run would take; nothing written.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeGpu, getGpu, gpu } from '../engine/device.ts';
import { pool, trimPool } from '../engine/runtime.ts';
import { Tensor } from '../engine/tensor.ts';
import { saveCheckpoint } from '../nin/checkpoint.ts';
import { parseTrainArgs } from '../nin/cli.ts';
import { loadSplits } from '../nin/datasets.ts';
import { dryRun, dryRunLine } from '../nin/dry-run.ts';
import { modelConfig, NinModel } from '../nin/model.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import { SGD } from '../kernels/sgd.ts';
import { fill } from '../kernels/elementwise.ts';
import { learningRate } from '../nin/schedule.ts';
import { dropoutSeed, RunRefused, train, TrainingStopped } from '../nin/train.ts';
import { ALLOCATION_FAULT, runAsync } from './helpers.ts';
import { errorWithStepOutOfMemory, haveMnist, mnistSmallOptions as options, saveUntrained } from './training-runs.ts';
import { shellWord } from '../nin/text.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-dry-run-'));

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

describe.skipIf(!haveMnist)('nin train --dry-run', () => {
  it("takes the run's own first steps: on a training set no larger than its sample, the run's losses, step for step", async () => {
    // 64 images, 4 steps an epoch: the dry run's steps run on through the loader's epochs as the run's do.
    const base = ['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '3', '--lr', '0.05', '--warmup', '0.5', '--seed', '7'];
    trimPool(); // (each starts with no idle buffers: the peaks held are then theirs alone)
    const run = await train(options([...base, '--out', join(tmp, 'the-run')]), await loadSplits(options(base)));
    const o = options([...base, '--out', join(tmp, 'dry')]);
    Tensor.empty([1 << 22]).dispose(); // a peak of 16 MiB before it: not its own
    trimPool();
    const liveBefore = pool().stats.liveBuffers;
    const r = await dryRun(o, await loadSplits(o));
    // The memory the run's first epoch (its steps, then its evaluation) held, to the byte.
    expect(r.peakHeldBytes).toBe(run.epochs[0].gpuPeakBytes);
    expect(run.stepLosses).toHaveLength(12);
    expect(r.losses.length).toBeGreaterThan(12);
    expect(r.losses.slice(0, 12)).toEqual(run.stepLosses);
    expect(existsSync(join(tmp, 'dry'))).toBe(false);
    expect(pool().stats.liveBuffers).toBe(liveBefore); // (the model, optimiser and batches freed)
    // The estimate: the run's 12 steps at the timed rate, and 3 evaluations of one 16-image batch.
    expect(r).toMatchObject({ stepsLeft: 12, epochsLeft: 3, evalBatches: 1, timedSteps: r.losses.length - 2 });
    // The largest batch the adapter binds: its limit over mnist-small's widest activation, [28, 28, 16] floats an image.
    expect(r.largestBatch).toBe(Math.floor(gpu().limits.maxStorageBufferBindingSize / (4 * 28 * 28 * 16)));
    expect(r.trainSeconds).toBeCloseTo(12 * r.stepSeconds, 9);
    expect(r.evalSeconds).toBeCloseTo(3 * r.evalBatchSeconds, 9);
    expect(r.stepSeconds).toBeGreaterThan(0);
    expect(r.evalBatchSeconds).toBeGreaterThan(0);
    expect(r.peakLiveBytes).toBeGreaterThan(0);
    expect(r.peakHeldBytes).toBeGreaterThanOrEqual(r.peakLiveBytes);
    expect(dryRunLine(o, r)).toMatch(/^dry run on .+: the run's 12 steps \(3 epochs\) would take about [\d.]+s \([\d.]+s training, [\d.]+s evaluating; loading and preprocessing the data not counted\), with [\d.]+ [KM]iB of GPU memory at batch 16$/);
  });

  it('--weights-from: the run\'s first steps from those weights, as the run takes them', async () => {
    // A checkpoint of another seed's initial weights: the losses match only where both start from them.
    const ckpt = await saveUntrained(options(['--seed', '99', '--out', join(tmp, 'weights-source')]), join(tmp, 'weights-source.safetensors'), 99);
    const base = ['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1', '--weights-from', ckpt];
    const said = { run: [] as string[], dry: [] as string[] };
    const run = await train({ ...options([...base, '--out', join(tmp, 'weights-run')]), log: (l) => void said.run.push(l) }, await loadSplits(options(base)));
    const o = { ...options([...base, '--out', join(tmp, 'weights-dry')]), log: (l: string) => void said.dry.push(l) };
    const r = await dryRun(o, await loadSplits(o));
    expect(r.losses.slice(0, 4)).toEqual(run.stepLosses);
    // It says which weights it took, as the run does (it took them silently).
    const took = (lines: string[]) => lines.filter((l) => l.startsWith('weights from '));
    expect(took(said.dry)).toEqual([`weights from ${ckpt} (mnist-small after epoch 1, trained on mnist): 18 of 18 parameter tensors`]);
    expect(took(said.dry)).toEqual(took(said.run));
    const fresh = await dryRun(options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1', '--out', join(tmp, 'fresh-dry')]), await loadSplits(o));
    expect(fresh.losses[0]).not.toBe(r.losses[0]);
  });

  it("of a resume: the steps and evaluations left from the checkpoint, a validation set's batches too; the plateau schedule's time is a bound", async () => {
    const o = options(['--batch', '16', '--train-limit', '200', '--val', '40', '--test-limit', '20', '--epochs', '4', '--out', join(tmp, 'resumed')]);
    // Saved within epoch 2 (after 3 of its 10 batches): 7 of it and 2 more epochs left.
    const model = new NinModel(modelConfig(o), 1);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    const ckpt = join(tmp, 'resumed.safetensors');
    for (const p of model.params) fill(p.tensor, 0); // (its logits all 0: its first loss is ln 10)
    await saveCheckpoint(ckpt, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 13, options: o, partialEpoch: { batches: 3, stepsPerEpoch: 10, lossSum: 1, wrong: 1, seen: 48, seconds: 1 } });
    model.dispose();
    opt.dispose();
    const lines: string[] = [];
    const resumed = { ...parseTrainArgs(['--resume', ckpt, '--schedule', 'plateau']).options, progress: false, log: (l: string) => lines.push(l) };
    const forward = vi.spyOn(NinModel.prototype, 'lossAndGradients');
    const r = await dryRun(resumed, await loadSplits(resumed));
    const seeds = forward.mock.calls.map((c) => c[2]?.seed);
    forward.mockRestore();
    // 160 training images (10 batches), 40 validation (3) and 20 test (2).
    expect(r).toMatchObject({ stepsLeft: 2 * 10 + 7, epochsLeft: 3, evalBatches: 3 + 2 });
    expect(lines[0]).toMatch(/^dry run: .* \(the checkpoint's preprocessing\); nothing is written \(the run would write in .*resumed\)$/);
    // The run's own notes on a resume that changes the schedule (a cosine's rate there, a plateau's now).
    expect(lines).toContainEqual(expect.stringMatching(/^note: the learning rate goes on at [\d.e-]+ under this run's schedule; the checkpoint's would have it at [\d.e-]+ here$/));
    expect(dryRunLine(resumed, r)).toMatch(/: the run's 27 steps \(3 epochs\) would take at most about /);
    expect(r.evalSeconds).toBeCloseTo(3 * 5 * r.evalBatchSeconds, 9); // 3 evaluations of 5 batches
    expect(r.losses[0]).toBeCloseTo(Math.log(10), 5); // from the checkpoint's weights
    // Its steps take the run's own dropout seeds from the checkpoint's step 13 on.
    expect(seeds.slice(0, 3)).toEqual([13, 14, 15].map((k) => dropoutSeed(resumed.seed, k)));
    // And its rates, under the checkpoint's cosine schedule (the plateau's is flat): from step 13 on.
    const cosine = { ...parseTrainArgs(['--resume', ckpt]).options, progress: false, log: () => {} };
    const steps = vi.spyOn(SGD.prototype, 'step');
    await dryRun(cosine, await loadSplits(cosine));
    const rates = steps.mock.calls.map((c) => c[0]);
    steps.mockRestore();
    expect(rates.slice(0, 3)).toEqual([13, 14, 15].map((k) => learningRate(cosine, k, 10)));
    expect(existsSync(join(tmp, 'resumed'))).toBe(false);
  });

  it('a loss that is not finite stops it, naming the step, and leaves no GPU buffer behind', async () => {
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--out', join(tmp, 'diverged')]);
    const data = await loadSplits(o);
    const item = Tensor.prototype.item;
    let calls = 0;
    const spy = vi.spyOn(Tensor.prototype, 'item').mockImplementation(function (this: Tensor) {
      return ++calls === 4 ? Promise.resolve(NaN) : item.call(this);
    });
    try {
      const liveBefore = pool().stats.liveBuffers;
      const err = await dryRun(o, data).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(TrainingStopped);
      expect(err.message).toBe('loss is NaN at step 3 (after 3 steps of the dry run): the run would stop there, diverged (a lower --lr or a longer --warmup may help)');
      expect(pool().stats.liveBuffers).toBe(liveBefore); // (step 5's readback was in flight: waited for, its loss freed)
    } finally {
      spy.mockRestore();
    }
  });

  it('a device out of memory is said with the batch, and leaves no GPU buffer behind', async (ctx) => {
    if (gpu().limits.maxBufferSize < ALLOCATION_FAULT) return ctx.skip();
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--out', join(tmp, 'out-of-memory')]);
    const data = await loadSplits(o);
    trimPool(); // (the first step's buffers made anew, not taken from the earlier tests')
    const liveBefore = pool().stats.liveBuffers;
    const err = await errorWithStepOutOfMemory(() => dryRun(o, data));
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toMatch(/^GPU out of memory: the device could not make a buffer of .*; at batch 16: a smaller --batch needs less memory$/);
    expect(pool().stats.liveBuffers).toBe(liveBefore);
  });

  it('is refused as the run would be: an --out that another run has taken since the flags were read', async () => {
    const dir = join(tmp, 'taken');
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--out', dir]); // (the CLI's own check passes: the directory is not there yet)
    mkdirSync(dir);
    writeFileSync(join(dir, 'metrics.jsonl'), '{"kind":"start"}\n');
    writeFileSync(join(dir, 'checkpoint.safetensors'), '');
    const err = await dryRun(o, await loadSplits(o)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(RunRefused);
    expect(err.message).toBe(`${dir} already holds a run (checkpoint.safetensors, metrics.jsonl): continue it with --resume ${shellWord(dir)}, choose another --out, or add --overwrite to start afresh there (the files there are kept, renamed *.superseded*)`);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint.safetensors', 'metrics.jsonl']);
  });

  it('from the command line: the timings, memory and estimate; --profile adds the timed steps\' tables; no run directory', async () => {
    const out = join(tmp, 'cli');
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'train', '--dry-run', '--profile', '--train-limit', '160', '--test-limit', '40', '--epochs', '2', '--out', out], { timeout: 300_000 });
    expect(r.stderr).not.toMatch(/nin: /);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^dry run on .+: the run's 20 steps \(2 epochs\) would take about [\d.]+s \([\d.]+s training, [\d.]+s evaluating; loading and preprocessing the data not counted\), with [\d.]+ [KM]iB of GPU memory at batch 16\n$/);
    expect(r.stderr).toMatch(/\ntraining: 2 epochs of 10 steps of 16 images; lr 0\.025, cosine/); // (the main job's recipe)
    expect(r.stderr).toMatch(/\ntraining: \d+ steps timed, [\d.]+ ms a step \([\d.]+ img\/s\); loss [\d.]+ at the first step, [\d.]+ at the last\n/);
    expect(r.stderr).toMatch(/\nper-kernel GPU time, dry run, per step \(mean over its last \d+ steps\)\n/);
    expect(r.stderr).toMatch(/\nper-layer GPU time, dry run, /);
    expect(r.stderr).toMatch(/\nevaluation: [\d.]+ ms a batch of 16: [\d.]+s an epoch for its 40 test images\n/);
    expect(r.stderr).toMatch(/\nGPU memory: the engine's buffers held [\d.]+ [KM]iB at most \([\d.]+ [KM]iB of it in tensors at once\), at batch 16\n/);
    expect(r.stderr).toMatch(/\nthis adapter binds a batch of up to \d+ images for mnist-small \(its largest tensor against maxStorageBufferBindingSize, [\d.]+ [KMG]iB\)\n/);
    expect(existsSync(out)).toBe(false);
  });
});
