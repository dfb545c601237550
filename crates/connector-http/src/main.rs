//! `connector-http`: runs the HTTP_JSON connectors of the configuration.

fn main() -> std::process::ExitCode {
    connector_runtime::main(connector_http::factories())
}
