// The `nin` command line: usage errors exit with code 2 before any GPU work.
import { describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { CheckpointDamaged, finishedLine, MAIN_JOB, parseRangeTestArgs, parseTrainArgs, predictedImages, UsageError } from '../nin/cli.ts';
import type { TrainResult } from '../nin/train.ts';
import { writeSafetensors } from '../nin/safetensors.ts';
import { fewerNotes, ImageLoadError } from '../nin/images.ts';
import { formatPredictions, predictChunks, topClasses, type Predictions } from '../nin/predict.ts';
import { modelConfig, MODELS, parameterSpecs, parseModelConfig, plan } from '../nin/model.ts';
import { isAvailable } from '../nin/data/registry.ts';
import { NO_GPU, ninWithoutGpu, runAsync } from './helpers.ts';
import { zeroCheckpoint } from './training-runs.ts';

/** `nin ARGS`, in the NO_GPU environment: nothing here needs a GPU. */
const nin = ninWithoutGpu;

describe('nin CLI', () => {
  it.each([
    [['train', '--epochs', '0'], /--epochs must be an integer ≥ 1, got '0'/],
    [['train', '--lr', 'fast'], /--lr must be a number in \[0, 1000\], got 'fast'/],
    [['train', '--bogus'], /unknown option '--bogus'\n/],
    // Another command's flag: node's message suggested passing it as a positional argument.
    [['eval', 'x.safetensors', '--epochs', '3'], /unknown option '--epochs' \(an option of nin train: this command does not take it\)/],
    // A value that starts with a dash keeps node's advice (--lr=-5), not "unknown option '-5'".
    [['train', '--lr', '-5'], /Option '--lr' argument is ambiguous/],
    [['train', '--dataset', 'imagenet'], /--dataset must be one of mnist, cifar10, cifar100, svhn, folder, got 'imagenet'/],
    [['train', '--dataset', 'cifar10', '--model', 'mnist-small'], /model 'mnist-small' takes 28×28×1 images but cifar10 images are 32×32×3/],
    [['train', '--dataset', 'cifar100', '--model', 'cifar10'], /model 'cifar10' has 10 classes but cifar100 has 100/],
    [['train', '--aug', '--no-aug'], /--aug and --no-aug contradict each other/],
    [['train', '--schedule', 'cosine', '--lr-steps', '3'], /--lr-steps only applies to --schedule step/],
    [['train', '--resume', 'no/such/checkpoint.safetensors'], /--resume: no checkpoint at 'no\/such\/checkpoint.safetensors'/],
    [['train', '--train-limit', '100', '--val', '100'], /--val 100 holds out 100 images: none left of --train-limit 100/],
    [['train', '--dataset', 'svhn', '--val', 'paper', '--train-limit', '3000'], /--val paper holds out 4000 images: none left of --train-limit 3000/],
    // With --extra, the extra part (and its 200 per class) joins only past the train part's 73,257 images.
    [['train', '--dataset', 'svhn', '--extra', '--val', 'paper', '--train-limit', '4000'], /--val paper holds out 4000 images: none left of --train-limit 4000/],
    [['train', '--val', 'papers'], /--val must be a number of images, 'paper' or 'folder', got 'papers'/],
    [['train', '--model', 'mnist-small', '--dropout', '0.5'], /--dropout: model 'mnist-small' has no dropout layers between its blocks/],
    [['train', '--dataset', 'cifar10', '--dropout', '1'], /--dropout must be a number in \[0, 0.99\], got '1'/],
    [['train', '--dataset', 'cifar10', '--extra'], /--extra adds SVHN's extra_32x32.mat; cifar10 has no extra set/],
    [['eval'], /expected at least one checkpoint path, got 0 argument/],
    [['predict', 'runs/x'], /expected a checkpoint and at least one image, got 1 argument/],
    [['predict', 'missing.safetensors', 'x.png'], /no checkpoint at 'missing.safetensors'/],
    [['predict', 'missing.safetensors', 'x.png', '--invert'], /no checkpoint at 'missing.safetensors'/], // (the flag is taken)
    [['eval', 'README.md'], /README.md: header length \d+ exceeds the \d+-byte limit: not a safetensors file/],
    // A picture first (the arguments swapped): said so.
    [['predict', 'test/fixtures/rgb444-q100-baseline.jpg', 'runs/x'], /test\/fixtures\/rgb444-q100-baseline.jpg is a JPEG picture, not a checkpoint \(a run's checkpoint.safetensors or its directory comes first: nin predict CHECKPOINT PICTURE...\)/],
    [['visualize', 'package.json'], /package.json: header length \d+ exceeds the \d+-byte limit: not a safetensors file/],
    // The training set's size is known before it is loaded.
    [['train', '--model', 'mnist-small', '--val', '60000'], /--val 60000 holds out 60000 images: none left of mnist's 60000 training images/],
    [['train', '--model', 'mnist-small', '--val', '59990'], /--batch 16 is larger than the 10 training images left of mnist's 60000 training images after --val 59990/],
    // Limits past the data set: all of it was used, and the limit saved as given.
    [['train', '--train-limit', '60001'], /--train-limit 60001 is more than mnist's 60000 training images: leave it out to train on all/],
    [['train', '--dataset', 'svhn', '--extra', '--train-limit', '604389'], /--train-limit 604389 is more than svhn's 604388 training images \(train and extra\): leave it out/],
    [['train', '--dataset', 'cifar10', '--test-limit', '10001'], /--test-limit 10001 is more than cifar10's 10000 test images: leave it out to test on all/],
    [['models', 'extra'], /expected no arguments, got 1 argument/],
    // nin lr-find: its own flags, and train's that mean nothing to a sweep.
    [['lr-find', '--epochs', '3'], /--epochs has no meaning for lr-find: it sweeps its own rates \(--lr-min, --lr-max, --steps\) from the network's initial weights, and writes no run/],
    [['lr-find', '--resume=runs/x'], /--resume has no meaning for lr-find/],
    [['lr-find', '--lr-min', '1', '--lr-max', '0.1'], /--lr-min 1 must be below --lr-max 0.1/],
    [['lr-find', '--lr-max', '0'], /--lr-max must be a number in \(0, 1000\], got '0'/],
    [['lr-find', '--lr-min', '0x10'], /--lr-min must be a number in \(0, 1000\], got '0x10'/], // (plain decimals, as --lr: Number() read it as 16)
    [['lr-find', '--steps', '4'], /--steps must be an integer in \[5, 100000\], got '4'/],
    [['lr-find', '--lr-min'], /--lr-min needs a value/],
    [['lr-find', '--plot', 'sweep.jpg'], /--plot sweep.jpg: the sweep is drawn as a PNG: name it .png/],
    [['lr-find', '--model', 'mnist-small', '--batch', '0'], /--batch must be an integer ≥ 1, got '0'/],
    [['models', '--bogus'], /unknown option '--bogus'\n/],
    // lr-find's own flags, as parse() checks train's: an empty value wrote the plot to '' after the
    // sweep; a flag taken for --json's value wrote a file named --aug and swept without augmentation.
    [['lr-find', '--plot='], /--plot needs a value, got an empty one/],
    [['lr-find', '--json', '--aug'], /--json needs a value, got the flag --aug/],
    [['lr-find', '--test-limit', '16'], /--test-limit has no meaning for lr-find/],
    // An output over an input, or over another output: the PNG replaced by the JSON.
    [['lr-find', '--plot', 'sweep.png', '--json', 'sweep.png'], /--json sweep.png names the file --plot writes: name another file for one of them/],
    [['compare', 'some-run', '--out', 'cmp.png', '--json', './cmp.png'], /--json .\/cmp.png names the file --out writes: name another file for one of them/],
    [['compare', 'moved-aside.jsonl', '--json', 'moved-aside.jsonl'], /--json moved-aside.jsonl is one of the runs compared: writing there would replace it; name another file/],
    [['compare', 'some-run', '--out', 'test'], /--out test is a directory: name the PNG file to write \(e.g. test\/compare.png\)/],
    // It printed the table, then failed with a bare EEXIST.
    // run.lock, even where none is yet: a later run there took the file for its lock.
    [['compare', 'some-run', '--json', 'somewhere/run.lock'], /--json somewhere\/run.lock: run.lock is the name of a run's lock \(a run in that directory would take the file for one, and refuse to start\); name another file/],
    // (a string: the path may hold spaces or regex characters)
    [['compare', 'some-run', '--out', 'package.json/compare.png'], `--out package.json/compare.png: ${resolve('package.json')} is a file, not a directory`],
    // Written as a PNG whatever the name: a .jpg would not open.
    [['compare', 'some-run', '--out', 'cmp.jpg'], /--out cmp.jpg: the comparison is written as a PNG: name it .png/],
    [['export'], /expected one checkpoint path, got 0 argument/],
    [['export', 'missing.safetensors'], /no checkpoint at 'missing.safetensors'/],
    [['export', 'README.md', '--no-preprocess'], /README.md: header length \d+ exceeds the \d+-byte limit: not a safetensors file/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    // A typo followed by --help printed the usage with exit 0.
    [['trian', '--help'], /unknown command 'trian'/],
    // Accepted and then ignored: the rate of a cosine or constant schedule never drops.
    [['train', '--schedule', 'cosine', '--gamma', '0.5'], /--gamma only applies to --schedule step or plateau \(the rate's factor at each drop\), not cosine/],
    [['train', '--epochs', '3', '--stop-after', '10'], /--stop-after 10 is past the run's last epoch \(--epochs 3\): it would stop nothing/],
    [['visualize', 'runs/x', '--images', '257'], /--images must be an integer in \[1, 256\], got '257'/],
    // An empty value (an unset shell variable) is not "not given": --data-dir= fell back to ./data.
    [['eval', 'runs/x', '--data-dir='], /--data-dir needs a value, got an empty one/],
    [['train', '--out', ''], /--out needs a value, got an empty one/],
    // Plain decimals only: Number() read '0x10' as 16 (and the run died of a NaN loss at lr 16).
    [['train', '--lr', '0x10'], /--lr must be a number in \[0, 1000\], got '0x10'/],
    [['train', '--epochs', 'Infinity'], /--epochs must be an integer ≥ 1, got 'Infinity'/],
    // The RNGs take 32 bits: 2^32 + 1 ran as seed 1.
    [['train', '--seed', '4294967297'], /--seed must be an integer in \[0, 4294967295\], got '4294967297'/],
  ])('%j → exit 2 with a usage message, before any GPU work', async (args, message) => {
    const r = await nin(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    // (the command's own usage pointer: nin train --help, nin lr-find --help)
    expect(r.stderr).toMatch(['train', 'lr-find'].includes(args[0]) ? new RegExp(`\\n\\(nin ${args[0]} --help shows the usage\\)\\n$`) : /\n\(nin (\w+ )?--help shows the usage\)\n$/);
    expect(r.stderr).not.toMatch(/No WebGPU adapter found/); // NO_GPU: any GPU acquisition would have failed with this, exit 1
    expect(r.stderr).not.toMatch(/maxDynamic/); // Dawn prints this (on lavapipe) when it enumerates adapters
  });

  it.skipIf(!isAvailable('mnist', 'train') || !isAvailable('mnist', 'test'))('NO_GPU makes a command that does GPU work fail (exit 1), so the usage errors above came before any', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'nin-cli-')), 'run');
    const r = await nin('train', '--model', 'mnist-small', '--train-limit', '64', '--test-limit', '16', '--batch', '16', '--epochs', '1', '--out', out);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^nin: GpuError: No WebGPU adapter found: Dawn backend '[^']*', adapter 'no-such-adapter'/m);
    expect(existsSync(out)).toBe(false);
  });

  // A tile that cannot run failed at the first GEMM: after the preprocessing, with the run directory made.
  it.skipIf(!isAvailable('mnist', 'train') || !isAvailable('mnist', 'test'))('nin train: a bad NIN_MATRIX_TILE stops the run before its run directory exists', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'nin-cli-')), 'run');
    const env = { ...process.env, NIN_MATRIX: 'f32-emulated', NIN_MATRIX_TILE: '3x2' };
    const r = await runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', 'train', '--model', 'mnist-small', '--train-limit', '64', '--test-limit', '16', '--batch', '16', '--epochs', '1', '--out', out], { timeout: 120_000, env });
    expect(r.status, r.stderr).toBe(2); // a usage error, before the data is read (a well-formed tile the device cannot run is found on it)
    expect(r.stderr).toContain("NIN_MATRIX_TILE='3x2': expected FMxFNxBK");
    expect(existsSync(out)).toBe(false);
  });

  // It was named after the data had loaded (minutes, for CIFAR with ZCA), and as "SafetensorsError: …".
  it.skipIf(!isAvailable('mnist', 'train') || !isAvailable('mnist', 'test'))('nin train --resume a damaged checkpoint: refused with its message alone (exit 1), before the data is read or any GPU work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    const ckpt = join(dir, 'checkpoint.safetensors');
    const o = parseTrainArgs(['--model', 'mnist-small', '--train-limit', '64', '--test-limit', '16', '--out', dir]).options;
    writeSafetensors(ckpt, { w: { dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) } }, { format: 'nin-webgpu/1', options: JSON.stringify(o), config: JSON.stringify(modelConfig(o)), epoch: '1' });
    const bytes = readFileSync(ckpt);
    bytes[bytes.length - 1] ^= 0x40; // in the tensor data, past the header: only its checksum tells
    writeFileSync(ckpt, bytes);
    const r = await nin('train', '--resume', ckpt, '--epochs', '2');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^nin: ${ckpt.replace(/[.]/g, '\\.')}: its tensor data does not match the checksum written with it \\(tensor_data_sha256 [0-9a-f]{64}, the data's is [0-9a-f]{64}\\): the file was damaged or edited after it was written\n$`));
  });

  it.skipIf(!isAvailable('mnist', 'train'))('nin lr-find --weights-from a damaged checkpoint: refused with its message alone (exit 1), before the data is read, as train (it was read after the data)', async () => {
    const { dir, ckpt } = zeroCheckpoint();
    const bytes = readFileSync(ckpt);
    bytes[bytes.length - 1] ^= 0x40; // in the tensor data, past the header: only its checksum tells
    writeFileSync(ckpt, bytes);
    const r = await nin('lr-find', '--weights-from', ckpt, '--train-limit', '64', '--steps', '5', '--plot', join(dir, 'lr.png'));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^nin: ${ckpt.replace(/[.]/g, '\\.')}: its tensor data does not match the checksum written with it`));
  });

  it('nin visualize: an --out that is a file, or under one, is a usage error before any GPU work (it was a bare EEXIST)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    const ckpt = join(dir, 'checkpoint.safetensors');
    const o = parseTrainArgs(['--model', 'mnist-small', '--out', dir]).options;
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify(o), config: JSON.stringify(modelConfig(o)), epoch: '1' });
    for (const [out, message] of [['package.json', '--out package.json is a file, not a directory'], ['package.json/maps', `--out package.json/maps: ${resolve('package.json')} is a file, not a directory`]]) {
      const r = await nin('visualize', ckpt, '--out', out);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(/No WebGPU adapter found/); // NO_GPU
    }
  });

  it('a bad NIN_* setting is a usage error of the commands that use the GPU, before any file is read (it was a GpuError, exit 1, once the test set was loaded)', async () => {
    const run = (env: Record<string, string>, ...args: string[]) => runAsync(process.execPath, ['--import', 'tsx', 'nin/cli.ts', ...args], { timeout: 60_000, env: { ...NO_GPU, ...env } });
    const cases: [Record<string, string>, string][] = [
      [{ NIN_KERNELS: 'bogus' }, "NIN_KERNELS='bogus': expected 'tiled' or 'simd'"],
      [{ NIN_MATRIX: 'f64' }, 'NIN_MATRIX=f64: expected off, f32, f16, f32-emulated or f16-emulated'],
      [{ NIN_MATRIX_TILE: '2x0x32' }, "NIN_MATRIX_TILE='2x0x32': expected FMxFNxBK, e.g. 2x4x32 (fragments along M and N, k-depth)"],
      [{ NIN_TUNED: 'no/such/table.json' }, "tuning table no/such/table.json (NIN_TUNED): ENOENT: no such file or directory, open 'no/such/table.json'"],
    ];
    for (const [env, message] of cases) {
      const r = await run(env, 'eval', 'no/such/checkpoint.safetensors');
      expect([r.status, r.stderr], JSON.stringify(env)).toEqual([2, `nin: ${message}\n`]);
    }
    expect((await run({ NIN_KERNELS: 'bogus' }, 'predict', 'no/such.safetensors', 'x.png')).status).toBe(2);
    // (each of the commands that use the GPU: the setting's message, not the flags' or the files')
    for (const args of [['visualize', 'no/such.safetensors'], ['lr-find', '--epochs', '3'], ['train', '--epochs', '0']]) {
      const r = await run({ NIN_KERNELS: 'bogus' }, ...args);
      expect([r.status, r.stderr], args[0]).toEqual([2, "nin: NIN_KERNELS='bogus': expected 'tiled' or 'simd'\n"]);
    }
    // A command without the GPU does not read them.
    expect((await run({ NIN_KERNELS: 'bogus' }, 'compare', 'no/such/run')).stderr).not.toContain('NIN_KERNELS');
  });

  it('nin predict: an image that is not there, or a directory without images, is a usage error naming it, before the checkpoint is read (exit 2, no GPU work)', async () => {
    // A header the format check accepts and loading would refuse (no options, config or weights).
    const ckpt = join(mkdtempSync(join(tmpdir(), 'nin-cli-')), 'header-only.safetensors');
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1' });
    const r = await nin('predict', ckpt, 'package.json', 'no/such/image.png');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe("nin: no image at 'no/such/image.png'\n"); // (a path that is not there: the message alone)
    const d = await nin('predict', ckpt, 'package.json', 'test');
    expect(d.code, d.stderr).toBe(2);
    // The command is well formed, what it names is not usable: the message alone, not buried in the usage.
    expect(d.stderr).toBe("nin: 'test' is a directory that holds no PNG or JPEG files (.png, .jpg, .jpeg; folders inside it are not read)\n");
  });

  it('nin predict: --json naming a picture to predict, or a link to one, is a usage error, and the picture is left as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    const ckpt = join(dir, 'header-only.safetensors');
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1' });
    const picture = join(dir, 'digit.jpg');
    copyFileSync('test/fixtures/grey-q100-baseline.jpg', picture);
    symlinkSync(picture, join(dir, 'link.json'));
    const before = readFileSync(picture);
    for (const json of [picture, join(dir, 'link.json')]) {
      const r = await nin('predict', ckpt, dir, '--json', json);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`nin: --json ${json} is one of the pictures to predict: writing there would replace it; name another file`);
    }
    expect(readFileSync(picture).equals(before)).toBe(true);
  });

  it('nin eval --pictures: a directory of pictures of one\'s own, not with --data-dir; --invert only with it (exit 2, before the checkpoint is read)', async () => {
    const ckpt = join(mkdtempSync(join(tmpdir(), 'nin-cli-')), 'header-only.safetensors');
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1' });
    const cases: [string[], string][] = [
      [['--pictures', 'test', '--data-dir', 'data'], "nin: --pictures DIR tests on pictures of your own, --data-dir on the run's test set: give one"],
      [['--invert'], "nin: --invert reads pictures of your own (--pictures DIR) as dark strokes on a light background; the run's test set is read as it is"],
      [['--pictures', 'no/such/dir'], "nin: --pictures no/such/dir: no such directory (give one that holds a folder of PNG or JPEG pictures for each class it has, named as the model's classes)\n"],
    ];
    for (const [flags, message] of cases) {
      const r = await nin('eval', ckpt, ...flags);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it("nin eval: a checkpoint named twice, --pictures naming a file, --stream on a data set's run and --test-limit past --pictures' count are usage errors; --data-dir reaches the test set's loading (before any GPU work)", async () => {
    const { dir, ckpt } = zeroCheckpoint();
    // The same file by another spelling of its path is the same checkpoint.
    const again = `${dir}/./checkpoint.safetensors`;
    const mine = join(dir, 'mine');
    mkdirSync(join(mine, '7'), { recursive: true });
    copyFileSync('test/fixtures/grey-q100-baseline.jpg', join(mine, '7', 'a.jpg'));
    const cases: [string[], string][] = [
      [[again], `nin: ${again} is given twice: give each checkpoint once\n(nin eval --help shows the usage)\n`],
      [['--pictures', 'package.json'], "nin: --pictures package.json: no such directory (give one that holds a folder of PNG or JPEG pictures for each class it has, named as the model's classes)\n"],
      [['--stream'], "nin: --stream reads an image folder run's test pictures batch by batch; mnist's test set is read whole\n(nin eval --help shows the usage)\n"],
      [['--pictures', mine, '--test-limit', '2'], `nin: --test-limit 2 is more than ${mine}'s 1 test images: leave it out to test on all\n(nin eval --help shows the usage)\n`],
    ];
    for (const [flags, message] of cases) {
      const r = await nin('eval', ckpt, ...flags);
      expect([r.code, r.stderr], flags.join(' ')).toEqual([2, message]);
    }
    // --data-dir is where the test set is read from: a file there is named (exit 1), not passed over for $NIN_DATA.
    for (const command of [['eval', ckpt], ['visualize', ckpt, '--out', dir], ['train', '--model', 'mnist-small', '--out', join(dir, 'run')], ['lr-find', '--model', 'mnist-small', '--plot', join(dir, 'lr.png')]]) {
      const r = await nin(...command, '--data-dir', 'package.json');
      expect([r.code, r.stderr], command[0]).toEqual([1, `nin: ${resolve('package.json')}: --data-dir names a file, not a directory\n`]);
    }
    rmSync(dir, { recursive: true });
  });

  it.skipIf(!isAvailable('mnist', 'test'))('nin visualize: 6 pictures by default, up to --images 256 (read before any GPU work)', async () => {
    const { dir, ckpt } = zeroCheckpoint();
    for (const [flags, count] of [[[], 6], [['--images', '256'], 256]] as const) {
      const r = await nin('visualize', ckpt, '--out', dir, ...flags);
      expect(r.code, r.stderr).toBe(1); // NO_GPU: past the flags and the test set, at the GPU
      expect(r.stderr).toContain(`mnist/test[:${count}]: ${count} images`);
      expect(r.stderr).toMatch(/No WebGPU adapter found/);
    }
    rmSync(dir, { recursive: true });
  });

  it("nin predict: a directory stands for its images, in code-point order; hidden files, other files and folders inside are skipped; a picture named again is taken once", () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-predict-dir-'));
    for (const name of ['b.JPG', 'a.png', 'c.jpeg', 'Z.jpg', '.hidden.png', 'notes.txt']) writeFileSync(join(dir, name), '');
    mkdirSync(join(dir, 'sub.png')); // a folder, whatever its name
    writeFileSync(join(dir, 'sub.png', 'inner.png'), '');
    const single = join(dir, 'notes.txt'); // a file named is taken as it is: reading it names what it is
    const said: string[] = [];
    expect(predictedImages([single, dir], (line) => said.push(line))).toEqual([single, ...['Z.jpg', 'a.png', 'b.JPG', 'c.jpeg'].map((n) => join(dir, n))]);
    expect(said).toEqual([`${dir}: 1 file skipped, not .png, .jpg or .jpeg (notes.txt)`, `${dir}: 1 folder inside not read (sub.png): name it to predict its pictures`]);
    for (const name of ['a.txt', 'b.gif', 'c.webp']) writeFileSync(join(dir, name), '');
    said.length = 0;
    predictedImages([dir], (line) => said.push(line));
    expect(said).toEqual([`${dir}: 4 files skipped, not .png, .jpg or .jpeg (a.txt, b.gif, c.webp, …)`, `${dir}: 1 folder inside not read (sub.png): name it to predict its pictures`]);
    expect(() => predictedImages([join(dir, 'sub.png', 'none')])).toThrow(new UsageError(`no image at '${join(dir, 'sub.png', 'none')}'`));
    // A picture named again (itself and its directory, or by another path) is predicted once.
    said.length = 0;
    const a = join(dir, 'a.png');
    const again = join(dir, '..', basename(dir), 'a.png');
    expect(predictedImages([a, dir, again, a], (line) => line.includes('named again') && said.push(line))).toEqual([a, ...['Z.jpg', 'b.JPG', 'c.jpeg'].map((n) => join(dir, n))]);
    expect(said).toEqual([`3 pictures named again, predicted once: ${a}, ${again}, ${a}`]);
    // Three skipped files are all named (no "…"); a link to a picture named is that picture.
    rmSync(join(dir, 'a.txt'));
    said.length = 0;
    predictedImages([dir], (line) => line.includes('skipped') && said.push(line));
    expect(said).toEqual([`${dir}: 3 files skipped, not .png, .jpg or .jpeg (b.gif, c.webp, notes.txt)`]);
    const elsewhere = mkdtempSync(join(tmpdir(), 'nin-predict-link-'));
    const link = join(elsewhere, 'link.png');
    symlinkSync(a, link);
    said.length = 0;
    expect(predictedImages([a, link], (line) => said.push(line))).toEqual([a]);
    expect(said).toEqual([`1 picture named again, predicted once: ${link}`]);
    rmSync(elsewhere, { recursive: true });
    rmSync(dir, { recursive: true });
  });

  it("nin predict: each picture's line, its top 5 classes most probable first (ties in class order), to 0.1 %", () => {
    const r: Predictions = {
      images: ['a.png', 'b.png'],
      classNames: ['cat', 'dog', 'eel', 'fox', 'gnu', 'hen'],
      probabilities: Float32Array.of(0.05, 0.5, 0.1, 0.2, 0.1, 0.05, 0.01, 0.02, 0.03, 0.04, 0, 0.9),
      unreadable: [],
      notes: [[], []],
    };
    expect(formatPredictions(r)).toEqual(['a.png: dog 50.0%, fox 20.0%, eel 10.0%, gnu 10.0%, cat 5.0%', 'b.png: hen 90.0%, fox 4.0%, eel 3.0%, dog 2.0%, cat 1.0%']);
    expect(topClasses(r, 1, 2)).toEqual([{ index: 5, name: 'hen', probability: Math.fround(0.9) }, { index: 3, name: 'fox', probability: Math.fround(0.04) }]);
    expect(topClasses(r, 0, 10)).toHaveLength(6);
  });

  it('predictChunks: a chunk that is not a positive integer is refused before any picture is read; one unreadable picture is named by its own error, several in one', async () => {
    const { dir, ckpt } = zeroCheckpoint();
    for (const chunk of [0, 2.5]) {
      await expect(predictChunks(ckpt, [join(dir, 'no-such.png')], () => {}, { skipUnreadable: true, chunk }).next()).rejects.toThrow(`predict: chunk must be a positive integer, got ${chunk}`);
    }
    const bad = [join(dir, 'a.png'), join(dir, 'b.png')];
    for (const path of bad) writeFileSync(path, 'not a picture');
    const one = await predictChunks(ckpt, bad.slice(0, 1), () => {}).next().catch((e: Error) => e);
    expect(one).toBeInstanceOf(ImageLoadError);
    expect((one as Error).message).toMatch(new RegExp(`^${bad[0].replace(/[.]/g, '\\.')}: `));
    expect((one as Error).message).not.toContain('cannot be read:');
    const two = await predictChunks(ckpt, bad, () => {}).next().catch((e: Error) => e);
    expect((two as Error).message).toContain(`2 of 2 images cannot be read:\n  ${(one as Error).message}\n  ${bad[1]}: `);
  });

  it('nin predict: past three notes of a kind, the rest are counted (a directory of photos is resized one by one)', () => {
    const resized = (i: number) => `p${i}.jpg: resized from 500×375 to 32×32 (width×height), aspect ratio changed from 1.33:1 to 1:1`;
    const notes = [resized(1), 'p2.jpg: the picture is blank as the model sees it (every value 0.00 of 1)', resized(3), resized(4), resized(5), resized(6)];
    expect(fewerNotes(notes)).toEqual([resized(1), resized(3), resized(4), '… and 2 more pictures resized to the model\'s input', notes[1]]);
    expect(fewerNotes(notes.slice(0, 3))).toEqual([resized(1), resized(3), notes[1]]);
    expect(fewerNotes([resized(1), resized(2), resized(3)])).toEqual([resized(1), resized(2), resized(3)]); // three: all shown
    expect(fewerNotes([resized(1), resized(2), resized(3), resized(4)])).toEqual([resized(1), resized(2), resized(3), '… and 1 more picture resized to the model\'s input']);
  });

  it('prints the usage with exit 2 when no command is given, 0 for --help (also after a command)', async () => {
    expect((await nin()).code).toBe(2);
    const help = await nin('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/nin train \[options\]/);
    for (const args of [['train', '--help'], ['eval', 'missing.safetensors', '-h']]) {
      const r = await nin(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/train options:/);
    }
    // After a bare `--`, --help is an argument (a file of that name), not a request for the usage.
    const after = await nin('predict', 'no/such.safetensors', '--', '--help');
    expect([after.code, after.stdout]).toEqual([2, '']);
    expect(after.stderr).toContain("nin: no checkpoint at 'no/such.safetensors'");
  });

  it('the optimiser, seed and checkpoint defaults (a silent change would change every run)', () => {
    for (const args of [[], ['--dataset', 'mnist'], ['--dataset', 'cifar10']]) {
      expect(parseTrainArgs(args).options, args.join(' ') || 'the main job').toMatchObject({ momentum: 0.9, weightDecay: 1e-4, seed: 1, checkpointMinutes: 10 });
    }
  });

  it('flags at the edges of their ranges: the last good value is taken, the first bad one refused', () => {
    // --gamma multiplies the rate at each drop: above 1 it would raise it.
    expect(parseTrainArgs(['--schedule', 'step', '--gamma', '1']).options.gamma).toBe(1);
    expect(() => parseTrainArgs(['--schedule', 'step', '--gamma', '1.5'])).toThrow(new UsageError("--gamma must be a number in [0, 1], got '1.5'"));
    // Weight decay: at most 1 (5 is a slip for 5e-4, say).
    expect(parseTrainArgs(['--weight-decay', '1']).options.weightDecay).toBe(1);
    expect(() => parseTrainArgs(['--weight-decay', '5'])).toThrow(new UsageError("--weight-decay must be a number in [0, 1], got '5'"));
    // The RNGs take 32 bits.
    expect(parseTrainArgs(['--seed', '4294967295']).options.seed).toBe(4294967295);
    expect(() => parseTrainArgs(['--seed', '4294967296'])).toThrow(new UsageError("--seed must be an integer in [0, 4294967295], got '4294967296'"));
    // A warm-up may span the whole run.
    expect(parseTrainArgs(['--epochs', '2', '--warmup', '2']).options).toMatchObject({ epochs: 2, warmupEpochs: 2 });
    expect(() => parseTrainArgs(['--epochs', '2', '--warmup', '2.5'])).toThrow(new UsageError("--warmup must be a number in [0, 2], got '2.5'"));
    // A batch as large as the training images left is one full batch an epoch; one more image is none.
    expect(parseTrainArgs(['--train-limit', '100', '--val', '36', '--batch', '64']).options).toMatchObject({ trainLimit: 100, validation: 36, batchSize: 64 });
    expect(() => parseTrainArgs(['--train-limit', '100', '--val', '37', '--batch', '64'])).toThrow(new UsageError('--batch 64 is larger than the 63 training images left of --train-limit 100 after --val 37'));
    expect(() => parseTrainArgs(['--train-limit', '100', '--val', '100'])).toThrow(new UsageError('--val 100 holds out 100 images: none left of --train-limit 100'));
    // --stop-after 0 would stop before the first epoch.
    expect(parseTrainArgs(['--epochs', '3', '--stop-after', '1']).options.stopAfter).toBe(1);
    expect(parseTrainArgs(['--epochs', '3', '--stop-after', '3']).options.stopAfter).toBe(3);
    expect(() => parseTrainArgs(['--epochs', '3', '--stop-after', '4'])).toThrow(new UsageError("--stop-after 4 is past the run's last epoch (--epochs 3): it would stop nothing"));
    expect(() => parseTrainArgs(['--stop-after', '2'])).toThrow(new UsageError("--stop-after 2 is past the run's last epoch (--epochs 1, the default): it would stop nothing"));
    // --gamma: the factor of the step and plateau schedules' drops.
    expect(parseTrainArgs(['--schedule', 'plateau', '--gamma', '0.5']).options.gamma).toBe(0.5);
    expect(() => parseTrainArgs(['--schedule', 'constant', '--gamma', '0.5'])).toThrow(new UsageError("--gamma only applies to --schedule step or plateau (the rate's factor at each drop), not constant"));
    expect(() => parseTrainArgs(['--stop-after', '0'])).toThrow(new UsageError("--stop-after must be an integer ≥ 1, got '0'"));
    expect(() => parseTrainArgs(['--epochs', '0'])).toThrow(new UsageError("--epochs must be an integer ≥ 1, got '0'"));
  });

  it("nin lr-find: its default sweep and plot; train's --out, and a sweep of one rate, refused", () => {
    expect(parseRangeTestArgs([])).toMatchObject({ test: { lrMin: 1e-5, lrMax: 10, steps: 300 }, plot: 'lr-find.png' });
    expect(parseRangeTestArgs([]).json).toBeUndefined();
    expect(() => parseRangeTestArgs(['--out', 'runs/x'])).toThrow(new UsageError("--out has no meaning for lr-find: it sweeps its own rates (--lr-min, --lr-max, --steps) from the network's initial weights, and writes no run"));
    expect(() => parseRangeTestArgs(['--lr-min', '0.1', '--lr-max', '0.1'])).toThrow(new UsageError('--lr-min 0.1 must be below --lr-max 0.1'));
    expect(() => parseRangeTestArgs(['--plot', 'test'])).toThrow(new UsageError('--plot test is a directory: name the PNG file to write (e.g. test/lr-find.png)'));
  });

  it('nin compare writes compare.png by default (in the working directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    mkdirSync(join(dir, 'compare.png')); // a directory where the default PNG goes: refused by its name
    const r = await runAsync(process.execPath, ['--import', resolve('node_modules/tsx/dist/loader.mjs'), resolve('nin/cli.ts'), 'compare', 'no-such-run'], { timeout: 60_000, env: NO_GPU, cwd: dir });
    expect([r.status, r.stderr]).toEqual([2, 'nin: --out compare.png is a directory: name the PNG file to write (e.g. compare.png/compare.png)\n(nin compare --help shows the usage)\n']);
    // A PNG's name in capitals is a PNG's name: the runs are read next.
    const upper = await nin('compare', join(dir, 'no-such-run'), '--out', join(dir, 'C.PNG'));
    expect([upper.code, upper.stderr]).toEqual([2, `nin: ${join(dir, 'no-such-run')}: no such run directory, log or checkpoint\n(nin compare --help shows the usage)\n`]);
    rmSync(dir, { recursive: true });
  });

  it("He init: every weight's fan-in is its K·K·input channels (a 1×1 layer: its input channels), not its outputs", () => {
    for (const name of ['cifar10-small', 'cifar10', 'mnist']) {
      for (const p of parameterSpecs(MODELS[name]).filter((q) => !q.isBias)) expect(p.fanIn, `${name} ${p.name}`).toBe(p.shape[0] * p.shape[1] * p.shape[2]);
    }
  });

  it('FLOPs per image: a 3/2 max pool reads 9 inputs an output, GAP one an input', () => {
    const layers = plan(MODELS.cifar10);
    expect(layers.find((l) => l.name === 'maxpool 3/2')!.flops).toBe(16 * 16 * 96 * 9);
    expect(layers.find((l) => l.name === 'global average pool')!.flops).toBe(8 * 8 * 10);
    const conv = layers.find((l) => l.name.startsWith('mlpconv5x5 192-160-96'))!;
    expect(conv.flops).toBe(2 * 32 * 32 * (5 * 5 * 3 * 192 + 192 * 160 + 160 * 96)); // 2·MACs of the three convolutions
  });

  it('lists the models as training builds them, with their shapes, parameters and FLOPs', async () => {
    const r = await nin('models');
    expect(r.code).toBe(0);
    // The defaults `nin train` uses, and the paper's own where they differ.
    expect(r.stdout).toMatch(/\ncifar10: 32×32×3 → 10 classes, gap head, he init, linear class maps \(the paper's: gaussian init, ReLU class maps: --init gaussian --class-maps relu\)\n/);
    // (svhn's init is the paper's already: only its class maps are offered)
    expect(r.stdout).toMatch(/\nsvhn: 32×32×3 → 10 classes, gap head, gaussian init, linear class maps \(the paper's: ReLU class maps: --class-maps relu\)\n/);
    expect(r.stdout).toMatch(/\nmnist-small: 28×28×1 → 10 classes, gap head, he init, linear class maps\n/);
    expect(r.stdout).toMatch(/mlpconv3x3 192-192-10 linear out\s+8×8×10/);
    expect(r.stdout).toMatch(/mlpconv5x5 192-160-96\s+32×32×96/);
    expect(r.stdout).toMatch(/global average pool\s+10/);
    // A reader that stops early (`nin models | head -1`) is no error.
    const piped = await runAsync('bash', ['-c', 'set -o pipefail; node --import tsx nin/cli.ts models | head -2'], { timeout: 60_000 });
    expect(piped.stderr).not.toMatch(/EPIPE|Error/);
    expect(piped.status).toBe(0);
  });

  it('fills in the main job when neither dataset nor model is named', () => {
    const { options } = parseTrainArgs([]);
    expect(options).toMatchObject({ dataset: 'mnist', model: 'mnist-small', epochs: MAIN_JOB.epochs, batchSize: MAIN_JOB.batch, trainLimit: undefined, schedule: 'cosine' });
    // As the usage documents it: one epoch, batch 16, lr 0.025 cosine, 5 % warm-up.
    expect(options).toMatchObject({ epochs: 1, batchSize: 16, lr: 0.025, warmupEpochs: 0.05 });
    // Naming the model the main job trains keeps its recipe (it took the paper net's 20 epochs at batch 64).
    for (const args of [['--model', 'mnist-small'], ['--dataset', 'mnist', '--model', 'mnist-small']]) {
      expect(parseTrainArgs(args).options, args.join(' ')).toMatchObject({ dataset: 'mnist', model: 'mnist-small', epochs: 1, batchSize: 16, lr: 0.025, schedule: 'cosine', warmupEpochs: 0.05, augment: false, preprocess: 'standardize' });
    }
    const paper = parseTrainArgs(['--dataset', 'mnist']).options;
    expect(paper.model).toBe('mnist');
    expect(paper.trainLimit).toBeUndefined();
    expect(parseTrainArgs(['--dataset', 'cifar10']).options).toMatchObject({ model: 'cifar10', augment: true, preprocess: 'gcn-zca', lr: 0.02, batchSize: 128 });
    // The paper's nets train with linear class maps unless --class-maps relu asks for the paper's.
    for (const dataset of ['mnist', 'cifar10', 'cifar100', 'svhn']) {
      const o = parseTrainArgs(['--dataset', dataset]).options;
      expect(o.classMaps, dataset).toBe('linear');
      expect(modelConfig(o).layers.at(-1)).toMatchObject({ type: 'mlpconv', linearOut: true });
    }
    // Init: He with lr 0.02 and a warm-up on the paper's MNIST and CIFAR nets; SVHN keeps the paper's Gaussian and takes the authors' lr.
    expect(parseTrainArgs(['--dataset', 'mnist']).options).toMatchObject({ init: 'he', lr: 0.02, warmupEpochs: 0.2 });
    for (const dataset of ['cifar10', 'cifar100']) expect(parseTrainArgs(['--dataset', dataset]).options, dataset).toMatchObject({ init: 'he', lr: 0.02, warmupEpochs: 0.3 });
    expect(modelConfig(parseTrainArgs(['--dataset', 'svhn']).options).init).toBe('gaussian');
    // SVHN: the authors' settings (cuda-convnet NIN/svhn_params); the other nets train every layer at --lr.
    expect(parseTrainArgs(['--dataset', 'svhn']).options).toMatchObject({ lr: 0.1, warmupEpochs: 0, classLrMult: 0.1 });
    expect(parseTrainArgs(['--dataset', 'cifar10']).options.classLrMult).toBeUndefined();
    expect(parseTrainArgs(['--dataset', 'svhn', '--model', 'cifar10-small']).options.classLrMult).toBeUndefined(); // that model's recipe
    // An FC head trains its layer at 0.1× unless told (or unless its data set sets a rate: SVHN's
    // is its own); a config file's FC head too. GAP's class maps at the full rate.
    for (const head of ['fc', 'fc-dropout']) {
      expect(parseTrainArgs(['--head', head]).options.classLrMult, head).toBe(0.1);
      expect(parseTrainArgs(['--model', 'cifar10-small', '--head', head]).options.classLrMult, head).toBe(0.1);
      expect(parseTrainArgs(['--head', head, '--class-lr-mult', '1']).options.classLrMult, head).toBe(1);
    }
    expect(parseTrainArgs(['--head', 'gap']).options.classLrMult).toBeUndefined();
    // --split-seed draws a random split (or SVHN's quotas) instead of --seed; without one it has nothing to draw.
    expect(parseTrainArgs(['--val', '500', '--split-seed', '7']).options).toMatchObject({ seed: 1, splitSeed: 7 });
    expect(parseTrainArgs(['--val', '500']).options.splitSeed).toBeUndefined();
    expect(parseTrainArgs(['--dataset', 'svhn', '--val', 'paper', '--split-seed', '7']).options.splitSeed).toBe(7);
    expect(() => parseTrainArgs(['--split-seed', '7'])).toThrow(new UsageError("--split-seed draws a random validation split (--val N, or SVHN's --val paper); there is no validation split (--val 0): nothing to draw"));
    expect(() => parseTrainArgs(['--dataset', 'cifar10', '--val', 'paper', '--split-seed', '7'])).toThrow(new UsageError("--split-seed draws a random validation split (--val N, or SVHN's --val paper); --val paper takes the last images: nothing to draw"));
    expect(() => parseTrainArgs(['--val', '500', '--val-from', 'end', '--split-seed', '7'])).toThrow(/--val 500 takes the last images: nothing to draw/);
    expect(() => parseTrainArgs(['--val', '500', '--split-seed=-1'])).toThrow(new UsageError("--split-seed must be an integer in [0, 4294967295], got '-1'"));
    expect(parseTrainArgs(['--dataset', 'svhn', '--head', 'fc', '--class-lr-mult', '0.5']).options.classLrMult).toBe(0.5);
    // The authors' SVHN net (cuda-convnet NIN/svhn_def).
    expect(MODELS.svhn.layers.filter((l) => l.type === 'mlpconv').map((l) => [l.kernel, ...l.channels])).toEqual([[5, 128, 96, 64], [5, 320, 256, 128], [5, 384, 256, 10]]);
    expect(MODELS.svhn.layers.filter((l) => l.type !== 'mlpconv' && l.type !== 'dropout').map((l) => l.type)).toEqual(['maxpool', 'maxpool']);
    expect(plan(MODELS.svhn).reduce((s, l) => s + l.params, 0)).toBe(1_986_026);
    // CIFAR-100 without augmentation, as the paper's 35.68 %; CIFAR-10 with it (its 8.81 %).
    expect(parseTrainArgs(['--dataset', 'cifar100']).options.augment).toBe(false);
    expect(parseTrainArgs(['--dataset', 'cifar10']).options.augment).toBe(true);
    expect(() => parseTrainArgs(['--lr', '1e39'])).toThrow(new UsageError("--lr must be a number in [0, 1000], got '1e39'"));
    expect(parseTrainArgs(['--dataset', 'cifar10', '--class-lr-mult', '0.1']).options.classLrMult).toBe(0.1);
    expect(() => parseTrainArgs(['--class-lr-mult=-1'])).toThrow(new UsageError("--class-lr-mult must be a number in [0, 1000], got '-1'"));
    expect(modelConfig(parseTrainArgs(['--dataset', 'mnist', '--init', 'gaussian']).options).init).toBe('gaussian');
    const relu = parseTrainArgs(['--dataset', 'cifar10', '--class-maps', 'relu']).options;
    expect(modelConfig(relu).layers.at(-1)).toMatchObject({ type: 'mlpconv', linearOut: false });
    expect(() => parseTrainArgs(['--momentum', '1'])).toThrow(UsageError);
    // A model alone names its data set; a contradicting --dataset is still an error.
    expect(parseTrainArgs(['--model', 'cifar10-small']).options).toMatchObject({ dataset: 'cifar10', model: 'cifar10-small', preprocess: 'gcn-zca', augment: true, epochs: 2, batchSize: 32, lr: 0.05, schedule: 'cosine' });
    expect(parseTrainArgs(['--model', 'cifar10-small', '--epochs', '5']).options.epochs).toBe(5);
    expect(parseTrainArgs(['--model', 'cifar100']).options.dataset).toBe('cifar100');
    // SVHN as the paper: GCN + LCN, no augmentation, train + extra, its validation set.
    expect(parseTrainArgs(['--dataset', 'svhn', '--extra', '--val', 'paper']).options).toMatchObject({ model: 'svhn', preprocess: 'gcn-lcn', augment: false, extra: true, validation: 'paper' });
    // --train-limit within the train part: extra is not loaded, so the paper's set holds out 400 per class only (4,000 of 6,000).
    expect(parseTrainArgs(['--dataset', 'svhn', '--extra', '--val', 'paper', '--train-limit', '6000']).options.trainLimit).toBe(6000);
    expect(() => parseTrainArgs(['--model', 'cifar10-small', '--dataset', 'mnist'])).toThrow(/takes 32×32×3 images but mnist/);
    // Where the held-out images come from: the last 10,000 for --val paper (maxout's and NIN's), at random for --val N; recorded.
    expect(parseTrainArgs(['--dataset', 'cifar10', '--val', 'paper']).options.validationFrom).toBe('end');
    expect(parseTrainArgs(['--dataset', 'cifar10', '--val', 'paper', '--val-from', 'random']).options.validationFrom).toBe('random');
    expect(parseTrainArgs(['--val', '500']).options.validationFrom).toBe('random');
    expect(parseTrainArgs(['--val', '500', '--val-from', 'end']).options.validationFrom).toBe('end');
    expect(parseTrainArgs([]).options.validationFrom).toBeUndefined();
    expect(parseTrainArgs(['--dataset', 'svhn', '--val', 'paper']).options.validationFrom).toBeUndefined();
    expect(() => parseTrainArgs(['--val-from', 'end'])).toThrow(new UsageError('--val-from chooses where a split of N images comes from (--val N, or --val paper outside SVHN); there is no validation split (--val 0)'));
    expect(() => parseTrainArgs(['--dataset', 'svhn', '--val', 'paper', '--val-from', 'end'])).toThrow(/--val-from chooses .*; SVHN's --val paper takes quotas per class/);
    expect(() => parseTrainArgs(['--val', '500', '--val-from', 'last'])).toThrow(new UsageError("--val-from must be one of random, end, got 'last'"));
  });

  it('--resume continues with the checkpoint\'s settings; flags given override them; a foreign file is a usage error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    const ckpt = join(dir, 'checkpoint.safetensors');
    const first = parseTrainArgs(['--model', 'cifar10-small', '--lr', '0.07', '--schedule', 'step', '--lr-steps', '1', '--epochs', '3', '--batch', '24', '--no-aug', '--val', '500', '--seed', '9', '--class-maps', 'relu', '--stop-after', '1', '--out', dir]).options;
    // Only the header is read: a checkpoint's metadata without its tensors is enough here.
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify(first), config: JSON.stringify(modelConfig(first)), epoch: '1' });
    const resumed = parseTrainArgs(['--resume', ckpt]).options;
    expect(resumed).toEqual({ ...first, resume: ckpt, stopAfter: undefined, profile: false });
    const longer = parseTrainArgs(['--resume', ckpt, '--epochs', '5', '--lr', '0.01', '--aug', '--test-limit', '100']).options;
    expect(longer).toMatchObject({ model: 'cifar10-small', epochs: 5, lr: 0.01, stepEpochs: [1], batchSize: 24, augment: true, seed: 9, testLimit: 100 });
    // A run shortened on resume to less than its saved warm-up (a --warmup flag is bounded by --epochs already).
    const warm = join(dir, 'warm.safetensors');
    const warmFirst = { ...first, epochs: 5, warmupEpochs: 3 };
    writeSafetensors(warm, {}, { format: 'nin-webgpu/1', options: JSON.stringify(warmFirst), config: JSON.stringify(modelConfig(first)), epoch: '1' });
    expect(parseTrainArgs(['--resume', warm]).options).toMatchObject({ epochs: 5, warmupEpochs: 3 });
    expect(() => parseTrainArgs(['--resume', warm, '--epochs', '2'])).toThrow(new UsageError(`--resume ${warm}: the checkpoint's warm-up of 3 epochs is longer than the run's 2; give --warmup 2 or less`));
    expect(parseTrainArgs(['--resume', warm, '--epochs', '2', '--warmup', '1']).options).toMatchObject({ epochs: 2, warmupEpochs: 1 });
    // What fixes the run's network, preprocessing or data split stays: another value is a usage error, before any GPU work.
    // Another model is named as such, before its shape is held to the data ("takes 28×28×1 images but cifar10 images are 32×32×3").
    for (const other of ['cifar10', 'mnist-small']) {
      expect(() => parseTrainArgs(['--resume', ckpt, '--model', other])).toThrow(new UsageError(`--resume ${ckpt}: --model ${other} (the checkpoint holds cifar10-small): a resumed run keeps its network (start a new run to change it; --weights-from starts one from its weights)`));
    }
    const clashes: [string[], string][] = [
      [['--class-maps', 'linear'], "--class-maps linear (the checkpoint's are relu)"],
      [['--head', 'fc'], "--head fc (the checkpoint's is gap)"],
      [['--init', 'gaussian'], "--init gaussian (the checkpoint's weights were initialised he, and are trained on, not redrawn)"],
      [['--preprocess', 'none'], "--preprocess none (the checkpoint's statistics are for gcn-zca)"],
      [['--val', '1000'], "--val 1000 (the checkpoint's split held out 500: another split would validate on images the run trained on)"],
      [['--val-from', 'end'], "--val-from end (the checkpoint's split took images at random: another split would validate on images the run trained on)"],
      [['--train-limit', '5000'], "--train-limit 5000 (the checkpoint's was none: its training set and split)"],
      [['--seed', '2'], "--seed 2 (the checkpoint's validation split was drawn by seed 9: another seed would validate on images the run trained on)"],
      [['--split-seed', '2'], "--split-seed 2 (the checkpoint's validation split was drawn by seed 9: another seed would validate on images the run trained on)"],
    ];
    for (const [flags, clash] of clashes) {
      expect(() => parseTrainArgs(['--resume', ckpt, ...flags]), flags.join(' ')).toThrow(new UsageError(`--resume ${ckpt}: ${clash}: a resumed run keeps them (start a new run to change them)`));
    }
    // Without a split drawn by the seed, another seed is a run of its own (another batch order and
    // dropout masks), as a fork may be.
    const noVal = join(dir, 'no-val.safetensors');
    writeSafetensors(noVal, {}, { format: 'nin-webgpu/1', options: JSON.stringify({ ...first, validation: 0 }), config: JSON.stringify(modelConfig(first)), epoch: '1' });
    expect(parseTrainArgs(['--resume', noVal, '--seed', '2', '--out', join(dir, 'fork')]).options.seed).toBe(2);
    // --split-seed: the split stays while --seed changes (a fork with the split seed its run drew by),
    // and a run that drew its split by --split-seed keeps it across a resume with another --seed.
    expect(parseTrainArgs(['--resume', ckpt, '--split-seed', '9', '--seed', '2', '--out', join(dir, 'fork-split')]).options).toMatchObject({ seed: 2, splitSeed: 9 });
    const bySplitSeed = join(dir, 'split-seed.safetensors');
    writeSafetensors(bySplitSeed, {}, { format: 'nin-webgpu/1', options: JSON.stringify({ ...first, splitSeed: 7 }), config: JSON.stringify(modelConfig(first)), epoch: '1' });
    expect(parseTrainArgs(['--resume', bySplitSeed, '--seed', '3', '--out', join(dir, 'fork-3')]).options).toMatchObject({ seed: 3, splitSeed: 7 });
    expect(() => parseTrainArgs(['--resume', bySplitSeed, '--split-seed', '8'])).toThrow(/--split-seed 8 \(the checkpoint's validation split was drawn by seed 7: another seed would validate on images the run trained on\)/);
    // A checkpoint from before --val-from drew its --val paper split at random: its resume does too.
    const older = join(dir, 'older.safetensors');
    const { validationFrom: _, ...olderOptions } = parseTrainArgs(['--dataset', 'cifar10', '--val', 'paper', '--out', join(dir, 'older')]).options;
    writeSafetensors(older, {}, { format: 'nin-webgpu/1', options: JSON.stringify(olderOptions), config: JSON.stringify(modelConfig(olderOptions)), epoch: '1' });
    expect(parseTrainArgs(['--resume', older]).options).toMatchObject({ validation: 'paper', validationFrom: 'random' });
    expect(() => parseTrainArgs(['--resume', older, '--val-from', 'end'])).toThrow(/--val-from end \(the checkpoint's split took images at random: another split would validate on images the run trained on\)/);
    // The same values as the checkpoint's are no clash.
    expect(parseTrainArgs(['--resume', ckpt, '--class-maps', 'relu', '--preprocess', 'gcn-zca', '--val', '500', '--init', 'he', '--model', 'cifar10-small', '--seed', '9']).options).toMatchObject({ classMaps: 'relu', validation: 500 });
    writeFileSync(join(dir, 'plain.safetensors'), new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]));
    expect(() => parseTrainArgs(['--resume', join(dir, 'plain.safetensors')])).toThrow(/not a nin-webgpu checkpoint \(format 'missing', expected 'nin-webgpu\/1'\)/);
    writeSafetensors(join(dir, 'no-options.safetensors'), {}, { format: 'nin-webgpu/1' });
    expect(() => parseTrainArgs(['--resume', join(dir, 'no-options.safetensors')])).toThrow(/holds no training options and model config: not a nin checkpoint/);
    // A directory where the checkpoint goes, named or inside a run directory (a bare EISDIR, or "no checkpoint at x.safetensors/checkpoint.safetensors").
    mkdirSync(join(dir, 'folder.safetensors'));
    expect(() => parseTrainArgs(['--resume', join(dir, 'folder.safetensors')])).toThrow(new UsageError(`--resume: ${join(dir, 'folder.safetensors')} is a directory, not a checkpoint`));
    mkdirSync(join(dir, 'run-with-dir', 'checkpoint.safetensors'), { recursive: true });
    expect(() => parseTrainArgs(['--resume', join(dir, 'run-with-dir')])).toThrow(new UsageError(`--resume: ${join(dir, 'run-with-dir', 'checkpoint.safetensors')} is a directory, not a checkpoint`));
    writeFileSync(join(dir, 'short.safetensors'), 'abc');
    expect(() => parseTrainArgs(['--resume', join(dir, 'short.safetensors')])).toThrow(/--resume: .*short.safetensors: truncated/);
    // A checkpoint whose tensor data is cut off (a full disk, a partial copy): refused as damaged before any work, by --resume and --weights-from alike.
    const whole = join(dir, 'whole.safetensors');
    writeSafetensors(whole, { w: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) } }, { format: 'nin-webgpu/1', options: JSON.stringify(first), config: JSON.stringify(modelConfig(first)), epoch: '1' });
    const cutOff = join(dir, 'cut-off.safetensors');
    writeFileSync(cutOff, readFileSync(whole).subarray(0, statSync(whole).size - 4));
    const truncated = `${cutOff}: truncated: its header places 12 bytes of tensor data, the file holds 8`;
    expect(() => parseTrainArgs(['--resume', cutOff])).toThrow(new CheckpointDamaged(`--resume: ${truncated}`));
    expect(() => parseTrainArgs(['--model', 'cifar10-small', '--weights-from', cutOff, '--out', join(dir, 'from-cut')])).toThrow(new CheckpointDamaged(`--weights-from: ${truncated}`));
    // An --out the run cannot write in: a usage error, before the data is loaded.
    const aFile = join(dir, 'a-file');
    writeFileSync(aFile, '');
    expect(() => parseTrainArgs(['--model', 'cifar10-small', '--out', aFile])).toThrow(new UsageError(`--out ${aFile} is a file, not a directory`));
    expect(() => parseTrainArgs(['--model', 'cifar10-small', '--out', join(aFile, 'run')])).toThrow(new UsageError(`--out ${join(aFile, 'run')}: ${aFile} is a file, not a directory`));
    // Through a symbolic link to nothing (it passed, and the run failed after loading its data with a raw ENOENT).
    const broken = join(dir, 'broken');
    symlinkSync(join(dir, 'gone'), broken);
    expect(() => parseTrainArgs(['--model', 'cifar10-small', '--out', join(broken, 'run')])).toThrow(new UsageError(`--out ${join(broken, 'run')}: ${broken} is a symbolic link to ${join(dir, 'gone')}, which does not exist`));
    // A damaged header: refused as damaged (exit 1, as eval refuses one), naming the file and the field, before the data is loaded.
    const damaged = (name: string, meta: Record<string, string>) => {
      const path = join(dir, name);
      writeSafetensors(path, {}, { format: 'nin-webgpu/1', options: JSON.stringify(first), config: JSON.stringify(modelConfig(first)), epoch: '1', ...meta });
      return () => parseTrainArgs(['--resume', path]);
    };
    const config = modelConfig(first);
    expect(damaged('height.safetensors', { config: JSON.stringify({ ...config, input: { ...config.input, heiXht: 32 } }) })).toThrow(
      new CheckpointDamaged(`--resume: ${join(dir, 'height.safetensors')} (config): input has unknown field 'heiXht' (known: height, width, channels)`),
    );
    expect(damaged('epoch.safetensors', { epoch: 'abc' })).toThrow(new CheckpointDamaged(`--resume: ${join(dir, 'epoch.safetensors')}: metadata "epoch" must be a whole number ≥ 0, found "abc"`));
    // A seed saved before the flag's 2^32 − 1 cap still resumes (the RNGs fold it to 32 bits, as then).
    const bigSeed = { ...first, seed: Number('99999999999999999999') };
    expect(damaged('big-seed.safetensors', { options: JSON.stringify(bigSeed) })().options.seed).toBe(1e20);
    const { seed: _seed, ...noSeed } = first;
    expect(damaged('seed.safetensors', { options: JSON.stringify({ ...noSeed, lr: 'x' }) })).toThrow(
      new CheckpointDamaged(`--resume ${join(dir, 'seed.safetensors')}: its saved training options are damaged: lr must be a number in [0, 1000], got "x"; seed must be an integer ≥ 0, got undefined`),
    );
  });

  it("a resume holds each saved option to its flag's rule, naming the key; a flag given now replaces a damaged value", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    const o = parseTrainArgs(['--model', 'cifar10-small', '--schedule', 'plateau', '--epochs', '3', '--val', '500', '--out', dir]).options;
    const ckpt = join(dir, 'checkpoint.safetensors');
    // Only the header is read: the options as saved, edited, with the network they built.
    const resume = (edits: Record<string, unknown>, ...flags: string[]) => {
      writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify({ ...o, ...edits }), config: JSON.stringify(modelConfig(o)), epoch: '1' });
      return () => parseTrainArgs(['--resume', ckpt, ...flags]);
    };
    const refused: [Record<string, unknown>, string][] = [
      [{ dataset: 'imagenet' }, 'dataset must be one of mnist, cifar10, cifar100, svhn, folder, got "imagenet"'],
      [{ head: 'banana' }, 'head must be one of gap, fc, fc-dropout, got "banana"'],
      [{ init: 'zeros' }, 'init must be one of gaussian, he, got "zeros"'],
      [{ classMaps: null }, 'classMaps must be one of relu, linear, got null'],
      [{ dropout: 0.995 }, 'dropout must be a number in [0, 0.99], got 0.995'],
      [{ patience: 0 }, 'patience must be an integer ≥ 1, got 0'],
      [{ lrDrops: 1.5 }, 'lrDrops must be an integer ≥ 0, got 1.5'],
      [{ plateauOn: 'test' }, 'plateauOn must be one of train, val, got "test"'],
      [{ extra: 'yes' }, 'extra must be true or false, got "yes"'],
      [{ validation: -500 }, "validation must be a number of images, 'paper' or 'folder', got -500"],
      [{ stepEpochs: [1, 'x'] }, 'stepEpochs must be a list, each a number ≥ 0, got [1,"x"]'],
      [{ momentum: 1, checkpointMinutes: -1 }, 'momentum must be a number in [0, 0.999999], got 1; checkpointMinutes must be a number ≥ 0, got -1'],
    ];
    for (const [edits, problem] of refused) {
      expect(resume(edits), JSON.stringify(edits)).toThrow(new CheckpointDamaged(`--resume ${ckpt}: its saved training options are damaged: ${problem}`));
    }
    // Fields read before the rules: the model's name, the run directory, a network of one's own.
    expect(resume({ model: 'nope' })).toThrow(new CheckpointDamaged(`--resume ${ckpt}: its saved training options are damaged: model must be one of ${Object.keys(MODELS).join(', ')}, got "nope"`));
    expect(resume({ model: 7 })).toThrow(new CheckpointDamaged(`--resume: ${ckpt}: metadata "options": model must be a string, got 7`));
    expect(resume({ outDir: 7 })).toThrow(new CheckpointDamaged(`--resume: ${ckpt}: metadata "options": outDir must be a string, got 7`));
    expect(resume({ weightsFrom: 7 })).toThrow(new CheckpointDamaged(`--resume: ${ckpt}: metadata "options": weightsFrom must be a string, got 7`));
    // An image folder's run names its folder, classes, image count and list (eval, visualize and a run started from it read them too).
    expect(resume({ dataset: 'folder' })).toThrow(new CheckpointDamaged(`--resume: ${ckpt}: metadata "options": imageFolder must be { dir, classNames (two or more), trainImages, trainList } and, with --val folder, valImages and valList (and where present, trainClasses and valClasses: one { images, list } per class), got undefined`));
    expect(resume({ dataset: 'folder', imageFolder: { dir, classNames: ['a', 'b'], trainImages: 5 } })).toThrow(
      new CheckpointDamaged(`--resume: ${ckpt}: metadata "options": imageFolder must be { dir, classNames (two or more), trainImages, trainList } and, with --val folder, valImages and valList (and where present, trainClasses and valClasses: one { images, list } per class), got {"dir":${JSON.stringify(dir)},"classNames":["a","b"],"trainImages":5}`),
    );
    const damagedVal = (imageFolder: object) => resume({ dataset: 'folder', imageFolder: { dir, classNames: ['a', 'b'], trainImages: 5, trainList: 'x', ...imageFolder } });
    expect(damagedVal({ valImages: 3, valList: 5 })).toThrow(/imageFolder must be .* with --val folder, valImages and valList .*, got .*"valList":5/);
    expect(damagedVal({ valImages: 0, valList: 'y' })).toThrow(/imageFolder must be .*"valImages":0/);
    expect(damagedVal({ valList: 'y' })).toThrow(/imageFolder must be .*"valList":"y"/); // one without the other
    expect(damagedVal({ trainClasses: [{ images: 3, list: 'z' }] })).toThrow(/imageFolder must be .*"trainClasses":\[\{"images":3,"list":"z"\}\]/); // one for two classes
    expect(damagedVal({ valImages: 3, valList: 'y', valClasses: [{ images: 3, list: 'z' }, { images: -1, list: 'w' }] })).toThrow(/imageFolder must be .*"images":-1/);
    expect(resume({ config: { name: 'x' } })).toThrow(`--resume: ${ckpt} (options.config)`);
    // A flag replaces the saved value, which is then never read (the checkpoint saves the flag's);
    // a flag for another option does not.
    expect(resume({ patience: 0, momentum: 1, augment: 'maybe' }, '--patience', '4', '--momentum', '0.8', '--no-aug')().options).toMatchObject({ patience: 4, momentum: 0.8, augment: false });
    expect(resume({ patience: 0 }, '--lr-drops', '3')).toThrow('patience must be an integer ≥ 1, got 0');
    // --schedule replaces the saved step epochs and plateau settings: damaged ones stop nothing then.
    expect(resume({ stepEpochs: [1, 'x'], patience: 0 }, '--schedule', 'cosine')().options).toMatchObject({ schedule: 'cosine', stepEpochs: [] });
    // A saved class-layer multiplier goes on, unless a flag replaces it.
    expect(resume({ classLrMult: 0.1 })().options.classLrMult).toBe(0.1);
    expect(resume({ classLrMult: 0.1 }, '--class-lr-mult', '1')().options.classLrMult).toBe(1);
    // An FC run saved before its head's default rate (no classLrMult) resumes at the rate it ran at.
    const fc = parseTrainArgs(['--model', 'cifar10-small', '--head', 'fc', '--epochs', '3', '--out', join(dir, 'fc')]).options;
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify({ ...fc, classLrMult: undefined }), config: JSON.stringify(modelConfig(fc)), epoch: '1' });
    expect(parseTrainArgs(['--resume', ckpt]).options.classLrMult).toBeUndefined();
    // Saved lr steps past a run a resume shortened stand: the flags' bound by the run's epochs is not the saved values'.
    expect(resume({ schedule: 'step', stepEpochs: [2, 5] })().options).toMatchObject({ epochs: 3, stepEpochs: [2, 5] });
    // By default at half and three quarters of the run: one drop where they round to one epoch.
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '8']).options.stepEpochs).toEqual([4, 6]);
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '3']).options.stepEpochs).toEqual([2]);
    // No drop at the run's end (it would change no step's rate); a 1-epoch run drops within its epoch.
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '2']).options.stepEpochs).toEqual([1]);
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '1']).options.stepEpochs).toEqual([0.5, 0.75]);
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '100']).options.stepEpochs).toEqual([50, 75]);
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '10']).options.stepEpochs).toEqual([5, 8]); // 7.5 rounds up
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '100', '--lr-steps', '50, 75']).options.stepEpochs).toEqual([50, 75]);
    expect(() => parseTrainArgs(['--schedule', 'step', '--epochs', '3', '--lr-steps', '1,5'])).toThrow(new UsageError("--lr-steps must be a number in [0, 3], got '5'"));
    // Drops the default steps avoid, given: at 0 (a smaller --lr), at the run's end (after its last
    // step), an epoch twice (gamma² at once); 1.5 and 2.5 within a 3-epoch run are drops.
    expect(parseTrainArgs(['--schedule', 'step', '--epochs', '3', '--lr-steps', '1.5,2.5']).options.stepEpochs).toEqual([1.5, 2.5]);
    expect(() => parseTrainArgs(['--schedule', 'step', '--epochs', '4', '--lr-steps', '2,4'])).toThrow(new UsageError("--lr-steps 2,4: a drop at epoch 4 comes after the run's last step (--epochs 4): it changes nothing"));
    expect(() => parseTrainArgs(['--schedule', 'step', '--epochs', '4', '--lr-steps', '0'])).toThrow(new UsageError('--lr-steps 0: a drop at epoch 0 only scales --lr: give a smaller --lr instead'));
    for (const steps of ['2,2', '3,1']) expect(() => parseTrainArgs(['--schedule', 'step', '--epochs', '4', '--lr-steps', steps]), steps).toThrow(new UsageError(`--lr-steps ${steps}: give the epochs in increasing order, each once (an epoch named twice drops the rate by gamma² there)`));
    // A schedule flag of another schedule names the schedule in force where none was given.
    expect(() => parseTrainArgs(['--lr-steps', '1'])).toThrow(new UsageError('--lr-steps only applies to --schedule step (the default schedule is cosine)'));
    expect(() => parseTrainArgs(['--schedule', 'cosine', '--patience', '2'])).toThrow(new UsageError('--patience only applies to --schedule plateau'));
    // A flag given twice: the last counts, as in most tools (a script's defaults, then its overrides); lr-find's own flags alike.
    expect(parseTrainArgs(['--epochs', '3', '--batch', '8', '--epochs=5']).options).toMatchObject({ epochs: 5, batchSize: 8 });
    expect(parseRangeTestArgs(['--steps', '10', '--steps=20']).test.steps).toBe(20);
    // --keep-every past the run's last epoch would keep nothing.
    expect(() => parseTrainArgs(['--epochs', '1', '--keep-every', '5'])).toThrow(new UsageError('--keep-every 5 keeps the checkpoints of epochs 5, 10, …; the run ends at epoch 1 (--epochs 1): it would keep none'));
    expect(parseTrainArgs(['--epochs', '5', '--keep-every', '5']).options.keepEvery).toBe(5);
    expect(() => parseTrainArgs(['--seed', ''])).toThrow(new UsageError('--seed needs a value, got an empty one'));
    expect(() => parseTrainArgs(['--seed', ' 7'])).toThrow(new UsageError("--seed must be an integer in [0, 4294967295], got ' 7'"));
    // The command line: exit 1 (a damaged checkpoint, as eval finds one), the message, before any GPU work.
    resume({ head: 'banana' });
    const r = await nin('train', '--resume', ckpt);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`--resume ${ckpt}: its saved training options are damaged: head must be one of gap, fc, fc-dropout, got "banana"`);
    expect(r.stderr).not.toMatch(/No WebGPU adapter found/); // NO_GPU
    expect(r.stderr).not.toMatch(/maxDynamic/);
    // The flags are well formed and name a checkpoint that cannot be resumed: the message alone,
    // not followed by a pointer to the usage. (Errors about the flags themselves point to it: the cases above.)
    expect(r.stderr).not.toMatch(/--help shows the usage/);
    expect([r.code, r.stderr.split('\n').length]).toEqual([1, 2]); // one line and its newline
    const usage = (f: () => unknown) => { try { f(); } catch (e) { return (e as UsageError).showUsage; } return 'no error'; };
    expect(resume({ head: 'banana' })).toThrow(CheckpointDamaged); // (no usage to point to: exit 1)
    expect(usage(() => parseTrainArgs(['--lr', 'fast']))).toBe(true);
    // A file that is no checkpoint at all: the argument names the wrong kind of file, and the usage says what it takes.
    const garbage = join(mkdtempSync(join(tmpdir(), 'nin-cli-')), 'garbage.safetensors');
    writeFileSync(garbage, 'garbage');
    expect(usage(() => parseTrainArgs(['--resume', garbage]))).toBe(true);
  });

  it('--schedule plateau: its flags, their defaults, what they need; a run it ended is not resumed without more drops', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nin-cli-'));
    expect(parseTrainArgs(['--model', 'cifar10-small', '--schedule', 'plateau', '--out', dir]).options).toMatchObject({ schedule: 'plateau', patience: 3, lrDrops: 2, plateauOn: 'train', gamma: 0.1 });
    const o = parseTrainArgs(['--model', 'cifar10-small', '--schedule', 'plateau', '--patience', '5', '--lr-drops', '3', '--plateau-on', 'val', '--val', '500', '--epochs', '40', '--out', dir]).options;
    expect(o).toMatchObject({ patience: 5, lrDrops: 3, plateauOn: 'val' });
    expect(parseTrainArgs(['--model', 'cifar10-small', '--out', dir]).options).not.toHaveProperty('patience');
    expect(() => parseTrainArgs(['--schedule', 'cosine', '--patience', '2'])).toThrow('--patience only applies to --schedule plateau');
    expect(() => parseTrainArgs(['--lr-drops', '1'])).toThrow('--lr-drops only applies to --schedule plateau');
    expect(() => parseTrainArgs(['--schedule', 'plateau', '--plateau-on', 'val'])).toThrow("--plateau-on val watches the validation error: give a validation split (--val N, --val paper, or an image folder's --val folder)");
    expect(() => parseTrainArgs(['--schedule', 'plateau', '--plateau-on', 'test'])).toThrow("--plateau-on must be one of train, val, got 'test'");
    expect(() => parseTrainArgs(['--schedule', 'plateau', '--patience', '0'])).toThrow('--patience must be an integer ≥ 1');
    const ckpt = join(dir, 'checkpoint.safetensors');
    const header = (plateau: object | string) =>
      writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify({ ...o, outDir: dir }), config: JSON.stringify(modelConfig(o)), epoch: '12', plateau: typeof plateau === 'string' ? plateau : JSON.stringify(plateau) });
    header({ on: 'val', drops: 3, best: 0.2, sinceBest: 5, finished: true });
    expect(() => parseTrainArgs(['--resume', ckpt])).toThrow(`${ckpt}: the plateau schedule ended this run at epoch 12 (no new lowest validation error for 5 epochs after its last lr drop): nothing to train`);
    expect(parseTrainArgs(['--resume', ckpt, '--lr-drops', '4']).options).toMatchObject({ lrDrops: 4, patience: 5, plateauOn: 'val' });
    expect(parseTrainArgs(['--resume', ckpt, '--schedule', 'constant']).options.schedule).toBe('constant');
    header({ on: 'val', drops: 1, best: 0.2, sinceBest: 1, finished: false });
    expect(parseTrainArgs(['--resume', ckpt]).options).toMatchObject({ schedule: 'plateau', lrDrops: 3 });
    header('{"drops": "two"}');
    expect(() => parseTrainArgs(['--resume', ckpt])).toThrow(`--resume: ${ckpt}: its plateau schedule state is malformed`);
  });
});

describe("networks of one's own (--config)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'nin-config-'));
  const tiny = {
    name: 'mnist-tiny',
    input: { height: 28, width: 28, channels: 1 },
    classes: 10,
    layers: [
      { type: 'mlpconv', kernel: 5, channels: [16, 16, 16] },
      { type: 'maxpool', kernel: 3, stride: 2 },
      { type: 'dropout', p: 0.2 },
      { type: 'mlpconv', kernel: 3, channels: [32, 32, 10], linearOut: true },
    ],
  };
  const file = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };

  it('reads a config, filling head, init and initStd; a built-in config round-trips through JSON', () => {
    expect(parseModelConfig(tiny, 'tiny.json')).toEqual({ ...tiny, head: 'gap', init: 'he', initStd: 0.05 });
    for (const [name, config] of Object.entries(MODELS)) expect(parseModelConfig(JSON.parse(JSON.stringify(config)), name), name).toEqual(config);
    // The edges of the ranges: 256 layers, dropout 0 (the paper's Figure 3: off), initStd 10.
    const most = [...Array.from({ length: 255 }, () => ({ type: 'dropout', p: 0 })), tiny.layers[3]];
    expect(parseModelConfig({ ...tiny, layers: most, init: 'gaussian', initStd: 10 }, 'tiny.json')).toMatchObject({ layers: most, initStd: 10 });
  });

  it.each([
    [{ ...tiny, layer: [] }, "tiny.json: the config has unknown field 'layer' (known: name, input, classes, layers, head, init, initStd)"],
    [{ ...tiny, name: '../up' }, 'tiny.json: name must be a name of up to 64 letters, digits, ".", "_" or "-" (it names run directories), got "../up"'],
    [{ ...tiny, input: { height: 28, width: 28 } }, 'tiny.json: input.channels must be an integer in [1, 65536], and is missing'],
    // Values shown as written, or said to be what they are: 1e400 parses to Infinity (JSON shows null), a layer not an object
    // (it said "layers[1].type … got undefined"), a value too deep for JSON.stringify (it lost the file's name), a long one cut.
    [{ ...tiny, classes: Infinity }, "tiny.json: classes must be an integer in [2, 65536], got Infinity (a number past float64's range)"],
    [{ ...tiny, layers: [tiny.layers[0], 'mlpconv', tiny.layers[3]] }, 'tiny.json: layers[1] must be an object, { "type": … }, got "mlpconv"'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], channels: Array.from({ length: 100_000 }).reduce((inner) => [inner], []) }, tiny.layers[3]] }, 'tiny.json: layers[0].channels must be three widths, [K×K conv, 1×1, 1×1], got a value nested too deeply to show'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], channels: Array.from({ length: 40 }, (_, k) => k) }, tiny.layers[3]] }, 'tiny.json: layers[0].channels must be three widths, [K×K conv, 1×1, 1×1], got [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,…'],
    // A net of 1000 layers passed every check and crashed Dawn on lavapipe.
    [{ ...tiny, layers: [...Array.from({ length: 256 }, () => ({ type: 'dropout', p: 0.1 })), tiny.layers[3]] }, 'tiny.json: layers must be at most 256, got 257'],
    [{ ...tiny, classes: 1 }, 'tiny.json: classes must be an integer in [2, 65536], got 1'],
    [{ ...tiny, layers: [] }, 'tiny.json: layers must be a non-empty array, got []'],
    [{ ...tiny, layers: [{ type: 'conv', kernel: 3 }] }, 'tiny.json: layers[0].type must be one of mlpconv, maxpool, avgpool, dropout, got "conv"'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], kernel: 4 }, tiny.layers[3]] }, 'tiny.json: layers[0].kernel must be odd (the default padding, (kernel − 1)/2, keeps the input size), or its padding given, got 4'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], stride: 0 }, tiny.layers[3]] }, 'tiny.json: layers[0].stride must be an integer in [1, 63], got 0'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], padding: -1 }, tiny.layers[3]] }, 'tiny.json: layers[0].padding must be an integer in [0, 63], got -1'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], kernel: 31, padding: 0 }, tiny.layers[3]] }, 'tiny.json: model mnist-tiny: layer 0 mlpconv 31×31 with padding 0 does not fit its 28×28 input'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], channels: [16, 16] }, tiny.layers[3]] }, 'tiny.json: layers[0].channels must be three widths, [K×K conv, 1×1, 1×1], got [16,16]'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], channels: [16, 0, 16] }, tiny.layers[3]] }, 'tiny.json: layers[0].channels[1] must be an integer in [1, 65536], got 0'],
    [{ ...tiny, layers: [tiny.layers[0], { type: 'dropout', p: 1 }, tiny.layers[3]] }, 'tiny.json: layers[1].p must be a number in [0, 1), got 1'],
    [{ ...tiny, layers: [tiny.layers[0], { type: 'maxpool', kernel: 3, stride: 0 }, tiny.layers[3]] }, 'tiny.json: layers[1].stride must be an integer in [1, 63], got 0'],
    [{ ...tiny, layers: [tiny.layers[0], { type: 'maxpool', kernel: 3, stride: 2, pad: 1 }, tiny.layers[3]] }, "tiny.json: layers[1] has unknown field 'pad' (known: type, kernel, stride)"],
    [{ ...tiny, layers: [tiny.layers[0], { type: 'maxpool', kernel: 3, stride: 4 }, tiny.layers[3]] }, 'tiny.json: model mnist-tiny: layer 1 maxpool 3/4 on a 28×28 input leaves the last window outside the image'],
    [{ ...tiny, layers: [tiny.layers[3], tiny.layers[1]] }, 'tiny.json: model mnist-tiny: the last layer must be an mlpconv'],
    [{ ...tiny, layers: [tiny.layers[0]] }, 'tiny.json: model mnist-tiny: with a GAP head the last mlpconv must emit one map per class (10), not 16'],
    [{ ...tiny, head: 'svm' }, 'tiny.json: head must be one of gap, fc, fc-dropout, got "svm"'],
    [{ ...tiny, initStd: -1 }, 'tiny.json: initStd must be a number in (0, 10], got -1'],
    [{ ...tiny, initStd: 1e39 }, 'tiny.json: initStd must be a number in (0, 10], got 1e+39'], // Infinity in float32
    [{ ...tiny, initStd: 0 }, 'tiny.json: initStd must be a number in (0, 10], got 0'],
    [{ ...tiny, input: { height: 0, width: 28, channels: 1 } }, 'tiny.json: input.height must be an integer in [1, 65536], got 0'],
    [{ ...tiny, layers: [{ ...tiny.layers[0], kernel: 64, padding: 0 }, tiny.layers[3]] }, 'tiny.json: layers[0].kernel must be an integer in [1, 63], got 64'],
    [{ ...tiny, layers: [tiny.layers[0], { ...tiny.layers[3], linearOut: 'yes' }] }, 'tiny.json: layers[1].linearOut must be true or false, got "yes"'],
    [{ ...tiny, layer: [], head2: 'gap' }, "tiny.json: the config has unknown fields 'layer', 'head2' (known: name, input, classes, layers, head, init, initStd)"],
    // Shown whole up to 60 characters: a 59-letter name is 61 with its quotes, cut to 57 and '…'.
    [{ ...tiny, name: `!${'a'.repeat(57)}` }, `tiny.json: name must be a name of up to 64 letters, digits, ".", "_" or "-" (it names run directories), got "!${'a'.repeat(57)}"`],
    [{ ...tiny, name: `!${'a'.repeat(58)}` }, `tiny.json: name must be a name of up to 64 letters, digits, ".", "_" or "-" (it names run directories), got "!${'a'.repeat(55)}…`],
  ])('%# an error naming the file and the field', (config, message) => {
    expect(() => parseModelConfig(config, 'tiny.json')).toThrow(new RangeError(message));
  });

  it('nin train --config: its data set by input shape unless --dataset; the file\'s init and class maps unless flags; usage errors before any GPU work', async () => {
    const path = file('tiny.json', tiny);
    const o = parseTrainArgs(['--config', path, '--out', join(dir, 'run')]).options;
    expect(o).toMatchObject({ dataset: 'mnist', model: 'mnist-tiny', config: parseModelConfig(tiny, path), lr: 0.02, batchSize: 64, preprocess: 'standardize' });
    expect(o.init).toBeUndefined();
    expect(o.classMaps).toBeUndefined();
    expect(modelConfig(o)).toEqual(parseModelConfig(tiny, path));
    expect(o.classLrMult).toBeUndefined();
    expect(parseTrainArgs(['--config', file('tiny-fc.json', { ...tiny, name: 'tiny-fc', head: 'fc' })]).options.classLrMult).toBe(0.1);
    expect(parseTrainArgs(['--config', file('tiny-fc.json', { ...tiny, name: 'tiny-fc', head: 'fc' }), '--head', 'gap']).options.classLrMult).toBeUndefined();
    expect(modelConfig(parseTrainArgs(['--config', path, '--class-maps', 'relu', '--init', 'gaussian', '--dropout', '0.1']).options)).toMatchObject({
      init: 'gaussian',
      layers: [{}, {}, { type: 'dropout', p: 0.1 }, { linearOut: false }],
    });
    const cifar = { ...tiny, name: 'c-tiny', input: { height: 32, width: 32, channels: 3 } };
    expect(parseTrainArgs(['--config', file('c.json', cifar)]).options).toMatchObject({ dataset: 'cifar10', preprocess: 'gcn-zca', augment: true });
    expect(parseTrainArgs(['--config', file('c.json', cifar), '--dataset', 'svhn']).options).toMatchObject({ dataset: 'svhn', preprocess: 'gcn-lcn' });
    const wide = { ...cifar, name: 'c100', classes: 100, layers: [cifar.layers[0], { ...cifar.layers[3], channels: [32, 32, 100] }] };
    expect(parseTrainArgs(['--config', file('c100.json', wide)]).options.dataset).toBe('cifar100');
    const refused: [string[], RegExp][] = [
      [['--config', path, '--model', 'mnist-small'], /--config and --model both name the network: give one/],
      [['--config', path, '--dataset', 'cifar10'], /model 'mnist-tiny' takes 28×28×1 images but cifar10 images are 32×32×3/],
      // No data set has its images: said so, not "but cifar10 images are 32×32×3" (the data set guessed for it).
      [['--config', file('two-channel.json', { ...tiny, name: 'two-channel', input: { height: 28, width: 28, channels: 2 } })], /--config: model 'two-channel' takes 28×28×2 images, and no data set has those: mnist 28×28×1, cifar10 32×32×3, cifar100 32×32×3, svhn 32×32×3 \(images of your own: --dataset folder --data-dir DIR\)/],
      [['--config', join(dir, 'none.json')], /--config: no file at '.*none.json'/],
      [['--config', file('c7.json', { ...cifar, name: 'c7', classes: 7, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 7] }] })], /^model 'c7' has 7 classes but cifar10 has 10 \(images of your own: --dataset folder --data-dir DIR\)$/],
      [['--config', file('c7.json', { ...cifar, name: 'c7', classes: 7, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 7] }] }), '--dataset', 'svhn'], /^model 'c7' has 7 classes but svhn has 10$/],
      [['--config', file('broken.json', '{"name": ')], /--config: .*broken.json is not valid JSON/],
      [['--config', file('builtin.json', { ...tiny, name: 'mnist-small' })], /names its network 'mnist-small', a built-in model's name: give it another/],
      [['--config', file('odd.json', { ...tiny, layers: [{ ...tiny.layers[0], kernel: 2 }, tiny.layers[3]] })], /--config: .*odd.json: layers\[0\].kernel must be odd/],
      // A key given twice: JSON.parse kept the last without a word.
      [['--config', file('twice.json', JSON.stringify(tiny).replace('"kernel":5,', '"kernel":5,"kernel":3,'))], /--config: .*twice.json has the key \["layers"\]\[…\]\["kernel"\] twice in one object: which one counts would be a guess; give it once$/],
    ];
    // An editor's byte-order mark is skipped (JSON.parse named it as an invisible unexpected token).
    expect(parseTrainArgs(['--config', file('bom.json', '\uFEFF' + JSON.stringify(tiny)), '--out', join(dir, 'run')]).options.config).toEqual(parseModelConfig(tiny, 'tiny.json'));
    for (const [args, message] of refused) expect(() => parseTrainArgs(args), args.join(' ')).toThrow(message);
    const r = await nin('train', '--config', join(dir, 'odd.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/layers\[0\].kernel must be odd/);
    expect(r.stderr).not.toMatch(/No WebGPU adapter found/); // NO_GPU
    expect(r.stderr).not.toMatch(/maxDynamic/);
  });

  it("the README's example configs are valid ones: a two-block MNIST net, and ImageNet's NIN with its shapes and parameter count", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const examples = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => parseModelConfig(JSON.parse(m[1]), 'README.md'));
    expect(examples.map((c) => c.name)).toEqual(['mnist-two-blocks', 'nin-imagenet']);
    // The authors' Caffe ImageNet model: 224 → 54 (11×11, stride 4) → 27 → 13 → 6, 1000 maps averaged.
    const summary = plan(examples[1]);
    expect(summary.slice(0, 8).map((l) => [l.name, l.output.join('×')])).toEqual([
      ['mlpconv11x11 s4 p0 96-96-96', '54×54×96'],
      ['maxpool 3/2', '27×27×96'],
      ['mlpconv5x5 256-256-256', '27×27×256'],
      ['maxpool 3/2', '13×13×256'],
      ['mlpconv3x3 384-384-384', '13×13×384'],
      ['maxpool 3/2', '6×6×384'],
      ['dropout 0.5', '6×6×384'],
      ['mlpconv3x3 1024-1024-1000 linear out', '6×6×1000'],
    ]);
    // 11·11·3·96 + 96 + 2·(96² + 96) + 5·5·96·256 + 256 + 2·(256² + 256) + 3·3·256·384 + 384
    // + 2·(384² + 384) + 3·3·384·1024 + 1024 + 1024² + 1024 + 1024·1000 + 1000
    expect(parameterSpecs(examples[1]).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)).toBe(7_595_176);
    // The first block's FLOPs at its 54×54 output: 2 · 54² · (11²·3·96 + 96² + 96²).
    expect(summary[0].flops).toBe(2 * 54 * 54 * (121 * 3 * 96 + 96 * 96 * 2));
  });

  it('a resumed --config run keeps its data set and network; flags that make the layers not fit are usage errors', () => {
    const svhnNet = parseModelConfig({ ...tiny, name: 'svhn-tiny', input: { height: 32, width: 32, channels: 3 } }, 'svhn-tiny');
    const o = parseTrainArgs(['--config', file('svhn-tiny.json', svhnNet), '--dataset', 'svhn', '--out', join(dir, 'svhn-run')]).options;
    const ckpt = join(dir, 'svhn-run.safetensors');
    writeSafetensors(ckpt, {}, { format: 'nin-webgpu/1', options: JSON.stringify(o), config: JSON.stringify(modelConfig(o)), epoch: '1' });
    // Its shape alone would say CIFAR-10: the checkpoint says SVHN.
    expect(parseTrainArgs(['--resume', ckpt, '--epochs', '50']).options).toMatchObject({ dataset: 'svhn', model: 'svhn-tiny', config: svhnNet, epochs: 50 });
    expect(() => parseTrainArgs(['--resume', ckpt, '--model', 'svhn'])).toThrow('--model svhn (the checkpoint holds svhn-tiny)');
    expect(() => parseTrainArgs(['--resume', ckpt, '--config', file('tiny.json', tiny)])).toThrow(`--config: a resumed run keeps its network (${ckpt} holds its config)`);
    // A config made for an FC head, with --head gap: its 64 maps are not one per class.
    const fc = file('fc.json', { ...tiny, name: 'fc-net', head: 'fc', layers: [tiny.layers[0], { ...tiny.layers[3], channels: [32, 32, 64] }] });
    expect(parseTrainArgs(['--config', fc]).options.config!.head).toBe('fc');
    expect(() => parseTrainArgs(['--config', fc, '--head', 'gap'])).toThrow(new UsageError('model fc-net: with a GAP head the last mlpconv must emit one map per class (10), not 64 (--head gap)'));
    // Widths, kernels and names past any sensible size are typos.
    expect(() => parseModelConfig({ ...tiny, layers: [{ ...tiny.layers[0], channels: [1e9, 8, 8] }, tiny.layers[3]] }, 'big.json')).toThrow('big.json: layers[0].channels[0] must be an integer in [1, 65536], got 1000000000');
    expect(() => parseModelConfig({ ...tiny, name: 'n'.repeat(65) }, 'long.json')).toThrow(/long.json: name must be a name of up to 64 letters/);
    // Names every JS object has are no built-in model's.
    expect(parseTrainArgs(['--config', file('ctor.json', { ...tiny, name: 'constructor' })]).options.model).toBe('constructor');
    expect(() => parseTrainArgs(['--model', 'constructor'])).toThrow(/--model must be one of/);
  });

  it('nin models --config summarises a config file', async () => {
    const r = await nin('models', '--config', file('tiny.json', tiny));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^mnist-tiny: 28×28×1 → 10 classes, gap head, he init \(mnist unless --dataset says otherwise\)\n/);
    expect(r.stdout).toMatch(/mlpconv3x3 32-32-10 linear out\s+14×14×10\s+6,026/);
    expect(r.stdout).toMatch(/total\s+6,986/);
    // A config no data set has images for is told so (it was summarised as cifar10's).
    const rgb28 = await nin('models', '--config', file('rgb28.json', { ...tiny, name: 'rgb28', input: { height: 28, width: 28, channels: 3 } }));
    expect(rgb28.code, rgb28.stderr).toBe(0);
    expect(rgb28.stdout).toMatch(/^rgb28: 28×28×3 → 10 classes, gap head, he init \(no data set has 28×28×3 images: mnist 28×28×1, cifar10 32×32×3, cifar100 32×32×3, svhn 32×32×3; images of your own: --dataset folder --data-dir DIR\)\n/);
    // Nor one with a data set's images in other classes, which nin train refuses (it was summarised as cifar10's).
    const seven = await nin('models', '--config', file('c7.json', { ...tiny, name: 'c7', input: { height: 32, width: 32, channels: 3 }, classes: 7, layers: [{ type: 'mlpconv', kernel: 3, channels: [8, 8, 7] }] }));
    expect(seven.code, seven.stderr).toBe(0);
    expect(seven.stdout).toMatch(/^c7: 32×32×3 → 7 classes, gap head, he init \(no data set has 32×32×3 images in 7 classes \(cifar10 has 10\); images of your own: --dataset folder --data-dir DIR\)\n/);
  });
});

describe('scripts started by path', () => {
  it('a script runs its main part from a directory whose path has a space or a symbolic link in it', async () => {
    const top = mkdtempSync(join(tmpdir(), 'nin main '));
    const dir = join(top, 'in here');
    mkdirSync(dir);
    const script = join(dir, 'script.ts');
    writeFileSync(script, `import { isMainModule } from ${JSON.stringify(join(process.cwd(), 'nin', 'is-main.ts'))};\nif (isMainModule(import.meta.url)) console.log('main');\n`);
    const link = join(dir, '..', 'link');
    symlinkSync(dir, link);
    for (const path of [script, join(link, 'script.ts')]) {
      const r = await runAsync(process.execPath, ['--import', 'tsx', path], { timeout: 60_000 });
      expect(r.stdout + r.stderr, path).toBe('main\n');
    }
    // Imported, not started: not main.
    const importer = join(dir, 'importer.ts');
    writeFileSync(importer, `import ${JSON.stringify(script)};\nconsole.log('done');\n`);
    const r = await runAsync(process.execPath, ['--import', 'tsx', importer], { timeout: 60_000 });
    expect(r.stdout + r.stderr).toBe('done\n');
    rmSync(top, { recursive: true });
  });
});

describe('the line a finished nin train prints', () => {
  const result = (epoch: number) => ({ epochs: [{ epoch }] as TrainResult['epochs'], seconds: 12.4, test: { error: 0.0154, count: 10000 } as TrainResult['test'], checkpoint: 'runs/m/checkpoint.safetensors' });
  it("done, or, for a run --stop-after ended short of its --epochs, where it stands; a resumed run's time is since the resume", () => {
    expect(finishedLine({ epochs: 3 }, result(3))).toBe('done in 12 s: test error 1.54% (accuracy 98.46%) on 10000 images; checkpoint runs/m/checkpoint.safetensors');
    expect(finishedLine({ epochs: 3, stopAfter: 3 }, result(3))).toMatch(/^done in 12 s/);
    expect(finishedLine({ epochs: 3, stopAfter: 2 }, { ...result(2), checkpoint: 'runs/my run/checkpoint.safetensors' })).toContain("(--stop-after; --resume 'runs/my run/checkpoint.safetensors' continues)");
    expect(finishedLine({ epochs: 3, resume: 'runs/m' }, result(3))).toMatch(/^done in 12 s since the resume: test error 1\.54% /);
    expect(finishedLine({ epochs: 3, stopAfter: 2 }, result(2))).toBe('stopped after epoch 2 of 3 (--stop-after; --resume runs/m/checkpoint.safetensors continues) in 12 s: test error 1.54% (accuracy 98.46%) on 10000 images; checkpoint runs/m/checkpoint.safetensors');
    // Ended before its --stop-after epoch (a plateau schedule's stop): not stopped by --stop-after.
    expect(finishedLine({ epochs: 3, stopAfter: 2 }, result(1))).toMatch(/^done in 12 s: /);
  });
});
