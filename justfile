# Task shortcuts; each recipe is the plain cargo command it wraps, so `just` is optional.

# Run a connector binary in the foreground: `just run noaa` (embedded without REDIS_URL).
run provider *args:
    cargo run -p connector-{{provider}} -- {{args}}

# Offline demo: the NOAA connector against a local replay of recorded alerts.
demo:
    cargo run -p connector-noaa --example demo

# The whole test suite (starts a throwaway Redis if none answers).
test *args:
    scripts/test {{args}}

# Benchmarks against Redis (REDIS_URL, else the local one) and a local mock provider;
# figures and what limits them are in BENCHMARKS.md. `just bench --ci` is the small run.
bench *args:
    cargo build --release -p connector-noaa -p connector-bench
    cargo run --release -q -p connector-bench -- {{args}}

# Check connectors.json (or CONNECTORS_CONFIG_PATH) and print it with secrets hidden.
validate provider="noaa":
    cargo run -q -p connector-{{provider}} -- validate

# Write the JSON Schema of connectors.json next to it, for editors.
schema provider="noaa":
    cargo run -q -p connector-{{provider}} -- schema > connectors.schema.json

# Formatting and lints exactly as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# CI, locally.
ci:
    bash .ci/run
