// What a cold shader cache pays, kernel by kernel. Run anything with NIN_KERNEL_DUMP=dir (a test
// file, a training run), then this on dir: it compiles each dumped kernel alone, Mesa's shader
// cache off, and times pipeline creation, one dispatch of one workgroup (drivers may compile at
// first use: lavapipe does) and the wait for it. The buffers are zero-filled stand-ins: a kernel's
// results do not matter here, only that it was compiled. Prints the slowest kernels and the totals
// per kernel name; --json writes every time.
//   NIN_KERNEL_DUMP=/tmp/k npx vitest run --project all test/gemm.test.ts
//   node --import tsx bench/compile-times.ts /tmp/k [--top 20] [--repeat 1] [--json times.json]
// Session 28 found the tiled GEMMs' unrolled loops this way (kernels/loop-bounds.ts gpuUnrollBound).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median } from '../test/numeric.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '20' }, repeat: { type: 'string', default: '1' }, json: { type: 'string' } },
});
const usage = 'usage: node --import tsx bench/compile-times.ts DIR [--top N] [--repeat R] [--json FILE]';
const [dir] = positionals;
const top = Number(values.top);
const repeat = Number(values.repeat);
if (positionals.length !== 1 || !Number.isInteger(top) || top < 1 || !Number.isInteger(repeat) || repeat < 1) {
  console.error(usage);
  process.exit(2);
}
const files = readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort();
if (!files.length) {
  console.error(`${dir}: no .wgsl files (write some with NIN_KERNEL_DUMP=${dir})`);
  process.exit(1);
}

// Before the device exists: Mesa reads it when the driver loads.
process.env.MESA_SHADER_CACHE_DISABLE ??= 'true';
const { closeGpu, getGpu } = await import('../engine/device.ts');
const g = await getGpu();
const device = g.device;
console.log(`${g.adapterName}: ${files.length} kernels from ${dir}, each compiled ${repeat}× (MESA_SHADER_CACHE_DISABLE=${process.env.MESA_SHADER_CACHE_DISABLE})`);

/** One compile of `code` with its run: milliseconds, or the validation error. */
async function compileOnce(code: string): Promise<{ ms: number; error?: string }> {
  const t0 = performance.now();
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buffers: GPUBuffer[] = [];
  const entries: GPUBindGroupEntry[] = [];
  for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<(\w+)/g)) {
    const uniform = m[2] === 'uniform';
    const buffer = device.createBuffer({ size: uniform ? 4096 : 1 << 20, usage: uniform ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE });
    buffers.push(buffer);
    entries.push({ binding: Number(m[1]), resource: { buffer } });
  }
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
  pass.dispatchWorkgroups(1, 1, 1);
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const error = await device.popErrorScope();
  const ms = performance.now() - t0;
  for (const b of buffers) b.destroy();
  return error ? { ms, error: error.message.split('\n')[0] } : { ms };
}

interface Row { file: string; name: string; ms: number; runs: number[]; error?: string }
const rows: Row[] = [];
for (const file of files) {
  const code = readFileSync(join(dir, file), 'utf8');
  const runs: number[] = [];
  let error: string | undefined;
  // A comment makes each repeat a new source: Dawn would otherwise return the cached pipeline.
  for (let r = 0; r < repeat && !error; r++) ({ ms: runs[r], error } = await compileOnce(r ? `${code}\n// repeat ${r}` : code));
  rows.push({ file, name: file.replace(/-[0-9a-f]{12}\.wgsl$/, ''), ms: median(runs), runs, error });
}
closeGpu();

const fmt = (ms: number) => `${(ms / 1000).toFixed(2).padStart(7)} s`;
const failed = rows.filter((r) => r.error);
const timed = rows.filter((r) => !r.error).sort((a, b) => b.ms - a.ms);
console.log(`\nslowest${repeat > 1 ? ` (median of ${repeat})` : ''}:`);
for (const r of timed.slice(0, top)) console.log(`${fmt(r.ms)}  ${r.file}`);
const byName = new Map<string, { count: number; ms: number }>();
for (const r of timed) {
  const t = byName.get(r.name) ?? { count: 0, ms: 0 };
  byName.set(r.name, { count: t.count + 1, ms: t.ms + r.ms });
}
console.log('\nper kernel name:');
for (const [name, t] of [...byName].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)) console.log(`${fmt(t.ms)}  ${String(t.count).padStart(4)}×  ${name}`);
console.log(`\ntotal: ${fmt(timed.reduce((s, r) => s + r.ms, 0))} for ${timed.length} kernels`);
for (const r of failed) console.error(`not compiled: ${r.file}: ${r.error}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ adapter: g.adapterName, dir, repeat, kernels: rows }, null, 1));
process.exit(failed.length ? 1 : 0);
