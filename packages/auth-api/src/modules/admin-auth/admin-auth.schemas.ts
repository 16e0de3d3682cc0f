import { z } from 'zod';

export const SYSTEM_ADMIN = 'system_admin';

export const emailSchema = z.string().trim().toLowerCase().max(254).pipe(z.email('must be an email address'));

/** A new admin's password: long enough to resist guessing, within bcrypt's 72-byte input. */
export const newPasswordSchema = z
  .string()
  .min(12, 'must be at least 12 characters')
  .refine((p) => Buffer.byteLength(p, 'utf8') <= 72, 'must be at most 72 bytes');

export const loginBodySchema = z.strictObject({
  email: emailSchema,
  password: z.string().min(1, 'is required').max(1024),
});

export const userSchema = z.object({
  id: z.string(),
  email: z.string(),
  roles: z.array(z.string()),
  created_at: z.string(),
});

export const loginResponseSchema = z.object({
  user: userSchema,
  tokens: z.object({ access_token: z.string(), token_type: z.literal('Bearer'), expires_in: z.number() }),
  roles: z.array(z.string()),
});

export const changePasswordBodySchema = z
  .strictObject({
    current_password: z.string().min(1, 'is required').max(1024),
    new_password: newPasswordSchema,
  })
  .refine((b) => b.current_password !== b.new_password, { path: ['new_password'], message: 'must differ from the current password' });

export const revokeAllResponseSchema = z.object({ revoked_count: z.number().int() });

export const meResponseSchema = z.object({ user: userSchema, roles: z.array(z.string()) });

export type PublicUser = z.infer<typeof userSchema>;
