//! The `capstan` binary: `cli::run` sets up logging, runs the command and picks the exit code.

fn main() {
    std::process::exit(capstan::cli::run());
}
