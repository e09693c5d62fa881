// Learning-rate schedules (nin/schedule.ts): the rate per step, and the plateau schedule's decisions.
import { describe, expect, it } from 'vitest';
import { learningRate, newPlateauState, parsePlateauState, plateauAfterEpoch, plateauDone, plateauSettings, type PlateauState, type ScheduleOptions } from '../nin/schedule.ts';

const base: ScheduleOptions = { lr: 0.1, schedule: 'constant', stepEpochs: [], gamma: 0.1, warmupEpochs: 0, epochs: 10 };
const close = (a: number, b: number) => expect(a).toBeCloseTo(b, 12);

describe('learningRate', () => {
  it('constant, step at the given epochs, cosine to 0 over the run', () => {
    close(learningRate(base, 95, 10), 0.1);
    const step = { ...base, schedule: 'step' as const, stepEpochs: [5, 8] };
    expect([0, 49, 50, 79, 80, 99].map((s) => learningRate(step, s, 10))).toEqual([0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1, 0.1 * 0.1 * 0.1]);
    const cosine = { ...base, schedule: 'cosine' as const };
    close(learningRate(cosine, 0, 10), 0.1);
    close(learningRate(cosine, 50, 10), 0.05);
    close(learningRate(cosine, 100, 10), 0);
  });

  it('warm-up: from lr/100 linearly over its epochs; cosine starts after it', () => {
    const warm = { ...base, schedule: 'cosine' as const, warmupEpochs: 2 };
    close(learningRate(warm, 0, 10), 0.001);
    close(learningRate(warm, 10, 10), 0.1 * (0.01 + 0.99 * 0.5));
    close(learningRate(warm, 20, 10), 0.1);
    close(learningRate(warm, 60, 10), 0.05); // halfway through the 8 cosine epochs
  });

  it('fractional warm-up (the defaults are 0.05–0.3 epochs): linear within the first epoch, the base rate once it ends', () => {
    const warm = { ...base, warmupEpochs: 0.5 };
    close(learningRate(warm, 0, 10), 0.001);
    close(learningRate(warm, 2, 10), 0.1 * (0.01 + 0.99 * 0.4)); // epoch 0.2 of 0.5
    close(learningRate(warm, 4, 10), 0.1 * (0.01 + 0.99 * 0.8));
    expect(learningRate(warm, 5, 10)).toBe(0.1); // epoch 0.5: warm-up over
    expect(learningRate(warm, 6, 10)).toBe(0.1);
    // Past a whole epoch: progress is epoch / warmupEpochs, not whole epochs done.
    close(learningRate({ ...base, warmupEpochs: 1.5 }, 12, 10), 0.1 * (0.01 + 0.99 * 0.8)); // epoch 1.2 of 1.5
  });

  it('plateau: lr × gamma per drop', () => {
    const plateau = { ...base, schedule: 'plateau' as const };
    expect([0, 1, 2].map((d) => learningRate(plateau, 55, 10, d))).toEqual([0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1]);
    // --lr-drops beyond the paper's 2: every drop counts.
    expect(learningRate(plateau, 55, 10, 3)).toBe(0.1 * 0.1 ** 3);
    expect(learningRate({ ...plateau, gamma: 0.5 }, 55, 10, 4)).toBe(0.1 / 16);
  });
});

describe('the plateau schedule', () => {
  const o = { ...base, schedule: 'plateau' as const, patience: 2, lrDrops: 2 };
  const run = (errors: number[], from: PlateauState = newPlateauState()) => {
    let state = from;
    return errors.map((e) => {
      const r = plateauAfterEpoch(state, e, o);
      state = r.state;
      return r.event;
    });
  };

  it('drops the rate after `patience` epochs without a new lowest error, `lrDrops` times, then ends the run', () => {
    // A new low resets the count; an equal error is not one; the low to beat survives a drop.
    expect(run([0.5, 0.4, 0.45, 0.4, 0.3, 0.3, 0.31, 0.29, 0.35, 0.28, 0.3, 0.3, 0.1])).toEqual([
      'improved', 'improved', 'waiting', 'dropped', 'improved', 'waiting', 'dropped', 'improved', 'waiting', 'improved', 'waiting', 'finished', 'finished',
    ]);
    expect(run([0.5, NaN, NaN])).toEqual(['improved', 'waiting', 'dropped']); // a NaN error is no improvement
    // Nor is a NaN first epoch a lowest error to beat: the first finite error after it is a new low.
    expect(run([NaN, 0.5, 0.6])).toEqual(['waiting', 'improved', 'waiting']);
    expect(run([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])).toEqual(['improved', 'waiting', 'dropped', 'waiting', 'dropped', 'waiting', 'finished', 'finished']);
    // The state a finished run saves: the quiet epochs after its last drop, which plateauDone reports.
    let state = newPlateauState();
    for (const e of [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]) state = plateauAfterEpoch(state, e, o).state;
    expect(state).toEqual({ on: 'train', drops: 2, best: 0.5, sinceBest: 2, finished: true });
    expect(plateauDone('ckpt', 7, state, o)).toMatch(/no new lowest training error for 2 epochs after its last lr drop/);
    const zero = { ...o, lrDrops: 0, patience: 1 };
    expect(plateauAfterEpoch(plateauAfterEpoch(newPlateauState(), 0.5, zero).state, 0.5, zero).event).toBe('finished');
  });

  it('left out (API callers), the settings are the documented defaults: patience 3, 2 drops, the training error', () => {
    expect(plateauSettings({})).toEqual({ patience: 3, lrDrops: 2, on: 'train' });
    const plain = { ...base, schedule: 'plateau' as const };
    let state = newPlateauState();
    const events = [0.5, 0.5, 0.5, 0.5].map((e) => {
      const r = plateauAfterEpoch(state, e, plain);
      state = r.state;
      return r.event;
    });
    expect(events).toEqual(['improved', 'waiting', 'waiting', 'dropped']); // the third epoch without a new low drops
  });

  it('a finished run is refused as nothing to train unless more drops are allowed; a malformed state is an error', () => {
    const finished: PlateauState = { on: 'train', drops: 2, best: 0.1, sinceBest: 2, finished: true };
    expect(plateauDone('ckpt', 7, finished, o)).toBe('ckpt: the plateau schedule ended this run at epoch 7 (no new lowest training error for 2 epochs after its last lr drop): nothing to train (allow more drops with --lr-drops, or continue with another --schedule)');
    expect(plateauDone('ckpt', 7, { ...finished, on: 'val', sinceBest: 1 }, { ...o, patience: 5 })).toMatch(/no new lowest validation error for 1 epoch after/); // what ended it, not today's --patience
    expect(plateauDone('ckpt', 7, finished, { ...o, lrDrops: 3 })).toBeNull();
    expect(plateauDone('ckpt', 7, { ...finished, finished: false }, o)).toBeNull();
    expect(parsePlateauState(JSON.stringify(finished), 'f')).toEqual(finished);
    expect(parsePlateauState(JSON.stringify(newPlateauState()), 'f')).toEqual(newPlateauState());
    expect(() => parsePlateauState('{"on":"train","drops":-1,"best":null,"sinceBest":0,"finished":false}', 'f.safetensors')).toThrow('f.safetensors: its plateau schedule state is malformed');
    // (finished must be a boolean, not truthy; best 1e999 is valid JSON, read as Infinity.)
    for (const bad of ['nonsense', 'null', '{"on":"train","drops":0,"best":null,"sinceBest":0}', '{"on":"test","drops":0,"best":null,"sinceBest":0,"finished":false}', '{"on":"val","drops":0,"best":null,"sinceBest":-1,"finished":false}', '{"on":"train","drops":0,"best":null,"sinceBest":0,"finished":1}', '{"on":"train","drops":0,"best":1e999,"sinceBest":0,"finished":false}']) {
      expect(() => parsePlateauState(bad, 'f'), bad).toThrow(/malformed/);
    }
  });
});
