// One worker thread of readPictures (folder.ts): reads its part of the images into the shared
// array, and says how many were resized, which could not be read, and their notes.
import { parentPort, workerData } from 'node:worker_threads';
import { readImagesInto, type PictureReading } from './folder.ts';
import type { ModelInput } from '../images.ts';

const { paths, input, images, first, how } = (workerData as { job: { paths: string[]; input: ModelInput; images: Float32Array; first: number; how: PictureReading } }).job;
parentPort!.postMessage(readImagesInto(paths, input, images, first, how));
