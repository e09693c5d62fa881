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
import { GpuError, gpu } from './device.ts';
import { download, pool, upload, type BufferRef } from './runtime.ts';

export type DType = 'f32' | 'i32';

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
  private disposed = false;

  constructor(readonly shape: readonly number[], readonly dtype: DType = 'f32') {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new RangeError(`tensor shape [${shape.join(', ')}] has a bad dimension ${d}`);
    }
    this.size = shape.reduce((a, b) => a * b, 1);
    if (this.size === 0) throw new RangeError(`empty tensor: shape [${shape.join(', ')}] has no elements`);
    this.byteLength = this.size * 4;
    const limit = gpu().limits.maxStorageBufferBindingSize;
    if (this.byteLength > limit) {
      throw new RangeError(
        `tensor of shape [${shape.join(', ')}] needs ${this.byteLength} bytes, more than the device's storage binding limit of ${limit} bytes`,
      );
    }
    this.buffer = pool().acquire(this.byteLength);
    scopes.at(-1)?.add(this);
  }

  static empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return new Tensor(shape, dtype);
  }

  static fromArray(data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = new Tensor(shape, dtype);
    if (data.length !== t.size) {
      t.dispose();
      throw new RangeError(`Tensor.fromArray: ${data.length} values do not fill shape [${shape.join(', ')}] (${t.size} elements)`);
    }
    const typed = dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data);
    upload(t, typed);
    return t;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Checks the tensor is alive; ops call this on every input. */
  assertAlive(op: string): void {
    if (this.disposed) throw new GpuError(`${op}: input tensor #${this.id} (${this.op}, [${this.shape.join(', ')}]) was already disposed`);
  }

  async toArray(): Promise<Float32Array> {
    this.assertAlive('toArray');
    const bytes = await download(this, this.byteLength);
    return this.dtype === 'f32' ? new Float32Array(bytes) : (new Float32Array(Int32Array.from(new Int32Array(bytes))) as Float32Array);
  }

  /** Reads one scalar (e.g. a loss) back. */
  async item(): Promise<number> {
    return (await this.toArray())[0];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    pool().release(this.buffer);
    this.grad?.dispose();
    this.grad = null;
    for (const s of this.saved) s.dispose();
    this.saved = [];
    this.parents = [];
    this.backwardFn = null;
    for (const s of scopes) s.delete(this);
  }
}

/** Removes a tensor from the enclosing scopes so that `tidy` does not free it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/**
 * Runs `fn`, then disposes every tensor made inside that is not part of its result (a tensor,
 * or an array / object of tensors). The result moves to the enclosing scope.
 */
export function tidy<R>(fn: () => R): R {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
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

function collect(v: unknown, into: Set<Tensor>): void {
  if (v instanceof Tensor) into.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, into);
  else if (v && typeof v === 'object' && !(v instanceof Promise)) for (const x of Object.values(v)) collect(x, into);
}

/** Throws a shape error naming the op, the argument and both shapes. */
export function expectShape(op: string, what: string, t: Tensor, expected: readonly number[]): void {
  t.assertAlive(op);
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new RangeError(`${op}: ${what} has shape [${t.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/** Throws unless `t` has `rank` dimensions. */
export function expectRank(op: string, what: string, t: Tensor, rank: number, layout: string): void {
  t.assertAlive(op);
  if (t.shape.length !== rank) throw new RangeError(`${op}: ${what} has shape [${t.shape.join(', ')}], expected rank ${rank} (${layout})`);
}
