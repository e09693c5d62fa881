// Checkpoints in the safetensors format: weights, optimiser velocities and preprocessing statistics
// as tensors; model config, training options, epoch, step and seed in the metadata (the RNG state:
// every random stream of a run derives from the seed plus epoch/step counters). Written atomically,
// with a checksum of the tensor data that every load checks (safetensors.ts: TENSOR_DATA_CHECKSUM).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from '../engine/device.ts';
import { upload } from '../engine/runtime.ts';
import { SGD } from '../kernels/sgd.ts';
import { classifierParamNames, fcInputShape, NinModel, parameterSpecs, type ModelConfig } from './model.ts';
import { classesDiffer } from './datasets.ts';
import { DATASETS, type DatasetName } from './data/registry.ts';
import { Preprocessor } from './preprocessing.ts';
import { parsePlateauState, type PlateauState } from './schedule.ts';
import { readSafetensors, writeSafetensors, type TensorMap } from './safetensors.ts';
import type { TrainOptions } from './train.ts';
import { CHECKPOINT_FORMAT, checkpointCount, checkpointHeaderFields, formatProblem, type RunProvenance } from './run-directory.ts';

/** Weights that are NaN or infinite: saveCheckpoint refuses to write them. */
export class NonFiniteWeights extends Error {
  override name = 'NonFiniteWeights';
}

/** How far a checkpoint saved within an epoch got into it: the running sums of its epoch record. */
export interface PartialEpoch {
  /** Batches of the epoch done, of `stepsPerEpoch`: all of them when the epoch's evaluation could
   * not run (a streamed test picture could not be read), which the resume does first. */
  batches: number;
  stepsPerEpoch: number;
  lossSum: number;
  wrong: number;
  seen: number;
  seconds: number;
}

export interface Checkpoint {
  path: string;
  config: ModelConfig;
  options: TrainOptions;
  /** Epochs completed. */
  epoch: number;
  /** Steps taken: beyond epoch × steps per epoch when saved within an epoch (then `partialEpoch` is set). */
  step: number;
  partialEpoch: PartialEpoch | null;
  /** The run's id, kept across resumes (null in checkpoints written before runs had one). */
  runId: string | null;
  /** The stretch of the run that saved it: one process's part of the run, named in its log's start
   * or resume record (null in checkpoints written before stretches had ids; see currentHistory). */
  stretch: string | null;
  /** The plateau schedule's state (null if the run did not use it). */
  plateau: PlateauState | null;
  /** The step since which every batch's class maps were dead (train.ts deadClassMapsWatch), if
   * they were when it was saved: a resumed run stops where the uninterrupted one would. */
  deadMapsSince: number | null;
  preprocessor: Preprocessor;
  params: Map<string, Float32Array>;
  velocities: Map<string, Float32Array> | null;
  /** Throws, naming the file, where a parameter `want` names (the network's, by name and shape) has
   * no weights here or weights of another shape (a reshaped header passes a length check). */
  checkWeights(want: readonly { name: string; shape: readonly number[] }[]): void;
  /** Copies the weights (and velocities, when `opt` is given) into a model built from `config`. */
  restore(model: NinModel, opt?: SGD): void;
  /** A new model holding the checkpoint's weights. */
  buildModel(): NinModel;
  /**
   * Starts a model of another network, trained on `data`, from these weights (`nin train
   * --weights-from`): the parameters startingWeights takes get the checkpoint's values, the others
   * keep their fresh init. Throws when none is taken. No optimiser state is taken.
   */
  startFrom(model: NinModel, data: Pick<TrainOptions, 'dataset' | 'imageFolder'>): StartingWeights;
}

/** Which parameters a new run takes from a checkpoint, and why each other one starts afresh. */
export interface StartingWeights {
  taken: string[];
  fresh: { name: string; shape: readonly number[]; why: string }[];
}

type RunNetwork = { config: ModelConfig; options: Pick<TrainOptions, 'dataset' | 'imageFolder'> };

/**
 * What a new network takes from another's weights (`--weights-from`; pure, so the CLI asks it
 * before any GPU work): each parameter the source holds by the same name and shape, except
 *   - the class-score layer (class maps under GAP, else the FC layer) where the classes differ, or
 *     where the same names are another layer there (GAP's class maps, an FC head's features);
 *   - an FC layer over maps of another size (its flattened positions would be other pixels, even
 *     where the count agrees);
 *   - a bias whose weights start afresh (alone it carries nothing of the source).
 * `theirs.shapes`: the source's parameter shapes by name.
 */
export function startingWeights(ours: RunNetwork, theirs: RunNetwork & { shapes: ReadonlyMap<string, readonly number[]> }): StartingWeights {
  const ourClass = classifierParamNames(ours.config);
  const theirClass = classifierParamNames(theirs.config);
  const classes = classesDiffer(theirs.options, ours.options);
  const [ourMaps, theirMaps] = [fcInputShape(ours.config), fcInputShape(theirs.config)];
  const specs = parameterSpecs(ours.config);
  const why = new Map<string, string>();
  for (const p of specs.filter((s) => !s.isBias)) why.set(p.name, weightReason(p.name, p.shape));
  for (const p of specs.filter((s) => s.isBias)) {
    const own = weightReason(p.name, p.shape);
    why.set(p.name, own !== '' ? own : why.get(p.name.replace(/\.b(\d*)$/, '.w$1')) !== '' ? 'its weights start afresh' : '');
  }
  function weightReason(name: string, shape: readonly number[]): string {
    const found = theirs.shapes.get(name);
    if (!found) return 'not in it';
    if (found.join() !== shape.join()) return `theirs [${found.join(', ')}]`;
    if (ourClass.includes(name) && classes) return 'other classes';
    if (ourClass.includes(name) !== theirClass.includes(name)) return ourClass.includes(name) ? 'not the class-score layer there' : 'the class-score layer there';
    if (name === 'fc.w' && ourMaps && theirMaps && ourMaps.join() !== theirMaps.join()) return `over ${theirMaps.join('×')} maps there`;
    return '';
  }
  return {
    taken: specs.filter((p) => why.get(p.name) === '').map((p) => p.name),
    fresh: specs.filter((p) => why.get(p.name) !== '').map((p) => ({ name: p.name, shape: p.shape, why: why.get(p.name)! })),
  };
}

/** A run's options as its checkpoints and log save them: without the callbacks, the directory absolute. */
export function savedOptions(o: TrainOptions): Record<string, unknown> {
  const { log: _log, interrupt: _interrupt, onCheckpoint: _onCheckpoint, outDirSeries: _series, ...options } = o;
  return { ...options, outDir: resolve(options.outDir) }; // a resume from elsewhere finds the run
}

let software: RunProvenance['software'] | undefined;
/** nin's version, the commit of the checkout it runs from and whether tracked files differ from it
 * (git, where there is one), Node's version: once per process. */
export function softwareVersions(): RunProvenance['software'] {
  if (software) return software;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  let code: { commit?: string; changed?: boolean } = {};
  try {
    code = { commit: git('rev-parse', 'HEAD'), changed: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    // not a git checkout (an npm install), or no git: the version alone
  }
  const nin = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  return (software = { nin, ...code, node: process.version });
}

/** RunProvenance of a run with options `o` and network `config` on this device. */
export function runProvenance(o: TrainOptions, config: ModelConfig): RunProvenance {
  return { options: savedOptions(o), config, adapter: gpu().adapterName, software: softwareVersions() };
}

export async function saveCheckpoint(
  path: string,
  s: { model: NinModel; opt: SGD; preprocessor: Preprocessor; epoch: number; step: number; options: TrainOptions; partialEpoch?: PartialEpoch; runId?: string; stretch?: string; plateau?: PlateauState; deadMapsSince?: number },
): Promise<void> {
  const tensors: TensorMap = {};
  for (const p of s.model.params) {
    const data = await p.tensor.toArray();
    // A finite loss does not make the update after it finite: never replace a good checkpoint with NaN weights.
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new NonFiniteWeights(`parameter '${p.name}' holds ${data[bad]} (at index ${bad}) at step ${s.step}: ${path} not written`);
    tensors[`param.${p.name}`] = { dtype: 'F32', shape: [...p.tensor.shape], data };
  }
  const velocities = await s.opt.state();
  const badVelocity = s.model.params.findIndex((_, i) => velocities[i].some((v) => !Number.isFinite(v)));
  if (badVelocity >= 0) throw new NonFiniteWeights(`the momentum of parameter '${s.model.params[badVelocity].name}' is not finite at step ${s.step}: ${path} not written`);
  s.model.params.forEach((p, i) => (tensors[`velocity.${p.name}`] = { dtype: 'F32', shape: [...p.tensor.shape], data: velocities[i] }));
  const pre = s.preprocessor.toTensors();
  Object.assign(tensors, pre.tensors);
  writeSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(s.model.config),
    options: JSON.stringify(savedOptions(s.options)),
    epoch: String(s.epoch),
    step: String(s.step),
    ...(s.partialEpoch ? { partial_epoch: JSON.stringify(s.partialEpoch) } : {}),
    ...(s.runId ? { run_id: s.runId } : {}),
    ...(s.stretch ? { stretch: s.stretch } : {}),
    ...(s.plateau ? { plateau: JSON.stringify(s.plateau) } : {}),
    ...(s.deadMapsSince !== undefined ? { dead_maps_since: String(s.deadMapsSince) } : {}),
    seed: String(s.options.seed),
    adapter: gpu().adapterName,
    software: JSON.stringify(softwareVersions()),
    saved: new Date().toISOString(),
    ...pre.metadata,
  });
}

/** Why a checkpoint's saved data set cannot be its network's: not a data set this tool knows, or
 * one of other images or classes (eval read that test set and failed on the GPU; export named the
 * classes by it). An image folder's network is fitted to its folder. */
function savedDataProblem(o: TrainOptions, config: ModelConfig): string | null {
  if (o.dataset === 'folder') return null;
  const spec = Object.hasOwn(DATASETS, o.dataset) ? DATASETS[o.dataset as DatasetName] : undefined;
  if (!spec) return `dataset must be one of ${Object.keys(DATASETS).join(', ')}, folder, got ${JSON.stringify(o.dataset) ?? 'undefined'}`;
  const { height, width, channels } = config.input;
  if (height !== spec.height || width !== spec.width || channels !== spec.channels) return `dataset ${o.dataset} has ${spec.height}×${spec.width}×${spec.channels} images, but the network (its config) takes ${height}×${width}×${channels}`;
  if (config.classes !== spec.classNames.length) return `dataset ${o.dataset} has ${spec.classNames.length} classes, but the network (its config) has ${config.classes}`;
  return null;
}

export function loadCheckpoint(path: string): Checkpoint {
  const { tensors, metadata } = readSafetensors(path);
  const problem = formatProblem(path, metadata);
  if (problem) throw new Error(problem);
  const { config, options, epoch } = checkpointHeaderFields(path, metadata);
  const dataProblem = savedDataProblem(options, config);
  if (dataProblem) throw new Error(`${path}: metadata "options": ${dataProblem}`);
  let preprocessor: Preprocessor;
  try {
    preprocessor = Preprocessor.fromTensors(tensors, metadata);
    preprocessor.checkInput(config.input);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  const params = new Map<string, Float32Array>();
  const velocities = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>(); // by tensor name: a reshaped header passes a length check
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith('param.') || name.startsWith('velocity.')) {
      if (!(t.data instanceof Float32Array)) throw new Error(`${path}: tensor '${name}' is ${t.dtype}, expected F32`);
      // saveCheckpoint never writes NaN or infinite values: such a file was damaged after.
      const bad = t.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`${path}: tensor '${name}' holds ${t.data[bad]} at index ${bad}: the file is damaged`);
      (name.startsWith('param.') ? params : velocities).set(name.slice(name.indexOf('.') + 1), t.data);
      shapes.set(name, t.shape);
    }
  }
  const expectShape = (tensor: string, what: string, want: readonly number[]) => {
    const found = shapes.get(tensor)!;
    if (found.join() !== want.join()) throw new Error(`${path}: ${what} has shape [${found.join(', ')}], the model's is [${want.join(', ')}]`);
  };
  const checkpoint: Checkpoint = {
    path,
    config,
    options,
    epoch,
    step: checkpointCount(path, metadata, 'step'),
    partialEpoch: metadata.partial_epoch ? parsePartialEpoch(metadata.partial_epoch, path) : null,
    runId: metadata.run_id ?? null,
    stretch: metadata.stretch ?? null,
    plateau: metadata.plateau ? parsePlateauState(metadata.plateau, path) : null,
    deadMapsSince: metadata.dead_maps_since === undefined ? null : checkpointCount(path, metadata, 'dead_maps_since'),
    preprocessor,
    params,
    velocities: velocities.size ? velocities : null,
    checkWeights(want) {
      for (const { name, shape } of want) {
        if (!params.has(name)) throw new Error(`${path}: no weights for parameter '${name}'`);
        expectShape(`param.${name}`, `parameter '${name}'`, shape);
      }
    },
    restore(model, opt) {
      checkpoint.checkWeights(model.params.map((p) => ({ name: p.name, shape: p.tensor.shape })));
      const state: Float32Array[] = [];
      if (opt) {
        for (const p of model.params) {
          const v = velocities.get(p.name);
          if (!v) throw new Error(`${path}: no optimiser state for parameter '${p.name}'`);
          expectShape(`velocity.${p.name}`, `the optimiser state of parameter '${p.name}'`, p.tensor.shape);
          state.push(v);
        }
      }
      // Checked whole before the first upload: a refused file leaves the model as it was.
      model.params.forEach((p) => upload(p.tensor, params.get(p.name)!));
      try {
        opt?.loadState(state, model.params.map((p) => p.name));
      } catch (e) {
        throw new Error(`${path}: ${(e as Error).message}`);
      }
    },
    startFrom(model, data) {
      const theirShapes = new Map([...shapes].filter(([name]) => name.startsWith('param.')).map(([name, shape]) => [name.slice('param.'.length), shape]));
      const r = startingWeights({ config: model.config, options: data }, { config, options, shapes: theirShapes });
      if (!r.taken.length) throw new Error(`${path}: none of its weights fits the network ${model.config.name}: nothing to start from`);
      for (const name of r.taken) upload(model.params.find((p) => p.name === name)!.tensor, params.get(name)!);
      return r;
    },
    buildModel() {
      const model = new NinModel(config, 1);
      try {
        checkpoint.restore(model);
      } catch (e) {
        model.dispose(); // its freshly initialised weights; a library caller goes on with the device
        throw e;
      }
      return model;
    },
  };
  return checkpoint;
}

function parsePartialEpoch(json: string, path: string): PartialEpoch {
  let p: Partial<PartialEpoch>;
  try {
    p = (JSON.parse(json) ?? {}) as Partial<PartialEpoch>;
  } catch {
    p = {};
  }
  const ok = (['batches', 'stepsPerEpoch', 'lossSum', 'wrong', 'seen', 'seconds'] as const).every((k) => typeof p[k] === 'number' && Number.isFinite(p[k]));
  if (!ok || !(p.batches! > 0 && p.batches! <= p.stepsPerEpoch!)) throw new Error(`${path}: its partial_epoch metadata is malformed: ${json}`);
  return p as PartialEpoch;
}
