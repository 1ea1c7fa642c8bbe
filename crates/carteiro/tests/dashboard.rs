//! The web dashboard end to end: dashboard users made with the CLI, mail sent
//! through SMTP (swaks, authenticated submission), then the pages driven in
//! headless Chromium by `tests/browser/dashboard.mjs`: sign in, the overview's
//! totals and charts, the message search and a message's timeline with the
//! remote reply, a deferred message retried and deleted from the queue
//! page and the message page, sending domains added and their DNS checked
//! live against a DNS server of the test's own, an API key created and used with curl, a suppression added
//! in the page stopping a later send, users added and removed by an admin,
//! forged and viewer form posts refused, another account's pages 404,
//! logout, throttled logins. Screenshots of each page are kept under
//! `target/tmp/ui-screenshots/dashboard/`.

mod common;

use carteiro_testkit::dns::DnsFixture;
use common::dkim::{dkimpy_verify, records};
use common::http::{api_key, curl, wait_event};
use common::webhook_endpoint::Endpoint;
use common::{Setup, swaks};
use serde_json::{Value, json};

const PASSWORD: &str = "dashboard pass 1";

/// Most wrong logins per IP and per user in this test's window.
const MAX_FAILURES: u32 = 5;

/// Sends a message from orders@shop.test to `to` through submission (STARTTLS,
/// AUTH as shop-app) with swaks; panics unless it is accepted.
async fn submit(server: &common::Server, to: &str, subject: &str) {
    let out = swaks(&[
        "--server",
        &server.submission.to_string(),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "shop-app",
        "--auth-password",
        PASSWORD,
        "--from",
        "orders@shop.test",
        "--to",
        to,
        "--header",
        &format!("Subject: {subject}"),
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_add_list_and_remove_dashboard_users() {
    let server = Setup::new().start().await;
    server.cli(&["account", "add", "shop"]).await;
    let out = server
        .cli(&["user", "add", "Ops@Example.test", "--role", "admin"])
        .await;
    assert!(out.contains("user ops@example.test added: admin"), "{out}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password in {out}"));
    assert_eq!(generated.len(), 24, "{generated}");
    server
        .cli(&[
            "user",
            "add",
            "eve@shop.test",
            "--role",
            "viewer",
            "--account",
            "shop",
            "--password",
            PASSWORD,
        ])
        .await;

    let listed: Value =
        serde_json::from_str(&server.cli(&["user", "list", "--json"]).await).expect("json");
    let users: Vec<(&str, &str, Option<&str>)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap_or(""),
                u["role"].as_str().unwrap_or(""),
                u["account"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("eve@shop.test", "viewer", Some("shop")),
            ("ops@example.test", "admin", None)
        ]
    );
    let table = server.cli(&["user", "list"]).await;
    assert!(table.starts_with("EMAIL"), "{table}");
    assert!(
        !table.contains(PASSWORD) && !table.contains("argon2"),
        "{table}"
    );

    // Refusals name what is wrong and exit non-zero.
    for (args, wanted) in [
        (
            vec!["user", "add", "m@shop.test", "--role", "member"],
            "a member needs an account",
        ),
        (
            vec!["user", "add", "not an email", "--role", "admin"],
            "invalid address",
        ),
        (
            vec!["user", "add", "eve@shop.test", "--role", "admin"],
            "already exists",
        ),
        (vec!["user", "add", "x@shop.test", "--role", "root"], "root"),
        (
            vec!["user", "remove", "nobody@shop.test"],
            "no user nobody@shop.test",
        ),
    ] {
        let output = server.carteiro.run(&args).await.expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    let out = server.cli(&["user", "remove", "EVE@shop.test"]).await;
    assert!(out.contains("user EVE@shop.test removed"), "{out}");
    assert!(
        !server
            .cli(&["user", "list"])
            .await
            .contains("eve@shop.test"),
        "removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() {
    let Some(chromium) = common::browser::chromium() else {
        return;
    };
    let sink = common::sink().await;
    let endpoint = Endpoint::start("127.0.0.1:0".parse().expect("address"), 0).await;
    // Mail for slow.test goes to a port nothing listens on: it waits in the
    // queue, deferred, for the queue page and the message page's actions.
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], carteiro_testkit::free_port()));
    // A DNS server of the test's own: shop.test's records are published in
    // it (so its domain page shows them as ok); the EHLO name has an address
    // whose reverse DNS names it back.
    let dns = DnsFixture::builder()
        .a(common::HOSTNAME, "192.0.2.25".parse().expect("address"))
        .ptr("192.0.2.25".parse().expect("address"), common::HOSTNAME)
        .start()
        .await;
    let server = Setup::new()
        .nameserver(dns.addr())
        .route(&["slow.test"], closed)
        .route(&["*"], sink.addr())
        .http(&format!("auth_max_failures = {MAX_FAILURES}"))
        .http("auth_failure_window = \"10m\"")
        .extra("[webhooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_initial = \"1s\"\n")
        .start()
        .await;
    server.add_login("shop", "shop-app", PASSWORD).await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    for record in records(&server, "shop.test").await {
        let name = record["name"].as_str().expect("name");
        let value = record["value"].as_str().expect("value");
        match record["type"].as_str().expect("type") {
            "TXT" => dns.set_txt(name, value).await,
            "MX" => {
                let (preference, exchange) = value.split_once(' ').expect("MX value");
                dns.set_mx(name, preference.parse().expect("preference"), exchange)
                    .await;
            }
            other => panic!("unexpected record type {other}"),
        }
    }
    server.cli(&["account", "add", "other"]).await;
    for (email, role, account) in [
        ("admin@carteiro.test", "admin", None),
        ("viewer@shop.test", "viewer", Some("shop")),
        ("member@other.test", "member", Some("other")),
    ] {
        let mut args = vec!["user", "add", email, "--role", role, "--password", PASSWORD];
        if let Some(account) = account {
            args.extend(["--account", account]);
        }
        server.cli(&args).await;
    }

    // Mail through SMTP: three messages, one of them to the recipient the
    // browser looks for.
    let sends = [
        ("alice@dest.test", "Your order 1042 shipped"),
        ("bob@dest.test", "Weekly news"),
        ("carol@dest.test", "Weekly news"),
    ];
    for (to, subject) in sends {
        submit(&server, to, subject).await;
    }
    common::wait_rcpts(&sink, sends.len()).await;

    // What the browser should find: the message to alice, delivered, with
    // the sink's reply in its timeline.
    let key = api_key(&server, "shop").await;
    let found = curl(
        &server,
        "GET",
        "/api/v1/messages?recipient=alice@dest.test",
        Some(&key),
        None,
    )
    .await;
    let id = found.body["messages"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {}", found.body))
        .to_owned();
    let mut reply = String::new();
    for (to, _) in sends {
        let listed = curl(
            &server,
            "GET",
            &format!("/api/v1/messages?recipient={to}"),
            Some(&key),
            None,
        )
        .await;
        let message_id = listed.body["messages"][0]["id"].as_str().expect("id");
        let message = wait_event(&server, &key, message_id, "delivered").await;
        if message_id == id {
            reply = message["events"]
                .as_array()
                .expect("events")
                .iter()
                .find(|e| e["type"] == "delivered")
                .and_then(|e| e["details"]["reply"].as_str())
                .expect("a delivery reply")
                .to_owned();
        }
    }
    // The statistics rollups are written with the events: wait until the
    // API counts every delivery, as the overview will.
    common::eventually_async("stats count the deliveries", || async {
        let stats = curl(&server, "GET", "/api/v1/stats", Some(&key), None).await;
        (stats.body["totals"]["delivered"].as_u64() == Some(sends.len() as u64)).then_some(())
    })
    .await;

    let input = json!({
        "base": format!("http://{}", server.http),
        "shots": common::browser::screenshots_dir("dashboard"),
        "account": "shop",
        "sent": sends.len(),
        "recipient": "alice@dest.test",
        "subject": "Your order 1042 shipped",
        "message_id": id,
        "delivery_reply": reply,
        "max_failures": MAX_FAILURES,
        "api_key": key,
        "submission": server.submission.to_string(),
        "smtp": {"user": "shop-app", "password": PASSWORD},
        "from": "orders@shop.test",
        "suppress": "dave@dest.test",
        "webhook": endpoint.url(),
        "slow": "frank@slow.test",
        "admin": {"email": "admin@carteiro.test", "password": PASSWORD},
        "viewer": {"email": "viewer@shop.test", "password": PASSWORD},
        "member": {"email": "member@other.test", "password": PASSWORD},
    });
    let out = common::browser::run(&chromium, "dashboard.mjs", &input).await;
    assert!(out.contains("all dashboard steps passed"), "{out}");

    // The rotation made in the page: publish the new keys' records, activate
    // them with the CLI, and the next message is signed with them alone, and
    // verifies.
    for record in records(&server, "shop.test").await {
        if record["purpose"] == "dkim" {
            let name = record["name"].as_str().expect("name");
            dns.set_txt(name, record["value"].as_str().expect("value"))
                .await;
        }
    }
    let out = server.cli(&["domain", "activate", "shop.test"]).await;
    assert!(out.contains("shop.test now signs with crt"), "{out}");
    // The server picks the change up within its refresh interval (2 s):
    // send until a message comes signed by the new keys, a bounded number of
    // times, then check that one.
    let selectors = |message: &carteiro_testkit::ReceivedMessage| -> Vec<String> {
        message
            .headers("DKIM-Signature")
            .iter()
            .filter_map(|signature| {
                signature
                    .split(';')
                    .find_map(|tag| tag.trim().strip_prefix("s="))
                    .map(|s| s.trim().to_owned())
            })
            .collect()
    };
    let mut rotated = None;
    for attempt in 0..20 {
        let before = sink.messages().len();
        submit(
            &server,
            &format!("gina{attempt}@dest.test"),
            "Signed with the new keys",
        )
        .await;
        let message = common::wait_rcpts(&sink, before + 1)
            .await
            .last()
            .cloned()
            .expect("the message");
        // A rotation's selectors name the minute: crtYYYYMMDDHHMMr / e.
        if selectors(&message)
            .iter()
            .all(|s| s.len() == "crt202612061430r".len())
        {
            rotated = Some(message);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let message = rotated.expect("a message signed by the new keys within 10 s of activating them");
    assert_eq!(
        selectors(&message).len(),
        2,
        "two signatures, by the two new keys alone"
    );
    assert_eq!(
        dkimpy_verify(&message.data, &records(&server, "shop.test").await).await,
        [true, true]
    );

    // The test event sent from the page arrived, signed, of type "test".
    let test = endpoint
        .posts()
        .into_iter()
        .find(|post| post.events().iter().any(|e| e["type"] == "test"))
        .expect("the endpoint got the test event");
    assert!(
        test.header("x-carteiro-signature")
            .is_some_and(|s| s.starts_with("t=") && s.contains(",v1=")),
        "signed"
    );
    // The endpoint made in the page gets the events of mail sent after it:
    // the send to the address suppressed in the page.
    endpoint
        .wait(&server, "the suppressed send's event", |events| {
            events
                .iter()
                .any(|e| e["type"] == "suppressed" && e["recipient"] == "dave@dest.test")
        })
        .await;
}
