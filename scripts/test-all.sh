#!/usr/bin/env bash
# Installs what the tests need when it is missing (Debian/Ubuntu, apt-get),
# then runs formatting, lints and every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v ss >/dev/null || need+=(iproute2) # ss: tests/forward.rs finds the sshd process holding a port
command -v python3 >/dev/null || need+=(python3)
# promtool and prometheus: tests/observability.rs runs both (and check-monitoring promtool).
{ [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; } || need+=(prometheus)
# The status page test renders it in headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# sshd refuses to start without its privilege separation directory.
[ -d /run/sshd ] || { [ "$(id -u)" = 0 ] && mkdir -p /run/sshd; } || true

# Prometheus rules and config (promtool, installed when missing) and the dashboard.
./scripts/check-monitoring.sh

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Release: the tests move gigabytes through SSH; debug crypto is too slow.
cargo test --release
# Smoke run of the side-by-side benchmark (checks it runs and prints, not the figures).
cargo bench --bench e2e -- --quick
