// Tensors: float32 (or int32 for labels) arrays in GPU buffers, row-major.
//
// Image tensors are NHWC ([batch, height, width, channels]). Why: every layer of NIN reduces over
// channels (a K×K conv over taps × channels, a 1×1 conv over channels alone), so with channels
// innermost a pixel's feature vector is contiguous: a 1×1 conv is a plain row-major GEMM
// [pixels × Cin]·[Cin × Cout], im2col rows are runs of contiguous channels, and the fused mlpconv
// keeps one pixel's hidden vector in one contiguous stretch of workgroup memory.
//
// Lifetime: JavaScript has no destructors, so tensors are freed explicitly (`dispose`) or by the
// scope they were made in (`tidy`). Freed buffers go back to the pool.
import { GpuError, deviceGeneration, gpu } from './device.ts';
import { download, pool, upload, type BufferRef } from './runtime.ts';

export type DType = 'f32' | 'i32';
const DTYPES: readonly string[] = ['f32', 'i32'];

/** Checks a shape (and dtype) before anything is allocated; returns the element count. */
function checkShape(shape: readonly number[], dtype: DType): number {
  if (!DTYPES.includes(dtype)) throw new RangeError(`tensor dtype '${dtype}' is not supported (expected 'f32' or 'i32')`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`tensor shape [${shape.map((v) => (typeof v === 'number' ? v : JSON.stringify(v) ?? String(v))).join(', ')}] has a bad dimension ${typeof d === 'number' ? d : `${JSON.stringify(d) ?? String(d)} (a ${typeof d}, not a number)`}`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (size === 0) throw new RangeError(`empty tensor: shape [${shape.join(', ')}] has no elements`);
  return size;
}

/**
 * An op's backward: the gradients of its parents (null where none is needed), as tensors the
 * caller may dispose, so never a parent's own gradient or `gradOut` itself (backward() disposes
 * `gradOut` right after the call; copyOf in kernels/elementwise.ts makes a pass-through owned).
 */
export type BackwardFn = (gradOut: Tensor) => (Tensor | null)[];

let nextId = 1;
const scopes: Set<Tensor>[] = [];

export class Tensor implements BufferRef {
  readonly id = nextId++;
  readonly size: number;
  readonly byteLength: number;
  readonly buffer: GPUBuffer;
  requiresGrad = false;
  /** Gradient of the last backward() for leaves (parameters); kept until zeroGrad/dispose. */
  grad: Tensor | null = null;
  /** Autograd: inputs this tensor was computed from, and how to push a gradient back to them. */
  parents: Tensor[] = [];
  backwardFn: BackwardFn | null = null;
  /** Tensors kept only for this node's backward; freed as soon as it has run. */
  saved: Tensor[] = [];
  /** Name of the op that made it (for errors and debugging). */
  op = 'leaf';
  /** The profile scope its op ran in (runtime.profileScope), where its backward is attributed too. */
  profileScope = '';
  /** Set by backward() on every node it ran through: the saved tensors are gone, a second pass would be wrong. */
  consumed = false;
  /** How many times it was written in place (upload, fill, addInPlace, an SGD step: runtime.ts wroteInPlace). */
  version = 0;
  /** [its own version, ...each parent's], taken when its op recorded its backward (autograd.ts record):
   * backward() refuses to run if any has changed since, as the backward would read other values. */
  recordedVersions: number[] = [];
  /** A copy, frozen: the caller may reuse (mutate) the array it passed. */
  readonly shape: readonly number[];
  /** deviceGeneration() when made: a closeGpu() since then destroyed this tensor's buffer. */
  private readonly generation = deviceGeneration();
  private disposed = false;

  constructor(shape: readonly number[], readonly dtype: DType = 'f32') {
    this.size = checkShape(shape, dtype);
    this.shape = Object.freeze([...shape]);
    this.byteLength = this.size * 4;
    const limit = gpu().limits.maxStorageBufferBindingSize;
    if (this.byteLength > limit) {
      throw new TensorTooLarge(
        `tensor of shape [${shape.join(', ')}] needs ${this.byteLength} bytes, more than the device's storage binding limit of ${limit} bytes`,
      );
    }
    this.buffer = pool().acquire(this.byteLength);
    scopes.at(-1)?.add(this);
  }

  /** A tensor whose values are not set: a recycled buffer holds what it held (fill() it, or write every element). */
  static empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return new Tensor(shape, dtype);
  }

  static fromArray(data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    // Everything is checked and converted before the buffer is taken, so a mistake leaves nothing behind.
    const size = checkShape(shape, dtype);
    if (data.length !== size) {
      throw new RangeError(`Tensor.fromArray: ${data.length} values do not fill shape [${shape.join(', ')}] (${size} elements)`);
    }
    if (dtype === 'i32') {
      // Int32Array.from would truncate 2.9 to 2, NaN to 0 and wrap 3e9: refuse instead.
      for (let i = 0; i < size; i++) {
        const v = data[i];
        if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
          throw new RangeError(`Tensor.fromArray: value ${v} at index ${i} is not an int32 (an integer in [-2^31, 2^31)), as an i32 tensor needs`);
        }
      }
    }
    // A plain array's non-number (a string, undefined from a hole) would become NaN, silently.
    if (!ArrayBuffer.isView(data)) {
      for (let i = 0; i < size; i++) {
        if (typeof data[i] !== 'number') throw new TypeError(`Tensor.fromArray: value at index ${i} is not a number (${typeof data[i] === 'string' ? JSON.stringify(data[i]) : String(data[i])})`);
      }
    }
    const typed = dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data);
    const t = new Tensor(shape, dtype);
    upload(t, typed);
    return t;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Checks the tensor is alive; ops call this on every input. */
  assertAlive(op: string): void {
    if (this.disposed) throw new GpuError(`${op}: input tensor #${this.id} (${this.op}, [${this.shape.join(', ')}]) was already disposed`);
    if (this.generation !== deviceGeneration()) {
      throw new GpuError(`${op}: input tensor #${this.id} (${this.op}, [${this.shape.join(', ')}]) was created on a GPU device that closeGpu() has since closed; make it again after getGpu()`);
    }
  }

  /** The values as floats. An i32 tensor's are converted, and refused past ±2^24, where a float32 would round them: use toInt32Array(). */
  async toArray(): Promise<Float32Array> {
    this.assertAlive('toArray');
    const bytes = await download(this, this.byteLength);
    if (this.dtype === 'f32') return new Float32Array(bytes);
    const ints = new Int32Array(bytes);
    const i = ints.findIndex((v) => Math.abs(v) > 2 ** 24);
    if (i >= 0) throw new RangeError(`toArray: tensor #${this.id} (${this.op}, i32) holds ${ints[i]} at index ${i}, which a float32 cannot hold exactly; use toInt32Array()`);
    return Float32Array.from(ints);
  }

  /** The values of an i32 tensor, exactly. */
  async toInt32Array(): Promise<Int32Array> {
    expectDtype('toInt32Array', 'tensor', this, 'i32');
    return new Int32Array(await download(this, this.byteLength));
  }

  /** Reads one scalar (e.g. a loss) back. */
  async item(): Promise<number> {
    this.assertAlive('item');
    if (this.size !== 1) throw new RangeError(`item: tensor #${this.id} (${this.op}) has shape [${this.shape.join(', ')}], not a single element; use toArray()`);
    return (await this.toArray())[0];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // A closed device's buffers died with it: nothing goes back to the new device's pool (nor throws, so tidy can clean up).
    if (this.generation === deviceGeneration()) pool().release(this.buffer);
    this.grad?.dispose();
    this.grad = null;
    for (const s of this.saved) s.dispose();
    this.saved = [];
    this.parents = [];
    this.backwardFn = null;
    for (const s of scopes) s.delete(this);
  }
}

/** A tensor past the device's storage binding limit (opBody names the op that asked for it). */
export class TensorTooLarge extends RangeError {
  override name = 'RangeError';
}

/**
 * An op's body, for ops that make several tensors: if it throws, the tensors it made are freed
 * (outside tidy, an mlpconv output made before its hidden activations failed to fit stayed
 * allocated for good), and a tensor too large for the device is named with `op`.
 */
export function opBody<R>(op: string, fn: () => R): R {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  try {
    return fn();
  } catch (e) {
    for (const t of scope) t.dispose();
    scope.clear();
    throw e instanceof TensorTooLarge ? new TensorTooLarge(`${op}: ${e.message}`) : e;
  } finally {
    scopes.pop();
    const outer = scopes.at(-1);
    if (outer) for (const t of scope) outer.add(t); // what it made belongs to the caller's tidy, as without it
  }
}

/**
 * tidy and noGrad are synchronous: an async fn returns at its first await, where they would end.
 * Its Promise is refused (its own failures become this error's).
 */
export function refusePromise(op: string, result: unknown, consequence: string): void {
  if (typeof (result as { then?: unknown } | null)?.then !== 'function') return;
  (result as PromiseLike<unknown>).then(undefined, () => {});
  throw new Error(`${op}: fn returned a Promise; ${op} is synchronous and ${consequence}. Call ${op} inside the async function, around the synchronous steps`);
}

/** Removes a tensor from the enclosing scopes so that `tidy` does not free it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/**
 * Runs `fn`, then disposes every tensor made inside that is not part of its result (a tensor,
 * or an array, object, Map or Set of tensors). The result moves to the enclosing scope.
 */
export function tidy<R>(fn: () => R): R {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
    // The scope ends when fn returns, i.e. at its first await: everything made so far would be freed under it.
    refusePromise('tidy', result, 'would free its tensors at the first await');
  } finally {
    scopes.pop();
    const kept = new Set<Tensor>();
    collect(result!, kept);
    for (const t of scope) if (!kept.has(t)) t.dispose();
    const outer = scopes.at(-1);
    if (outer) for (const t of kept) if (scope.has(t)) outer.add(t);
  }
  return result;
}

/** The tensors in `v` (a tensor, or arrays, sets, maps and objects holding tensors, at any depth;
 * an object that refers back to itself is walked once; typed arrays hold none and are not walked). */
function collect(v: unknown, into: Set<Tensor>, seen = new Set<object>()): void {
  if (v instanceof Tensor) into.add(v);
  if (!v || typeof v !== 'object' || v instanceof Tensor || v instanceof Promise || ArrayBuffer.isView(v) || seen.has(v)) return;
  seen.add(v);
  if (Array.isArray(v) || v instanceof Set) for (const x of v) collect(x, into, seen);
  else if (v instanceof Map) for (const [k, x] of v) (collect(k, into, seen), collect(x, into, seen));
  else for (const x of Object.values(v)) collect(x, into, seen);
}

/**
 * Throws unless `t` is a live tensor of `dtype` (null: any). Kernels read raw bits, so an i32
 * tensor in an f32 op would give zeros or garbage, not an error.
 */
export function expectDtype(op: string, what: string, t: Tensor, dtype: DType | null = 'f32'): void {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} is ${t === undefined ? 'missing' : `not a Tensor (${String(t)})`}`);
  t.assertAlive(op);
  if (dtype && t.dtype !== dtype) throw new RangeError(`${op}: ${what} must be an ${dtype} tensor, got ${t.dtype}`);
}

/** Throws a shape (or dtype) error naming the op, the argument and both shapes. */
export function expectShape(op: string, what: string, t: Tensor, expected: readonly number[], dtype: DType | null = 'f32'): void {
  expectDtype(op, what, t, null);
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new RangeError(`${op}: ${what} has shape [${t.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
  expectDtype(op, what, t, dtype);
}

/** Throws unless `t` has `rank` dimensions (and `dtype`). */
export function expectRank(op: string, what: string, t: Tensor, rank: number, layout: string, dtype: DType | null = 'f32'): void {
  expectDtype(op, what, t, null);
  if (t.shape.length !== rank) throw new RangeError(`${op}: ${what} has shape [${t.shape.join(', ')}], expected rank ${rank} (${layout})`);
  expectDtype(op, what, t, dtype);
}
