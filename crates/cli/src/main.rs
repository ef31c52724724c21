//! The `tribune` binary: a thin shell over the server and client libraries.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
