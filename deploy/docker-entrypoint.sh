#!/bin/sh
# Reads each secret the service takes from a file: for VAR in the list, VAR_FILE names
# a file (a compose or Kubernetes secret) whose content, trailing newlines removed,
# becomes VAR. Then runs the command.
set -eu

for var in WEBHOOK_TOKEN ANALYZE_TOKEN INGEST_TOKEN ANTHROPIC_API_KEY; do
    file=$(printenv "${var}_FILE" || true)
    [ -n "$file" ] || continue
    if printenv "$var" >/dev/null; then
        echo "docker-entrypoint: both $var and ${var}_FILE are set; set one" >&2
        exit 64
    fi
    if ! value=$(cat -- "$file"); then
        echo "docker-entrypoint: ${var}_FILE: cannot read $file" >&2
        exit 66
    fi
    if [ -z "$value" ]; then
        echo "docker-entrypoint: ${var}_FILE: $file is empty" >&2
        exit 65
    fi
    export "$var=$value"
    unset "${var}_FILE"
done

exec "$@"
