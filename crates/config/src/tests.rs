//! Whole-file tests: the documented example, defaults, and that every kind
//! of mistake is refused with the dotted key and its line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Config, ConfigError, RelayTarget, TlsMode};

const INTERFACE_EXAMPLE: &str = include_str!("../testdata/interface-example.toml");
const EVERY_KEY: &str = include_str!("../testdata/every-key.toml");

fn parse(text: &str) -> Config {
    match Config::from_toml_str(text, None) {
        Ok(config) => config,
        Err(err) => panic!("refused: {err}\n{text}"),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Asserts that `text` is refused, naming `key`, with `fragment` in the
/// message, and returns the error for further checks.
fn refused(text: &str, key: &str, fragment: &str) -> ConfigError {
    let err = match Config::from_toml_str(text, None) {
        Ok(config) => panic!("accepted {text:?} as {config:?}"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert_eq!(err.key(), Some(key), "{message}");
    assert!(message.contains(key), "key {key} not in: {message}");
    assert!(message.contains(fragment), "{fragment:?} not in: {message}");
    assert!(!message.contains('\n'), "messages are one line: {message}");
    err
}

fn line_of(err: &ConfigError) -> Option<usize> {
    err.location().and_then(|location| location.line)
}

#[test]
fn interface_example_parses() {
    let config = parse(INTERFACE_EXAMPLE);
    assert_eq!(config.hostname, "relay.carteiro.test");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/carteiro"));
    assert_eq!(config.smtp.relay_listen, [addr("127.0.0.1:2525")]);
    assert_eq!(config.smtp.submission_listen, [addr("127.0.0.1:2587")]);
    assert_eq!(config.smtp.submissions_listen, [addr("127.0.0.1:2465")]);
    assert!(config.smtp.trusted_networks.is_empty());
    assert_eq!(config.smtp.max_message_size, 50_000_000);
    assert_eq!(
        (&config.smtp.tls_cert, &config.smtp.tls_key),
        (&None, &None)
    );
    assert_eq!(config.http.listen, addr("127.0.0.1:8025"));
    assert_eq!(config.http.public_url, "http://127.0.0.1:8025");
    assert!(config.dns.nameservers.is_empty());
    assert_eq!(config.delivery.smtp_port, 25);
    assert_eq!(config.delivery.max_age, Duration::from_secs(5 * 86_400));
    assert_eq!(config.delivery.routes.len(), 1);
    let route = &config.delivery.routes[0];
    assert_eq!(route.domains, ["sink.test"]);
    let relay = RelayTarget {
        host: "127.0.0.1".into(),
        port: 2526,
    };
    assert_eq!(route.relay.as_ref(), Some(&relay));
    assert_eq!((&route.auth_username, &route.auth_password), (&None, &None));
    assert_eq!(route.tls, TlsMode::Opportunistic);
    assert_eq!(
        config.delivery.route_for("SINK.test").map(|r| &r.domains),
        Some(&route.domains)
    );
    assert!(config.delivery.route_for("example.com").is_none());
    assert!(config.is_local_domain("Relay.Carteiro.Test"));
    assert!(!config.is_local_domain("sink.test"));
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(parse(""), Config::default());
    assert_eq!(
        parse("# nothing\n\n[smtp]\n[delivery]\n"),
        Config::default()
    );
    let defaults = Config::default();
    assert_eq!(defaults.data_dir, PathBuf::from("./carteiro-data"));
    assert!(
        crate::is_host_name(&defaults.hostname),
        "{}",
        defaults.hostname
    );
    assert_eq!(defaults.smtp.max_message_size, 50_000_000);
    assert_eq!(defaults.smtp.idle_timeout, Duration::from_secs(300));
    assert_eq!(defaults.smtp.command_timeout, Duration::from_secs(60));
    assert_eq!(defaults.smtp.min_data_rate, 1000);
    assert_eq!(defaults.smtp.max_connections_per_prefix, 200);
    assert_eq!(defaults.smtp.reserved_trusted_connections, None);
    assert_eq!(defaults.delivery.retry_max, Duration::from_secs(4 * 3600));
    assert_eq!(defaults.delivery.tls, TlsMode::Opportunistic);
    assert_eq!(defaults.http.public_url, "http://127.0.0.1:8025");
    assert_eq!(defaults.http.metrics_listen, None);
    assert_eq!(defaults.smtp.auth_user_max_failures, 5);
    assert_eq!(defaults.smtp.auth_user_max_delay, Duration::from_secs(60));
    assert_eq!(defaults.http.auth_max_failures, 20);
    assert_eq!(defaults.http.auth_failure_window, Duration::from_secs(60));
    assert!(defaults.store.keep_headers);
    assert!(!parse("[store]\nkeep_headers = false\n").store.keep_headers);
}

#[test]
fn every_key_parses_into_its_field() {
    let config = parse(EVERY_KEY);
    assert_eq!(config.hostname, "MX.Example.org");
    assert_eq!(config.spool.max_size, 2_000_000_000);
    assert_eq!(config.domains.allow_unowned_from, ["legacy", "crm"]);
    assert!(config.domains.is_bulk_account("Newsletter"));
    assert_eq!(config.domains.return_path_label, "mail-back");
    assert!(config.domains.allows_unowned_from("CRM"));
    assert_eq!(
        config.domains.return_path_domain("shop.test"),
        "mail-back.shop.test"
    );
    assert_eq!(config.spool.segment_size, 8 * 1024 * 1024);
    assert_eq!(config.data_dir, PathBuf::from("data"));
    assert_eq!(config.tracking.open_accounts, ["newsletter", "Shop"]);
    assert_eq!(config.tracking.click_accounts, ["shop"]);
    assert!(config.tracking.tracks_opens("shop") && config.tracking.tracks_clicks("SHOP"));
    assert!(
        config.tracking.tracks_opens("Newsletter") && !config.tracking.tracks_clicks("newsletter")
    );
    let smtp = &config.smtp;
    assert_eq!(smtp.relay_listen, [addr("0.0.0.0:25"), addr("[::]:25")]);
    assert!(smtp.submissions_listen.is_empty());
    let networks: Vec<String> = smtp
        .trusted_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(networks, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    assert!(smtp.is_trusted("192.0.2.7".parse().unwrap()));
    assert_eq!(smtp.max_message_size, 1_048_576);
    assert_eq!(smtp.tls_cert.as_deref(), Some(Path::new("certs/chain.pem")));
    assert_eq!(smtp.tls_key.as_deref(), Some(Path::new("certs/key.pem")));
    let counts = (
        smtp.max_recipients,
        smtp.max_line_length,
        smtp.max_connections,
        smtp.max_connections_per_ip,
        smtp.max_commands_before_mail,
        smtp.max_errors,
        smtp.auth_max_failures,
    );
    assert_eq!(counts, (50, 2000, 10, 2, 5, 3, 3));
    assert_eq!(smtp.idle_timeout, Duration::from_secs(5400));
    assert_eq!(smtp.command_timeout, Duration::from_secs(45));
    assert_eq!(smtp.min_data_rate, 2048);
    assert_eq!(smtp.max_connections_per_prefix, 4);
    assert_eq!(smtp.reserved_trusted_connections, Some(3));
    assert_eq!(smtp.reserved_trusted(), 3);
    assert_eq!(smtp.auth_failure_window, Duration::from_secs(3600));
    assert_eq!(smtp.auth_user_max_failures, 8);
    assert_eq!(smtp.auth_user_max_delay, Duration::from_secs(300));
    assert_eq!(smtp.default_account, "ops");
    assert_eq!(smtp.local_domains, ["bounces.example.org"]);
    assert!(smtp.allow_auth_without_tls);
    assert!(config.is_local_domain("mx.example.ORG"));
    assert!(config.is_local_domain("BOUNCES.example.org"));
    assert_eq!(config.http.listen, addr("[::1]:8080"));
    assert_eq!(config.http.public_url, "https://mail.example.org/carteiro");
    assert_eq!(config.http.metrics_listen, Some(addr("127.0.0.1:9090")));
    assert_eq!(config.http.auth_max_failures, 50);
    assert_eq!(config.http.auth_failure_window, Duration::from_secs(600));
    assert_eq!(
        config.dns.nameservers,
        [addr("127.0.0.1:5353"), addr("9.9.9.9:53")]
    );
    let delivery = &config.delivery;
    assert_eq!(delivery.smtp_port, 2525);
    let durations = [
        delivery.max_age,
        delivery.retry_initial,
        delivery.retry_max,
        delivery.connect_timeout,
        delivery.command_timeout,
        delivery.data_timeout,
        delivery.idle_connection_timeout,
    ];
    let seconds = [2 * 86_400, 30, 3600, 10, 60, 120, 0];
    assert_eq!(durations, seconds.map(Duration::from_secs));
    assert_eq!(
        (
            delivery.max_connections_per_destination,
            delivery.max_messages_per_connection,
            delivery.max_recipients_per_transaction
        ),
        (4, 10, 25)
    );
    assert_eq!(delivery.tls, TlsMode::Required);
    let provider = &delivery.routes[0];
    assert_eq!(provider.domains, ["example.com", "example.net"]);
    assert_eq!(
        provider.relay.as_ref().map(ToString::to_string).as_deref(),
        Some("smtp.provider.test:587")
    );
    assert_eq!(provider.auth_username.as_deref(), Some("user"));
    assert_eq!(provider.auth_password.as_deref(), Some("secret"));
    assert_eq!(provider.tls, TlsMode::Required);
    assert_eq!(
        delivery.route_for("EXAMPLE.com").map(|r| r.tls),
        Some(TlsMode::Required)
    );
    let fallback = delivery.route_for("anything.test").unwrap();
    assert_eq!(
        (fallback.relay.as_ref(), fallback.tls),
        (None, TlsMode::None)
    );
}

#[test]
fn unknown_keys_are_refused_with_their_dotted_key() {
    let err = refused(
        "hostname = \"a.test\"\nhostnme = \"b\"\n",
        "hostnme",
        "did you mean hostname?",
    );
    assert_eq!(line_of(&err), Some(2));
    assert!(
        err.to_string().starts_with("line 2:1: unknown key hostnme"),
        "{err}"
    );

    let err = refused(
        "[smtp]\nrelay_lisen = [\"127.0.0.1:25\"]\n",
        "smtp.relay_lisen",
        "unknown key smtp.relay_lisen, did you mean smtp.relay_listen? (expected one of: relay_listen, submission_listen,",
    );
    assert_eq!(line_of(&err), Some(2));

    let text = "[[delivery.routes]]\ndomains = [\"a.test\"]\n\n[[delivery.routes]]\ndomains = [\"b.test\"]\nrealy = \"x:25\"\n";
    let err = refused(
        text,
        "delivery.routes[1].realy",
        "did you mean delivery.routes[1].relay?",
    );
    assert_eq!(line_of(&err), Some(6));
    assert_eq!(
        err.suggestion().as_deref(),
        Some("delivery.routes[1].relay")
    );

    // Unrelated names get the list without a guess; dotted and inline keys too.
    let err = refused(
        "[http]\ncolour = 1\n",
        "http.colour",
        "(expected one of: listen, public_url, metrics_listen, auth_max_failures, auth_failure_window)",
    );
    assert!(!err.to_string().contains("did you mean"), "{err}");
    refused(
        "dns.servers = []\n",
        "dns.servers",
        "expected one of: nameservers",
    );
    refused(
        "delivery = { routes = [{ domains = [\"a.test\"], x = 1 }] }\n",
        "delivery.routes[0].x",
        "unknown key",
    );
    refused(
        "[logging]\nlevel = \"debug\"\n",
        "logging",
        "unknown key logging",
    );
}

#[test]
fn bad_values_name_their_key() {
    let err = refused(
        "[smtp]\nmax_message_size = \"50XB\"\n",
        "smtp.max_message_size",
        "invalid size \"50XB\"",
    );
    assert_eq!(line_of(&err), Some(2));
    refused(
        "[smtp]\nmax_message_size = -5\n",
        "smtp.max_message_size",
        "negative",
    );
    refused(
        "[spool]\nsegment_size = \"1KiB\"\n",
        "spool.segment_size",
        "at least 64KiB",
    );
    refused(
        "[spool]\nsegment_size = \"5GiB\"\n",
        "spool.segment_size",
        "at most 1GiB",
    );
    refused("[spool]\nmax_sise = 5\n", "spool.max_sise", "max_size");
    refused(
        "[domains]\nreturn_path_label = \"a.b\"\n",
        "domains.return_path_label",
        "not a DNS label",
    );
    let err = refused(
        "[tracking]\nopen_accounts = [\"shop\"]\nclick_accounts = [\"shop\", \" \"]\n",
        "tracking.click_accounts[1]",
        "not empty",
    );
    assert_eq!(line_of(&err), Some(3));
    refused(
        "[tracking]\nopen_accounts = \"shop\"\n",
        "tracking.open_accounts",
        "expected",
    );
    refused(
        "[tracking]\nopen_acounts = []\n",
        "tracking.open_acounts",
        "open_accounts",
    );
    refused(
        "[smtp]\nidle_timeout = \"5 minutes\"\n",
        "smtp.idle_timeout",
        "invalid duration \"5 minutes\"",
    );
    refused(
        "[smtp]\nidle_timeout = 300\n",
        "smtp.idle_timeout",
        "expected a duration such as \"30s\"",
    );
    refused(
        "[delivery]\nmax_age = \"5\"\n",
        "delivery.max_age",
        "missing unit",
    );
    refused(
        "[smtp]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
        "smtp.trusted_networks[1]",
        "invalid network \"10.0.0.0/33\"",
    );
    refused(
        "[smtp]\nrelay_listen = [\"localhost:25\"]\n",
        "smtp.relay_listen[0]",
        "invalid listen address \"localhost:25\"",
    );
    refused(
        "[smtp]\nsubmission_listen = \"127.0.0.1:587\"\n",
        "smtp.submission_listen",
        "expected a list",
    );
    refused(
        "[http]\nlisten = \"127.0.0.1\"\n",
        "http.listen",
        "expected IP:PORT",
    );
    refused(
        "[dns]\nnameservers = [\"dns.example\"]\n",
        "dns.nameservers[0]",
        "invalid nameserver",
    );
    refused("smtp = 3\n", "smtp", "expected a table");
    refused("hostname = 3\n", "hostname", "expected a string");
    refused(
        "[delivery]\nsmtp_port = 70000\n",
        "delivery.smtp_port",
        "expected a port number from 1 to 65535",
    );
    refused(
        "[smtp]\nmax_recipients = \"ten\"\n",
        "smtp.max_recipients",
        "expected a whole number",
    );
    refused(
        "[smtp]\nmax_errors = -1\n",
        "smtp.max_errors",
        "expected a whole number",
    );

    let routes = "[[delivery.routes]]\ndomains = [\"a.test\"]\n[[delivery.routes]]\ndomains = [\"b.test\"]\n";
    let err = refused(
        &format!("{routes}tls = \"strict\"\n"),
        "delivery.routes[1].tls",
        "delivery.routes[1].tls: expected one of \"none\", \"opportunistic\", \"required\", \"verify\", got \"strict\"",
    );
    assert_eq!(line_of(&err), Some(5));
    refused(
        &format!("{routes}tls = true\n"),
        "delivery.routes[1].tls",
        "expected one of \"none\"",
    );
    refused(
        &format!("{routes}relay = \"smtp.example.com\"\n"),
        "delivery.routes[1].relay",
        "missing port",
    );
    refused(
        &format!("{routes}relay = \"::1:25\"\n"),
        "delivery.routes[1].relay",
        "brackets",
    );
    refused("[delivery]\ntls = \"yes\"\n", "delivery.tls", "got \"yes\"");
}

#[test]
fn a_route_can_verify_its_smarthost_against_its_own_ca() {
    let config = parse(
        "[[delivery.routes]]\ndomains = [\"*\"]\nrelay = \"smtp.provider.test:587\"\n\
         tls = \"verify\"\nca_file = \"/etc/carteiro/provider-ca.pem\"\n",
    );
    let route = &config.delivery.routes[0];
    assert_eq!(route.tls, TlsMode::Verify);
    assert_eq!(
        route.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/carteiro/provider-ca.pem"))
    );
    refused(
        "[[delivery.routes]]\ndomains = [\"*\"]\nrelay = \"smtp.provider.test:587\"\n\
         tls = \"required\"\nca_file = \"/etc/ca.pem\"\n",
        "delivery.routes[0].ca_file",
        "only used with tls = \"verify\"",
    );
    refused(
        "[delivery]\ntls = \"verified\"\n",
        "delivery.tls",
        "\"verify\"",
    );
}

#[test]
fn semantic_errors_name_their_key() {
    refused("hostname = \"\"\n", "hostname", "must not be empty");
    refused("hostname = \"bad host\"\n", "hostname", "invalid host name");
    refused(
        "hostname = \"[127.0.0.1]\"\n",
        "hostname",
        "invalid host name",
    );
    refused("data_dir = \"\"\n", "data_dir", "must not be empty");
    refused(
        "[smtp]\nmax_message_size = 0\n",
        "smtp.max_message_size",
        "greater than 0",
    );
    refused(
        "[smtp]\nmax_message_size = \"2GiB\"\n",
        "smtp.max_message_size",
        "at most 1GiB",
    );
    refused(
        "[smtp]\nmax_errors = 0\n",
        "smtp.max_errors",
        "greater than 0",
    );
    refused(
        "[smtp]\nidle_timeout = \"0s\"\n",
        "smtp.idle_timeout",
        "longer than 0s",
    );
    refused(
        "[smtp]\ncommand_timeout = \"0s\"\n",
        "smtp.command_timeout",
        "longer than 0s",
    );
    refused(
        "[smtp]\ncommand_timeout = 60\n",
        "smtp.command_timeout",
        "expected a duration",
    );
    refused(
        "[smtp]\nauth_user_max_delay = \"0s\"\n",
        "smtp.auth_user_max_delay",
        "longer than 0s",
    );
    refused(
        "[smtp]\nauth_user_max_failures = 0\n",
        "smtp.auth_user_max_failures",
        "greater than 0",
    );
    refused(
        "[http]\nauth_max_failures = 0\n",
        "http.auth_max_failures",
        "greater than 0",
    );
    refused(
        "[http]\nauth_failure_window = \"0s\"\n",
        "http.auth_failure_window",
        "longer than 0s",
    );
    refused(
        "[smtp]\nmin_data_rate = \"1KB/s\"\n",
        "smtp.min_data_rate",
        "invalid size",
    );
    refused(
        "[smtp]\nmax_connections_per_prefix = 0\n",
        "smtp.max_connections_per_prefix",
        "greater than 0",
    );
    let err = refused(
        "[smtp]\nmax_connections = 10\nreserved_trusted_connections = 10\n",
        "smtp.reserved_trusted_connections",
        "less than smtp.max_connections (10)",
    );
    assert_eq!(line_of(&err), Some(3));
    assert_eq!(
        parse("[smtp]\nmin_data_rate = 0\n").smtp.min_data_rate,
        0,
        "0 turns the rate check off"
    );
    refused(
        "[smtp]\ndefault_account = \" \"\n",
        "smtp.default_account",
        "must not be empty",
    );
    refused(
        "[smtp]\nlocal_domains = [\"ok.test\", \"not ok\"]\n",
        "smtp.local_domains[1]",
        "invalid domain",
    );

    let err = refused(
        "[smtp]\ntls_cert = \"c.pem\"\n",
        "smtp.tls_key",
        "required when smtp.tls_cert is set",
    );
    assert_eq!(line_of(&err), Some(2), "located at the key that needs it");
    refused(
        "[smtp]\ntls_cert = \"\"\ntls_key = \"k.pem\"\n",
        "smtp.tls_cert",
        "required when smtp.tls_key is set",
    );

    refused(
        "[smtp]\nrelay_listen = [\"127.0.0.1:2587\"]\n",
        "smtp.submission_listen[0]",
        "already used by smtp.relay_listen[0]",
    );
    refused(
        "[http]\nlisten = \"127.0.0.1:2465\"\n",
        "http.listen",
        "already used by smtp.submissions_listen[0]",
    );
    parse("[smtp]\nrelay_listen = [\"127.0.0.1:0\"]\nsubmission_listen = [\"127.0.0.1:0\"]\n");

    refused(
        "[http]\nmetrics_listen = \"9090\"\n",
        "http.metrics_listen",
        "invalid listen address",
    );
    refused(
        "[http]\nlisten = \"127.0.0.1:9090\"\nmetrics_listen = \"127.0.0.1:9090\"\n",
        "http.metrics_listen",
        "already used by http.listen",
    );
    assert_eq!(
        parse("[http]\nmetrics_listen = \"\"\n").http.metrics_listen,
        None
    );
    refused(
        "[http]\npublic_url = \"mail.example.com\"\n",
        "http.public_url",
        "must start with http:// or https://",
    );
    refused(
        "[http]\npublic_url = \"https://\"\n",
        "http.public_url",
        "must start with http://",
    );

    refused(
        "[delivery]\nsmtp_port = 0\n",
        "delivery.smtp_port",
        "greater than 0",
    );
    refused(
        "[delivery]\nconnect_timeout = \"0s\"\n",
        "delivery.connect_timeout",
        "longer than 0s",
    );
    refused(
        "[delivery]\nretry_initial = \"2h\"\nretry_max = \"1h\"\n",
        "delivery.retry_max",
        "shorter than delivery.retry_initial (2h)",
    );
    refused(
        "[delivery]\nmax_recipients_per_transaction = 0\n",
        "delivery.max_recipients_per_transaction",
        "greater than 0",
    );

    let err = refused(
        "[[delivery.routes]]\nrelay = \"a.test:25\"\n",
        "delivery.routes[0].domains",
        "at least one domain",
    );
    assert_eq!(line_of(&err), Some(1));
    refused(
        "[[delivery.routes]]\ndomains = []\n",
        "delivery.routes[0].domains",
        "at least one domain",
    );
    refused(
        "[[delivery.routes]]\ndomains = [\"a.test\", \"*.b.test\"]\n",
        "delivery.routes[0].domains[1]",
        "invalid domain \"*.b.test\"",
    );
    let route = "[[delivery.routes]]\ndomains = [\"a.test\"]\nrelay = \"smtp.a.test:587\"\n";
    let err = refused(
        &format!("{route}auth_username = \"u\"\n"),
        "delivery.routes[0].auth_password",
        "required when auth_username is set",
    );
    assert_eq!(line_of(&err), Some(4));
    refused(
        &format!("{route}auth_password = \"p\"\n"),
        "delivery.routes[0].auth_username",
        "required when auth_password is set",
    );
    refused(
        &format!("{route}auth_username = \"\"\nauth_password = \"p\"\n"),
        "delivery.routes[0].auth_username",
        "must not be empty",
    );
    refused(
        "[[delivery.routes]]\ndomains = [\"a.test\"]\nauth_username = \"u\"\nauth_password = \"p\"\n",
        "delivery.routes[0].auth_username",
        "needs relay",
    );
}

#[test]
fn syntax_errors_give_the_line() {
    let err = Config::from_toml_str("hostname = \"a.test\"\n[smtp\n", None).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert_eq!(line_of(&err), Some(2));
    assert!(err.to_string().starts_with("line 2:"), "{err}");
    let err =
        Config::from_toml_str("hostname = \"a.test\"\nhostname = \"b.test\"\n", None).unwrap_err();
    assert!(err.to_string().contains("duplicate key hostname"), "{err}");
    assert_eq!(line_of(&err), Some(2));
}

#[test]
fn files_are_read_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("carteiro.toml");
    std::fs::write(&path, INTERFACE_EXAMPLE).unwrap();
    assert_eq!(Config::from_file(&path).unwrap(), parse(INTERFACE_EXAMPLE));

    std::fs::write(&path, "[smtp]\n\nmax_message_size = \"50XB\"\n").unwrap();
    let message = Config::from_file(&path).unwrap_err().to_string();
    let expected = format!(
        "{}:3:20: smtp.max_message_size: invalid size \"50XB\"",
        path.display()
    );
    assert!(message.starts_with(&expected), "{message}");

    let missing = dir.path().join("missing.toml");
    let err = Config::from_file(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.toml"), "{err}");
}
