//! Python clients: smtplib for scripted sessions and a small raw-socket
//! client for what smtplib will not send (bare LFs, BDAT). Scripts print one
//! JSON value on their last stdout line for the test to check.

use serde_json::Value;
use std::process::Output;

/// Helpers every script gets: `tls_context()` (no certificate checks: the
/// server's certificate is self-signed), and `Raw(port, tls=False)`, a raw
/// SMTP connection with `send(bytes|str)`, `reply() -> [code, text]`,
/// `cmd(line) -> [code, text]` and `drain() -> [[code, text]...]` (every
/// reply until the server closes).
const PRELUDE: &str = r#"
import json, smtplib, socket, ssl, sys

def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

class Raw:
    def __init__(self, port, tls=False):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls:
            sock = tls_context().wrap_socket(sock)
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed after %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return [int(lines[-1][:3]), "\n".join(lines)]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def drain(self):
        replies = []
        while True:
            try:
                replies.append(self.reply())
            except (EOFError, OSError):
                return replies

def done(value):
    print(json.dumps(value))
"#;

/// Runs `python3 -c PRELUDE+script`; the output is returned as is.
pub async fn python(script: &str) -> Output {
    let program = format!("{PRELUDE}\n{script}");
    super::run("python3", &["-c", &program], None).await
}

/// Runs the script, requires exit 0 and returns the JSON value of the last
/// stdout line (what the script passed to `done(...)`).
pub async fn python_json(script: &str) -> Value {
    let output = python(script).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python failed ({}):\n{stderr}\nstdout:\n{stdout}\nscript:\n{script}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|err| panic!("python printed no JSON ({err}): {stdout}\n{stderr}"))
}
