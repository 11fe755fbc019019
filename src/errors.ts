/**
 * An error meant for the user: the CLI prints its message alone (no stack trace unless --verbose)
 * and exits non-zero. Throw it for bad input, bad files and unavailable resources; let programming
 * errors stay plain `Error`s so they keep their stack.
 */
export class TesseraError extends Error {
  override readonly name = "TesseraError";
  constructor(
    message: string,
    /** A file, URL or other thing the error is about; prefixed to the message. */
    readonly subject?: string,
    options?: { cause?: unknown },
  ) {
    super(subject ? `${subject}: ${message}` : message, options);
  }
}

export function isTesseraError(e: unknown): e is TesseraError {
  return e instanceof TesseraError;
}
