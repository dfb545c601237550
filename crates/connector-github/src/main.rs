//! `connector-github`: runs the GITHUB connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main(connector_github::factories())
}
