use clap::Parser;
use portal::cli::{self, Cli};
use portal::config::Config;

fn main() {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portal: {e}");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lines go to stderr from a thread of their own, in batches (see `portal::logging`).
    let (writer, log_guard) = portal::logging::to_stderr();
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter);
    if config.log_format == "json" {
        // One object per line: the request span's fields (request id, tenant, member or
        // admin) are in `span`.
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let result = runtime.block_on(cli::run(cli, config));
    drop(runtime);
    drop(log_guard);
    if let Err(e) = result {
        eprintln!("portal: {e:#}");
        std::process::exit(e.exit_code());
    }
}
