// Starting a new run from another run's weights (`nin train --weights-from`): every parameter of
// the same name and shape is taken and the rest start afresh, checked before any GPU work, and a
// run at learning rate 0 ends with exactly the weights it started from.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { SGD } from '../kernels/sgd.ts';
import { loadCheckpoint, saveCheckpoint, startingWeights, type StartingWeights } from '../nin/checkpoint.ts';
import { parseTrainArgs, UsageError } from '../nin/cli.ts';
import { comparisonTable, readRuns } from '../nin/compare.ts';
import { loadSplits } from '../nin/datasets.ts';
import { encodePng } from '../nin/images.ts';
import { fitToData, modelConfig, MODELS, NinModel, parameterSpecs, type ModelConfig } from '../nin/model.ts';
import { Preprocessor } from '../nin/preprocessing.ts';
import { collapsedTo, train, type TrainOptions } from '../nin/train.ts';

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

/** The shades folder with its classes renamed cold and hot (made once). */
function otherFolder(): string {
  const other = join(tmp, 'other-classes');
  if (existsSync(other)) return other;
  folder(other);
  for (const split of ['train', 'test']) for (const [from, to] of [['dark', 'cold'], ['light', 'hot']]) renameSync(join(other, split, from), join(other, split, to));
  return other;
}

/** An untrained model of `o`'s network (init seed `seed`) saved as a checkpoint after epoch 1;
 * `replace`: parameters given other values first. */
async function untrained(o: TrainOptions, seed: number, path: string, replace: Record<string, (n: number) => Float32Array> = {}): Promise<string> {
  const model = new NinModel(modelConfig(o), seed);
  for (const p of model.params) {
    if (!(p.name in replace)) continue;
    const shape = p.tensor.shape;
    p.tensor.dispose();
    p.tensor = Tensor.fromArray(replace[p.name](shape.reduce((a, b) => a * b, 1)), shape);
  }
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
    const data = parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--out', join(tmp, 'unused')]).options;
    const model = new NinModel(target, 9);
    const fresh = new NinModel(target, 9);
    try {
      const r = source.startFrom(model, data);
      expect(r.fresh).toEqual([
        { name: 'block1.w1', shape: [5, 5, 3, 16], why: 'theirs [5, 5, 1, 16]' },
        { name: 'block1.b1', shape: [16], why: 'its weights start afresh' },
        { name: 'block3.w3', shape: [1, 1, 32, 3], why: 'theirs [1, 1, 32, 10]' },
        { name: 'block3.b3', shape: [3], why: 'theirs [10]' },
      ]);
      expect(r.taken).toEqual(model.params.map((p) => p.name).filter((n) => !['block1.w1', 'block1.b1', 'block3.w3', 'block3.b3'].includes(n)));
      const [got, init] = [await weights(model), await weights(fresh)];
      for (const name of r.taken) expect(got.get(name), name).toEqual(source.params.get(name));
      for (const { name } of r.fresh) expect(got.get(name), name).toEqual(init.get(name));
      expect(got.get('block2.w1')).not.toEqual(init.get('block2.w1')); // (the two inits differ where it matters)
      // A network that shares no weight's shape: nothing to start from.
      const other = new NinModel({ ...target, name: 'narrow', classes: 10, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 10] }] }, 1);
      try {
        expect(() => source.startFrom(other, mnistSmall)).toThrow(`${source.path}: none of its weights fits the network narrow: nothing to start from`);
      } finally {
        other.dispose();
      }
    } finally {
      model.dispose();
      fresh.dispose();
    }
  });

  it('leaves the class-score layer where it means other classes or another layer, an FC layer over other maps, and a bias without its weights', () => {
    const net = (config: ModelConfig, options: Pick<TrainOptions, 'dataset' | 'imageFolder'>) => ({ config, options });
    const source = (config: ModelConfig, options: Pick<TrainOptions, 'dataset' | 'imageFolder'>) => ({ ...net(config, options), shapes: new Map(parameterSpecs(config).map((p) => [p.name, p.shape])) });
    const folderOf = (...classNames: string[]) => ({ dataset: 'folder', imageFolder: { dir: '/data', classNames, trainImages: 9, trainList: 'x' } });
    const afresh = (r: StartingWeights) => r.fresh.map((f) => `${f.name}: ${f.why}`);
    const small = fitToData(MODELS['mnist-small'], { height: 10, width: 12, channels: 3 }, 3);
    // The same network and classes: everything.
    expect(startingWeights(net(small, folderOf('a', 'b', 'c')), source(small, folderOf('a', 'b', 'c')))).toEqual({ taken: parameterSpecs(small).map((p) => p.name), fresh: [] });
    // Other class names (same shapes), and MNIST's digits into a folder of '0'…'9' (the same classes).
    expect(afresh(startingWeights(net(small, folderOf('a', 'b', 'c')), source(small, folderOf('x', 'y', 'z'))))).toEqual(['block3.w3: other classes', 'block3.b3: other classes']);
    // Names that run together alike are still other classes.
    expect(afresh(startingWeights(net(small, folderOf('ab', 'c', 'd')), source(small, folderOf('a', 'bc', 'd'))))).toEqual(['block3.w3: other classes', 'block3.b3: other classes']);
    const digits = fitToData(MODELS['mnist-small'], { height: 28, width: 28, channels: 1 }, 10);
    expect(afresh(startingWeights(net(digits, folderOf(...'0123456789')), source(MODELS['mnist-small'], { dataset: 'mnist' })))).toEqual([]);
    // An FC head's block3.w3 feeds the FC layer: not class maps; and the reverse.
    const fc = { ...small, head: 'fc' as const };
    expect(afresh(startingWeights(net(small, folderOf('a', 'b', 'c')), source(fc, folderOf('a', 'b', 'c'))))).toEqual(['block3.w3: not the class-score layer there', 'block3.b3: not the class-score layer there']);
    expect(afresh(startingWeights(net(fc, folderOf('a', 'b', 'c')), source(small, folderOf('a', 'b', 'c'))))).toEqual(['block3.w3: the class-score layer there', 'block3.b3: the class-score layer there', 'fc.w: not in it', 'fc.b: not in it']);
    // FC over 2×3 maps and over 3×2 maps: the same [1, 1, 18, 3] weights, other pixels.
    const transposed = { ...fitToData(MODELS['mnist-small'], { height: 12, width: 10, channels: 3 }, 3), head: 'fc' as const };
    expect(parameterSpecs(transposed).at(-2)!.shape).toEqual(parameterSpecs(fc).at(-2)!.shape);
    expect(afresh(startingWeights(net(transposed, folderOf('a', 'b', 'c')), source(fc, folderOf('a', 'b', 'c'))))).toEqual(['fc.w: over 2×3×3 maps there', 'fc.b: its weights start afresh']);
  });

  it('is checked before any GPU work: not with --resume, a checkpoint that is there, one that fits', async () => {
    const src = await untrained(mnistSmall, 5, join(tmp, 'parse-src.safetensors'));
    const base = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--out', join(tmp, 'parse-run')];
    expect(parseTrainArgs([...base, '--weights-from', src]).options.weightsFrom).toBe(resolve(src));
    expect(() => parseTrainArgs([...base, '--weights-from', join(tmp, 'nothing')])).toThrow(new UsageError(`--weights-from: no checkpoint at '${join(tmp, 'nothing')}'`));
    expect(() => parseTrainArgs(['--resume', src, '--weights-from', src])).toThrow(new UsageError(`--weights-from starts a new run from a checkpoint's weights; a resumed run continues with its own (${src}'s)`));
    expect(parseTrainArgs([...base, '--weights-from', relative(process.cwd(), src)]).options.weightsFrom).toBe(resolve(src)); // kept absolute
    // Its own --out, which --overwrite would move aside.
    mkdirSync(join(tmp, 'self'), { recursive: true });
    copyFileSync(src, join(tmp, 'self', 'checkpoint.safetensors'));
    expect(() => parseTrainArgs([...base.slice(0, -2), '--out', join(tmp, 'self'), '--overwrite', '--weights-from', join(tmp, 'self')])).toThrow(
      new UsageError(`--weights-from ${join(tmp, 'self', 'checkpoint.safetensors')} is in --out ${join(tmp, 'self')}, whose files --overwrite moves aside: copy it elsewhere first, or give another --out`),
    );
    // Only the class maps fit: taken where the classes are the same (dark, light), refused where they differ (cold, hot).
    const shadesSrc = await untrained(parseTrainArgs(['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--out', join(tmp, 'unused')]).options, 5, join(tmp, 'shades-parse.safetensors'));
    const classOnly = join(tmp, 'class-only.json');
    const mlp = (kernel: number, channels: number[]) => ({ type: 'mlpconv', kernel, channels });
    const pool = { type: 'maxpool', kernel: 3, stride: 2 };
    writeFileSync(classOnly, JSON.stringify({ name: 'class-only', input: { height: 10, width: 12, channels: 3 }, classes: 2, layers: [mlp(5, [8, 8, 8]), pool, mlp(3, [8, 8, 8]), pool, mlp(3, [8, 32, 2])] }));
    const onlyArgs = (dir: string) => ['--dataset', 'folder', '--data-dir', dir, '--config', classOnly, '--out', join(tmp, 'parse-run'), '--weights-from', shadesSrc];
    expect(parseTrainArgs(onlyArgs(root)).options.weightsFrom).toBe(resolve(shadesSrc));
    expect(() => parseTrainArgs(onlyArgs(otherFolder()))).toThrow(new UsageError(`--weights-from ${resolve(shadesSrc)}: none of its weights (mnist-small) fits the network class-only: nothing to start from`));
    const narrow = join(tmp, 'narrow.json');
    writeFileSync(narrow, JSON.stringify({ name: 'narrow', input: { height: 10, width: 12, channels: 3 }, classes: 2, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 2] }] }));
    expect(() => parseTrainArgs([...base.filter((a) => a !== '--model' && a !== 'mnist-small'), '--config', narrow, '--weights-from', src])).toThrow(
      new UsageError(`--weights-from ${resolve(src)}: none of its weights (mnist-small) fits the network narrow: nothing to start from`),
    );
  });

  it('a run at learning rate 0 ends with the weights it started from, and says which it took', async () => {
    const args = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '16', '--epochs', '1', '--seed', '4'];
    const src = await untrained(parseTrainArgs([...args, '--out', join(tmp, 'src-run')]).options, 5, join(tmp, 'shades-src.safetensors'));
    const lines: string[] = [];
    const o = { ...parseTrainArgs([...args, '--lr', '0', '--schedule', 'constant', '--warmup', '0', '--weights-from', src, '--out', join(tmp, 'lr0')]).options, progress: false, log: (l: string) => void lines.push(l) };
    const r = await train(o, await loadSplits(o));
    expect(lines).toContain(`weights from ${resolve(src)} (mnist-small after epoch 1, trained on folder shades): 18 of 18 parameter tensors`);
    expect(loadCheckpoint(r.checkpoint).params).toEqual(loadCheckpoint(src).params);
    // The record stays with the run: in its options, and as a column of `nin compare`.
    expect(loadCheckpoint(r.checkpoint).options.weightsFrom).toBe(resolve(src));
    expect(comparisonTable(readRuns([join(tmp, 'lr0')]))).toContain(`weights from ${tmp.split('/').at(-1)}/shades-src.safetensors`);

    // From a run on other classes (same shapes): the class maps start afresh, as they would mean those classes here.
    const other = otherFolder();
    const foreign = await untrained(parseTrainArgs([...args.map((a) => (a === root ? other : a)), '--out', join(tmp, 'other-run')]).options, 5, join(tmp, 'other-src.safetensors'));
    lines.length = 0;
    const f = { ...parseTrainArgs([...args, '--lr', '0', '--schedule', 'constant', '--warmup', '0', '--weights-from', foreign, '--out', join(tmp, 'lr0-other')]).options, progress: false, log: (l: string) => void lines.push(l) };
    const rf = await train(f, await loadSplits(f));
    expect(lines).toContain(`weights from ${resolve(foreign)} (mnist-small after epoch 1, trained on folder other-classes): 16 of 18 parameter tensors; initialised afresh: block3.w3 [1, 1, 32, 2] (other classes), block3.b3 [2] (other classes)`);
    const [after, before] = [loadCheckpoint(rf.checkpoint).params, loadCheckpoint(foreign).params];
    for (const [name, w] of after) if (name !== 'block3.w3' && name !== 'block3.b3') expect(w, name).toEqual(before.get(name));
    expect(after.get('block3.w3')).not.toEqual(before.get('block3.w3'));

    // A resume continues with the run's own weights: the source may be gone; the record stays.
    rmSync(src);
    const resumed = { ...parseTrainArgs(['--resume', r.checkpoint, '--epochs', '2']).options, progress: false, log: () => {} };
    expect(resumed.weightsFrom).toBe(resolve(src));
    const more = await train(resumed, await loadSplits(resumed));
    expect(loadCheckpoint(more.checkpoint)).toMatchObject({ epoch: 2, options: { weightsFrom: resolve(src) } });
  });

  it('a net that predicts one class for every test image is noted once: its output does not depend on the image', async () => {
    // Linear class maps with zero weights and a bias for 'light': every image is 'light', whatever it shows.
    const args = ['--dataset', 'folder', '--data-dir', root, '--model', 'mnist-small', '--batch', '16', '--epochs', '2', '--schedule', 'constant', '--warmup', '0'];
    const collapsed = await untrained(parseTrainArgs([...args, '--out', join(tmp, 'collapsed-src')]).options, 5, join(tmp, 'collapsed.safetensors'), {
      'block3.w3': (n) => new Float32Array(n),
      'block3.b3': () => Float32Array.of(0, 3),
    });
    const notes = async (lr: string) => {
      const lines: string[] = [];
      const o = { ...parseTrainArgs([...args, '--lr', lr, '--weights-from', collapsed, '--out', join(tmp, `collapsed-run-${lr}`)]).options, progress: false, log: (l: string) => void lines.push(l) };
      await train(o, await loadSplits(o));
      return lines.filter((l) => l.startsWith('note: every'));
    };
    // (a rate too small to move it in 2 epochs: the advice; --lr 0: that no step changes it)
    expect(await notes('1e-9')).toEqual([
      "note: every one of the 8 test images was predicted as light: the net's output does not depend on the image (it has collapsed to one class, or has not started to learn); if that lasts, a lower --lr, or a longer --warmup, may get past it",
    ]);
    expect(await notes('0')).toEqual(["note: every one of the 8 test images was predicted as light: the net's output does not depend on the image (--lr 0: no step changes the weights)"]);
    // Predictions of two classes, or images of one class only: nothing to say.
    expect(collapsedTo([[3, 1], [0, 4]])).toBeNull();
    expect(collapsedTo([[0, 4], [0, 4]])).toBe(1);
    expect(collapsedTo([[0, 4], [0, 0]])).toBeNull();
  });
});
