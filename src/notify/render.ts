// Messages, rendered only from an event (and so only from a report): the subject states the status
// truthfully, the body says which step failed, shows the evidence (expected and actual size and
// SHA-256, the exit code, the tool's stderr tail) and what to do next. Pure: the caller gives the host
// name. Every string goes through redaction, so no secret reaches any channel.
//
// The status word comes from the report's own status, never from the event's name: even a
// mislabelled event cannot make a failed report read as a success.
import { redactInlineSecrets } from '../config/redact-config.js';
import type { Failure } from '../core/evidence.js';
import { redact } from '../lib/redact.js';
import { formatBytes, formatDuration } from '../lib/units.js';
import type { EventDocument, Message, MessageStatus } from '../notifiers/types.js';
import type { BackupReport, StepReport } from '../report/types.js';
import type { BackupEvent, NotifyEvent } from './events.js';

export interface RenderContext {
  /** This machine's name, for "on host …". */
  host: string;
}

const SUBJECT_LIMIT = 200;
const LOG_STEPS = 20;
const STDERR_LINES = 12;
const MARK: Record<StepReport['status'], string> = { ok: '✓', warning: '!', failed: '✗', skipped: '-' };

/** The status a backup report proves: failure unless the report itself says otherwise, consistently. */
export function backupStatusOf(report: BackupReport): MessageStatus {
  if (report.status === 'success' && report.failures.length === 0 && report.exitCode === 0) return 'success';
  if (report.status === 'warning') return 'warning';
  return 'failure';
}

export function renderEvent(event: NotifyEvent, context: RenderContext): Message {
  switch (event.kind) {
    case 'failure':
    case 'warning':
    case 'success':
    case 'recovery':
      return renderBackup(event, context);
    case 'drill-failure':
      return renderDrillFailure(event, context);
    case 'verify-failure':
      return renderVerifyFailure(event, context);
    case 'lock-stuck':
      return renderLockStuck(event, context);
  }
}

/** The start ping of a backup run (healthchecks `URL/start`). */
export function renderStart(
  input: { job: string; at: string; runId: number | null; setId: string },
  context: RenderContext,
): Message {
  return finish({
    kind: 'start',
    status: 'started',
    job: input.job,
    at: input.at,
    runId: input.runId,
    host: context.host,
    subject: `[backproof] STARTED: job ${input.job} — backup run${input.runId === null ? '' : ` #${input.runId}`}, set ${input.setId}`,
    lines: [`backproof: a backup of job ${input.job} started on host ${context.host} at ${input.at}.`],
    facts: { setId: input.setId },
  });
}

// ── backup runs ─────────────────────────────────────────────────────────────────────────────────

function renderBackup(event: BackupEvent, context: RenderContext): Message {
  const report: BackupReport = event.report;
  const status = backupStatusOf(report);
  const committed = report.targets.filter((t) => t.result === 'committed').map((t) => t.name);
  const recovered = event.kind === 'recovery' && status !== 'failure' ? event.failedRuns : 0;
  const word =
    status === 'failure'
      ? 'FAILURE'
      : recovered > 0
        ? status === 'warning'
          ? 'RECOVERED, WITH WARNINGS'
          : 'RECOVERED'
        : status === 'warning'
          ? 'WARNING'
          : 'SUCCESS';
  const headline =
    status === 'failure'
      ? failureHeadline(report.failures)
      : `set ${report.setId} committed and verified on ${committed.join(', ')}` +
        (recovered > 0 ? ` after ${recovered} failed run(s)` : '') +
        (status === 'warning' ? `; ${report.warnings.length} warning(s): ${report.warnings[0] ?? ''}` : '');
  const run = `run${report.runId === null ? '' : ` #${report.runId}`}`;
  const lines: string[] = [];
  if (status === 'failure') {
    lines.push(`backproof: the backup of job ${report.job} FAILED on host ${context.host}.`);
    lines.push(
      committed.length > 0
        ? `Set ${report.setId} is committed on ${committed.join(', ')} only; required parts are not proven.`
        : 'No backup was committed by this run. Earlier sets are untouched.',
    );
    if (event.kind === 'failure' && event.failedRuns > 1) {
      lines.push(`This job has failed ${event.failedRuns} runs in a row, since ${event.since}.`);
    }
  } else {
    lines.push(
      `backproof: the backup of job ${report.job} on host ${context.host} committed set ${report.setId}, ` +
        `verified on ${committed.join(', ')}${status === 'warning' ? `, with ${report.warnings.length} warning(s)` : ''}.`,
    );
    if (recovered > 0) lines.push(`It recovered: the ${recovered} run(s) before it failed (since ${event.since}).`);
  }
  lines.push(
    `${capitalize(run)}, set ${report.setId}: started ${report.startedAt}, took ${formatDuration(report.durationMs)}; ` +
      `${formatBytes(report.bytes)} stored (${formatBytes(report.rawBytes)} raw), exit code ${report.exitCode}.`,
  );

  if (status === 'failure') {
    lines.push('', 'What failed:');
    report.failures.forEach((failure, i) => {
      lines.push(`  ${i + 1}. ${failurePlace(failure)}: ${failure.message}`);
      for (const line of evidenceLines(failure.evidence)) lines.push(`     ${line}`);
    });
  }
  if (status !== 'failure' && report.failures.length > 0) {
    lines.push('', 'Optional parts that failed:');
    for (const failure of report.failures) {
      lines.push(`  - ${failurePlace(failure)}: ${failure.message}`);
      for (const line of evidenceLines(failure.evidence)) lines.push(`     ${line}`);
    }
  }
  if (report.warnings.length > 0) {
    lines.push('', 'Warnings:');
    for (const warning of report.warnings.slice(0, 30)) lines.push(`  - ${warning}`);
    if (report.warnings.length > 30) lines.push(`  … and ${report.warnings.length - 30} more (backproof status)`);
  }
  lines.push('', 'Targets:');
  for (const target of report.targets) {
    lines.push(
      target.result === 'committed'
        ? `  ✓ ${target.name}: set ${target.setId ?? report.setId} committed, ${target.objects.length} object(s) verified`
        : `  ${target.optional ? '!' : '✗'} ${target.name}${target.optional ? ' (optional)' : ''}: ${target.result}` +
            (target.error ? `: ${target.error}` : ''),
    );
  }
  if (status !== 'failure' && report.components.length > 0) {
    lines.push('', 'Components:');
    for (const c of report.components) {
      lines.push(
        `  - ${c.name}: ${formatBytes(c.rawBytes)} raw → ${c.object} ${formatBytes(c.bytes)}, sha256 ${c.sha256}`,
      );
    }
  }
  lines.push('', 'What to do next:');
  for (const advice of backupAdvice(report, status)) lines.push(`  - ${advice}`);
  if (status === 'failure') {
    lines.push('', `Run log (last ${Math.min(LOG_STEPS, report.steps.length)} steps):`);
    for (const step of report.steps.slice(-LOG_STEPS)) lines.push(`  ${stepLine(step)}`);
  }
  return finish({
    kind: event.kind,
    status,
    job: report.job,
    at: event.at,
    runId: report.runId,
    host: context.host,
    subject: `[backproof] ${word}: job ${report.job} — ${headline}`,
    lines,
    facts: {
      setId: report.setId,
      status: report.status,
      exitCode: report.exitCode,
      startedAt: report.startedAt,
      finishedAt: report.finishedAt,
      durationMs: report.durationMs,
      bytes: report.bytes,
      rawBytes: report.rawBytes,
      ...(event.kind === 'failure' || event.kind === 'recovery' ? { failedRuns: event.failedRuns } : {}),
      failures: report.failures,
      warnings: report.warnings,
      targets: report.targets.map((t) => ({
        name: t.name,
        optional: t.optional,
        result: t.result,
        ...(t.setId ? { setId: t.setId } : {}),
        ...(t.manifestSha256 ? { manifestSha256: t.manifestSha256 } : {}),
        ...(t.error ? { error: t.error } : {}),
      })),
    },
  });
}

/** `nas: sha256 mismatch on app.tar.zst`, or the first failure's own words; `(+N more)` after. */
function failureHeadline(failures: readonly Failure[]): string {
  const [first] = failures;
  if (!first) return 'the run failed without saying why (a bug: please report it)';
  const more = failures.length > 1 ? ` (+${failures.length - 1} more)` : '';
  return `${shortFailure(first)}${more}`;
}

function shortFailure(failure: Failure): string {
  const where = failure.target ?? failure.component ?? failure.step;
  const expected = sized(failure.evidence?.expected);
  const actual = sized(failure.evidence?.actual);
  const object = /([^\s:]+) does not match what was written/.exec(failure.message)?.[1] ?? failure.component;
  const on = object ? ` on ${object}` : '';
  if (expected && actual && expected.sha256 !== undefined && expected.sha256 !== actual.sha256) {
    return `${where}: sha256 mismatch${on}`;
  }
  if (expected && actual && expected.bytes !== actual.bytes) return `${where}: size mismatch${on}`;
  // The message often begins with its own place ("target nas: ", "source redis: "): said already.
  const text = (failure.message.split('\n')[0] ?? '').replace(/^(?:target|source) [^\s:]+: /, '');
  return `${where}: ${text}`;
}

function failurePlace(failure: Failure): string {
  return [
    `step ${failure.step}`,
    failure.target && `target ${failure.target}`,
    failure.component && `component ${failure.component}`,
  ]
    .filter(Boolean)
    .join(', ');
}

/** What to do, per kind of failure, most specific first; each said once. */
function backupAdvice(report: BackupReport, status: MessageStatus): string[] {
  const advice: string[] = [];
  const add = (text: string) => {
    if (!advice.includes(text)) advice.push(text);
  };
  if (status === 'failure') {
    for (const failure of report.failures) {
      const expected = sized(failure.evidence?.expected);
      const actual = sized(failure.evidence?.actual);
      if (expected && actual) {
        add(
          `Target ${failure.target ?? '?'} holds different bytes than were written: check its storage (disk errors, ` +
            'a NAS or bucket that alters data), then run `backproof backup` and ' +
            `\`backproof verify --set all${failure.target ? ` --target ${failure.target}` : ''}\`.`,
        );
      } else if (failure.step.startsWith('preflight')) {
        add(
          'Preflight stopped the run before anything was written: fix what it names (free space, a missing tool, ' +
            'an unreachable target), check with `backproof backup --dry-run`, then run `backproof backup`.',
        );
      } else if (failure.step === 'source') {
        add(
          `Source ${failure.component ?? ''} did not produce a complete component: run its command or dump by hand ` +
            'to see why (the stderr above), fix it, then run `backproof backup`.',
        );
      } else if (failure.step === 'aborted') {
        add(
          'The run was stopped (a signal, or checks.stallTimeout / checks.maxDuration): find what hung or who ' +
            'stopped it, then run `backproof backup`.',
        );
      } else if (failure.target) {
        add(
          `Target ${failure.target} failed: check that it is reachable, writable and has room, then run \`backproof backup\`.`,
        );
      } else {
        add('Read the failure above, fix its cause, then run `backproof backup`.');
      }
    }
    add('Earlier sets are untouched: `backproof status` shows the newest verified set on each target.');
    return advice;
  }
  if (status === 'warning') {
    add(
      'The set is committed and verified. Read each warning: unreadable or changed files may need a fix of ' +
        'permissions or an exclude; an optional target that failed needs a look before the day it is needed.',
    );
  } else {
    add('Nothing: every required target holds the set, verified.');
  }
  return advice;
}

// ── drills, verifies, stuck locks ────────────────────────────────────────────────────────────────

function renderDrillFailure(event: Extract<NotifyEvent, { kind: 'drill-failure' }>, context: RenderContext): Message {
  const lines: string[] = [];
  let headline: string;
  let facts: Record<string, unknown>;
  if ('report' in event.drill) {
    const report = event.drill.report;
    headline = `set ${report.setId} from ${report.target}: ${report.problems[0] ?? 'a check failed'}`;
    if (report.problems.length > 1) headline += ` (+${report.problems.length - 1} more)`;
    lines.push(
      `backproof: the restore drill of job ${report.job} FAILED on host ${context.host}: set ${report.setId}, read ` +
        `from target ${report.target}, did not restore as it must.`,
      `Started ${report.startedAt}, finished ${report.finishedAt}.` +
        (report.rtoMs === null
          ? ' The set did not restore: no RTO was measured.'
          : ` Measured RTO ${formatDuration(report.rtoMs)}.`),
      '',
      'What failed:',
    );
    for (const problem of report.problems) lines.push(`  - ${problem}`);
    const failedChecks = report.components.flatMap((c) =>
      c.checks.filter((k) => !k.ok).map((k) => `  - ${c.name} (${c.kind}) ${k.check}: ${k.detail}`),
    );
    if (failedChecks.length > 0) lines.push('', 'Failed checks:', ...failedChecks);
    if (report.warnings.length > 0) lines.push('', 'Warnings:', ...report.warnings.map((w) => `  - ${w}`));
    lines.push(
      '',
      'What to do next:',
      `  - Run \`backproof verify --set ${report.setId} --target ${report.target}\` to see whether the set is damaged on the target.`,
      `  - A set that does not restore is no backup: make a new one (\`backproof backup\`) and drill it (\`backproof drill\`).`,
      '  - Keep the older sets until a drill passes again.',
    );
    facts = {
      setId: report.setId,
      target: report.target,
      status: report.status,
      rtoMs: report.rtoMs,
      problems: report.problems,
      warnings: report.warnings,
    };
  } else {
    headline = `the drill could not run: ${event.drill.error}`;
    lines.push(
      `backproof: the restore drill of job ${event.job} (set ${event.drill.set}) could not run on host ${context.host}:`,
      `  ${event.drill.error}`,
      '',
      'What to do next:',
      '  - Fix what the error names, then run `backproof drill`. Until a drill passes, nobody knows the backups restore.',
    );
    facts = { set: event.drill.set, error: event.drill.error };
  }
  if (event.failedRuns > 1)
    lines.push('', `Drills have failed ${event.failedRuns} times in a row, since ${event.since}.`);
  return finish({
    kind: 'drill-failure',
    status: 'failure',
    job: event.job,
    at: event.at,
    runId: event.runId,
    host: context.host,
    subject: `[backproof] DRILL FAILED: job ${event.job} — ${headline}`,
    lines,
    facts: { ...facts, failedRuns: event.failedRuns },
  });
}

function renderVerifyFailure(event: Extract<NotifyEvent, { kind: 'verify-failure' }>, context: RenderContext): Message {
  const report = event.verify;
  const more = report.problems.length > 1 ? ` (+${report.problems.length - 1} more)` : '';
  const lines = [
    `backproof: verify of job ${report.job} (--set ${report.selection}) FAILED on host ${context.host}: ` +
      `${report.problems.length} problem(s).`,
    `Started ${report.startedAt}, finished ${report.finishedAt}.`,
    '',
    'What failed:',
    ...report.problems.map((p) => `  - ${p}`),
    '',
    'Per target:',
    ...report.targets.map(
      (t) =>
        `  ${t.ok ? '✓' : '✗'} ${t.target} (${t.where}): ` +
        (t.ok ? `${t.sets.length} set(s) intact` : `${t.problems.length} problem(s)`),
    ),
    '',
    'What to do next:',
    '  - A set with a missing or damaged object cannot be trusted for a restore from that target; the others can.',
    "  - Check the target's storage (disk errors, a NAS or bucket that alters data, deletions outside backproof).",
    '  - Run `backproof backup` for a new verified set, and `backproof verify --set all` to see every set affected.',
  ];
  if (event.failedRuns > 1)
    lines.push('', `Verify has failed ${event.failedRuns} times in a row, since ${event.since}.`);
  return finish({
    kind: 'verify-failure',
    status: 'failure',
    job: report.job,
    at: event.at,
    runId: event.runId,
    host: context.host,
    subject: `[backproof] VERIFY FAILED: job ${report.job} — ${report.problems[0] ?? 'a check failed'}${more}`,
    lines,
    facts: {
      selection: report.selection,
      problems: report.problems,
      targets: report.targets.map((t) => ({ target: t.target, ok: t.ok, problems: t.problems })),
      failedRuns: event.failedRuns,
    },
  });
}

function renderLockStuck(event: Extract<NotifyEvent, { kind: 'lock-stuck' }>, context: RenderContext): Message {
  const { holder } = event;
  const who = `pid ${holder.pid} on ${holder.host} (${holder.command})`;
  return finish({
    kind: 'lock-stuck',
    status: 'failure',
    job: event.job,
    at: event.at,
    runId: null,
    host: context.host,
    subject:
      `[backproof] LOCK STUCK: job ${event.job} — ${who} has held the lock for ${formatDuration(event.heldMs)}, ` +
      `longer than the RPO (${formatDuration(event.rpoMs)})`,
    lines: [
      `backproof: a backup of job ${event.job} on host ${context.host} could not start at ${event.at}: ${who} has held ` +
        `the job lock since ${holder.startedAt}, for ${formatDuration(event.heldMs)}, longer than objectives.rpo ` +
        `(${formatDuration(event.rpoMs)}). Nothing was backed up by this run.`,
      '',
      'What to do next:',
      `  - See whether pid ${holder.pid} on ${holder.host} is still working: \`ps -o pid,etime,args -p ${holder.pid}\`, and its log.`,
      '  - A hung run fails itself at checks.stallTimeout or checks.maxDuration; if it does not, stop it with ' +
        `\`kill ${holder.pid}\` (SIGTERM: it cleans up and records the run as failed). The next run then starts normally.`,
      '  - `backproof status` shows the newest verified set on each target and how old it is.',
    ],
    facts: { holder, heldMs: event.heldMs, rpoMs: event.rpoMs },
  });
}

// ── shared ───────────────────────────────────────────────────────────────────────────────────────

interface Draft {
  kind: Message['kind'];
  status: MessageStatus;
  job: string;
  at: string;
  runId: number | null;
  host: string;
  subject: string;
  lines: string[];
  facts: Record<string, unknown>;
}

/** Redacts everything and builds the message and its JSON document from the same text. */
function finish(draft: Draft): Message {
  const subject = shorten(clean(draft.subject).replace(/\s+/g, ' ').trim(), SUBJECT_LIMIT);
  const text = `${clean(draft.lines.join('\n'))}\n`;
  const document: EventDocument = {
    format: 'backproof-event/1',
    kind: draft.kind,
    status: draft.status,
    job: draft.job,
    host: clean(draft.host),
    at: draft.at,
    runId: draft.runId,
    subject,
    text,
    facts: cleanDeep(draft.facts) as Record<string, unknown>,
  };
  return { kind: draft.kind, status: draft.status, subject, text, document };
}

/** Registered secrets, URL passwords, `password=…` and secret query parameters, all masked. */
function clean(text: string): string {
  return redact(redactInlineSecrets(text));
}

function cleanDeep(value: unknown): unknown {
  if (typeof value === 'string') return clean(value);
  if (Array.isArray(value)) return value.map(cleanDeep);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, cleanDeep(child)]));
  }
  return value;
}

function sized(value: unknown): { bytes: number; sha256?: string } | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { bytes, sha256 } = value as { bytes?: unknown; sha256?: unknown };
  if (!Number.isSafeInteger(bytes)) return undefined;
  return { bytes: bytes as number, ...(typeof sha256 === 'string' ? { sha256 } : {}) };
}

const EVIDENCE_SHOWN = new Set(['expected', 'actual', 'exitCode', 'signal', 'stderrTail', 'command']);

/** Expected and actual size and hash, how a tool ended and the tail of its stderr; the rest compactly. */
function evidenceLines(evidence: Record<string, unknown> | undefined): string[] {
  if (!evidence) return [];
  const lines: string[] = [];
  const expected = sized(evidence.expected);
  const actual = sized(evidence.actual);
  const describe = (v: { bytes: number; sha256?: string }) =>
    `${v.bytes} bytes (${formatBytes(v.bytes)})${v.sha256 !== undefined ? `, sha256 ${v.sha256}` : ''}`;
  if (expected) lines.push(`expected: ${describe(expected)}`);
  if (actual) lines.push(`actual:   ${describe(actual)}`);
  if (typeof evidence.command === 'string') lines.push(`command: ${evidence.command}`);
  if (evidence.exitCode !== undefined && evidence.exitCode !== null)
    lines.push(`exit code: ${String(evidence.exitCode)}`);
  if (typeof evidence.signal === 'string') lines.push(`killed by: ${evidence.signal}`);
  if (typeof evidence.stderrTail === 'string' && evidence.stderrTail.trim() !== '') {
    const tail = evidence.stderrTail.trimEnd().split('\n').slice(-STDERR_LINES);
    lines.push('stderr (last lines):', ...tail.map((line) => `  | ${line}`));
  }
  const rest = Object.fromEntries(Object.entries(evidence).filter(([key]) => !EVIDENCE_SHOWN.has(key)));
  if (Object.keys(rest).length > 0) lines.push(`evidence: ${shorten(JSON.stringify(rest), 400)}`);
  return lines;
}

function stepLine(step: StepReport): string {
  const where = [step.target, step.component].filter(Boolean).join(' ');
  return `${step.finishedAt} ${MARK[step.status]} ${step.name}${where ? ` ${where}` : ''}: ${shorten(step.message, 300)}`;
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
