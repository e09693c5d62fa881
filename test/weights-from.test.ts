// Starting a new run from another run's weights (`nin train --weights-from`): every parameter of
// the same name and shape is taken and the rest start afresh, checked before any GPU work, and a
// run at learning rate 0 ends with exactly the weights it started from.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { SGD } from '../kernels/sgd.ts';
import { loadCheckpoint, saveCheckpoint } from '../nin/checkpoint.ts';
import { parseTrainArgs, UsageError } from '../nin/cli.ts';
import { comparisonTable, readRuns } from '../nin/compare.ts';
import { loadSplits } from '../nin/datasets.ts';
import { encodePng } from '../nin/images.ts';
import { fitToData, modelConfig, MODELS, NinModel } from '../nin/model.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import { train, type TrainOptions } from '../nin/train.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-weights-from-'));
beforeAll(async () => { await getGpu(); });
afterAll(() => {
  closeGpu();
  rmSync(tmp, { recursive: true, force: true });
});

/** Two classes of 12×10 RGB pictures, 16 training and 4 test images each: dark and light. */
function folder(root: string): string {
  for (const [split, n] of [['train', 16], ['test', 4]] as const) {
    ['dark', 'light'].forEach((name, k) => {
      mkdirSync(join(root, split, name), { recursive: true });
      for (let i = 0; i < n; i++) writeFileSync(join(root, split, name, `${i}.png`), encodePng(12, 10, new Uint8Array(480).map((_, j) => (j % 4 === 3 ? 255 : 40 + 150 * k + ((i * 7 + j) % 30)))));
    });
  }
  return root;
}

/** An untrained model of `o`'s network (init seed `seed`) saved as a checkpoint after epoch 1. */
async function untrained(o: TrainOptions, seed: number, path: string): Promise<string> {
  const model = new NinModel(modelConfig(o), seed);
  const opt = new SGD(model.params.map((p) => ({ param: p.tensor })), { momentum: 0.9, weightDecay: 0 });
  try {
    await saveCheckpoint(path, { model, opt, preprocessor: new Preprocessor('none', null), epoch: 1, step: 1, options: o });
  } finally {
    model.dispose();
  }
  return path;
}

async function weights(model: NinModel): Promise<Map<string, Float32Array>> {
  return new Map(await Promise.all(model.params.map(async (p) => [p.name, await p.tensor.toArray()] as const)));
}

describe('--weights-from', () => {
  const root = folder(join(tmp, 'shades'));
  const mnistSmall = parseTrainArgs(['--model', 'mnist-small', '--out', join(tmp, 'unused')]).options;

  it('takes each parameter of the same name and shape; the others keep their fresh init', async () => {
    const source = loadCheckpoint(await untrained(mnistSmall, 5, join(tmp, 'mnist-small.safetensors')));
    // mnist-small fitted to 12×10 RGB pictures of 3 classes: its first layer takes 3 channels, its class maps are 3.
    const target = fitToData(MODELS['mnist-small'], { height: 10, width: 12, channels: 3 }, 3);
    const model = new NinModel(target, 9);
    const fresh = new NinModel(target, 9);
    try {
      const r = source.startFrom(model);
      expect(r.fresh).toEqual([
        { name: 'block1.w1', shape: [5, 5, 3, 16], why: 'theirs [5, 5, 1, 16]' },
        { name: 'block3.w3', shape: [1, 1, 32, 3], why: 'theirs [1, 1, 32, 10]' },
        { name: 'block3.b3', shape: [3], why: 'theirs [10]' },
      ]);
      expect(r.taken).toEqual(model.params.map((p) => p.name).filter((n) => !['block1.w1', 'block3.w3', 'block3.b3'].includes(n)));
      const [got, init] = [await weights(model), await weights(fresh)];
      for (const name of r.taken) expect(got.get(name), name).toEqual(source.params.get(name));
      for (const { name } of r.fresh) expect(got.get(name), name).toEqual(init.get(name));
      expect(got.get('block2.w1')).not.toEqual(init.get('block2.w1')); // (the two inits differ where it matters)
      // Named ones stay too, with the reason given (train() names the class-score layer where the classes differ).
      const again = new NinModel(target, 9);
      try {
        expect(source.startFrom(again, { names: ['block2.w1'], why: 'other classes' }).fresh.map((f) => `${f.name}: ${f.why}`)).toEqual(['block1.w1: theirs [5, 5, 1, 16]', 'block2.w1: other classes', 'block3.w3: theirs [1, 1, 32, 10]', 'block3.b3: theirs [10]']);
        expect((await weights(again)).get('block2.w1')).toEqual(init.get('block2.w1'));
      } finally {
        again.dispose();
      }
      // A network that shares no parameter's shape: nothing to start from.
      const other = new NinModel({ ...target, name: 'narrow', classes: 10, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 10] }] }, 1);
      try {
        expect(() => source.startFrom(other)).toThrow(`${source.path}: none of its weights fits the network narrow (by parameter name and shape): nothing to start from`);
      } finally {
        other.dispose();
      }
    } finally {
      model.dispose();
      fresh.dispose();
    }
  });

  it('is checked before any GPU work: not with --resume, a checkpoint that is there, one that fits', async () => {
    const src = await untrained(mnistSmall, 5, join(tmp, 'parse-src.safetensors'));
    const base = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--out', join(tmp, 'parse-run')];
    expect(parseTrainArgs([...base, '--weights-from', src]).options.weightsFrom).toBe(resolve(src));
    expect(() => parseTrainArgs([...base, '--weights-from', join(tmp, 'nothing')])).toThrow(new UsageError(`--weights-from: no checkpoint at '${join(tmp, 'nothing')}'`));
    expect(() => parseTrainArgs(['--resume', src, '--weights-from', src])).toThrow(new UsageError(`--weights-from starts a new run from a checkpoint's weights; a resumed run continues with its own (${src}'s)`));
    const narrow = join(tmp, 'narrow.json');
    writeFileSync(narrow, JSON.stringify({ name: 'narrow', input: { height: 10, width: 12, channels: 3 }, classes: 2, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 2] }] }));
    expect(() => parseTrainArgs([...base.filter((a) => a !== '--model' && a !== 'mnist-small'), '--config', narrow, '--weights-from', src])).toThrow(
      new UsageError(`--weights-from ${resolve(src)}: none of its weights (mnist-small) fits the network narrow (by parameter name and shape): nothing to start from`),
    );
  });

  it('a run at learning rate 0 ends with the weights it started from, and says which it took', async () => {
    const args = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '16', '--epochs', '1', '--seed', '4'];
    const src = await untrained(parseTrainArgs([...args, '--out', join(tmp, 'src-run')]).options, 5, join(tmp, 'shades-src.safetensors'));
    const lines: string[] = [];
    const o = { ...parseTrainArgs([...args, '--lr', '0', '--schedule', 'constant', '--warmup', '0', '--weights-from', src, '--out', join(tmp, 'lr0')]).options, progress: false, log: (l: string) => void lines.push(l) };
    const r = await train(o, await loadSplits(o));
    expect(lines).toContain(`weights from ${resolve(src)} (mnist-small, epoch 1, trained on folder shades): 18 of 18 parameters`);
    expect(loadCheckpoint(r.checkpoint).params).toEqual(loadCheckpoint(src).params);
    // The record stays with the run: in its options, and as a column of `nin compare`.
    expect(loadCheckpoint(r.checkpoint).options.weightsFrom).toBe(resolve(src));
    expect(comparisonTable(readRuns([join(tmp, 'lr0')]))).toContain(`weights from ${tmp.split('/').at(-1)}/shades-src.safetensors`);

    // From a run on other classes (same shapes): the class maps start afresh, as they would mean those classes here.
    const other = folder(join(tmp, 'other-classes'));
    for (const split of ['train', 'test']) for (const [from, to] of [['dark', 'cold'], ['light', 'hot']]) renameSync(join(other, split, from), join(other, split, to));
    const foreign = await untrained(parseTrainArgs([...args.map((a) => (a === root ? other : a)), '--out', join(tmp, 'other-run')]).options, 5, join(tmp, 'other-src.safetensors'));
    lines.length = 0;
    const f = { ...parseTrainArgs([...args, '--lr', '0', '--schedule', 'constant', '--warmup', '0', '--weights-from', foreign, '--out', join(tmp, 'lr0-other')]).options, progress: false, log: (l: string) => void lines.push(l) };
    const rf = await train(f, await loadSplits(f));
    expect(lines).toContain(`weights from ${resolve(foreign)} (mnist-small, epoch 1, trained on folder other-classes): 16 of 18 parameters; initialised afresh: block3.w3 [1, 1, 32, 2] (other classes), block3.b3 [2] (other classes)`);
    const [after, before] = [loadCheckpoint(rf.checkpoint).params, loadCheckpoint(foreign).params];
    for (const [name, w] of after) if (name !== 'block3.w3' && name !== 'block3.b3') expect(w, name).toEqual(before.get(name));
    expect(after.get('block3.w3')).not.toEqual(before.get('block3.w3'));
  });
});
