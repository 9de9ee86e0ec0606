use clap::Parser;

fn main() -> std::process::ExitCode {
    signalbox::install_crypto_provider();
    let cli = signalbox::cli::Cli::parse();
    match signalbox::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if signalbox::cli::is_closed_stdout(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
