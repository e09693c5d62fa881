// Measured tile choices for the tiled (GPU) kernels, per adapter: bench/autotune.ts times every
// candidate tile of every GEMM and fused mlpconv a NIN training step runs, on the lent GPU, and
// writes the fastest per shape as a table. The engine uses a table when one matches the adapter:
//   NIN_TUNED=file.json            this table (a warning if it was tuned on another adapter)
//   kernels/tuned/<adapter>.json   else the committed table named after the adapter (slug)
// and falls back to the heuristics (gemmTiles, mlpconvTile) for shapes a table does not name.
// Tables hold tile choices (with the times that decided them, for the record), never kernel
// outputs. test/tuning.test.ts checks against the float64 reference every GEMM tile
// gemmTileProblem accepts on the adapter it runs on (forward; a spanning set of tiles also both
// gradients), and every fused mlpconv tile the autotuner can choose (mlpconvTileCandidates),
// forward and gradients.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from '../engine/device.ts';
// A cycle (mlpconv.ts reads its tuned tiles here): harmless, as neither module calls the other at load.
import { mlpconvTileProblem, type MlpconvShape } from './mlpconv.ts';

export interface GemmTile {
  /** Rows and columns of C per thread (a 16×16-thread workgroup covers 16·TM × 16·TN). */
  TM: number;
  TN: number;
  /** k-depth of the A and B tiles staged in workgroup memory. */
  BK: number;
  /** Kernel version (kernels/gemm.ts): 1 (default) strided rows and columns; 2 contiguous, vec4 reads. */
  v?: 1 | 2;
}

export interface MlpconvTileChoice {
  /** Pixels per workgroup. */
  TP: number;
  /** Channel lanes (threads along channels) of the 256. */
  CL: number;
  /**
   * false: on this adapter the block ran faster as three separate convolutions (each with its own
   * tuned tile) than as the fused kernel, so mlpconv() runs it that way. Absent: fused.
   */
  fused?: boolean;
}

export interface TuningTable {
  /** The adapter it was measured on (Gpu.adapterName). */
  adapter: string;
  date: string;
  gemm: Record<string, GemmTile & { ms?: number; defaultMs?: number }>;
  mlpconv: Record<string, MlpconvTileChoice & { ms?: number; defaultMs?: number; unfusedMs?: number }>;
  /** Split-K factor per GEMM (key with splitK 1), where it was measured; else chooseSplitK's heuristic. */
  splitK?: Record<string, number>;
}

export const GEMM_TILE_SIZES = [1, 2, 4, 8] as const;
export const GEMM_DEPTHS = [16, 32] as const;

/**
 * Floats each staged k-row of A and B is padded by: a k-contiguous operand is staged with
 * consecutive threads writing consecutive k, i.e. rows apart, and an unpadded row length (a
 * multiple of 32 floats) would put all of a warp's writes in one memory bank. Version 1 pads by
 * one float (conflict-free); version 2 by 4, to keep its rows vec4-aligned (4-way at worst).
 */
export function gemmStagePad(t: GemmTile): number {
  return t.v === 2 ? 4 : 1;
}

/** Workgroup memory the staged A and B tiles take. */
export function gemmTileBytes(t: GemmTile): number {
  return 4 * t.BK * (16 * t.TM + 16 * t.TN + 2 * gemmStagePad(t));
}

/** Why a GEMM tile cannot run on a device with `storageBytes` of workgroup memory (null when it can). */
export function gemmTileProblem(t: GemmTile, storageBytes: number): string | null {
  if (!GEMM_TILE_SIZES.includes(t.TM as 1) || !GEMM_TILE_SIZES.includes(t.TN as 1)) return `TM, TN must be one of ${GEMM_TILE_SIZES.join('/')}`;
  if (!GEMM_DEPTHS.includes(t.BK as 16)) return `BK must be one of ${GEMM_DEPTHS.join('/')}`;
  if (t.v !== undefined && t.v !== 1 && t.v !== 2) return `v must be 1 or 2`;
  if (t.v === 2 && (t.TM % 4 !== 0 || t.TN % 4 !== 0)) return `version 2 needs TM and TN of 4 or 8`;
  const bytes = gemmTileBytes(t);
  if (bytes > storageBytes) return `needs ${bytes} bytes of workgroup storage, the device offers ${storageBytes}`;
  return null;
}

/** Key of a GEMM in a table: its name and sizes (the same name at other sizes is another entry). */
export function gemmKey(name: string, M: number, N: number, K: number, splitK: number): string {
  return `${name} ${M}x${N}x${K}${splitK > 1 ? ` /${splitK}` : ''}`;
}

export function mlpconvKey(s: { N: number; H: number; W: number; Ci: number; K: number; C1: number; C2: number; C3: number }, save: boolean): string {
  return `mlpconv${s.K}x${s.K} ${s.N}x${s.H}x${s.W}x${s.Ci} ${s.C1}-${s.C2}-${s.C3}${save ? ' +hidden' : ''}`;
}

/** The block shape a key from mlpconvKey names (null for any other string, `08x…` too: only
 * the exact form is ever looked up). */
export function mlpconvShapeOfKey(key: string): MlpconvShape | null {
  const m = /^mlpconv(\d+)x\1 (\d+)x(\d+)x(\d+)x(\d+) (\d+)-(\d+)-(\d+)( \+hidden)?$/.exec(key);
  if (!m) return null;
  const [K, N, H, W, Ci, C1, C2, C3] = m.slice(1, 9).map(Number);
  const shape = { N, H, W, Ci, K, C1, C2, C3 };
  return mlpconvKey(shape, m[9] !== undefined) === key ? shape : null;
}

/** Whether `key` is exactly what gemmKey writes for some GEMM (a split of 1 is written as none). */
function isGemmKey(key: string, split: boolean): boolean {
  const m = /^(\S+) (\d+)x(\d+)x(\d+)(?: \/(\d+))?$/.exec(key);
  if (!m || (!split && m[5] !== undefined)) return false;
  const [M, N, K, splitK] = [m[2], m[3], m[4], m[5] ?? '1'].map(Number);
  return gemmKey(m[1], M, N, K, splitK) === key;
}

/** Lower-case letters and digits of an adapter name, dashed: the committed table's file name. */
export function adapterSlug(adapterName: string): string {
  return adapterName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

const TUNED_DIR = join(dirname(fileURLToPath(import.meta.url)), 'tuned');

let loaded: { adapter: string; table: TuningTable | null; source: string } | null = null;
let forced: { gemm?: GemmTile | null; mlpconv?: MlpconvTileChoice | null; table?: TuningTable | null } = {};

function parseTable(file: string, fromEnv = false): TuningTable {
  const path = fromEnv ? `${file} (NIN_TUNED)` : file;
  let t: TuningTable;
  try {
    t = JSON.parse(readFileSync(file, 'utf8')) as TuningTable;
  } catch (e) {
    throw new Error(`tuning table ${path}: ${(e as Error).message}`);
  }
  const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(t) || typeof t.adapter !== 'string' || !isObject(t.gemm) || !isObject(t.mlpconv) || (t.splitK !== undefined && !isObject(t.splitK))) {
    throw new Error(`tuning table ${path}: expected { adapter, date, gemm, mlpconv[, splitK] } with objects for gemm, mlpconv and splitK`);
  }
  for (const [section, entries] of [['gemm', t.gemm], ['mlpconv', t.mlpconv]] as const) {
    for (const [key, entry] of Object.entries(entries)) if (!isObject(entry)) throw new Error(`tuning table ${path}: ${section} '${key}': expected an object, got ${JSON.stringify(entry)}`);
  }
  // A misspelt key would never be looked up: the table would change nothing, silently.
  // (Exactly: `… /1` or a number written `08` would pass a looser check and never be looked up.)
  const example = gemmKey('conv5x5_forward', 131072, 192, 75, 1);
  for (const [section, entries] of [['gemm', t.gemm], ['splitK', t.splitK ?? {}]] as const) {
    for (const key of Object.keys(entries)) if (!isGemmKey(key, section === 'gemm')) throw new Error(`tuning table ${path}: ${section} '${key}': not a key gemmKey writes (e.g. '${example}'${section === 'splitK' ? ', without a split' : ''})`);
  }
  const storage = gpu().limits.maxComputeWorkgroupStorageSize;
  for (const [key, tile] of Object.entries(t.gemm)) {
    const problem = gemmTileProblem(tile, storage);
    if (problem) throw new Error(`tuning table ${path}: gemm '${key}': ${problem}`);
  }
  for (const [key, choice] of Object.entries(t.mlpconv)) {
    const shape = mlpconvShapeOfKey(key);
    if (!shape) throw new Error(`tuning table ${path}: mlpconv '${key}': not a key mlpconvKey writes (e.g. '${mlpconvKey({ N: 128, H: 32, W: 32, Ci: 3, K: 5, C1: 192, C2: 160, C3: 96 }, true)}')`);
    if (choice.fused !== undefined && typeof choice.fused !== 'boolean') throw new Error(`tuning table ${path}: mlpconv '${key}': fused must be true or false, got ${JSON.stringify(choice.fused)}`);
    if (choice.TP === undefined && choice.CL === undefined) continue; // the heuristic tile (or unfused)
    const problem = mlpconvTileProblem(shape, choice, storage);
    if (problem) throw new Error(`tuning table ${path}: mlpconv '${key}': ${problem}`);
  }
  for (const [key, split] of Object.entries(t.splitK ?? {})) {
    if (!Number.isInteger(split) || split < 1) throw new Error(`tuning table ${path}: splitK '${key}': expected a whole number ≥ 1, got ${split}`);
  }
  return t;
}

/** NIN_TUNED's table read and checked without a device (the CLI does so before reading any data). */
export function checkTunedSetting(): void {
  if (process.env.NIN_TUNED) parseTable(process.env.NIN_TUNED, true);
}

/** The table in force for the current adapter (loaded once per adapter; `reload` reads it again). */
export function tuningTable(opts: { reload?: boolean } = {}): TuningTable | null {
  if (forced.table !== undefined) return forced.table;
  const adapter = gpu().adapterName;
  if (loaded?.adapter === adapter && !opts.reload) return loaded.table;
  loaded = null;
  let table: TuningTable | null = null;
  const env = process.env.NIN_TUNED;
  const committed = join(TUNED_DIR, `${adapterSlug(adapter)}.json`);
  let source = `none (no NIN_TUNED, no ${committed})`;
  if (env) {
    table = parseTable(env, true);
    source = `NIN_TUNED=${env}`;
    if (table.adapter !== adapter) console.warn(`NIN_TUNED=${env} was measured on '${table.adapter}'; this adapter is '${adapter}'`);
  } else if (existsSync(committed)) {
    table = parseTable(committed);
    source = committed;
  }
  loaded = { adapter, table, source };
  return table;
}

/** Where the table in force came from (for gpu-info and logs). */
export function tuningSource(): string {
  if (forced.table !== undefined) return forced.table ? 'forced' : 'none (forced)';
  tuningTable();
  return loaded!.source;
}

/** The tile a table (or a forced choice) names for this GEMM, if any. */
export function tunedGemmTile(key: string): GemmTile | undefined {
  if (forced.gemm !== undefined) return forced.gemm ?? undefined;
  return tuningTable()?.gemm[key];
}

/** The split-K factor a table names for this GEMM (key built with splitK 1), if any. */
export function tunedSplitK(key: string): number | undefined {
  return tuningTable()?.splitK?.[key];
}

export function tunedMlpconvTile(key: string): MlpconvTileChoice | undefined {
  if (forced.mlpconv !== undefined) return forced.mlpconv ?? undefined;
  return tuningTable()?.mlpconv[key];
}

/**
 * Overrides for tests and the autotuner: a tile every GEMM / fused mlpconv must use, or a table
 * in place of the adapter's (null: none). Call with {} to restore the normal lookup.
 */
export function forceTuning(f: { gemm?: GemmTile | null; mlpconv?: MlpconvTileChoice | null; table?: TuningTable | null }): void {
  forced = f;
}
