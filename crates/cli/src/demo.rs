//! `libchat demo`: Saro and Raya chat end to end on real database files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use libchat::{Client, ClientConfig, DatabaseConfig, DatabaseKey, Received, Sent};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::Global;
use crate::output::Out;

/// Arguments of `demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Directory for the two databases, kept afterwards (default: a temporary directory,
    /// removed at the end). Encrypted with --key-env/--key-file when given.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Messages to exchange in total, both directions.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Largest burst one side sends before the other answers; each burst is delivered in a
    /// shuffled order.
    #[arg(long, default_value_t = 8)]
    pub burst: usize,
    /// Seed of the burst sizes and delivery shuffles (default: random). The summary prints it:
    /// the same seed replays the same delivery order, e.g. to reproduce a failure.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            dir: None,
            messages: 1000,
            burst: 8,
            seed: None,
        }
    }
}

struct Party {
    name: &'static str,
    path: PathBuf,
    client: Client,
    convo: String,
}

#[derive(Default)]
struct Tally {
    sent: usize,
    received: usize,
    out_of_order: usize,
    duplicates_refused: usize,
}

fn open(
    global: &Global,
    key: Option<&DatabaseKey>,
    path: &Path,
    name: &'static str,
) -> Result<Client> {
    let mut db = DatabaseConfig::file(path)
        .with_durability(global.durability.into())
        .with_installation(&global.installation);
    if let Some(key) = key {
        db = db.with_key(key.clone());
    }
    Client::open(ClientConfig::new(db, name))
        .with_context(|| format!("cannot open {}", path.display()))
}

/// A progress bar on a terminal (not with `--json`) for runs long enough to wait for.
fn progress(global: &Global, total: usize) -> Option<ProgressBar> {
    const LONG_RUN: usize = 2_000;
    if global.json || total < LONG_RUN || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} messages {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("demo");
    Some(bar)
}

/// Runs the demo.
pub(crate) fn run(global: &Global, args: &DemoArgs) -> Result<()> {
    ensure!(args.messages >= 2, "--messages must be at least 2");
    ensure!(args.burst >= 1, "--burst must be at least 1");
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let saro_path = dir.join("saro.db");
    let raya_path = dir.join("raya.db");
    for path in [&saro_path, &raya_path] {
        if path.exists() {
            bail!(
                "{} already exists: give the demo an empty --dir",
                path.display()
            );
        }
    }
    let key = global.key()?;
    if args.dir.is_some() {
        crate::chat::warn_plaintext(
            global,
            &format!(
                "the demo's databases {} and {} are",
                saro_path.display(),
                raya_path.display()
            ),
        );
    }
    let seed = args.seed.unwrap_or_else(|| rand::thread_rng().r#gen());
    let mut out = Out::new(global.mode())?;
    out.say(&format!(
        "seed {seed} (burst sizes and delivery order; `--seed {seed}` replays this run)"
    ))?;
    out.say(&match &args.dir {
        Some(_) => format!(
            "databases in {} ({}), kept afterwards",
            dir.display(),
            if key.is_some() {
                "encrypted"
            } else {
                "not encrypted"
            }
        ),
        None => format!(
            "databases in the temporary directory {} ({}), removed at the end",
            dir.display(),
            if key.is_some() {
                "encrypted"
            } else {
                "not encrypted"
            }
        ),
    })?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut seen: HashSet<String> = HashSet::new();
    let started = Instant::now();

    // Raya publishes an intro bundle; Saro connects with a first message.
    let mut raya_client = open(global, key.as_ref(), &raya_path, "raya")?;
    let mut saro_client = open(global, key.as_ref(), &saro_path, "saro")?;
    let bundle = raya_client.create_intro_bundle()?;
    let first = "saro #0: hello Raya, here is my invite".to_owned();
    let sent = saro_client.start_conversation(&bundle, first.as_bytes())?;
    tally.sent += 1;
    let raya_convo = match raya_client.receive(&sent.envelope.bytes)? {
        Received::Content {
            conversation_id,
            content,
            is_new_conversation,
            inbox_id,
            ..
        } => {
            ensure!(
                is_new_conversation,
                "the handshake did not create a conversation"
            );
            ensure!(
                content == first.as_bytes(),
                "the first message arrived altered"
            );
            raya_client.acknowledge(inbox_id)?;
            conversation_id
        }
        other => bail!("the handshake was not accepted: {other:?}"),
    };
    saro_client.mark_delivered(sent.outbox_id)?;
    tally.received += 1;
    seen.insert(first);
    let mut saro = Party {
        name: "saro",
        path: saro_path,
        client: saro_client,
        convo: sent.conversation_id,
    };
    let mut raya = Party {
        name: "raya",
        path: raya_path,
        client: raya_client,
        convo: raya_convo,
    };
    out.say(&format!(
        "handshake done: saro {} <-> raya {}",
        saro.convo, raya.convo
    ))?;
    let bar = progress(global, args.messages);

    let mut restarted = false;
    let mut raya_turn = true;
    while tally.sent < args.messages {
        if !restarted && tally.sent >= args.messages / 2 {
            // Close both clients and reopen them from their files.
            let (saro_path, raya_path) = (saro.path.clone(), raya.path.clone());
            drop(std::mem::replace(
                &mut saro.client,
                open(global, key.as_ref(), &saro_path, "saro")?,
            ));
            drop(std::mem::replace(
                &mut raya.client,
                open(global, key.as_ref(), &raya_path, "raya")?,
            ));
            restarted = true;
            let line = format!(
                "both clients closed and reopened after {} messages",
                tally.sent
            );
            match &bar {
                Some(bar) => bar.suspend(|| out.say(&line))?,
                None => out.say(&line)?,
            }
        }
        let burst = rng
            .gen_range(1..=args.burst)
            .min(args.messages - tally.sent);
        let (from, to) = if raya_turn {
            (&mut raya, &mut saro)
        } else {
            (&mut saro, &mut raya)
        };
        exchange(from, to, burst, &mut rng, &mut tally, &mut seen)?;
        if let Some(bar) = &bar {
            bar.set_position(tally.sent as u64);
        }
        raya_turn = !raya_turn;
    }
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    ensure!(
        tally.received == tally.sent,
        "{} sent but {} received",
        tally.sent,
        tally.received
    );
    ensure!(seen.len() == tally.sent, "some message was delivered twice");
    for party in [&mut saro, &mut raya] {
        ensure!(
            party.client.outbox(1)?.is_empty(),
            "{}'s outbox is not empty",
            party.name
        );
        ensure!(
            party.client.inbox(1)?.is_empty(),
            "{}'s inbox is not empty",
            party.name
        );
    }
    let saro_size = saro.client.database_size()?.bytes();
    let raya_size = raya.client.database_size()?.bytes();
    let history = saro.client.history(&saro.convo, usize::MAX)?.len();
    let report = Report {
        seed,
        elapsed,
        saro_size,
        raya_size,
        history,
        encrypted: key.is_some(),
    };
    drop(saro);
    drop(raya);
    summary(&mut out, global, args, &tally, &report, &dir)
}

/// `from` sends `burst` messages; `to` receives them in a shuffled order, one of them twice.
fn exchange(
    from: &mut Party,
    to: &mut Party,
    burst: usize,
    rng: &mut StdRng,
    tally: &mut Tally,
    seen: &mut HashSet<String>,
) -> Result<()> {
    let mut batch: Vec<(usize, String, Sent)> = Vec::with_capacity(burst);
    for i in 0..burst {
        let text = format!(
            "{} #{}: message {} of this burst",
            from.name,
            tally.sent,
            i + 1
        );
        let sent = from.client.send(&from.convo, text.as_bytes())?;
        tally.sent += 1;
        batch.push((i, text, sent));
    }
    batch.shuffle(rng);
    tally.out_of_order += batch
        .iter()
        .enumerate()
        .filter(|(pos, (i, _, _))| pos != i)
        .count();
    for (_, text, sent) in &batch {
        match to.client.receive(&sent.envelope.bytes)? {
            Received::Content {
                conversation_id,
                content,
                inbox_id,
                ..
            } => {
                ensure!(
                    conversation_id == to.convo,
                    "delivered to the wrong conversation"
                );
                ensure!(content == text.as_bytes(), "message arrived altered");
                ensure!(seen.insert(text.clone()), "message delivered twice: {text}");
                to.client.acknowledge(inbox_id)?;
                tally.received += 1;
            }
            other => bail!(
                "{} could not read a message from {}: {other:?}",
                to.name,
                from.name
            ),
        }
        from.client.mark_delivered(sent.outbox_id)?;
    }
    // The transport redelivers one envelope: it must be refused as a duplicate.
    if let Some((_, _, sent)) = batch.first() {
        match to.client.receive(&sent.envelope.bytes)? {
            Received::Duplicate => tally.duplicates_refused += 1,
            other => bail!("a redelivered envelope was not refused: {other:?}"),
        }
    }
    Ok(())
}

/// Figures of a finished run.
struct Report {
    seed: u64,
    elapsed: Duration,
    saro_size: u64,
    raya_size: u64,
    history: usize,
    encrypted: bool,
}

fn summary(
    out: &mut Out,
    global: &Global,
    args: &DemoArgs,
    tally: &Tally,
    report: &Report,
    dir: &Path,
) -> Result<()> {
    let rate = tally.received as f64 / report.elapsed.as_secs_f64().max(1e-9);
    let durability = format!("{:?}", global.durability).to_lowercase();
    let kept = args.dir.is_some();
    let value = json!({
        "messages_sent": tally.sent,
        "messages_received": tally.received,
        "out_of_order_deliveries": tally.out_of_order,
        "duplicates_refused": tally.duplicates_refused,
        "restarted": true,
        "elapsed_ms": report.elapsed.as_millis() as u64,
        "messages_per_second": rate,
        "saro_db_bytes": report.saro_size,
        "raya_db_bytes": report.raya_size,
        "history_entries": report.history,
        "durability": durability,
        "encrypted": report.encrypted,
        "seed": report.seed,
        "dir": kept.then(|| dir.display().to_string()),
        "dir_removed": !kept,
    });
    out.text(&value, || {
        let mut lines = vec![
            "--- summary ---".to_owned(),
            format!(
                "messages      {} sent, {} received, every one exactly once",
                tally.sent, tally.received
            ),
            format!(
                "reordering    {} deliveries out of order, {} redeliveries refused as duplicates",
                tally.out_of_order, tally.duplicates_refused
            ),
            "restart       both clients closed and reopened half-way".to_owned(),
            format!(
                "throughput    {rate:.0} messages/s (full cycle: send, receive, acknowledge, mark delivered; {durability} durability, {:.2?} total)",
                report.elapsed
            ),
            format!(
                "databases     saro {} KiB, raya {} KiB ({}); saro's history has {} entries",
                report.saro_size / 1024,
                report.raya_size / 1024,
                if report.encrypted { "encrypted" } else { "not encrypted" },
                report.history
            ),
            format!(
                "seed          {} (`--seed {}` replays the same burst sizes and delivery order)",
                report.seed, report.seed
            ),
        ];
        if kept {
            lines.push(format!("files         {} (kept)", dir.display()));
        } else {
            lines.push("files         the temporary directory is removed now".to_owned());
        }
        lines.join("\n")
    })
}
