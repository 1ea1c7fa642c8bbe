//! A small lockstep SMTP client for load and failure tests, where each reply
//! code matters and Python would be too slow or too coarse.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Client {
    reader: BufReader<TcpStream>,
}

/// The last reply of a transaction: its code and its whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: u16,
    pub text: String,
}

impl Client {
    /// Connects, reads the greeting and says EHLO.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        let mut client = Client {
            reader: BufReader::new(stream),
        };
        let greeting = client.reply().await?;
        if greeting.code != 220 {
            return Err(std::io::Error::other(format!("greeting {greeting:?}")));
        }
        let ehlo = client.command("EHLO client.test\r\n").await?;
        if ehlo.code != 250 {
            return Err(std::io::Error::other(format!("EHLO {ehlo:?}")));
        }
        Ok(client)
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> std::io::Result<Outcome> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.len() < 4 || !line.is_char_boundary(3) {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            text.push_str(&line);
            if line.as_bytes()[3] == b' ' {
                let code = line[..3]
                    .parse()
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
                return Ok(Outcome { code, text });
            }
        }
    }

    /// Sends `text` (one or more CRLF-terminated lines) and reads one reply.
    pub async fn command(&mut self, text: &str) -> std::io::Result<Outcome> {
        self.reader.get_mut().write_all(text.as_bytes()).await?;
        self.reply().await
    }

    /// One transaction; returns the reply that decided it (the first refusal
    /// or the reply to the end of data). `body` is the message without the
    /// final dot and must not contain lines starting with a dot.
    pub async fn send(&mut self, from: &str, to: &str, body: &str) -> std::io::Result<Outcome> {
        let mail = self.command(&format!("MAIL FROM:<{from}>\r\n")).await?;
        if mail.code != 250 {
            return Ok(mail);
        }
        let rcpt = self.command(&format!("RCPT TO:<{to}>\r\n")).await?;
        if rcpt.code != 250 {
            self.command("RSET\r\n").await?;
            return Ok(rcpt);
        }
        let data = self.command("DATA\r\n").await?;
        if data.code != 354 {
            return Ok(data);
        }
        self.command(&format!("{body}.\r\n")).await
    }
}
