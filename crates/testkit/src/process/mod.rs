//! Runs the real `carteiro` binary for end-to-end tests: writes its config,
//! starts `serve`, waits until its listeners accept connections, and runs
//! other subcommands against the same config.
//!
//! It only manages the process it started (by its pid); it never looks for
//! other processes by name.

use anyhow::{Context, bail};
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long `serve` may take to open every listener.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM may take to end the process.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a one-off subcommand may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between readiness checks (polling, bounded by the deadline).
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Lowest port [`free_port`] hands out.
const FIRST_CHOSEN_PORT: u16 = 20_000;

/// A free TCP port on 127.0.0.1 at the time of the call, for writing configs.
///
/// It is drawn at random from below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768-60999 by default), never from it:
/// a port the kernel gave out for `bind(0)` is in that range, and the next
/// outgoing connection of any test running beside this one could take it as
/// its local port before the process the port is meant for binds it
/// ("Address already in use", seen when many tests run at once). Below the
/// range only another `free_port` call can pick the same port, one chance
/// in thousands. When the range leaves no room below it, the kernel's
/// choice is used.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > FIRST_CHOSEN_PORT + 1_000 {
        let span = u64::from(ephemeral_low - FIRST_CHOSEN_PORT);
        for _ in 0..1_000 {
            // A fresh RandomState is randomly seeded: a random number
            // without a dependency.
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = FIRST_CHOSEN_PORT + u16::try_from(random % span).unwrap_or(0);
            if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free port on 127.0.0.1: {err}"))
}

/// Writes `config_toml` to `dir/carteiro.toml` and runs `bin --config
/// dir/carteiro.toml args…` in `dir` to completion (at most 60 s): for
/// commands run without a server, and for checking that a bad config is
/// refused by `serve`.
pub async fn run_with_config(
    bin: &Path,
    config_toml: &str,
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<Output> {
    let config = write_config(config_toml, dir)?;
    run_command(bin, &config, dir, args).await
}

fn write_config(config_toml: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("carteiro.toml");
    std::fs::write(&path, config_toml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn run_command(
    bin: &Path,
    config: &Path,
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .with_context(|| {
            format!(
                "{} {args:?} still running after {RUN_TIMEOUT:?}",
                bin.display()
            )
        })?
        .with_context(|| format!("running {} {args:?}", bin.display()))?;
    Ok(output)
}

/// Every address given by a `listen` or `*_listen` key, at any depth, as a
/// string or an array of strings. Unspecified IPs are reached via loopback.
fn listen_addresses(config_toml: &str) -> anyhow::Result<Vec<SocketAddr>> {
    fn walk(
        value: &toml::Value,
        found: &mut Vec<SocketAddr>,
        listen_key: bool,
    ) -> anyhow::Result<()> {
        match value {
            toml::Value::String(text) if listen_key => {
                let mut addr: SocketAddr = text
                    .parse()
                    .with_context(|| format!("listen address {text:?} is not IP:PORT"))?;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr.ip() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    });
                }
                found.push(addr);
            }
            toml::Value::Array(items) => {
                for item in items {
                    walk(item, found, listen_key)?;
                }
            }
            toml::Value::Table(table) => {
                for (key, item) in table {
                    walk(item, found, key == "listen" || key.ends_with("_listen"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let value: toml::Value = toml::from_str(config_toml).context("config is not valid TOML")?;
    let mut found = Vec::new();
    walk(&value, &mut found, false)?;
    found.sort();
    found.dedup();
    Ok(found)
}

/// A running `carteiro serve`; killed (SIGKILL) when dropped.
pub struct Carteiro {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    listen: Vec<SocketAddr>,
    child: Option<Child>,
}

impl Carteiro {
    /// Writes `config_toml` to `dir/carteiro.toml`, starts `bin serve
    /// --config dir/carteiro.toml` in `dir` with stdout and stderr appended to
    /// `dir/carteiro.log`, and waits (at most 20 s) until every `listen` /
    /// `*_listen` address of the config accepts TCP connections.
    ///
    /// Fails, with the end of the log, when the process exits first or the
    /// deadline passes; fails before starting when the config names no
    /// listen address (use [`run_with_config`] to test refused configs).
    pub async fn start(bin: &Path, config_toml: &str, dir: &Path) -> anyhow::Result<Carteiro> {
        let listen = listen_addresses(config_toml)?;
        if listen.is_empty() {
            bail!("config has no listen or *_listen address to wait for");
        }
        let config = write_config(config_toml, dir)?;
        let mut carteiro = Carteiro {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            config,
            log: dir.join("carteiro.log"),
            listen,
            child: None,
        };
        carteiro.spawn().await?;
        Ok(carteiro)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        // Appending keeps the log of earlier runs across restarts.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log handle")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", self.bin.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pending = self.listen.clone();
        loop {
            let Some(child) = self.child.as_mut() else {
                bail!("carteiro is not running");
            };
            if let Some(status) = child.try_wait().context("checking the carteiro process")? {
                self.child = None;
                bail!(
                    "carteiro exited ({status}) before listening on {pending:?}; log ends with:\n{}",
                    self.log_tail()
                );
            }
            let mut still_pending = Vec::new();
            for addr in pending {
                if TcpStream::connect(addr).await.is_err() {
                    still_pending.push(addr);
                }
            }
            pending = still_pending;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "carteiro not listening on {pending:?} after {START_TIMEOUT:?}; log ends with:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The config file path it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The listen addresses found in the config (what readiness waits for).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Runs `bin --config <same config> args…` (e.g. `account add acme`,
    /// `queue list --json`) to completion beside the server.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        run_command(&self.bin, &self.config, &self.dir, args).await
    }

    /// Like [`run`](Self::run), but fails unless the command exits 0 (with
    /// its stderr in the error); returns its stdout.
    pub async fn run_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.run(args).await?;
        if !output.status.success() {
            bail!(
                "carteiro {args:?} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing carteiro")?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits at most 10 s for the process to exit; on
    /// timeout it is killed and an error returned.
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("carteiro is not running");
        };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let pid = child.id().context("carteiro has no pid")?;
        // `kill` from the system: signalling needs no unsafe code this way.
        let sent = Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status()
            .await
            .context("running kill -s TERM")?;
        if !sent.success() {
            bail!("kill -s TERM {pid} failed: {sent}");
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.kill().await.context("killing carteiro")?;
                bail!(
                    "carteiro did not exit within {STOP_TIMEOUT:?} of SIGTERM; log ends with:\n{}",
                    self.log_tail()
                )
            }
        }
    }

    /// Stops the server if it runs (SIGTERM), then starts it again with the
    /// same config and waits for its listeners.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.stop().await?;
        }
        self.spawn().await
    }

    /// Everything the server wrote to stdout and stderr so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last 40 lines of the log, for error messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

#[cfg(test)]
mod tests;
