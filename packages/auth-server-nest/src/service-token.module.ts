import {
  ConfigurableModuleBuilder,
  Inject,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type Provider,
} from '@nestjs/common';
import { AuthServerError, ServiceTokenManager } from '@rw3iss/auth-server-ts';
import { CatalogRegistration } from './catalog-registration.js';
import { RESOLVED_OPTIONS, SERVICE_TOKEN_VERIFIER } from './constants.js';
import { ServiceTokenModuleError } from './errors.js';
import { resolveOptions, type ResolvedOptions, type ServiceTokenModuleOptions } from './service-token.options.js';

const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ServiceTokenModuleOptions>({ moduleName: 'ServiceToken' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** Injection token of the options given to `forRoot()` / returned by `forRootAsync()`'s factory. */
export const SERVICE_TOKEN_MODULE_OPTIONS = MODULE_OPTIONS_TOKEN;
/** What `ServiceTokenModule.forRoot()` takes: the module options plus `isGlobal`. */
export type ServiceTokenModuleForRootOptions = typeof OPTIONS_TYPE;
/** What `ServiceTokenModule.forRootAsync()` takes: `imports`, `inject`, `useFactory` (or `useClass` / `useExisting`), `isGlobal`. */
export type ServiceTokenModuleAsyncOptions = typeof ASYNC_OPTIONS_TYPE;

/** Thrown by the calling side's methods when no `manager` options were given. */
function unconfiguredManager(): ServiceTokenManager {
  const fail = (): never => {
    throw new ServiceTokenModuleError('not_configured', 'ServiceTokenModule: no manager options were given, so there is no ServiceTokenManager to call with');
  };
  return Object.freeze({
    getToken: async () => fail(),
    authorizationHeader: async () => fail(),
    fetch: async () => fail(),
    invalidate: () => fail(),
    close: async () => {},
  }) as unknown as ServiceTokenManager;
}

const providers: Provider[] = [
  { provide: RESOLVED_OPTIONS, useFactory: (options: ServiceTokenModuleOptions) => resolveOptions(options), inject: [MODULE_OPTIONS_TOKEN] },
  { provide: SERVICE_TOKEN_VERIFIER, useFactory: (resolved: ResolvedOptions) => resolved.verifier ?? null, inject: [RESOLVED_OPTIONS] },
  { provide: ServiceTokenManager, useFactory: (resolved: ResolvedOptions) => resolved.manager ?? unconfiguredManager(), inject: [RESOLVED_OPTIONS] },
  {
    provide: CatalogRegistration,
    useFactory: (resolved: ResolvedOptions) => new CatalogRegistration(resolved.catalog, resolved.manager, new Logger('ServiceTokenModule')),
    inject: [RESOLVED_OPTIONS],
  },
];

/**
 * Service tokens for a Nest application, on the Node SDK (`@rw3iss/auth-server-ts`):
 *
 * - receiving side (`verifier`): `ServiceTokenGuard`, `@RequireScopes()`, `@Public()`, `@ServicePrincipal()`;
 * - calling side (`manager`): the SDK's `ServiceTokenManager` as a provider
 *   (`@InjectServiceTokens()` or the class), closed when the application closes;
 * - `catalog`: the service's permission catalog, registered at `onApplicationBootstrap`.
 *
 * Options come from `forRoot(options)` or `forRootAsync({ imports, inject, useFactory })`;
 * `isGlobal: true` makes the providers visible to every module.
 *
 * @example
 * ServiceTokenModule.forRootAsync({
 *   isGlobal: true,
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({
 *     verifier: { secret: config.getOrThrow('JWT_ACCESS_SECRET'), issuer: config.getOrThrow('JWT_ISSUER'), audience: config.getOrThrow('JWT_AUDIENCE') },
 *   }),
 * })
 */
@Module({
  providers,
  // ServiceTokenGuard is not a provider here: Nest creates it where it is used (@UseGuards, APP_GUARD),
  // and an application that only calls other services never needs a verifier.
  exports: [SERVICE_TOKEN_VERIFIER, ServiceTokenManager, CatalogRegistration, MODULE_OPTIONS_TOKEN],
})
export class ServiceTokenModule extends ConfigurableModuleClass implements OnApplicationBootstrap, OnModuleDestroy {
  readonly #resolved: ResolvedOptions;
  readonly #catalog: CatalogRegistration;

  constructor(@Inject(RESOLVED_OPTIONS) resolved: ResolvedOptions, @Inject(CatalogRegistration) catalog: CatalogRegistration) {
    super();
    this.#resolved = resolved;
    this.#catalog = catalog;
  }

  /** Registers the catalog (if configured) under its failure policy. */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.#catalog.start();
    } catch (err) {
      // The boot fails: Nest will not call onModuleDestroy, so release the manager here.
      await this.onModuleDestroy();
      throw err;
    }
  }

  /** Stops catalog retries, then closes the verifier and the manager the module created. */
  async onModuleDestroy(): Promise<void> {
    this.#catalog.stop();
    if (this.#resolved.ownsVerifier) this.#resolved.verifier?.close();
    if (this.#resolved.ownsManager) {
      await this.#resolved.manager?.close().catch((err: unknown) => {
        if (!(err instanceof AuthServerError)) throw err;
      });
    }
  }
}
