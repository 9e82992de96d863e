// A small path router: patterns such as `/jobs/:job/runs/:id`, matched segment by segment, with
// parameters percent-decoded. A path that does not decode matches nothing (a 404, never a crash).

export type Params = Readonly<Record<string, string>>;

export interface Route<H> {
  /** Literal segments and `:name` parameters, e.g. `/api/jobs/:job/runs`. */
  pattern: string;
  handler: H;
}

export interface Match<H> {
  handler: H;
  params: Params;
}

export interface Router<H> {
  match(pathname: string): Match<H> | undefined;
}

export function createRouter<H>(routes: readonly Route<H>[]): Router<H> {
  const compiled = routes.map((route) => ({ segments: splitPath(route.pattern), handler: route.handler }));
  return {
    match(pathname) {
      const given = splitPath(pathname);
      for (const route of compiled) {
        const params = matchSegments(route.segments, given);
        if (params) return { handler: route.handler, params };
      }
      return undefined;
    },
  };
}

/** `/a/b/` and `/a/b` are the same path; `/` has no segments. */
function splitPath(path: string): string[] {
  return path.split('/').filter((s, i, all) => !(s === '' && (i === 0 || i === all.length - 1)));
}

function matchSegments(pattern: readonly string[], given: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== given.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i] as string;
    const have = given[i] as string;
    if (want.startsWith(':')) {
      const value = decode(have);
      if (value === undefined || value === '') return undefined;
      params[want.slice(1)] = value;
    } else if (want !== have) {
      return undefined;
    }
  }
  return params;
}

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
