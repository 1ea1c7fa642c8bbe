//! `carteiro serve`: opens the store and the spool, recovers the queue,
//! starts delivery, the SMTP listeners and the control socket, and stops
//! them in order on SIGTERM or SIGINT.

use crate::control;
use crate::layout::DataDir;
use anyhow::Context;
use carteiro_config::Config;
use carteiro_delivery::Resolver;
use carteiro_mail::clock::{Clock, SystemClock};
use carteiro_mail::verp::TokenKey;
use carteiro_service::queue::{RecoveredQueue, open_queue};
use carteiro_service::{
    ApiSubmitter, Inbound, Intake, Recorder, SendingPolicy, Signers, SmtpHandler, StoreEvents,
    Suppressions, Tracker,
};
use carteiro_smtp_server::{AccountRef, Role, ServerContext, tls};
use carteiro_spool::SpoolOptions;
use carteiro_store::EventWriter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long open SMTP sessions get to finish after a shutdown signal.
const DRAIN_TIME: Duration = Duration::from_secs(5);

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let started_at_ms = i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX);
    let data = DataDir::new(&config);
    data.create()?;
    if let Some(mode) = data.open_to_others() {
        // What is inside is created private anyway (spool 0700, files and
        // keys 0600); the directory itself is the operator's to change.
        tracing::warn!(
            path = %data.root().display(),
            mode = format_args!("{mode:o}"),
            "the data directory is accessible to group or others; chmod 700 it \
             (its spool, database and keys are kept private regardless)"
        );
    }
    // First: the spool and the engine take their series' handles as they
    // start.
    let metrics = crate::metrics::install()?;
    crate::fdlimit::raise(config.smtp.max_connections);

    // The spool before anything that needs free space: on a full disk it
    // gives up its reserve, which lets the store open and the queue drain.
    let started = Instant::now();
    let RecoveredQueue {
        spool,
        messages: recovered,
        undecodable,
    } = open_queue(&data.spool(), spool_options(&config))
        .with_context(|| format!("cannot open the spool at {}", data.spool().display()))?;
    for entry in &undecodable {
        tracing::error!(id = %entry.id, error = %entry.error, "cannot decode a spooled message; left in the spool");
    }
    tracing::info!(
        messages = recovered.len(),
        undecodable = undecodable.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "spool recovered"
    );

    let store = crate::commands::store_of(&config, &data).await?;
    tracing::info!(
        backend = store.backend().as_str(),
        node = %config.store.node_name,
        "store open"
    );
    let default_account = store
        .ensure_account(&config.smtp.default_account)
        .await
        .context("cannot create the default account")?;

    let tls_config = load_tls(&config, &data)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (events, events_task) = EventWriter::start_journaled(store.clone(), &data.events_journal())
        .with_context(|| {
            format!(
                "cannot open the event journal at {}",
                data.events_journal().display()
            )
        })?;
    let events = events.with_node(&config.store.node_name);
    // Records a power cut took from the store come back from the spool,
    // before delivery adds events of their messages.
    let rebuilt = carteiro_service::records::rebuild_lost(
        &store,
        &spool,
        &events,
        &recovered,
        config.store.keep_headers,
    )
    .await
    .context("cannot check the spooled messages' records")?;
    if rebuilt.rebuilt > 0 || rebuilt.missing > 0 {
        tracing::warn!(
            rebuilt = rebuilt.rebuilt,
            missing = rebuilt.missing,
            checked = rebuilt.checked,
            "message records lost by the store were written again from the spool"
        );
    }
    let resolver = Resolver::new(&config.dns.nameservers).context("cannot set up DNS")?;
    let domain_resolver = resolver.clone();
    let tokens = Arc::new(TokenKey::new(
        &store
            .secret("tokens")
            .await
            .context("cannot read the token key")?,
    ));
    let suppressions = Suppressions::load(store.clone())
        .await
        .context("cannot load the suppression lists")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let recorder = Recorder::new(events.clone(), Arc::clone(&suppressions));
    let (engine, engine_task) = carteiro_delivery::engine::start(
        Arc::clone(&config),
        spool.clone(),
        resolver,
        Arc::new(StoreEvents::new(recorder.clone())),
        Arc::clone(&tokens),
        recovered,
    );
    let signers = Signers::load(&store)
        .await
        .context("cannot load the sending domains")?;
    let refresh_task = signers.spawn_refresh(store.clone(), stop_rx.clone());
    let alerts_task = carteiro_service::alerts::spawn_spool_alerts(
        &spool,
        store.clone(),
        events.clone(),
        stop_rx.clone(),
    );
    let suppressions_task = suppressions.spawn_refresh(stop_rx.clone());
    // Webhooks read the event log on their own tasks, off the mail path.
    let (webhooks, webhooks_task) =
        carteiro_service::webhooks::start(store.clone(), &config.webhooks, stop_rx.clone())
            .context("cannot start the webhook dispatcher")?;
    let intake = Arc::new(Intake::new(
        SendingPolicy::new(Arc::clone(&config), Arc::clone(&signers), store.clone()),
        Arc::clone(&tokens),
        Arc::clone(&suppressions),
        spool.clone(),
        engine.clone(),
        events.clone(),
    ));
    let inbound = Arc::new(Inbound::new(
        Arc::clone(&config),
        Arc::clone(&tokens),
        signers,
        store.clone(),
        recorder,
        Arc::clone(&clock),
    ));

    let handler = SmtpHandler::new(
        store.clone(),
        Arc::clone(&intake),
        Arc::clone(&inbound),
        AccountRef::new(default_account.id, default_account.name),
    );
    let ctx = ServerContext::new(Arc::clone(&config), Some(tls_config), handler);

    let mut listeners = Vec::new();
    for (role, addrs) in [
        (Role::Relay, &config.smtp.relay_listen),
        (Role::Submission, &config.smtp.submission_listen),
        (Role::Submissions, &config.smtp.submissions_listen),
    ] {
        for addr in addrs {
            let listener = bind(*addr, role).await?;
            tracing::info!(%addr, role = role.name(), "smtp listening");
            listeners.push(tokio::spawn(carteiro_smtp_server::serve(
                listener,
                role,
                Arc::clone(&ctx),
                stop_rx.clone(),
            )));
        }
    }
    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    tracing::info!(addr = %config.http.listen, "http listening");
    let router = carteiro_http::router(carteiro_http::ApiState {
        store: store.clone(),
        submitter: Arc::new(
            ApiSubmitter::new(
                Arc::clone(&intake),
                Arc::clone(&inbound),
                Arc::new(Tracker::new(
                    Arc::clone(&tokens),
                    store.clone(),
                    events.clone(),
                    Arc::clone(&clock),
                )),
                config.hostname.clone(),
                config.smtp.max_message_size,
            )
            .with_domains(Arc::clone(&config), store.clone(), domain_resolver),
        ),
        config: Arc::clone(&config),
    });
    let metrics_task = metrics.spawn_upkeep(stop_rx.clone());
    let render: carteiro_http::RenderMetrics = {
        let (metrics, ctx) = (Arc::clone(&metrics), Arc::clone(&ctx));
        Arc::new(move || metrics.render(ctx.limiter.active()))
    };
    let metrics_router = carteiro_http::metrics_router(render);
    let (router, metrics_http_task) = match config.http.metrics_listen {
        None => (router.merge(metrics_router), None),
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http.metrics_listen)"))?;
            tracing::info!(%addr, "metrics listening");
            let mut stop = stop_rx.clone();
            let task = tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(err) = carteiro_http::serve(listener, metrics_router, stopped).await {
                    tracing::error!(error = %err, "metrics http server failed");
                }
            });
            (router, Some(task))
        }
    };
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        let stopped = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        if let Err(err) = carteiro_http::serve(http_listener, router, stopped).await {
            tracing::error!(error = %err, "http server failed");
        }
    });
    let heartbeat_task = tokio::spawn(crate::heartbeat::run(
        store.clone(),
        config.store.node_name.clone(),
        engine.clone(),
        started_at_ms,
        stop_rx.clone(),
    ));
    let control_task = control::serve(&data.control_socket(), engine.clone(), stop_rx.clone())
        .await
        .context("cannot start the control socket")?;

    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }

    let _ = stop_tx.send(true);
    for listener in listeners {
        let _ = listener.await;
    }
    // Requests in flight get the same few seconds as SMTP sessions.
    let _ = tokio::time::timeout(DRAIN_TIME, http_task).await;
    if let Some(task) = metrics_http_task {
        let _ = tokio::time::timeout(DRAIN_TIME, task).await;
    }
    let _ = metrics_task.await;
    // Sessions in the middle of a message get a moment to finish it.
    let deadline = Instant::now() + DRAIN_TIME;
    while ctx.limiter.active() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
    let _ = engine_task.await;
    let _ = heartbeat_task.await;
    crate::heartbeat::stopped(&store, &config.store.node_name, &engine).await;
    let _ = control_task.await;
    let _ = refresh_task.await;
    let _ = alerts_task.await;
    let _ = suppressions_task.await;
    let _ = webhooks_task.await;
    tracing::info!(
        backlog = webhooks.backlog(),
        "webhooks stopped; pending events are sent after the next start"
    );
    events.flush().await;
    drop(intake);
    events.close().await;
    let _ = events_task.await;
    let _ = std::fs::remove_file(data.control_socket());
    if let Err(err) = spool.sync().await {
        tracing::error!(error = %err, "final spool sync failed");
    }
    spool.close();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The spool's settings from `[spool]`.
pub fn spool_options(config: &Config) -> SpoolOptions {
    SpoolOptions {
        segment_size: config.spool.segment_size,
        max_size: (config.spool.max_size > 0).then_some(config.spool.max_size),
        reserve: config.spool.reserve,
    }
}

async fn bind(addr: SocketAddr, role: Role) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("cannot listen on {addr} ({} listener)", role.name()))?;
    Ok(socket.listen(1024)?)
}

fn load_tls(config: &Config, data: &DataDir) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert, key) = match (&config.smtp.tls_cert, &config.smtp.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let (cert, key) = (data.tls_cert(), data.tls_key());
            if tls::ensure_self_signed(&cert, &key, &config.hostname)? {
                tracing::info!(cert = %cert.display(), "created a self-signed certificate");
            }
            (cert, key)
        }
    };
    Ok(tls::load_server_config(&cert, &key)?)
}
