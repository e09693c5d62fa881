// Checkpoints (nin/checkpoint.ts): what a save writes comes back from a load exactly (weights,
// velocities and the run's state, a resume repeating the run from it), and what must not be written
// is not. Damaged and misfit files: train.test.ts.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { pool, upload } from '../engine/runtime.ts';
import { SGD } from '../kernels/sgd.ts';
import { loadCheckpoint, saveCheckpoint } from '../nin/checkpoint.ts';
import { parseTrainArgs } from '../nin/cli.ts';
import { modelConfig, NinModel } from '../nin/model.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import { readSafetensors, writeSafetensors } from '../nin/safetensors.ts';
import { randomArray } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-checkpoint-'));

beforeAll(async () => { await getGpu(); });
afterAll(() => closeGpu());

/** mnist-small, untrained (seed `seed`), and an optimiser whose velocities hold seeded values (not its zeros). */
function untrained(seed = 1) {
  const { options } = parseTrainArgs(['--dataset', 'mnist', '--model', 'mnist-small', '--out', join(tmp, 'run')]);
  const o = { ...options, progress: false, log: () => {} };
  const model = new NinModel(modelConfig(o), seed);
  const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
  opt.loadState(model.params.map((p, i) => Float32Array.from(randomArray(p.tensor.size, 100 * seed + i))));
  const dispose = () => {
    opt.dispose();
    model.dispose();
  };
  return { o, model, opt, dispose };
}

describe('a checkpoint', () => {
  it("holds the weights, velocities and run state it was saved with, exactly; restore() puts them into another model and optimiser", async () => {
    const { o, model, opt, dispose } = untrained(1);
    const path = join(tmp, 'round-trip.safetensors');
    const partialEpoch = { batches: 4, stepsPerEpoch: 10, lossSum: 9.25, wrong: 31, seen: 64, seconds: 1.5 };
    const plateau = { on: 'val' as const, drops: 1, best: 0.125, sinceBest: 2, finished: false };
    // A relative --out is saved resolved: a resume from another working directory finds the run.
    // deadMapsSince 0: the class maps were dead from the run's first step (0 is a step, not "none").
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 3, step: 34, options: { ...o, outDir: join('runs', 'relative') }, partialEpoch, runId: 'R1', stretch: 's2', plateau, deadMapsSince: 0 });
    const c = loadCheckpoint(path);
    expect(c).toMatchObject({ epoch: 3, step: 34, partialEpoch, runId: 'R1', stretch: 's2', plateau, deadMapsSince: 0 });
    expect(c.options.outDir).toBe(resolve('runs', 'relative'));
    const weights = await Promise.all(model.params.map((p) => p.tensor.toArray()));
    const velocities = await opt.state();
    model.params.forEach((p, i) => {
      expect(c.params.get(p.name), p.name).toEqual(weights[i]);
      expect(c.velocities!.get(p.name), p.name).toEqual(velocities[i]);
    });
    // Restored into a model and optimiser of other values: they then hold the saved ones.
    const other = untrained(2);
    expect(await other.model.params[0].tensor.toArray()).not.toEqual(weights[0]);
    c.restore(other.model, other.opt);
    for (const [i, p] of other.model.params.entries()) expect(await p.tensor.toArray(), p.name).toEqual(weights[i]);
    expect(await other.opt.state()).toEqual(velocities);
    // Saved without the optional state: each loads as null.
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 10, options: o });
    expect(loadCheckpoint(path)).toMatchObject({ epoch: 1, step: 10, partialEpoch: null, runId: null, stretch: null, plateau: null, deadMapsSince: null });
    other.dispose();
    dispose();
  });

  it('is never written with a momentum that is not finite: the file there stays as it was', async () => {
    const { o, model, opt, dispose } = untrained();
    const path = join(tmp, 'bad-velocity.safetensors');
    const save = (step: number) => saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step, options: o });
    await save(10);
    const before = readFileSync(path);
    const v = (await opt.state())[2];
    v[5] = Infinity;
    upload(opt.velocities[2], v);
    await expect(save(11)).rejects.toThrow(new RegExp(`^the momentum of parameter '${model.params[2].name}' is not finite at step 11: .*bad-velocity.safetensors not written$`));
    expect(readFileSync(path).equals(before)).toBe(true);
    dispose();
  });

  it("is never written with a value that is not finite at the first index of the first parameter, weight or momentum; a file damaged there is refused", async () => {
    const { o, model, opt, dispose } = untrained();
    const path = join(tmp, 'first-value.safetensors');
    const save = () => saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 12, options: o });
    await save();
    const { tensors, metadata } = readSafetensors(path);
    const first = model.params[0];
    const [w, v] = [await first.tensor.toArray(), (await opt.state())[0]];
    upload(opt.velocities[0], Float32Array.from(v, (x, i) => (i === 0 ? NaN : x)));
    await expect(save()).rejects.toThrow(`the momentum of parameter '${first.name}' is not finite at step 12: ${path} not written`);
    upload(opt.velocities[0], v);
    upload(first.tensor, Float32Array.from(w, (x, i) => (i === 0 ? -Infinity : x)));
    await expect(save()).rejects.toThrow(`parameter '${first.name}' holds -Infinity (at index 0) at step 12: ${path} not written`);
    upload(first.tensor, w);
    const damaged = join(tmp, 'first-value-damaged.safetensors');
    writeSafetensors(damaged, { ...tensors, [`param.${first.name}`]: { ...tensors[`param.${first.name}`], data: Float32Array.from(w, (x, i) => (i === 0 ? NaN : x)) } }, metadata);
    expect(() => loadCheckpoint(damaged)).toThrow(`${damaged}: tensor 'param.${first.name}' holds NaN at index 0: the file is damaged`);
    dispose();
  });

  it('without optimiser state its velocities load as null; a dead_maps_since that is not a step is refused', async () => {
    const { o, model, opt, dispose } = untrained();
    const path = join(tmp, 'header-fields.safetensors');
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 10, options: o });
    const { tensors, metadata } = readSafetensors(path);
    const weightsOnly = join(tmp, 'weights-only.safetensors');
    writeSafetensors(weightsOnly, Object.fromEntries(Object.entries(tensors).filter(([name]) => !name.startsWith('velocity.'))), metadata);
    expect(loadCheckpoint(weightsOnly).velocities).toBeNull();
    const dead = join(tmp, 'dead-maps.safetensors');
    writeSafetensors(dead, tensors, { ...metadata, dead_maps_since: '-1' });
    expect(() => loadCheckpoint(dead)).toThrow(`${dead}: metadata "dead_maps_since" must be a whole number ≥ 0, found "-1"`);
    dispose();
  });

  it('saved within an epoch: a partial epoch of no batches, or of more than an epoch, is refused as damaged; all of them (its evaluation left to do) is one', async () => {
    const { o, model, opt, dispose } = untrained();
    const path = join(tmp, 'partial.safetensors');
    const partialEpoch = { batches: 9, stepsPerEpoch: 10, lossSum: 1, wrong: 2, seen: 144, seconds: 3 };
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 19, options: o, partialEpoch });
    expect(loadCheckpoint(path).partialEpoch).toEqual(partialEpoch);
    const { tensors, metadata } = readSafetensors(path);
    // All of them: saved where an epoch's evaluation could not read a streamed picture.
    const whole = join(tmp, 'partial-whole.safetensors');
    writeSafetensors(whole, tensors, { ...metadata, partial_epoch: JSON.stringify({ ...partialEpoch, batches: 10 }) });
    expect(loadCheckpoint(whole).partialEpoch).toEqual({ ...partialEpoch, batches: 10 });
    for (const batches of [0, 11]) {
      const bad = join(tmp, `partial-${batches}.safetensors`);
      const json = JSON.stringify({ ...partialEpoch, batches });
      writeSafetensors(bad, tensors, { ...metadata, partial_epoch: json });
      expect(() => loadCheckpoint(bad), `batches ${batches}`).toThrow(`${bad}: its partial_epoch metadata is malformed: ${json}`);
    }
    // A field missing, or a sum past float64's range (1e400 parses to Infinity).
    const { seconds: _seconds, ...noSeconds } = partialEpoch;
    for (const json of [JSON.stringify(noSeconds), JSON.stringify(partialEpoch).replace('"lossSum":1', '"lossSum":1e400')]) {
      const bad = join(tmp, 'partial-fields.safetensors');
      writeSafetensors(bad, tensors, { ...metadata, partial_epoch: json });
      expect(() => loadCheckpoint(bad), json).toThrow(`${bad}: its partial_epoch metadata is malformed: ${json}`);
    }
    dispose();
  });

  it('a restore refused part-way (a parameter without optimiser state) leaves the model and the optimiser as they were', async () => {
    const { o, model, opt, dispose } = untrained(1);
    const path = join(tmp, 'no-last-state.safetensors');
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 10, options: o });
    const { tensors, metadata } = readSafetensors(path);
    const last = model.params.at(-1)!.name;
    delete tensors[`velocity.${last}`];
    writeSafetensors(path, tensors, metadata);
    const other = untrained(2);
    const [weights, velocities] = [await Promise.all(other.model.params.map((p) => p.tensor.toArray())), await other.opt.state()];
    const live = pool().stats.liveBuffers;
    expect(() => loadCheckpoint(path).restore(other.model, other.opt)).toThrow(`${path}: no optimiser state for parameter '${last}'`);
    for (const [i, p] of other.model.params.entries()) expect(await p.tensor.toArray(), p.name).toEqual(weights[i]);
    expect(await other.opt.state()).toEqual(velocities);
    expect(pool().stats.liveBuffers).toBe(live);
    other.dispose();
    dispose();
  });
});
