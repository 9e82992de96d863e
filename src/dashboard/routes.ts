// Every address the dashboard answers, and what each one reads: the pages, their JSON under /api,
// the stylesheet and /metrics. Reads only, through job-status (targets + state) and history (state).
import { messageOf } from '../lib/errors.js';
import { collectMetrics, renderMetrics } from '../report/metrics.js';
import { jobCharts } from './charts/job-charts.js';
import { chartHistory, drillViews, lastFailure, runSummaries, runView } from './history.js';
import type { DashboardJob, DashboardJobs } from './jobs.js';
import { renderCharts } from './pages/charts.js';
import { renderDrills } from './pages/drills.js';
import { renderPage } from './pages/layout.js';
import { type OverviewJob, renderOverview } from './pages/overview.js';
import { renderRun } from './pages/run.js';
import { renderRuns } from './pages/runs.js';
import { DashboardError, htmlReply, jsonReply, type Reply, textReply } from './reply.js';
import { createRouter, type Params, type Route, type Router } from './router.js';
import { readState } from './state-reader.js';
import type { StatusCache } from './status-cache.js';
import { STYLESHEET } from './stylesheet.js';
import { urls } from './urls.js';

export interface DashboardContext {
  jobs: DashboardJobs;
  statuses: StatusCache;
}

export type Handler = (params: Params, context: DashboardContext) => Promise<Reply> | Reply;

const routes: Route<Handler>[] = [
  {
    pattern: '/',
    handler: async (_, context) => page(context, 'Overview', undefined, renderOverview(await overviewJobs(context))),
  },
  {
    pattern: '/assets/dashboard.css',
    handler: () => textReply(STYLESHEET, 'text/css; charset=utf-8'),
  },
  {
    // Browsers ask for it on pages without an icon link (JSON): nothing, rather than a 404.
    pattern: '/favicon.ico',
    handler: () => ({ status: 204, contentType: 'image/x-icon', body: '' }),
  },
  {
    pattern: '/jobs/:job/runs',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      return page(
        context,
        `Runs of ${config.job}`,
        config.job,
        renderRuns(
          config.job,
          readState(config, (s) => runSummaries(s, config.job)),
        ),
      );
    },
  },
  {
    pattern: '/jobs/:job/runs/:run',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      const runId = runIdOf(params);
      const view = readState(config, (s) => runView(s, config.job, runId));
      if (!view) throw new DashboardError(404, `job ${config.job} has no run #${runId} recorded on this host`);
      return page(context, `Run #${runId} of ${config.job}`, config.job, renderRun(config.job, view));
    },
  },
  {
    pattern: '/jobs/:job/drills',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      const drills = readState(config, (s) => drillViews(s, config.job));
      return page(
        context,
        `Drills of ${config.job}`,
        config.job,
        renderDrills(config.job, drills, config.drill !== undefined),
      );
    },
  },
  {
    pattern: '/jobs/:job/charts',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      return page(context, `Charts of ${config.job}`, config.job, renderCharts(config.job, chartsOf(config)));
    },
  },
  {
    pattern: '/api',
    handler: () =>
      jsonReply({
        endpoints: [
          urls.apiJobs(),
          '/api/jobs/{job}/runs',
          '/api/jobs/{job}/runs/{id}',
          '/api/jobs/{job}/drills',
          '/api/jobs/{job}/charts',
          urls.metrics(),
        ],
      }),
  },
  {
    pattern: '/api/jobs',
    handler: async (_, context) => {
      const jobs = await overviewJobs(context);
      return jsonReply({
        jobs: jobs.map((j) =>
          'status' in j
            ? { job: j.job, healthy: j.status.healthy, status: j.status, lastFailure: j.lastFailure ?? null }
            : { job: j.job, healthy: null, error: j.error },
        ),
      });
    },
  },
  {
    pattern: '/api/jobs/:job/runs',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      return jsonReply({ job: config.job, runs: readState(config, (s) => runSummaries(s, config.job)) ?? [] });
    },
  },
  {
    pattern: '/api/jobs/:job/runs/:run',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      const runId = runIdOf(params);
      const view = readState(config, (s) => runView(s, config.job, runId));
      if (!view) throw new DashboardError(404, `job ${config.job} has no run #${runId} recorded on this host`);
      return jsonReply({ job: config.job, ...view });
    },
  },
  {
    pattern: '/api/jobs/:job/drills',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      return jsonReply({ job: config.job, drills: readState(config, (s) => drillViews(s, config.job)) ?? [] });
    },
  },
  {
    pattern: '/api/jobs/:job/charts',
    handler: (params, context) => {
      const { config } = jobOf(params, context);
      const charts = chartsOf(config);
      return jsonReply({ job: config.job, charts: charts?.charts ?? [], omittedTables: charts?.omittedTables ?? [] });
    },
  },
  {
    pattern: '/metrics',
    handler: (_, context) => {
      const metrics = [...context.jobs.values()].flatMap(
        ({ config }) => readState(config, (state) => collectMetrics(config, state)) ?? [],
      );
      return textReply(renderMetrics(metrics), 'text/plain; version=0.0.4; charset=utf-8');
    },
  },
];

export const dashboardRouter: Router<Handler> = createRouter(routes);

function page(
  context: DashboardContext,
  title: string,
  job: string | undefined,
  body: Parameters<typeof renderPage>[0]['body'],
): Reply {
  return htmlReply(renderPage({ title, jobs: [...context.jobs.keys()], ...(job ? { job } : {}), body }));
}

/** Every job's status and last failure; a job whose status cannot be read says why, the others still show. */
async function overviewJobs(context: DashboardContext): Promise<OverviewJob[]> {
  return Promise.all(
    [...context.jobs.values()].map(async ({ config }): Promise<OverviewJob> => {
      try {
        const status = await context.statuses.get(config);
        return { job: config.job, status, lastFailure: readState(config, (s) => lastFailure(s, config.job)) };
      } catch (error) {
        return { job: config.job, error: messageOf(error) };
      }
    }),
  );
}

function chartsOf(config: DashboardJob['config']) {
  const history = readState(config, (s) => chartHistory(s, config.job));
  return history ? jobCharts(history, { rtoMs: config.objectives?.rto ?? null }) : undefined;
}

function jobOf(params: Params, context: DashboardContext): DashboardJob {
  const name = params.job ?? '';
  const job = context.jobs.get(name);
  if (!job) {
    throw new DashboardError(
      404,
      `no job named ${JSON.stringify(name)} is served here; the jobs are: ${[...context.jobs.keys()].join(', ')}`,
    );
  }
  return job;
}

function runIdOf(params: Params): number {
  const text = params.run ?? '';
  const id = /^[1-9]\d{0,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id)) throw new DashboardError(404, `${JSON.stringify(text)} is not a run number`);
  return id;
}
