/**
 * How a command speaks: with --json exactly one JSON object on stdout and nothing else there; otherwise
 * human text. Progress goes to stderr, and only when stderr is a terminal, so pipes stay clean.
 */
export class Output {
  json = false;
  private lastProgressLength = 0;

  constructor(
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  /** One line of progress, redrawn in place on a terminal. */
  progress(text: string): void {
    if (!this.stderr.isTTY) return;
    const padded = text.padEnd(this.lastProgressLength);
    this.lastProgressLength = text.length;
    this.stderr.write(`\r${padded}`);
  }

  private endProgress(): void {
    if (this.lastProgressLength > 0) {
      this.stderr.write(`\r${' '.repeat(this.lastProgressLength)}\r`);
      this.lastProgressLength = 0;
    }
  }

  /** A line on stderr that matters even in a pipe or a log (the id of a query being waited on, an outage): always written. */
  notice(text: string): void {
    this.endProgress();
    this.stderr.write(`${text}\n`);
  }

  /** The command's result: the JSON object with --json, the human rendering otherwise. */
  result(json: Record<string, unknown>, human: () => string): void {
    this.endProgress();
    this.stdout.write(this.json ? `${JSON.stringify(json)}\n` : `${human()}\n`);
  }

  /** A failure: the message on stderr (and, with --json, an error object on stdout so scripts can parse it). */
  error(err: Error, code: string): void {
    this.endProgress();
    this.stderr.write(`confide: ${err.message}\n`);
    if (this.json) this.stdout.write(`${JSON.stringify({ error: code, message: err.message })}\n`);
  }
}
