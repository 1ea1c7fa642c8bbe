//! TLS on the listeners: only TLS 1.2 and 1.3 are spoken, on implicit TLS
//! (submissions) and after STARTTLS (submission) alike.

mod common;

use common::{Setup, python_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_are_accepted() {
    let server = Setup::new().start().await;
    let result = python_json(&format!(
        r#"
import warnings
warnings.simplefilter("ignore", DeprecationWarning)

def attempt(version, starttls):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = getattr(ssl.TLSVersion, version)
    ctx.minimum_version = v
    ctx.maximum_version = v
    # Let this client offer old versions; the server must be the one to say no.
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    port = {submission} if starttls else {submissions}
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if starttls:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO client.test\r\n")
            while f.readline()[3:4] == b"-":
                pass
            sock.sendall(b"STARTTLS\r\n")
            if not f.readline().startswith(b"220"):
                return "no STARTTLS"
        try:
            tls = ctx.wrap_socket(sock)
        except ssl.SSLError as e:
            return "refused: " + e.reason
        greeting = b"" if starttls else tls.recv(100)
        return "ok " + tls.version() + (" greeting" if greeting.startswith(b"220") or starttls else "")
    finally:
        sock.close()

done({{v + ("/starttls" if s else "/implicit"): attempt(v, s)
      for v in ("TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3") for s in (False, True)}})
"#,
        submission = server.submission.port(),
        submissions = server.submissions.port(),
    ))
    .await;
    let get = |key: &str| result[key].as_str().unwrap_or_default().to_string();
    for old in ["TLSv1", "TLSv1_1"] {
        for way in ["implicit", "starttls"] {
            let outcome = get(&format!("{old}/{way}"));
            // An alert means the server refused; a client-side refusal
            // would prove nothing.
            assert!(
                outcome.starts_with("refused") && outcome.contains("ALERT"),
                "{old} over {way} must be refused by the server: {outcome} ({result})"
            );
        }
    }
    assert_eq!(get("TLSv1_2/implicit"), "ok TLSv1.2 greeting", "{result}");
    assert_eq!(get("TLSv1_3/implicit"), "ok TLSv1.3 greeting", "{result}");
    assert_eq!(get("TLSv1_2/starttls"), "ok TLSv1.2 greeting", "{result}");
    assert_eq!(get("TLSv1_3/starttls"), "ok TLSv1.3 greeting", "{result}");
}
