//! `carteiro queue list|show|retry|delete`: through the running server's
//! control socket when it runs, else directly on the spool.

use crate::cli::{QueueCommand, RetryArgs};
use crate::control::{self, Request, Response};
use crate::layout::DataDir;
use anyhow::{Context, bail};
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_delivery::engine::{self, EngineMode, QueueEntry};
use carteiro_mail::MessageId;
use carteiro_mail::verp::TokenKey;
use carteiro_service::queue::{RecoveredQueue, open_queue};
use carteiro_service::{Recorder, StoreEvents, Suppressions};
use carteiro_spool::SpoolError;
use carteiro_store::EventWriter;
use std::sync::Arc;

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
        None => offline(&data, config, &request).await?,
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

/// Acts on the spool when no server runs: an offline engine (no
/// attempts, no bounces) on the recovered queue, asked through the same
/// [`control::handle`] as a server's, with its events written to the store
/// (an offline delete records `deleted` like an online one).
async fn offline(data: &DataDir, config: &Config, request: &Request) -> anyhow::Result<Response> {
    let dir = data.spool();
    if !dir.exists() {
        return Ok(match request {
            Request::List => Response::data(Vec::<QueueEntry>::new()),
            Request::Retry { id: None } => Response::data(0),
            Request::Show { id } | Request::Delete { id } | Request::Retry { id: Some(id) } => {
                Response::error(format!("message {id} is not in the queue"))
            }
        });
    }
    let RecoveredQueue {
        spool,
        messages,
        undecodable,
    } = match open_queue(&dir, crate::serve::spool_options(config)) {
        Ok(opened) => opened,
        Err(SpoolError::Locked(_)) => bail!(
            "the spool is in use by a running server that does not answer on {}",
            data.control_socket().display()
        ),
        Err(err) => return Err(err.into()),
    };
    for entry in &undecodable {
        eprintln!(
            "carteiro: message {} cannot be decoded ({}); left in the spool",
            entry.id, entry.error
        );
    }
    if !undecodable.is_empty() {
        eprintln!(
            "carteiro: {} spool entr{} cannot be decoded",
            undecodable.len(),
            if undecodable.len() == 1 { "y" } else { "ies" }
        );
    }
    let store = crate::commands::store_of(config, data).await?;
    let (events, events_task) = EventWriter::start(store.clone());
    let events = events.with_node(&config.store.node_name);
    let suppressions = Suppressions::load(store.clone())
        .await
        .context("cannot load the suppression lists")?;
    let tokens = Arc::new(TokenKey::new(
        &store
            .secret("tokens")
            .await
            .context("cannot read the token key")?,
    ));
    let (engine, engine_task) = engine::start_with(
        EngineMode::Offline,
        Arc::new(config.clone()),
        spool.clone(),
        Resolver::new(&config.dns.nameservers).context("cannot set up DNS")?,
        Arc::new(StoreEvents::new(Recorder::new(
            events.clone(),
            suppressions,
        ))),
        tokens,
        messages,
    );
    let response = control::handle(request, &engine).await;
    engine.shutdown().await;
    let _ = engine_task.await;
    events.close().await;
    let _ = events_task.await;
    // Make the change durable before the process exits.
    spool.sync().await?;
    spool.close();
    store.close().await;
    Ok(response)
}

fn time_text(millis: Option<u64>) -> String {
    millis
        .and_then(super::rfc3339_millis)
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
