//! File-based chat for two terminals: `init`, `whoami`, `intro`, `connect`, `send`, `flush`,
//! `list`, `history` (and `receive`, in [`crate::receive`]). Envelopes travel as files in an
//! exchange directory ([`crate::exchange`]).

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use libchat::{Client, ClientConfig, Direction, MAX_CONTENT_LEN, PublicKey};
use serde_json::json;

use super::{Command, Global, Usage};
use crate::exchange::{self, ExchangeFs, RealFs};
use crate::output::{Mode, Out, content_fields, local_time, warn};

/// Where envelopes are exchanged.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExchangeArgs {
    /// Directory both installations read and write envelopes in.
    #[arg(long, env = "LIBCHAT_EXCHANGE", default_value = "exchange")]
    pub exchange: PathBuf,
}

/// The message of `send` and `connect`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MessageArgs {
    /// The message. `-`, or nothing when standard input is not a terminal, reads it from
    /// standard input (one trailing newline removed). Prefer `-` or --file for anything
    /// private: arguments show in `ps` and in the shell history.
    #[arg(value_name = "MESSAGE")]
    pub message: Option<OsString>,
    /// Read the message from this file, byte for byte.
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    pub file: Option<PathBuf>,
}

/// A send or connect that committed (the message is in the history and its envelope in the
/// outbox) but whose envelope could not be written to the exchange directory. Exit code 3:
/// do not send again, run `libchat flush`.
#[derive(Debug)]
pub(crate) struct Queued {
    /// The conversation the message belongs to.
    pub conversation: String,
    /// True when the conversation was started by this command.
    pub started: bool,
    /// The exchange directory.
    pub exchange: PathBuf,
}

impl std::fmt::Display for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.started {
            format!("conversation {} started", self.conversation)
        } else {
            format!("sent in conversation {}", self.conversation)
        };
        write!(
            f,
            "{what} and queued in the outbox, but not written to {}; run `libchat flush` to export it (do not send it again)",
            self.exchange.display()
        )
    }
}

impl std::error::Error for Queued {}

/// The message to send, read before anything is opened: from the argument, standard input or
/// a file. Refuses an empty message and one over [`MAX_CONTENT_LEN`].
fn read_message(args: &MessageArgs) -> Result<Vec<u8>> {
    let from_stdin = |stdin: std::io::Stdin| -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .take(MAX_CONTENT_LEN as u64 + 2)
            .read_to_end(&mut bytes)
            .context("cannot read the message from standard input")?;
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n") {
            bytes.pop();
        }
        Ok(bytes)
    };
    let bytes = match (&args.message, &args.file) {
        (_, Some(path)) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut bytes = Vec::new();
            file.take(MAX_CONTENT_LEN as u64 + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {}", path.display()))?;
            bytes
        }
        (Some(m), None) if m == "-" => from_stdin(std::io::stdin())?,
        (Some(m), None) => m.as_bytes().to_vec(),
        (None, None) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!(
                    "no message: give it as an argument, as `-` to read standard input, or with --file PATH"
                );
            }
            from_stdin(stdin)?
        }
    };
    if bytes.is_empty() {
        bail!("the message is empty");
    }
    if bytes.len() > MAX_CONTENT_LEN {
        bail!("the message is too long: more than {MAX_CONTENT_LEN} bytes");
    }
    Ok(bytes)
}

/// Fails unless a database exists at `--db`: only `init`, `demo` and `import` create one, so
/// that a mistyped path never makes a new identity. An empty file is no database either.
pub(crate) fn require_database(global: &Global) -> Result<()> {
    let missing = match std::fs::metadata(&global.db) {
        Ok(metadata) => metadata.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", global.db.display()));
        }
    };
    if missing {
        let path = global.db.display();
        bail!("no database at {path} (create one with `libchat --db {path} init`)");
    }
    Ok(())
}

/// Refuses an installation that the existing database at `--db` does not hold (only `init`
/// creates one). The default installation is in every database (the migration that adds
/// installations creates it), so it needs no look-up.
pub(crate) fn require_installation(
    global: &Global,
    config: &libchat::DatabaseConfig,
) -> Result<()> {
    if global.installation == libchat::DEFAULT_INSTALLATION {
        return Ok(());
    }
    let known = libchat::installations(config)
        .with_context(|| format!("cannot read {}", global.db.display()))?;
    if !known.iter().any(|i| i.name == global.installation) {
        bail!(
            "no installation {:?} in {} (create it with `libchat --db {} --installation {:?} init`)",
            global.installation,
            global.db.display(),
            global.db.display(),
            global.installation
        );
    }
    Ok(())
}

/// Opens the existing database at `--db` (or of --database-url-env/--database-url-file), for
/// an existing installation: only `init` creates one.
fn open(global: &Global) -> Result<Client> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = global.postgres()? {
        let known = pg
            .pool
            .installations()
            .context("cannot read the PostgreSQL database's installations")?;
        if !known.iter().any(|i| i.name == global.installation) {
            bail!(
                "no installation {:?} in the PostgreSQL database (create it with \
                 `libchat --installation {:?} init`)",
                global.installation,
                global.installation
            );
        }
        let config = ClientConfig::postgres(&pg.pool, Some(pg.key), &global.installation, "me");
        return Client::open(config).with_context(|| {
            format!(
                "cannot open installation {:?} of the PostgreSQL database",
                global.installation
            )
        });
    }
    let config = ClientConfig::new(global.database()?, "me");
    require_database(global)?;
    require_installation(global, config.database())?;
    Client::open(config).with_context(|| format!("cannot open {}", global.db.display()))
}

/// The plaintext warning, when a command created an unencrypted database without `--plain`.
pub(crate) fn warn_plaintext(global: &Global, what: &str) {
    if !global.plain && global.key_env.is_none() && global.key_file.is_none() {
        warn(&format!(
            "{what} not encrypted: identity and ratchet keys and every message are stored in clear; use --key-env or --key-file to encrypt, or --plain to silence this warning"
        ));
    }
}

/// Runs a chat command.
pub(crate) fn run(global: &Global, command: Command) -> Result<()> {
    match command {
        Command::Init { name } => init(global, &name),
        Command::Whoami => {
            let client = open(global)?;
            let mut out = Out::new(global.mode())?;
            out.text(
                &json!({"name": client.name(), "public_key": hex::encode(client.public_key().as_bytes()), "inbox_id": client.inbox_id()}),
                || {
                    format!(
                        "{}\npublic key: {}\ninbox id: {}",
                        client.name(),
                        hex::encode(client.public_key().as_bytes()),
                        client.inbox_id()
                    )
                },
            )
        }
        Command::Intro => {
            let mut client = open(global)?;
            let mut out = Out::new(global.mode())?;
            let bundle = client.create_intro_bundle()?;
            out.text(&json!({"bundle": bundle}), || bundle.clone())
        }
        Command::Connect {
            bundle,
            message,
            exchange,
        } => {
            let content = read_message(&message)?;
            let mut client = open(global)?;
            let mut out = Out::new(global.mode())?;
            let sent = client.start_conversation(&bundle, &content)?;
            let written = export_or_queue(&mut client, &exchange.exchange, || Queued {
                conversation: sent.conversation_id.clone(),
                started: true,
                exchange: exchange.exchange.clone(),
            })?;
            out.text(
                &json!({"conversation": sent.conversation_id, "delivered": written}),
                || {
                    format!(
                        "conversation {} started; {written} envelope(s) written to {}",
                        sent.conversation_id,
                        exchange.exchange.display()
                    )
                },
            )
        }
        Command::Send {
            conversation,
            message,
            exchange,
        } => {
            let content = read_message(&message)?;
            let mut client = open(global)?;
            let mut out = Out::new(global.mode())?;
            client.send(&conversation, &content)?;
            let written = export_or_queue(&mut client, &exchange.exchange, || Queued {
                conversation: conversation.clone(),
                started: false,
                exchange: exchange.exchange.clone(),
            })?;
            out.text(
                &json!({"conversation": conversation, "delivered": written}),
                || {
                    format!(
                        "sent; {written} envelope(s) written to {}",
                        exchange.exchange.display()
                    )
                },
            )
        }
        Command::Flush { exchange } => {
            let mut client = open(global)?;
            let mut out = Out::new(global.mode())?;
            let written = flush(&mut client, &exchange.exchange)?;
            out.text(&json!({"delivered": written}), || {
                format!(
                    "{written} envelope(s) written to {}",
                    exchange.exchange.display()
                )
            })
        }
        Command::Receive {
            exchange,
            stdin,
            raw,
        } => {
            let mode = output_mode(global, raw)?;
            let mut client = open(global)?;
            let mut out = Out::new(mode)?;
            if stdin {
                crate::receive::from_stdin(&mut out, &mut client)
            } else {
                crate::receive::from_dir(&mut out, &mut client, &exchange.exchange)
            }
        }
        Command::List => list(global),
        Command::History {
            conversation,
            limit,
            raw,
        } => history(global, &conversation, limit, raw),
        Command::Demo(_) | Command::Db(_) | Command::Import(_) => {
            bail!("internal: command dispatched to the wrong handler")
        }
    }
}

/// `init`: creates the database and the identity, or says what is already there.
fn init(global: &Global, name: &str) -> Result<()> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = global.postgres()? {
        let config = ClientConfig::postgres(&pg.pool, Some(pg.key), &global.installation, name);
        let client = Client::open(config).with_context(|| {
            format!(
                "cannot open installation {:?} of the PostgreSQL database",
                global.installation
            )
        })?;
        let mut out = Out::new(global.mode())?;
        return out.text(
            &json!({
                "installation": global.installation,
                "name": client.name(),
                "public_key": hex::encode(client.public_key().as_bytes()),
                "inbox_id": client.inbox_id(),
            }),
            || {
                format!(
                    "installation {:?} (PostgreSQL) holds the identity {}\ninbox id: {}",
                    global.installation,
                    client.name(),
                    client.inbox_id()
                )
            },
        );
    }
    let file_existed = std::fs::metadata(&global.db).is_ok_and(|m| m.len() > 0);
    let config = ClientConfig::new(global.database()?, name);
    // A new installation in an existing file is created, as a new file is. (The default
    // installation is in every migrated file: it counts as existing.)
    let existed = file_existed
        && (global.installation == libchat::DEFAULT_INSTALLATION
            || libchat::installations(config.database())
                .with_context(|| format!("cannot read {}", global.db.display()))?
                .iter()
                .any(|i| i.name == global.installation));
    let client =
        Client::open(config).with_context(|| format!("cannot open {}", global.db.display()))?;
    if !file_existed {
        warn_plaintext(global, &format!("{} is", global.db.display()));
    }
    let mut out = Out::new(global.mode())?;
    let name_kept = existed && client.name() != name;
    out.text(
        &json!({
            "created": !existed,
            "name": client.name(),
            "name_kept": name_kept,
            "public_key": hex::encode(client.public_key().as_bytes()),
            "inbox_id": client.inbox_id(),
        }),
        || {
            let head = if !existed {
                format!("initialised {} ({})", client.name(), global.db.display())
            } else if name_kept {
                format!(
                    "{} already holds the identity {}: the name was kept (--name {name} ignored)",
                    global.db.display(),
                    client.name()
                )
            } else {
                format!(
                    "{} already holds the identity {}",
                    global.db.display(),
                    client.name()
                )
            };
            format!("{head}\ninbox id: {}", client.inbox_id())
        },
    )
}

/// The first characters of `content` for a one-line preview.
fn preview(content: &[u8]) -> Vec<u8> {
    const MAX_CHARS: usize = 40;
    let text = String::from_utf8_lossy(content);
    let first_line = text.lines().next().unwrap_or_default();
    let mut short: String = first_line.chars().take(MAX_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short.into_bytes()
}

/// Bytes of the peer's installation key shown by `list` and `history`: 8 (16 hex digits), as
/// `whoami` prints the full key for the peer to compare with.
const PEER_PREFIX_BYTES: usize = 8;

/// Who a conversation is with, for humans: `peer 3f2a…` (the first [`PEER_PREFIX_BYTES`]
/// bytes of the peer's installation key in hex), or `unknown peer` when the key was never
/// stored (a conversation imported from a reference database, or older than the database's
/// record of peer keys).
fn peer_label(peer_key: Option<&PublicKey>) -> String {
    match peer_key {
        Some(key) => format!(
            "peer {}…",
            hex::encode(&key.as_bytes()[..PEER_PREFIX_BYTES])
        ),
        None => "unknown peer".to_owned(),
    }
}

/// Who a conversation is with, for `--json`: the full key in hex, or null when unknown.
fn peer_json(peer_key: Option<&PublicKey>) -> serde_json::Value {
    peer_key.map_or(serde_json::Value::Null, |key| {
        hex::encode(key.as_bytes()).into()
    })
}

fn list(global: &Global) -> Result<()> {
    let mut client = open(global)?;
    let mut out = Out::new(global.mode())?;
    let conversations = client.conversations()?;
    if conversations.is_empty() {
        return out.say(
            "no conversations yet: start one with `libchat connect BUNDLE MESSAGE`, or receive one",
        );
    }
    for convo in conversations {
        let last = client.history(&convo.conversation_id, 1)?.pop();
        let mut value = json!({
            "conversation": convo.conversation_id,
            "remote": convo.remote_conversation_id,
            "kind": convo.kind.as_str(),
            "peer_key": peer_json(convo.peer_key.as_ref()),
            "created_at": local_time(convo.created_at),
            "created_at_ms": convo.created_at.as_millis(),
        });
        if let Some(last) = &last {
            value["last_message_at"] = local_time(last.timestamp).into();
        }
        out.record(&value, || {
            let mut line = format!(
                "{}  {}  {}  started {}",
                convo.conversation_id,
                convo.kind.as_str(),
                peer_label(convo.peer_key.as_ref()),
                local_time(convo.created_at)
            )
            .into_bytes();
            match &last {
                Some(last) => {
                    let arrow = match last.direction {
                        Direction::Sent => "->",
                        Direction::Received => "<-",
                    };
                    line.extend(format!("  last {} {arrow} ", local_time(last.timestamp)).bytes());
                    line.extend(preview(&last.content));
                }
                None => line.extend(b"  no messages"),
            }
            line
        })?;
    }
    Ok(())
}

/// The output mode of a command that takes `--raw`.
fn output_mode(global: &Global, raw: bool) -> Result<Mode> {
    match (raw, global.json) {
        (true, true) => Err(Usage("--raw and --json do not go together".to_owned()).into()),
        (true, false) => Ok(Mode::Raw),
        (false, _) => Ok(global.mode()),
    }
}

fn history(global: &Global, conversation: &str, limit: usize, raw: bool) -> Result<()> {
    let mode = output_mode(global, raw)?;
    let mut client = open(global)?;
    let mut out = Out::new(mode)?;
    let Some(record) = client
        .conversations()?
        .into_iter()
        .find(|c| c.conversation_id == conversation)
    else {
        bail!("no conversation {conversation} (see `libchat list`)");
    };
    let peer_key = record.peer_key.as_ref();
    // Human output names the peer once, above the messages; `--json` gives the key on every
    // record; `--raw` prints the records only.
    if mode == Mode::Human {
        out.say(&format!(
            "conversation {conversation} with {}",
            peer_label(peer_key)
        ))?;
    }
    for entry in client.history(conversation, limit)? {
        let arrow = match entry.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let mut value = json!({
            "direction": entry.direction.as_str(),
            "peer_key": peer_json(peer_key),
            "time": local_time(entry.timestamp),
            "timestamp_ms": entry.timestamp.as_millis(),
        });
        content_fields(&entry.content, &mut value);
        out.record(&value, || {
            let mut line = format!("{} {arrow} ", local_time(entry.timestamp)).into_bytes();
            line.extend_from_slice(&entry.content);
            line
        })?;
    }
    Ok(())
}

/// Exports the outbox after a committed send or connect; a failure becomes [`Queued`] (exit
/// code 3) with the cause.
fn export_or_queue(
    client: &mut Client,
    dir: &Path,
    queued: impl FnOnce() -> Queued,
) -> Result<usize> {
    flush(client, dir).map_err(|cause| cause.context(queued()))
}

/// Writes every outbox envelope to the exchange directory, then marks it delivered. See
/// [`flush_with`].
pub(crate) fn flush(client: &mut Client, dir: &Path) -> Result<usize> {
    flush_with(client, dir, &mut RealFs)
}

/// Envelopes exported per round: written and made durable together (one directory fsync),
/// then marked delivered.
const FLUSH_BATCH: usize = 256;

/// Writes the outbox to `dir` through `fs`, in rounds of [`FLUSH_BATCH`]: the envelopes of a
/// round are written atomically and durably ([`exchange::export`]), then marked delivered.
/// A crash in between exports them again on the next flush; the receiver refuses the second
/// copy as a duplicate. Returns how many envelopes this call wrote.
pub(crate) fn flush_with<F: ExchangeFs>(
    client: &mut Client,
    dir: &Path,
    fs: &mut F,
) -> Result<usize> {
    let mut written = 0;
    let mut last_id = None;
    loop {
        let entries = client.outbox(FLUSH_BATCH)?;
        if entries.is_empty() {
            break;
        }
        // The outbox is oldest first and marked entries leave it: each round starts later.
        if let (Some(last), Some(first)) = (last_id, entries.first().map(|e| e.id))
            && first <= last
        {
            bail!("outbox entry {first} is still pending after it was marked delivered");
        }
        last_id = entries.last().map(|e| e.id);
        let names = entries
            .iter()
            .map(exchange::file_name)
            .collect::<Result<Vec<_>>>()?;
        let batch: Vec<(String, &[u8])> = names
            .into_iter()
            .zip(&entries)
            .map(|(name, e)| (name, e.envelope.as_slice()))
            .collect();
        exchange::export(fs, dir, &batch)?;
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        client
            .mark_delivered_batch(&ids)
            .map_err(|failed| failed.error)?;
        written += entries.len();
    }
    Ok(written)
}
