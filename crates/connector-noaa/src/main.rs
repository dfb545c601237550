//! `connector-noaa`: runs the NOAA_WEATHER connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main(connector_noaa::factories())
}
