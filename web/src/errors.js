// Errors pocketlm raises for bad input: one line that names the file or value and the fix.

/** Base class: a user mistake (a bad folder, a bad argument), never a bug. */
export class PocketLMError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PocketLMError';
  }
}

/** A model folder that is missing, incomplete, corrupted, of another kind or a newer format. */
export class ArtifactError extends PocketLMError {
  constructor(message) {
    super(message);
    this.name = 'ArtifactError';
  }
}

/** A bad argument: a token id outside the vocabulary, an out-of-range setting. */
export class InputError extends PocketLMError {
  constructor(message) {
    super(message);
    this.name = 'InputError';
  }
}

/** The one-line message to show for an error: the message of a PocketLMError, else name and message. */
export function oneLine(error) {
  if (error instanceof PocketLMError) return error.message;
  const text = error && error.message ? `${error.name || 'Error'}: ${error.message}` : String(error);
  return text.split('\n')[0];
}
