//! `carteiro suppression list|add|remove|history` beside a running server,
//! with the HTTP API (driven with curl) seeing and changing the same list.

mod common;

use common::http::Answer;
use common::{Server, Setup};
use serde_json::{Value, json};

async fn curl(server: &Server, method: &str, path: &str, key: &str, body: Option<&str>) -> Answer {
    common::http::curl(server, method, path, Some(key), body).await
}

/// Creates `account` with an API key; returns the key.
async fn account_with_key(server: &Server, account: &str) -> String {
    server.cli(&["account", "add", account]).await;
    let out = server.cli(&["apikey", "add", account]).await;
    out.lines()
        .find(|l| l.starts_with("crt_"))
        .unwrap_or_else(|| panic!("no key in: {out}"))
        .to_string()
}

/// `carteiro suppression list ACCOUNT --json`, parsed.
async fn cli_list(server: &Server, account: &str) -> Value {
    let out = server
        .cli(&["suppression", "list", account, "--json"])
        .await;
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("{err}: {out}"))
}

/// Runs the CLI expecting failure; returns its stderr, checked to be one line.
async fn cli_fails(server: &Server, args: &[&str]) -> String {
    let output = server.carteiro.run(args).await.expect("run carteiro");
    assert!(
        !output.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr
}

#[tokio::test]
async fn the_cli_and_the_api_share_one_list() {
    let server = Setup::new().start().await;
    let key = account_with_key(&server, "acme").await;
    let other_key = account_with_key(&server, "beta").await;

    let out = server
        .cli(&[
            "suppression",
            "add",
            "acme",
            "Bob@Example.COM",
            "--detail",
            "asked by phone",
        ])
        .await;
    assert!(
        out.contains("bob@example.com added to the suppression list of account acme"),
        "{out}"
    );
    let again = server
        .cli(&[
            "suppression",
            "add",
            "acme",
            "bob@example.com",
            "--reason",
            "unsubscribe",
        ])
        .await;
    assert!(
        again.contains("already on") && again.contains("manual"),
        "{again}"
    );

    // The API lists exactly what the CLI lists.
    let listed = cli_list(&server, "acme").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["address"], "bob@example.com");
    assert_eq!(listed[0]["reason"], "manual");
    assert_eq!(listed[0]["detail"], "asked by phone");
    let api = curl(&server, "GET", "/api/v1/suppressions", &key, None).await;
    assert_eq!(api.status, 200, "{}", api.body);
    assert_eq!(api.body["suppressions"], listed);
    let theirs = curl(&server, "GET", "/api/v1/suppressions", &other_key, None).await;
    assert_eq!(
        theirs.body["suppressions"],
        json!([]),
        "another account's list"
    );

    // An API addition shows in the CLI.
    let posted = curl(
        &server,
        "POST",
        "/api/v1/suppressions",
        &key,
        Some(r#"{"address": "carol@example.com", "reason": "unsubscribe"}"#),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let text = server.cli(&["suppression", "list", "acme"]).await;
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0][..2], ["bob@example.com", "manual"]);
    assert_eq!(rows[1][..2], ["carol@example.com", "unsubscribe"]);
    let unsubscribed = server
        .cli(&["suppression", "list", "acme", "--reason", "unsubscribe"])
        .await;
    assert_eq!(unsubscribed.lines().count(), 1, "{unsubscribed}");
    assert!(unsubscribed.starts_with("carol@example.com\t"));

    // A CLI removal is seen by the API at once.
    server
        .cli(&["suppression", "remove", "acme", "BOB@example.com"])
        .await;
    let gone = curl(
        &server,
        "GET",
        "/api/v1/suppressions/bob@example.com",
        &key,
        None,
    )
    .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(gone.body["error"], "address not suppressed");
    let deleted = curl(
        &server,
        "DELETE",
        "/api/v1/suppressions/carol@example.com",
        &key,
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(cli_list(&server, "acme").await, json!([]));

    // The history says who did what.
    let history = server
        .cli(&["suppression", "history", "acme", "--json"])
        .await;
    let history: Value = serde_json::from_str(&history).expect("history json");
    let summary: Vec<(String, String, String)> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap_or_default().to_string();
            (field("action"), field("address"), field("actor"))
        })
        .collect();
    let expected = [
        ("added", "bob@example.com", "cli"),
        ("added", "carol@example.com", "api"),
        ("removed", "bob@example.com", "cli"),
        ("removed", "carol@example.com", "api"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(summary, expected);
    let bob = server
        .cli(&["suppression", "history", "acme", "bob@example.com"])
        .await;
    let actions: Vec<&str> = bob
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(actions, ["added", "removed"], "{bob}");
}

#[tokio::test]
async fn mistakes_exit_non_zero_with_one_line() {
    let server = Setup::new().start().await;
    server.cli(&["account", "add", "acme"]).await;

    let unknown = cli_fails(&server, &["suppression", "list", "ghost"]).await;
    assert!(unknown.contains("no such account"), "{unknown}");
    let unknown = cli_fails(&server, &["suppression", "add", "ghost", "a@example.com"]).await;
    assert!(unknown.contains("no such account"), "{unknown}");
    let absent = cli_fails(
        &server,
        &["suppression", "remove", "acme", "nobody@example.com"],
    )
    .await;
    assert!(
        absent.contains("nobody@example.com is not on the suppression list"),
        "{absent}"
    );
    let invalid = cli_fails(&server, &["suppression", "add", "acme", "not-an-address"]).await;
    assert!(invalid.contains("invalid address"), "{invalid}");

    // Reasons Carteiro observes cannot be given by hand.
    let output = server
        .carteiro
        .run(&[
            "suppression",
            "add",
            "acme",
            "a@example.com",
            "--reason",
            "hard_bounce",
        ])
        .await
        .expect("run carteiro");
    assert!(!output.status.success());
    assert_eq!(
        server.cli(&["suppression", "list", "acme"]).await,
        "",
        "nothing was added"
    );
    assert!(
        server
            .cli(&["suppression", "history", "acme"])
            .await
            .is_empty()
    );
}
