// Records a run's steps in one place: the report, the state database and the reporter see the same.

import { redact, redactDeep } from '../lib/redact.js';
import type { Reporter, StepReport, StepStatus } from '../report/types.js';
import type { StateDb } from '../state/store.js';

export class StepLog {
  readonly steps: StepReport[] = [];
  constructor(
    private readonly reporter: Reporter,
    private readonly now: () => Date,
    private readonly state?: { db: StateDb; runId: number },
  ) {}

  record(
    step: {
      name: string;
      status: StepStatus;
      message: string;
      target?: string;
      component?: string;
      evidence?: Record<string, unknown>;
    },
    startedAt: Date = this.now(),
  ): void {
    const finishedAt = this.now().toISOString();
    // Evidence holds tools' stderr tails: a secret a tool printed must not reach the report or the database.
    const evidence = step.evidence === undefined ? undefined : redactDeep(step.evidence);
    const entry: StepReport = {
      ...step,
      ...(evidence !== undefined ? { evidence } : {}),
      message: redact(step.message),
      startedAt: startedAt.toISOString(),
      finishedAt,
    };
    this.steps.push(entry);
    this.reporter.event({
      type: 'step',
      name: step.name,
      status: step.status,
      message: entry.message,
      target: step.target,
      component: step.component,
    });
    this.state?.db.recordStep(this.state.runId, {
      name: step.name,
      status: step.status,
      message: entry.message,
      target: step.target,
      component: step.component,
      startedAt: entry.startedAt,
      finishedAt,
      evidence,
    });
  }
}
