//! `connectors`: every built-in connector type in one binary. `connectors run` is a worker
//! for all of them; `connectors all` supervises one child process per connector.

fn main() -> std::process::ExitCode {
    connector_runtime::main_named(env!("CARGO_BIN_NAME"), connectors::factories())
}
