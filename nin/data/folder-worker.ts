// One worker thread of readImageFolder (folder.ts): reads its part of a folder's images into the
// shared array, and says how many were resized and which could not be read.
import { parentPort, workerData } from 'node:worker_threads';
import { readImagesInto } from './folder.ts';
import type { ModelInput } from '../images.ts';

const { paths, input, images, first } = (workerData as { job: { paths: string[]; input: ModelInput; images: Float32Array; first: number } }).job;
parentPort!.postMessage(readImagesInto(paths, input, images, first));
