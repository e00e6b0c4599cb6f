//! `rlpt export hf` writes model directories Hugging Face transformers loads without a
//! warning, with the token ids, logits and greedy continuation rlpt computes
//! (tests/hf/check_export.py; torch and transformers from tests/hf/requirements.txt).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use rlpt_lm::{KvCache, Mode, Model, SamplingConfig, Tokenizer, WeightFormat};
use serde_json::{Value, json};

use crate::harness::*;

const TEXT: &str = "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889 \
for the World's Fair. It is";
const NEW_TOKENS: usize = 12;

/// What rlpt computes for [`TEXT`] with the model at `weights` (in f32) and
/// `tokenizer`: the file tests/hf/check_export.py compares transformers with, written
/// into `dir`. Logits must agree within 1e-3, or, for a transformers run in `bf16`,
/// within 1% of the largest logit (bf16 keeps 8 bits of mantissa).
fn rlpt_expectation(weights: &Path, tokenizer: &Path, dir: &Path, bf16: bool) -> PathBuf {
    let model = Model::load(weights, WeightFormat::F32, &Device::Cpu).unwrap();
    let tokenizer = Tokenizer::from_file(tokenizer).unwrap();
    let ids = tokenizer.encode(TEXT).unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = KvCache::new(&model, vec![0]);
    let hidden = model.forward(&input, &mut cache, Mode::Inference).unwrap();
    let logits: Vec<f32> = model
        .logits(&hidden)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let largest = logits.iter().fold(0f32, |m, l| m.max(l.abs()));
    let tolerance = if bf16 { 0.01 * largest } else { 1e-3 };
    let logits_file = dir.join("rlpt-logits.f32");
    let bytes: Vec<u8> = logits.iter().flat_map(|l| l.to_le_bytes()).collect();
    fs::write(&logits_file, bytes).unwrap();
    let greedy = SamplingConfig {
        temperature: 0.0,
        max_tokens: NEW_TOKENS,
        ..SamplingConfig::default()
    };
    let pad = tokenizer.eos().unwrap_or(0);
    let generated =
        rlpt_lm::generate(&model, &tokenizer, std::slice::from_ref(&ids), &greedy, pad).unwrap();
    let expected = dir.join("rlpt-expected.json");
    let record = json!({
        "text": TEXT,
        "ids": ids,
        "logits_file": logits_file,
        "greedy": generated[0].tokens,
        "max_new_tokens": NEW_TOKENS,
        "tolerance": tolerance,
    });
    fs::write(&expected, record.to_string()).unwrap();
    expected
}

/// tests/hf/check_export.py's findings on `exported` against `expected`; fails the
/// test with its report when transformers and rlpt disagree.
fn transformers_check(python: &str, exported: &Path, expected: &Path) -> Value {
    python_report(
        python,
        "check_export.py",
        &[arg(exported), arg(expected)],
        &[],
    )
}

/// `rlpt export hf FLAG SOURCE --output OUTPUT EXTRA…` (FLAG: `--model` or
/// `--checkpoint`), as a user runs it.
fn export_hf(flag: &str, source: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["export", "hf", flag, arg(source), "--output", arg(output)];
    args.extend_from_slice(extra);
    rlpt(&args)
}

/// [`export_hf`], which must succeed.
fn export_hf_ok(flag: &str, source: &Path, output: &Path, extra: &[&str]) {
    let run = export_hf(flag, source, output, extra);
    assert!(run.status.success(), "{}", stderr(&run));
}

fn config_json(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn an_exported_smollm2_loads_in_transformers_with_rlpts_logits_and_greedy_tokens() {
    let Some(gguf) = fetched("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let Some(python) = hf_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let exported = work.path().join("smollm2-hf");
    export_hf_ok("--model", &gguf, &exported, &[]);
    let config = config_json(&exported);
    assert_eq!(
        (
            &config["rope_theta"],
            &config["bos_token_id"],
            &config["eos_token_id"]
        ),
        (&json!(100000.0), &json!(1), &json!(2)),
        "{config}"
    );
    let expected = rlpt_expectation(&gguf, &gguf, work.path(), false);
    let report = transformers_check(&python, &exported, &expected);
    assert_eq!(report["dtype"], "float32", "{report}");
    assert_eq!(report["greedy_tokens"], NEW_TOKENS, "{report}");
}

#[test]
fn a_trained_checkpoint_exports_as_f32_and_bf16_and_transformers_agrees_with_rlpt() {
    let Some(python) = hf_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    rlpt_ok(&["train", "--output", arg(&run), "--steps", "2"]);
    let exported = work.path().join("tiny-hf");
    export_hf_ok("--checkpoint", &run, &exported, &[]);
    let step = run.join("step-00000002");
    let expected = rlpt_expectation(
        &step.join("model.safetensors"),
        &step.join("tokenizer.json"),
        work.path(),
        false,
    );
    transformers_check(&python, &exported, &expected);

    // bf16: half the bytes, named in config.json, and still rlpt's model: transformers
    // computing in bf16 stays within bf16's rounding of rlpt's f32 logits and picks
    // the same greedy tokens.
    let half = work.path().join("tiny-hf-bf16");
    export_hf_ok("--checkpoint", &step, &half, &["--dtype", "bf16"]);
    assert_eq!(config_json(&half)["dtype"], "bfloat16");
    let size = |dir: &Path| fs::metadata(dir.join("model.safetensors")).unwrap().len();
    assert!(
        size(&half) * 2 < size(&exported) + 4096,
        "bf16 halves the weights"
    );
    let loose = rlpt_expectation(
        &half.join("model.safetensors"),
        &half.join("tokenizer.json"),
        work.path(),
        true,
    );
    let report = transformers_check(&python, &half, &loose);
    assert_eq!(report["dtype"], "bfloat16", "{report}");
}

#[test]
fn export_refuses_to_overwrite_and_to_read_a_damaged_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    rlpt_ok(&["train", "--output", arg(&run), "--steps", "2"]);
    let exported = work.path().join("hf");
    fs::create_dir(&exported).unwrap();
    fs::write(exported.join("mine.txt"), "keep me").unwrap();
    let refused = export_hf("--checkpoint", &run, &exported, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert!(exported.join("mine.txt").exists(), "nothing was touched");

    export_hf_ok("--checkpoint", &run, &exported, &["--force"]);
    assert!(!exported.join("mine.txt").exists());
    assert!(exported.join("model.safetensors").exists());
    assert_eq!(
        tmp_entries(work.path()),
        Vec::<String>::new(),
        "no staging directory is left"
    );

    let tokenizer = run.join("step-00000002/tokenizer.json");
    let mut damaged = fs::read(&tokenizer).unwrap();
    damaged[10] ^= 1;
    fs::write(&tokenizer, damaged).unwrap();
    let refused = export_hf("--checkpoint", &run, &work.path().join("other"), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("tokenizer.json: checksum"),
        "{}",
        stderr(&refused)
    );
    assert!(!work.path().join("other").exists());
}

/// An OpenAI-compatible judge on localhost that answers `Score: 1` when the prompt's
/// prediction begins its reference (a lexical stand-in for a judge model), and keeps
/// every prompt it was sent.
struct LexicalJudge {
    url: String,
    prompts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LexicalJudge {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = prompts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // The prompt is recorded before the answer leaves, so a caller that has
                // its answer finds its prompt in `take_prompts`.
                answer_one(stream.unwrap(), |prompt| {
                    seen.lock().unwrap().push(prompt.to_string())
                });
            }
        });
        Self { url, prompts }
    }

    fn take_prompts(&self) -> Vec<String> {
        let mut prompts = std::mem::take(&mut *self.prompts.lock().unwrap());
        prompts.sort();
        prompts
    }
}

/// Reads one chat request from `stream`, hands its prompt to `record`, then answers it.
fn answer_one(mut stream: std::net::TcpStream, record: impl FnOnce(&str)) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let request: Value = serde_json::from_slice(&body).unwrap();
    let prompt = request["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let between = |start: &str, end: &str| {
        let from = prompt.find(start).unwrap() + start.len();
        let to = prompt[from..].find(end).unwrap() + from;
        prompt[from..to].to_string()
    };
    let reference = between("Reference:\n", "\n\nPrediction:\n");
    let prediction = between("Prediction:\n", "\n\nAnswer with");
    let verdict =
        !prediction.trim().is_empty() && reference.trim_start().starts_with(prediction.trim());
    let answer =
        json!({"choices": [{"message": {"content": format!("Score: {}", u8::from(verdict))}}]});
    let text = answer.to_string();
    record(&prompt);
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
}

/// A config of the three tasks, one per reward kind, over the sample triples, its
/// judge at `endpoint`.
fn three_reward_config(dir: &Path, endpoint: &str) -> PathBuf {
    let samples = repo_root().join("data-samples");
    let config = dir.join("export.toml");
    fs::write(
        &config,
        format!(
            "model = \"{}\"\ninput = \"{}\"\nmax_prompt_tokens = 256\n\
             [data]\nhard_token_entropy = 1.0\nholdout = 0.1\n\
             [[task]]\nkind = \"next-token\"\nreward = \"prefix-token\"\n\
             [[task]]\nkind = \"asr\"\nreward = \"prefix-semantic\"\n\
             [[task]]\nkind = \"msr\"\nreward = \"strict\"\n\
             [judge]\nendpoint = \"{endpoint}\"\nretries = 0\n",
            samples.join("tiny").display(),
            samples.join("triples/train.parquet").display(),
        ),
    )
    .unwrap();
    config
}

/// Completions of one exported row, right and wrong in each way the rewards tell
/// apart: the first token(s) with and without the reference's leading space, a cut
/// inside a token, a wrong answer, no answer, an answer inside the reasoning only.
fn completions_of(task: &str, reference: &str, token_ends: &[usize]) -> Vec<String> {
    let first = &reference[..token_ends[0]];
    let two = &reference[..token_ends[token_ends.len().min(2) - 1]];
    let inside = (1..first.len()).rev().find(|&i| first.is_char_boundary(i));
    let wrap = |answer: &str| match task {
        "next-token" => format!("\\boxed{{{answer}}}"),
        _ => format!("<|startofprediction|>{answer}<|endofprediction|>"),
    };
    let mut completions = vec![
        wrap(first),
        wrap(first.trim_start()),
        wrap(two),
        wrap(reference),
        wrap(&format!("  {}", reference.trim())),
        wrap(&reference.to_uppercase()),
        wrap("zebra"),
        wrap(""),
        format!("<think>{}</think> nothing", wrap(first)),
        format!("{} then {}", wrap("zebra"), wrap(first)),
        "no answer at all".to_string(),
    ];
    if let Some(cut) = inside {
        completions.push(wrap(&first[..cut]));
    }
    completions
}

fn numbers(list: &str) -> Vec<usize> {
    list.trim_matches(['[', ']'])
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

/// `rlpt export verl|trl` writes the tasks `rlpt train` draws, and rlpt_reward.py gives
/// the rewards `rlpt train`'s scorer gives on the same completions, through verl's and
/// TRL's entry points, the judge sent the same prompts.
#[test]
fn exported_rewards_match_rlpts_scorer_for_verl_and_trl() {
    let judge = LexicalJudge::start();
    let work = tempfile::tempdir().unwrap();
    let config = three_reward_config(work.path(), &judge.url);
    let verl = work.path().join("verl");
    let trl = work.path().join("trl");
    for (engine, dir) in [("verl", &verl), ("trl", &trl)] {
        let run = rlpt_ok(&[
            "export",
            engine,
            "--config",
            arg(&config),
            "--output",
            arg(dir),
        ]);
        let report: Value = serde_json::from_str(&stdout(&run)).unwrap();
        assert!(report["train"].as_u64().unwrap() > 100, "{report}");
        assert!(report["test"].as_u64().unwrap() > 10, "{report}");
    }
    let verl_rows = file_rows(&verl.join("test.parquet"));
    let trl_rows = file_rows(&trl.join("test.parquet"));
    assert_eq!(verl_rows.len(), trl_rows.len());
    for (v, t) in verl_rows.iter().zip(&trl_rows) {
        assert_eq!(get(v, "prompt"), get(t, "prompt"));
        assert!(get(v, "reward_model").contains(get(t, "reference")));
        assert_eq!(get(v, "data_source"), format!("rlpt/{}", get(t, "task")));
    }
    let tasks: std::collections::BTreeSet<&str> =
        trl_rows.iter().map(|row| get(row, "task")).collect();
    assert_eq!(tasks.len(), 3, "every task has held-out rows: {tasks:?}");

    // rlpt's scorer, as `rlpt train` runs it, on completions of each held-out row.
    let train_config = rlpt_trainer::TrainConfig::from_file(&config).unwrap();
    let scorer = rlpt_trainer::Scorer::new(&train_config).unwrap();
    let model = &train_config.model;
    let tokenizer = Tokenizer::from_file(&model.join("tokenizer.json")).unwrap();
    let policy =
        rlpt_trainer::policy::Policy::load_for(model, tokenizer, &Device::Cpu, &train_config)
            .unwrap();
    let mut cases = Vec::new();
    for row in trl_rows.iter().step_by(3) {
        let task = get(row, "task");
        let reference = get(row, "reference");
        let token_ends = numbers(get(row, "token_ends"));
        let following = row["following"].clone();
        let instance = rlpt_trainer::tasks::Instance {
            before: get(row, "context").to_string(),
            after: None,
            reference: reference.to_string(),
            following: following.clone(),
            token_ends: token_ends.clone(),
            token_entropy: None,
        };
        let index = scorer
            .tasks()
            .iter()
            .position(|spec| spec.kind.name() == task)
            .unwrap();
        for completion in completions_of(task, reference, &token_ends) {
            let score = scorer
                .score(&policy, index, &instance, &[completion.as_str()])
                .unwrap()
                .remove(0);
            cases.push(json!({
                "task": task,
                "reward": get(row, "reward"),
                "completion": completion,
                "reference": reference,
                "token_ends": token_ends,
                "context": get(row, "context"),
                "following": following,
                "rlpt": score.reward,
            }));
        }
    }
    let rlpt_prompts = judge.take_prompts();
    let rewarded = cases.iter().filter(|c| c["rlpt"] == 1.0).count();
    assert!(
        rewarded > cases.len() / 5 && rewarded < cases.len() * 4 / 5,
        "the cases mix right and wrong answers: {rewarded} of {}",
        cases.len()
    );
    assert!(!rlpt_prompts.is_empty(), "the asr cases were judged");

    let cases_path = work.path().join("cases.json");
    fs::write(&cases_path, Value::from(cases).to_string()).unwrap();
    for dir in [&verl, &trl] {
        python_report(
            "python3",
            "reward_parity.py",
            &[arg(dir), arg(&cases_path)],
            &[("RLPT_JUDGE_ENDPOINT", &judge.url)],
        );
        // verl's and TRL's entry points each asked the judge what rlpt asked it.
        let python_prompts = judge.take_prompts();
        let doubled: Vec<String> = rlpt_prompts
            .iter()
            .flat_map(|p| [p.clone(), p.clone()])
            .collect();
        assert_eq!(python_prompts, doubled, "the judge's prompts differ");
    }
}

/// TRL's GRPOTrainer runs two steps on an `rlpt export trl` dataset with the exported
/// reward function and a model `rlpt export hf` wrote.
#[test]
fn trl_trains_two_steps_on_an_exported_dataset_with_the_exported_reward() {
    let Some(python) = hf_python() else {
        return;
    };
    let found = Command::new(&python)
        .args(["-c", "import trl, datasets"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{python} lacks trl: run tests/hf/setup.sh");
    let work = tempfile::tempdir().unwrap();
    let dataset = work.path().join("trl");
    rlpt_ok(&["export", "trl", "--output", arg(&dataset)]);
    let model = work.path().join("tiny-hf");
    let tiny = repo_root().join("data-samples/tiny");
    export_hf_ok("--model", &tiny, &model, &[]);
    let run = work.path().join("trl-run");
    let report = python_report(
        &python,
        "trl_two_steps.py",
        &[arg(&dataset), arg(&model), arg(&run)],
        &[],
    );
    assert_eq!(report["steps"], 2, "{report}");
    assert_eq!(report["rewards"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(
        report["reward_keys"][0], "rewards/trl_reward/mean",
        "{report}"
    );
}
