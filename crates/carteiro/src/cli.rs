//! The command line, as INTERFACE.md names it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "carteiro",
    version,
    about = "Self-hosted mail delivery platform"
)]
pub struct Cli {
    /// Configuration file (else $CARTEIRO_CONFIG, else ./carteiro.toml, else built-in defaults)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format of `serve`
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every listener, the queue, delivery and the HTTP server
    Serve,
    /// Check a configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Accounts (a team, an application, a customer)
    #[command(subcommand)]
    Account(AccountCommand),
    /// SMTP logins of an account
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Sending domains, their DKIM keys and DNS records
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Keys for the HTTP API
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Inspect and act on the queue (works beside a running server)
    #[command(subcommand)]
    Queue(QueueCommand),
    /// An account's suppression list: addresses nothing is sent to
    #[command(subcommand)]
    Suppression(SuppressionCommand),
    /// Bounces and complaints as Carteiro reads them
    #[command(subcommand)]
    Bounce(BounceCommand),
    /// The nodes sharing the store
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// People who sign in to the web dashboard
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a dashboard user; prints a generated password when none is given
    Add {
        email: String,
        /// admin: every account and the users; member: manages its account;
        /// viewer: reads its account
        #[arg(long, value_parser = ["admin", "member", "viewer"])]
        role: String,
        /// The user's account (required for member and viewer)
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        password: Option<String>,
    },
    /// List dashboard users: email, role, account, created
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a dashboard user and end their sessions
    Remove { email: String },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// List the nodes: state, last heartbeat, queue size, version
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Forget a node taken out of the cluster for good (its row only)
    Forget { node: String },
}

#[derive(Subcommand, Debug)]
pub enum BounceCommand {
    /// Parse one received message (a bounce, a DSN or an ARF complaint) and
    /// print what Carteiro understands of it: recipients, action, status,
    /// remote reply and bounce class
    Parse {
        /// The message, as a file (`-` reads standard input)
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCommand {
    /// Register a sending domain, create its DKIM keys and print the DNS records to publish
    Add { account: String, domain: String },
    /// List sending domains
    List {
        /// Only this account's
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the DNS records to publish (DKIM, SPF, DMARC, return-path)
    Dns {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Look the records up and say which are right, missing or wrong
    Check {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Make new DKIM keys (pending: they sign once activated) and print the records to publish
    Rotate { domain: String },
    /// Start signing with the new keys (once their DKIM records are published); the old ones retire
    Activate {
        domain: String,
        /// Skip the DNS check of the new keys' records
        #[arg(long)]
        force: bool,
    },
    /// Remove a sending domain and its keys
    Remove { domain: String },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Print a new API key for the account (shown once, stored hashed)
    Add { account: String },
    /// List an account's API keys (their prefixes)
    List { account: String },
    /// Revoke an API key by its prefix
    Revoke { prefix: String },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file and name the key that is wrong
    Check {
        /// The file to check (else the one `--config` or the defaults would use)
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create an account
    Add { name: String },
    /// List accounts
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CredentialCommand {
    /// Add an SMTP login to an account; prints a generated password when none is given
    Add {
        account: String,
        username: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List an account's SMTP logins
    List { account: String },
    /// Remove an SMTP login
    Remove { username: String },
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Messages in the queue with recipient, state, attempts, next attempt, last reply
    List {
        #[arg(long)]
        json: bool,
    },
    /// One message
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Try a message (or all) again now
    Retry(RetryArgs),
    /// Remove a message from the queue
    Delete { id: String },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct RetryArgs {
    /// The message to retry
    pub id: Option<String>,
    /// Retry every queued message
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum SuppressionCommand {
    /// The account's suppressed addresses, by address
    List {
        account: String,
        #[arg(long)]
        json: bool,
        /// Only the entries added for this reason
        #[arg(long, value_enum)]
        reason: Option<ListReason>,
    },
    /// Suppress an address (adding one already there changes nothing)
    Add {
        account: String,
        address: String,
        #[arg(long, value_enum, default_value_t = ManualReason::Manual)]
        reason: ManualReason,
        /// A note kept with the entry
        #[arg(long)]
        detail: Option<String>,
    },
    /// Take an address off the list (the removal is audited)
    Remove { account: String, address: String },
    /// Who added and removed which address when, oldest first
    History {
        account: String,
        /// Only this address's changes
        address: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Why an address is suppressed, as `suppression list --reason` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListReason {
    #[value(name = "hard_bounce")]
    HardBounce,
    Complaint,
    Unsubscribe,
    Manual,
}

/// The reasons an operator may give (the others are observed by Carteiro).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ManualReason {
    Manual,
    Unsubscribe,
}
