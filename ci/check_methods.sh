#!/usr/bin/env bash
# What a method pull request is checked with: ci/check_methods.py says what it does.
#   ci/check_methods.sh [BASE] [--suite NAME] [--store DIR]    (BASE: origin/main)
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/check_methods.py" "$@"
