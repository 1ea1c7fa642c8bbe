//! The smarthost case with a real MTA as the client: a private Postfix
//! instance relays through Carteiro's submission listener with STARTTLS
//! (`smtp_tls_security_level = encrypt`) and SASL AUTH, and the message
//! reaches the destination behind Carteiro.
//!
//! The instance lives in the test's temporary directory with its own queue
//! and ports, and is stopped through its own master when the test ends; it
//! never touches the system's Postfix. Skipped (with a note) when Postfix is
//! not installed or the test does not run as root.

mod common;

use carteiro_testkit::free_port;
use common::{Setup, WAIT, python_json, split_received};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running private Postfix; `postfix -c DIR stop` when dropped.
struct Postfix {
    config_dir: PathBuf,
    maillog: PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.config_dir)
            .arg("stop")
            .output();
    }
}

impl Postfix {
    fn maillog(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }
}

fn postfix_usable() -> bool {
    let installed = Command::new("postconf")
        .arg("-d")
        .arg("mail_version")
        .output()
        .is_ok_and(|out| out.status.success());
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    installed && root
}

fn run_ok(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes main.cf and master.cf (as `bench/relay-bench.sh` does, plus SASL
/// and mandatory TLS towards the relay host) and starts the instance.
fn start_postfix(base: &Path, smtpd_port: u16, relayhost: u16, user: &str, pass: &str) -> Postfix {
    let config_dir = base.join("etc");
    let spool = base.join("spool");
    let data = base.join("data");
    for dir in [&config_dir, &spool, &data] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // Postfix's processes drop to the postfix user; they must reach the
    // queue below the temporary directory.
    run_ok("chmod", &["755", &base.display().to_string()]);
    run_ok("chown", &["postfix:postfix", &data.display().to_string()]);
    let maillog = base.join("maillog");
    let base = base.display();
    let main_cf = format!(
        "compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = client.pf.test
mydomain = pf.test
myorigin = $myhostname
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
append_dot_mydomain = no
biff = no
maillog_file = {base}/maillog
maillog_file_prefixes = /var, /dev/stdout, {base}
relayhost = [127.0.0.1]:{relayhost}
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:{user}:{pass}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_tls_security_level = encrypt
"
    );
    let master_cf = format!(
        "127.0.0.1:{smtpd_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"
    );
    std::fs::write(config_dir.join("main.cf"), main_cf).unwrap();
    std::fs::write(config_dir.join("master.cf"), master_cf).unwrap();
    let dir = config_dir.display().to_string();
    run_ok("postfix", &["-c", &dir, "check"]);
    let postfix = Postfix {
        config_dir,
        maillog,
    };
    run_ok("postfix", &["-c", &dir, "start"]);
    postfix
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_relays_through_carteiro_with_starttls_and_auth() {
    if !postfix_usable() {
        eprintln!("postfix is not installed or the test is not root; skipping");
        return;
    }
    let sink = common::sink().await;
    // The smarthost case: the office's machines send from any domain, so
    // its account is allowed to send unsigned mail for domains it does not own.
    let server = Setup::new()
        .route(&["*"], sink.addr())
        .extra("[domains]\nallow_unowned_from = [\"default\", \"office\"]\n")
        .start()
        .await;
    server.add_login("office", "pf-relay", "pf-secret-1").await;

    let base = tempfile::tempdir().unwrap();
    let smtpd_port = free_port();
    let postfix = start_postfix(
        base.path(),
        smtpd_port,
        server.submission.port(),
        "pf-relay",
        "pf-secret-1",
    );

    // Hand the message to Postfix; polling the greeting covers its start-up.
    let reply = python_json(&format!(
        r#"
import time
deadline = time.time() + 20
while True:
    try:
        s = smtplib.SMTP("127.0.0.1", {smtpd_port}, timeout=20)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
s.ehlo("app.pf.test")
refused = s.sendmail("app@sender.test", ["bob@dest.test"],
    b"From: app@sender.test\r\nTo: bob@dest.test\r\nSubject: via postfix\r\n\r\nsmarthost body\r\n")
s.quit()
done(refused)
"#
    ))
    .await;
    assert_eq!(reply, serde_json::json!({}));

    let messages = match sink.wait_for_messages(1, WAIT).await {
        Ok(messages) => messages,
        Err(err) => panic!(
            "{err}\npostfix log:\n{}\ncarteiro log:\n{}",
            postfix.maillog(),
            server.log()
        ),
    };
    let message = &messages[0];
    assert_eq!(message.mail_from, "app@sender.test");
    assert_eq!(message.rcpt_to, ["bob@dest.test"]);
    assert_eq!(message.header("Subject").as_deref(), Some("via postfix"));
    let (received, rest) = split_received(&message.data);
    assert!(
        received.contains("from client.pf.test") && received.contains("with ESMTPSA"),
        "Postfix came over TLS with AUTH: {received}"
    );
    assert!(
        String::from_utf8_lossy(rest).starts_with("Received: "),
        "Postfix's own Received field follows ours"
    );
    assert!(message.content().contains("smarthost body"));
    assert!(
        server.log().contains(r#"user="pf-relay""#),
        "the login is logged:\n{}",
        server.log()
    );
}
