#!/usr/bin/env bash
# The PHP suite of packages/auth-server-laravel (PHPUnit against Debian's Laravel 8), including
# the end-to-end tests against the built auth-api. Needs: php-cli php-curl php-mbstring php-xml
# phpunit php-laravel-framework composer (apt-get), Node and `pnpm install` done.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in php phpunit composer node; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-php: $tool is missing. Install PHP with:" >&2
    echo "  apt-get install -y php-cli php-curl php-mbstring php-xml phpunit php-laravel-framework composer" >&2
    exit 1
  fi
done

# The end-to-end tests start packages/auth-api/dist/cli.js: build it (a no-op when up to date),
# with pnpm, or the README's `npx pnpm@…` where pnpm is not installed.
if command -v pnpm >/dev/null 2>&1; then pnpm build; else npx --yes pnpm@12.4.2 build; fi
cd packages/auth-server-laravel
# Composer writes the package's autoloader offline (nothing is fetched; Laravel comes from the system).
composer dump-autoload --dev --quiet
phpunit "$@"
