//! Progress of a running stage on stderr: a bar (bytes, MB/s, docs/s, model tokens/s
//! for the stages that run a model, ETA) when stderr is a terminal, JSON-line events every second under `--log-format json`, nothing
//! under `-q` or when stderr is redirected in text mode.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// An indicatif bar on stderr (drawn only when stderr is a terminal).
    Bar,
    /// `progress` events through the JSON log.
    Json,
    /// Nothing.
    Off,
}

const JSON_INTERVAL: Duration = Duration::from_secs(1);

/// Progress through a file read by rows: turns rows read into the bytes of the file
/// they stand for (rows read / rows in the file × file size).
#[derive(Debug, Clone)]
pub struct RowsToBytes {
    file_bytes: u64,
    total_rows: u64,
    rows: u64,
    reported: u64,
}

impl RowsToBytes {
    /// A file of `file_bytes` bytes holding `total_rows` rows.
    pub fn new(file_bytes: u64, total_rows: u64) -> Self {
        Self {
            file_bytes,
            total_rows: total_rows.max(1),
            rows: 0,
            reported: 0,
        }
    }

    /// Records `rows` more rows read; returns the bytes they stand for.
    pub fn rows_done(&mut self, rows: u64) -> u64 {
        self.rows += rows;
        let bytes = self.file_bytes * self.rows.min(self.total_rows) / self.total_rows;
        let delta = bytes - self.reported;
        self.reported = bytes;
        delta
    }
}

/// Progress of one stage run.
pub struct Progress {
    mode: ProgressMode,
    stage: String,
    total_bytes: u64,
    bytes: AtomicU64,
    rows: AtomicU64,
    tokens: AtomicU64,
    started: Instant,
    last_event: Mutex<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing progress of `stage` over `total_bytes` of input.
    pub fn new(mode: ProgressMode, stage: &str, total_bytes: u64) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(stage.to_string());
            bar
        });
        Self {
            mode,
            stage: stage.to_string(),
            total_bytes,
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            started: Instant::now(),
            last_event: Mutex::new(Instant::now()),
            bar,
        }
    }

    /// Records `bytes` of input and `rows` records processed.
    pub fn advance(&self, bytes: u64, rows: u64) {
        self.record(bytes, rows, 0);
    }

    /// Records `tokens` run through a model for `bytes` of input, before the rows
    /// they belong to are finished: a stage whose batches take minutes moves with
    /// each forward pass.
    pub fn advance_tokens(&self, bytes: u64, tokens: u64) {
        self.record(bytes, 0, tokens);
    }

    fn record(&self, bytes: u64, rows: u64, tokens: u64) {
        let bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let rows = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let tokens = self.tokens.fetch_add(tokens, Ordering::Relaxed) + tokens;
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(bytes);
                    bar.set_message(self.message(rows, tokens));
                }
            }
            ProgressMode::Json => {
                let mut last = self.last_event.lock().expect("progress lock");
                if last.elapsed() >= JSON_INTERVAL {
                    *last = Instant::now();
                    self.emit_event(bytes, rows, tokens);
                }
            }
            ProgressMode::Off => {}
        }
    }

    /// Input bytes, rows and model tokens recorded so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
            self.tokens.load(Ordering::Relaxed),
        )
    }

    /// The bar's message: documents, and model tokens once a model has run.
    fn message(&self, rows: u64, tokens: u64) -> String {
        let docs = format!("{rows} docs {:.0} docs/s", self.per_second(rows));
        if tokens == 0 {
            docs
        } else {
            format!("{docs} {tokens} tok {:.0} tok/s", self.per_second(tokens))
        }
    }

    /// Stops the bar (or emits the final event).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.mode == ProgressMode::Json {
            let (bytes, rows, tokens) = self.totals();
            self.emit_event(bytes, rows, tokens);
        }
    }

    fn per_second(&self, amount: u64) -> f64 {
        amount as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn emit_event(&self, bytes: u64, rows: u64, tokens: u64) {
        let bytes_per_s = self.per_second(bytes);
        let eta_s = if bytes_per_s > 0.0 {
            self.total_bytes.saturating_sub(bytes) as f64 / bytes_per_s
        } else {
            f64::NAN
        };
        tracing::info!(
            target: "rlpt::progress",
            stage = %self.stage,
            bytes,
            total_bytes = self.total_bytes,
            docs = rows,
            mb_per_s = bytes_per_s / 1e6,
            docs_per_s = self.per_second(rows),
            tokens,
            tokens_per_s = self.per_second(tokens),
            eta_s,
            "progress"
        );
    }
}
