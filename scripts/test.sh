#!/usr/bin/env bash
# The project's test command (README, second block). On a fresh Debian machine it installs
# what the tests need, then runs every test. Run as root (apt-get) or with the packages present.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || need+=(postfix)
# tests/follower_crash.rs generates its log with ../shared/data/tools/gen_postfix_log.py.
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  # Install postfix without configuring the machine's own mail system.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# The sendmail end-to-end test runs Debian's sendmail unpacked into target/ (it cannot be
# installed beside postfix); this fetches and unpacks it once.
bash scripts/e2e-sendmail.sh

# nextest (on the build machines) runs each test in its own process with a time limit and one
# retry for the end-to-end tests (.config/nextest.toml); plain cargo test is the fallback.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
  cargo test --locked --doc   # nextest does not run doc examples
else
  cargo test --locked
fi
