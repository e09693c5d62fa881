// The WebGPU device: one per process, acquired through Dawn's Node bindings (`webgpu` package).
//
// Environment (the engine's settings; NIN_SETTINGS below lists these and those nin/ reads):
//   NIN_BACKEND   Dawn backend to use (default: vulkan on Linux; "null" etc. also accepted by Dawn)
//   NIN_ADAPTER   adapter name substring to pick (default: the first adapter of the backend)
//   NIN_DAWN_FLAGS extra Dawn toggles, e.g. "enable-dawn-features=allow_unsafe_apis" (timestamp
//                 quantization is off unless these flags name it: see dawnFlags)
//   NIN_KERNELS   kernel style: "tiled" or "simd" (default: simd on CPU adapters, tiled on GPUs)
//   NIN_POLL      how Dawn waits for the GPU: "spin" or "sleep" (default: sleep on CPU adapters)
//   NIN_LIMITS    "adapter" (default): the device gets the adapter's limits; "webgpu-defaults": only
//                 WebGPU's default limits, which every adapter offers (16 KiB workgroup storage,
//                 8 storage buffers a stage, ...), to check that a run fits any WebGPU device
//   NIN_MATRIX    "f32" / "f16": also request subgroup matrices; "f32-emulated" / "f16-emulated": their
//                 plain-WGSL form; "off" (default): none (see kernels/gemm-matrix.ts)
//   NIN_MATRIX_TILE the matrix GEMM's tile, FMxFNxBK (kernels/gemm-matrix.ts)
//   NIN_TUNED     a tuning table to use instead of the adapter's own (kernels/tuning.ts)
//   NIN_INVOCATION_ORDER "natural", "reverse" or "scramble": renumber workgroup invocations to expose
//                 missing barriers (see engine/invocation-order.ts)
//   NIN_KERNEL_DUMP a directory: write each kernel compiled there, for bench/compile-times.ts
//
// What the rest of the engine calls is at the end: getGpu(), gpu(), closeGpu(); kernels also ask
// kernelStyle() and simdWidth() (above them) which variant to build.
import { readdirSync } from 'node:fs';
import { create, globals } from 'webgpu';

export interface Gpu {
  device: GPUDevice;
  /** The Dawn GPU object the device came from (see dawnInstances). */
  instance: GPU;
  adapterName: string;
  features: Set<string>;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
  /** Set once the device is lost; every later GPU call throws with this reason. */
  lostReason: string | null;
  /**
   * Which family of kernels suits this adapter (see kernelStyle()). "tiled": 256-thread workgroups
   * sharing tiles in workgroup memory (GPUs). "simd": one-subgroup workgroups whose lanes span
   * output channels while rows are addressed uniformly (CPU adapters such as lavapipe).
   */
  style: KernelStyle;
  /** Subgroup width when the adapter reports a single one (lavapipe: 8), else null. */
  subgroupSize: number | null;
  /** How Dawn's event polling waits for the GPU (see sleepWhileDawnWaits). */
  poll: 'spin' | 'sleep';
  /** A CPU adapter (lavapipe, SwiftShader): Dawn's fallback adapter or a "software" architecture. */
  cpuAdapter: boolean;
  /** Every feature the adapter offers (the device asks only for the ones the engine uses: `features`). */
  adapterFeatures: string[];
  /**
   * The adapter's subgroup-matrix shapes and types (Dawn's chromium-experimental-subgroup-matrix,
   * offered with NIN_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis on some GPUs), else [].
   */
  subgroupMatrixConfigs: { M: number; N: number; K: number; componentType: string; resultComponentType: string }[];
}

export type KernelStyle = 'tiled' | 'simd';

let current: Gpu | null = null;
let pending: Promise<Gpu> | null = null;
/** Counts closeGpu() calls: an acquisition that a close overtook must not become `current`. */
let generation = 0;
/** Each device's uncapturederror listener remover: left attached, the listener's closure kept a
 * destroyed device (and its driver threads) alive, five threads per getGpu/closeGpu cycle on lavapipe. */
const detachers = new WeakMap<GPUDevice, () => void>();

/**
 * Dawn's GPU objects (what `navigator.gpu` is in a browser), one per set of instance flags, made
 * once and kept for the life of the process: devices come and go (closeGpu), their instance stays.
 * Letting the instance go at closeGpu() hung or aborted test processes on lavapipe, by all signs in
 * Dawn's event processing on a freed instance (InstanceBase::ProcessEvents; "The futex facility
 * returned an unexpected error code"): 2 aborts in 28 runs of engine.test.ts with gap.test.ts, none
 * in 67 with instances kept (holding each only until its device's awaited operations settled still
 * aborted in 8 of 500 runs of a script that closes during a read).
 */
const dawnInstances = new Map<string, GPU>();

function dawnInstance(flags: string[]): GPU {
  const key = flags.join(' ');
  let instance = dawnInstances.get(key);
  if (!instance) dawnInstances.set(key, (instance = create(flags)));
  return instance;
}

/** Destroys a device and lets it go (its instance stays: see dawnInstances). */
function destroyDevice(device: GPUDevice): void {
  detachers.get(device)?.();
  device.destroy();
}

/**
 * NIN_MATRIX's modes: f32 | f16, with -emulated for the plain-WGSL form. kernels/gemm-matrix.ts
 * parses them; the device only needs to know whether real subgroup matrices are wanted.
 */
export const MATRIX_MODE_SYNTAX = /^(f32|f16)(-emulated)?$/;

/** NIN_INVOCATION_ORDER's values (engine/invocation-order.ts applies them); checked with the other settings. */
export const INVOCATION_ORDERS = ['natural', 'reverse', 'scramble'] as const;

/** NIN_INVOCATION_ORDER's order ('natural' when unset); a GpuError for any other value. */
export function invocationOrderSetting(): (typeof INVOCATION_ORDERS)[number] {
  return parseChoice('NIN_INVOCATION_ORDER', INVOCATION_ORDERS) ?? 'natural';
}

/** Errors raised by the engine for GPU-side failures (device loss, validation, WGSL compile). */
export class GpuError extends Error {
  override name = 'GpuError';
}

/** The device out of memory (a buffer it could not make, or a submission): a GpuError callers can
 * tell apart, to say what would need less (a smaller batch). */
export class GpuOutOfMemory extends GpuError {}

function icdFiles(): string[] {
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const found: string[] = [];
  for (const d of dirs) {
    try {
      for (const f of readdirSync(d)) found.push(`${d}/${f}`);
    } catch {
      /* directory absent */
    }
  }
  if (process.env.VK_ICD_FILENAMES) found.push(`VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}`);
  if (process.env.VK_DRIVER_FILES) found.push(`VK_DRIVER_FILES=${process.env.VK_DRIVER_FILES}`);
  return found;
}

const LAVAPIPE_INSTALL_HELP = [
  'On Debian 12, install Mesa 25 lavapipe (Vulkan on the CPU) from bookworm-backports:',
  "  echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/backports.list",
  '  sudo apt-get update && sudo apt-get install -t bookworm-backports mesa-vulkan-drivers',
  "(Debian 12's own Mesa 22.3 gives Dawn no adapter.) Or install your GPU's Vulkan driver.",
].join('\n');

/**
 * The NIN_* settings read without a device, checked: a bad value throws GpuError naming it. The CLI
 * calls this before it reads any data (a usage error, exit 2); acquire() before it makes a device.
 */
export function checkSettings() {
  const settings = {
    style: parseChoice('NIN_KERNELS', ['tiled', 'simd'] as const),
    poll: parseChoice('NIN_POLL', ['spin', 'sleep'] as const),
    limits: parseChoice('NIN_LIMITS', ['adapter', 'webgpu-defaults'] as const),
  };
  invocationOrderSetting(); // applied when kernels compile
  dawnFlags(process.env.NIN_DAWN_FLAGS);
  const matrix = process.env.NIN_MATRIX;
  if (matrix && matrix !== 'off' && !MATRIX_MODE_SYNTAX.test(matrix)) throw new GpuError(`NIN_MATRIX=${matrix}: expected off, f32, f16, f32-emulated or f16-emulated`);
  const tile = process.env.NIN_MATRIX_TILE;
  // (the device-free part of kernels/gemm-matrix.ts parseMatrixTile: a tile that fits is checked on the device)
  if (tile && !/^0*[1-9]\d*x0*[1-9]\d*x0*[1-9]\d*$/.test(tile)) throw new GpuError(`NIN_MATRIX_TILE='${tile}': expected FMxFNxBK, e.g. 2x4x32 (fragments along M and N, k-depth)`);
  return settings;
}

async function acquire(gen: number): Promise<Gpu> {
  // Bad settings fail before any device exists.
  const { style: styleEnv, poll: pollEnv, limits: limitsEnv } = checkSettings();
  Object.assign(globalThis, globals);
  const backend = process.env.NIN_BACKEND ?? (process.platform === 'linux' ? 'vulkan' : undefined);
  const flags: string[] = [];
  if (backend) flags.push(`backend=${backend}`);
  if (process.env.NIN_ADAPTER) flags.push(`adapter=${process.env.NIN_ADAPTER}`);
  flags.push(...dawnFlags(process.env.NIN_DAWN_FLAGS));
  const unknown = unknownSettings(process.env);
  if (unknown.length) console.warn(`[nin] ignored: ${unknown.join(', ')} (not among the settings read: ${NIN_SETTINGS.join(', ')})`);
  let adapter: GPUAdapter | null = null;
  let instance: GPU | null = null;
  let cause = '';
  try {
    instance = dawnInstance(flags);
    adapter = await instance.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    cause = ` (${(e as Error).message})`;
  }
  if (!adapter) {
    const icds = icdFiles();
    throw new GpuError(
      `No WebGPU adapter found: Dawn backend '${backend ?? 'default'}'${process.env.NIN_BACKEND ? ' (NIN_BACKEND)' : ''}` +
        (process.env.NIN_ADAPTER ? `, adapter '${process.env.NIN_ADAPTER}' (NIN_ADAPTER)` : '') +
        (process.env.NIN_DAWN_FLAGS ? `, NIN_DAWN_FLAGS='${process.env.NIN_DAWN_FLAGS}'` : '') +
        `${cause}. Vulkan drivers (ICD files) tried: ${icds.length ? icds.join(', ') : 'none found'}.\n` +
        LAVAPIPE_INSTALL_HELP,
    );
  }
  // timestamp-query: the profiler and the benches' GPU times; shader-f16: the f16 matrix modes.
  const wanted: GPUFeatureName[] = ['timestamp-query', 'shader-f16'];
  // Experimental: only when NIN_MATRIX asks for real subgroup matrices (kernels/gemm-matrix.ts), with
  // the subgroups they extend. No other kernel uses subgroup operations.
  const matrix = MATRIX_MODE_SYNTAX.exec(process.env.NIN_MATRIX ?? '');
  if (matrix && !matrix[2]) wanted.push('subgroups', 'chromium-experimental-subgroup-matrix' as GPUFeatureName);
  const requiredFeatures = wanted.filter((f) => adapter!.features.has(f));
  const a = adapter.limits;
  // The adapter's own limits, not WebGPU's defaults: e.g. the fused mlpconv's training forward binds
  // 10 storage buffers (default 8), and a CIFAR-10 block-1 activation at batch 256 is 192 MiB (default binding limit 128 MiB).
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
  };
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits: limitsEnv === 'webgpu-defaults' ? {} : requiredLimits });
  const info = adapter.info;
  type MatrixConfig = Gpu['subgroupMatrixConfigs'][number];
  const matrixConfigs = ((info as unknown as { subgroupMatrixConfigs?: MatrixConfig[] }).subgroupMatrixConfigs ?? []).map((c) => ({
    M: c.M, N: c.N, K: c.K, componentType: c.componentType, resultComponentType: c.resultComponentType,
  }));
  const adapterName = [info.vendor, info.description || info.device || info.architecture].filter(Boolean).join(': ') || 'unknown adapter';
  const gpu: Gpu = {
    device,
    instance: instance!,
    adapterName,
    features: new Set(requiredFeatures),
    limits: {
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
    },
    lostReason: null,
    style: 'tiled',
    subgroupSize: info.subgroupMinSize && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : null,
    poll: 'spin',
    cpuAdapter: Boolean(info.isFallbackAdapter || info.architecture === 'software'),
    adapterFeatures: [...adapter.features].map(String).sort(),
    subgroupMatrixConfigs: matrixConfigs,
  };
  // A CPU adapter (lavapipe, SwiftShader) runs a workgroup on one core, its invocations as SIMD
  // lanes: there the simd kernels win (see kernels/gemm.ts); on a GPU they would idle most of a warp.
  gpu.style = styleEnv ?? (gpu.cpuAdapter ? 'simd' : 'tiled');
  gpu.poll = pollEnv ?? (gpu.cpuAdapter ? 'sleep' : 'spin');
  if (gpu.poll === 'sleep') sleepWhileDawnWaits();
  device.lost.then((info) => {
    gpu.lostReason = `${info.reason}: ${info.message}`;
    if (info.reason !== 'destroyed') console.error(`[nin] GPU device lost (${gpu.lostReason})`);
  });
  const onError = (ev: Event) => {
    if (gen !== generation) return; // from a device closeGpu() destroyed
    uncaptured.push((ev as GPUUncapturedErrorEvent).error.message);
  };
  device.addEventListener('uncapturederror', onError);
  detachers.set(device, () => device.removeEventListener('uncapturederror', onError));
  return gpu;
}

/**
 * While a mapAsync or error scope is pending, Dawn's Node bindings poll for GPU events by calling
 * the global setImmediate again and again (AsyncRunner::ScheduleProcessEvents): one CPU core stays
 * busy until the GPU is done. On a CPU adapter that core is one the "GPU" needs — the mnist-small
 * training step took 85.5 ms with the spin and 47.7 ms with the wait asleep (lavapipe, 2 cores;
 * bench/RESULTS.md, session 3).
 * So Dawn's polls (native callbacks) are sent through setTimeout, about 1 ms apart, instead;
 * everything else still gets the real setImmediate.
 */
function sleepWhileDawnWaits(): void {
  const g = globalThis as unknown as { setImmediate: typeof setImmediate & { [sleepy]?: true } };
  if (g.setImmediate[sleepy]) return;
  const original = g.setImmediate;
  const isNative = (f: unknown) => typeof f === 'function' && Function.prototype.toString.call(f).endsWith('{ [native code] }');
  const patched = ((cb: (...args: unknown[]) => void, ...args: unknown[]) =>
    isNative(cb) ? setTimeout(cb, 1, ...args) : original(cb, ...args)) as unknown as typeof setImmediate & { [sleepy]?: true };
  Object.assign(patched, original, { [sleepy]: true });
  g.setImmediate = patched;
}
const sleepy = Symbol('nin.sleepWhileDawnWaits');

/**
 * Dawn's instance flags from NIN_DAWN_FLAGS, with Dawn's timestamp quantization (65.536 µs steps,
 * on by default) turned off unless the flags name it: per-kernel times of a few µs would read 0.
 * Toggles join one disable-dawn-features= list (a second such flag would replace the first).
 */
export function dawnFlags(fromEnv: string | undefined): string[] {
  const flags = (fromEnv ?? '').split(/\s+/).filter(Boolean);
  // Dawn refuses a malformed flag by failing to make an instance, which read as "no adapter".
  for (const f of flags) {
    const key = /^([a-z0-9_-]+)=/i.exec(f)?.[1];
    if (!key) throw new GpuError(`NIN_DAWN_FLAGS='${fromEnv}': '${f}' is not a key=value Dawn flag (e.g. enable-dawn-features=allow_unsafe_apis)`);
    if (key === 'backend' || key === 'adapter') throw new GpuError(`NIN_DAWN_FLAGS='${fromEnv}': set the ${key} with NIN_${key.toUpperCase()}, not in the Dawn flags`);
  }
  if (flags.some((f) => f.includes('timestamp_quantization'))) return flags;
  const i = flags.findIndex((f) => f.startsWith('disable-dawn-features='));
  if (i < 0) flags.push('disable-dawn-features=timestamp_quantization');
  else flags[i] += flags[i].endsWith('=') ? 'timestamp_quantization' : ',timestamp_quantization';
  return flags;
}

/** Every NIN_* environment variable the project reads (engine, kernels, nin/, bench scripts). */
export const NIN_SETTINGS = [
  'NIN_ADAPTER', 'NIN_BACKEND', 'NIN_CACHE', 'NIN_DATA', 'NIN_DAWN_FLAGS', 'NIN_GPU_ENV', 'NIN_INVOCATION_ORDER', 'NIN_KERNEL_DUMP',
  'NIN_KERNELS', 'NIN_LIMITS', 'NIN_MATRIX', 'NIN_MATRIX_TILE', 'NIN_POLL', 'NIN_TUNED',
] as const;

/** NIN_* variables set but read by nothing: a misspelt setting would otherwise change nothing, silently. */
export function unknownSettings(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env).filter((k) => k.startsWith('NIN_') && !(NIN_SETTINGS as readonly string[]).includes(k)).sort();
}

function parseChoice<T extends string>(name: string, choices: readonly T[]): T | null {
  const v = process.env[name];
  if (!v) return null;
  if ((choices as readonly string[]).includes(v)) return v as T;
  throw new GpuError(`${name}='${v}': expected ${choices.map((c) => `'${c}'`).join(' or ')}`);
}

let styleOverride: KernelStyle | null = null;

/** The kernel style in force: the adapter's (or NIN_KERNELS) unless a test overrides it. */
export function kernelStyle(): KernelStyle {
  return styleOverride ?? gpu().style;
}

/** Forces a kernel style (null restores the adapter's); tests run every variant this way. */
export function setKernelStyle(style: KernelStyle | null): void {
  styleOverride = style;
}

let simdWidthOverride: number | null = null;

/** Lanes of a simd-style workgroup: the adapter's subgroup width, else 8 (256-bit SIMD of f32). */
export function simdWidth(): number {
  return simdWidthOverride ?? gpu().subgroupSize ?? 8;
}

/**
 * Forces the simd kernels' lane count (null restores the adapter's). The kernels use no subgroup
 * operations, so any width runs correctly on any adapter: tests check the widths of other CPUs
 * (lavapipe's subgroup is 4 lanes at LP_NATIVE_VECTOR_WIDTH=128, 16 at 512) on this one.
 */
export function setSimdWidth(lanes: number | null): void {
  if (lanes !== null && !(Number.isInteger(lanes) && lanes >= 1)) throw new RangeError(`simd width ${lanes}: expected a whole number of lanes ≥ 1`);
  simdWidthOverride = lanes;
}

/** Errors the device reported outside any error scope; thrown at the next sync point. */
export const uncaptured: string[] = [];

/** The process-wide GPU, acquired on first use. */
export async function getGpu(): Promise<Gpu> {
  if (current) return current;
  if (!pending) {
    const gen = generation;
    pending = acquire(gen).then(
      (g) => {
        if (gen === generation) return (current = g);
        destroyDevice(g.device);
        throw new GpuError('closeGpu() was called while this GPU was being acquired; call getGpu() again');
      },
      (e) => {
        if (gen === generation) pending = null;
        throw e;
      },
    );
  }
  return pending;
}

/**
 * Counts closeGpu() calls. A tensor records it when made: one made before a closeGpu() belongs to
 * a destroyed device (its buffer is gone), which engine/tensor.ts detects and names.
 */
export function deviceGeneration(): number {
  return generation;
}

/** The GPU once acquired; throws if `getGpu()` was never awaited or the device is lost. */
export function gpu(): Gpu {
  if (!current) throw new GpuError('GPU not initialised: await getGpu() first');
  if (current.lostReason) throw new GpuError(`GPU device lost (${current.lostReason})`);
  return current;
}

/**
 * The Dawn `GPU` object (what `navigator.gpu` is in a browser) the device was acquired from, for
 * code that needs its own adapter/device on the same Dawn instance (e.g. TF.js in bench/peers.ts).
 */
export function dawnGpu(): GPU {
  if (!current) throw new GpuError('GPU not initialised: await getGpu() first');
  return current.instance;
}

/** Destroys the device so Dawn lets the process exit; a later getGpu() acquires a new one. */
export function closeGpu(): void {
  generation++;
  if (current) destroyDevice(current.device);
  current = null;
  pending = null;
  uncaptured.length = 0; // the closed device's errors are not the next one's
}
