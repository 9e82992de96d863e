// Test support: a helper script run as a real child process, spoken to in JSON lines
// (one command per stdin line, one JSON answer per stdout line).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class LineChild {
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
  private readonly lines: string[] = [];
  private readonly waiting: Array<(line: string | undefined) => void> = [];
  private stderr = '';
  private ended = false;

  /** Starts test/helpers/<script> under tsx. */
  constructor(script: string, args: readonly string[]) {
    const path = fileURLToPath(new URL(script, import.meta.url));
    this.process = spawn(process.execPath, ['--import', 'tsx', path, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = once(this.process, 'exit').then(([code, signal]) => ({ code, signal }) as Exit);
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    const reader = createInterface({ input: this.process.stdout as NodeJS.ReadableStream });
    reader.on('line', (line) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(line);
      else this.lines.push(line);
    });
    reader.on('close', () => {
      this.ended = true;
      for (const waiter of this.waiting.splice(0)) waiter(undefined);
    });
  }

  get pid(): number {
    return this.process.pid as number;
  }

  /** The next JSON line; rejects with the child's stderr when it ends without one. */
  async next(): Promise<Record<string, unknown>> {
    const line =
      this.lines.shift() ??
      (this.ended ? undefined : await new Promise<string | undefined>((resolve) => this.waiting.push(resolve)));
    if (line === undefined) throw new Error(`helper ${this.pid} ended without answering; stderr:\n${this.stderr}`);
    return JSON.parse(line) as Record<string, unknown>;
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  request(line: string): Promise<Record<string, unknown>> {
    this.send(line);
    return this.next();
  }

  /** Kills the child if it still runs and waits for it: for cleanup. */
  async stop(): Promise<Exit> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGKILL');
    return this.exited;
  }
}
