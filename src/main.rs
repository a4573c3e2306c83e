//! The `capstan` binary: all of it is in `cli::run`, which picks the exit code.

fn main() {
    std::process::exit(capstan::cli::run());
}
