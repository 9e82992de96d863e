// What the HTTP channels share: their URL (a credential, from urlFile or urlEnv, registered for
// redaction) and one POST that sorts failures into transient (retry) and permanent (do not).
import { messageOf } from '../lib/errors.js';
import { registerSecret } from '../lib/redact.js';
import { readSecret } from '../lib/secrets.js';
import { VERSION } from '../version.js';
import { NotifyError } from './types.js';

export interface UrlKeys {
  url?: string | undefined;
  urlFile?: string | undefined;
  urlEnv?: string | undefined;
}

/**
 * The channel's URL, read once on first use. Every form of it is registered with the redactor
 * before anything can print it: the whole URL is the credential of a webhook or a ping.
 */
export function channelUrl(keys: UrlKeys, channel: string): () => Promise<URL> {
  if (keys.url !== undefined) registerUrl(keys.url);
  let url: Promise<URL> | undefined;
  return () => {
    url ??= read();
    return url;
  };
  async function read(): Promise<URL> {
    let text = keys.url;
    if (text === undefined) {
      try {
        text = await readSecret({ file: keys.urlFile, env: keys.urlEnv }, `notify ${channel}: url`);
      } catch (error) {
        throw new NotifyError(messageOf(error), { permanent: true, cause: error });
      }
    }
    if (text === undefined) throw new NotifyError(`notify ${channel}: no URL configured`, { permanent: true });
    text = text.trim();
    registerUrl(text);
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      throw new NotifyError(`notify ${channel}: the configured URL is not a URL; check the urlFile or urlEnv`, {
        permanent: true,
      });
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new NotifyError(`notify ${channel}: the configured URL is not http:// or https://`, { permanent: true });
    }
    registerUrl(parsed.href);
    return parsed;
  }
}

function registerUrl(text: string): void {
  registerSecret(text);
  // The same URL as the URL parser writes it (a trailing slash added, the host lowercased).
  try {
    registerSecret(new URL(text).href);
  } catch {
    // not a URL: the schema or read() says so
  }
}

/** For `.then(ignore, ignore)`: prepare() only warms the secret up; send() meets its error. */
export function ignore(): void {}

export interface PostRequest {
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

/** Network failures that a second try may not meet. */
const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/** One POST; resolves on 2xx. `what` names the channel in messages (never the URL). */
export async function post(url: URL, request: PostRequest, signal: AbortSignal, what: string): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      body: request.body,
      headers: { 'content-type': request.contentType, 'user-agent': `backproof/${VERSION}`, ...request.headers },
      signal,
    });
  } catch (error) {
    if (signal.aborted) {
      throw new NotifyError(`${what}: no answer in time`, { permanent: false, cause: error });
    }
    // fetch failed: refused, reset, DNS, TLS. The cause names it; the URL is left out.
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = typeof cause?.code === 'string' ? cause.code : messageOf(cause ?? error);
    throw new NotifyError(`${what}: the request failed (${detail})`, { permanent: false, cause: error });
  }
  if (response.ok) {
    await response.body?.cancel().catch(() => {});
    return;
  }
  const said = (await response.text().catch(() => '')).replace(/\s+/g, ' ').trim().slice(0, 200);
  throw new NotifyError(
    `${what}: the receiver answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}` +
      (said ? `: ${said}` : ''),
    { permanent: !TRANSIENT_STATUS.has(response.status) },
  );
}

/** `text` cut to at most `maxBytes` of UTF-8 (whole characters), with a note when it was cut. */
export function truncateUtf8(
  text: string,
  maxBytes: number,
  note = '\n… (cut here; `backproof status` has the rest)',
): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const room = Math.max(0, maxBytes - Buffer.byteLength(note, 'utf8'));
  let cut = Buffer.from(text, 'utf8').subarray(0, room).toString('utf8');
  // A character split at the end decodes as U+FFFD: drop it.
  cut = cut.replace(/\uFFFD+$/, '');
  return cut + note;
}
