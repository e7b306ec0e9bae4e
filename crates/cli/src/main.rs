//! The `libchat` command-line tool: the demo, a file-based two-terminal chat, schema tools and
//! legacy import. Run `libchat --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use libchat::{DatabaseConfig, DatabaseKey, Durability};
use zeroize::Zeroizing;

mod chat;
mod db;
mod demo;
mod import;

/// libchat: end-to-end encrypted 1:1 chat over one SQLite database.
#[derive(Debug, Parser)]
#[command(name = "libchat", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Database file of this installation.
    #[arg(long, global = true, env = "LIBCHAT_DB", default_value = "libchat.db")]
    pub(crate) db: PathBuf,
    /// Name of an environment variable holding the database passphrase (SQLCipher).
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "key_file")]
    pub(crate) key_env: Option<String>,
    /// File holding the database passphrase (SQLCipher); a trailing newline is ignored.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
    /// Commit durability.
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Full)]
    pub(crate) durability: DurabilityArg,
    /// Machine-readable output (JSON lines).
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// Durability on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DurabilityArg {
    /// synchronous=FULL: commits survive power loss.
    Full,
    /// synchronous=NORMAL: commits survive a crash of the process, not always a power loss.
    Normal,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Two clients (Saro and Raya) chat end to end on real database files, with out-of-order
    /// delivery and a restart half-way; prints a summary. The default command.
    Demo(demo::DemoArgs),
    /// Create this installation's identity (the database is created if missing).
    Init {
        /// Installation name.
        #[arg(long, default_value = "me")]
        name: String,
    },
    /// Print this installation's public key and inbox id.
    Whoami,
    /// Print a new intro bundle for a peer to connect to.
    Intro,
    /// Start a conversation from a peer's intro bundle with a first message.
    Connect {
        /// The peer's intro bundle (`logos_chatintro_1_...`).
        bundle: String,
        /// The first message.
        message: String,
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// Send a message in a conversation.
    Send {
        /// Local conversation id (see `list`).
        conversation: String,
        /// The message.
        message: String,
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// Receive envelopes addressed to us from the exchange directory, or hex lines on stdin.
    Receive {
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
        /// Read hex-encoded envelopes, one per line, from standard input instead.
        #[arg(long)]
        stdin: bool,
    },
    /// Write every envelope still in the outbox to the exchange directory.
    Flush {
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// List conversations.
    List,
    /// Show a conversation's history.
    History {
        /// Local conversation id.
        conversation: String,
        /// Show at most this many of the newest messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Schema tools.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Import a database written by the reference libchat implementation.
    Import(import::ImportArgs),
}

/// Reads a passphrase from an environment variable or a key file, never from the command line.
pub(crate) fn read_key(
    key_env: Option<&str>,
    key_file: Option<&Path>,
) -> Result<Option<DatabaseKey>> {
    let secret: Zeroizing<String> =
        match (key_env, key_file) {
            (Some(var), _) => Zeroizing::new(std::env::var(var).with_context(|| {
                format!("environment variable {var} (from --key-env) is not set")
            })?),
            (None, Some(path)) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read key file {}", path.display()))?,
            ),
            (None, None) => return Ok(None),
        };
    let trimmed = secret.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        bail!("the database key is empty");
    }
    Ok(Some(DatabaseKey::Passphrase(Zeroizing::new(
        trimmed.to_owned(),
    ))))
}

impl Global {
    /// The database configuration these options describe.
    pub(crate) fn database(&self) -> Result<DatabaseConfig> {
        let mut config = DatabaseConfig::file(&self.db).with_durability(self.durability.into());
        if let Some(key) = read_key(self.key_env.as_deref(), self.key_file.as_deref())? {
            config = config.with_key(key);
        }
        Ok(config)
    }
}

/// Parses arguments, runs the command, prints errors with their causes.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    let result = match cli.command {
        None => demo::run(&cli.global, &demo::DemoArgs::default()),
        Some(Command::Demo(ref args)) => demo::run(&cli.global, args),
        Some(Command::Db(ref cmd)) => db::run(&cli.global, cmd),
        Some(Command::Import(ref args)) => import::run(&cli.global, args),
        Some(command) => chat::run(&cli.global, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json {
                let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
                println!("{}", serde_json::json!({ "error": chain.join(": ") }));
            } else {
                eprintln!("error: {error}");
                for cause in error.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
