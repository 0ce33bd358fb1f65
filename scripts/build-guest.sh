#!/bin/sh
# Builds the static guest programs (the guest has no Node) into dist/guest/.
set -eu
cd "$(dirname "$0")/.."
mkdir -p dist/guest
for src in guest-src/*.c; do
  name=$(basename "$src" .c)
  gcc -static -Os -Wall -Wextra -Werror -o "dist/guest/$name" "$src"
  strip "dist/guest/$name"
done
