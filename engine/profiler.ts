// Per-kernel GPU profiler: timestamp queries around every dispatch.
//
// While a profiler is installed (runtime.setProfilerHook), the runtime gives each dispatch its own
// compute pass whose timestampWrites (beginning / end of pass) land in a GPUQuerySet. Before each
// submit the used queries are resolved into a buffer and copied to a mappable staging buffer; after
// the submit that buffer is mapped asynchronously and the durations are added to per-kernel
// aggregates. Nothing ever blocks on the GPU except collect().
//
// Query sets come in chunks of QUERIES_PER_SET (2 queries per dispatch). Every submission starts
// again at the first chunk (queue order makes the reuse safe: a later submission's writes come
// after the earlier one's resolve), and more chunks are created when one submission records more
// dispatches than the chunks so far hold.
//
// Dawn's Vulkan backend writes a pass's beginning timestamp at TOP_OF_PIPE, before the barrier
// that makes the pass wait for the work before it; where a GPU's front end runs ahead (reported on
// AMD and Intel), a pass's raw span would include the tail of the pass before. So within a
// submission each pass is timed from the later of its beginning and the previous pass's end
// (passSpans; notes() counts how many were moved; bench/profile-reps.ts timestampCarryOver tells
// whether an adapter needs it). Where passes serialize (lavapipe) no beginning is moved.
//
// Caveats: one pass per dispatch removes the overlap Dawn could otherwise get between dispatches
// of one pass (and adds a pass boundary), so profiled totals run somewhat above unprofiled wall
// time. Dawn quantizes timestamps (to 65.536 µs steps, seen on lavapipe) unless its
// `timestamp_quantization` toggle is off, which engine/device.ts makes the default (dawnFlags;
// checked with webgpu 0.6.2: durations then come at ns resolution). Quantized, short kernels
// read as 0 or 65.5 µs per call and only their mean over many calls is meaningful;
// `timestampsQuantized` tells which case a profile is in, and notes() says so under the table.
// On lavapipe a pipeline's first use includes its JIT compilation in the GPU time: warm up before
// profiling.
//
//   const prof = await startProfiler();
//   for (...) { trainStep(); prof.markStep(); }
//   prof.stop();
//   console.log(formatProfile(await prof.collect()));
import { GpuError, getGpu, type Gpu } from './device.ts';
import { flush, setProfilerHook, type ProfilerHook } from './runtime.ts';

/** Dawn's quantized timestamps are multiples of this many ns (observed on Dawn/Vulkan). */
const QUANTUM_NS = 65536;

/** Queries per GPUQuerySet chunk (two per dispatch). */
const QUERIES_PER_SET = 4096;

export interface ProfileRow {
  /** Kernel name (Kernel.name). */
  name: string;
  /** Dispatches of this kernel that were timed. */
  calls: number;
  /** Sum of their GPU times, in milliseconds. */
  totalMs: number;
  /** totalMs / calls. */
  meanMs: number;
  /** Fraction (0..1) of the summed GPU time of all kernels. */
  share: number;
  /** Steps the aggregates are divided over (markStep() count, at least 1). */
  steps: number;
  /** calls / steps. */
  callsPerStep: number;
  /** totalMs / steps. */
  msPerStep: number;
}

interface Chunk {
  querySet: GPUQuerySet;
  /** Holds resolved timestamps (QUERY_RESOLVE | COPY_SRC). */
  resolve: GPUBuffer;
}

interface Agg {
  calls: number;
  ns: number;
}

export interface StartProfilerOptions {
  /** Queries per chunk; default QUERIES_PER_SET. Must be even and ≤ 4096 (WebGPU limit). */
  queriesPerSet?: number;
  /** Each pass from its own beginning timestamp, never from the previous pass's end (passSpans). */
  rawSpans?: boolean;
}

export class Profiler implements ProfilerHook {
  private readonly device: GPUDevice;
  private readonly perSet: number;
  private readonly rawSpans: boolean;
  private readonly chunks: Chunk[] = [];
  private readonly freeStaging: GPUBuffer[] = [];
  /** "scope\0kernel" of the dispatches recorded in the open encoder, in query order. */
  private names: string[] = [];
  /** Readbacks in flight. */
  private readonly pending = new Set<Promise<void>>();
  private readonly aggs = new Map<string, Agg>();
  private errors: string[] = [];
  /** Dispatches recorded since the last markStep() (or reset()). */
  private sinceMark = 0;
  private marks = 0;
  private active = false;
  private stopped = false;
  private destroyed = false;
  /** Dispatches whose end timestamp preceded the begin (clamped to 0). */
  private negative = 0;
  /** Dispatches timed from the previous pass's end, and the ns that took off their raw spans. */
  private moved = 0;
  private movedNs = 0;
  private nonzero = 0;
  private onGrid = 0;

  constructor(gpu: Gpu, opts: StartProfilerOptions = {}) {
    if (!gpu.features.has('timestamp-query')) {
      throw new GpuError(
        `GPU profiler: the device lacks the 'timestamp-query' feature (adapter: ${gpu.adapterName}); ` +
          'per-kernel GPU times need it. Dawn exposes it on Vulkan/Metal/D3D12 adapters that support timestamps.',
      );
    }
    this.device = gpu.device;
    this.perSet = opts.queriesPerSet ?? QUERIES_PER_SET;
    this.rawSpans = opts.rawSpans ?? false;
    if (this.perSet < 2 || this.perSet % 2 !== 0 || this.perSet > 4096) {
      throw new RangeError(`GPU profiler: queriesPerSet must be an even number in [2, 4096], got ${this.perSet}`);
    }
  }

  private chunk(i: number): Chunk {
    while (this.chunks.length <= i) {
      const n = this.chunks.length;
      this.chunks.push({
        querySet: this.device.createQuerySet({ label: `profiler queries ${n}`, type: 'timestamp', count: this.perSet }),
        resolve: this.device.createBuffer({
          label: `profiler resolve ${n}`,
          size: this.perSet * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      });
    }
    return this.chunks[i];
  }

  // ---- ProfilerHook ----

  beginDispatch(name: string, scope: string): GPUComputePassTimestampWrites {
    const q = this.names.length * 2;
    const c = this.chunk(Math.floor(q / this.perSet));
    const i = q % this.perSet;
    this.names.push(`${scope}${SCOPE_SEP}${name}`);
    this.sinceMark++;
    return { querySet: c.querySet, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /** Staging buffers (MAP_READ) and names of the submission being finished. */
  private submitting: { staging: GPUBuffer[]; names: string[] } | null = null;

  beforeSubmit(encoder: GPUCommandEncoder): void {
    if (!this.names.length) return;
    const queries = this.names.length * 2;
    const staging: GPUBuffer[] = [];
    for (let k = 0; k * this.perSet < queries; k++) {
      const count = Math.min(this.perSet, queries - k * this.perSet);
      const c = this.chunks[k];
      const s = this.freeStaging.pop() ?? this.device.createBuffer({
        label: 'profiler staging',
        size: this.perSet * 8,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.resolveQuerySet(c.querySet, 0, count, c.resolve, 0);
      encoder.copyBufferToBuffer(c.resolve, 0, s, 0, count * 8);
      staging.push(s);
    }
    this.submitting = { staging, names: this.names };
    this.names = [];
  }

  afterSubmit(): void {
    const sub = this.submitting;
    this.submitting = null;
    if (!sub) return;
    const p = this.readBack(sub.staging, sub.names);
    this.pending.add(p);
    p.finally(() => this.pending.delete(p));
  }

  private async readBack(staging: GPUBuffer[], names: string[]): Promise<void> {
    const per = this.perSet / 2; // dispatches per chunk
    let previousEnd: bigint | null = null; // the submission's passes run in record order, across chunks
    for (let k = 0; k < staging.length; k++) {
      const s = staging[k];
      const n = Math.min(per, names.length - k * per);
      try {
        await s.mapAsync(GPUMapMode.READ, 0, n * 16);
      } catch (e) {
        this.errors.push(`reading back timestamps failed: ${(e as Error).message}`);
        s.destroy(); // never mapped: not worth reusing
        continue;
      }
      const spans = passSpans(new BigUint64Array(s.getMappedRange(0, n * 16)), previousEnd, !this.rawSpans);
      previousEnd = spans.lastEnd;
      this.negative += spans.negative;
      this.moved += spans.moved;
      this.movedNs += spans.movedNs;
      for (let j = 0; j < n; j++) {
        const d = spans.ns[j];
        if (d > 0) {
          this.nonzero++;
          if (d % QUANTUM_NS === 0) this.onGrid++;
        }
        const name = names[k * per + j];
        const a = this.aggs.get(name);
        if (a) {
          a.calls++;
          a.ns += d;
        } else this.aggs.set(name, { calls: 1, ns: d });
      }
      s.unmap();
      if (this.destroyed) s.destroy();
      else this.freeStaging.push(s);
    }
  }

  // ---- user API ----

  /**
   * True when every non-zero duration so far is a multiple of 65.536 µs, i.e. Dawn's timestamp
   * quantization is most likely on (null until 8 non-zero durations were seen).
   */
  get timestampsQuantized(): boolean | null {
    return this.nonzero < 8 ? null : this.onGrid === this.nonzero;
  }

  /** What a reader of the profile should know about its timestamps (formatProfile prints it). */
  notes(): string[] {
    return timestampNotes({ quantized: this.timestampsQuantized === true, negative: this.negative, moved: this.moved, movedNs: this.movedNs });
  }

  /** Marks the end of one step (e.g. one training iteration); rows are then given per step. */
  markStep(): void {
    this.marks++;
    this.sinceMark = 0;
  }

  /** Forgets everything timed so far (e.g. after warm-up), readbacks in flight included (it waits for them). */
  async reset(): Promise<void> {
    flush();
    await this.settle();
    this.aggs.clear();
    this.marks = 0;
    this.sinceMark = 0;
    this.negative = 0;
    this.moved = 0;
    this.movedNs = 0;
    this.nonzero = 0;
    this.onGrid = 0;
    this.errors = [];
  }

  /** Installs this profiler as the runtime's hook (startProfiler() does this). */
  start(): void {
    if (this.stopped) throw new GpuError('GPU profiler: a stopped profiler cannot be restarted; start a new one');
    if (this.active) return;
    if (activeProfiler && activeProfiler !== this) activeProfiler.stop();
    setProfilerHook(this); // flushes earlier, untimed work first
    this.active = true;
    activeProfiler = this;
  }

  /** Uninstalls the hook (submitting pending work first); collect() still works afterwards. */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    this.stopped = true;
    if (activeProfiler === this) activeProfiler = null;
    setProfilerHook(null); // flushes with this profiler still installed, then removes it
    void this.settle().then(() => this.destroy());
  }

  private async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.chunks) {
      c.querySet.destroy();
      c.resolve.destroy();
    }
    this.chunks.length = 0;
    for (const s of this.freeStaging) s.destroy();
    this.freeStaging.length = 0;
  }

  /**
   * Submits recorded work, waits for every timestamp readback and returns per-kernel aggregates,
   * sorted by total time (descending). Steps = markStep() count, plus one for dispatches recorded
   * after the last mark; at least 1.
   */
  async collect(): Promise<ProfileRow[]> {
    await this.settled();
    return profileRows(this.merged((key) => key.slice(key.indexOf(SCOPE_SEP) + 1)), this.steps());
  }

  /**
   * As collect(), with each kernel's time split by the scope its dispatches ran in
   * (runtime.profileScope: a model's layers, their backward, the optimiser; '' outside any), and
   * per scope: its rows, sorted by total time, and its kernels' rows, `share` a share of all kernels'.
   */
  async collectByScope(): Promise<ScopeProfile[]> {
    await this.settled();
    const steps = this.steps();
    let totalNs = 0;
    for (const a of this.aggs.values()) totalNs += a.ns;
    const scopes = new Map<string, Map<string, Agg>>();
    for (const [key, a] of this.aggs) {
      const at = key.indexOf(SCOPE_SEP);
      const scope = key.slice(0, at);
      if (!scopes.has(scope)) scopes.set(scope, new Map());
      scopes.get(scope)!.set(key.slice(at + 1), a);
    }
    const out = [...scopes].map(([scope, kernels]): ScopeProfile => {
      const sum = [...kernels.values()].reduce((t, a) => ({ calls: t.calls + a.calls, ns: t.ns + a.ns }), { calls: 0, ns: 0 });
      const [row] = profileRows(new Map([[scope, sum]]), steps, totalNs);
      return { scope, ...row, kernels: profileRows(kernels, steps, totalNs) };
    });
    return out.sort((x, y) => y.totalMs - x.totalMs || x.scope.localeCompare(y.scope));
  }

  /** Submits recorded work and waits for every timestamp readback. */
  private async settled(): Promise<void> {
    if (this.active) flush();
    await this.settle();
    if (this.errors.length) throw new GpuError(`GPU profiler: ${this.errors.join('; ')}`);
  }

  private steps(): number {
    return Math.max(1, this.marks + (this.sinceMark > 0 ? 1 : 0));
  }

  /** The aggregates summed over keys that `group` maps alike. */
  private merged(group: (key: string) => string): Map<string, Agg> {
    const out = new Map<string, Agg>();
    for (const [key, a] of this.aggs) {
      const k = group(key);
      const m = out.get(k);
      out.set(k, m ? { calls: m.calls + a.calls, ns: m.ns + a.ns } : { ...a });
    }
    return out;
  }
}

/**
 * Each pass's GPU ns from `stamps` (begin, end pairs of one submission's passes, in record order),
 * each taken from the later of its beginning and the end of the passes before it (`previousEnd`
 * carries that across chunks; `moveBegins: false` gives raw spans). A pass that ends before its
 * beginning counts as `negative` and 0 ns; one whose beginning moved, as `moved`, with the ns it
 * lost in `movedNs`.
 */
export function passSpans(stamps: BigUint64Array, previousEnd: bigint | null, moveBegins: boolean): { ns: number[]; negative: number; moved: number; movedNs: number; lastEnd: bigint | null } {
  const out = { ns: [] as number[], negative: 0, moved: 0, movedNs: 0, lastEnd: previousEnd };
  for (let j = 0; 2 * j + 1 < stamps.length; j++) {
    const begin = stamps[2 * j];
    const end = stamps[2 * j + 1];
    if (end < begin) {
      out.negative++;
      out.ns.push(0);
      continue;
    }
    let from = begin;
    if (moveBegins && out.lastEnd !== null && out.lastEnd > begin) {
      from = out.lastEnd < end ? out.lastEnd : end;
      out.moved++;
      out.movedNs += Number(from - begin);
    }
    out.ns.push(Number(end - from));
    if (out.lastEnd === null || end > out.lastEnd) out.lastEnd = end;
  }
  return out;
}

/** Profiler.notes()'s lines for what its timestamps showed (passSpans' counts). */
export function timestampNotes(seen: { quantized: boolean; negative: number; moved: number; movedNs: number }): string[] {
  const out: string[] = [];
  const dispatches = (n: number) => `${n} dispatch${n === 1 ? '' : 'es'}`;
  if (seen.quantized) {
    out.push(
      'note: every duration is a multiple of 65.536 µs, so Dawn quantizes timestamps: short kernels read as 0 or 65.5 µs a call and only ' +
        'their means over many calls mean anything; the engine turns this off unless NIN_DAWN_FLAGS names timestamp_quantization (remove it there)',
    );
  }
  if (seen.negative) out.push(`note: by their timestamps, ${dispatches(seen.negative)} ended before beginning; counted as 0 ms`);
  if (seen.moved) {
    out.push(
      `note: by their timestamps, ${dispatches(seen.moved)} began before the one before ended (timestamps that carry over, or passes that overlapped): ` +
        `each timed from that end, which took ${(seen.movedNs / 1e6).toFixed(3)} ms off their raw spans`,
    );
  }
  return out;
}

/** Separates a dispatch's scope from its kernel name in the aggregates' keys. */
const SCOPE_SEP = '\u0000';

/** A profile scope's time (its kernels summed; `name` is the scope) and its kernels' rows. */
export interface ScopeProfile extends ProfileRow {
  scope: string;
  kernels: ProfileRow[];
}

/** Rows from aggregates, slowest first; `share` of `totalNs` (default: their sum). */
function profileRows(aggs: Map<string, Agg>, steps: number, totalNs = [...aggs.values()].reduce((t, a) => t + a.ns, 0)): ProfileRow[] {
  const rows: ProfileRow[] = [...aggs].map(([name, a]) => {
    const totalMs = a.ns / 1e6;
    return {
      name,
      calls: a.calls,
      totalMs,
      meanMs: a.calls ? totalMs / a.calls : 0,
      share: totalNs > 0 ? a.ns / totalNs : 0,
      steps,
      callsPerStep: a.calls / steps,
      msPerStep: totalMs / steps,
    };
  });
  return rows.sort((x, y) => y.totalMs - x.totalMs || x.name.localeCompare(y.name));
}

let activeProfiler: Profiler | null = null;

/**
 * Installs a GPU profiler for all dispatches from now on (replacing any active one).
 * Throws a GpuError if the device has no 'timestamp-query' feature.
 */
export async function startProfiler(opts: StartProfilerOptions = {}): Promise<Profiler> {
  const g = await getGpu();
  const p = new Profiler(g, opts);
  p.start();
  return p;
}

/**
 * A text table of rows, slowest first: kernel, calls/step, ms/step, % of step, mean ms/call; then
 * `notes` (Profiler.notes()), one per line.
 */
export function formatProfile(rows: readonly ProfileRow[], opts: { title?: string; notes?: string[] } = {}): string {
  const sorted = [...rows].sort((a, b) => b.totalMs - a.totalMs || a.name.localeCompare(b.name));
  const steps = rows[0]?.steps ?? 1;
  const body = sorted.map((r) => [r.name, fmtCalls(r.callsPerStep), fmtMs(r.msPerStep), (100 * r.share).toFixed(1), fmtMs(r.meanMs)]);
  body.push(totalRow(rows));
  const title = opts.title ?? `GPU time per kernel (${steps} step${steps === 1 ? '' : 's'}; GPU timestamps)`;
  return [title, ...table(['kernel', 'calls/step', 'ms/step', '% of step', 'ms/call'], body), ...(opts.notes ?? [])].join('\n');
}

/**
 * A text table of Profiler.collectByScope's scopes (a model's layers, each layer's backward, the
 * loss, the optimiser), slowest first: scope, kernel calls/step, ms/step, % of step, and the
 * scope's slowest kernel with its ms/step; then `notes`.
 */
export function formatScopeProfile(scopes: readonly ScopeProfile[], opts: { title?: string; notes?: string[] } = {}): string {
  const steps = scopes[0]?.steps ?? 1;
  const body = scopes.map((s) => {
    const top = s.kernels[0];
    return [s.scope || '(no scope)', fmtCalls(s.callsPerStep), fmtMs(s.msPerStep), (100 * s.share).toFixed(1), top ? `${top.name} ${fmtMs(top.msPerStep)}` : ''];
  });
  body.push(totalRow(scopes));
  const title = opts.title ?? `GPU time per scope (${steps} step${steps === 1 ? '' : 's'}; GPU timestamps)`;
  return [title, ...table(['scope', 'calls/step', 'ms/step', '% of step', 'slowest kernel (ms/step)'], body, [0, 4]), ...(opts.notes ?? [])].join('\n');
}

const fmtCalls = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));
const fmtMs = (v: number): string => (v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(3) : v.toFixed(4));

/** The tables' last row: calls and ms a step summed, and 100 % (0 % for an empty profile). */
function totalRow(rows: readonly ProfileRow[]): string[] {
  const sumMs = rows.reduce((s, r) => s + r.msPerStep, 0);
  return ['total', fmtCalls(rows.reduce((s, r) => s + r.callsPerStep, 0)), fmtMs(sumMs), sumMs > 0 ? '100.0' : '0.0', ''];
}

/** Lines of a table: the head, a rule, the body with a rule before its last (total) row; columns
 * `leftAligned` padded at the end, the others at the start. */
function table(head: string[], body: string[][], leftAligned: number[] = [0]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (leftAligned.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(head), rule, ...body.slice(0, -1).map(line), rule, line(body[body.length - 1])];
}
