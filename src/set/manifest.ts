// The manifest (format `backproof/1`): the commit marker of a set, written last. Reading one never
// throws: a manifest that fails validation makes a corrupt set, reported by name.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isObjectName } from './layout.js';

export const MANIFEST_FORMAT = 'backproof/1';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const byteCount = z.number().int().nonnegative().refine(Number.isSafeInteger, 'must be a safe integer');
const objectName = z.string().refine(isObjectName, 'must be a plain file name (no "/", no "..")');

const objectSchema = z.looseObject({ name: objectName, bytes: byteCount, sha256: sha256Hex });

const componentSchema = z.looseObject({
  name: z.string().min(1),
  source: z.string().min(1),
  kind: z.string().min(1),
  object: objectName,
  index: objectName.optional(),
  bytes: byteCount,
  sha256: sha256Hex,
  rawBytes: byteCount,
  rawSha256: sha256Hex,
  files: byteCount.optional(),
  tables: z.record(z.string(), byteCount).optional(),
  dumpTool: z.string().optional(),
  serverVersion: z.string().optional(),
  secret: z.boolean().optional(),
  warnings: z.array(z.string()).optional(),
});

const manifestSchema = z
  .looseObject({
    format: z.literal(MANIFEST_FORMAT),
    job: z.string().min(1),
    setId: z.string().min(1),
    host: z.string(),
    hostId: z.string(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    backproofVersion: z.string(),
    compression: z.looseObject({ algorithm: z.string(), level: z.number().int() }),
    encryption: z.looseObject({ recipients: z.array(z.string()) }).nullable(),
    objects: z.array(objectSchema).min(1),
    components: z.array(componentSchema).min(1),
    anomalies: z.array(z.unknown()),
    suspect: z.boolean(),
    warnings: z.array(z.string()),
    previous: z.looseObject({ setId: z.string(), manifestSha256: sha256Hex }).nullable(),
  })
  .superRefine((manifest, ctx) => {
    const names = new Set<string>();
    for (const object of manifest.objects) {
      if (names.has(object.name)) ctx.addIssue({ code: 'custom', message: `object ${object.name} is listed twice` });
      names.add(object.name);
    }
    for (const component of manifest.components) {
      for (const name of [component.object, component.index]) {
        if (name !== undefined && !names.has(name))
          ctx.addIssue({ code: 'custom', message: `component ${component.name} names ${name}, which objects[] lacks` });
      }
    }
  });

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestObject = z.output<typeof objectSchema>;
export type ManifestComponent = z.output<typeof componentSchema>;

export type ParsedManifest =
  | { ok: true; manifest: Manifest; sha256: string }
  | { ok: false; problems: string[]; sha256: string };

export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}

export function sha256Of(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Parses and validates manifest bytes. `expectedSetId`, when given, must match. */
export function parseManifest(bytes: Buffer, expectedSetId?: string): ParsedManifest {
  const sha256 = sha256Of(bytes);
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    return { ok: false, sha256, problems: [`not JSON: ${(error as Error).message}`] };
  }
  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    return {
      ok: false,
      sha256,
      problems: result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    };
  }
  if (expectedSetId !== undefined && result.data.setId !== expectedSetId) {
    return {
      ok: false,
      sha256,
      problems: [`setId is ${result.data.setId}, but the set directory is ${expectedSetId}`],
    };
  }
  return { ok: true, manifest: result.data, sha256 };
}
