//! `connector-datadog`: runs the DATADOG connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main(connector_datadog::factories())
}
