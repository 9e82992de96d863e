// The config file as stored beside every set (`config.redacted.yml`): the same text, comments and
// layout, with the value of every key that can hold a secret replaced by "<redacted>". It tells the
// person restoring how the job was set up; it must never hand them (or a thief) a credential.
import { isDeepStrictEqual } from 'node:util';
import {
  type Document,
  isAlias,
  isCollection,
  isNode,
  isPair,
  isScalar,
  type Node,
  Parser,
  parseAllDocuments,
  type Scalar,
  visit,
} from 'yaml';

export const REDACTED = '<redacted>';

/** What is written instead of a config that cannot be parsed: its text could be anything, so none of it is kept. */
const UNPARSABLE =
  '# config.redacted.yml: the config file could not be parsed as YAML, so none of it is kept here\n' +
  '# (a secret might have been in the unreadable part). The job used the config file on its host.\n';

/**
 * `*File` and `*Env` keys name where a secret is (a path, a variable name), never the secret itself:
 * they are kept as they are, so the reader knows where to find each credential.
 */
const POINTER_KEY = /^.+(?:File|Env|_file|_env|-file|-env)$/;

/** Key names (lowercased, without `_` and `-`) whose value is a secret wherever they appear. */
const SECRET_WORDS = ['password', 'passwd', 'passphrase', 'secret', 'token', 'credential', 'apikey', 'privatekey'];
const HOOK_PHASES = new Set(['before', 'after', 'onError']);
const SECRET_NAMES = new Set(['pass', 'pw', 'pwd', 'auth', 'authorization', 'cookie', 'key', 'command']);

/**
 * Whether the value of `key` can hold a secret. `command` is here because a command line may carry
 * one (`redis-cli -a …`, `PGPASSWORD=… pg_dump`); whole `url`s because webhook and ping URLs are
 * their own credential. `accessKeyId` (an identifier) and `publicKey` stay visible.
 */
export function isSecretKey(key: string): boolean {
  if (POINTER_KEY.test(key)) return false;
  const name = key.toLowerCase().replace(/[_-]/g, '');
  if (name === 'publickey') return false;
  return (
    SECRET_NAMES.has(name) ||
    SECRET_WORDS.some((word) => name.includes(word)) ||
    name.endsWith('key') ||
    name.endsWith('url')
  );
}

// scheme://userinfo@ : userinfo is everything before the last "@" of the authority (an unencoded
// "@" in a password is common in hand-written configs).
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#]*)@/gi;
// ?token=…, &api_key=…, &X-Amz-Signature=…
const SECRET_QUERY = /([?&][^=&#\s]*?(?:token|key|secret|passw(?:or)?d|pwd|signature|sig|auth)[^=&#\s]*=)[^&#\s]+/gi;
// PGPASSWORD=…, --password=…, password=… (libpq keyword strings); a quoted value is taken whole.
const SECRET_ASSIGNMENT =
  /((?:^|[\s;,])[a-z0-9_-]*?(?:password|passwd|pwd|secret|token|apikey|api_key|auth)[a-z0-9_-]*=)('[^']*'|"[^"]*"|[^\s;,]+)/gi;
/** Schemes whose user name (without a password) is a login, not a credential, e.g. the documented `smtp://backup@mail.lan:587`. */
const LOGIN_SCHEMES = new Set(['smtp://', 'smtps://']);

/** Masks the secrets that can hide inside any string: URL passwords, secret query parameters, `NAME=secret`. */
export function redactInlineSecrets(text: string): string {
  return text
    .replace(URL_USERINFO, (_match, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      if (colon >= 0) return `${scheme}${userinfo.slice(0, colon)}:${REDACTED}@`;
      // A bare user name may be a token (https://TOKEN@host), except where it is a login by convention.
      return LOGIN_SCHEMES.has(scheme.toLowerCase()) ? `${scheme}${userinfo}@` : `${scheme}${REDACTED}@`;
    })
    .replace(SECRET_QUERY, `$1${REDACTED}`)
    .replace(SECRET_ASSIGNMENT, `$1${REDACTED}`);
}

/**
 * The config text with every secret-bearing value replaced by "<redacted>", comments and layout
 * kept. Text that is not valid YAML gives a comment saying so, never the original text.
 */
export function redactConfigText(yamlText: string): string {
  const documents = parseAllDocuments(yamlText);
  if (!Array.isArray(documents)) return yamlText.trim() === '' ? '' : UNPARSABLE;
  if (documents.some((doc) => doc.errors.length > 0)) return UNPARSABLE;
  try {
    // Each secret is replaced in the tree (the reference) and, as an edit, in the original text.
    const edits = new Edits();
    for (const doc of documents) redactDocument(doc, yamlText, edits);
    for (const comment of commentTokens(yamlText)) edits.add(comment.offset, comment.source, redactInlineSecrets);
    const edited = edits.applyTo(yamlText);
    // The edited text keeps the file's own layout, but is used only when it means exactly what the
    // redacted tree means; otherwise (an escape sequence hiding a URL, a tag) the tree is printed.
    if (sameData(edited, documents)) return edited;
    return documents.map((doc) => doc.toString({ lineWidth: 0 })).join('');
  } catch {
    return UNPARSABLE;
  }
}

/** Replacements of spans of the original text; a whole-value redaction wins over a masked one. */
class Edits {
  private readonly byStart = new Map<number, { end: number; text: string; whole: boolean }>();

  add(start: number, source: string, mask: (text: string) => string, whole = false): void {
    const text = mask(source);
    const existing = this.byStart.get(start);
    if (text === source || (existing?.whole && !whole)) return;
    this.byStart.set(start, { end: start + source.length, text, whole });
  }

  applyTo(original: string): string {
    let out = '';
    let at = 0;
    for (const [start, edit] of [...this.byStart].sort(([a], [b]) => a - b)) {
      if (start < at) throw new Error('overlapping edits'); // never expected; the tree is printed instead
      out += original.slice(at, start) + edit.text;
      at = edit.end;
    }
    return out + original.slice(at);
  }
}

function sameData(text: string, reference: readonly Document[]): boolean {
  const reparsed = parseAllDocuments(text);
  if (!Array.isArray(reparsed) || reparsed.length !== reference.length) return false;
  return reparsed.every(
    (doc, i) =>
      doc.errors.length === 0 && doc.warnings.length === 0 && isDeepStrictEqual(doc.toJS(), reference[i]?.toJS()),
  );
}

/** Every comment of the text, with its offset, from the YAML concrete syntax tree. */
function commentTokens(yamlText: string): { offset: number; source: string }[] {
  const found: { offset: number; source: string }[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    const token = value as { type?: unknown; offset?: unknown; source?: unknown };
    if (token.type === 'comment' && typeof token.offset === 'number' && typeof token.source === 'string') {
      found.push({ offset: token.offset, source: token.source });
    }
    for (const child of Object.values(value)) walk(child);
  };
  for (const token of new Parser().parse(yamlText)) walk(token);
  return found;
}

function redactDocument(doc: Document, yamlText: string, edits: Edits): void {
  visit(doc, {
    Pair(_, pair, path) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string') return undefined;
      if (POINTER_KEY.test(key)) return visit.SKIP;
      // A hook written as a plain string is a command line, like the `command` of its long form.
      const grandparent = path[path.length - 2];
      const isHookList =
        HOOK_PHASES.has(key) && isPair(grandparent) && isScalar(grandparent.key) && grandparent.key.value === 'hooks';
      if (isHookList && isCollection(pair.value)) {
        for (const item of pair.value.items) {
          if (isScalar(item)) redactAll(item, doc, new Set(), (scalar) => redactScalarText(scalar, yamlText, edits));
        }
        return undefined;
      }
      if (!isSecretKey(key) || !isNode(pair.value)) return undefined;
      redactAll(pair.value, doc, new Set(), (scalar) => redactScalarText(scalar, yamlText, edits));
      return visit.SKIP;
    },
    Scalar(_, node) {
      if (typeof node.value !== 'string') return;
      const masked = redactInlineSecrets(node.value);
      if (masked === node.value) return;
      node.value = masked;
      if (node.range) edits.add(node.range[0], yamlText.slice(node.range[0], node.range[1]), redactInlineSecrets);
    },
  });
  // Comments too: a commented-out line may still hold a connection URL with its password.
  visit(doc, (_, node) => {
    if (isNode(node)) maskComments(node);
  });
  maskComments(doc);
}

/** Records the edit that replaces a scalar's source text by the redaction marker. */
function redactScalarText(scalar: Scalar, yamlText: string, edits: Edits): void {
  const range = scalar.range;
  if (!range) return;
  const source = yamlText.slice(range[0], range[1]);
  // A block scalar's span ends with its line break: keep it, so the next key stays on its line.
  const lineBreak = /\s*$/.exec(source)?.[0] ?? '';
  edits.add(range[0], source, () => `${REDACTED}${lineBreak}`, true);
}

/**
 * Replaces every scalar in `node` (itself, or the values of its collection) by "<redacted>", in
 * place, so comments, blank lines and anchors stay where they were; `replaced` hears of each.
 */
function redactAll(node: Node, doc: Document, seen: Set<Node>, replaced: (scalar: Scalar) => void): void {
  if (seen.has(node)) return;
  seen.add(node);
  if (isAlias(node)) {
    // Redact what the alias points at: the anchored value, wherever else it is used, is the secret.
    const target = node.resolve(doc);
    if (target) redactAll(target, doc, seen, replaced);
    return;
  }
  if (isScalar(node)) {
    if (node.value === null || typeof node.value === 'boolean') return; // a flag, not a secret
    replaced(node);
    node.value = REDACTED;
    // The original's style could not hold the new text as intended (a block scalar, `!!int 1234`, hex).
    node.type = undefined;
    node.format = undefined;
    node.tag = undefined;
    return;
  }
  if (!isCollection(node)) return;
  for (const item of node.items) {
    if (isPair(item)) {
      if (isNode(item.value)) redactAll(item.value, doc, seen, replaced);
    } else if (isNode(item)) redactAll(item, doc, seen, replaced);
  }
}

function maskComments(node: { comment?: string | null; commentBefore?: string | null }): void {
  if (node.comment) node.comment = redactInlineSecrets(node.comment);
  if (node.commentBefore) node.commentBefore = redactInlineSecrets(node.commentBefore);
}
