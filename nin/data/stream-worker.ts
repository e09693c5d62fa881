// A worker thread of the picture pool (stream.ts): decodes the pictures each request names, at the
// request's size, and sends back their raw pixels (the buffer moved, not copied).
import { parentPort } from 'node:worker_threads';
import type { ModelInput } from '../images.ts';
import { readImagesInto } from './folder.ts';

parentPort!.on('message', (m: { id: number; paths: string[]; input: ModelInput }) => {
  try {
    const images = new Float32Array(m.paths.length * m.input.height * m.input.width * m.input.channels);
    const read = readImagesInto(m.paths, m.input, images, 0);
    parentPort!.postMessage({ id: m.id, images, read }, [images.buffer]);
  } catch (e) {
    // This request's failure alone: the thread goes on with the next.
    parentPort!.postMessage({ id: m.id, error: (e as Error).message ?? String(e) });
  }
});
