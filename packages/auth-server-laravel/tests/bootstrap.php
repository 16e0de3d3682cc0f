<?php

declare(strict_types=1);

// Laravel from the system (Debian's php-laravel-framework: Illuminate, Symfony, Carbon…) unless
// the package's own vendor/ has it; the package and its tests from Composer's autoloader
// (`composer dump-autoload` writes it offline).
$illuminate = getenv('ILLUMINATE_AUTOLOAD') ?: '/usr/share/php/Illuminate/autoload.php';
$vendor = __DIR__ . '/../vendor/autoload.php';
if (!is_file($vendor)) {
    fwrite(STDERR, "vendor/autoload.php is missing: run `composer dump-autoload` in packages/auth-server-laravel\n");
    exit(1);
}
require $vendor;
if (!class_exists(\Illuminate\Foundation\Application::class)) {
    if (!is_file($illuminate)) {
        fwrite(STDERR, "Laravel is not installed: apt-get install php-laravel-framework (or set ILLUMINATE_AUTOLOAD)\n");
        exit(1);
    }
    require $illuminate;
}
