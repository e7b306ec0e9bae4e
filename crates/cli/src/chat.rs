//! File-based chat for two terminals: envelopes travel as files in an exchange directory that
//! both installations can read. A file is named after its hint, so each side picks only the
//! envelopes addressed to it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use libchat::Direction;
use libchat::{Client, ClientConfig, Received};
use serde_json::json;

use super::{Command, Global};

/// Where envelopes are exchanged.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExchangeArgs {
    /// Directory both installations read and write envelopes in.
    #[arg(long, env = "LIBCHAT_EXCHANGE", default_value = "exchange")]
    pub exchange: PathBuf,
}

/// Suffix of envelope files.
const ENVELOPE_EXT: &str = "env";

fn open(global: &Global, name: &str) -> Result<Client> {
    let config = ClientConfig::new(global.database()?, name);
    Client::open(config).with_context(|| format!("cannot open {}", global.db.display()))
}

/// Runs a chat command.
pub(crate) fn run(global: &Global, command: Command) -> Result<()> {
    match command {
        Command::Init { name } => {
            let client = open(global, &name)?;
            print(
                global,
                &json!({"name": client.name(), "public_key": hex::encode(client.public_key().as_bytes()), "inbox_id": client.inbox_id()}),
                || {
                    format!(
                        "initialised {} ({})\ninbox id: {}",
                        client.name(),
                        global.db.display(),
                        client.inbox_id()
                    )
                },
            );
        }
        Command::Whoami => {
            let client = open(global, "me")?;
            print(
                global,
                &json!({"name": client.name(), "public_key": hex::encode(client.public_key().as_bytes()), "inbox_id": client.inbox_id()}),
                || {
                    format!(
                        "{}\npublic key: {}\ninbox id: {}",
                        client.name(),
                        hex::encode(client.public_key().as_bytes()),
                        client.inbox_id()
                    )
                },
            );
        }
        Command::Intro => {
            let mut client = open(global, "me")?;
            let bundle = client.create_intro_bundle()?;
            print(global, &json!({"bundle": bundle}), || bundle.clone());
        }
        Command::Connect {
            bundle,
            message,
            exchange,
        } => {
            let mut client = open(global, "me")?;
            let sent = client.start_conversation(&bundle, message.as_bytes())?;
            let written = flush(&mut client, &exchange.exchange)?;
            print(
                global,
                &json!({"conversation": sent.conversation_id, "delivered": written}),
                || {
                    format!(
                        "conversation {} started; {written} envelope(s) written to {}",
                        sent.conversation_id,
                        exchange.exchange.display()
                    )
                },
            );
        }
        Command::Send {
            conversation,
            message,
            exchange,
        } => {
            let mut client = open(global, "me")?;
            client.send(&conversation, message.as_bytes())?;
            let written = flush(&mut client, &exchange.exchange)?;
            print(
                global,
                &json!({"conversation": conversation, "delivered": written}),
                || {
                    format!(
                        "sent; {written} envelope(s) written to {}",
                        exchange.exchange.display()
                    )
                },
            );
        }
        Command::Flush { exchange } => {
            let mut client = open(global, "me")?;
            let written = flush(&mut client, &exchange.exchange)?;
            print(global, &json!({"delivered": written}), || {
                format!("{written} envelope(s) written")
            });
        }
        Command::Receive { exchange, stdin } => {
            let mut client = open(global, "me")?;
            if stdin {
                receive_stdin(global, &mut client)?;
            } else {
                receive_dir(global, &mut client, &exchange.exchange)?;
            }
        }
        Command::List => {
            let mut client = open(global, "me")?;
            for convo in client.conversations()? {
                print(
                    global,
                    &json!({"conversation": convo.conversation_id, "remote": convo.remote_conversation_id, "kind": convo.kind.as_str(), "created_at_ms": convo.created_at.as_millis()}),
                    || {
                        format!(
                            "{}  {}  created {}",
                            convo.conversation_id,
                            convo.kind.as_str(),
                            convo.created_at.as_millis()
                        )
                    },
                );
            }
        }
        Command::History {
            conversation,
            limit,
        } => {
            let mut client = open(global, "me")?;
            if client
                .conversations()?
                .iter()
                .all(|c| c.conversation_id != conversation)
            {
                bail!("no conversation {conversation} (see `libchat list`)");
            }
            for entry in client.history(&conversation, limit)? {
                let text = String::from_utf8_lossy(&entry.content).into_owned();
                let arrow = match entry.direction {
                    Direction::Sent => "->",
                    Direction::Received => "<-",
                };
                print(
                    global,
                    &json!({"direction": entry.direction.as_str(), "timestamp_ms": entry.timestamp.as_millis(), "message": text}),
                    || format!("{} {arrow} {text}", entry.timestamp.as_millis()),
                );
            }
        }
        Command::Demo(_) | Command::Db(_) | Command::Import(_) => {
            bail!("internal: command dispatched to the wrong handler")
        }
    }
    Ok(())
}

/// Prints one record: a JSON line with `--json`, else the human text.
pub(crate) fn print(global: &Global, value: &serde_json::Value, human: impl FnOnce() -> String) {
    if global.json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

/// Writes every outbox envelope to the exchange directory (write to a temporary name, fsync,
/// rename), then marks it delivered. A crash in between redelivers it: the receiver detects
/// the duplicate.
pub(crate) fn flush(client: &mut Client, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = 0;
    for entry in client.outbox(usize::MAX)? {
        let name = format!(
            "{}.{:020}-{}.{ENVELOPE_EXT}",
            entry.conversation_hint,
            entry.created_at.as_millis(),
            entry.id
        );
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&entry.envelope)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(&name))?;
        client.mark_delivered(entry.id)?;
        written += 1;
    }
    Ok(written)
}

fn report(global: &Global, client: &mut Client, source: &str, received: &Received) -> Result<()> {
    match received {
        Received::Content {
            inbox_id,
            conversation_id,
            content,
            is_new_conversation,
            ..
        } => {
            let text = String::from_utf8_lossy(content).into_owned();
            print(
                global,
                &json!({"event": "message", "conversation": conversation_id, "new_conversation": is_new_conversation, "message": text}),
                || {
                    if *is_new_conversation {
                        format!("[{conversation_id}] (new conversation) {text}")
                    } else {
                        format!("[{conversation_id}] {text}")
                    }
                },
            );
            client.acknowledge(*inbox_id)?;
        }
        Received::Frame {
            conversation_id, ..
        } => {
            print(
                global,
                &json!({"event": "frame", "conversation": conversation_id}),
                || format!("[{conversation_id}] (protocol frame)"),
            );
        }
        Received::UnknownConversation { hint } => {
            print(
                global,
                &json!({"event": "unknown_conversation", "hint": hint, "source": source}),
                || format!("{source}: no conversation for hint {hint} yet; kept"),
            );
        }
        Received::Duplicate => {
            print(
                global,
                &json!({"event": "duplicate", "source": source}),
                || format!("{source}: already received"),
            );
        }
        Received::Empty => {}
    }
    Ok(())
}

fn receive_dir(global: &Global, client: &mut Client, dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("exchange directory {} does not exist", dir.display());
    }
    let mut hints: Vec<String> = client
        .conversations()?
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    hints.push(client.inbox_id().to_owned());
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(ENVELOPE_EXT) {
            continue;
        }
        let hint = name.split('.').next().unwrap_or_default();
        if hints.iter().any(|h| h == hint) {
            files.push(path);
        }
    }
    // Names carry the creation time, so sorting delivers in send order per sender.
    files.sort();
    let mut count = 0;
    for path in files {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let source = path.display().to_string();
        match client.receive(&bytes) {
            Ok(received) => {
                let keep = matches!(received, Received::UnknownConversation { .. });
                report(global, client, &source, &received)?;
                if !keep {
                    std::fs::remove_file(&path)?;
                }
                count += 1;
            }
            Err(error) => {
                let rejected = path.with_extension("rejected");
                std::fs::rename(&path, &rejected)?;
                print(
                    global,
                    &json!({"event": "rejected", "source": source, "error": error.to_string()}),
                    || {
                        format!(
                            "{source}: rejected ({error}); moved to {}",
                            rejected.display()
                        )
                    },
                );
            }
        }
    }
    if count == 0 && !global.json {
        println!("nothing to receive");
    }
    Ok(())
}

fn receive_stdin(global: &Global, client: &mut Client) -> Result<()> {
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let source = format!("stdin line {}", n + 1);
        let bytes = hex::decode(line).with_context(|| format!("{source}: not hex"))?;
        let received = client.receive(&bytes).with_context(|| source.clone())?;
        report(global, client, &source, &received)?;
    }
    Ok(())
}
