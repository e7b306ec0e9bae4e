//! The `libchat` command-line tool: the demo, a file-based two-terminal chat, schema tools and
//! legacy import. Run `libchat --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use libchat::{DatabaseConfig, DatabaseKey, Durability};
use zeroize::Zeroizing;

mod chat;
mod db;
mod demo;
mod exchange;
mod import;
mod output;
mod receive;

/// libchat: end-to-end encrypted 1:1 chat over one SQLite database.
///
/// Without any argument it runs the demo. Exit status: 0 success, 1 failure, 2 bad usage,
/// 3 a message was committed and queued in the outbox but could not be written to the
/// exchange directory (run `libchat flush`; do not send it again).
#[derive(Debug, Parser)]
#[command(name = "libchat", version, about, long_about)]
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
    /// Installation inside the database: one file holds any number of installations, each
    /// with its own identity, conversations, mailbox and history. `init` creates it; every
    /// other command refuses one that does not exist.
    #[arg(
        long,
        global = true,
        env = "LIBCHAT_INSTALLATION",
        value_name = "NAME",
        default_value = libchat::DEFAULT_INSTALLATION
    )]
    pub(crate) installation: String,
    /// Name of an environment variable holding the database passphrase (SQLCipher).
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "key_file")]
    pub(crate) key_env: Option<String>,
    /// File holding the database passphrase (SQLCipher); a trailing newline is ignored.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
    /// Create databases without encryption, and say so: no warning. Without a key, a database
    /// stores the identity key, the ratchet keys and every message in clear.
    #[arg(
        long,
        global = true,
        visible_alias = "insecure-plaintext",
        conflicts_with_all = ["key_env", "key_file"]
    )]
    pub(crate) plain: bool,
    /// Commit durability.
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Full)]
    pub(crate) durability: DurabilityArg,
    /// Machine-readable output (JSON lines).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Use the PostgreSQL database whose URL is in this environment variable instead of a
    /// file (never a URL on the command line: it may hold a password). `--installation`
    /// selects the installation; the key (--key-env/--key-file) is 64 hexadecimal characters.
    #[cfg(feature = "postgres")]
    #[arg(
        long,
        global = true,
        value_name = "VAR",
        conflicts_with_all = ["db", "database_url_file", "plain"]
    )]
    pub(crate) database_url_env: Option<String>,
    /// Use the PostgreSQL database whose URL is in this file (see --database-url-env).
    #[cfg(feature = "postgres")]
    #[arg(long, global = true, value_name = "PATH", conflicts_with_all = ["db", "plain"])]
    pub(crate) database_url_file: Option<PathBuf>,
}

/// A PostgreSQL database given on the command line: its pool and the key.
#[cfg(feature = "postgres")]
pub(crate) struct Postgres {
    pub(crate) pool: libchat::postgres::PgPool,
    pub(crate) key: libchat::PostgresKey,
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
    /// delivery and a restart half-way; prints a summary. What `libchat` without arguments
    /// runs. With --key-env/--key-file both databases are encrypted with that key.
    Demo(demo::DemoArgs),
    /// Create this installation's database and identity. The only chat command that creates a
    /// database; on an existing one it keeps the identity (and its name).
    Init {
        /// Installation name.
        #[arg(long, default_value = "me")]
        name: String,
    },
    /// Print this installation's public key and inbox id.
    Whoami,
    /// Print a new intro bundle for a peer to connect to.
    Intro,
    /// Start a conversation from a peer's intro bundle (single use) with a first message.
    Connect {
        /// The peer's intro bundle (`logos_chatintro_1_...`).
        bundle: String,
        #[command(flatten)]
        message: chat::MessageArgs,
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// Send a message in a conversation.
    Send {
        /// Local conversation id (see `list`).
        conversation: String,
        #[command(flatten)]
        message: chat::MessageArgs,
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// Receive envelopes addressed to us from the exchange directory, or hex lines on stdin.
    /// A peer's content is printed with control characters escaped (see --raw, --json).
    Receive {
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
        /// Read hex-encoded envelopes, one per line, from standard input instead.
        #[arg(long)]
        stdin: bool,
        /// Print message content byte for byte, unescaped (for a pipe; refused on a terminal;
        /// not with --json).
        #[arg(long)]
        raw: bool,
    },
    /// Write every envelope still in the outbox to the exchange directory.
    Flush {
        #[command(flatten)]
        exchange: chat::ExchangeArgs,
    },
    /// List conversations: id, the peer's key prefix ("unknown peer" when imported), start,
    /// last message.
    List,
    /// Show a conversation's history, after a line naming the peer (its key prefix).
    History {
        /// Local conversation id.
        conversation: String,
        /// Show at most this many of the newest messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the messages only, their content byte for byte, unescaped (for a pipe;
        /// refused on a terminal; not with --json).
        #[arg(long)]
        raw: bool,
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
    /// The key given with --key-env or --key-file, if any.
    pub(crate) fn key(&self) -> Result<Option<DatabaseKey>> {
        read_key(self.key_env.as_deref(), self.key_file.as_deref())
    }

    /// The database configuration these options describe (a bad --installation is a usage
    /// error).
    pub(crate) fn database(&self) -> Result<DatabaseConfig> {
        libchat::validate_installation_name(&self.installation)
            .map_err(|e| Usage(format!("--installation: {e}")))?;
        let mut config = DatabaseConfig::file(&self.db)
            .with_durability(self.durability.into())
            .with_installation(&self.installation);
        if let Some(key) = self.key()? {
            config = config.with_key(key);
        }
        Ok(config)
    }

    /// The PostgreSQL database of --database-url-env / --database-url-file (`None`: a file).
    /// Its key (--key-env / --key-file) must be 64 hexadecimal characters: a passphrase is
    /// refused (PostgreSQL has no key stretching here; give a random 32-byte key).
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(&self) -> Result<Option<Postgres>> {
        use libchat::postgres::{PgPool, PostgresConfig};
        let config = match (&self.database_url_env, &self.database_url_file) {
            (Some(var), _) => PostgresConfig::from_env(var)
                .with_context(|| format!("--database-url-env {var}"))?,
            (None, Some(path)) => PostgresConfig::from_file(path)
                .with_context(|| format!("--database-url-file {}", path.display()))?,
            (None, None) => return Ok(None),
        };
        libchat::validate_installation_name(&self.installation)
            .map_err(|e| Usage(format!("--installation: {e}")))?;
        let key = match &self.key()? {
            Some(DatabaseKey::Passphrase(text)) => {
                let mut raw = Zeroizing::new([0u8; 32]);
                if text.len() != 64 || hex::decode_to_slice(text.as_bytes(), &mut raw[..]).is_err()
                {
                    return Err(Usage(
                        "a PostgreSQL database key is 64 hexadecimal characters (32 random bytes); \
                         a passphrase is refused"
                            .to_owned(),
                    )
                    .into());
                }
                libchat::PostgresKey::from_bytes(*raw)
            }
            Some(DatabaseKey::Raw(raw)) => libchat::PostgresKey::from_bytes(*raw),
            None => {
                return Err(Usage(
                    "a PostgreSQL database needs its key: --key-env VAR or --key-file PATH \
                     (64 hexadecimal characters)"
                        .to_owned(),
                )
                .into());
            }
        };
        let pool = PgPool::open(config).context("cannot connect to the PostgreSQL database")?;
        Ok(Some(Postgres { pool, key }))
    }

    /// The output mode of `--json` (human otherwise).
    pub(crate) fn mode(&self) -> output::Mode {
        if self.json {
            output::Mode::Json
        } else {
            output::Mode::Human
        }
    }
}

/// A usage error found after parsing (exit status 2, like the parser's).
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Exit status of a committed send whose envelope could not be exported.
const EXIT_QUEUED: u8 = 3;
/// Exit status of a usage error.
const EXIT_USAGE: u8 = 2;

/// Runs the command line: `libchat` without any argument runs the demo; options without a
/// command are a usage error (a mistyped command line must not start the demo).
fn dispatch(cli: Cli, db_given: bool, no_arguments: bool) -> Result<()> {
    let refuse_db = |command: &str, instead: &str| -> Result<()> {
        if db_given {
            return Err(Usage(format!(
                "--db is not used by `libchat {command}` ({instead}); leave it out"
            ))
            .into());
        }
        Ok(())
    };
    match cli.command {
        None if no_arguments => demo::run(&cli.global, &demo::DemoArgs::default()),
        None => Err(Usage(
            "no command given (see `libchat --help`; `libchat demo` runs the demo)".to_owned(),
        )
        .into()),
        Some(Command::Demo(ref args)) => {
            refuse_db(
                "demo",
                "its two databases go to --dir or a temporary directory",
            )?;
            demo::run(&cli.global, args)
        }
        Some(Command::Db(ref cmd)) => db::run(&cli.global, cmd),
        Some(Command::Import(ref args)) => {
            refuse_db("import", "the new database is --to")?;
            import::run(&cli.global, args)
        }
        Some(command) => chat::run(&cli.global, command),
    }
}

/// Parses arguments, runs the command, prints errors with their causes (escaped: they may
/// name files from the exchange directory).
fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let db_given = matches.value_source("db") == Some(ValueSource::CommandLine);
    let no_arguments = std::env::args_os().len() <= 1;
    let json = cli.global.json;
    let Err(error) = dispatch(cli, db_given, no_arguments) else {
        return ExitCode::SUCCESS;
    };
    let queued = error.downcast_ref::<chat::Queued>();
    let code = if queued.is_some() {
        EXIT_QUEUED
    } else if error.downcast_ref::<Usage>().is_some() {
        EXIT_USAGE
    } else {
        1
    };
    if json {
        let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
        let mut value = serde_json::json!({ "error": chain.join(": ") });
        if let Some(queued) = queued {
            value["queued"] = true.into();
            value["conversation"] = queued.conversation.clone().into();
        }
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "{}", output::json_line(&value));
    } else {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "error: {}",
            output::escape(error.to_string().as_bytes())
        );
        for cause in error.chain().skip(1) {
            let _ = writeln!(
                err,
                "  caused by: {}",
                output::escape(cause.to_string().as_bytes())
            );
        }
    }
    ExitCode::from(code)
}
