#!/usr/bin/env bash
# Installs what the tests need when it is missing (Debian/Ubuntu, apt-get),
# then runs formatting, lints and every test. CI runs exactly this.
# No test skips itself: one that lacks a part below fails and names it.
# The last lines say what ran: every step, and per test binary how many tests
# passed, failed and were ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
for tool in ssh ssh-keygen ssh-agent ssh-add; do
    command -v "$tool" >/dev/null || need+=(openssh-client)
done
command -v curl >/dev/null || need+=(curl)
# ip: network namespaces (tests/netns.rs, tests/faults.rs); tc: the black-holed link
# (tests/faults.rs); ss: tests/forward.rs finds the sshd process holding a port.
for tool in ip tc ss; do
    command -v "$tool" >/dev/null || need+=(iproute2)
done
# unshare: the offline resolver and the isolated home of tests/ssh_config.rs;
# prlimit: the bench's open-files limit.
for tool in unshare prlimit; do
    command -v "$tool" >/dev/null || need+=(util-linux)
done
command -v python3 >/dev/null || need+=(python3)
# promtool and prometheus: tests/observability.rs runs both (and check-monitoring promtool).
{ [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; } || need+=(prometheus)
# The status page test renders it in headless Chromium.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    # One package may be listed for several tools.
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# sshd refuses to start without its privilege separation directory.
[ -d /run/sshd ] || { [ "$(id -u)" = 0 ] && mkdir -p /run/sshd; } || true

# === the steps, and the summary printed however the script ends ===

done_steps=()
current=""
test_log=$(mktemp -t jg-test-all.XXXXXX)

summary() {
    local rc=$?
    echo
    echo "=== scripts/test-all.sh: what ran ==="
    for s in "${done_steps[@]}"; do
        echo "  passed: $s"
    done
    if [ -s "$test_log" ]; then
        echo "  cargo test --release, per test binary:"
        awk '
            /^ *Running / { name = ($2 == "unittests") ? "unit tests " $3 : $2 }
            /^ *Doc-tests / { name = "doc-tests " $2 }
            /^test result:/ {
                sub(/^test result: /, "")
                printf "    %-34s %s\n", name, $0
                for (i = 1; i <= NF; i++) {
                    if ($(i + 1) ~ /^passed/) p += $i
                    if ($(i + 1) ~ /^failed/) f += $i
                    if ($(i + 1) ~ /^ignored/) g += $i
                }
            }
            END { printf "    total: %d passed, %d failed, %d ignored\n", p, f, g }
        ' "$test_log"
    fi
    if [ "$rc" -ne 0 ]; then
        echo "  FAILED: ${current:-setup} (exit $rc); later steps did not run"
    else
        echo "  all ${#done_steps[@]} steps passed"
    fi
    rm -f "$test_log"
}
trap summary EXIT

step() {
    current=$1
    shift
    echo
    echo "==> $current"
    "$@"
    done_steps+=("$current")
}

# Prometheus rules and config (promtool, installed when missing) and the dashboard.
step "monitoring assets (scripts/check-monitoring.sh)" ./scripts/check-monitoring.sh
step "cargo fmt --all -- --check" cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings" cargo clippy --all-targets -- -D warnings
# Release: the tests move gigabytes through SSH; debug crypto is too slow.
# tee keeps the output for the summary; pipefail keeps cargo's exit status.
step "cargo test --release (unit, integration, doc)" \
    bash -o pipefail -c 'cargo test --release 2>&1 | tee "$1"' _ "$test_log"
# Smoke run of the side-by-side benchmark (checks it runs and prints, not the figures).
step "cargo bench --bench e2e -- --quick" cargo bench --bench e2e -- --quick
