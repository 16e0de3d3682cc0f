import { z } from 'zod';
import { descriptionSchema, nameSchema } from '../m2m-clients/m2m-clients.schemas.js';

/** Largest catalog one registration may declare. */
export const MAX_PERMISSIONS = 1000;
/** Body limit of the registration route (the API's default is 64 KiB): room for a full catalog with descriptions. */
export const REGISTER_BODY_LIMIT = 1024 * 1024;

/**
 * Catalog names nobody may register: `core` is the platform's own catalog,
 * `auth` is this server's scope namespace (`auth:catalog:<service>`).
 */
export const RESERVED_SERVICES = ['core', 'auth'] as const;

/** The namespace of this server's own scopes; no catalog may define codes in it. */
export const SERVER_NAMESPACE = 'auth';

/** Scopes of this server's own API a credential may hold (besides `auth:catalog:<service>`). */
export const SERVER_SCOPES = {
  /** Read the revocation feed, `GET /oauth/revocations`, with a service token. */
  revocationsRead: 'auth:revocations:read',
  /** Introspect tokens, `POST /oauth/introspect` (RFC 7662), authenticating as the credential. */
  introspect: 'auth:introspect',
} as const;

/** A catalog's name: the namespace of its scopes, e.g. `gsku`. */
export const serviceNameSchema = z
  .string()
  .min(1, 'is required')
  .max(100, 'must be at most 100 characters')
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit');

/** A service name that may be registered: not one of {@link RESERVED_SERVICES}. */
export const registrableServiceSchema = serviceNameSchema.refine(
  (v) => !(RESERVED_SERVICES as readonly string[]).includes(v),
  `is reserved (${RESERVED_SERVICES.join(', ')})`,
);

/**
 * A permission code: a concrete scope, `namespace:permission` in lower case
 * (the credential scope format, without wildcards), e.g. `gsku:publish`.
 */
export const permissionCodeSchema = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(/^[a-z0-9][a-z0-9._-]*:[a-z0-9][a-z0-9._:-]*$/, 'must be a lower-case "namespace:permission" scope without wildcards, e.g. "gsku:publish"')
  .refine((v) => !v.startsWith(`${SERVER_NAMESPACE}:`), `the "${SERVER_NAMESPACE}:" namespace is reserved to the server`)
  .refine((v) => !v.startsWith('core:'), 'the "core:" namespace is reserved to the platform');

const labelSchema = z
  .string()
  .trim()
  .max(100, 'must be at most 100 characters')
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');

export const permissionInputSchema = z.strictObject({
  code: permissionCodeSchema,
  name: nameSchema,
  description: descriptionSchema.nullish(),
  resource: labelSchema.nullish(),
  action: labelSchema.nullish(),
  category: labelSchema.nullish(),
});

export const registerBodySchema = z
  .strictObject({
    service: registrableServiceSchema,
    permissions: z
      .array(permissionInputSchema)
      .min(1, 'at least one permission is required (a catalog is never empty)')
      .max(MAX_PERMISSIONS, `at most ${MAX_PERMISSIONS} permissions per catalog`),
  })
  .superRefine((body, ctx) => {
    const first = new Map<string, number>();
    body.permissions.forEach((p, i) => {
      const seen = first.get(p.code);
      if (seen === undefined) first.set(p.code, i);
      else ctx.addIssue({ code: 'custom', path: ['permissions', i, 'code'], message: `duplicate code "${p.code}" (also at permissions.${seen})` });
    });
  });

export const registerResponseSchema = z.object({
  service: z.string(),
  upserted_count: z.number().int().describe('Permissions inserted or changed by this registration (0 when the manifest matched the catalog)'),
  pruned_codes: z.array(z.string()).describe('Codes the catalog held that the manifest no longer declares, now removed'),
});

export const permissionRecordSchema = z.object({
  code: z.string(),
  service: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  resource: z.string().nullable(),
  action: z.string().nullable(),
  category: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const listPermissionsQuerySchema = z.strictObject({ service: serviceNameSchema.optional() });

export const listPermissionsResponseSchema = z.object({ permissions: z.array(permissionRecordSchema) });

export const catalogSummarySchema = z.object({
  service: z.string(),
  count: z.number().int(),
  updated_at: z.string().describe('When the catalog last changed'),
  registered_by: z.string().describe('Who made that change: an admin email, `client:<client_id>`, or `cli`'),
});

export const listCatalogsResponseSchema = z.object({ services: z.array(catalogSummarySchema) });

export type RegisterBody = z.infer<typeof registerBodySchema>;
export type PermissionInput = z.infer<typeof permissionInputSchema>;
export type RegisterResult = z.infer<typeof registerResponseSchema>;
export type PermissionRecord = z.infer<typeof permissionRecordSchema>;
export type CatalogSummary = z.infer<typeof catalogSummarySchema>;
