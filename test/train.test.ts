// Training on real MNIST (small subsets): accuracy beats chance, checkpoints round-trip, a resumed
// run repeats the uninterrupted run's losses exactly, a diverging run stops with a named error,
// and predict / visualize work from a checkpoint.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeGpu, getGpu, gpu } from '../engine/device.ts';
import { loadCheckpoint, saveCheckpoint } from '../nin/checkpoint.ts';
import { SGD } from '../kernels/sgd.ts';
import { fmtBytes, pool, runtimeStats, setAllocationFault, trimPool, upload } from '../engine/runtime.ts';
import { Profiler } from '../engine/profiler.ts';
import { Tensor } from '../engine/tensor.ts';
import { modelConfig, MODELS, NinModel } from '../nin/model.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import { loadSplits } from '../nin/datasets.ts';
import { main, parseTrainArgs, UsageError } from '../nin/cli.ts';
import { formatPredictions, predict, predictChunks, predictProbabilities, visualize, type Predictions } from '../nin/predict.ts';
import { trainingCurveSeries } from '../nin/plot.ts';
import { currentHistory, historyOfCheckpoint, logOfCheckpoint, moveRunAside, parseMetricsLog, runFileKind, runLog, savedStep } from '../nin/run-directory.ts';
import { chancePlateauWatch, classesWithoutImages, deadClassMapsWatch, epochLine, evaluate, logSumExp, progressEstimate, progressLine, RunRefused, train, warmMilliseconds, TrainingInterrupted, TrainingStopped, type EpochRecord, type TrainOptions } from '../nin/train.ts';
import { comparisonTable, readRuns } from '../nin/compare.ts';
import { readSafetensors, readSafetensorsMetadata, TENSOR_DATA_CHECKSUM, writeSafetensors, type TensorMap } from '../nin/safetensors.ts';
import type { ImageDataset } from '../nin/data/formats.ts';
import { deriveSeed } from '../nin/data/rng.ts';
import { PLATEAU_ON_VAL_WITHOUT_VAL } from '../nin/schedule.ts';
import { ALLOCATION_FAULT, runAsync, withDeviceLimit } from './helpers.ts';
import { errorWithStepOutOfMemory, haveMnist, mnistSmallOptions as options, saveUntrained } from './training-runs.ts';
import { shellWord } from '../nin/text.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-train-'));

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

/** <tmp>/<name>.safetensors: mnist-small with the paper's ReLU on its class maps, untrained, the last
 * biases pushed to −100: every map is 0 after the ReLU, as when a run's maps die (the paper's
 * CIFAR-10 recipe, see README). Its run directory is <tmp>/<name>, its training set `images`
 * images, to be cut into batches of 16 (the batch size of most tests here, whose kernels a cold
 * shader cache compiles once). */
async function deadMapsCheckpoint(name: string, images: number): Promise<string> {
  const o = options(['--class-maps', 'relu', '--preprocess', 'none', '--train-limit', String(images), '--epochs', '2', '--out', join(tmp, name)]);
  const ckpt = await saveUntrained(o, join(tmp, `${name}.safetensors`));
  const { tensors, metadata } = readSafetensors(ckpt);
  const lastBias = Object.keys(tensors).filter((k) => /^param\.block\d+\.b3$/.test(k)).sort().at(-1)!;
  (tensors[lastBias].data as Float32Array).fill(-100);
  writeSafetensors(ckpt, tensors, metadata);
  return ckpt;
}

describe.skipIf(!haveMnist)('training on MNIST', () => {
  it('beats chance by a wide margin after a short run', async () => {
    const o = options(['--epochs', '3', '--batch', '16', '--lr', '0.02', '--schedule', 'cosine', '--warmup', '0.1', '--train-limit', '2000', '--test-limit', '500', '--out', join(tmp, 'short'), '--seed', '3']);
    const data = await loadSplits(o);
    expect(data.consumable).toBe(true); // fresh arrays: train() standardises them in place
    const r = await train(o, data);
    expect(data.test.images.every(Number.isInteger)).toBe(false);
    console.log(`short run: test error ${(100 * r.test!.error).toFixed(1)}% on ${r.test!.count} images after ${o.epochs} epochs of ${data.train.count}`);
    expect(r.test!.count).toBe(500);
    expect(r.test!.error).toBeLessThan(0.35); // chance is 0.9
    const ckpt = loadCheckpoint(r.checkpoint);
    expect(ckpt.epoch).toBe(3);
    expect(ckpt.step).toBe(375);
    expect(ckpt.config.name).toBe('mnist-small');
    expect(ckpt.preprocessor.kind).toBe('standardize');
    const metrics = readFileSync(join(tmp, 'short', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.kind === 'epoch').map((m) => [m.epoch, m.testImages])).toEqual([[1, 500], [2, 500], [3, 500]]);
    // The log's numbering is the one the curves read: epoch k's steps end where its record sits.
    // A step loss sits at its step: step s of epoch k (0-based, 125 steps each) at k + (s - 125k + 1) / 125.
    expect(metrics[0]).toMatchObject({ kind: 'start', stepsPerEpoch: 125 });
    // How the run was made, in its log as in its checkpoint: options, network, adapter, software.
    const header = readSafetensorsMetadata(r.checkpoint);
    expect(metrics[0].provenance).toEqual({ options: JSON.parse(header.options), config: JSON.parse(header.config), adapter: header.adapter, software: JSON.parse(header.software) });
    expect(metrics[0].provenance.software).toMatchObject({ nin: expect.stringMatching(/^\d+\.\d+\.\d+/), node: process.version });
    const { loss } = trainingCurveSeries(metrics);
    const stepX = loss[0].points.map((p) => p[0]);
    const lastStep = metrics.filter((m) => m.kind === 'step').at(-1);
    expect(stepX[0]).toBeCloseTo(1 / 125, 12);
    expect(stepX.at(-1)).toBeCloseTo(2 + (lastStep.step - 250 + 1) / 125, 12);
    expect(loss.find((c) => c.name === 'test loss')!.points.map((p) => p[0])).toEqual([1, 2, 3]);
  });

  it('a resume that changes the schedule says where the rate goes on: a cosine over more epochs restarts part way up', async () => {
    const base = ['--batch', '16', '--lr', '0.02', '--schedule', 'cosine', '--warmup', '0', '--train-limit', '64', '--test-limit', '16', '--seed', '5'];
    const first = await train(options([...base, '--epochs', '2', '--stop-after', '1', '--out', join(tmp, 'lr-note')]), await loadSplits(options(base)));
    const notes = async (name: string, extra: string[], from = first.checkpoint) => {
      const lines: string[] = [];
      const o = { ...options(['--resume', from, '--out', join(tmp, name), ...extra]), log: (l: string) => lines.push(l) };
      await train(o, await loadSplits(o));
      return lines.filter((l) => l.startsWith('note: the learning rate'));
    };
    expect(await notes('lr-note-same', [])).toEqual([]);
    // Half way through a cosine over 2 epochs the rate is lr / 2; over 4 it is lr (1 + cos(π/4)) / 2.
    expect(await notes('lr-note-longer', ['--epochs', '4'])).toEqual([
      `note: the learning rate goes on at ${(0.01 * (1 + Math.cos(Math.PI / 4))).toPrecision(3)} under this run's schedule; the checkpoint's would have it at ${(0.01).toPrecision(3)} here`,
    ]);
    // The resume record keeps what changed, and `nin compare` says so: its table shows the last settings.
    const resumeRecord = (name: string) => parseMetricsLog(readFileSync(join(tmp, name, 'metrics.jsonl'), 'utf8')).find((r) => (r as { kind: string }).kind === 'resume') as { changed?: unknown };
    expect(resumeRecord('lr-note-same').changed).toBeUndefined();
    expect(resumeRecord('lr-note-longer').changed).toEqual({ epochs: ['2', '4'] });
    expect(comparisonTable(readRuns([join(tmp, 'lr-note'), join(tmp, 'lr-note-longer')]))).toContain('note: lr-note-longer forked from lr-note after epoch 1 with epochs 2 → 4: its settings above are the last ones');
    // Saved lr steps a flag replaces for being damaged are not read for the note (a TypeError was).
    const { tensors, metadata } = readSafetensors(first.checkpoint);
    const damaged = join(tmp, 'lr-note-damaged.safetensors');
    writeSafetensors(damaged, tensors, { ...metadata, options: JSON.stringify({ ...JSON.parse(metadata.options), schedule: 'step', stepEpochs: null }) });
    expect(await notes('lr-note-damaged', ['--lr-steps', '1'], damaged)).toEqual([]);
    // A plateau run saved after two drops (lr / 100): leaving that schedule for a constant rate
    // moves the rate from lr / 100 back to lr; naming the rate it had stays silent.
    const dropped = join(tmp, 'lr-note-plateau.safetensors');
    const plateauOptions = { ...JSON.parse(metadata.options), schedule: 'plateau', patience: 1, lrDrops: 2, plateauOn: 'train' };
    writeSafetensors(dropped, tensors, { ...metadata, options: JSON.stringify(plateauOptions), plateau: JSON.stringify({ on: 'train', drops: 2, best: 0.5, sinceBest: 0, finished: false }) });
    expect(await notes('lr-note-plateau-left', ['--schedule', 'constant'], dropped)).toEqual([
      `note: the learning rate goes on at ${(0.02).toPrecision(3)} under this run's schedule; the checkpoint's would have it at ${(0.0002).toPrecision(3)} here`,
    ]);
    expect(await notes('lr-note-plateau-kept', ['--schedule', 'constant', '--lr', '0.0002'], dropped)).toEqual([]);
    // Saved within epoch 1, after 2 of its 4 steps: the rates where the run stands, not at the epoch's start (both lr there).
    const mid = { ...options([...base, '--epochs', '2', '--out', join(tmp, 'lr-note-mid')]), interrupt: (step: number) => step === 2 };
    const cut = await train(mid, await loadSplits(mid)).then(() => null, (e) => e);
    expect(cut).toBeInstanceOf(TrainingInterrupted);
    expect(await notes('lr-note-mid-longer', ['--epochs', '4'], cut.checkpoint)).toEqual([
      `note: the learning rate goes on at ${(0.01 * (1 + Math.cos(Math.PI / 8))).toPrecision(3)} under this run's schedule; the checkpoint's would have it at ${(0.01 * (1 + Math.cos(Math.PI / 4))).toPrecision(3)} here`,
    ]);
  });

  it('a step-schedule run resumed for more epochs keeps its drops, and says where a new run would have them', async () => {
    const base = ['--batch', '16', '--lr', '0.02', '--schedule', 'step', '--warmup', '0', '--train-limit', '64', '--test-limit', '16', '--seed', '5'];
    const first = await train(options([...base, '--epochs', '4', '--stop-after', '1', '--out', join(tmp, 'steps-note')]), await loadSplits(options(base)));
    const notes = async (name: string, extra: string[]) => {
      const lines: string[] = [];
      const o = { ...options(['--resume', first.checkpoint, '--stop-after', '2', '--out', join(tmp, name), ...extra]), log: (l: string) => lines.push(l) };
      await train(o, await loadSplits(o));
      return { stepEpochs: o.stepEpochs, notes: lines.filter((l) => l.startsWith('note: the rate still drops')) };
    };
    expect(await notes('steps-note-same', [])).toEqual({ stepEpochs: [2, 3], notes: [] });
    expect(await notes('steps-note-longer', ['--epochs', '8'])).toEqual({
      stepEpochs: [2, 3],
      notes: ["note: the rate still drops at epochs 2, 3, as the checkpoint's run of 4 epochs; a new run of 8 would drop at 4, 6 (--lr-steps moves them)"],
    });
    expect(await notes('steps-note-moved', ['--epochs', '8', '--lr-steps', '4,6'])).toEqual({ stepEpochs: [4, 6], notes: [] });
  });

  it('--aug on digits says that a flip changes what a digit is', async () => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '32', '--test-limit', '16', '--epochs', '1', '--aug', '--out', join(tmp, 'aug-note')]), log: (l: string) => lines.push(l) };
    await train(o, await loadSplits(o));
    expect(lines).toContain("note: --aug flips images left to right, which changes what a digit is (the paper augmented CIFAR-10 only; mnist's default is no augmentation)");
    expect(lines.filter((l) => l.includes('--lr 0'))).toEqual([]);
    // The recipe as it runs, whatever made it (defaults, flags, a resume).
    expect(lines).toContain(`training: 1 epoch of 2 steps of 16 images; lr ${o.lr}, ${o.schedule}, ${o.warmupEpochs}-epoch warm-up; momentum 0.9, weight decay 0.0001; standardize preprocessing, augmentation on; seed 1`);
    expect(lines.filter((l) => l.includes('in its'))).toEqual([]); // the second step is past the warm-up
  });

  it('a run whose every step is in its warm-up says so', async () => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '16', '--test-limit', '16', '--epochs', '1', '--warmup', '0.3', '--out', join(tmp, 'all-warm-up')]), log: (l: string) => lines.push(l) };
    await train(o, await loadSplits(o));
    expect(lines).toContain(`training: 1 epoch of 1 step of 16 images; lr ${o.lr}, ${o.schedule}, 0.3-epoch warm-up; momentum 0.9, weight decay 0.0001; standardize preprocessing, augmentation off; seed 1`);
    expect(lines).toContain(`note: every step of this run is in its 0.3-epoch warm-up (1 step in all): the lr never reaches ${o.lr}; give more --epochs, or --warmup 0`);
    // MNIST's first 16 training images hold no 8.
    expect(lines).toContain('note: no training image is of class 8 (16 training images, --train-limit 16): the net cannot learn it');
  });

  it('classesWithoutImages: the classes no label is of', () => {
    const names = Array.from({ length: 12 }, (_, k) => `c${k}`);
    expect(classesWithoutImages(Int32Array.from([3, 0, 3, 11]), names)).toEqual(['c1', 'c2', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10']);
    expect(classesWithoutImages(Int32Array.from(names.map((_, k) => k)), names)).toEqual([]);
  });

  it('--lr 0 says that no step changes the weights', async () => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '32', '--test-limit', '16', '--epochs', '1', '--lr', '0', '--out', join(tmp, 'lr-zero')]), log: (l: string) => lines.push(l) };
    const r = await train(o, await loadSplits(o));
    expect(lines).toContain('note: --lr 0: no step changes the weights (every epoch evaluates the same model)');
    expect(lines).toContainEqual(expect.stringMatching(/^training: 1 epoch of 2 steps of 16 images; lr 0, .*; standardize preprocessing, augmentation off; seed 1$/));
    expect(r.stepLosses.length).toBe(2);
    // Not the watches' advice for a net that does not learn (a lower --lr).
    expect(lines.filter((l) => l.includes('a lower --lr'))).toEqual([]);
  });

  it("an epoch's record holds the mean training loss and error over the images it trained on, and the validation loss; the optimiser gets the run's momentum and weight decay", async () => {
    // At --lr 0 the weights never move (mnist-small has no dropout): the epoch's training loss and
    // error are those evaluate() finds for the saved model on the training images.
    const o = options(['--batch', '16', '--train-limit', '48', '--val', '16', '--test-limit', '16', '--epochs', '1', '--lr', '0', '--momentum', '0.5', '--weight-decay', '0.001', '--out', join(tmp, 'lr-zero-records')]);
    const step = vi.spyOn(SGD.prototype, 'step');
    let r: Awaited<ReturnType<typeof train>>;
    try {
      r = await train(o, await loadSplits(o));
      expect((step.mock.contexts[0] as SGD).opts).toEqual({ momentum: 0.5, weightDecay: 0.001 });
    } finally {
      step.mockRestore();
    }
    const saved = loadCheckpoint(r.checkpoint);
    const splits = await loadSplits(o);
    const model = saved.buildModel();
    try {
      const onTrain = await evaluate(model, await saved.preprocessor.applyTo(splits.train), 16);
      const onVal = await evaluate(model, await saved.preprocessor.applyTo(splits.validation!), 16);
      expect(onTrain.count).toBe(32);
      const [rec] = r.epochs;
      expect(rec.trainLoss).toBeCloseTo(onTrain.loss, 4);
      expect(rec.trainError).toBe(onTrain.error);
      expect(rec.valLoss).toBeCloseTo(onVal.loss, 6);
      expect(rec.valError).toBe(onVal.error);
    } finally {
      model.dispose();
    }
  });

  it("saves checkpoint.safetensors at each epoch's end only with --checkpoint-every 0, telling onCheckpoint; an interrupt at an epoch's last step waits for its evaluation, at the run's last step lets it finish; a stop names the last save", async () => {
    const dir = join(tmp, 'epoch-saves');
    const ckpt = join(dir, 'checkpoint.safetensors');
    const base = ['--batch', '16', '--train-limit', '32', '--test-limit', '16', '--epochs', '3', '--checkpoint-every', '0'];
    const saves: string[] = [];
    const lines: string[] = [];
    // Epoch 1's save takes 1.5 s longer (a sleep in onCheckpoint, which the save calls): the ETA counts it for each epoch left.
    const onCheckpoint = (p: string) => {
      if (saves.push(p) === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
    };
    const o = { ...options([...base, '--out', dir]), progress: true, log: (l: string) => lines.push(l), onCheckpoint, interrupt: (step: number) => step === 4 };
    const err = await train(o, await loadSplits(o)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(TrainingInterrupted);
    expect(err.message).toBe(`interrupted after epoch 2 (step 4); checkpoint ${ckpt}: --resume ${shellWord(ckpt)} continues from there`);
    expect(saves).toEqual([ckpt, ckpt]);
    expect(loadCheckpoint(ckpt)).toMatchObject({ epoch: 2, step: 4, partialEpoch: null });
    // Epoch 2's last line (the run's fourth step: its ETA is timed from the third on, across epochs):
    // 2 steps left, and two evaluations and saves left, each as long as epoch 1's (over 1.5 s).
    const eta = / ETA (\d+)s$/.exec(lines.filter((l) => l.startsWith('epoch 2/3 ')).at(-1)!);
    expect(Number(eta?.[1])).toBeGreaterThanOrEqual(3);
    const restLines: string[] = [];
    const rest = { ...parseTrainArgs(['--resume', ckpt]).options, progress: true, log: (l: string) => restLines.push(l), interrupt: (step: number) => step === 6 };
    const done = await train(rest, await loadSplits(rest));
    expect(done.epochs.map((e) => e.epoch)).toEqual([3]);
    // A resumed process's first steps compile its kernels too: no ETA until its own third step (the run's seventh).
    expect(restLines.filter((l) => l.startsWith('epoch 3/3 ')).map((l) => / ETA (\S+)$/.exec(l)![1])).toEqual(['…', '…']);
    // A loss that is not finite in epoch 2 (step 2): the stop names epoch 1's save as the last good one.
    const item = Tensor.prototype.item;
    let calls = 0;
    const spy = vi.spyOn(Tensor.prototype, 'item').mockImplementation(function (this: Tensor) {
      return ++calls === 3 ? Promise.resolve(NaN) : item.call(this);
    });
    try {
      const nan = options([...base, '--out', join(tmp, 'epoch-saves-nan')]);
      const stopped = await train(nan, await loadSplits(nan)).then(() => null, (e) => e);
      expect(stopped).toBeInstanceOf(TrainingStopped);
      expect(stopped.message).toMatch(new RegExp(`^loss is NaN at step 2 \\(epoch 2\\): .*; last good checkpoint: ${join(tmp, 'epoch-saves-nan', 'checkpoint.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    } finally {
      spy.mockRestore();
    }
    // A save that fails (here a directory where the checkpoint goes) stops the run, naming the last good one.
    const blocked = { ...options([...base, '--out', join(tmp, 'epoch-saves-blocked')]), interrupt: (step: number) => {
      const path = join(tmp, 'epoch-saves-blocked', 'checkpoint.safetensors');
      if (step === 3) {
        rmSync(path);
        mkdirSync(join(path, 'inside'), { recursive: true });
      }
      return false;
    } };
    const failed = await train(blocked, await loadSplits(blocked)).then(() => null, (e) => e);
    expect(failed).toBeInstanceOf(TrainingStopped);
    expect(failed.message).toMatch(/; last good checkpoint: .*epoch-saves-blocked\/checkpoint\.safetensors$/);
    // Weights that are not finite after a step whose loss was (its last update): the save refuses
    // them, and the run stops as any other stop, naming where it can go on from.
    const sgdStep = SGD.prototype.step;
    let updates = 0;
    const poison = vi.spyOn(SGD.prototype, 'step').mockImplementation(function (this: SGD, lr: number) {
      sgdStep.call(this, lr);
      if (++updates === 2) upload(this.specs[0].param, new Float32Array(this.specs[0].param.size).fill(NaN));
    });
    try {
      const nanWeights = options([...base, '--out', join(tmp, 'epoch-saves-nan-weights')]);
      const refused = await train(nanWeights, await loadSplits(nanWeights)).then(() => null, (e) => e);
      expect(refused).toBeInstanceOf(TrainingStopped);
      expect(refused.message).toMatch(/^the weights are not finite: parameter '[\w.]+' holds NaN .*; last good checkpoint: \(none yet\)$/);
    } finally {
      poison.mockRestore();
    }
  });

  it("a new run whose class maps are dead from its first step saves that count (since step 0), for its resume to go on counting", async () => {
    const ckpt = await deadMapsCheckpoint('dead-from-start', 400);
    const o = options(['--weights-from', ckpt, '--class-maps', 'relu', '--preprocess', 'none', '--train-limit', '400', '--test-limit', '16', '--batch', '16', '--epochs', '3', '--stop-after', '1', '--out', join(tmp, 'dead-from-start-run')]);
    await train(o, await loadSplits(o));
    expect(loadCheckpoint(join(tmp, 'dead-from-start-run', 'checkpoint.safetensors')).deadMapsSince).toBe(0);
  });

  it('resumes so that the resumed run repeats the uninterrupted losses exactly', async () => {
    const base = ['--batch', '16', '--lr', '0.02', '--train-limit', '160', '--test-limit', '32', '--seed', '5'];
    const full = await train(options([...base, '--epochs', '3', '--out', join(tmp, 'full')]), await loadSplits(options(base)));
    const first = await train(options([...base, '--epochs', '3', '--stop-after', '1', '--out', join(tmp, 'part')]), await loadSplits(options(base)));
    const epoch1 = join(tmp, 'part-epoch1.safetensors');
    copyFileSync(first.checkpoint, epoch1);
    // Only --resume: batch, lr, limits, seed, epochs and run directory come from the checkpoint.
    const resumed = options(['--resume', first.checkpoint]);
    expect(resumed).toMatchObject({ batchSize: 16, lr: 0.02, trainLimit: 160, seed: 5, epochs: 3, outDir: join(tmp, 'part'), stopAfter: undefined });
    const restLines: string[] = [];
    const rest = await train({ ...resumed, log: (l: string) => restLines.push(l) }, await loadSplits(resumed));
    expect(restLines).toContain(`resumed from ${first.checkpoint}: after epoch 1, at step 10`);
    expect(full.stepLosses.length).toBe(30);
    expect(first.stepLosses).toEqual(full.stepLosses.slice(0, 10));
    expect(rest.stepLosses).toEqual(full.stepLosses.slice(10));
    const a = loadCheckpoint(full.checkpoint), b = loadCheckpoint(rest.checkpoint);
    for (const [name, w] of a.params) expect(b.params.get(name), name).toEqual(w);
    // One run, one id: in its checkpoints and its log's start and resume records. Resuming the
    // directory's own checkpoint kept nothing aside.
    const partRecords = parseMetricsLog(readFileSync(join(tmp, 'part', 'metrics.jsonl'), 'utf8')) as { kind: string; run?: string }[];
    expect(partRecords.filter((r) => r.kind === 'start' || r.kind === 'resume').map((r) => r.run)).toEqual([b.runId, b.runId]);
    // Not a fork: no parent (nin compare would call it one, forked from itself), nor a path to one.
    const ownResume = partRecords.find((r) => r.kind === 'resume')!;
    expect(ownResume).not.toHaveProperty('parent');
    expect(ownResume).not.toHaveProperty('fromRelative');
    expect(loadCheckpoint(epoch1).runId).toBe(b.runId);
    expect(readdirSync(join(tmp, 'part')).filter((f) => f.includes('superseded'))).toEqual([]);
    // Resumed into another directory: a fork, under a new id that names its parent.
    const fork = await train(options(['--resume', epoch1, '--stop-after', '2', '--out', join(tmp, 'fork')]), await loadSplits(options(base)));
    const forkId = loadCheckpoint(fork.checkpoint).runId;
    expect(forkId).not.toBe(b.runId);
    const forkStretch = loadCheckpoint(fork.checkpoint).stretch;
    expect(parseMetricsLog(readFileSync(join(tmp, 'fork', 'metrics.jsonl'), 'utf8'))[0]).toEqual({ kind: 'resume', run: forkId, stretch: forkStretch, fromStretch: loadCheckpoint(epoch1).stretch, epoch: 1, step: 10, inEpoch: 0, from: epoch1, fromRelative: join('..', 'part-epoch1.safetensors'), parent: b.runId, stepsPerEpoch: 10, provenance: expect.objectContaining({ adapter: expect.any(String) }) });
    expect(forkStretch).toMatch(/^[0-9a-f-]{36}$/);
    expect(() => options(['--resume', first.checkpoint, '--epochs', '4', '--out', join(tmp, 'fork')])).toThrow(/holds another run/);
    // Resumed at an epoch's end with another batch size: the schedule goes on by epochs. Batch 4
    // makes epoch 2 forty steps (run steps 10–49), whose last sits at epoch 1.975 of the cosine's 3.
    // (Batch 4, as bench/crosscheck's test: a cold shader cache compiles its kernels once.)
    // (Its test set halved too: a resume says the test error changes sets there.)
    const rebatch = options(['--resume', epoch1, '--batch', '4', '--schedule', 'cosine', '--stop-after', '2', '--test-limit', '16', '--out', join(tmp, 'rebatch')]);
    const rebatchLines: string[] = [];
    const rebatched = await train({ ...rebatch, log: (l: string) => rebatchLines.push(l) }, await loadSplits(rebatch));
    expect(rebatchLines).toContain('note: the test set holds 16 images now, 32 at epoch 1: the test error from epoch 2 on is over other images');
    expect(restLines.filter((l) => l.includes('the test set holds'))).toEqual([]); // (the same 32 there)
    expect(rebatched.stepLosses.length).toBe(40);
    expect(rebatched.epochs[0]).toMatchObject({ epoch: 2, step: 50 });
    const w = rebatch.warmupEpochs; // the cosine starts after the warm-up
    expect(w).toBeLessThan(1);
    expect(rebatched.epochs[0].lr).toBeCloseTo(0.5 * 0.02 * (1 + Math.cos((Math.PI * (1.975 - w)) / (3 - w))), 12);
    // train() itself refuses a resume with nothing left to train (the CLI does too).
    await expect(train({ ...options(['--resume', epoch1]), stopAfter: 1 }, await loadSplits(options(base)))).rejects.toThrow(/has 1 epoch done, and --stop-after 1 asks for no more: nothing to train/);
    // Resumed once more from the epoch-1 checkpoint (a copy outside the run directory): the run
    // continues in its own directory, repeats epoch 2, keeps the epoch-3 checkpoint it replaces
    // under another name, and its log reads as the uninterrupted run's.
    const again = options(['--resume', epoch1, '--stop-after', '2']);
    expect(again.outDir).toBe(join(tmp, 'part'));
    const redo = await train(again, await loadSplits(again));
    expect(redo.stepLosses).toEqual(full.stepLosses.slice(10, 20));
    expect(loadCheckpoint(redo.checkpoint).epoch).toBe(2);
    const kept = loadCheckpoint(join(tmp, 'part', 'checkpoint.step30.superseded.safetensors'));
    expect(kept.epoch).toBe(3);
    for (const [name, w] of a.params) expect(kept.params.get(name), name).toEqual(w);
    const readLog = (dir: string) => parseMetricsLog(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')) as Record<string, unknown>[];
    const comparable = (records: Record<string, unknown>[]) => records.filter((r) => r.kind === 'step' || r.kind === 'epoch').map(({ seconds: _s, imgPerSec: _i, gpuPeakBytes: _m, ...r }) => r); // (measurements of the process)
    const raw = readLog(join(tmp, 'part'));
    expect(raw.filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1, 2, 3, 2]);
    const uninterrupted = readLog(join(tmp, 'full')).filter((r) => (r.kind === 'step' ? (r.step as number) < 20 : (r.epoch as number) <= 2));
    expect(comparable(currentHistory(raw) as Record<string, unknown>[])).toEqual(comparable(uninterrupted));
    // nin visualize draws each checkpoint's own line: the superseded one's epoch 3, the rerun's epochs 1–2.
    const curvesOf = (ck: ReturnType<typeof loadCheckpoint>) => (historyOfCheckpoint(runLog(join(tmp, 'part')), ck) as Record<string, unknown>[]).filter((r) => r.kind === 'epoch');
    expect(curvesOf(kept).map((r) => r.epoch)).toEqual([1, 2, 3]);
    const rawEpochs = raw.filter((r) => r.kind === 'epoch');
    expect(curvesOf(kept)).toEqual(rawEpochs.slice(0, 3));
    expect(curvesOf(loadCheckpoint(redo.checkpoint))).toEqual([rawEpochs[0], rawEpochs[3]]);
    // Resuming the superseded epoch-3 checkpoint in its own directory gets that checkpoint's own
    // history back (the stretch that saved it), not the rerun's: epoch 3 is there again.
    const back = options(['--resume', join(tmp, 'part', 'checkpoint.step30.superseded.safetensors'), '--epochs', '4']);
    expect(back.outDir).toBe(join(tmp, 'part'));
    await train(back, await loadSplits(back));
    const backLog = readLog(join(tmp, 'part'));
    const history = currentHistory(backLog) as Record<string, unknown>[];
    expect(history.filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    const original = (e: number) => backLog.find((r) => r.kind === 'epoch' && r.epoch === e); // the first stretch's records
    for (const e of [2, 3]) expect(history.find((r) => r.kind === 'epoch' && r.epoch === e)).toBe(original(e));
    // Interrupted within epoch 2 (after step 14 of 30), with a checkpoint also saved after every
    // step (--checkpoint-every ~0): the resumed run finishes as the uninterrupted one did.
    // At each poll the checkpoint holds the save after the step before (epoch 1 ends at step 10).
    const cutCheckpoint = join(tmp, 'cut', 'checkpoint.safetensors');
    const savedAtPolls: (number | null)[] = [];
    let lockWhileTraining: unknown = null;
    const interrupt = (step: number) => {
      if (step === 1) lockWhileTraining = JSON.parse(readFileSync(join(tmp, 'cut', 'run.lock'), 'utf8'));
      savedAtPolls.push(savedStep(cutCheckpoint));
      return step === 14;
    };
    const cutOptions = { ...options([...base, '--epochs', '3', '--checkpoint-every', '1e-9', '--out', join(tmp, 'cut')]), interrupt };
    const cut = await train(cutOptions, await loadSplits(cutOptions)).then(() => null, (e) => e);
    expect(savedAtPolls).toEqual([null, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 11, 12, 13]);
    expect(cut).toBeInstanceOf(TrainingInterrupted);
    expect(cut.message).toBe(`interrupted at step 14 (epoch 2, batch 4 of 10); checkpoint ${join(tmp, 'cut', 'checkpoint.safetensors')}: --resume ${shellWord(join(tmp, 'cut', 'checkpoint.safetensors'))} continues from there`);
    expect(loadCheckpoint(cut.checkpoint)).toMatchObject({ epoch: 1, step: 14, partialEpoch: { batches: 4, stepsPerEpoch: 10, seen: 64 } });
    // nin eval names that point as training did (it said "epoch 1 and 4 of 10 batches").
    const evalLines: string[] = [];
    const logged = vi.spyOn(console, 'log').mockImplementation((line: string) => void evalLines.push(line));
    try {
      expect(await main(['eval', cut.checkpoint, '--test-limit', '16', '--batch', '16'])).toBe(0);
    } finally {
      logged.mockRestore();
      await getGpu(); // (main closes the device)
    }
    expect(evalLines[0]).toMatch(new RegExp(`^${cut.checkpoint.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(epoch 2, batch 4 of 10\\): test loss `));
    // The run held its directory's lock while it trained and let it go when it stopped; a
    // directory another live process holds is refused before anything in it is touched.
    expect(lockWhileTraining).toMatchObject({ pid: process.pid });
    expect(existsSync(join(tmp, 'cut', 'run.lock'))).toBe(false);
    const whileLocked = options(['--resume', cut.checkpoint]); // (the CLI refuses a held directory already)
    writeFileSync(join(tmp, 'cut', 'run.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), since: 'now' })); // a live process
    const cutLog = readFileSync(join(tmp, 'cut', 'metrics.jsonl'), 'utf8');
    await expect(train(whileLocked, await loadSplits(options(base)))).rejects.toThrow(`${join(tmp, 'cut')} is in use: process ${process.ppid} has been training there since now`);
    expect(readFileSync(join(tmp, 'cut', 'metrics.jsonl'), 'utf8')).toBe(cutLog);
    rmSync(join(tmp, 'cut', 'run.lock'));
    // Interrupted at the end of an epoch: that epoch's own checkpoint, no mid-epoch save.
    let endPolls = 0; // the second poll at step 10 is the one after epoch 1's evaluation
    const atEnd = { ...options([...base, '--epochs', '3', '--out', join(tmp, 'cut-at-end')]), interrupt: (step: number) => step === 10 && ++endPolls === 2 };
    const endErr = await train(atEnd, await loadSplits(atEnd)).then(() => null, (e) => e);
    expect(endErr.message).toBe(`interrupted after epoch 1 (step 10); checkpoint ${endErr.checkpoint}: --resume ${shellWord(endErr.checkpoint)} continues from there`);
    expect(loadCheckpoint(endErr.checkpoint)).toMatchObject({ epoch: 1, step: 10, partialEpoch: null });
    // Another batch size or seed within an epoch (the rest of the epoch would be cut from another
    // shuffle: images repeated and skipped): a usage error on the command line, and train() refuses it too.
    const within = (what: string, flags: string) => `${cut.checkpoint} was saved within epoch 2 ${what}; a resume finishes that epoch with the batch size and seed it was saved with (the rest of its batches are cut from that shuffle; both may change at an epoch's end), not with ${flags}`;
    expect(() => options(['--resume', cut.checkpoint, '--batch', '32'])).toThrow(new UsageError(within('at batch size 16', '--batch 32')));
    expect(() => options(['--resume', cut.checkpoint, '--seed', '6'])).toThrow(new UsageError(within('with seed 5', '--seed 6')));
    expect(() => options(['--resume', cut.checkpoint, '--seed', '6', '--batch', '8'])).toThrow(new UsageError(within('at batch size 16 and with seed 5', '--batch 8 and --seed 6')));
    const other16 = { ...options(['--resume', cut.checkpoint]), batchSize: 32 };
    await expect(train(other16, await loadSplits(other16))).rejects.toThrow(within('at batch size 16', '--batch 32'));
    const otherSeed = { ...options(['--resume', cut.checkpoint]), seed: 6 };
    await expect(train(otherSeed, await loadSplits(otherSeed))).rejects.toThrow(within('with seed 5', '--seed 6'));
    // At an epoch's end the seed may change (a fork with another batch order is an experiment of its own).
    expect(options(['--resume', endErr.checkpoint, '--seed', '6', '--out', join(tmp, 'cut-at-end-seed6')]).seed).toBe(6);
    const cutLines: string[] = [];
    const cutRest = await train({ ...options(['--resume', cut.checkpoint]), log: (l: string) => cutLines.push(l) }, await loadSplits(options(base)));
    expect(cutRest.stepLosses).toEqual(full.stepLosses.slice(14));
    // Named as the interrupt named it (it said "epoch 0, step 14 (batch 4 of epoch 2)").
    expect(cutLines).toContain(`resumed from ${cut.checkpoint}: within epoch 2, at step 14 (batch 4 of 10)`);
    // Its log's resume record says so too (nin compare reads it).
    expect(readLog(join(tmp, 'cut')).filter((r) => r.kind === 'resume').at(-1)).toMatchObject({ epoch: 1, step: 14, inEpoch: 4 });
    const finished = loadCheckpoint(cutRest.checkpoint);
    expect(finished.partialEpoch).toBeNull();
    for (const [name, w] of a.params) expect(finished.params.get(name), name).toEqual(w);
    expect(comparable(currentHistory(readLog(join(tmp, 'cut'))) as Record<string, unknown>[])).toEqual(comparable(readLog(join(tmp, 'full'))));
    // Options that ask for another network, preprocessing or data split than the checkpoint's are
    // refused: by the CLI before any GPU work (test/cli.test.ts), and by train() too.
    expect(() => options(['--resume', epoch1, '--class-maps', 'relu', '--head', 'fc'])).toThrow(UsageError);
    const api = { ...options(['--resume', epoch1]), classMaps: 'relu' as const, head: 'fc' as const, preprocess: 'none' as const, init: 'gaussian' as const, validation: 40 };
    await expect(train(api, await loadSplits(options(base)))).rejects.toThrow(
      new RunRefused(
        `--resume ${epoch1}: --head fc (the checkpoint's is gap), --class-maps relu (the checkpoint's are linear), --init gaussian (the checkpoint's weights were initialised he, and are trained on, not redrawn), ` +
          "--preprocess none (the checkpoint's statistics are for standardize), --val 40 (the checkpoint's split held out 0: another split would validate on images the run trained on)",
      ),
    );
  });

  it('--class-lr-mult scales the rate of the layer that outputs the class scores only (0: it stays at its init)', async () => {
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1', '--class-lr-mult', '0', '--out', join(tmp, 'class-lr')]);
    expect(o.classLrMult).toBe(0);
    await train(o, await loadSplits(o));
    const init = new NinModel(modelConfig(o), o.seed);
    expect(init.classifierParams()).toEqual(['block3.w3', 'block3.b3']);
    const trained = loadCheckpoint(join(tmp, 'class-lr', 'checkpoint.safetensors')).params;
    for (const { name, tensor } of init.params) {
      const before = await tensor.toArray();
      if (name === 'block3.w3' || name === 'block3.b3') expect(trained.get(name), name).toEqual(before);
      else expect(trained.get(name), name).not.toEqual(before);
    }
    init.dispose();
    const fc = new NinModel(modelConfig({ ...o, head: 'fc' }), 1);
    expect(fc.classifierParams()).toEqual(['fc.w', 'fc.b']);
    fc.dispose();
  });

  it("biases learn at 2× the rate without weight decay, weights at 1× with it; --class-lr-mult multiplies the class layer's own multipliers", async () => {
    const o = options(['--batch', '16', '--train-limit', '16', '--test-limit', '16', '--epochs', '1', '--class-lr-mult', '0.1', '--out', join(tmp, 'multipliers')]);
    const model = new NinModel(modelConfig(o), 1);
    for (const p of model.params) expect([p.lrMult, p.decayMult], p.name).toEqual(/\.b\d$/.test(p.name) ? [2, 0] : [1, 1]);
    const names = model.params.map((p) => p.name); // in the order the optimiser's specs follow
    model.dispose();
    // What the optimiser the run builds is given (the `this` of its steps).
    const step = vi.spyOn(SGD.prototype, 'step');
    let specs: SGD['specs'];
    const lines: string[] = [];
    try {
      await train({ ...o, log: (l: string) => lines.push(l) }, await loadSplits(o));
      specs = (step.mock.contexts[0] as SGD).specs;
    } finally {
      step.mockRestore(); // (which also forgets the calls)
    }
    const byName = Object.fromEntries(names.map((name, i) => [name, { lrMult: specs[i].lrMult, decayMult: specs[i].decayMult }]));
    expect(byName['block3.w3']).toEqual({ lrMult: 0.1, decayMult: 1 });
    expect(byName['block3.b3'].lrMult).toBeCloseTo(0.2, 12);
    expect(byName['block3.b3'].decayMult).toBe(0);
    expect(byName['block1.b1']).toEqual({ lrMult: 2, decayMult: 0 });
    expect(byName['block2.w2']).toEqual({ lrMult: 1, decayMult: 1 });
    expect(lines).toContainEqual(expect.stringMatching(/^training: 1 epoch of 1 step of 16 images; lr [\d.]+, cosine, [\d.]+-epoch warm-up, the class maps at 0\.1× it; momentum 0\.9/));
  });

  it("each step draws its dropout masks from its own seed (the run's seed and the global step), not one repeated every epoch", async () => {
    const o = options(['--batch', '16', '--train-limit', '32', '--test-limit', '16', '--epochs', '2', '--seed', '5', '--out', join(tmp, 'dropout-seeds')]);
    // (mnist-small has no dropout layer; the seeds reach the forward all the same, and a dropout layer draws from them)
    const lossAndGradients = vi.spyOn(NinModel.prototype, 'lossAndGradients');
    try {
      await train(o, await loadSplits(o));
      expect(lossAndGradients.mock.calls.map((args) => args[2].seed)).toEqual([0, 1, 2, 3].map((step) => deriveSeed(5, 0xd509, step)));
    } finally {
      lossAndGradients.mockRestore();
    }
  });

  it('an infinite loss stops the run as a NaN does, and leaves no GPU buffer behind', async () => {
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1', '--out', join(tmp, 'infinite')]);
    const item = Tensor.prototype.item;
    let calls = 0;
    const spy = vi.spyOn(Tensor.prototype, 'item').mockImplementation(function (this: Tensor) {
      return ++calls === 3 ? Promise.resolve(Infinity) : item.call(this);
    });
    try {
      const data = await loadSplits(o);
      const liveBefore = pool().stats.liveBuffers;
      const err = await train(o, data).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(TrainingStopped);
      expect(err.message).toMatch(/^loss is Infinity at step 2 \(epoch 1\): the run diverged/);
      // The log says so too, last (a run stopped before its first save had nothing else to tell it).
      const last = parseMetricsLog(readFileSync(join(tmp, 'infinite', 'metrics.jsonl'), 'utf8')).at(-1);
      expect(last).toEqual({ kind: 'stopped', epoch: 0, step: 2, reason: err.message });
      // Step 3's readback was in flight when step 2's loss stopped the run: train() waited for it
      // and freed its loss and logits before it threw.
      expect(pool().stats.liveBuffers).toBe(liveBefore);
    } finally {
      spy.mockRestore();
    }
  });

  it('a device out of memory stops the run, naming the batch and the last good checkpoint, and leaves no GPU buffer behind', async (ctx) => {
    if (gpu().limits.maxBufferSize < ALLOCATION_FAULT) return ctx.skip();
    const o = options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '2', '--out', join(tmp, 'out-of-memory')]);
    const ckpt = await saveUntrained(o, join(tmp, 'out-of-memory.safetensors'));
    const r = { ...parseTrainArgs(['--resume', ckpt, '--batch', '16', '--test-limit', '16', '--out', join(tmp, 'out-of-memory')]).options, progress: false, log: () => {} };
    const data = await loadSplits(r);
    trimPool(); // (else the step's buffers may all come from the pool: no buffer made, no fault)
    const liveBefore = pool().stats.liveBuffers;
    const err = await errorWithStepOutOfMemory(() => train(r, data));
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toMatch(new RegExp(`^GPU out of memory: the device could not make a buffer of .*; by step [12], at batch 16: a smaller --batch needs less memory; last good checkpoint: ${ckpt.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`));
    expect(pool().stats.liveBuffers).toBe(liveBefore);
  });

  it('records the run\'s peak GPU memory in each epoch\'s record, and says it after the first epoch', async () => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '2', '--out', join(tmp, 'memory')]), log: (l: string) => lines.push(l) };
    await train(o, await loadSplits(o));
    const epochs = (runLog(join(tmp, 'memory')) as EpochRecord[]).filter((r) => r.kind === 'epoch');
    const model = new NinModel(modelConfig(o), 1);
    const weightBytes = model.params.reduce((n, p) => n + 4 * p.tensor.size, 0);
    model.dispose();
    // Weights, gradients and momentum at least; the peak never falls within a process.
    expect(epochs[0].gpuPeakBytes).toBeGreaterThan(3 * weightBytes);
    expect(epochs[1].gpuPeakBytes).toBeGreaterThanOrEqual(epochs[0].gpuPeakBytes!);
    const noted = lines.filter((l) => l.startsWith('GPU memory:'));
    expect(noted).toHaveLength(1);
    expect(noted[0]).toMatch(new RegExp(`^GPU memory: the engine's buffers held ${fmtBytes(epochs[0].gpuPeakBytes!).replace('.', '\\.')} at most \\(\\d+\\.\\d (KiB|MiB) of it in tensors at once\\), at batch 16$`));
    expect(lines.indexOf(noted[0])).toBe(lines.findIndex((l) => l.startsWith('epoch 1:')) + 1);
  });

  it('--keep-every N keeps every Nth epoch\'s checkpoint as epoch-<E>.safetensors; a resume from one keeps the replaced stretch\'s later ones aside; --overwrite moves them', async () => {
    const dir = join(tmp, 'keep-every');
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '48', '--test-limit', '16', '--epochs', '4', '--keep-every', '2', '--out', dir]), log: (l: string) => lines.push(l) };
    await train(o, await loadSplits(o));
    const kept = () => readdirSync(dir).filter((n) => n.startsWith('epoch-')).sort();
    expect(kept()).toEqual(['epoch-002.safetensors', 'epoch-004.safetensors']);
    expect(loadCheckpoint(join(dir, 'epoch-002.safetensors'))).toMatchObject({ epoch: 2, step: 6 }); // (not replaced by the later saves)
    expect(loadCheckpoint(join(dir, 'epoch-004.safetensors'))).toMatchObject({ epoch: 4, step: 12 });
    expect(readFileSync(join(dir, 'epoch-004.safetensors')).equals(readFileSync(join(dir, 'checkpoint.safetensors')))).toBe(true);
    expect(lines.filter((l) => l.includes('(also '))).toEqual([
      `epoch 2: ${lines.find((l) => l.startsWith('epoch 2: '))!.slice(9).split('; checkpoint')[0]}; checkpoint ${join(dir, 'checkpoint.safetensors')} (also ${join(dir, 'epoch-002.safetensors')})`,
      expect.stringMatching(/^epoch 4: .*\(also .*epoch-004\.safetensors\)$/),
    ]);
    // Resumed from epoch 2's: the resume keeps --keep-every, and epoch 4's file of the stretch it
    // replaces is kept aside before the new one is written.
    const said: string[] = [];
    const r = { ...parseTrainArgs(['--resume', join(dir, 'epoch-002.safetensors')]).options, progress: false, log: (l: string) => said.push(l) };
    expect(r.keepEvery).toBe(2);
    const old = loadCheckpoint(join(dir, 'epoch-004.safetensors')).stretch;
    await train(r, await loadSplits(r));
    expect(kept()).toEqual(['epoch-002.safetensors', 'epoch-004.safetensors', 'epoch-004.step12.superseded.safetensors']);
    expect(said).toContain(`${join(dir, 'epoch-004.safetensors')} is not epoch 4 of this run's history: kept as ${join(dir, 'epoch-004.step12.superseded.safetensors')}`);
    expect(loadCheckpoint(join(dir, 'epoch-004.step12.superseded.safetensors')).stretch).toBe(old);
    expect(loadCheckpoint(join(dir, 'epoch-004.safetensors')).stretch).not.toBe(old);
    // --overwrite: a new run there moves them aside with the rest (and keeps none itself, unasked).
    const fresh = options(['--batch', '16', '--train-limit', '48', '--test-limit', '16', '--epochs', '1', '--out', dir, '--overwrite']);
    await train(fresh, await loadSplits(fresh));
    expect(kept()).toEqual(['epoch-002.step6.superseded.safetensors', 'epoch-004.step12.superseded-2.safetensors', 'epoch-004.step12.superseded.safetensors']);
    expect(() => parseTrainArgs(['--keep-every', '0'])).toThrow(new UsageError("--keep-every must be an integer ≥ 1, got '0'"));
  });

  it("a resume keeps aside, at its first save, the snapshots that are not of the history it takes up: those past its epoch, and an earlier epoch's saved by a replaced stretch", async () => {
    const dir = join(tmp, 'keep-every-resumed');
    const base = ['--batch', '16', '--train-limit', '48', '--test-limit', '16', '--keep-every', '1'];
    const first = options([...base, '--epochs', '4', '--out', dir]);
    await train(first, await loadSplits(first));
    const snapshot = (e: number, rest = '') => join(dir, `epoch-00${e}${rest}.safetensors`);
    const stretchOf = (path: string) => loadCheckpoint(path).stretch;
    const s1 = stretchOf(snapshot(4));
    // From epoch 2, to epoch 3 only: epoch 4's snapshot (never reached again) is kept aside too.
    const said: string[] = [];
    const again = { ...parseTrainArgs(['--resume', snapshot(2), '--epochs', '3']).options, progress: false, log: (l: string) => said.push(l) };
    await train(again, await loadSplits(again));
    expect(said).toContain(`${snapshot(4)} is not epoch 4 of this run's history: kept as ${snapshot(4, '.step12.superseded')}`);
    expect(said).toContain(`${snapshot(3)} is not epoch 3 of this run's history: kept as ${snapshot(3, '.step9.superseded')}`);
    expect(readdirSync(dir).filter((n) => n.startsWith('epoch-')).sort()).toEqual(['epoch-001.safetensors', 'epoch-002.safetensors', 'epoch-003.safetensors', 'epoch-003.step9.superseded.safetensors', 'epoch-004.step12.superseded.safetensors']);
    const s2 = stretchOf(snapshot(3));
    expect(s2).not.toBe(s1);
    expect(stretchOf(snapshot(4, '.step12.superseded'))).toBe(s1);
    // From the first stretch's epoch 4 (kept aside above): its history is that stretch's epochs 1–4,
    // so epoch-003.safetensors, the second stretch's, is not of it; epochs 1 and 2 are.
    said.length = 0;
    const back = { ...parseTrainArgs(['--resume', snapshot(4, '.step12.superseded'), '--epochs', '5']).options, progress: false, log: (l: string) => said.push(l) };
    await train(back, await loadSplits(back));
    expect(said).toContain(`${snapshot(3)} is not epoch 3 of this run's history: kept as ${snapshot(3, '.step9.superseded-2')}`);
    expect(said.filter((l) => l.includes('is not epoch'))).toHaveLength(1);
    expect(stretchOf(snapshot(3, '.step9.superseded-2'))).toBe(s2);
    expect(existsSync(snapshot(3))).toBe(false);
    expect([1, 2].map((e) => stretchOf(snapshot(e)))).toEqual([s1, s1]);
    expect(loadCheckpoint(snapshot(5))).toMatchObject({ epoch: 5, step: 15 });
    // From the first stretch's epoch 3 (kept aside by the second), with epoch-003.safetensors the
    // second stretch's again (a copy of the file kept aside above): the snapshot of the very epoch
    // resumed from is not of its history either. Two saves: the checkpoint it replaces is kept aside once.
    copyFileSync(snapshot(3, '.step9.superseded-2'), snapshot(3));
    said.length = 0;
    const third = { ...parseTrainArgs(['--resume', snapshot(3, '.step9.superseded'), '--epochs', '5']).options, progress: false, log: (l: string) => said.push(l) };
    await train(third, await loadSplits(third));
    expect(said).toContain(`${snapshot(3)} is not epoch 3 of this run's history: kept as ${snapshot(3, '.step9.superseded-3')}`);
    expect(said.filter((l) => l.includes('is not the checkpoint this run resumed from'))).toHaveLength(1);
  });

  it("a resume from an epoch's end whose --keep-every snapshot is missing (a run killed between the save and the snapshot) writes it", async () => {
    const dir = join(tmp, 'keep-every-killed');
    const first = options(['--batch', '16', '--train-limit', '48', '--test-limit', '16', '--keep-every', '1', '--epochs', '4', '--stop-after', '2', '--out', dir]);
    await train(first, await loadSplits(first));
    // What a SIGKILL after epoch 2's checkpoint was renamed into place, before its link, leaves.
    rmSync(join(dir, 'epoch-002.safetensors'));
    const saved = readFileSync(join(dir, 'checkpoint.safetensors'));
    const said: string[] = [];
    const r = { ...parseTrainArgs(['--resume', dir]).options, progress: false, log: (l: string) => said.push(l) };
    await train(r, await loadSplits(r));
    expect(readdirSync(dir).filter((n) => n.startsWith('epoch-')).sort()).toEqual(['epoch-001.safetensors', 'epoch-002.safetensors', 'epoch-003.safetensors', 'epoch-004.safetensors']);
    expect(readFileSync(join(dir, 'epoch-002.safetensors')).equals(saved)).toBe(true);
    expect(loadCheckpoint(join(dir, 'epoch-002.safetensors'))).toMatchObject({ epoch: 2, step: 6 });
    expect(said.filter((l) => l.includes("snapshot (--keep-every 1) was missing"))).toHaveLength(1);
  });

  it('never writes a checkpoint with NaN or infinite weights', async () => {
    const o = options(['--out', join(tmp, 'nan-weights')]);
    const path = await saveUntrained(o, join(tmp, 'nan-weights.safetensors'));
    const model = new NinModel(modelConfig(o), 1);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    const w = await model.params[1].tensor.toArray();
    w[7] = NaN;
    upload(model.params[1].tensor, w);
    const before = readFileSync(path);
    await expect(saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 2, step: 2, options: o })).rejects.toThrow(
      new RegExp(`parameter '${model.params[1].name}' holds NaN \\(at index 7\\) at step 2: .*nan-weights.safetensors not written`),
    );
    expect(readFileSync(path).equals(before)).toBe(true);
    model.dispose();
  });

  it('--dropout: a checkpoint keeps the rate, a resume takes it, and a resume with another rate is refused (a usage error)', async () => {
    // The paper's MNIST net (two dropout layers), saved untrained: only the checkpoint matters here.
    const o = options(['--model', 'mnist', '--dropout', '0.3', '--out', join(tmp, 'dropout')]);
    const ckpt = await saveUntrained(o, join(tmp, 'dropout.safetensors'));
    expect(loadCheckpoint(ckpt).config.layers.filter((l) => l.type === 'dropout')).toEqual([{ type: 'dropout', p: 0.3 }, { type: 'dropout', p: 0.3 }]);
    const resume = (args: string[]): TrainOptions => ({ ...parseTrainArgs(['--resume', ckpt, ...args]).options, progress: false, log: () => {} });
    expect(resume([]).dropout).toBe(0.3);
    expect(() => resume(['--dropout', '0.5'])).toThrow(new UsageError(`--resume ${ckpt}: --dropout 0.5 (the checkpoint's is 0.3): a resumed run keeps them (start a new run to change them)`));
  });

  it('stops a run whose ReLU\'d class maps have died, naming the step and the last good checkpoint', async () => {
    const ckpt = await deadMapsCheckpoint('dead', 800);
    const resume = { ...parseTrainArgs(['--resume', ckpt, '--batch', '16', '--test-limit', '16']).options, progress: false, log: () => {} };
    const err = await train(resume, await loadSplits(resume)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(TrainingStopped);
    // Steps 1..50 of the resumed run are the 50 dead batches in a row, all of epoch 2.
    expect(err.message).toMatch(new RegExp(`class maps are dead at step 50 \\(epoch 2\\): .* since step 1, .*ln 10 .*--class-maps linear.*last good checkpoint: ${ckpt.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`));
  });

  // The count of dead batches is in the checkpoint: a resumed run stops where the uninterrupted one
  // would (it counted afresh, and stopped up to 50 steps later, or, as here, not at all).
  it('a run whose maps were dying when saved stops, resumed, at the step the uninterrupted run would', async () => {
    const ckpt = await deadMapsCheckpoint('dying', 400);
    const run = async (flags: string[]) => {
      const r = { ...parseTrainArgs(['--resume', ckpt, '--batch', '16', '--test-limit', '16', '--epochs', '3', ...flags]).options, progress: false, log: () => {} };
      return train(r, await loadSplits(r)).then(() => null, (e) => e);
    };
    // Epoch 2: steps 1-25, all dead, saved with the count; epoch 3 (steps 26-50) ends it at step 50.
    expect(await run(['--stop-after', '2', '--out', join(tmp, 'dying')])).toBeNull();
    const saved = join(tmp, 'dying', 'checkpoint.safetensors');
    expect(loadCheckpoint(saved).deadMapsSince).toBe(1);
    const r = { ...parseTrainArgs(['--resume', saved]).options, progress: false, log: () => {} };
    const err = await train(r, await loadSplits(r)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toMatch(/class maps are dead at step 50 \(epoch 3\): .* since step 1,/);
  });

  it('keeps the epoch of lowest validation error as best.safetensors, also across a resume', async () => {
    const base = ['--batch', '16', '--lr', '0.05', '--schedule', 'step', '--warmup', '0.2', '--train-limit', '200', '--val', '40', '--test-limit', '32', '--seed', '7', '--epochs', '4'];
    // The test labels moved on by one class: test error no longer follows validation error, so a
    // best epoch chosen on the test set would show.
    const splits = await loadSplits(options(base));
    const full = await train(options([...base, '--out', join(tmp, 'val-full')]), { ...splits, test: { ...splits.test, labels: splits.test.labels.map((l) => (l + 1) % 10) } });
    const valErrors = full.epochs.map((e) => e.valError!);
    expect(valErrors.every((v) => v >= 0 && v <= 1)).toBe(true);
    const bestEpoch = valErrors.indexOf(Math.min(...valErrors)) + 1; // the first epoch with the lowest error
    const testErrors = full.epochs.map((e) => e.testError!);
    expect(testErrors.indexOf(Math.min(...testErrors)) + 1, `the premise: test errors ${testErrors} bottom out elsewhere than validation errors ${valErrors}`).not.toBe(bestEpoch);
    expect(full.best).toMatchObject({ epoch: bestEpoch, valError: valErrors[bestEpoch - 1] });
    const saved = loadCheckpoint(full.best!.checkpoint);
    expect(saved.epoch).toBe(bestEpoch);
    // The statistics come from the 160 images trained on: not the validation or test images.
    expect((saved.preprocessor.stats as { count: number }).count).toBe(160 * 28 * 28);
    // Interrupted after epoch 2 and resumed: the same best epoch and weights.
    const first = await train(options([...base, '--stop-after', '2', '--out', join(tmp, 'val-part')]), await loadSplits(options(base)));
    const epoch2 = join(tmp, 'val-part-epoch2.safetensors');
    copyFileSync(first.checkpoint, epoch2);
    const rest = await train(options([...base, '--out', join(tmp, 'val-part'), '--resume', first.checkpoint]), await loadSplits(options(base)));
    expect(rest.epochs.map((e) => e.valError)).toEqual(valErrors.slice(2));
    expect(rest.best).toMatchObject({ epoch: bestEpoch, valError: full.best!.valError });
    const resumedBest = loadCheckpoint(rest.best!.checkpoint);
    for (const [name, w] of saved.params) expect(resumedBest.params.get(name), name).toEqual(w);
    // Resumed from the epoch-2 checkpoint again, with a best checkpoint from after that point
    // (made so here: epoch 4's): it is kept under another name, and the best starts afresh.
    copyFileSync(rest.checkpoint, rest.best!.checkpoint);
    const redo = await train(options(['--resume', epoch2, '--stop-after', '3']), await loadSplits(options(base)));
    expect(loadCheckpoint(join(tmp, 'val-part', 'best.step40.superseded.safetensors')).epoch).toBe(4);
    expect(redo.best).toMatchObject({ epoch: 3, valError: valErrors[2] });
    expect(loadCheckpoint(redo.best!.checkpoint).epoch).toBe(3);
    // The best search reads the run's current history: the superseded first epoch 3, marked
    // perfect in the log, does not count.
    const partLog = join(tmp, 'val-part', 'metrics.jsonl');
    const lines = readFileSync(partLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    lines[lines.findIndex((r) => r.kind === 'epoch' && r.epoch === 3)].valError = 0;
    writeFileSync(partLog, lines.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const last = await train(options(['--resume', join(tmp, 'val-part')]), await loadSplits(options(base)));
    expect(last.best!.valError).toBe(Math.min(valErrors[2], valErrors[3]));
    // The best from before a resume comes from the run's metrics: marked perfect there, no later
    // epoch replaces it.
    const again = await train(options([...base, '--stop-after', '2', '--out', join(tmp, 'val-again')]), await loadSplits(options(base)));
    const metricsFile = join(tmp, 'val-again', 'metrics.jsonl');
    const edited = readFileSync(metricsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((r) => (r.kind === 'epoch' && r.epoch === again.best!.epoch ? { ...r, valError: 0 } : r));
    writeFileSync(metricsFile, edited.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const kept = await train(options([...base, '--out', join(tmp, 'val-again'), '--resume', again.checkpoint]), await loadSplits(options(base)));
    expect(kept.best).toMatchObject({ epoch: again.best!.epoch, valError: 0 });
    expect(loadCheckpoint(kept.best!.checkpoint).epoch).toBe(again.best!.epoch);
    // A best.safetensors that cannot be read (say, cut short by a full disk) does not stop a
    // resume: it is kept aside as it is, and the best epoch is tracked afresh.
    const againBest = join(tmp, 'val-again', 'best.safetensors');
    const cutShort = readFileSync(againBest).subarray(0, 5);
    writeFileSync(againBest, cutShort);
    const longer = await train(options([...base, '--epochs', '5', '--resume', join(tmp, 'val-again')]), await loadSplits(options(base)));
    expect(longer.best).toMatchObject({ epoch: 5 });
    expect(readFileSync(join(tmp, 'val-again', 'best.step0.superseded.safetensors'))).toEqual(cutShort);
    // A new run may not take over the directory (train() checks too, not only the CLI) ...
    const small = ['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1'];
    const smallData = await loadSplits(options(['--train-limit', '64', '--test-limit', '16']));
    await expect(train({ ...options([...small, '--out', join(tmp, 'elsewhere')]), outDir: join(tmp, 'val-full') }, { ...smallData, consumable: false })).rejects.toThrow(/already holds a run \(checkpoint.safetensors, best.safetensors, metrics.jsonl\)/);
    expect(existsSync(join(tmp, 'val-full', 'best.safetensors'))).toBe(true);
    // ... unless told to: it starts its best afresh; without --val there is none.
    const noVal = await train(options([...small, '--overwrite', '--out', join(tmp, 'val-full')]), smallData);
    expect(noVal.best).toBeNull();
    expect(existsSync(join(tmp, 'val-full', 'best.safetensors'))).toBe(false);
    // The old run's files were moved aside, not deleted.
    const aside = readdirSync(join(tmp, 'val-full')).filter((f) => f.includes('superseded')).sort();
    expect(aside).toEqual([`best.step${bestEpoch * 10}.superseded.safetensors`, 'checkpoint.step40.superseded.safetensors', 'metrics.superseded.jsonl']);
  });

  it('--schedule plateau drops the rate when the watched error sets no new low, ends the run after its last drop, and resumes where it stood', async () => {
    // At lr 1e-30 the weights cannot move (float32), so the validation error repeats exactly:
    // epoch 1 sets the low; with patience 1 each later epoch is a plateau.
    const base = ['--batch', '16', '--lr', '1e-30', '--warmup', '0', '--train-limit', '192', '--val', '32', '--test-limit', '16', '--epochs', '8', '--schedule', 'plateau', '--patience', '1', '--lr-drops', '2', '--plateau-on', 'val'];
    const lines: string[] = [];
    const whole = { ...options([...base, '--out', join(tmp, 'plateau')]), log: (l: string) => lines.push(l) };
    const r = await train(whole, await loadSplits(whole));
    expect(r.epochs.map((e) => e.lr)).toEqual([0, 0, 1, 2].map((drops) => 1e-30 * 0.1 ** drops)); // each epoch's last step
    expect(lines.filter((l) => /^epoch \d:/.test(l)).map((l) => l.replace(/^epoch (\d).*?(;[^;]*)?$/, '$1$2'))).toEqual([
      '1; checkpoint ' + join(tmp, 'plateau', 'checkpoint.safetensors') + ' (best validation error so far: also ' + join(tmp, 'plateau', 'best.safetensors') + ')',
      `2; no new lowest validation error for 1 epoch: lr ×0.1, now ${(1e-31).toPrecision(3)} (drop 1 of 2)`,
      `3; no new lowest validation error for 1 epoch: lr ×0.1, now ${(1e-32).toPrecision(3)} (drop 2 of 2)`,
      '4; no new lowest validation error for 1 epoch after the last lr drop: the run is done',
    ]);
    expect(loadCheckpoint(r.checkpoint)).toMatchObject({ epoch: 4, plateau: { drops: 2, sinceBest: 1, finished: true } });
    // Every epoch's validation error is epoch 1's: a tie is no new best, so best.safetensors stays epoch 1's.
    expect(r.best).toMatchObject({ epoch: 1 });
    // Stopped after epoch 2 and resumed: the state comes back with the checkpoint.
    const first = await train(options([...base, '--stop-after', '2', '--out', join(tmp, 'plateau-part')]), await loadSplits(whole));
    expect(loadCheckpoint(first.checkpoint).plateau).toMatchObject({ drops: 1, sinceBest: 0, finished: false });
    // Resumed to watch the other error: its lowest is tracked afresh (the validation error's low is no bar for the training error).
    const switched: string[] = [];
    const other = { ...options(['--resume', first.checkpoint, '--plateau-on', 'train', '--stop-after', '3', '--out', join(tmp, 'plateau-switch')]), log: (l: string) => switched.push(l) };
    const sw = await train(other, await loadSplits(whole));
    expect(switched).toContain('the plateau schedule watches the training error from here (it watched the validation error): its lowest is tracked afresh');
    expect(loadCheckpoint(sw.checkpoint).plateau).toEqual({ on: 'train', drops: 1, best: sw.epochs[0].trainError, sinceBest: 0, finished: false });
    const rest = await train(options(['--resume', first.checkpoint]), await loadSplits(whole));
    expect([...first.epochs, ...rest.epochs].map((e) => e.lr)).toEqual(r.epochs.map((e) => e.lr));
    expect(rest.best).toMatchObject({ epoch: 1 }); // (the history's tie at epoch 2 is no new best either)
    // The finished run: nothing to train, unless a further drop is allowed.
    // (train() checks as the CLI does)
    await expect(train({ ...options(['--resume', r.checkpoint, '--lr-drops', '3']), lrDrops: 2 }, await loadSplits(whole))).rejects.toThrow(`${r.checkpoint}: the plateau schedule ended this run at epoch 4`);
    const more: string[] = [];
    const further = { ...options(['--resume', r.checkpoint, '--lr-drops', '3']), log: (l: string) => more.push(l) };
    const again = await train(further, await loadSplits(whole));
    expect(more).toContain('the plateau schedule had ended the run at epoch 4; with --lr-drops 3: lr ×0.1 now (drop 3 of 3)');
    expect(more.filter((l) => l.startsWith('note: the learning rate'))).toEqual([]); // the drop is the schedule's own, said above
    expect(again.epochs.map((e) => [e.epoch, e.lr])).toEqual([[5, 1e-30 * 0.1 ** 3]]);
  });

  it('keeps best.safetensors aside when its epoch was saved by a stretch the history has left', async () => {
    // Stretch a: epochs 1–2, best at 2. Stretch b resumed from a's epoch-1 checkpoint, redid epoch 2
    // and saved its own best at 2. Now a's epoch-2 checkpoint (kept aside when b replaced it) is
    // resumed: the history is a's, whose best epoch 2 is not the file's (b's) epoch 2.
    const dir = join(tmp, 'best-stretch');
    mkdirSync(dir);
    const o = options(['--batch', '16', '--train-limit', '192', '--val', '32', '--test-limit', '16', '--epochs', '3', '--out', dir]);
    const model = new NinModel(modelConfig(o), 1);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    const save = (file: string, stretch: string) => saveCheckpoint(join(dir, file), { model, opt, preprocessor: new Preprocessor('none', null), epoch: 2, step: 20, options: o, runId: 'R', stretch });
    await save('checkpoint.step20.superseded.safetensors', 'a');
    await save('checkpoint.safetensors', 'b');
    await save('best.safetensors', 'b');
    model.dispose();
    opt.dispose();
    const epochRecord = (epoch: number, valError: number) => ({ kind: 'epoch', epoch, step: epoch * 10, trainLoss: 1, trainError: 0.5, valError, lr: 0.02, imgPerSec: 1, seconds: 1 });
    const records = [{ kind: 'start', run: 'R', stretch: 'a', time: '' }, epochRecord(1, 0.5), epochRecord(2, 0.1), { kind: 'resume', run: 'R', stretch: 'b', fromStretch: 'a', epoch: 1, step: 10, from: 'x' }, epochRecord(2, 0.3)];
    writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const lines: string[] = [];
    const again = { ...options(['--resume', join(dir, 'checkpoint.step20.superseded.safetensors')]), log: (l: string) => lines.push(l) };
    expect(again.outDir).toBe(dir);
    // A resume that stops before its first save (here its test set fails the preprocessing's size
    // check) leaves the run as it was: no resume record, best.safetensors where it was.
    const before = { files: readdirSync(dir).sort(), log: readFileSync(join(dir, 'metrics.jsonl')), best: readFileSync(join(dir, 'best.safetensors')) };
    const splits = await loadSplits(again);
    await expect(train({ ...again, log: () => {} }, { ...splits, test: { ...splits.test!, count: splits.test!.count + 1 } })).rejects.toThrow(/^preprocessing: \d+ values are not 17 images/);
    expect({ files: readdirSync(dir).sort(), log: readFileSync(join(dir, 'metrics.jsonl')), best: readFileSync(join(dir, 'best.safetensors')) }).toEqual(before);
    await train(again, await loadSplits(again));
    expect(lines).toContain(`${join(dir, 'best.safetensors')} holds epoch 2 as saved by a stretch of the run that its history has left: kept as ${join(dir, 'best.step20.superseded.safetensors')}`);
    expect(loadCheckpoint(join(dir, 'best.step20.superseded.safetensors')).stretch).toBe('b');
    // The checkpoint resumed from is a's own end-of-epoch-2 save: it becomes the best file.
    expect(lines).toContain(`${join(dir, 'best.safetensors')}: epoch 2, the run's best so far, copied from ${join(dir, 'checkpoint.step20.superseded.safetensors')}, the checkpoint resumed from`);
  });

  it('a run stopped between its best epoch\'s checkpoint and best.safetensors gets that file from the checkpoint; a missing best file is never named', async () => {
    // Stretch a logged epochs 1 and 2 (validation errors 0.5 and 0.1) and saved epoch 2's
    // checkpoint, then stopped before writing best.safetensors: the file holds epoch 1, or is missing.
    const epochRecord = (epoch: number, valError: number) => ({ kind: 'epoch', epoch, step: epoch * 12, trainLoss: 1, trainError: 0.5, valError, lr: 0.02, imgPerSec: 1, seconds: 1 });
    const setUp = async (name: string, bestFile: 'epoch1' | 'none', valErrors: [number, number], within?: { batches: number; stepsPerEpoch: number; lossSum: number; wrong: number; seen: number; seconds: number }) => {
      const dir = join(tmp, name);
      mkdirSync(dir);
      const o = options(['--batch', '16', '--train-limit', '192', '--val', '32', '--test-limit', '16', '--epochs', '3', '--lr', '1e-30', '--out', dir]);
      const model = new NinModel(modelConfig(o), 1);
      const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
      const save = (file: string, epoch: number, partialEpoch?: typeof within) => saveCheckpoint(join(dir, file), { model, opt, preprocessor: new Preprocessor('none', null), epoch, step: epoch * 12 + (partialEpoch?.batches ?? 0), partialEpoch, options: o, runId: 'R', stretch: 'a' });
      if (bestFile === 'epoch1') await save('best.safetensors', 1);
      await save('checkpoint.safetensors', 2, within);
      model.dispose();
      opt.dispose();
      const records = [{ kind: 'start', run: 'R', stretch: 'a', time: '' }, epochRecord(1, valErrors[0]), epochRecord(2, valErrors[1])];
      writeFileSync(join(dir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
      return dir;
    };
    const resume = async (dir: string) => {
      const lines: string[] = [];
      const o = { ...options(['--resume', dir]), log: (l: string) => lines.push(l) };
      const r = await train(o, await loadSplits(o));
      return { r, lines };
    };
    const stale = await setUp('best-gap', 'epoch1', [0.5, 0.1]);
    const a = await resume(stale);
    const bestPath = join(stale, 'best.safetensors');
    expect(a.lines).toContain(`${bestPath} is not the best epoch of the run's history (epoch 2): kept as ${join(stale, 'best.step12.superseded.safetensors')}`);
    expect(a.lines).toContain(`${bestPath}: epoch 2, the run's best so far, copied from ${join(stale, 'checkpoint.safetensors')}, the checkpoint resumed from`);
    // Epoch 3 replaces it only with a lower validation error than the logged 0.1; either way the file holds the epoch named.
    expect(a.r.best!.valError).toBeLessThanOrEqual(0.1);
    expect(loadCheckpoint(bestPath).epoch).toBe(a.r.best!.epoch);
    const missing = await setUp('best-missing', 'none', [0.5, 0.1]);
    const b = await resume(missing);
    expect(b.lines.some((l) => l.startsWith(`${join(missing, 'best.safetensors')}: epoch 2, the run's best so far, copied from`))).toBe(true);
    expect(existsSync(b.r.best!.checkpoint)).toBe(true);
    // The best epoch was 1, whose weights no file holds any more: tracking starts afresh.
    const lost = await setUp('best-lost', 'none', [0.1, 0.5]);
    const c = await resume(lost);
    expect(c.lines).toContain(`${join(lost, 'best.safetensors')} (epoch 1 of the run's history) is missing: the best epoch is tracked afresh from here`);
    expect(c.r.best!.epoch).toBe(3);
    expect(loadCheckpoint(c.r.best!.checkpoint).epoch).toBe(3);
    // Saved within epoch 3, after the best epoch 2: the checkpoint holds later weights than epoch 2's, so it is no copy of it.
    const within = await setUp('best-within', 'none', [0.5, 0.1], { batches: 5, stepsPerEpoch: 10, lossSum: 184, wrong: 72, seen: 80, seconds: 1 });
    const d = await resume(within);
    expect(d.lines).toContain(`${join(within, 'best.safetensors')} (epoch 2 of the run's history) is missing: the best epoch is tracked afresh from here`);
    expect(d.r.best!.epoch).toBe(3);
    // A fork (resumed into another directory) carries its parent's history, so its best epoch is
    // the parent's epoch 1 (validation error 0: no later epoch beats it), whose file it copies from
    // the parent's best.safetensors. It tracked its best afresh, against what compare showed.
    const parent = await setUp('best-parent', 'epoch1', [0, 0.5]);
    const fork = async (name: string) => {
      const lines: string[] = [];
      const o = { ...options(['--resume', join(parent, 'checkpoint.safetensors'), '--out', join(tmp, name)]), log: (l: string) => lines.push(l) };
      return { r: await train(o, await loadSplits(o)), lines };
    };
    const f = await fork('best-fork');
    expect(f.lines).toContain(`${join(tmp, 'best-fork', 'best.safetensors')}: epoch 1, the run's best so far, copied from ${join(parent, 'best.safetensors')}`);
    expect(f.r.best).toMatchObject({ epoch: 1, valError: 0, checkpoint: join(tmp, 'best-fork', 'best.safetensors') });
    const forkBest = loadCheckpoint(f.r.best!.checkpoint);
    expect(forkBest).toMatchObject({ epoch: 1, stretch: 'a', runId: loadCheckpoint(f.r.checkpoint).runId }); // the fork's run, the parent's stretch
    // The fork's directory holds its own run only: it resumes there, its best staying epoch 1, and
    // the copied file's curves are the fork's log.
    expect(logOfCheckpoint(join(tmp, 'best-fork'), forkBest.runId)).not.toBeNull();
    const onwardOptions = options(['--resume', join(tmp, 'best-fork'), '--epochs', '4']);
    const onward = await train(onwardOptions, await loadSplits(onwardOptions));
    expect(onward.best).toMatchObject({ epoch: 1, valError: 0 });
    // The file is read when the fork starts: a parent that goes on training meanwhile does not change it.
    const parent2 = await setUp('best-parent-2', 'none', [0.5, 0]);
    const parentCkpt = join(parent2, 'checkpoint.safetensors');
    const later = readSafetensors(parentCkpt);
    const racing = { ...options(['--resume', parentCkpt, '--out', join(tmp, 'best-fork-race')]), log: () => {}, interrupt: (step: number) => {
      if (step === 26) writeSafetensors(parentCkpt, later.tensors, { ...later.metadata, epoch: '3', step: '36' }); // the parent's next save
      return false;
    } };
    const raced = await train(racing, await loadSplits(racing));
    expect(raced.best).toMatchObject({ epoch: 2, valError: 0 });
    expect(loadCheckpoint(raced.best!.checkpoint).epoch).toBe(2);
    // The parent's best.safetensors holds epoch 1 as another stretch saved it: not the history's epoch 1, so not copied.
    const other = await setUp('best-parent-other', 'epoch1', [0, 0.5]);
    const held = readSafetensors(join(other, 'best.safetensors'));
    writeSafetensors(join(other, 'best.safetensors'), held.tensors, { ...held.metadata, stretch: 'b' });
    const otherLines: string[] = [];
    const fromOther = { ...options(['--resume', join(other, 'checkpoint.safetensors'), '--out', join(tmp, 'best-fork-other')]), log: (l: string) => otherLines.push(l) };
    expect((await train(fromOther, await loadSplits(fromOther))).best!.epoch).toBe(3);
    expect(otherLines).toContain(`${join(tmp, 'best-fork-other', 'best.safetensors')} (epoch 1 of the run's history) is missing: the best epoch is tracked afresh from here`);
    // Without the parent's file: tracked afresh, saying so.
    rmSync(join(parent, 'best.safetensors'));
    const g = await fork('best-fork-no-file');
    expect(g.lines).toContain(`${join(tmp, 'best-fork-no-file', 'best.safetensors')} (epoch 1 of the run's history) is missing: the best epoch is tracked afresh from here`);
    expect(g.r.best!.epoch).toBe(3);
    // The parent's directory taken by a new run (--overwrite moves its files aside): the fork's
    // history still holds the parent's epochs, from the log moved aside, and its best stays.
    copyFileSync(join(tmp, 'best-fork', 'best.safetensors'), join(parent, 'best.safetensors')); // epoch 1 as stretch a saved it
    moveRunAside(parent);
    writeFileSync(join(parent, 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'new', stretch: 'n', time: '' }) + '\n');
    // A new fork from the parent's checkpoint moved aside: its best file from the parent's best moved aside.
    const asideLines: string[] = [];
    const aside = { ...options(['--resume', join(parent, 'checkpoint.step24.superseded.safetensors'), '--out', join(tmp, 'best-fork-aside')]), log: (l: string) => asideLines.push(l) };
    expect((await train(aside, await loadSplits(aside))).best).toMatchObject({ epoch: 1, valError: 0 });
    expect(asideLines).toContain(`${join(tmp, 'best-fork-aside', 'best.safetensors')}: epoch 1, the run's best so far, copied from ${join(parent, 'best.step12.superseded.safetensors')}`);
    const forkEpochs = () => (currentHistory(runLog(join(tmp, 'best-fork'))) as { kind: string; epoch?: number }[]).filter((r) => r.kind === 'epoch').map((r) => r.epoch);
    expect(forkEpochs()).toEqual([1, 2, 3, 4]);
    const fifth = { ...options(['--resume', join(tmp, 'best-fork'), '--epochs', '5']), log: () => {} };
    expect((await train(fifth, await loadSplits(fifth))).best).toMatchObject({ epoch: 1, valError: 0 });
    expect(forkEpochs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a resume after a log cut off mid-record starts its records on a new line', async () => {
    const base = ['--batch', '16', '--train-limit', '96', '--test-limit', '16', '--epochs', '2', '--seed', '5'];
    const dir = join(tmp, 'torn-log');
    const first = await train(options([...base, '--stop-after', '1', '--out', dir]), await loadSplits(options(base)));
    const logPath = join(dir, 'metrics.jsonl');
    writeFileSync(logPath, readFileSync(logPath, 'utf8') + '{"kind":"step","epoch":1,"step":99,"loss":0.5'); // a record cut short
    await train(options(['--resume', first.checkpoint]), await loadSplits(options(base)));
    const records = parseMetricsLog(readFileSync(logPath, 'utf8')) as { kind: string; epoch?: number }[];
    expect(records.filter((r) => r.kind === 'resume')).toHaveLength(1);
    expect(records.filter((r) => r.kind === 'epoch').map((r) => r.epoch)).toEqual([1, 2]);
  });

  it("--profile on an epoch too short to leave out its warm-up steps says its times include compiles; the profile's own time is not the epoch's", async () => {
    const lines: string[] = [];
    let tableAt = 0;
    const log = (m: string) => {
      lines.push(m);
      if (!m.includes('per-kernel GPU time')) return;
      tableAt = performance.now();
      while (performance.now() < tableAt + 3000); // a profile slow to read back and print
    };
    const o = { ...options(['--batch', '16', '--train-limit', '32', '--test-limit', '16', '--epochs', '1', '--profile', '--out', join(tmp, 'profile-short')]), log };
    const data = await loadSplits(o);
    const t0 = performance.now();
    const r = await train(o, data);
    // The epoch's seconds (and so its img/s) end where its steps do, before the table.
    expect(1000 * r.epochs[0].seconds).toBeLessThan(tableAt - t0);
    const table = lines.find((l) => l.includes('per-kernel GPU time'))!;
    expect(table).toMatch(/per-kernel GPU time, epoch 1, per step \(mean over its last 1 steps\)/); // 2 steps: the second
    expect(table).toContain("note: these steps include this process's first, whose GPU times include compiling their kernels; an epoch of 3 or more steps (a smaller --batch) leaves them out");
  });

  it('--profile prints a per-kernel table of the first epoch after its warm-up steps', async () => {
    const lines: string[] = [];
    const o = { ...options(['--batch', '16', '--train-limit', '160', '--test-limit', '16', '--epochs', '1', '--profile', '--out', join(tmp, 'profile')]), log: (m: string) => lines.push(m) };
    const data = await loadSplits(o);
    await train(o, { ...data, consumable: false });
    // Not handed over: the caller's raw pixels are left alone.
    expect(data.train.images.every(Number.isInteger) && data.test.images.every(Number.isInteger)).toBe(true);
    const table = lines.find((l) => l.includes('per-kernel GPU time'));
    expect(table).toMatch(/per-kernel GPU time, epoch 1, per step \(mean over its last 8 steps\)/); // 10 steps, 2 warm-up
    expect(table).not.toContain('compiling');
    // One SGD update per parameter tensor (3 blocks × 3 weights and 3 biases) in every step.
    expect(table).toMatch(/\nsgd_step +18 /);
    expect(table).toMatch(/\nmlpconv5x5_fused_forward +1 /);
    // And by layer: each layer's forward and backward apart, the loss, the optimiser; the same total.
    const byLayer = lines.find((l) => l.includes('per-layer GPU time'))!;
    expect(byLayer).toMatch(/^per-layer GPU time, epoch 1, per step \(mean over its last 8 steps\)\n/);
    expect(byLayer).toMatch(/\nlayer 0 mlpconv5x5 16-16-16 +1 +[\d.]+ +[\d.]+ +mlpconv5x5_fused_forward [\d.]+\n/);
    expect(byLayer).toMatch(/\nlayer 0 mlpconv5x5 16-16-16 backward +\d+ /);
    expect(byLayer).toMatch(/\nlayer 1 maxpool 3\/2 backward +1 +[\d.]+ +[\d.]+ +maxpool_backward /);
    expect(byLayer).toMatch(/\nsgd +18 +[\d.]+ +[\d.]+ +sgd_step /);
    expect(byLayer).toMatch(/\nhead gap +1 /);
    expect(byLayer).not.toContain('(no scope)'); // every dispatch of a step has its layer
    const total = (t: string) => /\ntotal +(\d+) +([\d.]+)/.exec(t)!.slice(1);
    expect(total(byLayer)).toEqual(total(table!));
  });

  it('--profile on a run resumed within an epoch times the rest of that epoch after its own warm-up; a failed profile readback is said and the epoch still saved', async () => {
    const base = ['--batch', '16', '--train-limit', '160', '--test-limit', '16', '--epochs', '2'];
    const first = { ...options([...base, '--out', join(tmp, 'profile-resume')]), interrupt: (step: number) => step === 8 };
    const cut = await train(first, await loadSplits(first)).then(() => null, (e) => e);
    expect(loadCheckpoint(cut.checkpoint)).toMatchObject({ partialEpoch: { batches: 8, stepsPerEpoch: 10 } });
    const lines: string[] = [];
    const resumed = { ...options(['--resume', cut.checkpoint, '--profile', '--stop-after', '1']), log: (m: string) => lines.push(m) };
    await train(resumed, await loadSplits(resumed));
    // Batches 8 and 9 are left: one warm-up step, one timed (it was 0 timed: an empty table).
    expect(lines.find((l) => l.includes('per-kernel GPU time'))).toMatch(/per-kernel GPU time, epoch 1, per step \(mean over its last 1 steps\)\n[^]*\nsgd_step +18 /);
    // The profile is a diagnostic: its failure does not cost the epoch.
    const collect = vi.spyOn(Profiler.prototype, 'collect').mockRejectedValue(new Error('injected readback failure'));
    try {
      const failing = { ...options([...base, '--epochs', '1', '--profile', '--out', join(tmp, 'profile-fails')]), log: (m: string) => lines.push(m) };
      const r = await train(failing, await loadSplits(failing));
      expect(lines).toContain('warning: no per-kernel profile for epoch 1: injected readback failure');
      expect(loadCheckpoint(r.checkpoint)).toMatchObject({ epoch: 1 });
    } finally {
      collect.mockRestore();
    }
  });

  it('evaluate() pads a shorter last batch to the full size (no kernel compiled for its shape), and the loss and confusion are those of one image at a time', async () => {
    const o = options(['--batch', '16', '--train-limit', '32', '--test-limit', '20']);
    const { test } = await loadSplits(o);
    const model = new NinModel(modelConfig(o), 3);
    // The batch shapes the model runs (not the count of pipelines: earlier tests here may have
    // compiled a batch of 4 already).
    const forward = vi.spyOn(model, 'forward');
    try {
      const padded = await evaluate(model, test, 16); // 16 images, then 4 padded to 16
      expect(forward.mock.calls.map(([x]) => x.shape[0])).toEqual([16, 16]);
      forward.mockRestore();
      const alone = await evaluate(model, test, 1);
      expect(padded.count).toBe(20);
      expect(padded.confusion).toEqual(alone.confusion);
      expect(padded.confusion.flat().reduce((a, b) => a + b, 0)).toBe(20);
      expect(Math.abs(padded.loss - alone.loss)).toBeLessThanOrEqual(1e-6 * alone.loss);
      expect(padded.error).toBe(alone.error);
      expect(padded.warmSeconds).toBeGreaterThan(0);
      expect(padded.warmSeconds).toBeLessThanOrEqual(padded.seconds);
      // A label past the classes (a data set built by hand: the readers refuse one) is named.
      const bad = { ...test, labels: Int32Array.from(test.labels, (l, i) => (i === 17 ? 10 : l)) };
      await expect(evaluate(model, bad, 16)).rejects.toThrow(new RunRefused(`${test.name}: image 17 has label 10, but the model has 10 classes (labels 0–9)`));
    } finally {
      forward.mockRestore();
      model.dispose();
    }
  });

  it('logSumExp: ln Σ exp in float64, exact where a naive sum overflows; NaN and +∞ pass through', () => {
    expect(logSumExp([0, 0, 0, 0], 0, 4)).toBeCloseTo(Math.log(4), 15);
    expect(logSumExp([9, 1000, 1000, 9], 1, 2)).toBeCloseTo(1000 + Math.log(2), 12);
    expect(logSumExp([-1000, -1001], 0, 2)).toBeCloseTo(-1000 + Math.log(1 + Math.exp(-1)), 12);
    expect(logSumExp([1, NaN, 2], 0, 3)).toBeNaN();
    expect(logSumExp([1, Infinity], 0, 2)).toBe(Infinity);
  });

  it('evaluate() frees its batch tensors when a read fails', async () => {
    const o = options(['--batch', '16', '--train-limit', '32', '--test-limit', '16']);
    const { test } = await loadSplits(o);
    const model = new NinModel(modelConfig(o), 1);
    const live = pool().stats.liveBuffers;
    const read = vi.spyOn(Tensor.prototype, 'toArray').mockRejectedValue(new Error('injected read failure'));
    try {
      await expect(evaluate(model, test, 16)).rejects.toThrow('injected read failure');
    } finally {
      read.mockRestore();
    }
    expect(pool().stats.liveBuffers).toBe(live);
    model.dispose();
  });

  it("the progress line times the training loop only, its rate that of the epoch (as the epoch's line), and its ETA runs to --stop-after's epoch", async () => {
    const lines: string[] = [];
    // GCN + ZCA makes the set-up before the first step take a while (the fit), as on CIFAR.
    const args = ['--batch', '16', '--train-limit', '160', '--test-limit', '16', '--epochs', '100000', '--stop-after', '2', '--preprocess', 'gcn-zca', '--out', join(tmp, 'eta')];
    const o = { ...options(args), progress: true, log: (m: string) => lines.push(m) };
    // The directory holds the log of a run stopped before its first step (Ctrl-C in the ZCA fit): no run, so it is replaced.
    mkdirSync(join(tmp, 'eta'));
    writeFileSync(join(tmp, 'eta', 'metrics.jsonl'), JSON.stringify({ kind: 'start', run: 'stopped-early', stretch: 's', time: '' }) + '\n');
    const r = await train(o, await loadSplits(o));
    expect(lines).toContain(`${join(tmp, 'eta', 'metrics.jsonl')}: replaced the log of a run that stopped before its first step`);
    expect(readFileSync(join(tmp, 'eta', 'metrics.jsonl'), 'utf8')).not.toMatch(/stopped-early/);
    // Each epoch's last line: its rate is the epoch line's, epoch 2's too (a rate since the process
    // began carried epoch 1's compiles on); at the end, no time left (not the 99,998 epochs more
    // the schedule spans, nor epoch 1's first evaluation, which compiled its kernels).
    for (const epoch of [1, 2]) {
      // An epoch's first line (printed at its first step): no step has been read back to time yet.
      expect(lines.find((l) => l.startsWith(`epoch ${epoch}/100000 `))).toMatch(/ step 1\/10 {2}… img\/s /);
      const last = lines.filter((l) => l.startsWith(`epoch ${epoch}/100000 `)).at(-1)!;
      expect(last).toMatch(/ step 10\/10 /);
      expect(last).toContain(` loss ${r.epochs[epoch - 1].trainLoss.toFixed(4)} `); // the epoch's last step counted too
      const rate = Number(/([\d.]+) img\/s/.exec(last)![1]);
      expect(rate / r.epochs[epoch - 1].imgPerSec, `epoch ${epoch}`).toBeGreaterThan(0.8);
      expect(rate / r.epochs[epoch - 1].imgPerSec, `epoch ${epoch}`).toBeLessThan(1.25);
      if (epoch === 2) expect(last).toMatch(/ETA 0s$/);
    }
  });

  it('a second GCN + ZCA run on the same training images takes the fit from the cache ($NIN_CACHE), with the same losses', async () => {
    const cache = join(tmp, 'zca-cache');
    const was = process.env.NIN_CACHE;
    process.env.NIN_CACHE = cache;
    try {
      const run = async (name: string) => {
        const lines: string[] = [];
        const o = { ...options(['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '1', '--preprocess', 'gcn-zca', '--out', join(tmp, name)]), log: (m: string) => lines.push(m) };
        return { r: await train(o, await loadSplits(o)), lines };
      };
      const fitted = await run('zca-fitted');
      expect(fitted.lines.some((l) => l.startsWith('fitting ZCA whitening on 64 images of 784 features'))).toBe(true);
      expect(readdirSync(cache)).toHaveLength(1);
      const cached = await run('zca-cached');
      expect(cached.lines.some((l) => l.startsWith('fitting ZCA'))).toBe(false);
      expect(cached.lines).toContain(`ZCA whitening of these 64 training images from the cache: ${join(cache, readdirSync(cache)[0])} (NIN_CACHE=off fits afresh)`);
      expect(cached.r.stepLosses).toEqual(fitted.r.stepLosses);
      expect(cached.r.epochs[0].testLoss).toBe(fitted.r.epochs[0].testLoss);
    } finally {
      if (was === undefined) delete process.env.NIN_CACHE;
      else process.env.NIN_CACHE = was;
    }
  });

  it("trains a network of one's own (--config): its checkpoint keeps the config, for a resume (with dropout: the same losses) and for nin eval", async () => {
    const tiny = {
      name: 'mnist-tiny',
      input: { height: 28, width: 28, channels: 1 },
      classes: 10,
      layers: [
        // A strided first block, an even kernel with padding (28 → 14), as ImageNet's NIN starts: the unfused chain.
        { type: 'mlpconv', kernel: 4, stride: 2, padding: 1, channels: [8, 8, 8] }, { type: 'avgpool', kernel: 3, stride: 2 }, { type: 'dropout', p: 0.5 },
        { type: 'mlpconv', kernel: 3, channels: [16, 16, 10], linearOut: true },
      ],
    };
    const file = join(tmp, 'tiny.json');
    writeFileSync(file, JSON.stringify(tiny));
    const out = join(tmp, 'own');
    const parsed = (args: string[]): TrainOptions => ({ ...parseTrainArgs(args).options, progress: false, log: () => {} });
    const o = parsed(['--config', file, '--batch', '16', '--train-limit', '160', '--test-limit', '32', '--epochs', '2', '--stop-after', '1', '--out', out]);
    const first = await train(o, await loadSplits(o));
    const saved = loadCheckpoint(first.checkpoint);
    expect(saved.config).toEqual({ ...tiny, head: 'gap', init: 'he', initStd: 0.05 });
    expect(saved.params.size).toBe(12); // 2 mlpconvs × 3 layers × (weights, bias)
    const resumed = parsed(['--resume', out]);
    expect(resumed).toMatchObject({ model: 'mnist-tiny', config: saved.config });
    const rest = await train(resumed, await loadSplits(resumed));
    expect(rest.epochs.map((e) => e.epoch)).toEqual([2]);
    // Dropout's masks follow the step number, so the resumed epoch repeats the uninterrupted one.
    const whole = parsed(['--config', file, '--batch', '16', '--train-limit', '160', '--test-limit', '32', '--epochs', '2', '--out', join(tmp, 'own-whole')]);
    const full = await train(whole, await loadSplits(whole));
    expect(first.stepLosses).toEqual(full.stepLosses.slice(0, 10));
    expect(rest.stepLosses).toEqual(full.stepLosses.slice(10));
    const ev = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'eval', out, '--test-limit', '32'], { timeout: 300_000 });
    expect(ev.status, ev.stderr).toBe(0);
    expect(ev.stdout).toContain(`(epoch 2): test loss ${rest.test!.loss.toFixed(4)}, error ${(100 * rest.test!.error).toFixed(2)}% on 32 images`);
  });

  it('stops a diverging run with the step and the last good checkpoint', async () => {
    // (an lr past the CLI's cap of 1000, through the library)
    const o = { ...options(['--batch', '16', '--momentum', '0', '--train-limit', '64', '--test-limit', '16', '--epochs', '3', '--out', join(tmp, 'nan')]), lr: 1e8 };
    const err = await train(o, await loadSplits(o)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toMatch(/loss is (NaN|Infinity|-Infinity) at step \d+ \(epoch \d\): the run diverged \(a lower --lr or a longer --warmup may help\); last good checkpoint: /);
  });

  it('a write that fails (here: the run directory removed mid-run) stops the run naming the file and the last good checkpoint', async () => {
    const dir = join(tmp, 'vanishing');
    const base = ['--batch', '16', '--train-limit', '64', '--test-limit', '16', '--epochs', '3'];
    const first = await train(options([...base, '--stop-after', '1', '--out', dir]), await loadSplits(options(base)));
    const kept = join(tmp, 'vanishing-epoch1.safetensors');
    copyFileSync(first.checkpoint, kept);
    const o = { ...options(['--resume', kept, '--out', dir]), interrupt: (step: number) => (step === 6 && rmSync(dir, { recursive: true }), false) };
    const err = await train(o, await loadSplits(o)).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(TrainingStopped);
    expect(err.message).toBe(`${dir}: this run's lock is lost: ${join(dir, 'run.lock')} is gone (the directory was removed or moved); stopped without writing there; last good checkpoint: ${kept}`);
    // Removed, and another run started there meanwhile: its files are left as they are (the run
    // wrote its records and checkpoint over the new run's before).
    const theirs = { pid: process.ppid, host: hostname(), since: 'just now' };
    const taken = { ...options(['--resume', kept, '--out', dir]), interrupt: (step: number) => {
      if (step === 6) {
        rmSync(dir, { recursive: true });
        mkdirSync(dir);
        writeFileSync(join(dir, 'run.lock'), JSON.stringify(theirs));
        writeFileSync(join(dir, 'metrics.jsonl'), '{"kind":"start","run":"theirs"}\n');
      }
      return false;
    } };
    const err2 = await train(taken, await loadSplits(taken)).then(() => null, (e) => e);
    expect(err2).toBeInstanceOf(TrainingStopped);
    expect(err2.message).toContain(`${dir}: this run's lock is lost: ${join(dir, 'run.lock')} is now another run's (process ${process.ppid} on ${hostname()}, since just now)`);
    expect(readdirSync(dir).sort()).toEqual(['metrics.jsonl', 'run.lock']);
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).toBe('{"kind":"start","run":"theirs"}\n');
    expect(JSON.parse(readFileSync(join(dir, 'run.lock'), 'utf8'))).toEqual(theirs);
    // A lock that can be neither read nor removed (as in a directory made read-only, where a user's
    // run stopped with the bare EACCES of the lock's removal in place of the stop): the stop stands,
    // and the lock left is said. (Here a directory at its path: root writes in a read-only one.)
    rmSync(dir, { recursive: true });
    const lines: string[] = [];
    const stuck = { ...options(['--resume', kept, '--out', dir]), log: (l: string) => lines.push(l), interrupt: (step: number) => {
      if (step === 6) {
        rmSync(join(dir, 'run.lock'));
        mkdirSync(join(dir, 'run.lock', 'inside'), { recursive: true });
      }
      return false;
    } };
    const err3 = await train(stuck, await loadSplits(stuck)).then(() => null, (e) => e);
    expect(err3).toBeInstanceOf(TrainingStopped);
    expect(err3.message).toContain(`${dir}: this run's lock is lost: ${join(dir, 'run.lock')} cannot be read (EISDIR`);
    expect(err3.message.endsWith(`; stopped without writing there; last good checkpoint: ${kept}`)).toBe(true);
    expect(lines.at(-1)).toContain(`${join(dir, 'run.lock')}: the run's lock could not be removed (EISDIR`);
    expect(lines.at(-1)!.endsWith(`; a later run in ${dir} replaces it, as this process will not be running`)).toBe(true);
  });

  it('predicts PNG images and draws Figure 4 and the curves from a checkpoint', async () => {
    const ckpt = join(tmp, 'short', 'checkpoint.safetensors');
    expect(existsSync(ckpt)).toBe(true);
    // A test-set digit written as a PNG.
    const test = (await loadSplits(options(['--batch', '16', '--train-limit', '32', '--test-limit', '1']))).test;
    const png = new PNG({ width: 28, height: 28 });
    for (let i = 0; i < 784; i++) png.data.set([test.images[i], test.images[i], test.images[i], 255], 4 * i);
    const file = join(tmp, 'digit.png');
    writeFileSync(file, PNG.sync.write(png));
    const live = pool().stats.liveBuffers;
    const [line] = await predict(ckpt, [file]);
    expect(pool().stats.liveBuffers, 'predict leaves nothing on the GPU').toBe(live);
    expect(line).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: (\\d \\d+\\.\\d%, ){4}\\d \\d+\\.\\d%$`));
    // The five most probable classes, most probable first, in percent: five of MNIST's ten classes
    // hold at least half the probability. The true class's share is the one the test set's own copy
    // of the picture gets (evaluate's loss on it is −ln p).
    const top5 = line.slice(file.length + 2).split(', ').map((s) => s.split(' '));
    const classes = top5.map(([k]) => Number(k));
    const percents = top5.map(([, v]) => Number(v.slice(0, -1)));
    expect(new Set(classes).size).toBe(5);
    for (const k of classes) expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).toContain(k);
    for (let i = 1; i < 5; i++) expect(percents[i]).toBeLessThanOrEqual(percents[i - 1]);
    const sum = percents.reduce((a, b) => a + b, 0);
    expect(sum).toBeGreaterThanOrEqual(50 - 0.25);
    expect(sum).toBeLessThanOrEqual(100 + 0.25);
    {
      const c = loadCheckpoint(ckpt);
      const model = c.buildModel();
      const one = { ...test, images: c.preprocessor.apply(test.images.slice(0, 784), 1, c.config.input), labels: test.labels.slice(0, 1), count: 1 };
      const { loss } = await evaluate(model, one, 1).finally(() => model.dispose());
      const truth = classes.indexOf(test.labels[0]);
      expect(truth, `true class ${test.labels[0]} among the top 5 of ${line}`).toBeGreaterThanOrEqual(0);
      expect(Math.abs(percents[truth] - 100 * Math.exp(-loss))).toBeLessThanOrEqual(0.051);
    }
    expect(pool().stats.liveBuffers).toBe(live);
    // One picture that cannot be read is named as such, not predicted as a blank image.
    const unreadable = join(tmp, 'unreadable.png');
    writeFileSync(unreadable, 'text');
    await expect(predict(ckpt, [unreadable])).rejects.toThrow(`${unreadable}: not a PNG or JPEG file`);
    // A picture of another size is resized to the model's input, with a note.
    const wide = new PNG({ width: 56, height: 28 });
    for (let y = 0; y < 28; y++) for (let x = 0; x < 56; x++) wide.data.set([test.images[y * 28 + (x >> 1)], 0, 0, 255], 4 * (y * 56 + x));
    const wideFile = join(tmp, 'wide.png');
    writeFileSync(wideFile, PNG.sync.write(wide));
    const notes: string[] = [];
    // (Four pictures in one batch, and below one and four: the batch sizes other tests compile.)
    const [wideLine, sameLine, ...more] = await predict(ckpt, [wideFile, file, file, file], (n) => notes.push(n));
    expect(wideLine).toMatch(/wide\.png: (\d \d+\.\d%, ){4}\d \d+\.\d%$/);
    expect(sameLine).toBe(line);
    expect(more).toEqual([line, line]);
    expect(notes).toEqual([`${wideFile}: resized from 56×28 to 28×28 (width×height), aspect ratio changed from 2:1 to 1:1`, `${wideFile}: a colour picture, read as grey (BT.601 luma): the model takes grey images`]); // (drawn in red)
    // The digit drawn dark on white: a note names its light border; with --invert it is the original again.
    const dark = new PNG({ width: 28, height: 28 });
    for (let i = 0; i < 784; i++) dark.data.set([255 - test.images[i], 255 - test.images[i], 255 - test.images[i], 255], 4 * i);
    const darkFile = join(tmp, 'dark-digit.png');
    writeFileSync(darkFile, PNG.sync.write(dark));
    const darkNotes: string[] = [];
    await predict(ckpt, [darkFile], (n) => darkNotes.push(n));
    expect(darkNotes).toEqual([`${darkFile}: its border is light (mean 1.00 of 1); MNIST's digits are light strokes on black: for a dark digit on a light background, pass --invert`]);
    darkNotes.length = 0;
    expect(await predict(ckpt, [darkFile], (n) => darkNotes.push(n), { invert: true })).toEqual([line.replace(file, darkFile)]);
    expect(darkNotes).toEqual([]);
    // Every picture that cannot be read is named at once, and none is predicted.
    const notPng = join(tmp, 'not-a.png');
    writeFileSync(notPng, 'text');
    const missing = join(tmp, 'missing.png');
    await expect(predict(ckpt, [notPng, file, missing])).rejects.toThrow(new RegExp(`2 of 3 images cannot be read:\n  ${notPng.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not a PNG or JPEG file.*\n  ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: file not found$`));
    // With skipUnreadable (as `nin predict` runs), the others are predicted and these listed.
    const some = await predictProbabilities(ckpt, [notPng, file, missing], () => {}, { skipUnreadable: true });
    expect(formatPredictions(some)).toEqual([line]);
    expect(some.unreadable.map(({ image, reason }) => [image, reason.replace(/:.*/s, '')])).toEqual([[notPng, 'not a PNG or JPEG file'], [missing, 'file not found']]);
    // Where none can be read, nothing is predicted (no GPU work); 1,000 pictures are said to be read first.
    const said: string[] = [];
    const allocations = pool().stats.allocations;
    const none = await predictProbabilities(ckpt, Array.from({ length: 1000 }, (_, i) => (i % 2 ? notPng : missing)), () => {}, { skipUnreadable: true, workers: 1, progress: (line) => said.push(line) });
    expect([none.images, none.probabilities.length, none.unreadable.length, said]).toEqual([[], 0, 1000, ['reading 1000 pictures…']]);
    expect(pool().stats.allocations, 'no model built').toBe(allocations);
    // A caller that stops after the first chunk leaves nothing on the GPU.
    for await (const part of predictChunks(ckpt, [file, file], () => {}, { skipUnreadable: true, chunk: 1 })) {
      expect(formatPredictions(part)).toEqual([line]);
      break;
    }
    expect(pool().stats.liveBuffers, 'the model freed when the caller stops').toBe(live);
    // In chunks (here of 5), each read in worker threads (as a directory of photos is): the same
    // predictions, notes and unreadable pictures, in the order named, from both threads' parts.
    // (Four and one predicted: batch sizes compiled above.)
    const threaded: string[] = [];
    const chunks: Predictions[] = [];
    for await (const part of predictChunks(ckpt, [notPng, file, file, wideFile, file, missing, file], (n) => threaded.push(n), { skipUnreadable: true, workers: 2, imagesPerWorker: 1, chunk: 5 })) chunks.push(part);
    expect(chunks.map((part) => [part.images.length, part.unreadable.map(({ image }) => image)])).toEqual([[4, [notPng]], [1, [missing]]]);
    expect(chunks.flatMap(formatPredictions)).toEqual([line, line, wideLine, line, line]);
    expect(threaded).toEqual(notes);
    // Each prediction carries its own picture's notes (by its place in the chunk, across both threads' parts).
    expect(chunks.flatMap((part) => part.notes)).toEqual([[], [], notes, [], []]);
    // Three pictures run as a batch of four, the fourth blank (kernels are compiled per shape, and
    // each new count compiled the whole forward pass again), with the same results.
    const pipelines = runtimeStats().pipelines;
    expect(await predict(ckpt, [wideFile, file, file], () => {})).toEqual([wideLine, sameLine, sameLine]);
    expect(runtimeStats().pipelines - pipelines, 'kernels compiled to predict 3 pictures after 4').toBe(0);
    // Where the device binds only four images' activations at a time, five go as four and one
    // padded to four (batch sizes compiled above), with the same results.
    await withDeviceLimit('maxStorageBufferBindingSize', 4 * 4 * 28 * 28 * 16, async () => { // mnist-small's widest activation, [28, 28, 16]
      expect(await predict(ckpt, [wideFile, file, file, file, file], () => {})).toEqual([wideLine, sameLine, sameLine, sameLine, sameLine]);
      expect(pool().stats.liveBuffers, 'predict in batches leaves nothing on the GPU').toBe(live);
    });
    const written = await visualize(ckpt, { count: 4, outDir: join(tmp, 'pictures') }); // 4 images, as predict's batches above: no kernel compiled anew
    expect(pool().stats.liveBuffers, 'visualize leaves nothing on the GPU').toBe(live);
    expect(written.map((f) => f.split('/').pop())).toEqual(['feature-maps.png', 'curves.png']);
    for (const f of written) expect(PNG.sync.read(readFileSync(f)).width).toBeGreaterThan(100);
    // Frames mark the true (blue) and predicted (green or red) class's map: under GAP only. An FC
    // head's 10 maps feed a learnt mix, and map k is no class's (they were framed as classes).
    const framePixels = (path: string) => {
      const { data } = PNG.sync.read(readFileSync(path));
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if ([[0, 150, 60], [215, 25, 28], [30, 100, 230]].some(([r, g, b]) => data[i] === r && data[i + 1] === g && data[i + 2] === b)) n++;
      return n;
    };
    expect(framePixels(written[0])).toBeGreaterThan(100);
    const fc = await saveUntrained(options(['--head', 'fc', '--out', join(tmp, 'fc-maps')]), join(tmp, 'fc-maps.safetensors'));
    const [fcMaps] = await visualize(fc, { count: 4, outDir: join(tmp, 'fc-pictures') });
    expect(framePixels(fcMaps)).toBe(0);
  });

  // The commands as a user runs them: a fresh process that has not opened the GPU yet (the
  // in-process calls above run after beforeAll's getGpu, which once hid a missing one).
  it('nin eval, predict and visualize run from the command line on a checkpoint', async () => {
    const ckpt = join(tmp, 'short', 'checkpoint.safetensors');
    const digit = join(tmp, 'digit.png');
    expect(existsSync(digit)).toBe(true);
    const nin = (...args: string[]) => runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', ...args], { timeout: 300_000 });
    // A run directory stands for its checkpoint. (--batch 16, as the runs here: 50 images as four batches of 16, the last padded.)
    const json = join(tmp, 'eval', 'short.json');
    const ev = await nin('eval', join(tmp, 'short'), '--test-limit', '50', '--batch', '16', '--json', json);
    expect(ev.stderr).not.toMatch(/nin: /);
    expect(ev.status).toBe(0);
    const printed = /\(epoch 3\): test loss (\d+\.\d+), error (\d+\.\d+)% on 50 images/.exec(ev.stdout);
    expect(printed).not.toBeNull();
    // --json: the same numbers, the confusion matrix (rows: true classes) and each class's error.
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect([report.epoch, report.images, report.testSet]).toEqual([3, 50, 'mnist/test[:50]']);
    // The run's settings and network, so a table of reports needs no checkpoint header read.
    expect([report.options.seed, report.options.batchSize, report.config.name, report.config.head]).toEqual([3, 16, 'mnist-small', 'gap']);
    expect([report.loss.toFixed(4), (100 * report.error).toFixed(2)]).toEqual([printed![1], printed![2]]);
    const confusion = report.confusion as number[][];
    expect(confusion.flat().reduce((a, b) => a + b, 0)).toBe(50);
    const wrong = confusion.reduce((sum, row, k) => sum + row.reduce((a, b) => a + b, 0) - row[k], 0);
    expect(wrong / 50).toBeCloseTo(report.error, 12);
    confusion.forEach((row, k) => {
      const n = row.reduce((a, b) => a + b, 0);
      expect(report.classError[k]).toBe(n ? (n - row[k]) / n : null);
    });
    const badJson = await nin('eval', join(tmp, 'short'), '--json', 'package.json/eval.json');
    expect(badJson.status).toBe(2);
    expect(badJson.stderr).toContain(`--json package.json/eval.json: ${resolve('package.json')} is a file, not a directory`);
    // A run's own files are not written over (eval's JSON over its checkpoint left no checkpoint;
    // predict's over its log, a log that resumes and compare read as empty).
    const runFiles = ['checkpoint.safetensors', 'metrics.jsonl'].map((f) => join(tmp, 'short', f));
    const before = runFiles.map((f) => readFileSync(f));
    const overCheckpoint = await nin('eval', join(tmp, 'short'), '--test-limit', '10', '--json', runFiles[0]);
    expect([overCheckpoint.status, overCheckpoint.stderr]).toEqual([2, expect.stringContaining(`--json ${runFiles[0]} is a checkpoint: writing there would replace it; name another file`)]);
    const overLog = await nin('predict', join(tmp, 'short'), digit, '--json', runFiles[1]);
    expect([overLog.status, overLog.stderr]).toEqual([2, expect.stringContaining(`--json ${runFiles[1]} is a run's log: writing there would replace it; name another file`)]);
    const exportOverLog = await nin('export', join(tmp, 'short'), '--out', runFiles[1]);
    expect([exportOverLog.status, exportOverLog.stderr]).toEqual([2, expect.stringContaining(`--out ${runFiles[1]} is a run's log: writing there would replace it; name another file (e.g. ${join(tmp, 'short', 'model.onnx')})`)]);
    runFiles.forEach((f, i) => expect(readFileSync(f).equals(before[i])).toBe(true));
    writeFileSync(join(tmp, 'eval', 'run.lock'), '{}');
    expect([json, join(tmp, 'eval', 'run.lock'), join(tmp, 'eval', 'none.json')].map(runFileKind)).toEqual([null, "a run's lock", null]); // (eval's own JSON may be written again)
    const past = await nin('eval', join(tmp, 'short'), '--test-limit', '10001');
    expect(past.status).toBe(2);
    expect(past.stderr).toContain("--test-limit 10001 is more than mnist's 10000 test images: leave it out to test on all");
    const predictions = join(tmp, 'predict', 'digit.json');
    // A picture that cannot be read is named after the others' predictions, and the status is 1.
    const junk = join(tmp, 'junk.png');
    writeFileSync(junk, 'text');
    const wide = join(tmp, 'wide.png'); // (56×28, drawn in red: two notes)
    expect(existsSync(wide)).toBe(true);
    const pr = await nin('predict', ckpt, junk, digit, wide, '--json', predictions);
    expect(pr.status, pr.stderr).toBe(1);
    expect(pr.stdout).toMatch(/digit\.png: (\d \d+\.\d%, ){4}\d \d+\.\d%/);
    expect(pr.stderr).toContain(`nin: 1 of 3 images cannot be read (the other 2 are predicted above):\n  ${junk}: not a PNG or JPEG file`);
    // --json: every class's probability; its top 5 are the printed ones.
    const pj = JSON.parse(readFileSync(predictions, 'utf8'));
    expect(pj.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const [p] = pj.predictions;
    expect(pj.predictions.map((q: { image: string }) => q.image)).toEqual([digit, wide]);
    // Each picture's notes, as the terminal has them, less its path.
    expect(pj.predictions.map((q: { notes: string[] }) => q.notes)).toEqual([[], ['resized from 56×28 to 28×28 (width×height), aspect ratio changed from 2:1 to 1:1', 'a colour picture, read as grey (BT.601 luma): the model takes grey images']]);
    expect(pr.stderr).toContain(`note: ${wide}: resized from 56×28 to 28×28`);
    expect(pj.notes).toEqual([]);
    expect(pj.unreadable).toEqual([{ image: junk, reason: expect.stringMatching(/^not a PNG or JPEG file/) }]);
    // None readable: said so, in the same form; a long list is cut at 20.
    const junks = Array.from({ length: 21 }, (_, i) => join(tmp, `junk-${i}.png`));
    for (const f of junks) writeFileSync(f, 'text');
    const nothing = await nin('predict', ckpt, ...junks);
    expect([nothing.status, nothing.stdout]).toEqual([1, '']);
    expect(nothing.stderr).toContain(`nin: 21 of 21 images cannot be read (none predicted):\n  ${junks[0]}: not a PNG or JPEG file`);
    expect(nothing.stderr).toMatch(new RegExp(`junk-19\\.png: not a PNG or JPEG file.*\n  and 1 more\n?$`));
    expect(p.probabilities.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);
    const top5 = p.probabilities.map((q: number, index: number) => ({ index, q })).sort((a: { q: number }, b: { q: number }) => b.q - a.q).slice(0, 5);
    expect(p.top5.map((t: { index: number }) => t.index)).toEqual(top5.map((t: { index: number }) => t.index));
    expect(pr.stdout).toContain(`digit.png: ${p.top5.map((t: { name: string; probability: number }) => `${t.name} ${(100 * t.probability).toFixed(1)}%`).join(', ')}`);
    // eval --pictures DIR: pictures of one's own in class folders (some of the classes), tested as
    // the test set is: the confusion, error and loss of the test set's own copies of them.
    const eight = (await loadSplits(options(['--batch', '16', '--train-limit', '32', '--test-limit', '8']))).test;
    const mine = join(tmp, 'my-digits');
    for (let i = 0; i < 8; i++) {
      const picture = new PNG({ width: 28, height: 28 });
      for (let p = 0; p < 784; p++) picture.data.set([eight.images[i * 784 + p], eight.images[i * 784 + p], eight.images[i * 784 + p], 255], 4 * p);
      mkdirSync(join(mine, String(eight.labels[i])), { recursive: true });
      writeFileSync(join(mine, String(eight.labels[i]), `${i}.png`), PNG.sync.write(picture));
    }
    const saved = loadCheckpoint(ckpt);
    const model = saved.buildModel();
    const want = await evaluate(model, await saved.preprocessor.applyTo(eight), 1).finally(() => model.dispose());
    const mineJson = join(tmp, 'eval', 'my-digits.json');
    // A folder the model has no class for: named, the message as it is (no error class before it).
    const cats = join(tmp, 'not-digits');
    mkdirSync(join(cats, 'cat'), { recursive: true });
    const wrongClass = await nin('eval', ckpt, '--pictures', cats);
    expect([wrongClass.status, wrongClass.stderr.trim()]).toEqual([1, `nin: ${cats}: class folder cat is not among the model's classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9`]);
    const pastPictures = await nin('eval', ckpt, '--pictures', mine, '--test-limit', '9');
    expect(pastPictures.status).toBe(2);
    expect(pastPictures.stderr.trim().split('\n').slice(-2)).toEqual([`nin: --test-limit 9 is more than ${mine}'s 8 test images: leave it out to test on all`, '(nin eval --help shows the usage)']);
    const ownEval = await nin('eval', ckpt, '--pictures', mine, '--batch', '1', '--json', mineJson);
    expect(ownEval.status, ownEval.stderr).toBe(0);
    expect(ownEval.stdout).toContain(`error ${(100 * want.error).toFixed(2)}% on 8 images in ${mine}`);
    const own = JSON.parse(readFileSync(mineJson, 'utf8'));
    expect([own.testSet, own.images, own.error, own.confusion]).toEqual([mine, 8, want.error, want.confusion]);
    expect(own.loss).toBeCloseTo(want.loss, 5); // (summed in another order)
    expect([own.notes, own.pictureNotes]).toEqual([[], []]);
    // Each picture's notes in the JSON, in full (the terminal counts the resized ones).
    const mixed = join(tmp, 'mixed-digits');
    mkdirSync(join(mixed, '7'), { recursive: true });
    copyFileSync(join(mine, String(eight.labels[0]), '0.png'), join(mixed, '7', 'a.png'));
    copyFileSync(wide, join(mixed, '7', 'b.png'));
    const mixedJson = join(tmp, 'eval', 'mixed.json');
    const mixedEval = await nin('eval', ckpt, '--pictures', mixed, '--json', mixedJson);
    expect(mixedEval.status, mixedEval.stderr).toBe(0);
    expect(mixedEval.stderr).toContain(`note: ${basename(tmp)}/mixed-digits: 1 of 2 images resized to 28×28 (width×height)`);
    expect(mixedEval.stderr).toContain(`note: ${join(mixed, '7', 'b.png')}: a colour picture, read as grey`);
    expect(mixedEval.stderr).not.toContain('resized from');
    const mixedReport = JSON.parse(readFileSync(mixedJson, 'utf8'));
    expect(mixedReport.notes).toEqual([`${basename(tmp)}/mixed-digits: 1 of 2 images resized to 28×28 (width×height)`]);
    expect(mixedReport.pictureNotes).toEqual([{ image: join(mixed, '7', 'b.png'), notes: ['resized from 56×28 to 28×28 (width×height), aspect ratio changed from 2:1 to 1:1', 'a colour picture, read as grey (BT.601 luma): the model takes grey images'] }]);
    const vis = await nin('visualize', ckpt, '--images', '4', '--out', join(tmp, 'cli-pictures'));
    expect(vis.status, vis.stderr).toBe(0);
    expect(existsSync(join(tmp, 'cli-pictures', 'feature-maps.png'))).toBe(true);
  });

  it('nin eval: a device out of memory is said with the batch it evaluated at (exit 1)', async (ctx) => {
    if (gpu().limits.maxBufferSize < ALLOCATION_FAULT) return ctx.skip();
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    const out = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      trimPool(); // (else its buffers may all come from the pool: no buffer made, no fault)
      setAllocationFault(ALLOCATION_FAULT); // the next buffer made: a weight, or an activation
      expect(await main(['eval', join(tmp, 'short'), '--test-limit', '16', '--batch', '16'])).toBe(1);
    } finally {
      spy.mockRestore();
      out.mockRestore();
      setAllocationFault(0);
      await getGpu(); // (main closed it)
    }
    expect(errors).toEqual(['mnist/test[:16]: 16 images 28×28×1 (height×width×channels)', expect.stringMatching(/^nin: GpuError: GPU out of memory: the device could not make a buffer of .*; evaluating at batch 16: a smaller --batch needs less memory$/)]);
  });

  it('nin eval of several checkpoints: each one\'s line, then a table of them all, and --json an array; one given twice is a usage error', async () => {
    const runDir = join(tmp, 'short');
    const kept = join(tmp, 'keep-every', 'epoch-002.step6.superseded.safetensors'); // (the --keep-every test's, moved aside by its --overwrite)
    const json = join(tmp, 'several.json');
    const out: string[] = [];
    const errors: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((m: string) => void out.push(m));
    const error = vi.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    let twice: number;
    const truncated = join(tmp, 'truncated.safetensors'); // its header reads; its tensors do not
    writeFileSync(truncated, readFileSync(kept).subarray(0, -100));
    try {
      expect(await main(['eval', runDir, kept, '--test-limit', '16', '--batch', '16', '--json', json])).toBe(0);
      twice = await main(['eval', runDir, join(runDir, 'checkpoint.safetensors')]);
      // Every checkpoint is read before any is evaluated: the first is not, when the second is damaged.
      const before = out.length;
      expect(await main(['eval', runDir, truncated, '--test-limit', '16'])).toBe(1);
      expect(out.length).toBe(before);
    } finally {
      log.mockRestore();
      error.mockRestore();
      await getGpu(); // (main closed it)
    }
    const records = JSON.parse(readFileSync(json, 'utf8')) as { checkpoint: string; epoch: number; images: number; loss: number; error: number; testSet: string }[];
    const first = join(runDir, 'checkpoint.safetensors');
    expect(records.map((r) => [r.checkpoint, r.epoch, r.images, r.testSet])).toEqual([[first, 3, 16, 'mnist/test[:16]'], [kept, 2, 16, 'mnist/test[:16]']]);
    const pct = (e: number) => `${(100 * e).toFixed(2)}%`;
    const lines = out.join('\n').split('\n');
    expect(lines.slice(0, 2)).toEqual(records.map((r) => `${r.checkpoint} (epoch ${r.epoch}): test loss ${r.loss.toFixed(4)}, error ${pct(r.error)} on 16 images`));
    expect(lines).not.toContain('confusion matrix (rows: true class, columns: predicted)'); // (one checkpoint's alone)
    expect(lines[3].split(/\s{2,}/)).toEqual(['checkpoint', 'saved', 'test set', 'images', 'test loss', 'test error']);
    expect(lines.slice(5, 7).map((l) => l.split(/\s{2,}/))).toEqual(records.map((r) => [r.checkpoint, `epoch ${r.epoch}`, 'mnist/test[:16]', '16', r.loss.toFixed(4), pct(r.error)]));
    expect(lines.slice(7)).toEqual([`wrote ${json}`]);
    expect(twice!).toBe(2);
    expect(errors.at(-2)).toBe(`nin: ${first} is given twice: give each checkpoint once\n(nin eval --help shows the usage)`);
    expect(errors.at(-1)).toMatch(new RegExp(`^nin: ${truncated.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });

  it('nin train: Ctrl-C (delivered twice at once, as through npm run) saves a checkpoint where the run stands and exits with 130', async () => {
    const out = join(tmp, 'sigint');
    const child = spawn(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'train', '--model', 'mnist-small', '--train-limit', '20000', '--test-limit', '16', '--batch', '16', '--epochs', '1', '--out', out]);
    // 1,250 steps: an unloaded CPU must not finish the epoch before the signal lands (4,000 images did).
    let stderr = '';
    let lockWhileTraining: unknown = null;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // At the first progress line, Ctrl-C as `npm run` delivers it: twice within a millisecond.
      if (/step [1-9]\d*\/1250/.test(stderr) && !child.killed) {
        lockWhileTraining = JSON.parse(readFileSync(join(out, 'run.lock'), 'utf8'));
        child.kill('SIGINT');
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/SIGINT: saving a checkpoint after this step \(at an epoch's end: after its evaluation\), then stopping/);
    const m = stderr.match(/nin: interrupted at step (\d+) \(epoch 1, batch (\d+) of 1250\); checkpoint (.+\.safetensors): --resume /);
    expect(m, stderr).not.toBeNull();
    expect(m![3]).toBe(join(out, 'checkpoint.safetensors'));
    expect(loadCheckpoint(m![3])).toMatchObject({ epoch: 0, step: Number(m![1]), partialEpoch: { batches: Number(m![2]), stepsPerEpoch: 1250 } });
    expect(lockWhileTraining).toMatchObject({ pid: child.pid });
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });

  it('nin train: a second Ctrl-C a second later quits at once, naming the checkpoint to resume from, which it leaves intact', async () => {
    const out = join(tmp, 'sigint-twice');
    const cli = ['--import', 'tsx', 'nin/cli.ts', 'train', '--model', 'mnist-small', '--train-limit', '16', '--batch', '16', '--out', out];
    const first = await runAsync(process.execPath, [...cli, '--epochs', '1', '--test-limit', '16'], { timeout: 300_000 });
    expect(first.status, first.stderr).toBe(0);
    const ckpt = join(out, 'checkpoint.safetensors');
    const saved = readFileSync(ckpt);
    // One more step, then the epoch's evaluation on the whole test set: the first Ctrl-C waits for
    // its end, which the second, 1.2 s later, does not. (Lavapipe takes well over 1.2 s for it; a
    // fast GPU might finish first, and the test would fail on the missing "again" line.)
    const child = spawn(process.execPath, [...cli, '--resume', ckpt, '--epochs', '2', '--test-limit', '10000']);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/step 1\/1/.test(stderr) && !child.killed) {
        child.kill('SIGINT');
        setTimeout(() => child.kill('SIGINT'), 1200);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/SIGINT: saving a checkpoint after this step/);
    expect(stderr).toContain(`SIGINT again: quitting at once; the steps since the last checkpoint are lost; --resume ${shellWord(ckpt)} continues from it`);
    expect(stderr).not.toMatch(/epoch 2: train loss/); // it did not wait for the evaluation
    expect(readFileSync(ckpt).equals(saved)).toBe(true);
    expect(loadCheckpoint(ckpt)).toMatchObject({ epoch: 1 });
    expect(existsSync(join(out, 'run.lock'))).toBe(false);
  });

  it('nin train: SIGHUP (the terminal closed) saves a checkpoint where the run stands and exits with 129', async () => {
    const out = join(tmp, 'sighup');
    const child = spawn(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'train', '--model', 'mnist-small', '--train-limit', '20000', '--test-limit', '16', '--batch', '16', '--epochs', '1', '--out', out]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/step [1-9]\d*\/1250/.test(stderr) && !child.killed) child.kill('SIGHUP');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(129);
    const m = stderr.match(/nin: interrupted at step (\d+) \(epoch 1, batch (\d+) of 1250\); checkpoint (.+\.safetensors): --resume /);
    expect(m, stderr).not.toBeNull();
    expect(loadCheckpoint(m![3])).toMatchObject({ epoch: 0, step: Number(m![1]) });
  });

  it('--split-seed draws the held-out images in place of --seed (a study\'s repeats validate on the same images)', async () => {
    const held = async (...flags: string[]) => (await loadSplits(options(['--train-limit', '200', '--val', '40', '--out', join(tmp, 'split-seed'), ...flags]))).validation!.images;
    expect(await held('--seed', '1', '--split-seed', '7')).toEqual(await held('--seed', '2', '--split-seed', '7'));
    expect(await held('--seed', '7')).toEqual(await held('--seed', '3', '--split-seed', '7'));
    expect(await held('--seed', '1')).not.toEqual(await held('--seed', '2'));
    // --test-limit cuts the test set loadSplits reads.
    expect((await loadSplits(options(['--train-limit', '200', '--test-limit', '16', '--out', join(tmp, 'split-seed')]))).test.count).toBe(16);
  });
});

describe('train() called directly', () => {
  // The CLI refuses most of these itself, before loading the data (test/cli.test.ts); train() must too.
  it('refuses another image shape, fewer images than a batch, an unknown model, and a resume within an epoch the data no longer fits, before making the run directory', async () => {
    const dir = join(tmp, 'refused');
    const data = (count: number, height = 28, width = 28, channels = 1): { train: ImageDataset } => ({
      train: { name: 'synthetic/train', images: new Float32Array(count * height * width * channels), labels: Int32Array.from({ length: count }, (_, i) => i % 10), count, height, width, channels, classNames: [...'0123456789'], sources: [], notes: [] },
    });
    const o = options(['--batch', '4', '--epochs', '2', '--out', dir]);
    await expect(train(o, data(8, 32, 32, 3))).rejects.toThrow(new RunRefused('model mnist-small takes 28×28×1 images but synthetic/train has 32×32×3'));
    await expect(train({ ...o, batchSize: 16 }, data(8))).rejects.toThrow(new RunRefused('batch size 16 is larger than the training set (8 images)'));
    await expect(train({ ...o, model: 'mnist-large' }, data(8))).rejects.toThrow(new RangeError(`unknown model 'mnist-large' (known: ${Object.keys(MODELS).join(', ')})`));
    // A batch whose activations the device cannot bind (its limit lowered to 4 images of
    // mnist-small's widest activation, [28, 28, 16]): refused before the preprocessing, by name.
    await withDeviceLimit('maxStorageBufferBindingSize', 4 * 4 * 28 * 28 * 16, () =>
      expect(train({ ...o, batchSize: 5 }, data(8))).rejects.toThrow(/^--batch 5: a batch of 5 images is too large for mnist-small on this adapter: mlpconv5x5 16-16-16 makes a float32 tensor of \[5, 28, 28, 16\] \(245\.0 KiB\), .*; at most 4 images fit$/),
    );
    // Saved after batch 4 of an epoch of 10 (at batch size 4: 40 images); resumed at the same batch
    // size on 8 images, an epoch has 2 batches.
    const ckpt = await saveUntrained(o, join(tmp, 'refused-partial.safetensors'));
    const { tensors, metadata } = readSafetensors(ckpt);
    writeSafetensors(ckpt, tensors, { ...metadata, step: '14', partial_epoch: JSON.stringify({ batches: 4, stepsPerEpoch: 10, lossSum: 9.2, wrong: 12, seen: 16, seconds: 1 }) });
    const resume = { ...parseTrainArgs(['--resume', ckpt]).options, progress: false, log: () => {} };
    expect(resume).toMatchObject({ batchSize: 4, outDir: dir });
    await expect(train(resume, data(8))).rejects.toThrow(
      new RunRefused(
        `${ckpt} was saved within epoch 2, after batch 4 of 10; with batch size 4 and 8 training images an epoch has 2 batches, so the run cannot continue that epoch: ` +
          'resume with the batch size and training set it was saved with',
      ),
    );
    // The plateau schedule watching a validation error there is none of (the CLI refuses it as a usage error).
    await expect(train({ ...o, schedule: 'plateau', plateauOn: 'val' }, data(8))).rejects.toThrow(new RunRefused(PLATEAU_ON_VAL_WITHOUT_VAL));
    expect(existsSync(dir)).toBe(false);
  });
});

describe('a checkpoint whose tensors do not fit the model', () => {
  /** An untrained checkpoint saved as `name`, its contents, and a model and optimiser to restore into. */
  const untrained = async (name: string) => {
    const o = options(['--out', join(tmp, name)]);
    const path = await saveUntrained(o, join(tmp, `${name}.safetensors`));
    const model = new NinModel(modelConfig(o), 1);
    const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
    return { path, ...readSafetensors(path), model, opt };
  };

  it('names the parameter whose weights or optimiser state has the wrong shape, even with the right length', async () => {
    const { path, tensors, metadata, model, opt } = await untrained('misfit');
    const misfit = (name: string, shape: number[]) => {
      const bad = join(tmp, `misfit-${name}-${shape.join('x')}.safetensors`);
      writeSafetensors(bad, { ...tensors, [name]: { ...tensors[name], shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } }, metadata);
      return loadCheckpoint(bad);
    };
    const want = model.parameter('block2.w2').shape;
    const n = model.parameter('block2.w2').size;
    expect(() => loadCheckpoint(path).restore(model, opt)).not.toThrow();
    const theModels = `the model's is \\[${want.join(', ')}\\]`;
    expect(() => misfit('velocity.block2.w2', [n - 1]).restore(model, opt)).toThrow(new RegExp(`the optimiser state of parameter 'block2.w2' has shape \\[${n - 1}\\], ${theModels}`));
    expect(() => misfit('velocity.block2.w2', [n + 1]).restore(model, opt)).toThrow(new RegExp(`has shape \\[${n + 1}\\]`));
    expect(() => misfit('param.block2.w2', [n + 1]).restore(model, opt)).toThrow(new RegExp(`parameter 'block2.w2' has shape \\[${n + 1}\\]`));
    // The same values under a transposed header loaded as the weights they are not (a length check
    // passed them). The file's block2.w1, read before it, is all 7s: refused before any upload, the
    // model keeps its own.
    const transposed = [...want].reverse();
    const w1 = tensors['param.block2.w1'];
    const bad = join(tmp, 'misfit-transposed.safetensors');
    writeSafetensors(bad, { ...tensors, 'param.block2.w1': { ...w1, data: new Float32Array(w1.data.length).fill(7) }, 'param.block2.w2': { ...tensors['param.block2.w2'], shape: transposed } }, metadata);
    expect(() => loadCheckpoint(bad).restore(model)).toThrow(new RegExp(`parameter 'block2.w2' has shape \\[${transposed.join(', ')}\\], ${theModels}`));
    expect(await model.parameter('block2.w1').toArray()).toEqual(w1.data);
    // buildModel (predict, visualize, eval) refuses it too, and frees the model it built.
    const live = pool().stats.liveBuffers;
    expect(() => loadCheckpoint(bad).buildModel()).toThrow(/parameter 'block2.w2' has shape/);
    expect(pool().stats.liveBuffers, 'a refused buildModel leaves nothing on the GPU').toBe(live);
    opt.dispose();
    model.dispose();
  });

  it('names the parameter whose weights or optimiser state is missing, or not F32 (upload does not check the dtype)', async () => {
    const { tensors, metadata, model, opt } = await untrained('missing');
    // writeSafetensors writes the checksum of the tensors it is given: the files are consistent, only their content is wrong.
    const edited = (name: string, replace: (t: TensorMap) => TensorMap) => {
      const bad = join(tmp, `missing-${name}.safetensors`);
      writeSafetensors(bad, replace({ ...tensors }), metadata);
      return bad;
    };
    const without = (name: string) =>
      edited(name, (t) => {
        delete t[name];
        return t;
      });
    const n = model.parameter('block2.w2').size;
    const noWeights = without('param.block2.w2');
    expect(() => loadCheckpoint(noWeights).restore(model, opt)).toThrow(new Error(`${noWeights}: no weights for parameter 'block2.w2'`));
    const noState = without('velocity.block2.w2');
    expect(() => loadCheckpoint(noState).restore(model, opt)).toThrow(new Error(`${noState}: no optimiser state for parameter 'block2.w2'`));
    expect(() => loadCheckpoint(noState).restore(model)).not.toThrow(); // without an optimiser (nin eval, predict) it is not needed
    // The right number of elements, another dtype: refused at load, before its bytes could be uploaded as floats.
    const ints = edited('i32', (t) => ({ ...t, 'param.block2.w2': { dtype: 'I32', shape: tensors['param.block2.w2'].shape, data: new Int32Array(n) } }));
    expect(() => loadCheckpoint(ints)).toThrow(new Error(`${ints}: tensor 'param.block2.w2' is I32, expected F32`));
    const { shape } = tensors['velocity.block1.b1'];
    const doubles = edited('f64', (t) => ({ ...t, 'velocity.block1.b1': { dtype: 'F64', shape, data: new Float64Array(model.parameter('block1.b1').size) } }));
    expect(() => loadCheckpoint(doubles)).toThrow(new Error(`${doubles}: tensor 'velocity.block1.b1' is F64, expected F32`));
    expect(() => model.parameter('block9.w1')).toThrow(new Error("model mnist-small has no parameter 'block9.w1'"));
    opt.dispose();
    model.dispose();
  });
});

describe('a checkpoint whose metadata or statistics are damaged', () => {
  it('is refused with an error naming the file and what is wrong, before any of it is used', async () => {
    const o = options(['--out', join(tmp, 'damaged')]);
    const path = await saveUntrained(o, join(tmp, 'damaged.safetensors'));
    const { tensors, metadata } = readSafetensors(path);
    let n = 0;
    const damaged = (meta: Record<string, string | undefined>, extra: TensorMap = {}): (() => unknown) => {
      const bad = join(tmp, `damaged-${n++}.safetensors`);
      const m = Object.fromEntries(Object.entries({ ...metadata, ...meta }).filter(([, v]) => v !== undefined)) as Record<string, string>;
      writeSafetensors(bad, { ...tensors, ...extra }, m);
      return () => loadCheckpoint(bad);
    };
    const at = (i: number) => join(tmp, `damaged-${i}.safetensors`).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(damaged({ config: '{name: cifar' })).toThrow(new RegExp(`^${at(0)}: metadata "config" is not valid JSON`));
    expect(damaged({ config: 'null' })).toThrow(new RegExp(`^${at(1)} \\(config\\): the config must be an object, got null`));
    const config = JSON.parse(metadata.config);
    expect(damaged({ config: JSON.stringify({ ...config, head: 'banana' }) })).toThrow(new RegExp(`^${at(2)} \\(config\\): head must be one of gap, fc, fc-dropout, got "banana"`));
    expect(damaged({ config: JSON.stringify({ ...config, layers: [{ ...config.layers[0], channels: [-4, 4, 10] }, ...config.layers.slice(1)] }) })).toThrow(/layers\[0\]\.channels\[0\] must be an integer in \[1, 65536\], got -4/);
    expect(damaged({ options: undefined })).toThrow(new RegExp(`^${at(4)}: metadata "options" is missing`));
    expect(damaged({ epoch: 'abc' })).toThrow(new RegExp(`^${at(5)}: metadata "epoch" must be a whole number ≥ 0, found "abc"`));
    expect(damaged({ partial_epoch: '{' })).toThrow(new RegExp(`^${at(6)}: its partial_epoch metadata is malformed: \\{`));
    expect(damaged({ 'preprocess.transform': undefined })).toThrow(new RegExp(`^${at(7)}: unknown preprocessing 'undefined' \\(metadata "preprocess.transform"`));
    const nanBias = new Float32Array(tensors['param.block1.b1'].data);
    nanBias[3] = NaN;
    expect(damaged({}, { 'param.block1.b1': { ...tensors['param.block1.b1'], data: nanBias } })).toThrow(new RegExp(`^${at(8)}: tensor 'param.block1.b1' holds NaN at index 3: the file is damaged`));
    // Statistics that do not fit mnist-small's 28×28×1 input, or are not usable numbers.
    const channelStats = (mean: number[], std: number[]) => ({
      'preprocess.mean': { dtype: 'F64' as const, shape: [mean.length], data: Float64Array.from(mean) },
      'preprocess.std': { dtype: 'F64' as const, shape: [std.length], data: Float64Array.from(std) },
    });
    const standardize = { 'preprocess.transform': 'standardize', 'preprocess.kind': 'channel', 'preprocess.count': '10' };
    expect(damaged(standardize, channelStats([33], [78]))).not.toThrow();
    expect(damaged(standardize, channelStats([1, 2, 3], [1, 1, 1]))).toThrow(new RegExp(`^${at(10)}: preprocessing statistics: mean and std for 3 and 3 channels, the model's input has 1`));
    expect(damaged(standardize, channelStats([33], [-1]))).toThrow(new RegExp(`^${at(11)}: preprocessing statistics: std\\[0\\] is -1, expected a finite number ≥ 0`));
    expect(damaged(standardize, channelStats([NaN], [1]))).toThrow(/mean\[0\] is NaN/);
    const zca = (dim: number) => ({
      'preprocess.mean': { dtype: 'F64' as const, shape: [dim], data: new Float64Array(dim) },
      'preprocess.whitening': { dtype: 'F64' as const, shape: [dim, dim], data: new Float64Array(dim * dim) },
      'preprocess.eigenvalues': { dtype: 'F64' as const, shape: [dim], data: new Float64Array(dim) },
    });
    expect(damaged({ 'preprocess.transform': 'gcn-zca', 'preprocess.kind': 'zca', 'preprocess.count': '10', 'preprocess.epsilon': '0.01' }, zca(392))).toThrow(
      new RegExp(`^${at(13)}: preprocessing statistics: ZCA over 392 features, the model's 28×28×1 input has 784`),
    );
    // A transform whose statistics are the other kind's (its metadata edited by hand).
    expect(damaged({ 'preprocess.transform': 'standardize', 'preprocess.kind': 'zca', 'preprocess.count': '10', 'preprocess.epsilon': '0.01' }, zca(784))).toThrow(
      new RegExp(`^${at(14)}: preprocessing 'standardize' needs channel statistics, the checkpoint holds zca statistics`),
    );
    expect(damaged({ 'preprocess.transform': 'gcn-zca', 'preprocess.kind': 'channel', 'preprocess.count': '10' }, channelStats([33], [78]))).toThrow(
      new RegExp(`^${at(15)}: preprocessing 'gcn-zca' needs zca statistics, the checkpoint holds channel statistics`),
    );
    // A data set this tool does not know, or one of other images or classes than the network's
    // (eval read cifar10's test set for an MNIST network and failed on the GPU; export named cifar10's classes).
    const savedOptions = JSON.parse(metadata.options);
    expect(damaged({ options: JSON.stringify({ ...savedOptions, dataset: 'foo' }) })).toThrow(new RegExp(`^${at(16)}: metadata "options": dataset must be one of mnist, cifar10, cifar100, svhn, folder, got "foo"$`));
    expect(damaged({ options: JSON.stringify({ ...savedOptions, dataset: 'cifar10' }) })).toThrow(new RegExp(`^${at(17)}: metadata "options": dataset cifar10 has 32×32×3 images, but the network \\(its config\\) takes 28×28×1$`));
    expect(damaged({ options: JSON.stringify({ ...savedOptions, dataset: 'toString' }) })).toThrow(/dataset must be one of .*, got "toString"$/);
    expect(damaged({ config: JSON.stringify({ ...config, classes: 11, layers: [...config.layers.slice(0, -1), { ...config.layers.at(-1), channels: [...config.layers.at(-1).channels.slice(0, -1), 11] }] }) })).toThrow(
      new RegExp(`^${at(19)}: metadata "options": dataset mnist has 10 classes, but the network \\(its config\\) has 11$`),
    );
    // The count of images the statistics were fitted on: digits (Number() read '0x10' and ' 7').
    for (const count of ['abc', '-1', '0', '0x10', undefined]) {
      expect(damaged({ ...standardize, 'preprocess.count': count }, channelStats([33], [78])), String(count)).toThrow(`preprocessing statistics: metadata "preprocess.count" (the images they were fitted on) must be a whole number ≥ 1, found ${JSON.stringify(count ?? null)}`);
    }
  });
});

describe('a checkpoint whose tensor data was changed after it was saved', () => {
  it('is refused by every load (loadCheckpoint, as nin eval uses it; predict; visualize; --resume) naming the file; one saved before checksums still loads', async () => {
    const o = options(['--out', join(tmp, 'flipped')]);
    const path = await saveUntrained(o, join(tmp, 'checksummed.safetensors'));
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header.__metadata__[TENSOR_DATA_CHECKSUM]).toMatch(/^[0-9a-f]{64}$/);
    // One bit of one weight: its lowest mantissa bit, so the value stays finite (the NaN check passes it).
    const flipped = Buffer.from(bytes);
    flipped[8 + n + header['param.block2.w2'].data_offsets[0] + 4 * 5] ^= 1;
    const bad = join(tmp, 'flipped.safetensors');
    writeFileSync(bad, flipped);
    const refused = new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: its tensor data does not match the checksum written with it \\(${TENSOR_DATA_CHECKSUM} [0-9a-f]{64}, the data's is [0-9a-f]{64}\\): the file was damaged or edited after it was written$`);
    expect(() => loadCheckpoint(bad)).toThrow(refused);
    await expect(predict(bad, [])).rejects.toThrow(refused);
    await expect(visualize(bad, { count: 1, outDir: join(tmp, 'flipped-figures') })).rejects.toThrow(refused);
    const resume = { ...parseTrainArgs(['--resume', bad, '--epochs', '2']).options, progress: false, log: () => {} };
    await expect(train(resume, { train: null as unknown as ImageDataset })).rejects.toThrow(refused);
    // The same file as a version from before checksums wrote it (no key): it loads, flipped bit and all.
    delete header.__metadata__[TENSOR_DATA_CHECKSUM];
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const old = join(tmp, 'before-checksums.safetensors');
    writeFileSync(old, Buffer.concat([len, json, flipped.subarray(8 + n)]));
    const c = loadCheckpoint(old);
    expect(c.params.get('block2.w2')![5]).not.toBe(loadCheckpoint(path).params.get('block2.w2')![5]);
    const model = c.buildModel();
    model.dispose();
  });
});

describe('a run in a directory where a killed save left its temp file', () => {
  it('removes the temp files of processes that no longer run, at its start and at a resume, and says so; nothing else', async () => {
    const dir = join(tmp, 'leftovers');
    mkdirSync(dir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const leftover = (name: string) => {
      writeFileSync(join(dir, name), 'half a checkpoint');
      return join(dir, name);
    };
    const started = leftover(`.checkpoint.safetensors.tmp-${dead}-a1b2c3d4`);
    const live = leftover(`.checkpoint.safetensors.tmp-${process.ppid}-a1b2c3d4`);
    const other = leftover(`.checkpoint.safetensors.tmp-${dead}`);
    const images = 8;
    const data = (): { train: ImageDataset } => ({
      train: { name: 'synthetic/train', images: Float32Array.from({ length: images * 784 }, (_, i) => (i * 37) % 256), labels: Int32Array.from({ length: images }, (_, i) => i % 10), count: images, height: 28, width: 28, channels: 1, classNames: [...'0123456789'], sources: [], notes: [] },
    });
    const lines: string[] = [];
    const o = { ...options(['--preprocess', 'none', '--batch', '4', '--epochs', '2', '--stop-after', '1', '--out', dir]), log: (l: string) => lines.push(l) };
    const first = await train(o, data());
    const said = (path: string) => `${path}: removed, the temp file of a save that process ${dead} left unfinished (no process of that id writes it now)`;
    expect(lines).toContain(said(started));
    expect(lines.filter((l) => l.includes(': removed, the temp file'))).toHaveLength(1);
    expect([existsSync(started), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
    const resumed = leftover(`.best.safetensors.tmp-${dead}-zz`);
    lines.length = 0;
    await train({ ...parseTrainArgs(['--resume', first.checkpoint]).options, progress: false, log: (l: string) => lines.push(l) }, data());
    expect(lines.filter((l) => l.includes(': removed, the temp file'))).toEqual([said(resumed)]);
    expect(readdirSync(dir).filter((f) => f.startsWith('.')).sort()).toEqual([other, live].map((p) => p.slice(dir.length + 1)).sort());
  });
});

describe('the dead-class-maps watch', () => {
  it('fires after 50 batches in a row whose logits are all exactly 0, and any other logit resets it', () => {
    const w = deadClassMapsWatch();
    const dead = new Float32Array(20);
    const alive = new Float32Array(20);
    alive[13] = 1e-30;
    const fired: number[] = [];
    const feed = (lg: Float32Array, step: number) => { if (w.observe(lg, step)) fired.push(step); };
    for (let t = 0; t < 49; t++) feed(dead, t);
    feed(alive, 49); // one logit off zero: the count starts again
    for (let t = 50; t < 100; t++) feed(dead, t);
    expect(fired).toEqual([99]);
    expect(w.since()).toBe(50);
  });
});

describe('the progress line', () => {
  it("times the training steps alone, and its ETA adds each evaluation left as long as the last took (it once divided by the evaluations' time too: epoch 2 showed 22.6 img/s against the epoch's 72.2)", () => {
    // 1,000 images in 10 s of steps: 100 img/s; 800 images left: 8 s, and two evaluations of 3 s.
    expect(progressEstimate({ trainedMs: 10_000, trainedImages: 1000, imagesLeft: 800, evaluationsLeft: 2, evaluationSeconds: 3 })).toEqual({ etaSeconds: 14 });
    expect(progressEstimate({ trainedMs: 500, trainedImages: 64, imagesLeft: 0, evaluationsLeft: 1, evaluationSeconds: 0 })).toEqual({ etaSeconds: 0 });
  });

  it('says the epoch, step, rate, mean loss, lr and ETA: "…" for what is not known yet, "≤" where the plateau schedule may end the run sooner', () => {
    const p = { epoch: 1, epochs: 4, inEpoch: 5, stepsPerEpoch: 10, imgPerSec: 123.456, meanLoss: 0.123456, lr: 0.025, etaSeconds: 75, etaAtMost: false };
    expect(progressLine(p)).toBe('epoch 2/4 ██████████·········· step 5/10  123.5 img/s  loss 0.1235  lr 0.0250  ETA 1m15s');
    expect(progressLine({ ...p, meanLoss: null, etaSeconds: null })).toMatch(/ {2}loss …  lr 0\.0250  ETA …$/);
    expect(progressLine({ ...p, imgPerSec: null })).toContain(' step 5/10  … img/s  loss ');
    expect(progressLine({ ...p, etaAtMost: true })).toMatch(/ETA ≤ 1m15s$/);
    expect(progressLine({ ...p, inEpoch: 10 })).toContain(`${'█'.repeat(20)} step 10/10`);
  });

  it("an epoch's line: its errors and losses where it has them, speed, time, and each checkpoint it saved", () => {
    const rec: EpochRecord = { kind: 'epoch', epoch: 3, step: 30, trainLoss: 0.5, trainError: 0.125, lr: 0.01, imgPerSec: 250, seconds: 90 };
    const saved = { checkpoint: 'runs/x/checkpoint.safetensors', snapshot: null, best: null };
    expect(epochLine(rec, saved)).toBe('epoch 3: train loss 0.5000 error 12.50%, 250.0 img/s, 1m30s; checkpoint runs/x/checkpoint.safetensors');
    // A tiny run's rate, mostly compiles, in two digits below 1 (it read 0.0 img/s).
    expect([0.0333, 0.5, 0.96, 0].map((imgPerSec) => /, ([^ ]+) img\/s/.exec(epochLine({ ...rec, imgPerSec }, saved))![1])).toEqual(['0.033', '0.50', '0.96', '0.0']);
    const full = epochLine({ ...rec, valError: 0.1, testLoss: 0.25, testError: 0.0625 }, { ...saved, snapshot: 'runs/x/epoch-3.safetensors', best: 'runs/x/best.safetensors' });
    expect(full).toBe(
      'epoch 3: train loss 0.5000 error 12.50%, validation error 10.00%, test loss 0.2500 error 6.25%, 250.0 img/s, 1m30s; checkpoint runs/x/checkpoint.safetensors' +
        ' (also runs/x/epoch-3.safetensors) (best validation error so far: also runs/x/best.safetensors)',
    );
  });

  it('times the ETA from the kernels compiled (the third step) on, and gives none before', () => {
    const left = { imagesLeft: 800, evaluationsLeft: 0, evaluationSeconds: 0 };
    // 3 steps of 16 images took 10 s (compiles); 100 more steps 8 s: 200 img/s since, 4 s for 800.
    const warmFrom = { ms: 10_000, images: 48 };
    expect(progressEstimate({ trainedMs: 18_000, trainedImages: 1648, ...left, warmFrom })).toEqual({ etaSeconds: 4 });
    expect(progressEstimate({ trainedMs: 10_000, trainedImages: 48, ...left, warmFrom }).etaSeconds).toBeNull(); // no step since
    expect(progressEstimate({ trainedMs: 700, trainedImages: 32, ...left, warmFrom: null })).toEqual({ etaSeconds: null }); // not yet
  });

  it("counts an evaluation at the rate of its batches after the first, which compiles the process's evaluation kernels (its ETA in epoch 2 once added 18.9 s an evaluation on lavapipe, against 1.4 s from then on)", () => {
    // 10 batches in 19.8 s, the first 18.9 s of it: 0.1 s a batch after it, 1 s for the pass.
    expect(warmMilliseconds(19_800, 18_900, 10)).toBeCloseTo(1000, 9);
    // Warm already (a later epoch): about what it took; a slow first batch is never counted as more.
    expect(warmMilliseconds(1000, 100, 10)).toBeCloseTo(1000, 9);
    expect(warmMilliseconds(1000, 50, 10)).toBe(1000);
    // One batch: nothing to go by, its time as it was.
    expect(warmMilliseconds(18_900, 18_900, 1)).toBe(18_900);
  });

  it.skipIf(!haveMnist)('times a one-batch evaluation warm by running its batch again, where asked (training asks, for the ETA); the numbers are the same', async () => {
    const o = options(['--batch', '16', '--train-limit', '32', '--test-limit', '16']);
    const { test: ds } = await loadSplits(o);
    const model = new NinModel(modelConfig(o), 3);
    try {
      const forward = vi.spyOn(model, 'forward');
      const once = await evaluate(model, ds, 16);
      expect(forward).toHaveBeenCalledTimes(1);
      expect(once.warmSeconds).toBe(once.seconds);
      const twice = await evaluate(model, ds, 16, { timeWarm: true });
      expect(forward).toHaveBeenCalledTimes(3);
      expect(twice.warmSeconds).toBeLessThanOrEqual(twice.seconds);
      expect([twice.loss, twice.error, twice.confusion]).toEqual([once.loss, once.error, once.confusion]);
      // More than one batch: the rate of those after the first, no second run.
      await evaluate(model, ds, 4, { timeWarm: true });
      expect(forward).toHaveBeenCalledTimes(7);
    } finally {
      model.dispose();
    }
  });
});

// It trains on MNIST: skipped without it, as the training tests are (a clean machine without the
// data failed here, the only test that did).
describe.skipIf(!haveMnist)('on a terminal', () => {
  it('draws a live progress line, then a line while it evaluates, cleared before the epoch is logged (a first evaluation compiles its kernels: 19 s of silence on lavapipe before)', async () => {
    const o = options(['--train-limit', '32', '--test-limit', '20', '--batch', '16', '--epochs', '1', '--out', join(tmp, 'terminal')]);
    const written: string[] = [];
    const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    const logged = vi.spyOn(console, 'log').mockImplementation(() => {});
    let evalStatus: number | undefined;
    try {
      await train({ ...o, progress: true, log: (line) => written.push(`LOG ${line}\n`) }, await loadSplits(o));
      written.push('EVAL\n');
      evalStatus = await main(['eval', join(tmp, 'terminal'), '--test-limit', '20', '--batch', '16']); // `nin eval` too
    } finally {
      logged.mockRestore();
      await getGpu(); // (main closes the device; the tests after this one use it)
      write.mockRestore();
      if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    }
    const out = written.join('');
    expect(out).toMatch(/\repoch 1\/1 █+ step 2\/2 .* img\/s  loss \d\.\d{4}  lr \S+  ETA \S+\x1b\[K\n/);
    const at = out.indexOf('evaluating on 20 test images…\r\x1b[KLOG epoch 1: train loss');
    expect(at).toBeGreaterThan(0);
    expect(evalStatus).toBe(0);
    expect(out.slice(out.indexOf('EVAL\n'))).toContain('evaluating on 20 images…\r\x1b[K');
  });
});

describe('the chance-plateau hint', () => {
  it('speaks once, after 100 steps in a row near ln C averaging it, and names the class maps only when they have a ReLU', () => {
    const w = chancePlateauWatch(10, true);
    const chance = Math.log(10);
    const said: [number, string][] = [];
    const feed = (loss: number, step: number) => { const h = w.observe(loss, step); if (h) said.push([step, h]); };
    for (let t = 0; t < 50; t++) feed(2.0, t); // learning: nothing
    for (let t = 50; t < 140; t++) feed(chance + 0.005, t); // 90 steps at chance
    feed(1.9, 140); // a step off it resets the count
    for (let t = 141; t < 400; t++) feed(chance - 0.004, t);
    expect(said.map(([t]) => t)).toEqual([240]); // steps 141..240 are the first 100 in a row
    expect(said[0][1]).toMatch(/averaged ln 10 = 2\.3026 .* over 100 steps, since step 141; the class maps may be dead .*--class-maps linear/);
    // A collapsed net's loss moves with each batch's labels: ±0.02 around ln C still counts, a mean off by more does not.
    const noisy = chancePlateauWatch(10, false);
    const noisySaid: number[] = [];
    for (let t = 0; t < 300; t++) if (noisy.observe(chance + (t % 2 ? 0.02 : -0.02), t)) noisySaid.push(t);
    expect(noisySaid).toEqual([99]);
    const learning = chancePlateauWatch(10, false);
    for (let t = 0; t < 300; t++) expect(learning.observe(chance - 0.03 + (t % 2 ? 0.02 : -0.02), t)).toBeNull();
    const linear = chancePlateauWatch(100, false);
    let hint: string | null = null;
    for (let t = 0; t < 100 && !hint; t++) hint = linear.observe(Math.log(100), t);
    expect(hint).toMatch(/ln 100 = 4\.6052 .*a lower --lr or a longer --warmup may get past it$/);
  });
});
