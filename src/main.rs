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
        Err(e) => fail(&e.to_string()),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let result = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).map_err(|e| e.to_string())?;
                app.run_until_stopped().await.map_err(|e| e.to_string())
            });
            if let Err(message) = result {
                fail(&message);
            }
        }
        command => match glue::cli::run(command, &settings) {
            Ok(message) => println!("{message}"),
            Err(e) => fail(&e.0),
        },
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
