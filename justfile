# imacsr tasks. Every recipe creates .venv and installs the package into it when needed.

python := ".venv/bin/python"

# Create .venv and install imacsr with its dev extra (once; re-run when pyproject.toml changes).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
    stamp=.venv/.imacsr-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
        touch "$stamp"
    fi

# The main job on the embedded default: a small synthetic grid on the CPU, then its report.
demo: setup
    .venv/bin/imacsr run-grid experiments/demo.toml --jobs 2
    .venv/bin/imacsr status
    .venv/bin/imacsr report --all --grid demo --out results/report

# The test suite (CPU, a few minutes). The tests on the real services (PostgreSQL, Slurm; marked
# `services` by tests/conftest.py) run in a pytest of their own, one after another, beside the rest on
# up to 3 pytest-xdist workers: one of them restarts PostgreSQL, another fills the Slurm node, so they
# must never run two at a time (an xdist group was once split across workers under load).
test *ARGS: setup
    #!/usr/bin/env bash
    set -uo pipefail
    log=$(mktemp)
    {{python}} -m pytest -m services {{ARGS}} > "$log" 2>&1 &
    services=$!
    {{python}} -m pytest -n auto --maxprocesses 3 -m "not services" {{ARGS}}
    rest=$?
    wait $services
    svc=$?
    echo "---- the tests on the services (PostgreSQL, Slurm), run one at a time:"
    cat "$log"; rm -f "$log"
    # 5 = no test selected (e.g. ARGS name only tests of the other kind)
    [ $rest -eq 0 -o $rest -eq 5 ] && [ $svc -eq 0 -o $svc -eq 5 ] && [ $rest$svc != 55 ]

# The cluster suite against real services: starts PostgreSQL and a single-node Slurm (.ci/services.sh,
# as root on Debian; installs them with apt when missing), runs tests/cluster and the store and
# scheduler tests on both databases (a skip is a failure), then stops the services.
test-cluster *ARGS: setup
    #!/usr/bin/env bash
    set -euo pipefail
    trap '.ci/services.sh stop' EXIT
    eval "$(.ci/services.sh start)"
    IMACSR_REQUIRE_SERVICES=1 {{python}} -m pytest -n auto --maxprocesses 4 --dist loadgroup tests/cluster tests/store tests/launch {{ARGS}}

# Benchmarks (figures and ratios; see BENCHMARKS.md): training step and data pipeline (interleaved
# rounds), models, orchestration, status at 100k runs.
bench: setup
    {{python}} benchmarks/train_step.py --naive
    {{python}} benchmarks/loss_terms.py
    {{python}} benchmarks/data_pipeline.py
    {{python}} benchmarks/models_bench.py --size 128 256 --batch 2
    {{python}} benchmarks/orchestration.py
    {{python}} benchmarks/status_db.py
