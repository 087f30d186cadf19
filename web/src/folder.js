// Reading a pocketlm model folder's manifest.json and checking the files it lists, the way the
// Python runtime's artifact module does: every problem is an ArtifactError of one line that
// names the file and the fix.

import { FORMAT_VERSION } from './constants.js';
import { ArtifactError } from './errors.js';

// FORMAT_VERSION (constants.js, generated from the Python runtime) is the manifest layout this
// package reads; a manifest of another major version is refused.
export const MANIFEST = 'manifest.json';
const REMAKE = 're-create it with `pocketlm export`';

/**
 * Parse and check a model folder's manifest text. `where` names the folder in messages.
 * Returns the manifest object.
 */
export function checkManifest(text, where) {
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new ArtifactError(`${where}/${MANIFEST}: unreadable manifest (${error.message}); ${REMAKE}`);
  }
  if (!manifest || typeof manifest !== 'object' || manifest.format !== 'pocketlm') {
    throw new ArtifactError(`${where}/${MANIFEST}: not a pocketlm manifest; ${REMAKE}`);
  }
  if (manifest.kind !== 'model') {
    throw new ArtifactError(`${where}: is a pocketlm '${manifest.kind}' folder, expected a ` +
      "'model' folder (made by `pocketlm export`)");
  }
  const version = String(manifest.format_version ?? '');
  if (version.split('.')[0] !== FORMAT_VERSION.split('.')[0]) {
    throw new ArtifactError(`${where}/${MANIFEST}: format version ${JSON.stringify(version)} is not ` +
      `supported by this pocketlm package (reads ${FORMAT_VERSION}); ${REMAKE} or update the package`);
  }
  const files = manifest.files;
  if (!files || typeof files !== 'object'
      || !Object.values(files).every((e) => e && Number.isInteger(e.bytes) && typeof e.sha256 === 'string')) {
    throw new ArtifactError(`${where}/${MANIFEST}: malformed 'files' list; ${REMAKE}`);
  }
  const task = taskOf(manifest);
  if (!(task in TASK_GRAPHS)) {
    throw new ArtifactError(`${where}/${MANIFEST}: unknown task ${JSON.stringify(task)}; this package runs ` +
      `${Object.keys(TASK_GRAPHS).join(', ')} models (update the package?)`);
  }
  const keys = task === 'lm' ? ['graphs', 'state', 'special_tokens', 'tokenizer', 'vocab_size']
    : ['graphs', 'labels', 'special_tokens', 'tokenizer'];
  for (const key of keys) {
    if (manifest[key] === undefined) {
      throw new ArtifactError(`${where}/${MANIFEST}: no '${key}' field; ${REMAKE}`);
    }
  }
  return manifest;
}

/** The graphs of each task's folder (the Python runtime's tasks.py registry). */
export const TASK_GRAPHS = { lm: ['score', 'step'], classify: ['classify'], tag: ['tag'] };

/** The task a manifest declares ('lm' when it has none). */
export function taskOf(manifest) {
  return manifest.task ?? 'lm';
}

/** The files a precision needs: the tokenizer, the task's graphs and any weights file they share. */
export function neededFiles(manifest, precision, where) {
  const graphs = TASK_GRAPHS[taskOf(manifest)];
  if (!graphs.every((g) => manifest.graphs[g] && manifest.graphs[g].files)) {
    throw new ArtifactError(`${where}/${MANIFEST}: no ${graphs.join(' and ')} graph; ${REMAKE}`);
  }
  const offered = Object.keys(manifest.graphs[graphs[0]].files).sort();
  if (!offered.includes(precision)) {
    throw new ArtifactError(`${where}: no ${JSON.stringify(precision)} graphs; this folder has ${offered.join(', ')}`);
  }
  const names = [manifest.tokenizer];
  for (const graph of graphs) names.push(manifest.graphs[graph].files[precision]);
  const shared = (manifest.weights || {})[precision];
  if (shared) names.push(shared);
  return names;
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Check one file's bytes against its manifest entry (size, and SHA-256 when `verify`). */
export async function checkFile(manifest, name, bytes, where, verify) {
  const entry = manifest.files[name];
  if (!entry) {
    throw new ArtifactError(`${where}/${MANIFEST}: does not list ${name}; ${REMAKE}`);
  }
  if (bytes.byteLength !== entry.bytes) {
    throw new ArtifactError(`${where}/${name}: corrupted (${bytes.byteLength} bytes, the manifest says ` +
      `${entry.bytes}); ${REMAKE}`);
  }
  if (verify) {
    const digest = hex(await globalThis.crypto.subtle.digest('SHA-256', bytes));
    if (digest !== entry.sha256) {
      throw new ArtifactError(`${where}/${name}: corrupted (SHA-256 differs from ${MANIFEST}); ${REMAKE}`);
    }
  }
}

/** The error for a file the manifest lists but the folder lacks. */
export function missingFile(where, name) {
  return new ArtifactError(`${where}/${name}: missing file listed in ${MANIFEST}; ${REMAKE}`);
}
