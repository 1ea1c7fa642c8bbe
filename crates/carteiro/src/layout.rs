//! Where things are: finding the configuration file, and the layout of the
//! data directory.

use anyhow::Context;
use carteiro_config::Config;
use std::path::{Path, PathBuf};

/// The configuration in effect: `--config FILE`, else `$CARTEIRO_CONFIG`,
/// else `./carteiro.toml` when present, else the built-in defaults.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("CARTEIRO_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from("carteiro.toml");
    local.exists().then_some(local)
}

pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<Config> {
    match config_path(explicit) {
        Some(path) => Ok(Config::from_file(&path)?),
        None => Ok(Config::default()),
    }
}

/// Paths inside the data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(config: &Config) -> DataDir {
        DataDir {
            root: config.data_dir.clone(),
        }
    }

    /// Creates the directory (owner-only) when it does not exist.
    pub fn create(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if !self.root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .with_context(|| format!("cannot create data directory {}", self.root.display()))?;
        }
        Ok(())
    }

    /// The directory's permission bits when the group or others may reach
    /// into it (e.g. 0755 from systemd's `StateDirectory=`), else `None`.
    pub fn open_to_others(&self) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&self.root).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("carteiro.db")
    }

    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// Where events wait while the store cannot take them.
    pub fn events_journal(&self) -> PathBuf {
        self.root.join("events.journal")
    }

    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls").join("cert.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls").join("key.pem")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
}
