#!/bin/sh
# The container's start command, and what packages/auth-api/test/production.test.ts
# runs: the built server, which migrates the database, then listens on HOST:PORT.
# `exec` makes node the process that receives SIGTERM (docker stop).
set -eu
cd "$(dirname "$0")/.."
exec node packages/auth-api/dist/cli.js serve
