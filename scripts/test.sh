#!/usr/bin/env bash
# The project's test command (README, second block). On a fresh Debian machine it installs
# what the tests need, then runs every test. Run as root (apt-get) or with the packages present.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || need+=(postfix)
# tests/follower_crash.rs generates its log with ../shared/data/tools/gen_postfix_log.py.
command -v python3 >/dev/null 2>&1 || need+=(python3)
# tests/browser.rs drives headless Chromium over WebDriver (chromedriver).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# tests/fleet.rs starts private PostgreSQL servers (initdb, pg_ctl, psql) for the fleet database.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || need+=(postgresql)
# The package check below: its maintainer scripts add a system user; `man -w` finds its pages.
command -v adduser >/dev/null 2>&1 || need+=(adduser)
command -v man >/dev/null 2>&1 || need+=(man-db)
# tests/doctor.rs asks sudo whether a user may run the remove command (sudo -l -U).
command -v sudo >/dev/null 2>&1 || need+=(sudo)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  # Install postfix without configuring the machine's own mail system.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# postfix's maillog_file logging goes through postlogd's unix-datagram socket. The kernel's
# default queue of 10 datagrams (systemd raises it to 512 at boot; machines without systemd keep
# 10) fills in any burst of log lines; postlogd then blocks on a message of its own to that same
# socket and the whole test instance hangs. Use systemd's value.
qlen=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo 512)
if [ "$qlen" -lt 512 ]; then
  sysctl -qw net.unix.max_dgram_qlen=512 || echo "warning: net.unix.max_dgram_qlen is $qlen; postfix test instances may stall"
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

# The fuzz targets (fuzz/, README "Reliability") keep building and run a few seconds each on
# corpora seeded from ../shared/data. cargo fuzz needs nightly's -Z flags: RUSTC_BOOTSTRAP lets
# the machine's stable toolchain take them.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
python3 fuzz/seed.py
for target in $(cargo fuzz list); do
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "fuzz/corpus/$target" -- \
    -max_total_time="${MAILTRAIL_FUZZ_SECONDS:-10}" -max_len=4096 -rss_limit_mb=2048
done

# The Debian package (README "Install"): built, installed, checked, purged. Debian's minimal
# images drop man pages at install (dpkg path-exclude); the check reads them from the package
# there.
deb=$(bash scripts/package.sh)
dpkg -i "$deb"
mailtrail --version
if grep -qs 'path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
  dpkg -c "$deb" | grep 'usr/share/man/man8/mailtrail.8.gz' >/dev/null
else
  man -w mailtrail
  man -w 5 mailtrail.toml
fi
mailtrail check-config --config /etc/mailtrail/mailtrail.toml | grep '^store = /var/lib/mailtrail/mailtrail.db$' >/dev/null
test "$(stat -c '%U:%G %a' /var/lib/mailtrail)" = "mailtrail:mailtrail 750"
test "$(stat -c '%G %a' /etc/mailtrail/mailtrail.toml)" = "mailtrail 640"
dpkg --purge mailtrail
if getent passwd mailtrail >/dev/null; then echo "purge left the mailtrail user" >&2; exit 1; fi
test ! -e /var/lib/mailtrail
echo "package $deb: installed, checked and purged"
