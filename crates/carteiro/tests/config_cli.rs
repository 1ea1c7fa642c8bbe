//! `carteiro config check FILE`: a wrong key is named with its dotted path
//! and the exit status says so; a good file passes. `serve` refuses a bad
//! file the same way instead of starting on half a configuration.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn check(dir: &Path, name: &str, toml: &str) -> Output {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    Command::new(common::bin())
        .args(["config", "check"])
        .arg(&path)
        .current_dir(dir)
        .output()
        .expect("running carteiro config check")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn misspelt_keys_are_named_with_their_dotted_path() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[smtp]\nmax_recipents = 5\n", "smtp.max_recipents"),
        ("hostnme = \"relay.test\"\n", "hostnme"),
        (
            "[delivery]\nretry_inital = \"1m\"\n",
            "delivery.retry_inital",
        ),
        (
            "[[delivery.routes]]\ndomains = [\"*\"]\nrelay = \"127.0.0.1:25\"\n\n\
             [[delivery.routes]]\ndomains = [\"x.test\"]\nrelay = \"127.0.0.1:25\"\ntsl = \"required\"\n",
            "delivery.routes[1].tsl",
        ),
        // A known key with a bad value is named too.
        ("[delivery]\ntls = \"sometimes\"\n", "delivery.tls"),
        (
            "[smtp]\nmax_message_size = \"lots\"\n",
            "smtp.max_message_size",
        ),
    ];
    for (i, (toml, key)) in cases.iter().enumerate() {
        let output = check(dir.path(), &format!("bad-{i}.toml"), toml);
        assert!(
            !output.status.success(),
            "{key}: accepted\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr(&output).contains(key),
            "stderr does not name {key}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_good_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(
        dir.path(),
        "good.toml",
        "hostname = \"relay.example.test\"\ndata_dir = \"./data\"\n\n\
         [smtp]\nrelay_listen = [\"127.0.0.1:2525\"]\ntrusted_networks = [\"10.0.0.0/8\"]\n\
         max_message_size = \"25MB\"\nmax_recipients = 50\n\n\
         [dns]\nnameservers = [\"127.0.0.1:53\"]\n\n\
         [delivery]\nretry_initial = \"1m\"\nretry_max = \"4h\"\ntls = \"opportunistic\"\n\n\
         [[delivery.routes]]\ndomains = [\"*\"]\nrelay = \"smtp.upstream.test:587\"\n\
         auth_username = \"user\"\nauth_password = \"secret\"\ntls = \"required\"\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ok"),
        "{output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = carteiro_testkit::process::run_with_config(
        &common::bin(),
        "[smtp]\nrelay_listen = [\"127.0.0.1:0\"]\nmax_recipents = 5\n",
        dir.path(),
        &["serve"],
    )
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("smtp.max_recipents"),
        "{}",
        stderr(&output)
    );
}
