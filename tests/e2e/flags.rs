//! Every numeric flag of every command at 0, 1 and the largest value its type allows,
//! on a few sample documents: rlpt never panics and never hangs. It does the job
//! (exit 0, the output finished) or refuses with an error that names the flag (exit 1
//! or 2).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A run longer than this is a hang. Generous: `train` and `sft` share two loaded
/// cores with the other e2e tests, and a hang never ends at all.
const LIMIT: Duration = Duration::from_secs(300);

const USIZE_MAX: &str = "18446744073709551615";
const F64_MAX: &str = "1.7976931348623157e308";
const F32_MAX: &str = "3.4028235e38";

/// The inputs each command reads: a few documents, their triples, tagged triples, and
/// the default trainer config with a 2-step cold start (the flags matter here, not
/// the 60 steps of the default's).
struct Fixture {
    work: tempfile::TempDir,
    jsonl: PathBuf,
    documents: PathBuf,
    triples: PathBuf,
    tagged: PathBuf,
    train_config: PathBuf,
}

fn tokenizer() -> String {
    arg(&repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz")).to_string()
}

fn tiny() -> String {
    arg(&repo_root().join("data-samples/tiny")).to_string()
}

impl Fixture {
    fn new() -> Self {
        let work = tempfile::tempdir().unwrap();
        let jsonl = work.path().join("docs.jsonl");
        let mut lines = Vec::new();
        for file in ["stem-en.jsonl", "stem-fr.jsonl", "stem-es.jsonl"] {
            let text = std::fs::read_to_string(sample_dir().join(file)).unwrap();
            lines.extend(text.lines().take(6).map(str::to_string));
        }
        std::fs::write(&jsonl, lines.join("\n")).unwrap();
        let documents = work.path().join("documents");
        rlpt_ok(&ingest_args(&jsonl, &documents, &[]));
        let triples = work.path().join("triples");
        rlpt_ok(&[
            "segment",
            "--input",
            arg(&documents),
            "--output",
            arg(&triples),
            "--tokenizer",
            &tokenizer(),
        ]);
        let tagged = work.path().join("tagged");
        rlpt_ok(&[
            "entropy",
            "--input",
            arg(&triples),
            "--output",
            arg(&tagged),
            "--model",
            &tiny(),
        ]);
        let train_config = train_config_with_cold_start(work.path(), 2);
        Self {
            work,
            jsonl,
            documents,
            triples,
            tagged,
            train_config,
        }
    }

    /// A fresh output directory for one case.
    fn output(&self, case: usize) -> PathBuf {
        self.work.path().join(format!("out-{case}"))
    }
}

/// Builds a command's arguments (before the flag under test) for a fixture and output.
type ArgsFor = Box<dyn Fn(&Fixture, &Path) -> Vec<String>>;

/// A command and the flags it takes: `args(output)` before the flag under test.
struct Command {
    name: &'static str,
    args: ArgsFor,
    flags: Vec<Flag>,
}

/// A flag and the values it is tried with.
type Flag = (&'static str, &'static [&'static str]);

/// 0, 1 and the largest `usize` (`u64`).
const INTEGERS: &[&str] = &["0", "1", USIZE_MAX];

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}

/// Flags of every stage that reads or writes a table: layout and sharing.
fn layout_flags() -> Vec<Flag> {
    vec![
        ("--unit-bytes", INTEGERS),
        ("--max-shard-rows", INTEGERS),
        ("--max-shard-bytes", INTEGERS),
        ("--rank", INTEGERS),
        ("--world-size", INTEGERS),
    ]
}

/// A stage command: `NAME --input INPUT --output OUTPUT EXTRA…`, with its own flags
/// and the layout and sharing ones.
fn table_stage(
    name: &'static str,
    input: fn(&Fixture) -> &Path,
    extra: Vec<String>,
    flags: Vec<Flag>,
) -> Command {
    Command {
        name,
        args: Box::new(move |fixture, output| {
            let mut args = strings(&[
                name,
                "--input",
                arg(input(fixture)),
                "--output",
                arg(output),
            ]);
            args.extend(extra.iter().cloned());
            args
        }),
        flags: flags.into_iter().chain(layout_flags()).collect(),
    }
}

fn commands() -> Vec<Command> {
    let humaneval = format!(
        "humaneval={}:prompt",
        arg(&repo_root().join("data-samples/benchmarks/HumanEval.jsonl.gz"))
    );
    vec![
        table_stage("ingest", |f| &f.jsonl, vec![], vec![]),
        table_stage(
            "dedup",
            |f| &f.documents,
            vec![],
            vec![
                ("--threshold", &["0", "1", F64_MAX]),
                ("--ngram", INTEGERS),
                ("--char-ngram", INTEGERS),
                ("--num-perm", INTEGERS),
                ("--bands", INTEGERS),
                ("--rows", INTEGERS),
                ("--sketch-size", INTEGERS),
                ("--sort-memory", INTEGERS),
            ],
        ),
        table_stage(
            "filter",
            |f| &f.documents,
            vec![],
            vec![
                ("--min-words", INTEGERS),
                ("--max-words", INTEGERS),
                ("--min-mean-word-length", &["0", "1", F64_MAX]),
                ("--min-alpha-word-ratio", &["0", "1", F64_MAX]),
                ("--min-stop-words", INTEGERS),
                ("--max-dup-line-ratio", &["0", "1", F64_MAX]),
                ("--top-ngrams", &["1:0", "1:1", "18446744073709551615:0"]),
                ("--dup-ngrams", &["1:0", "1:1", "18446744073709551615:0"]),
                ("--c4-min-sentences", INTEGERS),
                ("--c4-max-word-length", INTEGERS),
                ("--fineweb-short-line-length", INTEGERS),
                ("--min-lang-score", &["0", "1", F64_MAX]),
            ],
        ),
        table_stage(
            "pii",
            |f| &f.documents,
            vec![],
            vec![("--drop-above", &["0", "1", "4294967295"])],
        ),
        table_stage(
            "decontam",
            |f| &f.documents,
            strings(&["--benchmark", &humaneval]),
            vec![
                ("--ngram", INTEGERS),
                ("--window", INTEGERS),
                ("--max-splits", INTEGERS),
                ("--min-chars", INTEGERS),
            ],
        ),
        table_stage(
            "segment",
            |f| &f.documents,
            strings(&["--tokenizer", &tokenizer()]),
            vec![
                ("--min-segment-chars", INTEGERS),
                ("--min-segment-tokens", INTEGERS),
                ("--max-segment-tokens", INTEGERS),
                ("--min-context-segments", INTEGERS),
                ("--max-context-tokens", INTEGERS),
            ],
        ),
        table_stage(
            "entropy",
            |f| &f.triples,
            strings(&["--model", &tiny()]),
            vec![
                ("--top-k", INTEGERS),
                ("--batch-tokens", INTEGERS),
                ("--unit-tokens", INTEGERS),
                ("--thresholds", &["0", "1", F32_MAX]),
                ("--min-entropy", &["0", "1", F32_MAX]),
            ],
        ),
        Command {
            name: "inspect",
            args: Box::new(|fixture, _| strings(&["inspect", arg(&fixture.tagged)])),
            flags: vec![("--head", INTEGERS)],
        },
        Command {
            name: "train",
            args: Box::new(|fixture, output| {
                strings(&[
                    "train",
                    "--config",
                    arg(&fixture.train_config),
                    "--input",
                    arg(&fixture.tagged),
                    "--output",
                    arg(output),
                ])
            }),
            flags: vec![("--steps", &["0", "1"]), ("--seed", INTEGERS)],
        },
        Command {
            name: "sft",
            args: Box::new(|fixture, output| {
                strings(&[
                    "sft",
                    "--config",
                    arg(&fixture.train_config),
                    "--input",
                    arg(&fixture.tagged),
                    "--output",
                    arg(output),
                ])
            }),
            flags: vec![("--steps", &["0", "1"]), ("--seed", INTEGERS)],
        },
        Command {
            name: "eval",
            args: Box::new(|fixture, _| {
                strings(&[
                    "eval",
                    "--input",
                    arg(&fixture.tagged),
                    "--tasks",
                    "next-token",
                ])
            }),
            flags: vec![("--limit", INTEGERS)],
        },
        Command {
            name: "tokenizer train",
            args: Box::new(|fixture, output| {
                let output = output.join("tokenizer.json");
                strings(&[
                    "tokenizer",
                    "train",
                    "--input",
                    arg(&fixture.jsonl),
                    "--output",
                ])
                .into_iter()
                .chain([arg(&output).to_string()])
                .collect()
            }),
            flags: vec![("--vocab-size", INTEGERS)],
        },
        Command {
            name: "model init",
            args: Box::new(|_, output| {
                let config = repo_root().join("data-samples/tiny/config.json");
                strings(&[
                    "model",
                    "init",
                    "--config",
                    arg(&config),
                    "--output",
                    arg(output),
                ])
            }),
            flags: vec![("--seed", INTEGERS)],
        },
        Command {
            name: "slurm submit",
            args: Box::new(|_, output| {
                strings(&["slurm", "submit", "--dry-run", "--out-dir", arg(output)])
            }),
            flags: vec![("--array", INTEGERS), ("--cpus-per-task", INTEGERS)],
        },
    ]
}

/// How one run ended.
enum Outcome {
    Exited(i32, String),
    Killed(String),
    Hung,
}

fn run(args: &[String]) -> Outcome {
    let mut child = rlpt_in(&repo_root())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text).ok();
        text
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = reader.join().unwrap();
            return match status.code() {
                Some(code) => Outcome::Exited(code, stderr),
                None => Outcome::Killed(stderr),
            };
        }
        if started.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            return Outcome::Hung;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a refusal's message names the flag (as `--flag` or its config key).
fn names_flag(stderr: &str, flag: &str) -> bool {
    let key = flag.trim_start_matches('-');
    stderr.contains(flag) || stderr.contains(key) || stderr.contains(&key.replace('-', "_"))
}

#[test]
fn no_numeric_flag_value_panics_or_hangs() {
    let fixture = Fixture::new();
    let mut failures = Vec::new();
    let mut case = 0;
    let mut refused = 0;
    for command in commands() {
        for (flag, values) in &command.flags {
            for value in values.iter() {
                case += 1;
                let output = fixture.output(case);
                let mut args = (command.args)(&fixture, &output);
                args.extend([flag.to_string(), value.to_string()]);
                let shown = format!("rlpt {}", args.join(" "));
                match run(&args) {
                    Outcome::Exited(0, _) => {}
                    Outcome::Exited(1 | 2, stderr) if names_flag(&stderr, flag) => refused += 1,
                    Outcome::Exited(code, stderr) => failures.push(format!(
                        "{shown}: exit {code} without naming {flag}:\n{stderr}"
                    )),
                    Outcome::Killed(stderr) => {
                        failures.push(format!("{shown}: killed by a signal:\n{stderr}"))
                    }
                    Outcome::Hung => {
                        failures.push(format!("{shown}: still running after {LIMIT:?}"))
                    }
                }
            }
        }
        eprintln!("{}: done", command.name);
    }
    eprintln!("{case} runs, {refused} refused with an error naming the flag");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
