//! `rlpt dedup` against ground truth: exact Jaccard of word 5-gram sets computed by
//! brute force over real text (Wikipedia paragraphs with planted edits, the license
//! texts of /usr/share/common-licenses), non-English text, and the same output however
//! the work is split.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Child;

use rlpt_rng::SplitMix64;
use rlpt_stages::dedup::normalize::normalize;
use unicode_segmentation::UnicodeSegmentation;

use crate::harness::*;

const THRESHOLD: f64 = 0.8;
const LICENSES: &str = "/usr/share/common-licenses";

/// A document of the test corpus.
struct Doc {
    id: String,
    text: String,
}

/// The word 5-gram set of a text as dedup defines it (normalised, UAX #29 words),
/// each shingle hashed to 64 bits.
fn shingles(text: &str) -> HashSet<u64> {
    let normalized = normalize(text).text;
    let words: Vec<&str> = normalized.unicode_words().collect();
    let n = 5.min(words.len().max(1));
    words
        .windows(n)
        .map(|window| {
            let mut hasher = DefaultHasher::new();
            window.hash(&mut hasher);
            hasher.finish()
        })
        .collect()
}

fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let shared = a.intersection(b).count();
    shared as f64 / (a.len() + b.len() - shared).max(1) as f64
}

/// The test's draws, from rlpt's one random stream.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.0.next_f64() <= probability
    }

    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
}

/// `text` with each word, at `rate`, dropped, preceded by an inserted word, or swapped
/// with the next one.
fn edit(text: &str, rate: f64, vocabulary: &[&str], rng: &mut Rng) -> String {
    let mut words: Vec<String> = text.split_whitespace().map(String::from).collect();
    let mut i = 0;
    while i < words.len() {
        if rng.chance(rate) {
            match rng.below(3) {
                0 => {
                    words.remove(i);
                    continue;
                }
                1 => {
                    words.insert(i, vocabulary[rng.below(vocabulary.len())].to_string());
                    i += 1;
                }
                _ if i + 1 < words.len() => words.swap(i, i + 1),
                _ => {}
            }
        }
        i += 1;
    }
    words.join(" ")
}

fn sample_docs() -> Vec<Doc> {
    let mut docs = Vec::new();
    for lang in ["en", "es", "fr"] {
        let text = fs::read_to_string(sample_dir().join(format!("stem-{lang}.jsonl"))).unwrap();
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            docs.push(Doc {
                id: record["id"].as_str().unwrap().to_string(),
                text: record["text"].as_str().unwrap().to_string(),
            });
        }
    }
    docs
}

fn license(name: &str) -> Doc {
    Doc {
        id: format!("license/{name}"),
        text: fs::read_to_string(Path::new(LICENSES).join(name)).unwrap(),
    }
}

/// The sample's paragraphs of 40+ words, every second one with a copy edited at a rate
/// from 0 to 15%, and six license texts.
fn planted_corpus() -> Vec<Doc> {
    let base: Vec<Doc> = sample_docs()
        .into_iter()
        .filter(|d| d.text.split_whitespace().count() >= 40)
        .collect();
    let vocabulary: Vec<&str> = base[0].text.split_whitespace().collect();
    let rates = [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.1, 0.15];
    let mut rng = Rng::new(2026);
    let mut docs = Vec::new();
    for (index, doc) in base.iter().enumerate() {
        if index % 2 == 0 {
            let rate = rates[(index / 2) % rates.len()];
            docs.push(Doc {
                id: format!("{}#edited-{rate}", doc.id),
                text: edit(&doc.text, rate, &vocabulary, &mut rng),
            });
        }
    }
    docs.extend(base);
    for name in [
        "GFDL-1.2", "GFDL-1.3", "LGPL-2", "LGPL-2.1", "GPL-2", "GPL-3",
    ] {
        docs.push(license(name));
    }
    docs
}

/// Writes docs as `files` JSONL files (round robin) and ingests them.
fn ingest_docs(docs: &[&Doc], dir: &Path, files: usize) -> PathBuf {
    let raw = dir.join("raw");
    fs::create_dir_all(&raw).unwrap();
    let mut contents = vec![String::new(); files];
    for (index, doc) in docs.iter().enumerate() {
        let line = serde_json::json!({ "id": doc.id, "text": doc.text }).to_string();
        contents[index % files] += &(line + "\n");
    }
    for (index, text) in contents.iter().enumerate() {
        fs::write(raw.join(format!("docs-{index:02}.jsonl")), text).unwrap();
    }
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&raw, &documents, &["--unit-bytes", "64KiB"]));
    documents
}

fn dedup(documents: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["dedup", "--input", arg(documents), "--output", arg(output)];
    args.extend_from_slice(extra);
    rlpt_ok(&args)
}

/// Clusters from `dedup_clusters`: cluster id → member ids.
fn clusters(output: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut clusters: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in read_rows(&output.join("dedup_clusters")) {
        clusters
            .entry(get(&row, "cluster_id").to_string())
            .or_default()
            .insert(get(&row, "id").to_string());
    }
    clusters
}

fn pairs_of(clusters: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for members in clusters.values() {
        for a in members {
            for b in members
                .range::<String, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            {
                pairs.insert((a.clone(), b.clone()));
            }
        }
    }
    pairs
}

fn kept_ids(output: &Path) -> BTreeSet<String> {
    read_rows(output)
        .iter()
        .map(|r| get(r, "id").to_string())
        .collect()
}

#[test]
fn precision_and_recall_against_brute_force_jaccard() {
    let work = tempfile::tempdir().unwrap();
    let docs = planted_corpus();
    let documents = ingest_docs(&docs.iter().collect::<Vec<_>>(), work.path(), 4);
    let output = work.path().join("deduped");
    dedup(&documents, &output, &[]);

    let sets: Vec<HashSet<u64>> = docs.iter().map(|d| shingles(&d.text)).collect();
    let mut truth = BTreeSet::new();
    let mut jaccards = HashMap::new();
    for i in 0..docs.len() {
        for j in i + 1..docs.len() {
            let (small, large) = (
                sets[i].len().min(sets[j].len()),
                sets[i].len().max(sets[j].len()),
            );
            if (small as f64) < THRESHOLD * large as f64 {
                continue; // J ≤ small / large < threshold
            }
            let similarity = jaccard(&sets[i], &sets[j]);
            let pair = if docs[i].id < docs[j].id {
                (docs[i].id.clone(), docs[j].id.clone())
            } else {
                (docs[j].id.clone(), docs[i].id.clone())
            };
            jaccards.insert(pair.clone(), similarity);
            if similarity >= THRESHOLD {
                truth.insert(pair);
            }
        }
    }
    let predicted = pairs_of(&clusters(&output));
    let correct = predicted.intersection(&truth).count();
    let precision = correct as f64 / predicted.len().max(1) as f64;
    let recall = correct as f64 / truth.len().max(1) as f64;
    eprintln!(
        "dedup quality on {} documents: {} true pairs (J ≥ {THRESHOLD}), {} predicted, precision {precision:.4}, recall {recall:.4}",
        docs.len(),
        truth.len(),
        predicted.len()
    );
    for pair in predicted.difference(&truth) {
        eprintln!(
            "  false positive {pair:?}: exact Jaccard {:?}",
            jaccards.get(pair)
        );
    }
    for pair in truth.difference(&predicted) {
        eprintln!("  missed {pair:?}: exact Jaccard {:?}", jaccards.get(pair));
    }
    assert!(
        truth.len() > 100,
        "the corpus plants enough duplicates: {}",
        truth.len()
    );
    assert!(precision >= 0.97, "precision {precision}");
    assert!(recall >= 0.95, "recall {recall}");

    let license_pair = |a: &str, b: &str| (format!("license/{a}"), format!("license/{b}"));
    assert!(
        predicted.contains(&license_pair("GFDL-1.2", "GFDL-1.3")),
        "GFDL 1.2/1.3 (J≈0.86) are near duplicates"
    );
    assert!(
        !predicted.contains(&license_pair("LGPL-2", "LGPL-2.1")),
        "LGPL 2/2.1 (J≈0.72) are not"
    );
    assert!(
        !predicted.contains(&license_pair("GPL-2", "GPL-3")),
        "GPL 2/3 (J≈0.14) are not"
    );
    let kept = kept_ids(&output);
    assert!(
        kept.contains("license/GFDL-1.2") && !kept.contains("license/GFDL-1.3"),
        "the smallest id is kept"
    );
    let gfdl = read_rows(&output.join("dedup_clusters"))
        .into_iter()
        .find(|r| get(r, "id") == "license/GFDL-1.3")
        .unwrap();
    let estimate: f64 = get(&gfdl, "similarity")
        .parse()
        .unwrap_or_else(|_| panic!("{gfdl:?}"));
    assert!(
        (estimate - 0.856).abs() < 0.1,
        "estimated GFDL similarity {estimate}"
    );
}

fn write_docs(dir: &Path, docs: &[(&str, &str)]) -> PathBuf {
    let docs: Vec<Doc> = docs
        .iter()
        .map(|(id, text)| Doc {
            id: id.to_string(),
            text: text.to_string(),
        })
        .collect();
    ingest_docs(&docs.iter().collect::<Vec<_>>(), dir, 1)
}

#[test]
fn accents_marks_and_scripts_without_spaces_are_handled() {
    let french = "Le pêcheur a péché une fois près de la côte où la mer était très agitée, \
                  puis il est rentré à la maison pour réparer ses filets avant l'été prochain.";
    let stripped = "Le pecheur a peche une fois pres de la cote ou la mer etait tres agitee, \
                    puis il est rentre a la maison pour reparer ses filets avant l'ete prochain.";
    let chinese = "数学是一门研究数量、结构、变化和空间的学科。它通过抽象和逻辑推理，从计数、计算、测量以及对物体形状和运动的观察中发展而来。数学家们扩展这些概念，提出新的猜想，并从公理和定义出发，用严格的推导建立定理。";
    let chinese_copy = chinese.replacen("学科", "科学", 1);
    let chinese_other = "长江是亚洲最长的河流，发源于青藏高原，向东流经多个省份，最后在上海附近注入东海。流域内人口众多，农业和工业都很发达，自古以来就是重要的交通要道。";
    let hindi = "गणित संख्याओं मात्राओं संरचनाओं और परिवर्तन का अध्ययन करने वाला विज्ञान है जिसमें तर्क और प्रमाण का उपयोग किया जाता है";
    let hindi_without_marks: String = hindi
        .chars()
        .filter(|c| !('\u{093E}'..='\u{094D}').contains(c))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let documents = write_docs(
        work.path(),
        &[
            ("fr-accents", french),
            ("fr-stripped", stripped),
            ("zh-a", chinese),
            ("zh-b", &chinese_copy),
            ("zh-other", chinese_other),
            ("hi-a", hindi),
            ("hi-b", &hindi_without_marks),
        ],
    );
    let output = work.path().join("deduped");
    dedup(&documents, &output, &[]);
    let found = pairs_of(&clusters(&output));
    assert_eq!(
        found,
        BTreeSet::from([("zh-a".to_string(), "zh-b".to_string())]),
        "{found:?}"
    );
    let signatures = read_rows(&output.join("_dedup/signatures"));
    assert_eq!(signatures.len(), 7);
    let counters: serde_json::Value = serde_json::from_slice(
        &fs::read(output.join("_dedup/signatures/_manifest/unit-00000.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        counters["counters"]["char_shingled"], 3,
        "the three Chinese documents"
    );
}

/// A corpus with duplicates, for the determinism tests.
fn small_corpus() -> Vec<Doc> {
    planted_corpus().into_iter().take(240).collect()
}

fn table_and_clusters(output: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    (
        table_bytes(output),
        table_bytes(&output.join("dedup_clusters")),
    )
}

#[test]
fn threads_and_sort_memory_do_not_change_a_byte() {
    let work = tempfile::tempdir().unwrap();
    let docs = small_corpus();
    let documents = ingest_docs(&docs.iter().collect::<Vec<_>>(), work.path(), 3);
    let one = work.path().join("one-thread");
    rlpt_ok(&[
        "--threads",
        "1",
        "dedup",
        "--input",
        arg(&documents),
        "--output",
        arg(&one),
    ]);
    let spilled = work.path().join("spilled");
    let output = rlpt_ok(&[
        "--threads",
        "2",
        "dedup",
        "--input",
        arg(&documents),
        "--output",
        arg(&spilled),
        "--sort-memory",
        "512",
    ]);
    assert!(!pairs_of(&clusters(&one)).is_empty());
    assert_eq!(table_and_clusters(&one), table_and_clusters(&spilled));
    assert_eq!(
        table_bytes(&one.join("_dedup/pairs")),
        table_bytes(&spilled.join("_dedup/pairs"))
    );
    let unit: serde_json::Value = serde_json::from_slice(
        &fs::read(spilled.join("_dedup/pairs/_manifest/unit-00000.json")).unwrap(),
    )
    .unwrap();
    assert!(
        unit["counters"]["spilled_runs"].as_u64().unwrap() > 1,
        "the small budget spilled: {unit}"
    );
    assert!(
        !spilled
            .join("_dedup/pairs/_sort")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().path().is_file())
    );
    assert!(stdout(&output).contains("dedup-filter"));

    let rerun = rlpt_ok(&["dedup", "--input", arg(&documents), "--output", arg(&one)]);
    for cells in summary_rows(&rerun) {
        assert_eq!(
            cells[1], cells[2],
            "every unit reused on a rerun: {cells:?}"
        );
    }
}

/// Small enough to cut the small corpus into several work units.
const UNIT_BYTES: &str = "16KiB";

#[test]
fn four_ranks_per_step_write_the_same_bytes_as_one_process() {
    let work = tempfile::tempdir().unwrap();
    let docs = small_corpus();
    let documents = ingest_docs(&docs.iter().collect::<Vec<_>>(), work.path(), 6);
    let single = work.path().join("single");
    dedup(&documents, &single, &["--unit-bytes", UNIT_BYTES]);

    let split = work.path().join("split");
    let run_ranks = |step: &str, with_input: bool| {
        let children: Vec<Child> = (0..4)
            .map(|rank| {
                let mut command = rlpt_in(&repo_root());
                command.args(["dedup", step, "--output", arg(&split)]);
                if with_input {
                    command.args(["--input", arg(&documents)]);
                }
                command
                    .args([
                        "--unit-bytes",
                        UNIT_BYTES,
                        "--rank",
                        &rank.to_string(),
                        "--world-size",
                        "4",
                    ])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{step}: {}", stderr(&output));
        }
    };
    run_ranks("signatures", true);
    run_ranks("buckets", false);
    run_ranks("clusters", false);
    run_ranks("filter", true);
    assert_eq!(table_and_clusters(&single), table_and_clusters(&split));
    assert!(
        table_bytes(&single).len() > 1,
        "several units were split across ranks"
    );
}

#[test]
fn shuffled_input_shards_keep_the_same_documents_and_clusters() {
    let work = tempfile::tempdir().unwrap();
    let docs = small_corpus();
    let in_order: Vec<&Doc> = docs.iter().collect();
    let mut shuffled = in_order.clone();
    let mut rng = Rng::new(7);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i + 1));
    }
    let first = ingest_docs(&in_order, &work.path().join("a"), 3);
    let second = ingest_docs(&shuffled, &work.path().join("b"), 5);
    let (out_a, out_b) = (work.path().join("out-a"), work.path().join("out-b"));
    dedup(&first, &out_a, &[]);
    dedup(&second, &out_b, &[]);
    assert_eq!(kept_ids(&out_a), kept_ids(&out_b));
    // The same clusters, decisions and similarities; only `source` (the file each
    // document was shuffled into) differs.
    let decisions = |out: &Path| -> Vec<Vec<String>> {
        read_rows(&out.join("dedup_clusters"))
            .iter()
            .map(|r| {
                ["id", "cluster_id", "kept", "similarity"]
                    .map(|c| get(r, c).to_string())
                    .to_vec()
            })
            .collect()
    };
    assert!(!decisions(&out_a).is_empty());
    assert_eq!(decisions(&out_a), decisions(&out_b));
}

#[test]
fn no_duplicates_make_an_empty_cluster_table_and_steps_refuse_unfinished_ones() {
    let work = tempfile::tempdir().unwrap();
    let documents = write_docs(
        work.path(),
        &[
            ("a", "one two three four five six"),
            ("b", "seven eight nine"),
        ],
    );
    let output = work.path().join("deduped");
    let distinct = rlpt_ok(&[
        "dedup",
        "--input",
        arg(&documents),
        "--output",
        arg(&work.path().join("distinct")),
    ]);
    assert!(stdout(&distinct).contains("dedup-filter"));
    let report = stdout(&rlpt_ok(&[
        "inspect",
        arg(&work.path().join("distinct/dedup_clusters")),
    ]));
    assert!(
        report
            .starts_with("table      dedup_clusters, written by `dedup-clusters`: empty (0 rows)"),
        "{report}"
    );

    let early = rlpt(&["dedup", "buckets", "--output", arg(&output)]);
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stderr(&early).contains("_dedup/signatures"),
        "{}",
        stderr(&early)
    );

    rlpt_ok(&[
        "dedup",
        "signatures",
        "--input",
        arg(&documents),
        "--output",
        arg(&output),
    ]);
    fs::remove_file(output.join("_dedup/signatures/_manifest/unit-00000.json")).unwrap();
    let refused = rlpt(&["dedup", "buckets", "--output", arg(&output)]);
    assert!(
        stderr(&refused).contains("1 of 1 work units are not done"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_repeated_id_keeps_its_first_document_and_clusters_name_the_source() {
    let work = tempfile::tempdir().unwrap();
    let wiki = sample_docs();
    // Two files, each numbering its documents from 0: ids repeat with other texts.
    let raw = work.path().join("raw");
    fs::create_dir_all(&raw).unwrap();
    for (file, docs) in [
        ("a-first.jsonl", &wiki[..3]),
        ("b-second.jsonl", &wiki[3..5]),
    ] {
        let lines: String = docs
            .iter()
            .enumerate()
            .map(|(n, doc)| {
                serde_json::json!({ "id": n.to_string(), "text": doc.text }).to_string() + "\n"
            })
            .collect();
        fs::write(raw.join(file), lines).unwrap();
    }
    let documents = work.path().join("documents");
    rlpt_ok(&ingest_args(&raw, &documents, &["--unit-bytes", "1KiB"]));
    let output = work.path().join("deduped");
    dedup(&documents, &output, &[]);

    let kept = read_rows(&output);
    let texts: Vec<&str> = kept.iter().map(|r| get(r, "text")).collect();
    assert_eq!(
        texts,
        wiki[..3]
            .iter()
            .map(|d| d.text.as_str())
            .collect::<Vec<_>>(),
        "ids 0 and 1 of the second file are removed, the first file's kept"
    );
    let rows = read_rows(&output.join("dedup_clusters"));
    let removed: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| get(r, "kept") == "false")
        .map(|r| (get(r, "id"), get(r, "source")))
        .collect();
    assert_eq!(removed, [("0", "b-second"), ("1", "b-second")]);
    assert!(
        rows.iter()
            .filter(|r| get(r, "kept") == "true")
            .all(|r| get(r, "source") == "a-first")
    );
}
