# Task shortcuts; each recipe is the plain command it wraps, so `just` is optional.
# Get just with `cargo install just`, or `pip install rust-just` (faster).

# `exec`: Ctrl-C reaches the connector itself, which stops cleanly (just reports the interrupt).
# Run a binary in the foreground: `just run noaa`, `just run connectors all` (embedded without REDIS_URL).
[no-exit-message]
run provider *args:
    exec cargo run -p {{ if provider == "connectors" { "connectors" } else { "connector-" + provider } }} -- {{ args }}

# Run one configured connector by name with the universal binary: `just run-connector weather-noaa`.
[no-exit-message]
run-connector name *args:
    exec cargo run -p connectors -- run {{ name }} {{ args }}

# Offline demo: the NOAA connector against a local replay of recorded alerts.
demo:
    cargo run -p connector-noaa --example demo

# The whole test suite (starts a throwaway Redis if none answers).
test *args:
    scripts/test {{ args }}

# Benchmarks against Redis and a local mock provider (`just bench --ci`: the small run; figures in BENCHMARKS.md).
bench *args:
    cargo build --release -p connector-noaa -p connector-bench
    cargo run --release -q -p connector-bench -- {{ args }}

# Check connectors.json (or CONNECTORS_CONFIG_PATH) with a binary: `just validate`, `just validate connectors`.
validate provider="noaa" *args:
    cargo run -q -p {{ if provider == "connectors" { "connectors" } else { "connector-" + provider } }} -- validate {{ args }}

# Write the JSON Schema of connectors.json next to it, for editors.
schema:
    cargo run -q -p connectors -- schema > connectors.schema.json

# Formatting and lints exactly as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Build a connector's image (noaa, jira, github, datadog, http, connectors) with docker, podman or buildah.
image provider:
    scripts/image {{ provider }}

# Build a connector's image from source with bases made here (no registry), then smoke-test it.
image-from-source provider:
    scripts/image-smoke --from-source {{ provider }}

# Render and lint the Helm chart with every values file (Helm's engine from PyPI).
chart:
    scripts/deploy-check --chart-only

# Start Redis for local runs: compose when present, else a local redis-server.
infra-up:
    scripts/infra up

# Stop what infra-up started.
infra-down:
    scripts/infra down

# RELIABILITY.md lists what it proves.
# The fault suite against the real binaries (kills, pauses, Redis outages), long runs included.
chaos:
    cargo test -p connectors --test faults --test process --test replicas -- --include-ignored --nocapture

# A rolling upgrade and a rollback between the previous release (COMMIT, built once) and this build, on one Redis.
rolling-upgrade *commit:
    scripts/rolling-upgrade {{ commit }}

# The API documentation, the core's `testing` module included (`--open` to view it).
doc *args:
    cargo doc --workspace --all-features --no-deps {{ args }}

# CI, locally.
ci:
    bash .ci/run
