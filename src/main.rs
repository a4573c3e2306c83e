//! The `capstan` binary: logging set-up, then `cli::run`, which picks the exit code.

fn main() {
    // Logs go to stderr, filtered by CAPSTAN_LOG (e.g. `CAPSTAN_LOG=debug`); off by default
    // apart from warnings, so stdout stays the command's output.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    std::process::exit(capstan::cli::run());
}
