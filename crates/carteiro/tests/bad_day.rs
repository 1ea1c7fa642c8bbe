//! A bad day on the Internet: a client forging log lines through its AUTH
//! username, password and API key guessers, and an operator whose umask and
//! data directory let every local user read queued mail. The logs stay one
//! line per event and actionable (the client IP, in the form of the fail2ban
//! filter docs/operations.md ships), guessers get throttled, and files stay
//! private.

mod common;

use common::{Server, Setup, python_json};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A username that tries to end the log line, forge another one and
/// repaint the terminal.
const FORGED_USER: &str = "mallory\r\n2026-01-01T00:00:00.000000Z  INFO smtp login ip=192.0.2.1 user=\"admin\"\x1b[2K\x1b[31m";

fn operations_md() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md")
}

/// A script that runs the binary under test with `umask` and extra global
/// `flags`.
fn wrapper(dir: &Path, umask: &str, flags: &str) -> PathBuf {
    let path = dir.join("carteiro-wrapper.sh");
    let script = format!(
        "#!/bin/sh\numask {umask}\nexec {:?} {flags} \"$@\"\n",
        common::bin().display().to_string()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Applies the `which`-th fail2ban filter of docs/operations.md (0: text
/// logs, 1: JSON logs) to the server's log as fail2ban does (the date cut
/// out by `datepattern`, then `failregex` with `<HOST>`); returns the
/// matching lines with the host each names.
async fn fail2ban_hits(server: &Server, which: usize) -> Vec<(String, String)> {
    let out = python_json(&format!(
        r##"
import re
doc = open({doc:?}).read()
filters = [b for b in re.findall(r"```ini\n(.*?)```", doc, re.S) if "failregex" in b]
conf = filters[{which}]
datepattern = re.search(r"^datepattern = (.*)$", conf, re.M).group(1)
section = re.search(r"^failregex = (.*?)(?=^\S|\Z)", conf, re.M | re.S).group(1)
failregexes = [l.strip() for l in section.splitlines() if l.strip() and not l.strip().startswith("#")]
date = datepattern.replace("%%", "%")
for k, v in {{"%Y": r"\d{{4}}", "%m": r"\d{{2}}", "%d": r"\d{{2}}", "%H": r"\d{{2}}",
             "%M": r"\d{{2}}", "%S": r"\d{{2}}", "%f": r"\d+", "%z": r"(?:Z|[+-]\d{{2}}:?\d{{2}})"}}.items():
    date = date.replace(k, v)
date = re.compile(date)
fails = [re.compile(r.replace("<HOST>", r"(?P<host>[0-9A-Fa-f:.]+)")) for r in failregexes]
hits = []
for line in open({log:?}, encoding="utf-8", errors="replace").read().splitlines():
    m = date.search(line)
    if not m:
        continue
    rest = line[:m.start()] + line[m.end():]
    for f in fails:
        h = f.search(rest)
        if h:
            hits.append([line, h.group("host")])
            break
done(hits)
"##,
        doc = operations_md().display().to_string(),
        log = server.dir.path().join("carteiro.log").display().to_string(),
    ))
    .await;
    out.as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            (
                hit[0].as_str().unwrap().to_owned(),
                hit[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// AUTH PLAIN as `user` with a wrong password over the plain submission
/// port; returns the reply.
async fn forged_login(server: &Server) -> Value {
    python_json(&format!(
        r#"
import base64
c = Raw({port})
c.reply()
c.cmd("EHLO client.test")
token = base64.b64encode(b"\0" + {user}.encode() + b"\0not-the-password").decode()
auth = c.cmd("AUTH PLAIN " + token)
c.cmd("QUIT")
done(auth)
"#,
        port = server.submission.port(),
        user = serde_json::to_string(FORGED_USER).unwrap(),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_auth_username_is_one_escaped_line_fail2ban_can_act_on() {
    let server = Setup::new()
        .smtp("allow_auth_without_tls = true")
        .start()
        .await;
    server.add_login("acme", "alice", "right-password").await;
    let auth = forged_login(&server).await;
    assert_eq!(auth[0], 535, "{auth}");

    let log = server.log();
    assert!(
        !log.contains('\x1b') && !log.contains('\r'),
        "raw ESC or CR in the log:\n{log:?}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a forged line made it into the log:\n{log}"
    );
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("smtp auth failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    let line = failed[0];
    assert!(line.contains(" WARN "), "not at WARN: {line}");
    assert!(line.contains("ip=127.0.0.1 "), "no client IP: {line}");
    assert!(
        line.contains(r#"user="mallory\r\n2026-01-01T00:00:00.000000Z  INFO smtp login ip=192.0.2.1 user=\"admin\"\u{1b}[2K\u{1b}[31m""#),
        "username not escaped as expected: {line}"
    );

    // The shipped filter takes the client's IP, not the one in the username.
    let hits = fail2ban_hits(&server, 0).await;
    assert_eq!(
        hits,
        [(line.to_owned(), "127.0.0.1".to_owned())],
        "fail2ban filter hits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_escape_the_username_and_match_the_json_filter() {
    let dir = tempfile::tempdir().unwrap();
    let server = Setup::new()
        .smtp("allow_auth_without_tls = true")
        .program(&wrapper(dir.path(), "022", "--log-format json"))
        .start()
        .await;
    let auth = forged_login(&server).await;
    assert_eq!(auth[0], 535, "{auth}");
    let log = server.log();
    assert!(!log.contains('\x1b') && !log.contains('\r'), "{log:?}");
    let failed: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "smtp auth failed")
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["level"], "WARN");
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    let user = failed[0]["user"].as_str().unwrap();
    assert!(!user.chars().any(char::is_control), "{user:?}");
    assert!(user.starts_with(r#""mallory\r\n2026"#), "{user}");
    let hits = fail2ban_hits(&server, 1).await;
    assert_eq!(hits.len(), 1, "{hits:?}\n{log}");
    assert_eq!(hits[0].1, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_with_umask_000_and_an_open_data_directory() {
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // As systemd's StateDirectory= leaves it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Setup::new()
        .data_dir(&data)
        .program(&wrapper(outer.path(), "000", ""))
        .start()
        .await;
    // A sending domain puts DKIM private keys into the store.
    server.cli(&["account", "add", "acme"]).await;
    server.cli(&["domain", "add", "acme", "shop.example"]).await;

    let mode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o755, "the operator's directory is left alone");
    assert!(
        server
            .log()
            .contains("the data directory is accessible to group or others"),
        "no warning:\n{}",
        server.log()
    );
    let spool = data.join("spool");
    assert_eq!(mode(&spool), 0o700);
    let mut segments = 0;
    for entry in std::fs::read_dir(&spool).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        segments += usize::from(path.to_string_lossy().ends_with(".log"));
    }
    assert!(segments >= 1, "no segment in the spool");
    for name in ["carteiro.db", "carteiro.db-wal", "carteiro.db-shm"] {
        let path = data.join(name);
        if name == "carteiro.db" || path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
    assert_eq!(mode(&data.join("tls")), 0o700);
    assert_eq!(mode(&data.join("tls/key.pem")), 0o600);
    assert_eq!(mode(&data.join("control.sock")), 0o600);
    // The CLI still reaches the server through it.
    server.cli(&["queue", "list"]).await;
}

/// `GET /api/v1/events` with `key` from the local address `source`: status,
/// `Retry-After` and body.
const HTTP_HELPER: &str = r#"
import http.client
def get(port, source, key):
    c = http.client.HTTPConnection("127.0.0.1", port, source_address=(source, 0), timeout=20)
    c.request("GET", "/api/v1/events", headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return [r.status, r.getheader("Retry-After"), body]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guessing_gets_429_while_the_right_key_works_elsewhere() {
    let server = Setup::new()
        .http("auth_failure_window = \"5s\"")
        .start()
        .await;
    server.cli(&["account", "add", "acme"]).await;
    let key = common::http::api_key(&server, "acme").await;
    let port = server.http.port();
    let out = python_json(&format!(
        r#"{HTTP_HELPER}
guesses = [get({port}, "127.0.0.1", "crt_guess%03d" % n) for n in range(25)]
right_here = get({port}, "127.0.0.1", {key:?})
right_elsewhere = get({port}, "127.0.0.2", {key:?})
done({{"guesses": guesses, "right_here": right_here, "right_elsewhere": right_elsewhere}})
"#
    ))
    .await;
    let statuses: Vec<u64> = out["guesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g[0].as_u64().unwrap())
        .collect();
    // The default limit, 20 wrong keys, then 429 before any key is checked.
    assert_eq!(statuses[..20], [401; 20], "{out:#}");
    assert_eq!(statuses[20..], [429; 5], "{out:#}");
    let throttled = &out["guesses"][24];
    let retry: u64 = throttled[1].as_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{throttled}");
    let body: Value = serde_json::from_str(throttled[2].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "too many failed authentications");
    assert_eq!(body["detail"]["retry_after"], retry);
    assert_eq!(out["right_here"][0], 429, "{out:#}");
    assert_eq!(out["right_elsewhere"][0], 200, "{out:#}");

    // Once the window is over the right key works from the guesser's IP too.
    common::eventually_async("the right key to work again from 127.0.0.1", || async {
        let again = python_json(&format!(
            "{HTTP_HELPER}\ndone(get({port}, \"127.0.0.1\", {key:?}))"
        ))
        .await;
        (again[0] == 200).then_some(())
    })
    .await;

    // One WARN line per wrong key (not per 429), each naming the IP, and
    // each one the fail2ban filter takes.
    let log = server.log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("api auth failed"))
        .collect();
    assert_eq!(failed.len(), 20, "{log}");
    assert!(
        failed
            .iter()
            .all(|l| l.contains(" WARN ") && l.contains("ip=127.0.0.1 ")),
        "{log}"
    );
    assert!(!log.contains("crt_guess"), "a key was logged:\n{log}");
    let hits = fail2ban_hits(&server, 0).await;
    assert_eq!(hits.len(), 20, "{hits:?}");
    assert!(hits.iter().all(|(_, host)| host == "127.0.0.1"), "{hits:?}");
}
