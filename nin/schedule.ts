// Learning-rate schedules: constant, step (×gamma at given epochs) and cosine, with linear warm-up.

export interface ScheduleOptions {
  /** Base learning rate. */
  lr: number;
  schedule: 'constant' | 'step' | 'cosine';
  /** Step schedule: epochs at which the rate is multiplied by gamma. */
  stepEpochs: number[];
  gamma: number;
  /** Linear warm-up from lr/100 over this many epochs (may be fractional). */
  warmupEpochs: number;
  epochs: number;
}

/** The learning rate at optimiser step `step` (0-based) with `stepsPerEpoch` steps an epoch. */
export function learningRate(o: ScheduleOptions, step: number, stepsPerEpoch: number): number {
  const epoch = step / stepsPerEpoch; // fractional
  let lr = o.lr;
  if (o.schedule === 'step') {
    for (const e of o.stepEpochs) if (epoch >= e) lr *= o.gamma;
  } else if (o.schedule === 'cosine') {
    const t = Math.min(1, Math.max(0, (epoch - o.warmupEpochs) / Math.max(o.epochs - o.warmupEpochs, 1e-9)));
    lr = 0.5 * o.lr * (1 + Math.cos(Math.PI * t));
  }
  if (o.warmupEpochs > 0 && epoch < o.warmupEpochs) {
    const w = epoch / o.warmupEpochs;
    lr *= 0.01 + 0.99 * w;
  }
  return lr;
}
