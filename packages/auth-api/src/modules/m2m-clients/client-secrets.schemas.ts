import { z } from 'zod';

/** Longest `expire_previous_in`: a year. */
export const MAX_EXPIRE_PREVIOUS_IN = 365 * 86400;

/** Live (not expired) secrets a credential may hold at once. */
export const MAX_LIVE_SECRETS = 2;

export const expirePreviousInSchema = z
  .number({ error: 'must be a whole number of seconds' })
  .int('must be a whole number of seconds')
  .min(0, 'must be 0 (at once) or more')
  .max(MAX_EXPIRE_PREVIOUS_IN, `must be at most ${MAX_EXPIRE_PREVIOUS_IN} seconds (365 days)`);

export const rotateSecretBodySchema = z
  .strictObject({
    expire_previous_in: expirePreviousInSchema
      .optional()
      .describe('Seconds until the credential\'s other live secret expires (0: at once). Omitted: it stays live until deleted'),
  })
  // No body at all is the same as `{}`.
  .nullish();

export const secretParamsSchema = z.strictObject({
  id: z.uuid('must be a UUID').describe("The credential's UUID (`client.id`), not the client_id"),
  secretId: z.uuid('must be a UUID').describe("The secret's id (`secret.id`)"),
});

export const secretRecordSchema = z.object({
  id: z.string(),
  created_at: z.string(),
  last_used_at: z.string().nullable().describe('Last successful grant with this secret (one-minute resolution); null: never used'),
  expires_at: z.string().nullable().describe('When it stops authenticating; null: no expiry. In the past: expired (removed at the next rotation)'),
  hint: z
    .string()
    .describe("A short non-secret tag of the secret: the first 4 characters of base64url(SHA-256(secret)). Empty for a secret from before rotation existed, until its first use"),
  hash_alg: z.enum(['bcrypt', 'hmac-sha256']).describe('How the server stores it; a rotation stores the new one with CLIENT_SECRET_HASH'),
});

export const rotateSecretResponseSchema = z.object({
  secret: secretRecordSchema,
  client_secret: z.string().describe('Shown exactly once. Store it in a secret manager now; the server keeps only a hash.'),
});

export const listSecretsResponseSchema = z.object({ secrets: z.array(secretRecordSchema).describe('Newest first, expired ones included until the next rotation') });

export type RotateSecretBody = z.output<typeof rotateSecretBodySchema>;
/** A secret as the API shows it: never the secret or its hash. */
export type ClientSecretRecord = z.infer<typeof secretRecordSchema>;
