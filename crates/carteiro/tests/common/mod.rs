//! Shared helpers for the end-to-end tests: start the real `carteiro` binary
//! with its own data directory and ports, drive it with real clients (swaks,
//! Python's smtplib and raw sockets) and read its queue through the CLI.
//!
//! Everything runs on loopback; nothing here talks to another machine. Each
//! test file uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod client;
pub mod dkim;
pub mod http;
pub mod python;
pub mod tcp_proxy;
pub mod webhook_endpoint;

use carteiro_testkit::{Carteiro, SmtpSink, free_port};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tempfile::TempDir;
use tokio::time::Instant;

pub use python::{python, python_json};

/// Our host name: EHLO name, `Received:` `by`, DSN `Reporting-MTA`.
pub const HOSTNAME: &str = "carteiro.test";

/// How long a test waits for something that should happen in well under a
/// second on an idle machine (builds and benchmarks may share the CPU).
pub const WAIT: Duration = Duration::from_secs(20);

/// How long an external client (swaks, python) may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Interval between two looks at something polled (always with a deadline).
const POLL: Duration = Duration::from_millis(50);

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_carteiro"))
}

/// What one test's `carteiro` looks like; rendered to TOML by [`Setup::toml`].
#[derive(Default)]
pub struct Setup {
    trusted_networks: Vec<String>,
    smtp: Vec<String>,
    http: Vec<String>,
    delivery: Vec<String>,
    nameservers: Vec<SocketAddr>,
    routes: Vec<(Vec<String>, SocketAddr)>,
    extra: String,
    data_dir: Option<PathBuf>,
    program: Option<PathBuf>,
}

impl Setup {
    /// No trusted network, no route, defaults for every limit.
    pub fn new() -> Setup {
        Setup::default()
    }

    /// Lets 127.0.0.1 relay without AUTH on the relay listener.
    pub fn trusted_loopback(self) -> Setup {
        self.trusted("127.0.0.1/32")
    }

    /// Adds a CIDR to `smtp.trusted_networks`.
    pub fn trusted(mut self, cidr: &str) -> Setup {
        self.trusted_networks.push(cidr.to_string());
        self
    }

    /// A `key = value` line in `[smtp]`.
    pub fn smtp(mut self, line: &str) -> Setup {
        self.smtp.push(line.to_string());
        self
    }

    /// A `key = value` line in `[http]` (besides `listen` and `public_url`).
    pub fn http(mut self, line: &str) -> Setup {
        self.http.push(line.to_string());
        self
    }

    /// A `key = value` line in `[delivery]`.
    pub fn delivery(mut self, line: &str) -> Setup {
        self.delivery.push(line.to_string());
        self
    }

    /// A `[dns] nameservers` entry.
    pub fn nameserver(mut self, addr: SocketAddr) -> Setup {
        self.nameservers.push(addr);
        self
    }

    /// A `[[delivery.routes]]` entry relaying `domains` to `relay`.
    pub fn route(mut self, domains: &[&str], relay: SocketAddr) -> Setup {
        self.routes
            .push((domains.iter().map(|d| d.to_string()).collect(), relay));
        self
    }

    /// Raw TOML appended to the file (other sections, e.g. `[spool]`).
    pub fn extra(mut self, toml: &str) -> Setup {
        self.extra.push_str(toml);
        self
    }

    /// Puts the data directory at `path` instead of the temporary directory.
    pub fn data_dir(mut self, path: &Path) -> Setup {
        self.data_dir = Some(path.to_path_buf());
        self
    }

    /// Runs `program` instead of the binary under test (a wrapper script
    /// that sets a umask or adds flags, then `exec`s [`bin`]); the CLI
    /// commands of [`Server::cli`] go through it too.
    pub fn program(mut self, path: &Path) -> Setup {
        self.program = Some(path.to_path_buf());
        self
    }

    /// The configuration file for data directory `data_dir` and the
    /// listeners on `ports` (relay, submission, submissions, http).
    pub fn toml(&self, data_dir: &Path, ports: [u16; 4]) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = format!(
            "hostname = {HOSTNAME:?}\ndata_dir = {:?}\n\n[smtp]\n\
             relay_listen = [\"127.0.0.1:{}\"]\n\
             submission_listen = [\"127.0.0.1:{}\"]\n\
             submissions_listen = [\"127.0.0.1:{}\"]\n\
             trusted_networks = {}\n",
            data_dir.display().to_string(),
            ports[0],
            ports[1],
            ports[2],
            list(&self.trusted_networks),
        );
        for line in &self.smtp {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!(
            "\n[http]\nlisten = \"127.0.0.1:{}\"\npublic_url = \"http://127.0.0.1:{}\"\n",
            ports[3], ports[3]
        ));
        for line in &self.http {
            out.push_str(line);
            out.push('\n');
        }
        let nameservers: Vec<String> = self.nameservers.iter().map(|a| a.to_string()).collect();
        out.push_str(&format!("\n[dns]\nnameservers = {}\n", list(&nameservers)));
        out.push_str("\n[delivery]\n");
        for line in &self.delivery {
            out.push_str(line);
            out.push('\n');
        }
        for (domains, relay) in &self.routes {
            out.push_str(&format!(
                "\n[[delivery.routes]]\ndomains = {}\nrelay = \"{relay}\"\n",
                list(domains)
            ));
        }
        out.push('\n');
        out.push_str(&self.extra);
        out
    }

    /// Starts `carteiro serve` in a fresh temporary directory and waits for
    /// its three listeners.
    pub async fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let toml = self.toml(&data_dir, ports);
        let program = self.program.clone().unwrap_or_else(bin);
        let carteiro = Carteiro::start(&program, &toml, dir.path())
            .await
            .unwrap_or_else(|err| panic!("carteiro did not start: {err:#}\nconfig:\n{toml}"));
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Server {
            relay: addr(ports[0]),
            submission: addr(ports[1]),
            submissions: addr(ports[2]),
            http: addr(ports[3]),
            carteiro,
            dir,
        }
    }
}

/// A running `carteiro serve` and its addresses.
pub struct Server {
    pub carteiro: Carteiro,
    /// Holds the config, the log and the data directory; removed on drop.
    pub dir: TempDir,
    pub relay: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub http: SocketAddr,
}

impl Server {
    /// `carteiro ARGS…` beside the server; panics unless it exits 0.
    pub async fn cli(&self, args: &[&str]) -> String {
        self.carteiro
            .run_ok(args)
            .await
            .unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Creates `account` and an SMTP login `user` / `password` in it.
    pub async fn add_login(&self, account: &str, user: &str, password: &str) {
        self.cli(&["account", "add", account]).await;
        self.cli(&["credential", "add", account, user, "--password", password])
            .await;
    }

    /// `carteiro queue list --json`, parsed.
    pub async fn queue(&self) -> Vec<Value> {
        let out = self.cli(&["queue", "list", "--json"]).await;
        match serde_json::from_str::<Value>(&out) {
            Ok(Value::Array(entries)) => entries,
            other => panic!("queue list --json gave {other:?}: {out}"),
        }
    }

    /// Polls `queue list --json` until `done` holds for it; panics with the
    /// last listing and the server log when `WAIT` passes first.
    pub async fn wait_queue(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let queue = self.queue().await;
            if done(&queue) {
                return queue;
            }
            if Instant::now() >= deadline {
                panic!(
                    "queue never reached: {what}\nlast listing: {queue:#?}\nlog:\n{}",
                    self.carteiro.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        self.carteiro.log()
    }
}

/// A recording sink on 127.0.0.1 answering 250 to everything.
pub async fn sink() -> SmtpSink {
    SmtpSink::builder().start().await
}

/// Runs `program args…` to completion (at most a minute), never blocking
/// the runtime the sinks run on.
pub async fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await.expect("writing stdin");
        drop(pipe);
    }
    tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} still running after {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|err| panic!("{program} {args:?}: {err}"))
}

/// What swaks printed (the whole dialogue) and whether it exited 0.
pub struct Swaks {
    pub ok: bool,
    pub transcript: String,
}

impl Swaks {
    /// Whether the server sent a reply line starting with `prefix`
    /// (`"535 5.7.8"`), over plain text or TLS.
    pub fn saw(&self, prefix: &str) -> bool {
        self.transcript.lines().any(|line| {
            let line = line.trim_start();
            ["<-", "<~", "<**", "<~*"].iter().any(|mark| {
                line.strip_prefix(mark)
                    .is_some_and(|rest| rest.trim_start().starts_with(prefix))
            })
        })
    }
}

/// The message without the DKIM-Signature fields at its top.
pub fn skip_dkim_signatures(mut data: &[u8]) -> &[u8] {
    while data.starts_with(b"DKIM-Signature:") {
        let mut end = 0;
        loop {
            let Some(pos) = data[end..].windows(2).position(|w| w == b"\r\n") else {
                return data;
            };
            end += pos + 2;
            if !matches!(data.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        data = &data[end..];
    }
    data
}

/// Runs swaks with `args` (the server and message options).
pub async fn swaks(args: &[&str]) -> Swaks {
    let output = run("swaks", args, None).await;
    let mut transcript = String::from_utf8_lossy(&output.stdout).into_owned();
    transcript.push_str(&String::from_utf8_lossy(&output.stderr));
    Swaks {
        ok: output.status.success(),
        transcript,
    }
}

/// Splits a message as the sink received it into our `Received:` field
/// (unfolded) and everything after it and the `X-Carteiro-Id:` field that
/// follows it, checking both are ours and first after any DKIM-Signature
/// fields Carteiro added.
pub fn split_received(data: &[u8]) -> (String, &[u8]) {
    let data = skip_dkim_signatures(data);
    assert!(
        data.starts_with(b"Received: "),
        "message does not start with a Received field: {}",
        String::from_utf8_lossy(data)
    );
    let mut end = 0;
    loop {
        let Some(pos) = data[end..].windows(2).position(|w| w == b"\r\n") else {
            panic!("unterminated Received field");
        };
        end += pos + 2;
        if !matches!(data.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    let field = String::from_utf8_lossy(&data[..end])
        .replace("\r\n", "")
        .replace('\t', " ");
    assert!(
        field.contains(&format!("by {HOSTNAME} (Carteiro)")),
        "the first Received field is not Carteiro's: {field}"
    );
    // Then our reference header: complaints name the message by it.
    let rest = &data[end..];
    assert!(
        rest.starts_with(b"X-Carteiro-Id: "),
        "no X-Carteiro-Id after our Received field: {}",
        String::from_utf8_lossy(rest)
    );
    let line = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a terminated X-Carteiro-Id field");
    (field, &rest[line + 2..])
}

/// Unfolds header-style text (CRLF followed by white space) for searching.
pub fn unfold(text: &str) -> String {
    text.replace("\r\n ", " ").replace("\r\n\t", " ")
}

/// The recipients of a `queue list --json` entry.
pub fn recipients(entry: &Value) -> &[Value] {
    entry["recipients"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Polls `check` until it returns `Some`, at most `WAIT`; panics with
/// `what` otherwise.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`eventually`] with an asynchronous check (an HTTP request...).
pub async fn eventually_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the sink accepted `n` recipients in all (over any number of
/// messages) and returns its messages.
pub async fn wait_rcpts(sink: &SmtpSink, n: usize) -> Vec<carteiro_testkit::ReceivedMessage> {
    let deadline = Instant::now() + WAIT;
    loop {
        let messages = sink.messages();
        if messages.iter().map(|m| m.rcpt_to.len()).sum::<usize>() >= n {
            return messages;
        }
        if Instant::now() >= deadline {
            let seen: Vec<_> = messages
                .iter()
                .map(|m| (&m.mail_from, &m.rcpt_to))
                .collect();
            panic!("sink: expected {n} recipients within {WAIT:?}, got {seen:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
