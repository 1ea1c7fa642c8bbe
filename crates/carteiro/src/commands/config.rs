//! `carteiro config check [FILE]`.

use crate::cli::ConfigCommand;
use crate::layout;
use carteiro_config::Config;
use std::path::Path;

pub fn run(cmd: ConfigCommand, explicit: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let path = file.or_else(|| layout::config_path(explicit));
            match path {
                Some(path) => {
                    Config::from_file(&path)?;
                    println!("{}: ok", path.display());
                }
                None => println!("no configuration file: the built-in defaults are in effect"),
            }
            Ok(())
        }
    }
}
