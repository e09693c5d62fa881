// Advice in usage errors that, followed, is refused: each suggested flag must be one the command
// takes in that combination.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainArgs } from '../nin/cli.ts';
import { encodePng } from '../nin/images.ts';
import { ninWithoutGpu } from './helpers.ts';
import { zeroCheckpoint } from './training-runs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nin-advice-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const nin = ninWithoutGpu;

/** The message parseTrainArgs refuses `args` with. */
function refusal(args: string[]): string {
  try {
    parseTrainArgs(args);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`accepted: ${args.join(' ')}`);
}

/** An image folder of 2 classes, `per` w×h PNGs each in every split named. */
function imageFolder(splits: string[], w: number, h: number, per = 2): string {
  const dir = mkdtempSync(join(tmp, 'folder-'));
  for (const split of splits) for (const c of ['cat', 'dog']) {
    mkdirSync(join(dir, split, c), { recursive: true });
    for (let i = 0; i < per; i++) writeFileSync(join(dir, split, c, `${i}.png`), encodePng(w, h, new Uint8Array(w * h * 4).fill(c === 'cat' ? 40 + i : 200 - i)));
  }
  return dir;
}

describe('advice that can be followed', () => {
  it('a picture where a checkpoint goes: the predict usage only for predict', async () => {
    const pic = 'test/fixtures/rgb444-q100-baseline.jpg';
    expect(refusal(['--resume', pic])).not.toMatch(/comes first|nin predict/);
    const r = await nin('eval', pic);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a JPEG picture, not a checkpoint/);
    expect(r.stderr).not.toMatch(/comes first/);
    expect(r.stderr).toMatch(/\(a run's checkpoint\.safetensors or its directory; pictures of your own: nin eval CHECKPOINT --pictures DIR, or nin predict CHECKPOINT PICTURE\.\.\.\)/);
    expect((await nin('predict', pic, 'runs/x')).stderr).toMatch(/comes first: nin predict CHECKPOINT PICTURE/);
  });

  it('--weights-from in --out: neither --overwrite nor --resume is offered (both are refused there)', () => {
    const { dir } = zeroCheckpoint(tmp); // a run directory holding a checkpoint
    const message = refusal(['--model', 'mnist-small', '--weights-from', dir, '--out', dir]);
    expect(message).not.toMatch(/--overwrite to start afresh|--resume/);
    expect(message).toMatch(/which holds its run \(a new run there would replace its files\): copy it elsewhere first, or give another --out/);
    expect(refusal(['--model', 'mnist-small', '--weights-from', dir, '--out', dir, '--overwrite'])).toMatch(/copy it elsewhere first, or give another --out/);
    expect(refusal(['--model', 'mnist-small', '--resume', dir, '--weights-from', dir])).toMatch(/a resumed run continues with its own/);
  });

  it('--preprocess gcn-zca on a --config network: no --image-size, which --config refuses', () => {
    const folder = imageFolder(['train', 'test'], 16, 16);
    const config = join(mkdtempSync(join(tmp, 'run-')), 'c64.json');
    writeFileSync(config, JSON.stringify({ name: 'tiny64', input: { height: 64, width: 64, channels: 3 }, classes: 2, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 2], linearOut: true }] }));
    const base = ['--dataset', 'folder', '--data-dir', folder, '--config', config];
    const message = refusal([...base, '--preprocess', 'gcn-zca']);
    expect(message).toMatch(/--preprocess gcn-zca fits a D×D whitening matrix/);
    expect(message).not.toMatch(/--image-size/);
    expect(refusal([...base, '--image-size', '16x16'])).toMatch(/fixed by --config/);
    // Without --config the folder's size is the run's to choose.
    expect(refusal(['--dataset', 'folder', '--data-dir', imageFolder(['train', 'test'], 64, 64), '--preprocess', 'gcn-zca'])).toMatch(/give a smaller --image-size, or --preprocess/);
  });

  it('--val paper on an image folder: --val folder only where it has a val/', () => {
    const without = refusal(['--dataset', 'folder', '--data-dir', imageFolder(['train', 'test'], 16, 16), '--val', 'paper']);
    expect(without).toMatch(/give --val N/);
    expect(without).not.toMatch(/--val folder/);
    expect(refusal(['--dataset', 'folder', '--data-dir', imageFolder(['train', 'val', 'test'], 16, 16), '--val', 'paper'])).toMatch(/or --val folder for its val\//);
  });
});
