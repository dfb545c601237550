//! `connector-jira`: runs the JIRA connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main(connector_jira::factories())
}
