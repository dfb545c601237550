//! `connector-noaa`: runs the NOAA_WEATHER connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main_named(env!("CARGO_BIN_NAME"), connector_noaa::factories())
}
