// Human output of a backup run: a live progress line on a TTY, plain lines otherwise (journald).
import { redact } from '../lib/redact.js';
import { formatBytes, formatCount, formatDuration } from '../lib/units.js';
import type { BackupReport, PlanReport, Reporter, RunEvent } from './types.js';

const MARK = { ok: '✓', warning: '!', failed: '✗', skipped: '-' } as const;
/** How often a non-TTY run logs progress of a long component. */
const PLAIN_PROGRESS_EVERY_MS = 30_000;

export function createTextReporter(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
  now: () => number = Date.now,
): Reporter {
  const tty = stream.isTTY === true;
  let progressShown = false;
  let lastPlainProgress = 0;
  let lastTtyDraw = 0;
  const clearProgress = () => {
    if (progressShown) {
      stream.write('\r\x1b[2K');
      progressShown = false;
    }
  };
  const line = (text: string) => {
    clearProgress();
    stream.write(redact(`${text}\n`));
  };
  return {
    event(event: RunEvent) {
      switch (event.type) {
        case 'run-start':
          line(`backproof: backing up job ${event.job} as set ${event.setId} to ${event.targets.join(', ')}`);
          return;
        case 'step':
          if (event.status === 'ok' && !event.name.startsWith('preflight') && event.name !== 'prepare-target') return;
          line(
            `  ${MARK[event.status]} ${[event.target, event.component].filter(Boolean).join(' ')}${event.target || event.component ? ': ' : ''}${event.message}`,
          );
          return;
        case 'component-start':
          lastPlainProgress = now();
          return;
        case 'progress': {
          const at = now();
          const rate = event.elapsedMs > 0 ? Math.floor((event.rawBytes * 1000) / event.elapsedMs) : 0;
          const text = `  … ${event.component}: ${formatBytes(event.rawBytes)} read, ${formatBytes(event.storedBytes)} stored, ${formatBytes(rate)}/s`;
          if (tty) {
            if (at - lastTtyDraw < 100) return;
            lastTtyDraw = at;
            stream.write(redact(`\r\x1b[2K${text}`));
            progressShown = true;
          } else if (at - lastPlainProgress >= PLAIN_PROGRESS_EVERY_MS) {
            lastPlainProgress = at;
            line(text);
          }
          return;
        }
        case 'component-done': {
          const c = event.component;
          const extra = [
            c.files !== undefined ? `${formatCount(c.files)} entries` : '',
            c.tables !== undefined ? `${formatCount(Object.keys(c.tables).length)} tables` : '',
            c.warnings.length > 0 ? `${c.warnings.length} warning(s)` : '',
          ].filter(Boolean);
          line(
            `  ${c.warnings.length > 0 ? MARK.warning : MARK.ok} ${c.name}: ${formatBytes(c.rawBytes)} → ${formatBytes(c.bytes)} ${c.object}` +
              `${extra.length > 0 ? ` (${extra.join(', ')})` : ''} in ${formatDuration(c.durationMs)}`,
          );
          for (const warning of c.warnings.slice(0, 20)) line(`      ${warning}`);
          if (c.warnings.length > 20)
            line(`      … and ${c.warnings.length - 20} more (see --json or the state database)`);
          return;
        }
        case 'set-committed':
          line(
            `  ${MARK.ok} ${event.target}: set committed, every object verified; manifest sha256 ${event.manifestSha256}`,
          );
          return;
      }
    },
  };
}

/** The closing summary: the status stated truthfully, then what to do. */
export function renderBackupSummary(report: BackupReport): string[] {
  const committed = report.targets.filter((t) => t.result === 'committed');
  const lines: string[] = [];
  const where = committed.map((t) => t.name).join(', ');
  if (report.status === 'success') {
    lines.push(
      `SUCCESS: set ${report.setId} committed and verified on ${where}: ${formatBytes(report.bytes)} stored ` +
        `(${formatBytes(report.rawBytes)} raw) in ${formatDuration(report.durationMs)}.`,
    );
    return lines;
  }
  if (report.status === 'warning') {
    lines.push(
      `WARNING: set ${report.setId} committed and verified on ${where}, but ${report.warnings.length} thing(s) need a look:`,
    );
    for (const warning of report.warnings.slice(0, 30)) lines.push(`  - ${warning}`);
    if (report.warnings.length > 30)
      lines.push(`  … and ${report.warnings.length - 30} more (run with --json for all)`);
    return lines;
  }
  const onlyAnomalies = report.failures.every((f) => f.step === 'anomaly');
  lines.push(
    committed.length > 0 && onlyAnomalies
      ? `FAILURE: set ${report.setId} is committed and verified on ${where}, but marked SUSPECT: its data looks wrong:`
      : committed.length > 0
        ? `FAILURE: set ${report.setId} is committed on ${where} only; required parts are not proven:`
        : `FAILURE: no backup was committed by this run; earlier sets are untouched. What failed:`,
  );
  for (const failure of report.failures) {
    const where = [failure.target && `target ${failure.target}`, failure.component && `component ${failure.component}`]
      .filter(Boolean)
      .join(', ');
    lines.push(`  - [${failure.step}${where ? ` ${where}` : ''}] ${failure.message}`);
  }
  for (const warning of report.warnings.slice(0, 10)) lines.push(`  ! ${warning}`);
  return lines;
}

export function renderPlan(plan: PlanReport): string[] {
  const lines = [`Dry run of job ${plan.job}: nothing was written.`, 'Sources:'];
  for (const source of plan.sources) {
    lines.push(
      `  - ${source.name} (${source.type})${source.estimatedRawBytes !== null ? `: about ${formatBytes(source.estimatedRawBytes)} raw` : ''}`,
    );
  }
  lines.push('Targets:');
  for (const target of plan.targets) {
    lines.push(
      `  ${target.ok ? MARK.ok : MARK.failed} ${target.name} (${target.where}${target.optional ? ', optional' : ''}): ${target.message}`,
    );
  }
  lines.push(`Estimated size of this run: ${formatBytes(plan.estimateBytes)}.`);
  for (const failure of plan.failures) lines.push(`  ${MARK.failed} ${failure.message}`);
  lines.push(
    plan.ok
      ? 'Preflight passed: `backproof backup` would run.'
      : 'Preflight FAILED: a real run would stop here and write nothing.',
  );
  return lines;
}
