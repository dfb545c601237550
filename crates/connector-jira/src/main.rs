//! `connector-jira`: runs the JIRA connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main_named(env!("CARGO_BIN_NAME"), connector_jira::factories())
}
