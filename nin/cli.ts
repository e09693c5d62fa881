// The `nin` command: train, eval, predict, visualize, compare, export, models.
// Bad flags or inconsistent options are usage errors (exit code 2) found before any GPU work.
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkSettings, closeGpu, getGpu, GpuOutOfMemory } from '../engine/device.ts';
import { checkTunedSetting } from '../kernels/tuning.ts';
import { batchTooLarge, builtInModel, classMapsOf, describeConfig, fitToData, largestBatch, HEADS, INITS, modelConfig, MODELS, parameterSpecs, parseModelConfig, plan, type ModelConfig } from './model.ts';
import { channelsNote, folderChanged, folderClassLists, folderImageShape, folderListDigest, folderValChanged, imagesInDirectory, scanImageFolder, scanLabelledFolder, scanRunFolder } from './data/folder.ts';
import { savedOptions, startingWeights, type Checkpoint } from './checkpoint.ts';
import { batchwise, PREPROCESS_KINDS, type PreprocessKind } from './preprocessing.ts';
import { defaultValidationFrom, drawnBySeed, VALIDATION_FROM, validationFromOf, validationPlan, validationSize } from './data/split.ts';
import { firstDuplicateKey, readSafetensorsMetadata } from './safetensors.ts';
import { shuffleChangedWithinEpoch, checkpointHeaderFields, isOwnRunDirectory, notACheckpoint, nothingToTrain, resumeClashes, runDirectoryInUse, runDirectoryProblem, reservedRunFileName, runFileKind, runFilesIn, stoppedBeforeFirstSave, unusedRunDirectory, type ResumeSource } from './run-directory.ts';
import { AtomicFile, danglingLink, makeDirectory, writeFileAtomic } from './data/io.ts';
import { DATASETS as DATASET_SPECS, splitCount } from './data/registry.ts';
import { type ImageFolderOptions, type TrainOptions, type TrainResult } from './train.ts';
import type { RangeTest } from './lr-find.ts';
import { defaultStepEpochs, parsePlateauState, PLATEAU_DEFAULTS, PLATEAU_ON_VAL_WITHOUT_VAL, plateauDone, type PlateauState } from './schedule.ts';
import { isMainModule } from './is-main.ts';
import { counted, shellWord, tableLines } from './text.ts';

/** A command that cannot run as given: exit 2, before any GPU work. `showUsage` false: the flags
 * are well formed and what they name is not usable (a file that is no checkpoint, a checkpoint
 * whose weights fit no part of the network, a directory without images): the usage would only
 * bury the message. */
export class UsageError extends Error {
  override name = 'UsageError';
  declare readonly showUsage: boolean;
  constructor(message: string, showUsage = true) {
    super(message);
    // Not enumerable: an error is still equal to another of its message (as tests compare them).
    Object.defineProperty(this, 'showUsage', { value: showUsage, enumerable: false });
  }
}

interface Defaults { model: string; augment: boolean; preprocess: PreprocessKind; epochs: number; lr: number; batch: number; schedule: TrainOptions['schedule']; warmup: number; classMaps?: TrainOptions['classMaps']; init?: TrainOptions['init']; classLrMult?: number }
// Defaults per data set: the paper's nets, preprocessing and solver, with our init, lr, warm-up and
// step schedule where the paper's did not leave chance here, and linear class maps. With the
// ReLU, the paper's CIFAR-10 recipe (Gaussian σ = 0.05, lr 0.1) started to learn and then every
// class map died, in each run we made (README, "Class maps"); `--class-maps relu` is the paper's
// net exactly. CIFAR-100 trains without augmentation, as the paper's 35.68 % did.
// MNIST: with Gaussian σ = 0.05 at lr 0.01 the paper's MNIST net stayed at chance for a whole
// epoch, with or without the ReLU; He init, lr 0.02 and a warm-up reached 3.2 % test error in it.
// CIFAR: after one epoch (no augmentation) Gaussian σ = 0.05 at lr 0.1 gave 74.1 % test error in
// the PyTorch stand-in and collapsed to one class in our engine (89.1 %); He, lr 0.02 and a
// 0.3-epoch warm-up gave 67.2 % and 53.7 % (RESULTS.md, sessions 10 and 11). CIFAR-100 has the
// same net and takes the same recipe but for augmentation, untried on its data. SVHN takes the authors' own settings
// (cuda-convnet NIN/svhn_params: lr 0.1, the class-map layer at 0.1×, weight decay 1e-4 as Caffe
// counts it), untried here: no SVHN data.
const DATASET_DEFAULTS: Record<string, Defaults> = {
  mnist: { model: 'mnist', augment: false, preprocess: 'standardize', epochs: 20, lr: 0.02, batch: 64, schedule: 'step', warmup: 0.2, classMaps: 'linear', init: 'he' },
  cifar10: { model: 'cifar10', augment: true, preprocess: 'gcn-zca', epochs: 100, lr: 0.02, batch: 128, schedule: 'step', warmup: 0.3, classMaps: 'linear', init: 'he' },
  cifar100: { model: 'cifar100', augment: false, preprocess: 'gcn-zca', epochs: 100, lr: 0.02, batch: 128, schedule: 'step', warmup: 0.3, classMaps: 'linear', init: 'he' },
  svhn: { model: 'svhn', augment: false, preprocess: 'gcn-lcn', epochs: 40, lr: 0.1, batch: 128, schedule: 'step', warmup: 0, classMaps: 'linear', classLrMult: 0.1 },
  // Images of one's own: the paper's CIFAR net fitted to them, with the MNIST and CIFAR recipes'
  // init, lr and class maps, per-channel standardisation (ZCA's matrix grows with the square of
  // the image), no augmentation (a flip changes what a digit or a letter is: --aug turns it on),
  // and a cosine schedule, which needs no step epochs chosen for a set of unknown size.
  folder: { model: 'cifar10', augment: false, preprocess: 'standardize', epochs: 30, lr: 0.02, batch: 64, schedule: 'cosine', warmup: 0.3, classMaps: 'linear', init: 'he' },
};

/** An FC head's own rate (--class-lr-mult) unless a data set sets one. Its logits move with the sum of
 * squares of its hundreds of inputs (490 for mnist-small, 640 for cifar10-small), GAP's class
 * maps' with that of a 1×1 layer's tens, averaged over the map: at the GAP recipe's rate,
 * mnist-small --head fc (6,000 images) collapsed to one class in 1 of 6 seeds, and in 0 of 6 at
 * 0.1× (RESULTS.md, session 41). */
const FC_CLASS_LR_MULT = 0.1;

/** `npm run train` with no arguments: the small MNIST NIN, sized to finish in ≤ 10 minutes on a
 * 2-core CPU through lavapipe (one pass over all 60k training images, then the full 10k test set). */
export const MAIN_JOB: Defaults = {
  model: 'mnist-small', augment: false, preprocess: 'standardize', epochs: 1, lr: 0.025, batch: 16, schedule: 'cosine', warmup: 0.05,
};

/** Models sized for a CPU adapter train with their own defaults, over their data set's. */
const MODEL_DEFAULTS: Record<string, Partial<Defaults>> = {
  // 2 epochs over CIFAR-10's 50k training images: about 16 minutes on 2 cores through lavapipe.
  'cifar10-small': { epochs: 2, lr: 0.05, batch: 32, schedule: 'cosine', warmup: 0.1, classLrMult: undefined },
  // The main job's recipe: naming the model it trains does not make a run 20 times longer.
  'mnist-small': MAIN_JOB,
};

const DATASETS = ['mnist', 'cifar10', 'cifar100', 'svhn'] as const;
/** `--dataset folder`: images of one's own in class folders under --data-dir (nin/data/folder.ts). */
const FOLDER = 'folder';
/** ZCA's matrix is D×D for D values an image: 3072 (CIFAR's) takes a minute to fit; 4096 is allowed. */
const MAX_ZCA_VALUES = 4096;

/** Each data set's images (H×W×C) and classes, from its registry entry. */
const DATASET_SHAPES = Object.fromEntries(
  DATASETS.map((d) => [d, { image: `${DATASET_SPECS[d].height}×${DATASET_SPECS[d].width}×${DATASET_SPECS[d].channels}`, classes: DATASET_SPECS[d].classNames.length }]),
) as Record<string, { image: string; classes: number }>;

/** Each data set with its images, for a config that fits none: 'mnist 28×28×1, cifar10 32×32×3, …'. */
function datasetImages(): string {
  return DATASETS.map((d) => `${d} ${DATASET_SHAPES[d].image}`).join(', ');
}

/** The data set a model is named for: cifar10-small trains on cifar10, svhn on svhn. */
function datasetOf(model: string): (typeof DATASETS)[number] | undefined {
  return DATASETS.find((d) => model === d || model.startsWith(`${d}-`));
}

/** A config file's data set by its images and classes, the first in DATASETS that fits (32×32×3 with
 * 10 classes: CIFAR-10; --dataset svhn for SVHN); undefined when no data set has its images. */
function datasetOfShape(c: ModelConfig): (typeof DATASETS)[number] | undefined {
  const image = `${c.input.height}×${c.input.width}×${c.input.channels}`;
  return DATASETS.find((d) => DATASET_SHAPES[d].image === image && DATASET_SHAPES[d].classes === c.classes) ?? DATASETS.find((d) => DATASET_SHAPES[d].image === image);
}

/** Reads and checks a model config file (--config); any problem is a usage error naming the file. */
function readConfigFile(path: string): ModelConfig {
  if (!existsSync(path) || statSync(path).isDirectory()) throw new UsageError(`--config: no file at '${path}'`);
  // (an editor's byte-order mark, which JSON.parse names as an invisible unexpected token, is skipped)
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config: ${path} is not valid JSON (${(e as Error).message})`);
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw new UsageError(`--config: ${path} has the key ${duplicate} twice in one object: which one counts would be a guess; give it once`);
  let config: ModelConfig;
  try {
    config = parseModelConfig(json, path);
  } catch (e) {
    throw new UsageError(`--config: ${(e as Error).message}`);
  }
  if (builtInModel(config.name)) throw new UsageError(`--config: ${path} names its network '${config.name}', a built-in model's name: give it another (runs and comparisons are labelled by it)`);
  return config;
}

export const USAGE = `usage:
  nin train [options]                 train a Network In Network model
  nin eval <checkpoint>... [options]  test error, loss and confusion matrix of a checkpoint
                                      (a checkpoint is a .safetensors file or a run directory);
                                      of several, each one's line and a table of them all
  nin predict <checkpoint> <image or directory>... [--invert] [--json FILE]
                                      top-5 classes with probabilities (PNG or JPEG files, or a
                                      directory's; a JPEG upright as its EXIF orientation says; a
                                      picture of another size is resized to the model's input,
                                      with a note; at most 2^25 pixels, e.g. 8192×4096; those
                                      that cannot be read are named after the others' lines
                                      (exit status 1, also where none can be read);
                                      --invert: dark strokes on a light or transparent
                                      background, for MNIST's light-on-black digits; --json:
                                      also every class's probability and each picture's notes,
                                      as JSON)
  nin visualize <checkpoint> [options]
                                      the last mlpconv's class maps (the paper's Figure 4) and the
                                      run's loss/error curves, as PNGs
  nin compare <run>... [options]      runs side by side: a table (the settings they differ in,
                                      losses, test error, best validation epoch, img/s) and their curves
                                      on shared axes (a run is a run directory, or a log or
                                      checkpoint in one: a run --overwrite moved aside); runs
                                      that differ only in their seed, also as mean ± sd over seeds
  nin export <checkpoint> [--out FILE] [--no-preprocess]
                                      the trained network as an ONNX model (opset 17: raw 0..255
                                      pixels [N, H, W, C] in; logits, probabilities and the last
                                      mlpconv's maps out; the run's preprocessing in the graph
                                      unless --no-preprocess; default FILE: the checkpoint's,
                                      ending .onnx; needs no GPU)
  nin lr-find [train options] [--lr-min X] [--lr-max X] [--steps N] [--plot FILE] [--json FILE]
                                      the learning-rate range test: from the network's initial
                                      weights (or --weights-from's), one step at each rate of a
                                      geometric sweep from --lr-min (1e-5) to --lr-max (10) over
                                      --steps (300), on the training set's first steps × --batch
                                      images, preprocessed as the run would be; stops where the
                                      loss's moving average passes 4× its lowest; suggests the
                                      rate where the loss, below chance (ln C), falls fastest; the
                                      loss against the rate as a PNG (--plot, default
                                      lr-find.png), and --json the numbers
  nin models [--config FILE]          list the model configs with their summaries (or check and
                                      summarise a config file of one's own)

train options:
  --dataset mnist|cifar10|cifar100|svhn   (default: the --model's, else mnist)
  --dataset folder        images of your own: --data-dir DIR holds train/<class>/ and test/<class>/
                          or val/<class>/ folders of PNG or JPEG files (the training folders name
                          the classes); the --model (default cifar10, the paper's CIFAR net) takes
                          their size and one class map per class; 1 channel if every image is
                          grey, else 3; recipe: standardize, no aug, 30 epochs, batch 64 (under 128
                          images: one or two equal batches), lr 0.02 cosine, 0.3-epoch warm-up
  --image-size WxH|N      --dataset folder: resize every image to W×H, or N×N (needed where sizes differ)
  --stream                --dataset folder: read the pictures batch by batch (worker threads)
                          instead of the whole folder into memory first (the same numbers; a
                          resume keeps it, --no-stream reads whole); preprocessing none or standardize
  --model NAME            ${Object.keys(MODELS).join(', ')} (default: per dataset)
  --config FILE           a network of one's own instead of --model: a JSON model config, as
                          \`nin models\` lists them (README, "Networks of one's own"); it trains
                          with its data set's recipe (--dataset: by default, by its input shape)
  With no --dataset, --model, --config or --resume: the main job, mnist-small on all 60k MNIST
  images for one epoch (batch 16, lr 0.025 cosine, 5 % warm-up), sized for ≤ 10 minutes on a
  2-core CPU.
  --model mnist-small: the main job's recipe (with --dataset mnist too).
  --model cifar10-small: the CIFAR pipeline on a CPU adapter (2 epochs, batch 32, lr 0.05 cosine).
  --head gap|fc|fc-dropout   classifier head (default gap, the paper's)
  --init gaussian|he      weight init (default: He for the paper's MNIST and CIFAR nets, the paper's
                          Gaussian for SVHN; a --config file's own "init", else He)
  --class-maps relu|linear   ReLU on the last mlpconv's maps, as the paper, or not (default linear:
                          with the ReLU the paper's CIFAR-10 recipe's maps died early in every run
                          we made; a GAP run whose maps die stops with an error; a --config file
                          says for itself, with "linearOut")
  --dropout P             rate of the dropout between mlpconv blocks (the paper's nets: 0.5; 0 turns
                          it off, the paper's Figure 3 comparison)
  --epochs N  --batch N  --lr X   (an epoch is floor(N / batch) full batches; evaluation takes every image)
  --schedule constant|step|cosine|plateau   --lr-steps E1,E2,...  --gamma X  --warmup EPOCHS
                          (step: lr ×gamma at each --lr-steps epoch, by default at half and
                          three quarters of --epochs, rounded: one drop if they meet, none at
                          the last epoch's end (1 epoch: at 0.5 and 0.75 of it); given, each
                          within the run, in increasing order)
  --schedule plateau      the paper's: lr ×gamma (0.1) when the training error has set no new low
                          for --patience N epochs (3), --lr-drops N times (2: to 1 % of --lr); a
                          plateau after the last drop ends the run (--epochs is then a cap);
                          --plateau-on val watches the validation error instead (needs --val)
  --momentum X (0.9)  --weight-decay X (0.0001)
  --class-lr-mult X       learning-rate multiplier of the layer that outputs the class scores (the
                          class maps, or the FC layer), over the biases' 2× (default 1; SVHN 0.1,
                          the authors' setting; an FC head 0.1: at 1 it often collapsed)
  --aug / --no-aug        random translation (up to 4 pixels) + horizontal flip (default: on for
                          CIFAR-10; off for CIFAR-100, whose paper result was without it)
  --preprocess none|standardize|gcn-zca|gcn-lcn   (default: gcn-zca for CIFAR, gcn-lcn for SVHN,
                          standardize for MNIST; the papers' choices for CIFAR and SVHN, ours
                          for MNIST, where the paper names none); a ZCA fit is cached for
                          the next run on the same training images ($NIN_CACHE, else
                          ~/.cache/nin; NIN_CACHE=off fits every time)
  --val N|paper|folder    hold out N training images for validation (default 0), or the papers'
                          set: SVHN 400 per class from train (+ 200 per class from extra with
                          --extra), else the last 10,000 training images; or an image folder's
                          val/ beside its test/; the epoch with the lowest validation error is
                          kept as best.safetensors
  --val-from random|end   where N held-out images come from: drawn at random by --seed (the
                          default for --val N) or the training set's last N (for --val paper)
  --split-seed N          draw the random split by N instead of --seed: a study's repeats over
                          --seed then validate on the same images (a resume keeps it)
  --extra                 SVHN: also train on extra_32x32.mat (531,131 images, as the paper;
                          about 9 GB of memory while loading)
  --train-limit N  --test-limit N   use only the first N images (of an image folder: each
                          class in proportion)
  --seed N                repeatable runs (same device: same loss curve); 0 to 4294967295;
                          default 1, so runs without it repeat each other: give each of a
                          study's repeats its own
  --data-dir DIR          else $NIN_DATA, ./data, ../shared/data (--dataset folder: the image
                          folder; a resume reads the run's own unless it is given)
  --out DIR               run directory (default runs/<dataset>-<model>, or runs/<folder>-<model>,
                          numbered on, -2, -3, …, past directories that hold a run); a run never
                          writes into another run's directory unless --overwrite is given
  --weights-from CHECKPOINT   start a new run from a checkpoint's weights (a file or a run
                          directory): each parameter of the same name and shape, but the class
                          maps (or FC layer) where the classes differ or they are another layer
                          there; the rest start afresh, and the preprocessing is fitted anew
  --resume CHECKPOINT     continue a run (a checkpoint file or a run directory), in the run's
                          directory by default; checkpoints there from a stretch the resume
                          replaces are kept, renamed *.superseded.safetensors
  --overwrite             start afresh in an --out that holds another run (its files are kept,
                          renamed *.superseded*); not with a resume in the run's own directory
  --stop-after E          stop after epoch E (the schedule still spans --epochs)
  A resume keeps the checkpoint's settings unless flags replace them; the batch size may change
  only at an epoch's end.
  --checkpoint-every MIN  also save the checkpoint within an epoch every MIN minutes (default 10;
                          0: at epoch ends only); Ctrl-C, SIGTERM or SIGHUP saves it after the current
                          step and stops (again, a second or more later: quits at once); --resume
                          continues exactly
  --keep-every N          also keep the checkpoint of every Nth epoch, as epoch-<E>.safetensors
                          (epoch-010.safetensors), for eval, visualize or compare of the run as it was
  --profile               GPU time per kernel, then per layer (forward and backward apart,
                          the loss, the optimiser), of the first epoch
  --dry-run               check the run and time it, writing nothing: every check a run makes, the
                          data read, then a few training steps (after 2 that compile) and evaluation
                          batches timed, from the run's start (a resume's: its checkpoint); says
                          their loss, the GPU memory they took, the largest batch the adapter
                          binds for the network, and how long the run would take
                          here; a loss that is not finite is an error (exit 1); GCN + ZCA or LCN
                          are not fitted (standardised images in their place); with --profile, the
                          timed steps' GPU times per kernel and per layer
eval options: --data-dir DIR (an image folder's run: where the folder is now), --batch N (100),
              --test-limit N, --json FILE (the results and each class's error as JSON: rows of
              the confusion matrix are true classes), --pictures DIR (test on pictures of
              your own instead: DIR/<class>/*.png|jpg|jpeg for some or all of the model's
              classes, named as it names them, e.g. cat/ for CIFAR-10, 7/ for MNIST; resized
              as predict resizes, with its notes; one that cannot be read stops it),
              --invert (with --pictures: as predict's), --stream (an image folder's run: its
              test pictures read batch by batch)
visualize options: --data-dir DIR, --images N (6, at most 256), --out DIR (default: the checkpoint's directory)
compare options: --out FILE (the PNG, default compare.png), --title TEXT (above the PNG's panels), --linear-error (linear error axes), --json FILE
              (each run's row as data: every setting, the numbers unformatted, where it stopped;
              and the over-seeds groups, each number's mean, sd, min and max)`;

/** How an option's value is checked: the same rule reads its flag's text and, on --resume, the
 * value the checkpoint saved (what the CLI wrote, it reads back). `optional`: may be left unset. */
type Rule = { flag: string; optional?: boolean; list?: boolean } & (
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'num'; min: number; max?: number | 'epochs'; aboveMin?: boolean } // 'epochs': at most the run's; aboveMin: min itself excluded
  | { kind: 'oneOf'; allowed: readonly string[] }
  | { kind: 'images' } // a validation split
  | { kind: 'bool' } // a switch: parseArgs reads its flag
);

/** The options a resume takes from its checkpoint unless a flag replaces them: each one's flag and rule. */
const RULES = {
  dataset: { flag: 'dataset', kind: 'oneOf', allowed: [...DATASETS, FOLDER] },
  head: { flag: 'head', kind: 'oneOf', allowed: HEADS, optional: true },
  init: { flag: 'init', kind: 'oneOf', allowed: INITS, optional: true },
  classMaps: { flag: 'class-maps', kind: 'oneOf', allowed: ['relu', 'linear'], optional: true },
  dropout: { flag: 'dropout', kind: 'num', min: 0, max: 0.99, optional: true },
  epochs: { flag: 'epochs', kind: 'int', min: 1 },
  batchSize: { flag: 'batch', kind: 'int', min: 1 },
  lr: { flag: 'lr', kind: 'num', min: 0, max: 1000 },
  schedule: { flag: 'schedule', kind: 'oneOf', allowed: ['constant', 'step', 'cosine', 'plateau'] },
  stepEpochs: { flag: 'lr-steps', kind: 'num', min: 0, max: 'epochs', list: true },
  gamma: { flag: 'gamma', kind: 'num', min: 0, max: 1 },
  warmupEpochs: { flag: 'warmup', kind: 'num', min: 0, max: 'epochs' },
  patience: { flag: 'patience', kind: 'int', min: 1, optional: true },
  lrDrops: { flag: 'lr-drops', kind: 'int', min: 0, optional: true },
  plateauOn: { flag: 'plateau-on', kind: 'oneOf', allowed: ['train', 'val'], optional: true },
  momentum: { flag: 'momentum', kind: 'num', min: 0, max: 0.999999 },
  weightDecay: { flag: 'weight-decay', kind: 'num', min: 0, max: 1 },
  classLrMult: { flag: 'class-lr-mult', kind: 'num', min: 0, max: 1000, optional: true },
  augment: { flag: 'aug', kind: 'bool' },
  preprocess: { flag: 'preprocess', kind: 'oneOf', allowed: PREPROCESS_KINDS },
  validation: { flag: 'val', kind: 'images' },
  validationFrom: { flag: 'val-from', kind: 'oneOf', allowed: VALIDATION_FROM, optional: true },
  extra: { flag: 'extra', kind: 'bool', optional: true },
  trainLimit: { flag: 'train-limit', kind: 'int', min: 1, optional: true },
  testLimit: { flag: 'test-limit', kind: 'int', min: 1, optional: true },
  seed: { flag: 'seed', kind: 'int', min: 0, max: 2 ** 32 - 1 }, // the RNGs take 32 bits: 2^32 + 1 would run as 1
  splitSeed: { flag: 'split-seed', kind: 'int', min: 0, max: 2 ** 32 - 1, optional: true },
  checkpointMinutes: { flag: 'checkpoint-every', kind: 'num', min: 0, optional: true },
  keepEvery: { flag: 'keep-every', kind: 'int', min: 1, optional: true },
} satisfies { [K in keyof TrainOptions]?: Rule };

/** What a rule asks, in words, and whether a value meets it; `epochs`: the run's, for bounds set by it. */
function requirement(rule: Rule, epochs: number): { want: string; fits: (v: unknown) => boolean } {
  switch (rule.kind) {
    case 'int': {
      const max = rule.max ?? Infinity;
      return { want: max === Infinity ? `an integer ≥ ${rule.min}` : `an integer in [${rule.min}, ${max}]`, fits: (v) => Number.isInteger(v) && (v as number) >= rule.min && (v as number) <= max };
    }
    case 'num': {
      const max = rule.max === 'epochs' ? epochs : (rule.max ?? Infinity);
      const above = rule.aboveMin === true;
      const want = max === Infinity ? `a number ${above ? '>' : '≥'} ${rule.min}` : `a number in ${above ? '(' : '['}${rule.min}, ${max}]`;
      return { want, fits: (v) => typeof v === 'number' && Number.isFinite(v) && (above ? v > rule.min : v >= rule.min) && v <= max };
    }
    case 'oneOf':
      return { want: `one of ${rule.allowed.join(', ')}`, fits: (v) => rule.allowed.includes(v as string) };
    case 'images':
      return { want: "a number of images, 'paper' or 'folder'", fits: (v) => v === 'paper' || v === 'folder' || (Number.isInteger(v) && (v as number) >= 0) };
    case 'bool':
      return { want: 'true or false', fits: (v) => typeof v === 'boolean' };
  }
}

/** A flag's value by its rule (a list: comma-separated), or undefined when the flag is not given. */
function flagValue(rule: Rule, text: string | undefined, epochs = Infinity): unknown {
  if (text === undefined) return undefined;
  const { want, fits } = requirement(rule, epochs);
  const one = (t: string) => {
    // Plain decimals only (Number() also reads '', ' 7', '0x10' and 'Infinity'); --val takes digits only.
    const decimal = rule.kind === 'images' ? /^\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
    const v = rule.kind === 'oneOf' || t === 'paper' || t === 'folder' ? t : decimal.test(t) ? Number(t) : NaN;
    if (!fits(v)) throw new UsageError(`--${rule.flag} must be ${want}, got '${t}'`);
    return v;
  };
  return rule.list ? text.split(/\s*,\s*/).map(one) : one(text); // '50, 75' as '50,75'
}

/** An integer flag of no option a resume takes (--stop-after, and eval's and visualize's). */
function int(flag: string, text: string | undefined, min: number, max?: number): number | undefined {
  return flagValue({ flag, kind: 'int', min, max }, text) as number | undefined;
}

/** What is out of its rule in the options a resume takes from a checkpoint. A value that a flag
 * given now replaces is never read (and the checkpoint saves the flag's), so it stops nothing. */
function savedOptionProblems(o: TrainOptions, replaced: (flag: string) => boolean): string[] {
  // Not held to the run's epochs: a resume may end a run before its lr steps, and the warm-up is
  // checked against the run's epochs once flags are in.
  return Object.entries(RULES).flatMap(([key, rule]: [string, Rule]) => {
    const v = o[key as keyof typeof RULES];
    // A seed saved before the flag's 2^32 − 1 cap still resumes: the RNGs fold it to 32 bits, as then.
    const { want, fits } = requirement(key === 'seed' ? { ...rule, max: undefined } as Rule : rule, Infinity);
    const ok = rule.list ? Array.isArray(v) && v.every(fits) : fits(v);
    if (ok || (rule.optional && v === undefined) || replaced(rule.flag)) return [];
    return [`${key} must be ${rule.list ? `a list, each ${want}` : want}, got ${JSON.stringify(v) ?? String(v)}`];
  });
}

function parse(args: string[], options: ParseArgsConfig['options'], positionals: { min: number; max: number; what: string }) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    // Node's words for an unknown flag suggest passing it as a positional argument ("-- "--epochs"").
    const unknown = (e as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '(-[^']*)'/.exec((e as Error).message)?.[1] : undefined;
    if (unknown === undefined) throw new UsageError((e as Error).message);
    const ofTrain = options !== TRAIN_FLAGS && unknown.replace(/^--?/, '') in TRAIN_FLAGS! ? ' (an option of nin train: this command does not take it)' : '';
    throw new UsageError(`unknown option '${unknown}'${ofTrain}`);
  }
  // `--data-dir=` (say, from an unset shell variable) would otherwise read as "not given" and fall
  // back to the defaults without a word.
  for (const [k, value] of Object.entries(parsed.values)) if (value === '') throw new UsageError(`--${k} needs a value, got an empty one`);
  const n = parsed.positionals.length;
  if (n < positionals.min || n > positionals.max) throw new UsageError(`expected ${positionals.what}, got ${n} argument(s)`);
  return parsed as { values: Record<string, string | boolean | undefined>; positionals: string[] };
}

/** A checkpoint named on the command line: a file, or a run directory (its checkpoint.safetensors). */
function checkpointArg(arg: string, prefix = '', pictureNote?: string): string {
  const isDirectory = (p: string) => existsSync(p) && statSync(p).isDirectory();
  // (a directory named as a checkpoint is no run directory: "no checkpoint at x.safetensors/checkpoint.safetensors" misled)
  const runDirectory = isDirectory(arg);
  if (runDirectory && arg.endsWith('.safetensors') && !existsSync(join(arg, 'checkpoint.safetensors'))) throw new UsageError(`${prefix}${arg} is a directory, not a checkpoint`);
  const path = runDirectory ? join(arg, 'checkpoint.safetensors') : arg;
  if (!existsSync(path)) {
    // A run directory holding a log alone: its run is going on and has not saved yet, or was
    // stopped before it saved anything.
    const running = path !== arg ? runDirectoryInUse(arg, 'wait for its first save') : null;
    const loneLog = path !== arg && stoppedBeforeFirstSave(runFilesIn(arg)) ? ` (${arg} holds the log of a run stopped before its first save: no checkpoint there; nin train --out ${shellWord(arg)} --overwrite, with the run's other flags, starts afresh there, keeping that log)` : '';
    throw new UsageError(`${prefix}no checkpoint at '${path}'${running ? ` yet: ${running}` : loneLog}`);
  }
  if (isDirectory(path)) throw new UsageError(`${prefix}${path} is a directory, not a checkpoint`); // (was a bare EISDIR)
  const problem = notACheckpoint(path, pictureNote);
  if (problem) throw new UsageError(prefix + problem); // the argument names another kind of file: the usage says what it takes
  return path;
}

interface TrainCommand {
  options: TrainOptions;
  dataDir?: string;
  /** --dry-run: check and time the run, write nothing (nin/dry-run.ts). */
  dryRun?: boolean;
}

/** A nin checkpoint refused as damaged before any work (cut short, its header's fields unreadable):
 * exit 1, as when a command finds it damaged as it loads; a file that is no checkpoint is a UsageError. */
export class CheckpointDamaged extends Error {
  override name = 'CheckpointDamaged';
}

/** What a checkpoint's header says: the options it was trained with, epochs done, its run's id.
 * Errors name `flag`, the option that named the checkpoint. */
function checkpointHeader(path: string, flag = '--resume'): { options: TrainOptions; config: ModelConfig; epoch: number; withinEpoch: boolean; runId: string | null; plateau: PlateauState | null } {
  // Read with the file's size checked; where that fails, read again without it: a header that reads
  // is a file cut short or run on (damaged), one that does not is no checkpoint (a usage error).
  let metadata: Record<string, string>;
  let sizeProblem: Error | null = null;
  try {
    metadata = readSafetensorsMetadata(path, { whole: true });
  } catch (whole) {
    try {
      metadata = readSafetensorsMetadata(path);
    } catch (e) {
      throw new UsageError(`${flag}: ${(e as Error).message}`, false);
    }
    sizeProblem = whole as Error;
  }
  if (metadata.options === undefined || metadata.config === undefined) throw new UsageError(`${flag}: ${path} holds no training options and model config: not a nin checkpoint`, false);
  const damaged = <T>(read: () => T): T => {
    try {
      return read();
    } catch (e) {
      throw new CheckpointDamaged(`${flag}: ${(e as Error).message}`);
    }
  };
  if (sizeProblem) throw new CheckpointDamaged(`${flag}: ${sizeProblem.message}`);
  const { options, config, epoch } = damaged(() => checkpointHeaderFields(path, metadata));
  const plateau = damaged(() => (metadata.plateau ? parsePlateauState(metadata.plateau, path) : null));
  return { options, config, epoch, withinEpoch: Boolean(metadata.partial_epoch), runId: metadata.run_id ?? null, plateau };
}

/** An image folder's run (folderRun): its network, its folders and their counts. */
type Folder = ReturnType<typeof folderRun>;

/** What trainNetwork found: the data set, the network (its name and config; `custom`: a config
 * file's or a resumed custom network's), an image folder's run, and the recipe's defaults. */
interface TrainNetwork { dataset: string; model: string; config: ModelConfig; custom: ModelConfig | undefined; folder: Folder | undefined; defaults: Defaults }

/**
 * The data set and network a train command names (--dataset, --model or --config; else a resumed
 * checkpoint's; else the main job's), with the recipe's defaults that go with them, and an image
 * folder's network fitted to its images. A usage error where they do not fit together.
 */
function trainNetwork(s: (flag: string) => string | undefined, datasetFlag: string | undefined, header: ReturnType<typeof checkpointHeader> | undefined, resume: string | undefined): TrainNetwork {
  const saved = header?.options;
  // --model alone names its data set: cifar10-small trains on cifar10, svhn on svhn.
  const modelArg = s('model');
  const configFile = s('config');
  if (configFile !== undefined && modelArg !== undefined) throw new UsageError('--config and --model both name the network: give one');
  if (configFile !== undefined && header) throw new UsageError(`--config: a resumed run keeps its network (${resume} holds its config)`);
  if (s('weights-from') !== undefined && header) throw new UsageError(`--weights-from starts a new run from a checkpoint's weights; a resumed run continues with its own (${resume}'s)`);
  // A network of one's own: from --config, or the resumed checkpoint's options.
  const custom = configFile !== undefined ? readConfigFile(configFile) : saved?.config;
  // (a config no data set fits is refused below, unless --dataset or a resume names the data set)
  const datasetOfModel = custom ? (datasetOfShape(custom) ?? (custom.input.channels === 1 ? 'mnist' : 'cifar10')) : modelArg === undefined ? undefined : datasetOf(modelArg);
  // A resumed run keeps its data set (its config's shape cannot tell CIFAR-10 from SVHN).
  const dataset = datasetFlag ?? saved?.dataset ?? datasetOfModel ?? 'mnist';
  // (found now: an image folder's run reads its folder before the other clashes are listed)
  if (saved && dataset !== saved.dataset) throw new UsageError(`--resume ${resume}: --dataset ${dataset} (the checkpoint was trained on ${saved.dataset}): a resumed run keeps its data (start a new run to change it)`);
  // Before the model's shape is checked against the data: "takes 32×32×3 images but mnist images are 28×28×1" missed the point.
  if (header && modelArg !== undefined && modelArg !== header.config.name) throw new UsageError(`--resume ${resume}: --model ${modelArg} (the checkpoint holds ${header.config.name}): a resumed run keeps its network (start a new run to change it; --weights-from starts one from its weights)`);
  // No dataset, no model and no checkpoint named: the main job.
  const mainJob = s('dataset') === undefined && modelArg === undefined && configFile === undefined && !saved;
  const model = modelArg ?? custom?.name ?? saved?.model ?? (mainJob ? MAIN_JOB : DATASET_DEFAULTS[dataset]).model;
  // A config file's own init and class maps stand unless flags say otherwise; the rest is its data set's recipe.
  // (An image folder's run takes its data set's recipe only: the CPU-sized models' shorter ones are for their data sets' sizes.)
  const d: Defaults = mainJob ? MAIN_JOB : custom ? { ...DATASET_DEFAULTS[dataset], init: undefined, classMaps: undefined } : { ...DATASET_DEFAULTS[dataset], ...(dataset === FOLDER ? {} : MODEL_DEFAULTS[model]) };
  const base = custom ?? builtInModel(model);
  if (!base) {
    const known = `one of ${Object.keys(MODELS).join(', ')}`;
    if (modelArg === undefined && saved) throw new CheckpointDamaged(`--resume ${resume}: its saved training options are damaged: model must be ${known}, got "${model}"`);
    throw new UsageError(`--model must be ${known}, got '${model}'`);
  }
  if (s('image-size') !== undefined && dataset !== FOLDER) throw new UsageError(`--image-size resizes an image folder's pictures (--dataset folder); ${dataset}'s images are ${DATASET_SHAPES[dataset].image}`);
  // An image folder's run: its network fitted to the folder's images and classes. Its counts stand in for the data set's.
  const folder = dataset === FOLDER ? folderRun(base, custom !== undefined, header && { path: resume!, options: header.options }, s('data-dir'), s('image-size')) : undefined;
  const config = folder?.config ?? base;
  if (!folder) {
    const { height, width, channels } = config.input;
    if (custom && !saved && s('dataset') === undefined && !datasetOfShape(custom)) {
      throw new UsageError(`--config: model '${model}' takes ${height}×${width}×${channels} images, and no data set has those: ${datasetImages()} (images of your own: --dataset folder --data-dir DIR)`);
    }
    const { image, classes } = DATASET_SHAPES[dataset];
    if (`${height}×${width}×${channels}` !== image) throw new UsageError(`model '${model}' takes ${height}×${width}×${channels} images but ${dataset} images are ${image}`);
    if (config.classes !== classes) throw new UsageError(`model '${model}' has ${config.classes} classes but ${dataset} has ${classes}${custom && !saved && s('dataset') === undefined ? ' (images of your own: --dataset folder --data-dir DIR)' : ''}`);
  }
  return { dataset, model, config, custom, folder, defaults: d };
}

/** The validation split's flags (--val, --val-from, --split-seed, --extra) checked against the
 * data set; a --val folder run's val/ scanned and recorded in the options, so a resume validates
 * on the same images. `saved`: the resumed checkpoint's options. */
function checkValidationSplit(options: TrainOptions, s: (flag: string) => string | undefined, folder: Folder | undefined, saved: TrainOptions | undefined): void {
  if (s('val-from') !== undefined && !defaultValidationFrom(options.validation, options.dataset)) {
    throw new UsageError(`--val-from chooses where a split of N images comes from (--val N, or --val paper outside SVHN); ${!options.validation ? 'there is no validation split (--val 0)' : options.validation === 'folder' ? "--val folder validates on the folder's val/" : `SVHN's --val paper takes quotas per class`}`);
  }
  options.validationFrom = validationFromOf(options); // recorded in the checkpoint, so a resume repeats the split
  if (s('split-seed') !== undefined && !drawnBySeed(validationPlan(options.validation, options.dataset, 1, options.validationFrom))) {
    throw new UsageError(`--split-seed draws a random validation split (--val N, or SVHN's --val paper); ${options.validation ? `--val ${options.validation} takes ${options.validation === 'folder' ? "the folder's val/" : 'the last images'}` : 'there is no validation split (--val 0)'}: nothing to draw`);
  }
  if (options.extra && options.dataset !== 'svhn') throw new UsageError(`--extra adds SVHN's extra_32x32.mat; ${options.dataset} has no extra set`);
  if (folder && options.validation === 'paper') throw new UsageError(`--val paper holds out what the papers held out of their data sets; for an image folder give --val N${existsSync(join(folder.imageFolder.dir, 'val')) ? ', or --val folder for its val/' : ''}`);
  if (options.validation === 'folder') {
    if (!folder) throw new UsageError(`--val folder validates on an image folder's val/ (--dataset folder); ${options.dataset} has none: give --val N or --val paper`);
    if (basename(folder.testDir) !== 'test') throw new UsageError(`--val folder: ${folder.imageFolder.dir} has no test/, so its val/ is the test split: give --val N, or add a test/`, false);
    if (!existsSync(join(folder.imageFolder.dir, 'val'))) throw new UsageError(`--val folder validates on DIR/val/<class>/ beside test/: ${folder.imageFolder.dir} has no val/ (give --val N to hold out training images instead)`, false);
    const val = scanImageFolder(folder.imageFolder.dir, 'val', folder.imageFolder.classNames); // there, and of the training set's classes
    // Recorded, so that a resume validates on the same images: the best epoch is chosen on them.
    const was = saved?.imageFolder;
    const changed = was && folderValChanged(val, was);
    if (changed) throw new Error(`--resume ${options.resume}: ${val.dir}: ${changed}`); // (the data, not the flags: exit 1, as for changed class folders)
    options.imageFolder = { ...folder.imageFolder, valImages: val.files.length, valList: folderListDigest(val), valClasses: folderClassLists(val) };
  }
}

/** Whether the training set, known before it is read (the official count, which a partial file can
 * only make smaller, the folder's, or --train-limit), holds the validation split and a batch: a
 * usage error where it does not. An image folder's default batch is cut to fit (options.batchSize). */
function checkTrainingSetFits(options: TrainOptions, classes: number, s: (flag: string) => string | undefined, folder: Folder | undefined, resumed: boolean): void {
  const { dataset } = options;
  // With --extra, the extra part is loaded (and split) only if --train-limit reaches past the train part (nin/datasets.ts).
  const trainPart = folder ? folder.imageFolder.trainImages : splitCount(dataset, 'train');
  const parts = options.extra && (options.trainLimit === undefined || options.trainLimit > trainPart) ? 2 : 1;
  const official = trainPart + (options.extra ? splitCount(dataset, 'extra') : 0);
  const whose = folder ? `${folder.trainDir}'s` : `${dataset}'s`;
  // A limit past the data set used all of it, but was saved as given: runs on the same images
  // then differed in `nin compare`'s settings.
  if (s('train-limit') !== undefined && options.trainLimit! > official) {
    throw new UsageError(`--train-limit ${options.trainLimit} is more than ${whose} ${official} training images${options.extra ? ' (train and extra)' : ''}: leave it out to train on all`);
  }
  if (s('test-limit') !== undefined) checkTestLimit(options.testLimit!, folder ? { count: folder.testImages, of: folder.testDir } : dataset);
  const trainImages = Math.min(official, options.trainLimit ?? official);
  const of = options.trainLimit !== undefined && options.trainLimit < official ? `--train-limit ${options.trainLimit}` : `${whose} ${official} training images`;
  const held = validationSize(validationPlan(options.validation, dataset, parts, options.validationFrom), classes);
  if (held >= trainImages) throw new UsageError(`--val ${options.validation} holds out ${held} images: none left of ${of}`);
  // An image folder may hold fewer than two of the recipe's batches: the default then cuts it into
  // one or two equal batches (an epoch's last partial batch is dropped: 64 of 120 images would leave 56 out).
  const left = trainImages - held;
  if (folder && !resumed && s('batch') === undefined && left < 2 * options.batchSize) options.batchSize = Math.floor(left / Math.ceil(left / options.batchSize));
  if (left < options.batchSize) {
    throw new UsageError(`--batch ${options.batchSize} is larger than the ${left} training images left of ${of}` + (held ? ` after --val ${options.validation}` : ''));
  }
}

/** A resumed run with epochs left, a --stop-after within the run, a resume that keeps its epoch's
 * shuffle and its plateau going, and an output directory the run may write: usage errors else. */
function checkRunPlan(options: TrainOptions, s: (flag: string) => string | undefined, header: ReturnType<typeof checkpointHeader> | undefined, source: ResumeSource | undefined): void {
  const { resume } = options;
  if (header && header.epoch >= Math.min(options.epochs, options.stopAfter ?? options.epochs)) throw new UsageError(nothingToTrain(resume!, header.epoch, options, { epochs: s('epochs') !== undefined }));
  if (options.stopAfter !== undefined && options.stopAfter > options.epochs) {
    throw new UsageError(`--stop-after ${options.stopAfter} is past the run's last epoch (--epochs ${options.epochs}${s('epochs') === undefined ? (resume ? ', the checkpoint\'s' : ', the default') : ''}): it would stop nothing`);
  }
  if (s('keep-every') !== undefined && options.keepEvery! > options.epochs) {
    throw new UsageError(`--keep-every ${options.keepEvery} keeps the checkpoints of epochs ${options.keepEvery}, ${2 * options.keepEvery!}, …; the run ends at epoch ${options.epochs} (${s('epochs') !== undefined ? `--epochs ${options.epochs}` : resume ? "the checkpoint's --epochs" : 'the default --epochs'}): it would keep none`);
  }
  const shuffleChanged = header?.withinEpoch && shuffleChangedWithinEpoch(resume!, header.epoch, header.options, options);
  if (shuffleChanged) throw new UsageError(shuffleChanged);
  if (options.schedule === 'plateau') {
    const done = header?.plateau && plateauDone(resume!, header.epoch, header.plateau, options);
    if (done) throw new UsageError(done);
    if (options.plateauOn === 'val' && !options.validation) throw new UsageError(PLATEAU_ON_VAL_WITHOUT_VAL);
  }
  const dirProblem = outDirProblem(options.outDir) ?? runDirectoryInUse(options.outDir) ?? runDirectoryProblem(options, source);
  if (dirProblem) throw new UsageError(dirProblem);
  // (train() ignores it there: a resume in the run's own directory continues that run)
  if (options.overwrite && source && isOwnRunDirectory(options.outDir, source)) {
    throw new UsageError(`--overwrite: --resume ${resume} continues its run in ${options.outDir}, its own directory, where there is nothing to overwrite (a save the resume replaces is kept anyway); leave out --overwrite, or fork the run with --out DIR`);
  }
}

/** `nin train`'s flags (lr-find takes them too, less those NOT_FOR_RANGE_TEST names). */
const TRAIN_FLAGS: ParseArgsConfig['options'] = {
  dataset: { type: 'string' }, model: { type: 'string' }, head: { type: 'string' }, init: { type: 'string' }, 'class-maps': { type: 'string' }, dropout: { type: 'string' },
  epochs: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' }, schedule: { type: 'string' },
  'lr-steps': { type: 'string' }, gamma: { type: 'string' }, warmup: { type: 'string' },
  patience: { type: 'string' }, 'lr-drops': { type: 'string' }, 'plateau-on': { type: 'string' },
  momentum: { type: 'string' }, 'weight-decay': { type: 'string' }, 'class-lr-mult': { type: 'string' },
  aug: { type: 'boolean' }, 'no-aug': { type: 'boolean' }, preprocess: { type: 'string' },
  val: { type: 'string' }, 'val-from': { type: 'string' }, extra: { type: 'boolean' }, 'train-limit': { type: 'string' }, 'test-limit': { type: 'string' },
  seed: { type: 'string' }, 'split-seed': { type: 'string' }, 'data-dir': { type: 'string' }, out: { type: 'string' }, resume: { type: 'string' }, config: { type: 'string' },
  'stop-after': { type: 'string' }, overwrite: { type: 'boolean' }, 'checkpoint-every': { type: 'string' }, 'keep-every': { type: 'string' }, 'weights-from': { type: 'string' },
  profile: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, 'image-size': { type: 'string' }, stream: { type: 'boolean' }, 'no-stream': { type: 'boolean' },
};

/** Parses and checks `nin train` flags (no GPU; with --resume, reads the checkpoint's header). */
export function parseTrainArgs(args: string[]): TrainCommand {
  const { values: v } = parse(args, TRAIN_FLAGS, { min: 0, max: 0, what: 'no positional arguments' });
  const s = (k: string) => v[k] as string | undefined;
  const resume = s('resume') === undefined ? undefined : checkpointArg(s('resume')!, '--resume: ');
  // A resumed run continues with the settings its checkpoint was trained with (read from the
  // file's header); flags given now override them. train() checks that the network still matches.
  const header = resume === undefined ? undefined : checkpointHeader(resume);
  const saved = header?.options;
  // A switch's --no- form replaces its value too.
  // --schedule replaces the saved step epochs and plateau settings too (they are then derived or defaulted).
  const scheduleFlags = ['lr-steps', 'patience', 'lr-drops', 'plateau-on'];
  const replaced = (flag: string) => v[flag] !== undefined || v[`no-${flag}`] !== undefined || (scheduleFlags.includes(flag) && v.schedule !== undefined);
  const damaged = saved ? savedOptionProblems(saved, replaced) : [];
  if (damaged.length) throw new CheckpointDamaged(`--resume ${resume}: its saved training options are damaged: ${damaged.join('; ')}`);
  const source: ResumeSource | undefined = header && { path: resume!, runId: header.runId, savedOutDir: header.options.outDir };
  const pick = <K extends keyof TrainOptions>(key: K, fallback: TrainOptions[K]): TrainOptions[K] => (saved ? saved[key] : fallback);
  const given = <K extends keyof typeof RULES>(key: K, epochs?: number) => flagValue(RULES[key], s(RULES[key].flag), epochs) as TrainOptions[K] | undefined;
  const { dataset, model, config, custom, folder, defaults: d } = trainNetwork(s, given('dataset'), header, resume);
  if (v.aug && v['no-aug']) throw new UsageError('--aug and --no-aug contradict each other');
  if (v.stream && v['no-stream']) throw new UsageError('--stream and --no-stream contradict each other');
  for (const flag of ['stream', 'no-stream']) if (v[flag] && dataset !== FOLDER) throw new UsageError(`--${flag}: --stream reads an image folder's pictures batch by batch (--dataset folder); ${dataset}'s files are read whole`);
  if (s('dropout') !== undefined && !config.layers.some((l) => l.type === 'dropout')) throw new UsageError(`--dropout: model '${model}' has no dropout layers between its blocks`);
  const epochs = given('epochs') ?? pick('epochs', d.epochs);
  const schedule = given('schedule') ?? pick('schedule', d.schedule);
  if (s('gamma') !== undefined && schedule !== 'step' && schedule !== 'plateau') throw new UsageError(`--gamma only applies to --schedule step or plateau (the rate's factor at each drop), not ${schedule}`);
  const stepsArg = s('lr-steps');
  // (naming the schedule in force where none is given: the checkpoint's, or the default)
  const scheduleFrom = s('schedule') !== undefined ? '' : saved ? ` (--resume ${resume}'s schedule is ${schedule})` : ` (the default schedule is ${schedule})`;
  for (const flag of ['patience', 'lr-drops', 'plateau-on']) if (s(flag) !== undefined && schedule !== 'plateau') throw new UsageError(`--${flag} only applies to --schedule plateau${scheduleFrom}`);
  if (stepsArg !== undefined && schedule !== 'step') throw new UsageError(`--lr-steps only applies to --schedule step${scheduleFrom}`);
  const derivedSteps = schedule === 'step' ? defaultStepEpochs(epochs) : [];
  const stepEpochs = given('stepEpochs', epochs) ?? (saved && s('schedule') === undefined ? saved.stepEpochs : derivedSteps);
  if (stepsArg !== undefined) {
    // (the default steps avoid these: a drop at epoch 0 is a smaller --lr, one at the run's end
    // comes after its last step, and an epoch named twice drops the rate by gamma² there)
    const drops = stepEpochs as number[];
    const pointless = drops.find((e) => e <= 0 || e >= epochs);
    if (pointless !== undefined) throw new UsageError(`--lr-steps ${stepsArg}: a drop at epoch ${pointless} ${pointless <= 0 ? 'only scales --lr: give a smaller --lr instead' : `comes after the run's last step (--epochs ${epochs}): it changes nothing`}`);
    if (drops.some((e, i) => i > 0 && e <= drops[i - 1])) throw new UsageError(`--lr-steps ${stepsArg}: give the epochs in increasing order, each once (an epoch named twice drops the rate by gamma² there)`);
  }
  const warmupEpochs = given('warmupEpochs', epochs) ?? pick('warmupEpochs', d.warmup);
  // New runs' directories are named for the data: runs/mnist-mnist-small, runs/flowers-cifar10.
  const runLabel = folder ? basename(folder.imageFolder.dir) : dataset;
  const head = given('head') ?? pick('head', undefined);
  const options: TrainOptions = {
    dataset,
    ...(folder ? { imageFolder: folder.imageFolder } : {}),
    model,
    ...(custom || folder ? { config } : {}),
    head,
    init: given('init') ?? pick('init', d.init),
    classMaps: given('classMaps') ?? pick('classMaps', d.classMaps),
    dropout: given('dropout') ?? pick('dropout', undefined),
    epochs,
    batchSize: given('batchSize') ?? pick('batchSize', d.batch),
    lr: given('lr') ?? pick('lr', d.lr),
    schedule,
    stepEpochs,
    gamma: given('gamma') ?? pick('gamma', 0.1),
    warmupEpochs,
    ...(schedule === 'plateau'
      ? {
          patience: given('patience') ?? pick('patience', undefined) ?? PLATEAU_DEFAULTS.patience,
          lrDrops: given('lrDrops') ?? pick('lrDrops', undefined) ?? PLATEAU_DEFAULTS.lrDrops,
          plateauOn: given('plateauOn') ?? pick('plateauOn', undefined) ?? PLATEAU_DEFAULTS.on,
        }
      : {}),
    momentum: given('momentum') ?? pick('momentum', 0.9),
    weightDecay: given('weightDecay') ?? pick('weightDecay', 1e-4),
    classLrMult: given('classLrMult') ?? pick('classLrMult', d.classLrMult ?? ((head ?? config.head) === 'gap' ? undefined : FC_CLASS_LR_MULT)),
    augment: v.aug ? true : v['no-aug'] ? false : pick('augment', d.augment),
    preprocess: given('preprocess') ?? pick('preprocess', d.preprocess),
    validation: given('validation') ?? pick('validation', 0),
    // A checkpoint saved before the choice was recorded drew its split at random.
    validationFrom: given('validationFrom') ?? (saved ? validationFromOf(saved, true) : undefined),
    extra: v.extra ? true : pick('extra', undefined),
    trainLimit: given('trainLimit') ?? pick('trainLimit', undefined), // the main job trains on all 60k
    testLimit: given('testLimit') ?? pick('testLimit', undefined),
    seed: given('seed') ?? pick('seed', 1),
    splitSeed: given('splitSeed') ?? pick('splitSeed', undefined),
    outDir: s('out') ?? (source ? resumedRunDirectory(source) : unusedRunDirectory(join('runs', `${runLabel}-${model}`))),
    ...(s('out') === undefined && !source ? { outDirSeries: join('runs', `${runLabel}-${model}`) } : {}),
    resume,
    weightsFrom: s('weights-from') === undefined ? pick('weightsFrom', undefined) : resolve(checkpointArg(s('weights-from')!, '--weights-from: ')),
    overwrite: v.overwrite ? true : undefined,
    stopAfter: int('stop-after', s('stop-after'), 1),
    checkpointMinutes: given('checkpointMinutes') ?? pick('checkpointMinutes', undefined) ?? 10,
    keepEvery: given('keepEvery') ?? pick('keepEvery', undefined),
    profile: Boolean(v.profile),
    ...(dataset === FOLDER ? { stream: v.stream ? true : v['no-stream'] ? false : pick('stream', undefined) } : {}),
  };
  if (options.stream && !batchwise(options.preprocess)) {
    throw new UsageError(`--stream: --preprocess ${options.preprocess} works on the whole training set in memory; a streamed one takes none or standardize (the folder's default)`);
  }
  if (options.warmupEpochs > options.epochs) {
    // A --warmup flag is bounded by --epochs already: this is a resumed run's saved warm-up.
    const whose = resume ? `--resume ${resume}: the checkpoint's warm-up` : 'the warm-up';
    throw new UsageError(`${whose} of ${options.warmupEpochs} epochs is longer than the run's ${options.epochs}; give --warmup ${options.epochs} or less`);
  }
  checkValidationSplit(options, s, folder, saved);
  const { height, width, channels } = config.input;
  if (options.preprocess === 'gcn-zca' && height * width * channels > MAX_ZCA_VALUES) {
    throw new UsageError(`--preprocess gcn-zca fits a D×D whitening matrix for the D = ${height * width * channels} values of a ${width}×${height}×${channels} image; at most ${MAX_ZCA_VALUES} (CIFAR's 32×32×3 is 3072): give ${folder && !custom && !header ? 'a smaller --image-size, or ' : ''}--preprocess standardize or gcn-lcn`);
  }
  if (header) {
    const clash = resumeClashes(options, header.config, header.options);
    if (clash.length) throw new UsageError(`--resume ${resume}: ${clash.join(', ')}: a resumed run keeps them (start a new run to change them)`);
  } else {
    // The flags may make a config file's layers not fit (--head gap on one made for fc): found now, not after loading the data.
    try {
      plan(modelConfig(options));
    } catch (e) {
      throw new UsageError(`${(e as Error).message}${options.head ? ` (--head ${options.head})` : ''}`);
    }
  }
  if (s('weights-from') !== undefined) checkStartingWeights(options);
  checkTrainingSetFits(options, config.classes, s, folder, saved !== undefined);
  checkRunPlan(options, s, header, source);
  return { options, dataDir: s('data-dir'), ...(v['dry-run'] ? { dryRun: true } : {}) };
}

/** Why a command cannot write in `dir` (a file there, or no write access to it or to the directory
 * that would hold it), or null: found before the data is loaded. `flag`: the option's text, where
 * `dir` is the directory of the file it names; `option`: the option, as the message names it. */
function outDirProblem(dir: string, flag = dir, option = '--out'): string | null {
  let at = resolve(dir);
  while (!existsSync(at)) {
    const link = danglingLink(at);
    if (link !== null) return `${option} ${flag}: ${at} is a symbolic link to ${link}, which does not exist`;
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  if (!statSync(at).isDirectory()) return at === resolve(flag) ? `${option} ${flag} is a file, not a directory` : `${option} ${flag}: ${at} is a file, not a directory`;
  try {
    accessSync(at, constants.W_OK);
  } catch (e) {
    return `${option} ${flag}: cannot write in ${at} (${(e as NodeJS.ErrnoException).code})`;
  }
  return null;
}

/** A resumed run's directory: the one holding its checkpoint if that is the run's own (it may have
 * been moved or copied there), else the one it was trained in. */
function resumedRunDirectory(source: ResumeSource): string {
  const here = dirname(source.path);
  const own = (source.runId !== null || existsSync(join(here, 'metrics.jsonl'))) && isOwnRunDirectory(here, source);
  return own ? here : source.savedOutDir;
}

/** The line a finished `nin train` prints: its time, test error and checkpoint; a run --stop-after
 * ended short of its --epochs is not done, and says where it stands. The time is this process's:
 * a resumed run's says so, lest it be quoted as the run's. */
export function finishedLine(options: Pick<TrainOptions, 'epochs' | 'stopAfter' | 'resume'>, result: Pick<TrainResult, 'epochs' | 'seconds' | 'test' | 'checkpoint'>): string {
  const lastEpoch = result.epochs.at(-1)?.epoch;
  const stoppedShort = options.stopAfter !== undefined && options.stopAfter < options.epochs && lastEpoch === options.stopAfter;
  const outcome = stoppedShort ? `stopped after epoch ${lastEpoch} of ${options.epochs} (--stop-after; --resume ${shellWord(result.checkpoint)} continues)` : 'done';
  return `${outcome} in ${result.seconds.toFixed(0)} s${options.resume ? ' since the resume' : ''}` + (result.test ? `: test error ${(100 * result.test.error).toFixed(2)}% (accuracy ${(100 - 100 * result.test.error).toFixed(2)}%) on ${counted(result.test.count, 'image')}` : '') + `; checkpoint ${result.checkpoint}`;
}

async function runTrain(args: string[]): Promise<number> {
  const { options, dataDir, dryRun } = parseTrainArgs(args);
  const { loadSplits } = await import('./datasets.ts');
  const { startingCheckpoints, train, TrainingInterrupted } = await import('./train.ts');
  if (dryRun) {
    const { dryRun: dry, dryRunLine } = await import('./dry-run.ts');
    const checkpoints = startingCheckpoints(options); // (a damaged one named before the data loads)
    console.log(dryRunLine(options, await dry(options, await loadSplits(options, dataDir), checkpoints)));
    return 0;
  }
  // Ctrl-C, SIGTERM (e.g. from `timeout`) or SIGHUP while training: the run saves its checkpoint after the
  // current step and stops. Before training starts (nothing to save), or again a second or more
  // later: quit now. (One Ctrl-C can arrive twice within a millisecond: from the terminal and
  // forwarded by `npm run`; `timeout` signals the process and its group.)
  let training = false;
  let lastCheckpoint = options.resume ?? null; // what a quit at once leaves to continue from
  let stopRequested: NodeJS.Signals | null = null;
  let requestedAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!training) {
      console.error(`\n${signal} before the first training step: stopping; nothing was trained, so there was nothing to save`);
      process.exit(128 + os.constants.signals[signal]);
    }
    // The terminal is gone: writing to it fails (EIO), which must not end the run before it saves.
    if (signal === 'SIGHUP') for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
    if (stopRequested && performance.now() - requestedAt > 1000) {
      console.error(`\n${signal} again: quitting at once; the steps since the last checkpoint are lost` + (lastCheckpoint ? `; --resume ${shellWord(lastCheckpoint)} continues from it` : ''));
      process.exit(128 + os.constants.signals[signal]);
    }
    if (stopRequested) return;
    stopRequested = signal;
    requestedAt = performance.now();
    console.error(`\n${signal}: saving a checkpoint after this step (at an epoch's end: after its evaluation), then stopping; again, a second or more later: quit at once`);
  };
  // SIGHUP: the terminal was closed.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  try {
    const checkpoints = startingCheckpoints(options); // a damaged one is named before the data loads
    const data = await loadSplits(options, dataDir);
    const interrupt = () => ((training = true), stopRequested !== null);
    const result = await train({ ...options, interrupt, onCheckpoint: (path) => (lastCheckpoint = path) }, data, checkpoints).catch((e) => {
      if (!(e instanceof TrainingInterrupted)) throw e;
      console.error(`nin: ${e.message}`);
      return null;
    });
    if (!result) return 128 + os.constants.signals[stopRequested ?? 'SIGINT'];
    console.log(finishedLine(options, result));
    return 0;
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, onSignal);
  }
}

/**
 * `--weights-from`: whether the new network takes any of the checkpoint's parameters
 * (startingWeights, as train() will), read from its header before any GPU work; a usage error
 * when none, or when it lies in --out beside a run the new one would replace.
 */
function checkStartingWeights(o: TrainOptions): void {
  const from = checkpointHeader(o.weightsFrom!, '--weights-from');
  let shapes: Map<string, number[]>;
  try {
    shapes = new Map(parameterSpecs(from.config).map((p) => [p.name, p.shape]));
  } catch (e) {
    throw new UsageError(`--weights-from ${o.weightsFrom}: its network does not plan (${(e as Error).message})`, false);
  }
  if (!startingWeights({ config: modelConfig(o), options: o }, { ...from, shapes }).taken.length) {
    throw new UsageError(`--weights-from ${o.weightsFrom}: none of its weights (${from.config.name}) fits the network ${o.model}: nothing to start from`, false);
  }
  // --overwrite moves the run directory's files aside: the record would name the new run's own
  // checkpoint. Without it, the run there refuses the new one, and neither --overwrite nor --resume
  // (which takes no --weights-from) would do: checked before that refusal offers them.
  if (resolve(dirname(o.weightsFrom!)) === resolve(o.outDir) && (o.overwrite || runFilesIn(o.outDir).length)) {
    const why = o.overwrite ? 'whose files --overwrite moves aside' : 'which holds its run (a new run there would replace its files)';
    throw new UsageError(`--weights-from ${o.weightsFrom} is in --out ${o.outDir}, ${why}: copy it elsewhere first, or give another --out`);
  }
}

/** Throws a usage error for a --test-limit past the test set: a data set's official count, or an image folder's. */
function checkTestLimit(limit: number, testSet: string | { count: number; of: string }): void {
  const { count, of } = typeof testSet === 'string' ? { count: splitCount(testSet, 'test'), of: testSet } : testSet;
  if (limit > count) throw new UsageError(`--test-limit ${limit} is more than ${of}'s ${count} test images: leave it out to test on all`);
}

/** An image folder's run's test set, as checkTestLimit takes it (undefined for a data set's run). */
function folderTestSet(o: TrainOptions, dataDir: string | undefined): { count: number; of: string } | undefined {
  if (o.dataset !== FOLDER || !o.imageFolder) return undefined;
  const scan = scanRunFolder(o.imageFolder, 'test', dataDir);
  return { count: scan.files.length, of: scan.dir };
}

/**
 * `--dataset folder`: the image folder's classes and images (read from its files' headers, before
 * any GPU work) and the network fitted to them: a built-in model takes the images' size (or
 * --image-size WxH) and channels, and one class map per folder; a config file's or a resumed run's
 * network is fixed, and the images are resized to it. A resume reads the folder it was trained on
 * unless --data-dir says where it is now.
 */
function folderRun(base: ModelConfig, fixed: boolean, resumed: { path: string; options: TrainOptions } | undefined, dataDir: string | undefined, imageSize: string | undefined) {
  // (a resume's data set is the checkpoint's, checked before; its imageFolder was checked with its header)
  const was = resumed?.options.imageFolder;
  if (!was && dataDir === undefined) throw new UsageError('--dataset folder trains on images of your own: give --data-dir DIR, where DIR holds train/<class>/ and test/<class>/ folders of PNG or JPEG images');
  if (imageSize !== undefined && fixed) throw new UsageError(`--image-size: the network's input is ${base.input.width}×${base.input.height} (width×height), fixed by ${resumed ? 'the resumed run' : '--config'}: its images are resized to that`);
  const train = was ? scanRunFolder(was, 'train', dataDir) : scanImageFolder(dataDir!, 'train');
  const root = dirname(train.dir);
  const test = scanImageFolder(root, 'test', train.classNames);
  const changed = was && folderChanged(train, was);
  if (changed) throw new Error(`--resume ${resumed!.path}: ${train.dir}: ${changed}`); // (the data, not the flags: exit 1, as for changed class folders)
  const classes = train.classNames.length;
  if (fixed && base.input.channels !== 1 && base.input.channels !== 3) throw new UsageError(`model '${base.name}' takes ${base.input.channels} channels; images make 1 (grey) or 3 (colour)`);
  if (fixed && base.classes !== classes) throw new UsageError(`model '${base.name}' has ${base.classes} classes but ${train.dir} has ${classes} class folders`);
  const config = fixed ? base : fitToData(base, folderImageShape(train, imageSize === undefined ? undefined : parseImageSize(imageSize)), classes);
  // A --config network's channels are its own: said where the pictures are otherwise (a new run's).
  const channels = fixed && !was ? channelsNote(train, config.input.channels) : null;
  if (channels) console.error(`note: ${channels}`);
  const imageFolder: ImageFolderOptions = { dir: root, classNames: train.classNames, trainImages: train.files.length, trainList: folderListDigest(train), trainClasses: folderClassLists(train) };
  return { config, imageFolder, trainDir: train.dir, testDir: test.dir, testImages: test.files.length };
}

/** `--image-size WxH` (or N: N×N), each side 1 to 4096. */
function parseImageSize(text: string): { height: number; width: number } {
  const m = /^(\d+)(?:x(\d+))?$/i.exec(text);
  const [width, height] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [NaN, NaN];
  if (!(width >= 1 && width <= 4096 && height >= 1 && height <= 4096)) throw new UsageError(`--image-size must be WxH (width×height, e.g. 32x32) or N for N×N, each 1 to 4096, got '${text}'`);
  return { height, width };
}

async function runEval(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { 'data-dir': { type: 'string' }, pictures: { type: 'string' }, invert: { type: 'boolean' }, batch: { type: 'string' }, 'test-limit': { type: 'string' }, json: { type: 'string' }, stream: { type: 'boolean' } }, { min: 1, max: Infinity, what: 'at least one checkpoint path' });
  const ckpts = positionals.map((p) => checkpointArg(p, '', '; pictures of your own: nin eval CHECKPOINT --pictures DIR, or nin predict CHECKPOINT PICTURE...'));
  const json = jsonArg(v.json as string | undefined);
  const batchGiven = int('batch', v.batch as string | undefined, 1);
  const testLimit = int('test-limit', v['test-limit'] as string | undefined, 1);
  const dataDir = v['data-dir'] as string | undefined;
  const pictures = v.pictures as string | undefined;
  if (pictures !== undefined && dataDir !== undefined) throw new UsageError('--pictures DIR tests on pictures of your own, --data-dir on the run\'s test set: give one');
  if (v.invert && pictures === undefined) throw new UsageError('--invert reads pictures of your own (--pictures DIR) as dark strokes on a light background; the run\'s test set is read as it is');
  if (pictures !== undefined && !(existsSync(pictures) && statSync(pictures).isDirectory())) throw new UsageError(`--pictures ${pictures}: no such directory (give one that holds a folder of PNG or JPEG pictures for each class it has, named as the model's classes)`, false);
  const twice = ckpts.find((c, i) => ckpts.findIndex((d) => resolve(d) === resolve(c)) !== i);
  if (twice) throw new UsageError(`${twice} is given twice: give each checkpoint once`);
  const { formatConfusion } = await import('./train.ts');
  const { loadCheckpoint } = await import('./checkpoint.ts');
  const { classNamesOf } = await import('./datasets.ts');
  const o = { dataDir, pictures, invert: Boolean(v.invert), batchGiven, testLimit, stream: Boolean(v.stream) };
  // Every checkpoint read and its flags checked first: a usage error before any evaluation.
  const loaded = ckpts.map((ckpt) => {
    const c = loadCheckpoint(ckpt);
    return { ckpt, ...checkedForEval(c, classNamesOf(c.options), o) };
  });
  const results = [];
  for (const { ckpt, c, labelled } of loaded) {
    const r = await evalCheckpoint(c, labelled, o);
    console.log(`${ckpt} (${r.at}): test loss ${r.record.loss.toFixed(4)}, error ${(100 * r.record.error).toFixed(2)}% on ${counted(r.record.images, 'image')}${pictures === undefined ? '' : ` in ${pictures}`}`);
    if (ckpts.length === 1) console.log(formatConfusion(r.record.confusion, r.record.classNames));
    results.push(r);
  }
  if (ckpts.length > 1) {
    // Several (a run's --keep-every checkpoints, say): their numbers side by side, in the order given.
    const rows = results.map(({ at, record: r }, i) => [ckpts[i], at, r.testSet, String(r.images), r.loss.toFixed(4), `${(100 * r.error).toFixed(2)}%`]);
    console.log(['', ...tableLines(['checkpoint', 'saved', 'test set', 'images', 'test loss', 'test error'], rows, 1)].join('\n'));
  }
  // For scripts that evaluate many checkpoints: the numbers above, and each class's error (one
  // checkpoint: its object; several: an array of them, in the order given).
  if (json !== undefined) writeJson(json, ckpts.length === 1 ? results[0].record : results.map((r) => r.record));
}

interface EvalFlags { dataDir?: string; pictures?: string; invert: boolean; batchGiven?: number; testLimit?: number; stream: boolean }

/** `nin eval`'s flags checked against one checkpoint (usage errors), with --pictures' folder
 * scanned for its classes. */
function checkedForEval(c: Checkpoint, classNames: readonly string[], o: EvalFlags) {
  const { dataDir, pictures, testLimit } = o;
  const labelled = pictures === undefined ? undefined : scanLabelledFolder(pictures, classNames);
  if (testLimit !== undefined) checkTestLimit(testLimit, labelled ? { count: labelled.files.length, of: pictures! } : folderTestSet(c.options, dataDir) ?? c.options.dataset);
  if (o.stream && (labelled || c.options.dataset !== 'folder')) throw new UsageError(`--stream reads an image folder run's test pictures batch by batch; ${labelled ? '--pictures are read whole' : `${c.options.dataset}'s test set is read whole`}`);
  if (o.stream && !batchwise(c.preprocessor.kind)) throw new UsageError(`--stream: the run's preprocessing, ${c.preprocessor.kind}, works on the whole test set in memory; leave --stream out`);
  return { c, labelled };
}

/** One checkpoint of `nin eval`: where in its run it was saved ("epoch 4"), and its record for --json. */
async function evalCheckpoint(c: Checkpoint, labelled: ReturnType<typeof scanLabelledFolder> | undefined, o: EvalFlags) {
  const { readLabelledPictures, loadTestSet } = await import('./datasets.ts');
  const { invertNote } = await import('./images.ts');
  const { evaluate } = await import('./train.ts');
  const { dataDir, pictures, batchGiven, testLimit } = o;
  const inverting = o.invert ? invertNote(c.config.input.channels) : null;
  if (inverting) console.error(`note: ${inverting}`);
  const test = labelled ? await readLabelledPictures(c.options, labelled, { limit: testLimit, invert: o.invert }) : await loadTestSet(c.options, dataDir, testLimit, { stream: o.stream });
  await getGpu();
  // The default batch shrinks to what the device binds; a --batch past it is an error (where the
  // test set holds that many images: a batch is never larger than the set).
  const tooLarge = batchGiven === undefined ? null : batchTooLarge(c.config, Math.min(batchGiven, test.count));
  if (tooLarge) throw new Error(`--batch ${batchGiven}${batchGiven! > test.count ? ` (one batch of the ${test.count} test images)` : ''}: ${tooLarge}`);
  const batch = batchGiven ?? largestBatch(c.config, 100);
  const model = c.buildModel();
  // On a terminal, a line while it runs: a process's first evaluation compiles its kernels (19 s on lavapipe).
  const live = process.stderr.isTTY === true;
  if (live) process.stderr.write(`evaluating on ${counted(test.count, 'image')}…`);
  const r = await evaluate(model, await c.preprocessor.applyTo(test, { inPlace: true }), batch)
    .catch((e) => {
      throw e instanceof GpuOutOfMemory ? new GpuOutOfMemory(`${e.message}; evaluating at batch ${batch}: a smaller --batch needs less memory`) : e;
    })
    .finally(() => {
      model.dispose();
      if (live) process.stderr.write('\r\x1b[K');
    }); // loadTestSet reads afresh
  // (a checkpoint saved within an epoch, named as training names that point: "epoch 1, batch 144 of 187")
  const at = c.partialEpoch ? `epoch ${c.epoch + 1}, batch ${c.partialEpoch.batches} of ${c.partialEpoch.stepsPerEpoch}` : `epoch ${c.epoch}`;
  const classError = r.confusion.map((row, k) => { const n = row.reduce((a, b) => a + b, 0); return n ? (n - row[k]) / n : null; });
  const record = { checkpoint: resolve(c.path), epoch: c.epoch, step: c.step, partialEpoch: c.partialEpoch, runId: c.runId, testSet: pictures === undefined ? test.name : resolve(pictures), ...(pictures === undefined ? {} : { invert: o.invert, pictureNotes: test.pictureNotes ?? [] }), notes: test.notes, images: r.count, loss: r.loss, error: r.error, classNames: test.classNames, classError, confusion: r.confusion, options: savedOptions(c.options), config: c.config };
  return { at, record };
}

/** `nin predict`'s pictures: each file named, and a directory's images (not its folders'), in
 * code-point order; a picture named again (a file and its directory) is predicted once, with a note. */
export function predictedImages(args: readonly string[], note: (line: string) => void = (line) => console.error(`note: ${line}`)): string[] {
  const named = args.flatMap((arg) => {
    if (!existsSync(arg)) throw new UsageError(`no image at '${arg}'`, false);
    if (!statSync(arg).isDirectory()) return [arg];
    const { images, others, folders } = imagesInDirectory(arg);
    if (!images.length) throw new UsageError(`'${arg}' is a directory that holds no PNG or JPEG files (.png, .jpg, .jpeg; folders inside it are not read)`, false);
    const some = (paths: string[]) => `${paths.slice(0, 3).map((f) => basename(f)).join(', ')}${paths.length > 3 ? ', …' : ''}`;
    if (others.length) note(`${arg}: ${counted(others.length, 'file')} skipped, not .png, .jpg or .jpeg (${some(others)})`);
    if (folders.length) note(`${arg}: ${counted(folders.length, 'folder')} inside not read (${some(folders)}): name ${folders.length === 1 ? 'it' : 'them'} to predict ${folders.length === 1 ? 'its' : 'their'} pictures`);
    return images;
  });
  const seen = new Set<string>();
  const again: string[] = [];
  const once = named.filter((path) => {
    const key = realpathSync(path); // (a link, or another spelling of the path, is the same picture)
    if (seen.has(key)) {
      again.push(path);
      return false;
    }
    seen.add(key);
    return true;
  });
  if (again.length) note(`${counted(again.length, 'picture')} named again, predicted once: ${again.slice(0, 3).join(', ')}${again.length > 3 ? ', …' : ''}`);
  return once;
}

/** Exit status 1 where some pictures could not be read (the others are predicted). */
async function runPredict(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, { invert: { type: 'boolean' }, json: { type: 'string' } }, { min: 2, max: Infinity, what: 'a checkpoint and at least one image' });
  // A picture first: most likely the arguments in the wrong order.
  const ckpt = checkpointArg(positionals[0], '', ' comes first: nin predict CHECKPOINT PICTURE...');
  const images = predictedImages(positionals.slice(1));
  const json = jsonArg(v.json as string | undefined);
  checkOutputsApart([['--json', json]], [['one of the pictures to predict', images]]); // (a checkpoint: checkOutFile)
  const { predictChunks, formatPredictions, topClasses } = await import('./predict.ts');
  const { fewerNotes, noteText } = await import('./images.ts');
  const notes: string[] = [];
  const progress = (line: string) => console.error(`note: ${line}`); // said at once; the others after the pictures are read
  const otherNotes: string[] = []; // for --json: those not of one picture (--invert on a colour model)
  const unreadable: { image: string; reason: string }[] = [];
  let classNames: string[] = [];
  // --json: each chunk's predictions written as they come, the rest at the end.
  const out = json === undefined ? null : jsonArrayWriter(json, { checkpoint: resolve(ckpt), invert: Boolean(v.invert) }, 'predictions');
  try {
    // A chunk's lines as soon as it is predicted: a directory of many photos takes a while.
    for await (const r of predictChunks(ckpt, images, (line) => notes.push(line), { invert: Boolean(v.invert), skipUnreadable: true, progress })) {
      const chunkNotes = notes.splice(0);
      for (const line of fewerNotes(chunkNotes)) console.error(`note: ${line}`); // a chunk's notes before its lines
      for (const line of formatPredictions(r)) console.log(line);
      const C = r.classNames.length;
      if (out) {
        // Each picture's notes with it, all of them (the terminal's are cut by fewerNotes), without its path.
        const ofPictures = new Set(r.notes.flat());
        otherNotes.push(...chunkNotes.filter((line) => !ofPictures.has(line)));
        out.add(r.images.map((image, i) => ({ image, top5: topClasses(r, i, 5), probabilities: Array.from(r.probabilities.subarray(i * C, (i + 1) * C)), notes: r.notes[i].map((line) => noteText(image, line)) })));
      }
      unreadable.push(...r.unreadable);
      classNames = r.classNames;
    }
  } catch (e) {
    out?.abort();
    throw e;
  } finally {
    for (const line of fewerNotes(notes)) console.error(`note: ${line}`); // those of a chunk that failed
  }
  out?.finish({ classNames, notes: otherNotes, unreadable });
  if (!unreadable.length) return 0;
  // Last, where a terminal shows it; the exit status tells a script that not every picture was predicted.
  const LISTED = 20;
  const more = unreadable.length > LISTED ? `\n  and ${unreadable.length - LISTED} more${json !== undefined ? ` (all in ${json})` : ''}` : '';
  const list = unreadable.slice(0, LISTED).map(({ image, reason }) => `  ${image}: ${reason}`).join('\n') + more;
  const done = images.length - unreadable.length;
  const others = done === 0 ? 'none predicted' : `the other ${done === 1 ? 'one is' : `${done} are`} predicted above`;
  console.error(`nin: ${unreadable.length} of ${images.length} images cannot be read (${others}):\n${list}`);
  return 1;
}

/** A --json FILE option: refused where it cannot be written, before any work. */
function jsonArg(json: string | undefined): string | undefined {
  if (json !== undefined) checkOutFile(json, '--json', 'file');
  return json;
}

/** A file an option names for writing (`--out FILE`, `--json FILE`): a usage error where it is a
 * directory (`what` to name instead, e.g. `example` in it) or cannot be written (outDirProblem). */
function checkOutFile(file: string, option: string, what: string, example?: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new UsageError(`${option} ${file} is a directory: name the ${what} to write${example ? ` (e.g. ${join(file, example)})` : ''}`);
  const problem = outDirProblem(dirname(file), file, option);
  if (problem) throw new UsageError(problem);
  // A run's file there, or a name a run takes (its lock).
  const kind = runFileKind(file);
  const reserved = kind ? null : reservedRunFileName(file);
  const taken = kind ? ` is ${kind}: writing there would replace it` : reserved ? `: ${reserved}` : null;
  if (taken) throw new UsageError(`${option} ${file}${taken}; name another file${example ? ` (e.g. ${join(dirname(file), example)})` : ''}`);
}

/**
 * A usage error where a file an option writes is also one the command reads, or one another
 * option writes: `predict pic.png --json pic.png` replaced the picture, `compare --out x.png
 * --json x.png` the PNG. `outputs`: [option, file] (undefined: not given); `inputs`: [what they
 * are, their paths]. A link and another spelling of a path are the same file.
 */
function checkOutputsApart(outputs: [string, string | undefined][], inputs: [string, readonly string[]][]): void {
  const fileOf = (path: string) => (existsSync(path) ? realpathSync(path) : resolve(path));
  const given = outputs.filter((o): o is [string, string] => o[1] !== undefined);
  for (const [i, [option, file]] of given.entries()) {
    const target = fileOf(file);
    const other = given.slice(0, i).find(([, f]) => fileOf(f) === target);
    if (other) throw new UsageError(`${option} ${file} names the file ${other[0]} writes: name another file for one of them`);
    for (const [what, paths] of inputs) {
      if (paths.some((p) => fileOf(p) === target)) throw new UsageError(`${option} ${file} is ${what}: writing there would replace it; name another file`);
    }
  }
}

function writeJson(path: string, value: unknown): void {
  makeDirectory(dirname(path));
  writeFileAtomic(path, [new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n')]);
  console.log(`wrote ${path}`);
}

/**
 * A JSON object written as it grows: `head`'s members, then the array `key`, whose items `add`
 * appends, then `finish`'s members; the text JSON.stringify(…, null, 2) gives for that object,
 * written atomically (AtomicFile). predict --json holds some 1 KB a picture: half a million
 * pictures made one string longer than JavaScript allows, after all the work.
 */
export function jsonArrayWriter(path: string, head: Record<string, unknown>, key: string) {
  makeDirectory(dirname(path));
  const file = new AtomicFile(path);
  const indented = (value: unknown, by: string) => JSON.stringify(value, null, 2).replace(/\n/g, `\n${by}`);
  const member = ([k, v]: [string, unknown]) => `  ${JSON.stringify(k)}: ${indented(v, '  ')}`;
  file.write(`{\n${Object.entries(head).map((m) => `${member(m)},\n`).join('')}  ${JSON.stringify(key)}: [`);
  let items = 0;
  return {
    add(values: readonly unknown[]): void {
      if (!values.length) return;
      file.write(values.map((v) => `${items++ ? ',' : ''}\n    ${indented(v, '    ')}`).join(''));
    },
    finish(tail: Record<string, unknown>): void {
      file.write(`${items ? '\n  ' : ''}]${Object.entries(tail).map((m) => `,\n${member(m)}`).join('')}\n}\n`);
      file.commit();
      console.log(`wrote ${path}`);
    },
    abort: () => file.abort(),
  };
}

async function runVisualize(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { 'data-dir': { type: 'string' }, images: { type: 'string' }, out: { type: 'string' } }, { min: 1, max: 1, what: 'one checkpoint path' });
  // A row of the grid is 84 px tall: 256 rows make a PNG of some 21,600 px, more than most
  // viewers show, and 2,000 (100 classes) a canvas past what one array holds.
  const count = int('images', v.images as string | undefined, 1, 256) ?? 6;
  const ckpt = checkpointArg(positionals[0]);
  const outProblem = v.out === undefined ? null : outDirProblem(v.out as string);
  if (outProblem) throw new UsageError(outProblem);
  const { visualize } = await import('./predict.ts');
  const files = await visualize(ckpt, { count, dataDir: v['data-dir'] as string | undefined, outDir: v.out as string | undefined });
  for (const f of files) console.log(`wrote ${f}`);
  if (!files.some((f) => f.endsWith('curves.png'))) console.log(`no curves: no log of this checkpoint's run beside ${ckpt} (metrics.jsonl, or a metrics.superseded*.jsonl that --overwrite moved aside)`);
}

async function runExport(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { out: { type: 'string' }, 'no-preprocess': { type: 'boolean' } }, { min: 1, max: 1, what: 'one checkpoint path' });
  const ckpt = checkpointArg(positionals[0]);
  const out = (v.out as string | undefined) ?? ckpt.replace(/\.safetensors$/, '') + '.onnx';
  checkOutFile(out, '--out', '.onnx file', 'model.onnx'); // (not over a checkpoint, such as the one it is made from)
  // (an ONNX model named .safetensors was later read as a damaged checkpoint)
  if (extname(out) && extname(out).toLowerCase() !== '.onnx') throw new UsageError(`--out ${out}: the model is written as ONNX: name it .onnx`);
  makeDirectory(dirname(out));
  const { exportCheckpoint } = await import('./onnx.ts');
  console.log(exportCheckpoint(ckpt, out, { preprocess: !v['no-preprocess'] }));
}

async function runCompare(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { out: { type: 'string' }, 'linear-error': { type: 'boolean' }, json: { type: 'string' }, title: { type: 'string' } }, { min: 1, max: Infinity, what: 'at least one run (a run directory, or a log or checkpoint in one)' });
  const out = (v.out as string | undefined) ?? 'compare.png';
  const json = jsonArg(v.json as string | undefined);
  checkOutFile(out, '--out', 'PNG file', 'compare.png');
  checkOutputsApart([['--out', out], ['--json', json]], [['one of the runs compared', positionals]]);
  // (the bytes are a PNG's whatever the name: a .jpg would not open as one)
  if (extname(out) && extname(out).toLowerCase() !== '.png') throw new UsageError(`--out ${out}: the comparison is written as a PNG: name it .png`);
  const { readRuns, comparisonJson, comparisonTable, renderComparison, RunNotComparable } = await import('./compare.ts');
  ignoreClosedStdout(); // `nin compare … | head`: the PNG is written all the same
  let runs;
  try {
    runs = readRuns(positionals);
  } catch (e) {
    if (e instanceof RunNotComparable) throw new UsageError(e.message); // (not any RangeError: a damaged log's is no usage error)
    throw e;
  }
  console.log(comparisonTable(runs));
  makeDirectory(dirname(out));
  writeFileSync(out, renderComparison(runs, { linearError: Boolean(v['linear-error']), title: v.title as string | undefined }));
  console.log(`\nwrote ${out}`);
  if (json !== undefined) writeJson(json, comparisonJson(runs));
}

/** `nin lr-find`'s default sweep. */
const RANGE_TEST_DEFAULTS: RangeTest = { lrMin: 1e-5, lrMax: 10, steps: 300 };

/** `nin train` flags that have no meaning for a range test, which sets its own rates and trains no run. */
const NOT_FOR_RANGE_TEST = ['test-limit', 'epochs', 'lr', 'schedule', 'lr-steps', 'gamma', 'warmup', 'patience', 'lr-drops', 'plateau-on', 'resume', 'out', 'overwrite', 'stop-after', 'checkpoint-every', 'keep-every', 'profile', 'dry-run'];

/** `nin lr-find`'s own flags, then the rest as `nin train`'s. */
export function parseRangeTestArgs(args: string[]): { train: TrainCommand; test: RangeTest; plot: string; json?: string } {
  const own = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--(lr-min|lr-max|steps|plot|json)(?:=(.*))?$/s.exec(args[i]);
    if (!m) {
      rest.push(args[i]);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new UsageError(`--${m[1]} needs a value`);
    // (as parse() refuses for train's flags: `--plot=` wrote the plot to '' after the sweep;
    // `--json --aug` wrote a file named --aug and swept without augmentation)
    if (value === '') throw new UsageError(`--${m[1]} needs a value, got an empty one`);
    if (m[2] === undefined && value.startsWith('--')) throw new UsageError(`--${m[1]} needs a value, got the flag ${value}`);
    own.set(m[1], value); // (the last one given counts, as for every flag: a script's defaults, then overrides)
  }
  for (const a of rest) {
    const flag = /^--([a-z-]+)/.exec(a)?.[1];
    if (flag && NOT_FOR_RANGE_TEST.includes(flag)) throw new UsageError(`--${flag} has no meaning for lr-find: it sweeps its own rates (--lr-min, --lr-max, --steps) from the network's initial weights, and writes no run`);
  }
  // (as --lr's bounds, but above 0: a geometric sweep starts above it)
  const rate = (flag: string, fallback: number) => (flagValue({ flag, kind: 'num', min: 0, aboveMin: true, max: 1000 }, own.get(flag)) as number | undefined) ?? fallback;
  const test = { lrMin: rate('lr-min', RANGE_TEST_DEFAULTS.lrMin), lrMax: rate('lr-max', RANGE_TEST_DEFAULTS.lrMax), steps: int('steps', own.get('steps'), 5, 100_000) ?? RANGE_TEST_DEFAULTS.steps };
  if (!(test.lrMin < test.lrMax)) throw new UsageError(`--lr-min ${test.lrMin} must be below --lr-max ${test.lrMax}`);
  const plot = own.get('plot') ?? 'lr-find.png';
  checkOutFile(plot, '--plot', 'PNG file', 'lr-find.png');
  if (extname(plot) && extname(plot).toLowerCase() !== '.png') throw new UsageError(`--plot ${plot}: the sweep is drawn as a PNG: name it .png`);
  const json = jsonArg(own.get('json'));
  checkOutputsApart([['--plot', plot], ['--json', json]], []);
  return { train: parseTrainArgs(rest), test, plot, ...(json !== undefined ? { json } : {}) };
}

async function runRangeTest(args: string[]): Promise<void> {
  const { train: { options, dataDir }, test, plot, json } = parseRangeTestArgs(args);
  const { loadSplits } = await import('./datasets.ts');
  const { rangeTest, rangeTestLines, rangeTestPlot } = await import('./lr-find.ts');
  const { startingCheckpoints } = await import('./train.ts');
  const checkpoints = startingCheckpoints(options); // a damaged one is named before the data loads, as in train
  const r = await rangeTest(options, await loadSplits(options, dataDir), test, checkpoints);
  makeDirectory(dirname(plot));
  writeFileAtomic(plot, [rangeTestPlot(r, `learning-rate range test: ${options.model}, batch ${options.batchSize}`)]);
  for (const line of rangeTestLines(r)) console.log(line);
  console.log(`wrote ${plot}`);
  if (json !== undefined) writeJson(json, { ...test, batch: options.batchSize, model: options.model, dataset: options.dataset, ...r });
}

let closedStdoutIgnored = false;
/** A reader that stops early (`nin models | head`) is no error for a listing or a table (a training
 * run's output is another matter: there a closed pipe still fails the command). Once per process. */
function ignoreClosedStdout(): void {
  if (closedStdoutIgnored) return;
  closedStdoutIgnored = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
}

/** Each model as `nin train --model NAME` builds it: its config with its data set's default init and class maps. */
async function runModels(args: string[]): Promise<void> {
  const { values: v } = parse(args, { config: { type: 'string' } }, { min: 0, max: 0, what: 'no arguments' });
  ignoreClosedStdout(); // `nin models | head`
  if (v.config !== undefined) {
    // A config file of one's own, checked and summarised before any training.
    const c = readConfigFile(v.config as string);
    const image = `${c.input.height}×${c.input.width}×${c.input.channels}`;
    const dataset = datasetOfShape(c);
    const own = 'images of your own: --dataset folder --data-dir DIR';
    // (a data set of that image shape but other classes is one `nin train` refuses)
    const trainsOn = !dataset
      ? `no data set has ${image} images: ${datasetImages()}; ${own}`
      : DATASET_SHAPES[dataset].classes !== c.classes
        ? `no data set has ${image} images in ${c.classes} classes (${dataset} has ${DATASET_SHAPES[dataset].classes}); ${own}`
        : `${dataset} unless --dataset says otherwise`;
    console.log(`${c.name}: ${image} → ${c.classes} classes, ${c.head} head, ${c.init} init (${trainsOn})`);
    console.log(describeConfig(c));
    return;
  }
  for (const name of Object.keys(MODELS)) {
    const paper = MODELS[name];
    const dataset = datasetOf(name);
    const d: Partial<Defaults> = dataset ? { ...DATASET_DEFAULTS[dataset], ...MODEL_DEFAULTS[name] } : {};
    const c = modelConfig({ model: name, init: d.init, classMaps: d.classMaps });
    const maps = (config: ModelConfig) => (classMapsOf(config) === 'relu' ? 'ReLU' : 'linear');
    // The paper's where they differ, and only the flags that would change something.
    const differs = [
      ...(c.init !== paper.init ? [[`${paper.init} init`, `--init ${paper.init}`]] : []),
      ...(maps(c) !== maps(paper) ? [[`${maps(paper)} class maps`, `--class-maps ${maps(paper).toLowerCase()}`]] : []),
    ];
    const papers = differs.length ? ` (the paper's: ${differs.map(([what]) => what).join(', ')}: ${differs.map(([, flag]) => flag).join(' ')})` : '';
    console.log(`\n${name}: ${c.input.height}×${c.input.width}×${c.input.channels} → ${c.classes} classes, ${c.head} head, ${c.init} init, ${maps(c)} class maps${papers}`);
    console.log(describeConfig(c));
  }
}

const COMMANDS = ['train', 'eval', 'predict', 'visualize', 'compare', 'export', 'models', 'lr-find'];

/** The errors `main` prints as their message alone, without their name. */
const MESSAGE_ALONE = new Set(['Error', 'CheckpointDamaged', 'DataFormatError', 'ImageLoadError', 'JpegFormatError', 'MissingDataError', 'SafetensorsError', 'StreamReadError', 'TrainingStopped', 'NonFiniteWeights', 'RunRefused', 'RunDirectoryInUse']);

/** How `main` prints an error other than a usage error. Our own errors (data, pictures,
 * checkpoints, a refused or stopped run) say what is wrong and where; a name like TypeError tells
 * of a fault, GpuError of the device. */
export function errorLine(e: Error): string {
  return `nin: ${MESSAGE_ALONE.has(e.name) ? '' : `${e.name}: `}${e.message}`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  // `nin train --help` asks for the usage, not a flag check (flags after a bare `--` are positionals).
  const flags = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (cmd !== undefined && COMMANDS.includes(cmd) && (flags.includes('--help') || flags.includes('-h'))) {
    console.log(USAGE);
    return 0;
  }
  try {
    // The NIN_* settings of the commands that use the GPU: a bad one is a usage error before any
    // data is read (it was found once the device was made, after loading the test set, as a GpuError).
    if (cmd === 'train' || cmd === 'eval' || cmd === 'predict' || cmd === 'visualize' || cmd === 'lr-find') {
      try {
        checkSettings();
        checkTunedSetting();
      } catch (e) {
        throw new UsageError((e as Error).message, false);
      }
    }
    switch (cmd) {
      case 'train': return await runTrain(rest);
      case 'eval': await runEval(rest); break;
      case 'predict': return await runPredict(rest);
      case 'visualize': await runVisualize(rest); break;
      case 'compare': await runCompare(rest); break;
      case 'export': await runExport(rest); break;
      case 'models': await runModels(rest); break;
      case 'lr-find': await runRangeTest(rest); break;
      case undefined: case '-h': case '--help': case 'help':
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      // A pointer to the usage, not its 130 lines (which buried the message: reviewers read it twice over).
      const help = `nin ${cmd !== undefined && COMMANDS.includes(cmd) ? `${cmd} ` : ''}--help`;
      console.error(e.showUsage ? `nin: ${e.message}\n(${help} shows the usage)` : `nin: ${e.message}`);
      return 2;
    }
    console.error(errorLine(e as Error));
    return 1;
  } finally {
    closeGpu();
  }
}

if (isMainModule(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}

