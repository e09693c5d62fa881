// A trained checkpoint exported to ONNX (nin/onnx.ts), run by ONNX Runtime beside our engine on a
// real test set:
//   - parity: each side's test error over every test image (ours: the checkpoint's preprocessing,
//     then our forward on the adapter; ONNX Runtime: the exported graph on the raw pixels), the
//     images whose top class differs, and the largest difference of a class probability;
//   - inference speed, the network alone (preprocessed images in, logits out): our forward with its
//     upload and readback, and ONNX Runtime on this machine's CPU cores (the export without its
//     preprocessing), medians of `--reps` batches of `--batch` images.
//
//   node --import tsx bench/onnx.ts <checkpoint or run directory> [--batch 100] [--reps 10] [--test-limit N]
//        [--data-dir DIR] [--json out.json]
//
// Needs onnxruntime-node, which the project does not install (300 MB):
//   npm install --no-save --ignore-scripts onnxruntime-node@1.31.1
import { statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { noGrad } from '../engine/autograd.ts';
import { closeGpu, getGpu } from '../engine/device.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { loadCheckpoint } from '../nin/checkpoint.ts';
import { loadTestSet } from '../nin/datasets.ts';
import { exportOnnx } from '../nin/onnx.ts';
import { argmax, logSumExp } from '../nin/train.ts';
import { median } from '../test/numeric.ts';

interface OrtSession { run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array }>> }
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
  InferenceSession: { create(bytes: Uint8Array): Promise<OrtSession> };
  env: { versions?: { common?: string } };
}

function loadOrt(): Ort {
  try {
    return createRequire(import.meta.url)('onnxruntime-node') as Ort;
  } catch {
    throw new Error('bench/onnx.ts needs onnxruntime-node: npm install --no-save --ignore-scripts onnxruntime-node@1.31.1');
  }
}

async function main(): Promise<void> {
  const { values: v, positionals } = parseArgs({
    allowPositionals: true,
    options: { batch: { type: 'string' }, reps: { type: 'string' }, 'test-limit': { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'string' } },
  });
  if (positionals.length !== 1) throw new Error('usage: bench/onnx.ts <checkpoint> [--batch 100] [--reps 10] [--test-limit N] [--data-dir DIR] [--json out.json]');
  const ort = loadOrt();
  const positive = (flag: string, value: string | undefined, fallback: number) => {
    const n = Number(value ?? fallback);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be an integer ≥ 1, got '${value}'`);
    return n;
  };
  const batch = positive('batch', v.batch, 100);
  const reps = positive('reps', v.reps, 10);
  const path = statSync(positionals[0]).isDirectory() ? join(positionals[0], 'checkpoint.safetensors') : positionals[0]; // a run directory
  const c = loadCheckpoint(path);
  const test = await loadTestSet(c.options, v['data-dir'], v['test-limit'] === undefined ? undefined : positive('test-limit', v['test-limit'], 0));
  const { height: H, width: W, channels: C } = c.config.input;
  const per = H * W * C;
  const K = c.config.classes;
  const g = await getGpu();
  const model = c.buildModel();

  // Parity over every test image.
  const full = await ort.InferenceSession.create(exportOnnx(c.config, c.params, c.preprocessor));
  const pre = await c.preprocessor.applyTo(test);
  let oursWrong = 0, ortWrong = 0, disagree = 0, maxProbDiff = 0;
  for (let start = 0; start < test.count; start += batch) {
    const n = Math.min(batch, test.count - start);
    const raw = test.images.slice(start * per, (start + n) * per);
    const ortLogits = (await full.run({ image: new ort.Tensor('float32', raw, [n, H, W, C]) })).logits.data;
    const x = pre.images.subarray(start * per, (start + n) * per);
    const t = noGrad(() => tidy(() => model.forward(Tensor.fromArray(x, [n, H, W, C]), { train: false })));
    const ours = await t.toArray().finally(() => t.dispose());
    for (let i = 0; i < n; i++) {
      const label = test.labels[start + i];
      const [a, b] = [argmax(ours, i * K, K), argmax(ortLogits, i * K, K)];
      oursWrong += a !== label ? 1 : 0;
      ortWrong += b !== label ? 1 : 0;
      disagree += a !== b ? 1 : 0;
      const [za, zb] = [logSumExp(ours, i * K, K), logSumExp(ortLogits, i * K, K)];
      for (let k = 0; k < K; k++) maxProbDiff = Math.max(maxProbDiff, Math.abs(Math.exp(ours[i * K + k] - za) - Math.exp(ortLogits[i * K + k] - zb)));
    }
  }

  // Speed, the network alone, on the first `batch` preprocessed test images.
  const n = Math.min(batch, test.count);
  const x = pre.images.slice(0, n * per);
  const network = await ort.InferenceSession.create(exportOnnx(c.config, c.params, c.preprocessor, { preprocess: false }));
  const time = async (f: () => Promise<unknown>) => {
    await f(); // warm-up: kernels compiled, sessions' first-run allocations
    const ms: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await f();
      ms.push(performance.now() - t0);
    }
    return median(ms);
  };
  const oursMs = await time(async () => {
    const t = noGrad(() => tidy(() => model.forward(Tensor.fromArray(x, [n, H, W, C]), { train: false })));
    await t.toArray().finally(() => t.dispose());
  });
  const ortMs = await time(() => network.run({ image: new ort.Tensor('float32', x, [n, H, W, C]) }));
  model.dispose();

  const report = {
    checkpoint: path, model: c.config.name, dataset: test.name, images: test.count, preprocess: c.preprocessor.kind,
    adapter: g.adapterName, cpu: `${cpus()[0]?.model ?? '?'} × ${cpus().length}`, onnxruntime: ort.env.versions?.common ?? '?',
    oursError: oursWrong / test.count, onnxError: ortWrong / test.count, topClassDisagreements: disagree, maxProbabilityDifference: maxProbDiff,
    batch: n, reps, oursForwardMs: oursMs, onnxForwardMs: ortMs, oursImgPerSec: (1000 * n) / oursMs, onnxImgPerSec: (1000 * n) / ortMs,
  };
  const pct = (e: number) => `${(100 * e).toFixed(2)} %`;
  console.log(`${report.model} on ${report.dataset} (${report.images} images, ${report.preprocess}):`);
  console.log(`  test error: ours ${pct(report.oursError)}, ONNX Runtime ${pct(report.onnxError)}; top class differs on ${disagree} images; largest probability difference ${maxProbDiff.toExponential(2)}`);
  console.log(`  forward, batch ${n}, median of ${reps}: ours ${oursMs.toFixed(1)} ms (${report.oursImgPerSec.toFixed(0)} img/s, ${report.adapter}), ONNX Runtime ${report.onnxruntime} ${ortMs.toFixed(1)} ms (${report.onnxImgPerSec.toFixed(0)} img/s, ${report.cpu})`);
  if (v.json) writeFileSync(v.json, JSON.stringify(report, null, 2));
}

try {
  await main();
} finally {
  closeGpu();
}
