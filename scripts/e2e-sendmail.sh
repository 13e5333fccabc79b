#!/usr/bin/env bash
# Unpacks Debian's sendmail (sendmail-bin, sendmail-cf) into target/e2e-sendmail/root for the
# sendmail end-to-end test, WITHOUT installing it: `apt-get install sendmail-bin` would remove
# postfix (both provide mail-transport-agent) and take over the machine's mail system. The
# packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`; only their
# shared-library dependencies and m4 (none of which touch the mail setup) are installed.
# Idempotent: does nothing when the tree is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=target/e2e-sendmail
if [ -x "$dest/root/usr/libexec/sendmail/sendmail" ] && [ -f "$dest/root/usr/share/sendmail/cf/m4/cf.m4" ]; then
  exit 0
fi

libs=(m4 liblockfile1 libwrap0 libdb5.3 libldap-2.5-0 libnsl2 libsasl2-2 libssl3)
missing=()
for p in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing sendmail e2e dependencies: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

mkdir -p "$dest/debs"
rm -rf "$dest/root"
(
  cd "$dest/debs"
  rm -f ./*.deb
  # apt drops privileges to _apt for downloads; let it write here.
  chmod 777 .
  apt-get download sendmail-bin sendmail-cf \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get download sendmail-bin sendmail-cf; }
)
for deb in "$dest"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dest/root"
done
test -x "$dest/root/usr/libexec/sendmail/sendmail"
echo "sendmail unpacked into $dest/root"
