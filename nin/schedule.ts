// Learning-rate schedules: constant, step (×gamma at given epochs), cosine, and plateau (×gamma when
// the watched error stops improving: the paper's), with linear warm-up.

import { counted } from './text.ts';

export interface ScheduleOptions {
  /** Base learning rate. */
  lr: number;
  schedule: 'constant' | 'step' | 'cosine' | 'plateau';
  /** Step schedule: epochs at which the rate is multiplied by gamma. */
  stepEpochs: number[];
  /** Step and plateau schedules: the factor of each drop. */
  gamma: number;
  /** Linear warm-up from lr/100 over this many epochs (may be fractional). */
  warmupEpochs: number;
  epochs: number;
  /** Plateau schedule: epochs in a row without a new lowest error before the rate drops (default 3). */
  patience?: number;
  /** Plateau schedule: the number of drops (default 2: the paper's, to 1 % of the initial rate);
   * a plateau after the last one ends the run. */
  lrDrops?: number;
  /** Plateau schedule: the error watched, the training set's running error over each epoch (the
   * paper's "accuracy on the training set") or the validation split's (default 'train'). */
  plateauOn?: 'train' | 'val';
}

/** The step schedule's drops when --lr-steps names none: at half and three quarters of the run,
 * rounded; one drop where they meet (3 epochs: both are 2, and two drops there would cut lr ×gamma²);
 * none at the run's end, where it would change nothing (2 epochs: 1 only). A 1-epoch run, where
 * rounding leaves no drop inside, drops at 0.5 and 0.75 unrounded. */
export function defaultStepEpochs(epochs: number): number[] {
  const rounded = [...new Set([Math.round(epochs * 0.5), Math.round(epochs * 0.75)])].filter((e) => e > 0 && e < epochs);
  return rounded.length > 0 ? rounded : [epochs * 0.5, epochs * 0.75];
}

/** The learning rate at epoch `step / stepsPerEpoch` (fractional): train.ts passes the epoch's
 * index × stepsPerEpoch + its batches done, not the run's step count, which a batch size changed
 * on resume would misplace. `drops`: the plateau schedule's drops so far (PlateauState). */
export function learningRate(o: ScheduleOptions, step: number, stepsPerEpoch: number, drops = 0): number {
  const epoch = step / stepsPerEpoch; // fractional
  let lr = o.lr;
  if (o.schedule === 'step') {
    for (const e of o.stepEpochs) if (epoch >= e) lr *= o.gamma;
  } else if (o.schedule === 'cosine') {
    const t = Math.min(1, Math.max(0, (epoch - o.warmupEpochs) / Math.max(o.epochs - o.warmupEpochs, 1e-9)));
    lr = 0.5 * o.lr * (1 + Math.cos(Math.PI * t));
  } else if (o.schedule === 'plateau') {
    lr *= o.gamma ** drops;
  }
  if (o.warmupEpochs > 0 && epoch < o.warmupEpochs) {
    const w = epoch / o.warmupEpochs;
    lr *= 0.01 + 0.99 * w;
  }
  return lr;
}

/**
 * The plateau schedule, as the paper trained: "until the accuracy on the training set stops
 * improving, and then the learning rate is lowered by a scale of 10. This procedure is repeated
 * once such that the final learning rate is 1 % of the initial value." Its state depends on the
 * run's history, so checkpoints keep it.
 */
export interface PlateauState {
  /** The error watched (ScheduleOptions.plateauOn): `best` is its lowest. */
  on: 'train' | 'val';
  /** Drops of the rate so far. */
  drops: number;
  /** The lowest watched error so far (null before the first epoch). */
  best: number | null;
  /** Epochs since that lowest error. */
  sinceBest: number;
  /** A plateau came after the last drop: the run is done. */
  finished: boolean;
}

export function newPlateauState(on: 'train' | 'val' = 'train'): PlateauState {
  return { on, drops: 0, best: null, sinceBest: 0, finished: false };
}

export const PLATEAU_DEFAULTS = { patience: 3, lrDrops: 2, on: 'train' } as const;

/** The refusal of a plateau schedule that watches a validation error the run does not have. */
export const PLATEAU_ON_VAL_WITHOUT_VAL = '--plateau-on val watches the validation error: give a validation split (--val N, --val paper, or an image folder\'s --val folder)';

/** The plateau schedule's settings, with the defaults for those not given (API callers may omit them). */
export function plateauSettings(o: Pick<ScheduleOptions, 'patience' | 'lrDrops' | 'plateauOn'>): { patience: number; lrDrops: number; on: 'train' | 'val' } {
  return { patience: o.patience ?? PLATEAU_DEFAULTS.patience, lrDrops: o.lrDrops ?? PLATEAU_DEFAULTS.lrDrops, on: o.plateauOn ?? PLATEAU_DEFAULTS.on };
}

/** The state after an epoch whose watched error was `error` (NaN: not an improvement), and what happened. */
export function plateauAfterEpoch(state: PlateauState, error: number, o: ScheduleOptions): { state: PlateauState; event: 'improved' | 'waiting' | 'dropped' | 'finished' } {
  if (state.finished) return { state, event: 'finished' };
  if (Number.isFinite(error) && (state.best === null || error < state.best)) return { state: { ...state, best: error, sinceBest: 0 }, event: 'improved' };
  const sinceBest = state.sinceBest + 1;
  if (sinceBest < plateauSettings(o).patience) return { state: { ...state, sinceBest }, event: 'waiting' };
  // The count starts again at each drop; the error to beat stays the run's lowest.
  if (state.drops < plateauSettings(o).lrDrops) return { state: { ...state, drops: state.drops + 1, sinceBest: 0 }, event: 'dropped' };
  return { state: { ...state, sinceBest, finished: true }, event: 'finished' };
}

/** Why a resume would train nothing: the plateau schedule ended the run and allows no more drops; or null. */
export function plateauDone(checkpoint: string, epochsDone: number, state: PlateauState, o: ScheduleOptions): string | null {
  if (!state.finished || state.drops < plateauSettings(o).lrDrops) return null;
  const quiet = state.sinceBest;
  return `${checkpoint}: the plateau schedule ended this run at epoch ${epochsDone} (no new lowest ${state.on === 'val' ? 'validation' : 'training'} error for ${counted(quiet, 'epoch')} after its last lr drop): nothing to train (allow more drops with --lr-drops, or continue with another --schedule)`;
}

/** A PlateauState from a checkpoint's metadata, checked. */
export function parsePlateauState(json: string, where: string): PlateauState {
  let p: Partial<PlateauState> | null;
  try {
    p = JSON.parse(json);
  } catch {
    p = null;
  }
  const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  const ok =
    typeof p === 'object' && p !== null && (p.on === 'train' || p.on === 'val') && count(p.drops) && count(p.sinceBest) &&
    (p.best === null || Number.isFinite(p.best)) && typeof p.finished === 'boolean';
  if (!ok) throw new Error(`${where}: its plateau schedule state is malformed: ${json}`);
  return p as PlateauState;
}

/** `cosine`; `step at 50,75 ×0.1`; `plateau on train, patience 3, 2 drops ×0.1`. */
export function describeSchedule(o: Record<string, unknown>): string | undefined {
  if (typeof o.schedule !== 'string') return undefined;
  const numbers = (...values: unknown[]) => values.every((v) => typeof v === 'number'); // (else a damaged header: nothing said)
  if (o.schedule === 'step' && Array.isArray(o.stepEpochs)) return numbers(o.gamma, ...o.stepEpochs) ? `step at ${o.stepEpochs.join(',')} ×${o.gamma}` : undefined;
  if (o.schedule === 'plateau') {
    const p = plateauSettings(o as Pick<ScheduleOptions, 'patience' | 'lrDrops' | 'plateauOn'>); // as a checkpoint's header holds them
    return numbers(o.gamma, p.patience, p.lrDrops) && typeof p.on === 'string' ? `plateau on ${p.on}, patience ${p.patience}, ${p.lrDrops} drops ×${o.gamma}` : undefined;
  }
  return o.schedule;
}
