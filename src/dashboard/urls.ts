// Where each page and API document lives. Names from data are percent-encoded into the path (and
// the result is escaped again where it is put into an attribute).

const segment = (value: string | number): string => encodeURIComponent(String(value));

export const urls = {
  overview: () => '/',
  stylesheet: () => '/assets/dashboard.css',
  runs: (job: string) => `/jobs/${segment(job)}/runs`,
  run: (job: string, runId: number) => `/jobs/${segment(job)}/runs/${segment(runId)}`,
  drills: (job: string) => `/jobs/${segment(job)}/drills`,
  charts: (job: string) => `/jobs/${segment(job)}/charts`,
  apiJobs: () => '/api/jobs',
  apiRuns: (job: string) => `/api/jobs/${segment(job)}/runs`,
  apiRun: (job: string, runId: number) => `/api/jobs/${segment(job)}/runs/${segment(runId)}`,
  apiDrills: (job: string) => `/api/jobs/${segment(job)}/drills`,
  apiCharts: (job: string) => `/api/jobs/${segment(job)}/charts`,
  metrics: () => '/metrics',
};
