//! One message as the sink recorded it, with helpers for test assertions.

/// A message the sink accepted at end-of-data (or the last BDAT chunk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The argument of the last EHLO or HELO on the connection.
    pub helo: String,
    /// The reverse path without angle brackets (`""` for the null sender).
    pub mail_from: String,
    /// Raw MAIL parameters, e.g. `RET=HDRS`, `ENVID=x`, `SIZE=123`, `BODY=8BITMIME`.
    pub mail_params: Vec<String>,
    /// Accepted recipients only, in RCPT order.
    pub rcpt_to: Vec<String>,
    /// Raw RCPT parameters of each accepted recipient (same order as `rcpt_to`).
    pub rcpt_params: Vec<Vec<String>>,
    /// The content after dot-unstuffing (DATA) or as sent (BDAT), CRLF line
    /// endings as received, without the terminating `.` line.
    pub data: Vec<u8>,
    /// Whether STARTTLS was completed before the transaction.
    pub tls: bool,
    /// The user that authenticated on the connection, if any.
    pub auth_user: Option<String>,
    /// Index (from 0) of the TCP connection it came on, in accept order.
    pub connection: usize,
    /// Whether it was sent with BDAT rather than DATA.
    pub via_bdat: bool,
}

impl ReceivedMessage {
    /// The first header field called `name` (case-insensitive), unfolded and
    /// trimmed; only the header section is searched.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every header field called `name` (case-insensitive), in order,
    /// unfolded and trimmed.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.data);
        let mut found = Vec::new();
        let mut current: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation line belongs to the field being read, if any.
                if let Some(value) = current.as_mut() {
                    value.push_str(line);
                }
                continue;
            }
            if let Some(value) = current.take() {
                found.push(value.trim().to_string());
            }
            if let Some((field, value)) = line.split_once(':')
                && field.trim().eq_ignore_ascii_case(name)
            {
                current = Some(value.to_string());
            }
        }
        if let Some(value) = current {
            found.push(value.trim().to_string());
        }
        found
    }

    /// The whole received data (header section and body) as text, with
    /// invalid UTF-8 replaced.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The body only: what follows the first empty line, as text.
    pub fn content(&self) -> String {
        let text = self.body_str();
        match text.split_once("\r\n\r\n") {
            Some((_, body)) => body.to_string(),
            None => String::new(),
        }
    }

    /// The raw RCPT parameters given for `address` (case-insensitive), if it
    /// was accepted.
    pub fn params_of(&self, address: &str) -> Option<&[String]> {
        let index = self
            .rcpt_to
            .iter()
            .position(|rcpt| rcpt.eq_ignore_ascii_case(address))?;
        self.rcpt_params.get(index).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &str) -> ReceivedMessage {
        ReceivedMessage {
            helo: "client.test".into(),
            mail_from: "a@client.test".into(),
            mail_params: vec![],
            rcpt_to: vec!["b@sink.test".into()],
            rcpt_params: vec![vec!["NOTIFY=NEVER".into()]],
            data: data.as_bytes().to_vec(),
            tls: false,
            auth_user: None,
            connection: 0,
            via_bdat: false,
        }
    }

    #[test]
    fn header_is_case_insensitive_unfolded_and_stops_at_body() {
        let m =
            message("Subject: hello\r\n  world\r\nX-Tag: one\r\nx-tag: two\r\n\r\nX-Tag: body\r\n");
        assert_eq!(m.header("subject").as_deref(), Some("hello  world"));
        assert_eq!(m.headers("X-TAG"), vec!["one", "two"]);
        assert_eq!(m.header("Missing"), None);
        assert_eq!(m.content(), "X-Tag: body\r\n");
        assert_eq!(
            m.params_of("B@sink.test"),
            Some(&["NOTIFY=NEVER".to_string()][..])
        );
    }
}
