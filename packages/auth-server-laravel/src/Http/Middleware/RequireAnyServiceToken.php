<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Http\Middleware;

/**
 * {@see RequireServiceToken} with one of the listed scopes enough (registered as `service.token.any`).
 *
 * ```php
 * Route::get('/items', ItemsController::class)->middleware('service.token.any:gsku:read,gsku:admin');
 * ```
 */
final class RequireAnyServiceToken extends RequireServiceToken
{
    protected const MODE = 'any';
}
