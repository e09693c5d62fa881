// Where a picture's reading time goes, on the CPU, one thread: what an image folder read whole, a
// `--stream` batch and `nin predict` spend per picture before any GPU work.
//   node --import tsx bench/pictures.ts [DIR] [--size 224x224] [--limit 200] [--reps 5] [--json out.json]
// DIR: a folder of PNGs and JPEGs (searched recursively; an image folder's root will do). Without
// it, 64 synthetic 500×375 JPEGs (jpeg-js's encoder, quality 90, 4:4:4) in a temporary folder.
// Per picture, the median over --reps of each stage, both decoders of a JPEG's component planes
// from the same run (jpeg-js, and nin/jpeg-baseline.ts's fast path where it takes the file), and
// then the whole read (loadImageForModel: decode, colour conversion, resize) as pictures a second
// per thread. Worker threads (readImageFolder, --stream) multiply that by the cores given them.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadImageForModel, readImage, resizeImage, rgbaToChannels } from '../nin/images.ts';
import { decodeBaselineJpeg } from '../nin/jpeg-baseline.ts';
import { jpegJsPlanes } from '../nin/jpeg.ts';
import { isMainModule } from '../nin/is-main.ts';
import { median } from '../test/numeric.ts';

export interface PictureStages {
  pictures: number;
  jpegs: number;
  /** JPEGs the fast path took (the rest: progressive, several scans). */
  fastPath: number;
  /** Medians over the pictures of each one's median time, ms. */
  planesJpegJs: number | null;
  planesFastPath: number | null;
  decode: number;
  channels: number;
  resize: number;
  whole: number;
  picturesPerSecond: number;
}

/** Pictures under `dir`, in name order, at most `limit`. */
function picturesIn(dir: string, limit: number): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (found.length >= limit) return;
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(png|jpe?g)$/i.test(name)) found.push(path);
    }
  };
  walk(dir);
  return found;
}

/** `count` noisy 500×375 JPEGs written by jpeg-js's encoder into a new temporary folder. */
function syntheticJpegs(count: number): string {
  const { encode } = createRequire(import.meta.url)('jpeg-js') as { encode(image: { data: Uint8Array; width: number; height: number }, quality: number): { data: Buffer } };
  const dir = mkdtempSync(join(tmpdir(), 'nin-bench-pictures-'));
  const [width, height] = [500, 375];
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const at = (y * width + x) * 4;
        data[at] = (128 + 100 * Math.sin((x + 13 * i) / 17) + 25 * rnd()) & 255;
        data[at + 1] = (128 + 100 * Math.cos((y + 7 * i) / 23) + 25 * rnd()) & 255;
        data[at + 2] = (x + y + 9 * i) & 255;
        data[at + 3] = 255;
      }
    }
    writeFileSync(join(dir, `${String(i).padStart(3, '0')}.jpg`), encode({ data, width, height }, 90).data);
  }
  return dir;
}

/** The median of `reps` timings of `f`, ms (one untimed call first). */
function timed(f: () => unknown, reps: number): number {
  f();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  return median(times);
}

export function benchPictures(paths: string[], size: { height: number; width: number }, reps: number): PictureStages {
  const stages = { planesJpegJs: [] as number[], planesFastPath: [] as number[], decode: [] as number[], channels: [] as number[], resize: [] as number[], whole: [] as number[] };
  let jpegs = 0;
  for (const path of paths) {
    const bytes = readFileSync(path);
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      jpegs++;
      stages.planesJpegJs.push(timed(() => jpegJsPlanes(bytes), reps));
      if (decodeBaselineJpeg(bytes)) stages.planesFastPath.push(timed(() => decodeBaselineJpeg(bytes), reps));
    }
    const image = readImage(path);
    stages.decode.push(timed(() => readImage(path), reps));
    stages.channels.push(timed(() => rgbaToChannels(image.rgba, image.width, image.height, 3), reps));
    const converted = rgbaToChannels(image.rgba, image.width, image.height, 3);
    stages.resize.push(timed(() => resizeImage(converted, image.height, image.width, 3, size.height, size.width), reps));
    stages.whole.push(timed(() => loadImageForModel(path, { ...size, channels: 3 }), reps));
  }
  const med = (v: number[]) => (v.length ? median(v) : null);
  const whole = median(stages.whole);
  return {
    pictures: paths.length,
    jpegs,
    fastPath: stages.planesFastPath.length,
    planesJpegJs: med(stages.planesJpegJs),
    planesFastPath: med(stages.planesFastPath),
    decode: median(stages.decode),
    channels: median(stages.channels),
    resize: median(stages.resize),
    whole,
    picturesPerSecond: 1000 / whole,
  };
}

if (isMainModule(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { size: { type: 'string', default: '224x224' }, limit: { type: 'string', default: '200' }, reps: { type: 'string', default: '5' }, json: { type: 'string' } } });
  const [width, height] = /^(\d+)x(\d+)$/i.exec(values.size!)?.slice(1).map(Number) ?? [];
  if (!(width > 0 && height > 0)) throw new Error(`--size must be WxH (e.g. 224x224), got '${values.size}'`);
  const size = { height, width };
  const synthetic = positionals[0] === undefined ? syntheticJpegs(64) : null;
  try {
    const paths = picturesIn(positionals[0] ?? synthetic!, Number(values.limit));
    if (!paths.length) throw new Error(`${positionals[0]}: no PNG or JPEG files in it`);
    const r = benchPictures(paths, size, Number(values.reps));
    const row = (what: string, v: number | null, more = '') => console.log(`  ${what.padEnd(32)}${v === null ? '—' : `${v.toFixed(2)} ms`}${more}`);
    console.log(`${r.pictures} pictures (${r.jpegs} JPEGs, ${r.fastPath} on the fast path) from ${positionals[0] ?? 'synthetic 500×375 JPEGs'}, read at ${size.width}×${size.height}; per picture, medians, one thread:`);
    row('JPEG planes, jpeg-js', r.planesJpegJs);
    row('JPEG planes, fast path', r.planesFastPath, r.planesJpegJs && r.planesFastPath ? `  (${(r.planesJpegJs / r.planesFastPath).toFixed(2)}× jpeg-js's speed)` : '');
    row('decoded to RGBA (readImage)', r.decode);
    row("to the model's channels", r.channels);
    row('resized', r.resize);
    row('whole read (loadImageForModel)', r.whole, `: ${r.picturesPerSecond.toFixed(1)} pictures/s a thread`);
    if (values.json) writeFileSync(values.json, JSON.stringify({ size, ...r }, null, 2) + '\n');
  } finally {
    if (synthetic) rmSync(synthetic, { recursive: true, force: true });
  }
}
