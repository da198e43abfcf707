#!/usr/bin/env bash
# Runs this project's benchmark beside the original evtstore and cqrs-es, in one go, and prints
# every JSON line (see ../../../shared/bench/WORKLOAD.md).
# usage: crates/evtstore-bench/compare.sh [memory sqlite postgres mysql]   (from the repository root)
set -euo pipefail
shared=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
export EVTSTORE_PG_URL="${EVTSTORE_PG_URL:-postgres://root@127.0.0.1:5432/postgres?sslmode=disable}"
export EVTSTORE_MYSQL_URL="${EVTSTORE_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
cargo build -q --release -p evtstore-bench
bench="${CARGO_TARGET_DIR:-target}/release/evtstore-bench"
for provider in "${@:-memory sqlite postgres mysql}"; do
  for p in $provider; do
    # Only the JSON lines on stdout: the original's knex warns there (on MariaDB, per insert).
    "$shared/bench/evtstore-js/run.sh" "$p" | awk '/^\{/ { print; next } { print > "/dev/stderr" }'
    case "$p" in
      sqlite)
        # The original's better-sqlite3 runs WAL with synchronous=NORMAL: compare at both.
        "$bench" --provider sqlite --durability normal --raw
        "$bench" --provider sqlite --durability full --raw
        "$bench" --provider sqlite --tail 20          # W7: 64 tasks for 20 s
        for scale in 1 10 100; do "$bench" --provider sqlite --growth --scale "$scale"; done ;;
      postgres)
        "$bench" --provider postgres --raw            # single-threaded runtime, the default here
        "$bench" --provider postgres --raw --runtime multi
        "$shared/bench/cqrs-es/run.sh" postgres
        "$bench" --provider postgres --tail 20 --runtime multi
        for scale in 1 10 100; do "$bench" --provider postgres --growth --scale "$scale"; done ;;
      mysql)
        # On the MariaDB server, beside the original's knex (mysql2) provider above.
        "$bench" --provider mysql --raw
        "$bench" --provider mysql --runtime multi
        for scale in 1 10; do "$bench" --provider mysql --growth --scale "$scale"; done ;;
      *) "$bench" --provider "$p" ;;
    esac
  done
done
