#!/usr/bin/env bash
# Start what the service tests need; safe to run again. Prints the variable the tests read:
#   export LORASEARCH_TEST_POSTGRES=postgresql://postgres:lorasearch@127.0.0.1:5432/postgres
set -uo pipefail
apt_install() {
    apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; }
}
command -v chromium >/dev/null || apt_install chromium \
    || echo "services: could not install chromium (the UI browser test will skip)" >&2
if ! command -v pg_lsclusters >/dev/null; then
    apt_install postgresql || { echo "services: could not install postgresql" >&2; exit 0; }
fi
read -r version cluster _ < <(pg_lsclusters --no-header | head -1)
if [ -z "${version:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    pg_createcluster "$version" main >/dev/null
    cluster=main
fi
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true   # already running is fine
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'lorasearch'\"" >/dev/null
echo "export LORASEARCH_TEST_POSTGRES=postgresql://postgres:lorasearch@127.0.0.1:5432/postgres"
