import { z } from 'zod';

/** Lower-case, 3–100 chars of [a-z0-9._-], starting with a letter or digit. Trimmed and lower-cased first. */
export const clientIdSchema = z
  .string()
  .trim()
  .toLowerCase()
  .min(3, 'must be at least 3 characters')
  .max(100, 'must be at most 100 characters')
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit')
  // A UUID-shaped client_id could be mistaken for a record id (`auth-api clients revoke <id|client_id>`).
  .refine((v) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v), 'must not look like a UUID (record ids do)');

/** `service:permission`, lower-case, e.g. `gsku:publish`. */
export const scopeSchema = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(/^[a-z0-9][a-z0-9._-]*:[a-z0-9*][a-z0-9._:*-]*$/, 'must be a lower-case "service:permission" string, e.g. "gsku:publish"');

const dedupe = (values: string[]) => [...new Set(values)];

export const scopesSchema = z.array(scopeSchema).max(100, 'at most 100 scopes per credential').transform(dedupe);

/** An audience a credential may request tokens for: a URI or a name, no spaces. */
export const audienceSchema = z
  .string()
  .min(1)
  .max(200, 'must be at most 200 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

export const audiencesSchema = z.array(audienceSchema).max(20, 'at most 20 audiences per credential').transform(dedupe);

// No control characters (PostgreSQL text cannot even hold NUL); a description may have line breaks and tabs.
export const nameSchema = z
  .string()
  .trim()
  .min(1, 'is required')
  .max(200, 'must be at most 200 characters')
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');
export const descriptionSchema = z
  .string()
  .trim()
  .max(2000, 'must be at most 2000 characters')
  .regex(/^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/, 'must not contain control characters other than line breaks and tabs');

export const createClientBodySchema = z.strictObject({
  client_id: clientIdSchema,
  name: nameSchema,
  description: descriptionSchema.nullish(),
  scopes: scopesSchema.optional(),
  allowed_audiences: audiencesSchema.optional(),
});

export const updateClientBodySchema = z
  .strictObject({
    name: nameSchema.optional(),
    description: descriptionSchema.nullable().optional(),
    scopes: scopesSchema.optional(),
    allowed_audiences: audiencesSchema.optional(),
    status: z.enum(['active', 'disabled']).optional(),
  })
  .refine((body) => Object.values(body).some((v) => v !== undefined), { message: 'at least one field to change is required' });

export const clientParamsSchema = z.strictObject({ id: z.uuid('must be a UUID') });

export const clientRecordSchema = z.object({
  id: z.string(),
  client_id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  scopes: z.array(z.string()),
  allowed_audiences: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  created_at: z.string(),
  updated_at: z.string(),
  last_used_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  created_by: z.string().nullable(),
  orphaned_scopes: z
    .array(z.string())
    .describe('Scopes in `scopes` that no permission catalog defines any more (pruned, or in a namespace that got a catalog): never granted'),
});

export const createClientResponseSchema = z.object({
  client: clientRecordSchema,
  client_secret: z.string().describe('Shown exactly once. Store it in a secret manager now; the server keeps only a bcrypt hash.'),
});

export const listClientsResponseSchema = z.object({ clients: z.array(clientRecordSchema) });

export type CreateClientBody = z.infer<typeof createClientBodySchema>;
export type UpdateClientBody = z.infer<typeof updateClientBodySchema>;
/** A credential as the API shows it: never the secret or its hash. */
export type M2MClientRecord = z.infer<typeof clientRecordSchema>;
