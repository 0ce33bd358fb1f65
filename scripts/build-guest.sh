#!/bin/sh
# Builds the static guest programs (the guest has no Node) into dist/guest/.
# guest-src/<name>.c is a program; guest-src/<name>/*.c, when present, are its other sources.
set -eu
cd "$(dirname "$0")/.."
mkdir -p dist/guest
for src in guest-src/*.c; do
  name=$(basename "$src" .c)
  parts=$(ls "guest-src/$name"/*.c 2>/dev/null || true)
  # shellcheck disable=SC2086 # parts is a list of paths without spaces
  gcc -static -Os -Wall -Wextra -Werror -Iguest-src -o "dist/guest/$name" "$src" $parts
  strip "dist/guest/$name"
done

# The agent once more for the host, for tests: sanitizers on, and --test-dir
# replaces poweroff and hostname changes with files (it never touches the host).
parts=$(ls guest-src/banger-agent/*.c)
# shellcheck disable=SC2086
gcc -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Werror -Iguest-src -DAGENT_HOST_BUILD \
  -o dist/guest/banger-agent-host guest-src/banger-agent.c $parts
