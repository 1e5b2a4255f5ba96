//! Thin entry point: logging, settings, CLI dispatch.

use clap::Parser;
use glue::cli::{Cli, Command};
use glue::settings::Settings;
use glue::startup::Application;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => fail(&e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
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
            Ok(message) => println!("{message}"),
            Err(e) => fail(&e),
        },
    }
}

/// Prints the error with its causes ("outer: inner: innermost") and exits with status 1.
fn fail(error: &dyn std::error::Error) -> ! {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    eprintln!("error: {message}");
    std::process::exit(1);
}
