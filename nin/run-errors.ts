// The errors a run ends with, other than a bug: refused before it starts, stopped, or interrupted.

/** A run that cannot go on (a NaN or infinite loss, dead class maps): it stops, naming the step and the last good checkpoint. */
export class TrainingStopped extends Error {
  override name = 'TrainingStopped';
}

/** A run or evaluation refused: options or data that do not fit its model, checkpoint or directory.
 * A RangeError, as an argument out of range, named so the CLI prints its message alone. */
export class RunRefused extends RangeError {
  override name = 'RunRefused';
}

/** A run stopped on request (`interrupt`), its checkpoint saved where it stood: --resume continues it exactly. */
export class TrainingInterrupted extends Error {
  override name = 'TrainingInterrupted';
  constructor(message: string, readonly checkpoint: string) {
    super(message);
  }
}
