//! `carteiro queue list|show|retry|delete`: through the running server's
//! control socket when it runs, else directly on the spool.

use crate::cli::{QueueCommand, RetryArgs};
use crate::control::{self, Request, Response};
use crate::layout::DataDir;
use anyhow::{Context, bail};
use carteiro_config::Config;
use carteiro_delivery::engine::{QueueEntry, now_millis};
use carteiro_mail::MessageId;
use carteiro_queue::{QueuedMessage, RcptStatus};
use carteiro_spool::{Spool, SpoolError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub async fn run(cmd: QueueCommand, config: &Config) -> anyhow::Result<()> {
    let data = DataDir::new(config);
    let request = match &cmd {
        QueueCommand::List { .. } => Request::List,
        QueueCommand::Show { id, .. } => Request::Show { id: parse_id(id)? },
        QueueCommand::Retry(RetryArgs { id, .. }) => Request::Retry {
            id: id.as_deref().map(parse_id).transpose()?,
        },
        QueueCommand::Delete { id } => Request::Delete { id: parse_id(id)? },
    };
    let response = match control::request(&data.control_socket(), &request).await? {
        Some(response) => response,
        None => offline(&data, config, &request)?,
    };
    if !response.ok {
        bail!(
            "{}",
            response.error.unwrap_or_else(|| "request failed".into())
        );
    }
    match cmd {
        QueueCommand::List { json } => {
            let entries: Vec<QueueEntry> = serde_json::from_value(response.data)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print_table(&entries);
            }
        }
        QueueCommand::Show { json, .. } => {
            let entry: QueueEntry = serde_json::from_value(response.data)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                print_entry(&entry);
            }
        }
        QueueCommand::Retry(_) => {
            let count: usize = serde_json::from_value(response.data)?;
            println!("{count} message(s) scheduled for immediate delivery");
        }
        QueueCommand::Delete { id } => println!("message {id} deleted"),
    }
    Ok(())
}

fn parse_id(text: &str) -> anyhow::Result<MessageId> {
    text.parse()
        .with_context(|| format!("{text:?} is not a message id"))
}

/// Acts on the spool directly when no server runs.
fn offline(data: &DataDir, config: &Config, request: &Request) -> anyhow::Result<Response> {
    let dir = data.spool();
    if !dir.exists() {
        let empty = match request {
            Request::List => serde_json::json!([]),
            Request::Retry { id: None } => serde_json::json!(0),
            _ => serde_json::Value::Null,
        };
        return Ok(response(!empty.is_null(), empty, request));
    }
    let (spool, recovered) = match Spool::open(&dir, crate::serve::spool_options(config)) {
        Ok(opened) => opened,
        Err(SpoolError::Locked(_)) => bail!(
            "the spool is in use by a running server that does not answer on {}",
            data.control_socket().display()
        ),
        Err(err) => return Err(err.into()),
    };
    let messages: Vec<QueuedMessage> = recovered
        .iter()
        .filter_map(|r| QueuedMessage::decode(r.id, &r.meta, &r.state).ok())
        .collect();
    let find = |id: MessageId| messages.iter().find(|m| m.id == id);
    let result = match request {
        Request::List => {
            let entries: Vec<QueueEntry> = messages.iter().map(QueueEntry::from).collect();
            response(true, serde_json::to_value(entries)?, request)
        }
        Request::Show { id } => match find(*id) {
            Some(m) => response(true, serde_json::to_value(QueueEntry::from(m))?, request),
            None => response(false, serde_json::Value::Null, request),
        },
        Request::Delete { id } => match find(*id) {
            Some(m) => {
                spool.remove(*id)?;
                response(true, serde_json::to_value(QueueEntry::from(m))?, request)
            }
            None => response(false, serde_json::Value::Null, request),
        },
        Request::Retry { id } => {
            let now = now_millis();
            let mut count = 0usize;
            for message in &messages {
                if id.is_some_and(|id| id != message.id) {
                    continue;
                }
                let mut message = message.clone();
                for state in &mut message.rcpts {
                    if state.status == RcptStatus::Pending {
                        state.next_attempt = now;
                    }
                }
                spool.set_state(message.id, message.encode_state())?;
                count += 1;
            }
            response(id.is_none() || count > 0, serde_json::json!(count), request)
        }
    };
    // Make the change durable before the process exits.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| runtime.block_on(spool.sync()))?;
    spool.close();
    Ok(result)
}

fn response(ok: bool, data: serde_json::Value, request: &Request) -> Response {
    let error = (!ok).then(|| match request {
        Request::Show { id } | Request::Delete { id } => {
            format!("message {id} is not in the queue")
        }
        Request::Retry { id: Some(id) } => format!("message {id} is not in the queue"),
        _ => "request failed".into(),
    });
    Response { ok, error, data }
}

fn time_text(millis: Option<u64>) -> String {
    millis
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn print_table(entries: &[QueueEntry]) {
    println!(
        "{:<26}  {:<9}  {:>8}  {:<20}  {:<30}  LAST REPLY",
        "ID", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "RECIPIENT"
    );
    for entry in entries {
        for rcpt in &entry.recipients {
            println!(
                "{:<26}  {:<9}  {:>8}  {:<20}  {:<30}  {}",
                entry.id,
                rcpt.state,
                rcpt.attempts,
                time_text(rcpt.next_attempt),
                rcpt.address,
                rcpt.last_reply.as_deref().unwrap_or("-")
            );
        }
    }
    let n: usize = entries.iter().map(|e| e.recipients.len()).sum();
    println!("{} message(s), {n} recipient(s)", entries.len());
}

fn print_entry(entry: &QueueEntry) {
    println!("id:        {}", entry.id);
    println!("account:   {}", entry.account);
    println!("sender:    <{}>", entry.sender);
    println!("size:      {} bytes", entry.size);
    println!("received:  {}", time_text(Some(entry.received_at)));
    for rcpt in &entry.recipients {
        println!("recipient: <{}>", rcpt.address);
        println!("  state:        {}", rcpt.state);
        println!("  attempts:     {}", rcpt.attempts);
        println!("  last attempt: {}", time_text(rcpt.last_attempt));
        println!("  next attempt: {}", time_text(rcpt.next_attempt));
        println!("  remote:       {}", rcpt.remote.as_deref().unwrap_or("-"));
        println!(
            "  last reply:   {}",
            rcpt.last_reply.as_deref().unwrap_or("-")
        );
    }
}
