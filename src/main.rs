//! Thin entry point: logging, settings, CLI dispatch.

use clap::Parser;
use glue::cli::{Cli, Command, ServeArgs};
use glue::settings::Settings;
use glue::startup::Application;

fn main() {
    // GLUE_LOG_FORMAT=json: one JSON object per line; every line written while a request is
    // served carries its request id and client address.
    let json = std::env::var("GLUE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |out, record| {
            glue::glue_application::context::write_log_line(out, record, json)
        })
        .init();
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()));
    if let Command::Serve(ServeArgs {
        config: Some(file), ..
    }) = &command
    {
        // Layered exactly like GLUE_CONFIG_FILE (read by Settings::load below).
        std::env::set_var("GLUE_CONFIG_FILE", file);
    }
    let mut settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => fail(&e),
    };
    match command {
        Command::Serve(args) => {
            if let Some(host) = args.host {
                settings.server.host = host;
            }
            if let Some(port) = args.port {
                settings.server.port = port;
            }
            // bcrypt-rust settles its SIMD kernel once per process: pinned before any thread.
            // SAFETY: only this thread exists (env_logger, clap and the settings start none).
            if let Err(e) = unsafe { glue::password::pin_simd(settings.oauth.bcrypt_simd) } {
                fail(&e);
            }
            let result = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings)?;
                app.run_until_stopped().await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            });
            if let Err(e) = result {
                fail(e.as_ref());
            }
        }
        command => match glue::cli::run(command, &settings) {
            Ok(message) => {
                use std::io::Write;
                // A closed pipe (`glue config show | head`) is the reader's choice, not an error.
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{message}").and_then(|()| out.flush()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => fail(&e),
                    _ => {}
                }
            }
            Err(e) => fail(&e),
        },
    }
}

/// Prints the error with its causes ("outer: inner: innermost") and exits with status 1.
fn fail(error: &dyn std::error::Error) -> ! {
    eprintln!("error: {}", glue::glue_application::error::chain(error));
    std::process::exit(1);
}
