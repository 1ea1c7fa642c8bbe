//! The runner driven against a small Python stand-in for `carteiro`, which
//! listens on the config's listen addresses like `serve` would.

use super::*;

const STAND_IN: &str = r#"#!/usr/bin/env python3
import socket, sys, tomllib, select
args = sys.argv[1:]
i = args.index("--config")
config_path = args[i + 1]
rest = args[:i] + args[i + 2:]
if rest[:1] != ["serve"]:
    if rest[:1] == ["fail"]:
        print("no such thing", file=sys.stderr)
        sys.exit(2)
    print(" ".join(rest), config_path)
    sys.exit(0)
config = tomllib.load(open(config_path, "rb"))
if config.get("crash"):
    print("refusing this config: crash = true", flush=True)
    sys.exit(3)
def walk(value, key, found):
    listen = key == "listen" or key.endswith("_listen")
    if isinstance(value, dict):
        for k, v in value.items():
            walk(v, k, found)
    elif isinstance(value, list):
        for v in value:
            walk(v, key, found)
    elif isinstance(value, str) and listen:
        host, port = value.rsplit(":", 1)
        found.append((host, int(port)))
found = []
walk(config, "", found)
sockets = []
for addr in found:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen()
    sockets.append(s)
print("listening on", found, flush=True)
while True:
    ready, _, _ = select.select(sockets, [], [])
    for s in ready:
        conn, _ = s.accept()
        conn.close()
"#;

/// Writes the stand-in into `dir`; `None` when python3 is missing.
fn stand_in(dir: &Path) -> Option<PathBuf> {
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_python {
        eprintln!("python3 is not installed; skipping");
        return None;
    }
    let path = dir.join("fake-carteiro");
    std::fs::write(&path, STAND_IN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(path)
}

fn config(relay: u16, http: u16) -> String {
    format!(
        "hostname = \"relay.test\"\n[smtp]\nrelay_listen = [\"127.0.0.1:{relay}\"]\n\
         [http]\nlisten = \"0.0.0.0:{http}\"\n[[delivery.routes]]\nrelay = \"127.0.0.1:1\"\n"
    )
}

#[test]
fn listen_addresses_come_from_listen_keys_only() {
    let addrs = listen_addresses(&config(2525, 8025)).unwrap();
    assert_eq!(
        addrs,
        [
            "127.0.0.1:2525".parse::<SocketAddr>().unwrap(),
            "127.0.0.1:8025".parse().unwrap()
        ]
    );
    assert!(listen_addresses("[smtp]\nrelay_listen = [\"nope\"]").is_err());
}

#[tokio::test]
async fn starts_runs_kills_restarts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = stand_in(dir.path()) else {
        return;
    };
    let (relay, http) = (free_port(), free_port());
    let mut carteiro = Carteiro::start(&bin, &config(relay, http), dir.path())
        .await
        .unwrap();
    TcpStream::connect(("127.0.0.1", relay)).await.unwrap();
    TcpStream::connect(("127.0.0.1", http)).await.unwrap();

    let out = carteiro.run_ok(&["account", "add", "acme"]).await.unwrap();
    assert!(out.starts_with("account add acme "), "{out}");
    assert!(out.trim_end().ends_with("carteiro.toml"), "{out}");
    let err = carteiro.run_ok(&["fail"]).await.unwrap_err();
    assert!(err.to_string().contains("no such thing"), "{err}");

    carteiro.kill9().await.unwrap();
    assert!(TcpStream::connect(("127.0.0.1", relay)).await.is_err());
    carteiro.restart().await.unwrap();
    TcpStream::connect(("127.0.0.1", relay)).await.unwrap();
    carteiro.restart().await.unwrap();

    let status = carteiro.stop().await.unwrap();
    assert!(!status.success(), "python dies of SIGTERM: {status}");
    assert_eq!(carteiro.log().matches("listening on").count(), 3);
    assert!(carteiro.pid().is_none());
}

#[tokio::test]
async fn early_exit_fails_start_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = stand_in(dir.path()) else {
        return;
    };
    let toml = format!("crash = true\n{}", config(free_port(), free_port()));
    let err = match Carteiro::start(&bin, &toml, dir.path()).await {
        Ok(_) => panic!("start should fail"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("exited") && err.contains("refusing this config"),
        "{err}"
    );

    let out = run_with_config(&bin, &toml, dir.path(), &["serve"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn free_ports_come_from_below_the_ephemeral_range_and_bind() {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    for &port in &ports {
        if ephemeral_low > 21_000 {
            assert!(
                (20_000..ephemeral_low).contains(&port),
                "{port} is not below the ephemeral range starting at {ephemeral_low}"
            );
        }
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port binds");
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 40, "random, not one port: {ports:?}");
}
