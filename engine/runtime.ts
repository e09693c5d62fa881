// Dispatch runtime: compiles kernels once (pipeline cache keyed by WGSL source, so every
// specialisation — shapes, tile sizes — is its own cached pipeline), records dispatches into one
// open command encoder, and submits at sync points (readback, upload, explicit flush) and every
// SUBMIT_EVERY dispatches.
// The core is dispatch() (with getPipeline()), then flush(), upload() and download(); the
// hooks that only tests use are at the end.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuError, GpuOutOfMemory, deviceGeneration, gpu, uncaptured } from './device.ts';
import { invocationOrder, reorderInvocations } from './invocation-order.ts';
import { BufferPool } from './pool.ts';

export interface Kernel {
  /** Human name used in errors and profiles, e.g. "conv2d_forward". */
  name: string;
  /** Complete WGSL; storage bindings are @group(0) @binding(0..n-1), an optional uniform at n. */
  code: string;
}

/** A buffer range to bind: the pool's buffers are rounded up, so the used size is passed along. */
export interface BufferRef {
  buffer: GPUBuffer;
  byteLength: number;
  /** Tensors have it: throws, naming `op`, if the tensor was disposed (its buffer may be another's by now). */
  assertAlive?(op: string): void;
  /** Tensors have it: counts the writes into it in place (wroteInPlace), which backward() checks. */
  version?: number;
}

/** Marks `dst` as written in place (upload, fill, addInPlace, an SGD step): a backward that
 * would read it as its forward pass did refuses to run on the new values (engine/autograd.ts). */
export function wroteInPlace(dst: BufferRef): void {
  if (dst.version !== undefined) dst.version++;
}

/** Every GPU access checks its tensors here, so no exported helper can touch a recycled buffer. */
function assertAlive(op: string, refs: readonly BufferRef[]): void {
  for (const r of refs) r.assertAlive?.(op);
}

interface CachedPipeline {
  id: number;
  name: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** The bindings the kernel declares read_write: one may not share its buffer with another. */
  written: number[];
  /** How many bindings the kernel declares: dispatch's tensors and uniform must be as many. */
  declared: number;
}

const pipelines = new Map<string, CachedPipeline>();
let nextPipelineId = 1; // never reused: bind groups are cached by pipeline id
/** Shapes are compiled into the kernels, so every new batch size adds pipelines (evaluate() and
 * predict pad a shorter last batch to the full size to avoid this): a process that sees many
 * sizes starts the cache afresh past this many.
 * A training run uses about a hundred. */
let pipelineLimit = 1024;

/** Changes the pipeline cache's limit (tests). */
export function setPipelineCacheLimit(n: number): void {
  pipelineLimit = n;
}
const bindGroups = new Map<string, GPUBindGroup>();
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;
const pendingChecks: Promise<void>[] = [];

let encoder: GPUCommandEncoder | null = null;
let pass: GPUComputePassEncoder | null = null;
let freeUniforms: GPUBuffer[] = [];
let usedUniforms: GPUBuffer[] = [];
let poolInstance: BufferPool | null = null;
let dispatchCount = 0;
let submitCount = 0;
/** Dispatches recorded into the open encoder. */
let recorded = 0;
/**
 * A loop that never reads back (a timing loop, a script's training loop that logs rarely) would
 * otherwise record into one encoder for ever: nothing runs until its first read, and the uniform
 * buffers, recycled only at a submit, grow by one a dispatch that takes uniforms (10,000 steps of
 * a small net: 560 MiB).
 * A submit costs tens of µs; a training step is some 15 to 150 dispatches.
 */
export const SUBMIT_EVERY = 512;

/** Per-kernel GPU timing via timestamp queries (see engine/profiler.ts). */
export interface ProfilerHook {
  /** Returns timestampWrites for the next dispatch's own pass; `scope`: profileScope's name for it. */
  beginDispatch(name: string, scope: string): GPUComputePassTimestampWrites;
  /** Called before the encoder is finished, to resolve queries. */
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): void;
}
let profiler: ProfilerHook | null = null;
export function setProfilerHook(p: ProfilerHook | null): void {
  flush();
  profiler = p;
}

let profileScopeName = ''; // the scope dispatches are attributed to now (not tidy's scopes: engine/tensor.ts)
/**
 * Runs `fn` with its dispatches attributed to `name` in a profile (the profiler's per-scope table:
 * a model's layers, the loss, the optimiser); nested scopes join with " / ". The ops `fn` records
 * keep the scope, and their backward runs under "<scope> backward" (engine/autograd.ts). `fn` is
 * synchronous, as recording is: an async fn's dispatches after its first await are not in it.
 */
export function profileScope<R>(name: string, fn: () => R): R {
  return atProfileScope(profileScopeName ? `${profileScopeName} / ${name}` : name, fn);
}

/** The scope dispatches are attributed to now ('' outside any). */
export function currentProfileScope(): string {
  return profileScopeName;
}

/** Runs `fn` at the scope `name`, a whole path, not nested in the current one (profileScope nests): a backward runs at its op's "<scope> backward". */
export function atProfileScope<R>(name: string, fn: () => R): R {
  const outer = profileScopeName;
  profileScopeName = name;
  try {
    return fn();
  } finally {
    profileScopeName = outer;
  }
}

let runtimeDevice: GPUDevice | null = null;

/** The device, after dropping every cache that belonged to a previous (destroyed) device. */
function device(): GPUDevice {
  const g = gpu();
  if (g.device !== runtimeDevice) {
    runtimeDevice = g.device;
    pipelines.clear();
    bindGroups.clear();
    pendingChecks.length = 0;
    checking = Promise.resolve(); // a new device does not wait on the old one's checks
    encoder = null;
    pass = null;
    recorded = 0;
    freeUniforms = [];
    usedUniforms = [];
    poolInstance = new BufferPool((desc) => createWatchedBuffer(g.device, desc), g.limits.maxBufferSize);
  }
  return g.device;
}

/**
 * Makes a buffer, watching it for the device running out of memory: found (asynchronously, at the
 * next checkErrors) as a GpuError that says the size asked for and what the pool held then, not as
 * the validation errors of the invalid buffer's uses.
 */
function createWatchedBuffer(d: GPUDevice, desc: GPUBufferDescriptor): GPUBuffer {
  d.pushErrorScope('out-of-memory');
  const buf = d.createBuffer(faultSize ? { ...desc, size: faultSize } : desc);
  faultSize = 0;
  const held = poolInstance ? { ...poolInstance.stats } : null;
  const p = poolInstance;
  const check = d.popErrorScope().then((err) => {
    if (!err) return;
    p?.discard(buf);
    const what = held ? `; the engine held ${fmtBytes(held.liveBytes + held.pooledBytes)} of buffers then (${fmtBytes(held.liveBytes)} in ${held.liveBuffers} tensor${held.liveBuffers === 1 ? '' : 's'}, ${fmtBytes(held.pooledBytes)} kept for reuse)` : '';
    throw new GpuOutOfMemory(`GPU out of memory: the device could not make a buffer of ${fmtBytes(Number(desc.size))} (${err.message.split('\n')[0]})${what}`);
  });
  check.catch(() => {}); // surfaced by checkErrors()
  pendingChecks.push(check);
  return buf;
}

/** Bytes for a person: 512 bytes, 1.5 KiB, 35.2 MiB, 3.10 GiB. */
export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`;
}

export function pool(): BufferPool {
  device();
  return poolInstance!;
}

/**
 * Gives the pool's idle buffers back to the device. The pool never shrinks on its own, so a
 * one-off phase would hold its buffers for the whole run (a ZCA whitening of 22,000 images of 768
 * features left 131 MiB). Pending commands are submitted first: a destroyed buffer must not be in
 * an unsubmitted encoder (submitted work keeps it until done).
 */
export function trimPool(): number {
  flush();
  bindGroups.clear(); // some name the buffers about to go
  return pool().trim();
}

export function runtimeStats() {
  return { pipelines: pipelines.size, bindGroups: bindGroups.size, dispatches: dispatchCount, submits: submitCount, uniformBuffers: freeUniforms.length + usedUniforms.length };
}

function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) bufferIds.set(b, (id = nextBufferId++));
  return id;
}

function getPipeline(kernel: Kernel): CachedPipeline {
  const device = runtimeDevice!;
  const order = invocationOrder(); // 'natural' but when looking for races (engine/invocation-order.ts)
  const key = order === 'natural' ? kernel.code : `${order}|${kernel.code}`;
  const hit = pipelines.get(key);
  if (hit) return hit;
  const code = reorderInvocations(kernel.code, order);
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: kernel.name, code });
  const pipeline = device.createComputePipeline({ label: kernel.name, layout: 'auto', compute: { module, entryPoint: 'main' } });
  const check = device.popErrorScope().then(async (err) => {
    if (!err) return;
    // Not kept: its next use would fail as an invalid pipeline, no longer naming the compile error.
    if (pipelines.get(key) === cached) pipelines.delete(key);
    const info = await module.getCompilationInfo();
    const msgs = info.messages
      .filter((m) => m.type === 'error')
      .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${code.split('\n')[m.lineNum - 1]?.trim() ?? ''}`);
    const reordered = order === 'natural' ? '' : ` (with its invocations renumbered, NIN_INVOCATION_ORDER=${order})`;
    throw new GpuError(`kernel '${kernel.name}'${reordered} failed to compile: ${err.message}${msgs.length ? '\n' + msgs.join('\n') : ''}`);
  });
  check.catch(() => {}); // surfaced by checkErrors(); avoid an unhandled rejection meanwhile
  pendingChecks.push(check);
  if (pipelines.size >= pipelineLimit) {
    pipelines.clear();
    bindGroups.clear(); // (theirs only: ids are not reused)
  }
  const written = [...code.matchAll(/@binding\((\d+)\)\s*var\s*<\s*storage\s*,\s*read_write\s*>/g)].map((m) => Number(m[1]));
  const declared = new Set([...code.matchAll(/@binding\((\d+)\)/g)].map((m) => m[1])).size;
  const cached = { id: nextPipelineId++, name: kernel.name, pipeline, layout: pipeline.getBindGroupLayout(0), written, declared };
  pipelines.set(key, cached);
  if (process.env.NIN_KERNEL_DUMP) dumpKernel(process.env.NIN_KERNEL_DUMP, kernel.name, code);
  return cached;
}

/**
 * NIN_KERNEL_DUMP=dir: every kernel compiled is also written there, as compiled (renumbered
 * invocations included), to `<name>-<hash>.wgsl`. bench/compile-times.ts then compiles each alone:
 * what a cold shader cache pays for a run or a test file, kernel by kernel.
 */
function dumpKernel(dir: string, name: string, code: string): void {
  const file = join(dir, `${name}-${createHash('sha1').update(code).digest('hex').slice(0, 12)}.wgsl`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, code);
  } catch (e) {
    throw new GpuError(`NIN_KERNEL_DUMP=${dir}: cannot write ${file}: ${(e as Error).message}`);
  }
}

/** The checks of the calls to checkErrors() in flight, as one chain. */
let checking: Promise<void> = Promise.resolve();

/** Throws the first compile/validation error the device reported since the last check. */
export async function checkErrors(): Promise<void> {
  // The first failure is the cause; later ones are its consequences and are dropped with it.
  // Concurrent calls (a Promise.all of two reads) wait on one chain: a second call, finding no
  // checks of its own, reported a consequence (the invalid pipeline's use) as the error, while
  // the first still awaited the compile error that caused it.
  const checks = pendingChecks.splice(0);
  const mine = checking.then(async () => {
    try {
      for (const c of checks) await c;
    } catch (e) {
      uncaptured.length = 0;
      throw e;
    }
  });
  checking = mine.catch(() => {});
  await mine;
  const g = gpu();
  if (uncaptured.length) {
    const msgs = uncaptured.splice(0);
    throw new GpuError(`GPU validation error: ${msgs.join('\n')}`);
  }
  if (g.lostReason) throw new GpuError(`GPU device lost (${g.lostReason})`);
}

/** Size of every recycled uniform buffer (the largest uniforms a kernel may take). */
const UNIFORM_BYTES = 256;

/**
 * A uniform buffer holding `data` for one dispatch. They are recycled rather than created per
 * dispatch (which cost ~60 µs of host time each, most of an SGD step's recording): one written in
 * this submission is reused only after the submission (queue.writeBuffer lands before the open
 * encoder's commands), and a recycled buffer keeps its cached bind groups.
 */
function uniformBuffer(data: ArrayBufferView): GPUBuffer {
  if (data.byteLength > UNIFORM_BYTES) throw new RangeError(`uniforms of ${data.byteLength} bytes exceed the runtime's ${UNIFORM_BYTES}`);
  const buf = freeUniforms.pop() ?? device().createBuffer({ size: UNIFORM_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device().queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  usedUniforms.push(buf);
  return buf;
}

function currentEncoder(): GPUCommandEncoder {
  if (!encoder) {
    // Everything recorded until the submit runs inside these error scopes, so validation errors
    // are caught per submission (and the ones caused by an earlier compile failure are dropped).
    const d = device();
    d.pushErrorScope('validation');
    d.pushErrorScope('out-of-memory');
    encoder = d.createCommandEncoder();
  }
  return encoder;
}

function endPass(): void {
  pass?.end();
  pass = null;
}

/**
 * Records one dispatch. `bindings` are bound in order as storage buffers; `uniforms`, if given,
 * follows them as a uniform buffer. `groups` is the workgroup grid. The kernel's body must use
 * every binding its WGSL declares: the pipeline's automatic layout leaves out an unused one, and
 * the bind group is then refused (a validation error at the next read, naming the kernel).
 */
export function dispatch(kernel: Kernel, bindings: BufferRef[], groups: [number, number?, number?], uniforms?: ArrayBufferView): void {
  assertAlive(kernel.name, bindings);
  const g = gpu();
  device(); // after a new device: the old one's pipelines, bind groups and pool dropped first
  const maxDim = g.limits.maxComputeWorkgroupsPerDimension;
  const [x, y = 1, z = 1] = groups;
  if (x > maxDim || y > maxDim || z > maxDim) {
    throw new GpuError(`kernel '${kernel.name}': workgroup grid ${x}×${y}×${z} exceeds the device limit of ${maxDim} per dimension`);
  }
  if (x === 0 || y === 0 || z === 0) return;
  const p = getPipeline(kernel);
  // Refused at once, these two, else a validation error at the next read, which discards the
  // whole submission's work.
  if (bindings.length + (uniforms ? 1 : 0) !== p.declared) {
    throw new RangeError(`kernel '${kernel.name}': its WGSL declares ${p.declared} bindings, given ${bindings.length} tensors${uniforms ? ' and a uniform' : ''}`);
  }
  for (const w of p.written) {
    const other = bindings.findIndex((b, i) => i !== w && b.buffer === bindings[w]?.buffer);
    if (other >= 0) throw new RangeError(`kernel '${kernel.name}': binding ${other} is the buffer that binding ${w} writes: a tensor may not be read and written in one dispatch (the same tensor given twice)`);
  }
  const enc = currentEncoder(); // opens the submission's error scopes before any bind group is made
  const ub = uniforms ? uniformBuffer(uniforms) : null;
  const key = `${p.id}|${bindings.map((b) => `${bufferId(b.buffer)}:${b.byteLength}`).join(',')}${ub ? `|u${bufferId(ub)}` : ''}`;
  let bindGroup = bindGroups.get(key);
  if (!bindGroup) {
    if (bindGroups.size > 8192) bindGroups.clear();
    const entries: GPUBindGroupEntry[] = bindings.map((b, i) => ({ binding: i, resource: { buffer: b.buffer, size: poolInstance?.guardBytes ? b.buffer.size : Math.ceil(b.byteLength / 4) * 4 } }));
    if (ub) entries.push({ binding: bindings.length, resource: { buffer: ub } });
    bindGroup = g.device.createBindGroup({ label: kernel.name, layout: p.layout, entries }); // (named in a validation error)
    bindGroups.set(key, bindGroup);
  }
  if (profiler) {
    endPass();
    pass = enc.beginComputePass({ timestampWrites: profiler.beginDispatch(kernel.name, profileScopeName) });
  } else {
    pass ??= enc.beginComputePass();
  }
  pass.setPipeline(p.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, y, z);
  if (profiler) endPass();
  dispatchCount++;
  if (++recorded >= SUBMIT_EVERY) flush();
}

/** Records a buffer-to-buffer copy in stream order. */
export function copyBuffer(src: BufferRef, dst: BufferRef, byteLength: number, op = 'copyBuffer'): void {
  assertAlive(op, [src, dst]);
  endPass();
  currentEncoder().copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, Math.ceil(byteLength / 4) * 4);
  wroteInPlace(dst);
}

/** Submits everything recorded so far. Cheap when nothing is pending. */
export function flush(): void {
  if (!encoder) return;
  endPass();
  profiler?.beforeSubmit(encoder);
  const d = device();
  d.queue.submit([encoder.finish()]);
  submitCount++;
  encoder = null;
  recorded = 0;
  const oom = d.popErrorScope();
  const validation = d.popErrorScope();
  const check = Promise.all([oom, validation]).then(([o, v]) => {
    const err = o ?? v;
    if (!err) return;
    const held = o && poolInstance ? `; the engine holds ${fmtBytes(poolInstance.stats.liveBytes + poolInstance.stats.pooledBytes)} of buffers` : '';
    const message = `GPU ${o ? 'out of memory' : 'validation error'} in submitted commands: ${err.message}${held}`;
    throw o ? new GpuOutOfMemory(message) : new GpuError(message);
  });
  check.catch(() => {});
  pendingChecks.push(check);
  profiler?.afterSubmit();
  freeUniforms.push(...usedUniforms); // rewriting them now queues after this submission
  usedUniforms = [];
}

/** Writes host data into a buffer, ordered after every dispatch recorded so far. */
export function upload(dst: BufferRef, data: ArrayBufferView): void {
  assertAlive('upload', [dst]);
  // queue.writeBuffer runs before not-yet-submitted commands, which may still read a recycled
  // buffer's old contents; submitting first keeps stream order.
  flush();
  device().queue.writeBuffer(dst.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  wroteInPlace(dst);
}

/** Reads a buffer range back to the host (async; submits pending work first). */
export async function download(src: BufferRef, byteLength: number): Promise<ArrayBuffer> {
  assertAlive('download', [src]);
  return whileOpen('reading back a GPU buffer', () => downloadNow(src, byteLength));
}

/**
 * Runs `wait`; if closeGpu() happens meanwhile, its failure (the device's resources are gone) is
 * reported as that, not as whatever the closed device made of it ("GPU not initialised").
 */
async function whileOpen<T>(what: string, wait: () => Promise<T>): Promise<T> {
  const gen = deviceGeneration();
  const closed = () => new GpuError(`${what} failed: the GPU device was closed (closeGpu()) before it finished`);
  let result: T;
  try {
    result = await wait();
  } catch (e) {
    if (gen !== deviceGeneration()) throw closed();
    throw e;
  }
  // Also where the wait finished as closeGpu() ran: a read not yet handed over when the device
  // closed fails, whichever came first inside Dawn.
  if (gen !== deviceGeneration()) throw closed();
  return result;
}

async function downloadNow(src: BufferRef, byteLength: number): Promise<ArrayBuffer> {
  const size = Math.ceil(byteLength / 4) * 4;
  const d = device();
  const staging = d.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  endPass();
  currentEncoder().copyBufferToBuffer(src.buffer, 0, staging, 0, size);
  flush();
  try {
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await checkErrors();
      throw new GpuError(`reading back a GPU buffer failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    await checkErrors();
    return out;
  } finally {
    staging.destroy(); // a failed read frees its staging buffer too (destroy also unmaps)
  }
}

/** Waits until the GPU has finished all submitted work; surfaces errors. */
export async function sync(): Promise<void> {
  flush();
  const d = device();
  const done = d.queue.onSubmittedWorkDone();
  await whileOpen('sync()', async () => {
    await done;
    await checkErrors();
  });
}

/** Workgroup grid for `n` workgroups, folded into 2-D when it exceeds the per-dimension limit. */
export function grid1d(n: number): [number, number] {
  const maxDim = gpu().limits.maxComputeWorkgroupsPerDimension;
  if (n <= maxDim) return [n, 1];
  const y = Math.ceil(n / maxDim);
  return [Math.ceil(n / y), y];
}

/** WGSL expression for the linear workgroup index of a grid1d() dispatch. */
export const LINEAR_WORKGROUP = 'wid.x + wid.y * nwg.x';

// Test hooks: an allocation that fails on demand, and NaN guards past every tensor's end.

/** Tests (setAllocationFault): the size the next buffer made is asked of the device at, or 0. */
let faultSize = 0;

/**
 * Tests: the next buffer the pool makes is asked of the device at `bytes` instead, a size it cannot
 * give (lavapipe: 4294967293 bytes and up, within its maxBufferSize), so the device's own
 * out-of-memory error takes the path a real one would.
 */
export function setAllocationFault(bytes: number): void {
  faultSize = bytes;
}

/**
 * Tests: NaN past the end of every tensor made from now on (`bytes` of it at least; 0 turns this
 * off), and whole buffers bound, so a kernel that reads past a tensor's end reads NaN. Otherwise a
 * binding is the tensor's exact size and such a read gets robust buffer access's value: 0 on
 * lavapipe, which hides it, and on a GPU possibly any value in the buffer.
 */
export function setOutOfBoundsGuard(bytes: number): void {
  flush();
  bindGroups.clear(); // their bindings' sizes change
  pool().guardBytes = bytes;
  pool().guarded = [];
}

/**
 * Tests, after work under setOutOfBoundsGuard: each buffer it made in which something was written
 * past the tensor's end (the NaN there is gone), described. Reads every one of them back.
 */
export async function writesPastTheEnd(): Promise<string[]> {
  const found: string[] = [];
  for (const { buffer, bytes } of pool().guarded) {
    const words = new Uint32Array(await download({ buffer, byteLength: buffer.size }, buffer.size));
    const at = words.findIndex((w, i) => i >= bytes / 4 && w !== 0x7fc00000); // Float32Array.fill(NaN)'s bits
    if (at >= 0) found.push(`a tensor of ${bytes} bytes was written at byte ${4 * at}, past its end`);
  }
  return found;
}
