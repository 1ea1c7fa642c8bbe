//! The sink driven by real clients over loopback: raw TCP, rustls and swaks.

use super::*;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// A minimal SMTP client: sends raw text and reads whole (multi-line) replies.
struct Client<S> {
    stream: BufReader<S>,
}

impl Client<TcpStream> {
    async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        Client {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    /// STARTTLS already answered 220: hands the socket to rustls.
    async fn into_tls(self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        assert!(
            self.stream.buffer().is_empty(),
            "data after 220 to STARTTLS"
        );
        let connector = tokio_rustls::TlsConnector::from(crate::tls::insecure_client_config());
        let name = ServerName::try_from("sink.test").unwrap();
        let tls = connector
            .connect(name, self.stream.into_inner())
            .await
            .unwrap();
        Client {
            stream: BufReader::new(tls),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, text: &str) {
        self.stream
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .unwrap();
        self.stream.get_mut().flush().await.unwrap();
    }

    /// One reply as (code, lines joined with `\n`); code 0 at EOF.
    async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("reply within deadline")
                .unwrap();
            if n == 0 {
                return (0, lines.join("\n"));
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line[4..].trim_end().to_string());
            if line.as_bytes()[3] == b' ' {
                return (code, lines.join("\n"));
            }
        }
    }

    async fn cmd(&mut self, text: &str) -> (u16, String) {
        self.send(&format!("{text}\r\n")).await;
        self.reply().await
    }
}

async fn greeted(addr: SocketAddr) -> Client<TcpStream> {
    let mut client = Client::connect(addr).await;
    assert_eq!(client.reply().await.0, 220);
    assert_eq!(client.cmd("EHLO client.test").await.0, 250);
    client
}

#[tokio::test]
async fn records_message_params_and_unstuffs_dots() {
    let sink = SmtpSink::builder().start().await;
    let mut client = greeted(sink.addr()).await;
    let (code, _) = client
        .cmd("MAIL FROM:<a@client.test> RET=HDRS ENVID=abc SIZE=100 BODY=8BITMIME")
        .await;
    assert_eq!(code, 250);
    let (code, _) = client
        .cmd("RCPT TO:<B@sink.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@sink.test")
        .await;
    assert_eq!(code, 250);
    assert_eq!(client.cmd("DATA").await.0, 354);
    client
        .send("Subject: dots\r\n\r\n..leading dot\r\n..\r\nend\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.0, 250);
    assert_eq!(client.cmd("QUIT").await.0, 221);

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    let m = &messages[0];
    assert_eq!(m.helo, "client.test");
    assert_eq!(m.mail_from, "a@client.test");
    assert_eq!(
        m.mail_params,
        ["RET=HDRS", "ENVID=abc", "SIZE=100", "BODY=8BITMIME"]
    );
    assert_eq!(m.rcpt_to, ["B@sink.test"]);
    assert_eq!(
        m.rcpt_params,
        [["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;b@sink.test"]]
    );
    assert_eq!(m.data, b"Subject: dots\r\n\r\n.leading dot\r\n.\r\nend\r\n");
    assert_eq!(m.header("subject").as_deref(), Some("dots"));
    assert!(!m.tls && !m.via_bdat && m.auth_user.is_none());
    assert_eq!(
        (m.connection, sink.connections(), sink.transactions()),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            "no@sink.test",
            vec![SinkReply::new(550, "5.1.1 no such user")],
        )
        .start()
        .await;
    let mut client = greeted(sink.addr()).await;
    client
        .send(concat!(
            "MAIL FROM:<>\r\n",
            "RCPT TO:<one@sink.test>\r\n",
            "RCPT TO:<no@sink.test>\r\n",
            "RCPT TO:<two@sink.test>\r\n",
            "DATA\r\n",
        ))
        .await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(client.reply().await);
    }
    assert_eq!(
        codes.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
        [250, 250, 550, 250, 354]
    );
    assert_eq!(codes[2].1, "5.1.1 no such user");
    // The data, end of data and the next transaction in one write.
    client
        .send("Subject: x\r\n\r\nhi\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        .await;
    for want in [250, 250, 250, 221] {
        assert_eq!(client.reply().await.0, want);
    }
    let m = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert_eq!(m.mail_from, "");
    assert_eq!(m.rcpt_to, ["one@sink.test", "two@sink.test"]);
    assert_eq!(sink.rcpt_attempts("NO@sink.test"), 1);
}

#[tokio::test]
async fn recipient_replies_follow_the_script_across_attempts() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            "later@sink.test",
            vec![
                SinkReply::new(451, "4.2.0 try later"),
                SinkReply::new(452, "4.2.2 full"),
            ],
        )
        .start()
        .await;
    for want in [451, 452, 452] {
        let mut client = greeted(sink.addr()).await;
        assert_eq!(client.cmd("MAIL FROM:<a@client.test>").await.0, 250);
        assert_eq!(client.cmd("RCPT TO:<later@sink.test>").await.0, want);
        assert_eq!(client.cmd("DATA").await.0, 554, "DATA with no recipient");
        assert_eq!(client.cmd("QUIT").await.0, 221);
    }
    sink.wait_for_rcpt_attempts("later@sink.test", 3, WAIT)
        .await
        .unwrap();
    sink.set_rcpt_replies("later@sink.test", vec![SinkReply::new(250, "2.1.5 ok now")]);

    let mut client = greeted(sink.addr()).await;
    client.cmd("MAIL FROM:<a@client.test>").await;
    assert_eq!(client.cmd("RCPT TO:<later@sink.test>").await.0, 250);
    assert_eq!(client.cmd("DATA").await.0, 354);
    client.send("\r\nbody\r\n.\r\n").await;
    assert_eq!(client.reply().await.0, 250);
    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].connection, 3);
    assert_eq!(sink.connections(), 4);
    assert_eq!(sink.rcpt_attempts("later@sink.test"), 4);
}

#[tokio::test]
async fn refused_end_of_data_is_not_recorded() {
    let sink = SmtpSink::builder()
        .data_reply(vec![
            SinkReply::new(451, "4.3.0 local problem"),
            SinkReply::new(250, "2.0.0 ok"),
        ])
        .start()
        .await;
    let mut client = greeted(sink.addr()).await;
    for want in [451, 250] {
        client.cmd("MAIL FROM:<a@client.test>").await;
        client.cmd("RCPT TO:<b@sink.test>").await;
        client.cmd("DATA").await;
        client
            .send(&format!("Subject: {want}\r\n\r\nx\r\n.\r\n"))
            .await;
        assert_eq!(client.reply().await.0, want);
    }
    // A script set at run time answers the next transaction with its first reply.
    sink.set_data_reply(vec![
        SinkReply::new(554, "5.7.1 spam"),
        SinkReply::new(250, "2.0.0 ok"),
    ]);
    for want in [554, 250] {
        client.cmd("MAIL FROM:<a@client.test>").await;
        client.cmd("RCPT TO:<b@sink.test>").await;
        client.cmd("DATA").await;
        client
            .send(&format!("Subject: {want}\r\n\r\nx\r\n.\r\n"))
            .await;
        assert_eq!(client.reply().await.0, want);
    }
    let messages = sink.wait_for_messages(2, WAIT).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].header("Subject").as_deref(), Some("250"));
    assert_eq!(sink.transactions(), 4);
}

#[tokio::test]
async fn starttls_then_auth_is_required_before_mail() {
    let sink = SmtpSink::builder().auth("user", "secret").start().await;
    let mut client = Client::connect(sink.addr()).await;
    client.reply().await;
    let (_, ehlo) = client.cmd("EHLO client.test").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert_eq!(client.cmd("MAIL FROM:<a@client.test>").await.0, 530);
    assert_eq!(client.cmd("STARTTLS").await.0, 220);
    let mut client = client.into_tls().await;
    let (_, ehlo) = client.cmd("EHLO client.test").await;
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    // PLAIN with a wrong password, then LOGIN with the right one.
    let (code, _) = client.cmd("AUTH PLAIN AHVzZXIAd3Jvbmc=").await;
    assert_eq!(code, 535);
    assert_eq!(client.cmd("AUTH LOGIN").await, (334, "VXNlcm5hbWU6".into()));
    assert_eq!(client.cmd("dXNlcg==").await, (334, "UGFzc3dvcmQ6".into()));
    assert_eq!(client.cmd("c2VjcmV0").await.0, 235);
    client.cmd("MAIL FROM:<a@client.test>").await;
    client.cmd("RCPT TO:<b@sink.test>").await;
    client.cmd("DATA").await;
    client.send("Subject: tls\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(client.reply().await.0, 250);
    let m = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("user"));
}

#[tokio::test]
async fn bdat_chunks_are_recorded_as_sent() {
    let sink = SmtpSink::builder().chunking(true).start().await;
    let mut client = greeted(sink.addr()).await;
    client.cmd("MAIL FROM:<a@client.test>").await;
    client.cmd("RCPT TO:<b@sink.test>").await;
    let first = "Subject: chunks\r\n\r\n.dot stays\r\n";
    client
        .send(&format!("BDAT {}\r\n{first}", first.len()))
        .await;
    assert_eq!(client.reply().await.0, 250);
    client.send("BDAT 5 LAST\r\nend\r\n").await;
    assert_eq!(client.reply().await.0, 250);
    let m = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert!(m.via_bdat);
    assert_eq!(m.body_str(), format!("{first}end\r\n"));
}

#[tokio::test]
async fn unadvertised_extensions_are_refused() {
    let sink = SmtpSink::builder()
        .dsn(false)
        .smtputf8(false)
        .eightbitmime(false)
        .max_size(1000)
        .start()
        .await;
    let mut client = greeted(sink.addr()).await;
    for refused in [
        "MAIL FROM:<a@client.test> RET=FULL",
        "MAIL FROM:<a@client.test> SMTPUTF8",
        "MAIL FROM:<a@client.test> BODY=8BITMIME",
    ] {
        assert_eq!(client.cmd(refused).await.0, 555, "{refused}");
    }
    assert_eq!(
        client.cmd("MAIL FROM:<a@client.test> SIZE=2000").await.0,
        552
    );
    assert_eq!(client.cmd("MAIL FROM:<a@client.test> SIZE=10").await.0, 250);
    assert_eq!(
        client.cmd("RCPT TO:<b@sink.test> NOTIFY=NEVER").await.0,
        555
    );
    assert_eq!(
        client.cmd("BDAT 3 LAST").await.0,
        500,
        "BDAT bytes not read"
    );
}

#[tokio::test]
async fn refusing_greeting_closes_the_connection() {
    let sink = SmtpSink::builder()
        .greeting(SinkReply::new(421, "4.3.2 go away"))
        .start()
        .await;
    let mut client = Client::connect(sink.addr()).await;
    assert_eq!(client.reply().await, (421, "4.3.2 go away".into()));
    assert_eq!(client.reply().await.0, 0, "closed after the greeting");
}

#[tokio::test]
async fn wait_times_out_with_what_it_has_and_shutdown_closes_the_port() {
    let sink = SmtpSink::builder().start().await;
    let err = sink
        .wait_for_messages(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("got 0"), "{err}");
    let addr = sink.addr();
    sink.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn swaks_delivers_through_starttls_auth_and_pipelining() {
    let Ok(swaks) = which("swaks") else {
        eprintln!("swaks is not installed; skipping");
        return;
    };
    let sink = SmtpSink::builder().auth("user", "secret").start().await;
    let output = tokio::process::Command::new(swaks)
        .args(["--server", &sink.addr().to_string()])
        .args(["--from", "a@client.test", "--to", "b@sink.test,c@sink.test"])
        .args(["--ehlo", "swaks.test", "--tls", "--pipeline"])
        .args([
            "--auth",
            "LOGIN",
            "--auth-user",
            "user",
            "--auth-password",
            "secret",
        ])
        .args(["--header", "Subject: via swaks", "--body", "one\n.two\n"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "swaks failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let m = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert_eq!(m.helo, "swaks.test");
    assert_eq!(m.rcpt_to, ["b@sink.test", "c@sink.test"]);
    assert!(m.tls);
    assert_eq!(m.header("Subject").as_deref(), Some("via swaks"));
    assert!(m.body_str().contains("\r\n.two\r\n"), "{}", m.body_str());
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}
