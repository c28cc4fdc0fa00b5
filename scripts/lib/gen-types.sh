#!/bin/sh
# Regenerate real-peers.d.mts (the types the TypeScript tests see) from the JSDoc of
# real-peers.mjs, after changing its exports. Run from the repository root.
set -e
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx tsc --allowJs --checkJs --declaration --emitDeclarationOnly --outDir "$out" \
  --module nodenext --moduleResolution nodenext --target es2022 --types node --strict \
  --noUncheckedIndexedAccess --skipLibCheck scripts/lib/real-peers.mjs src/types/bencode.d.ts
{
  echo '// Generated from the JSDoc of real-peers.mjs by scripts/lib/gen-types.sh: do not edit.'
  cat "$out/real-peers.d.mts"
} > scripts/lib/real-peers.d.mts
npx prettier --write scripts/lib/real-peers.d.mts > /dev/null
