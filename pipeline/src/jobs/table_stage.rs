//! From a table stage's settings to its job, one way for the command line and for
//! `rlpt run`: the settings' relative paths (a URL block list, benchmark files, a
//! tokenizer, a model) are resolved against a directory — the config file's under
//! `rlpt run`, the current one on the command line, where they stay as given.

use std::path::Path;

use rlpt_stages::decontam::{BenchmarkSpec, DecontamConfig};
use rlpt_stages::entropy::EntropyConfig;
use rlpt_stages::filter::FilterConfig;
use rlpt_stages::pii::PiiConfig;
use rlpt_stages::segment::SegmentConfig;

use crate::error::{Error, Result};
use crate::jobs::decontam::DecontamJob;
use crate::jobs::entropy::EntropyJob;
use crate::jobs::filter::FilterJob;
use crate::jobs::pii::PiiJob;
use crate::jobs::segment::SegmentJob;
use rlpt_engine::executor::ShardJob;

/// The settings of a stage that reads a table and writes one.
pub trait TableStage {
    /// The job that runs the stage.
    type Job: ShardJob<Error = crate::Error>;

    /// The job, with the settings' relative paths taken from `base`.
    fn job(&self, base: &Path) -> Result<Self::Job>;
}

impl TableStage for FilterConfig {
    type Job = FilterJob;

    fn job(&self, base: &Path) -> Result<FilterJob> {
        let mut config = self.clone();
        config.url_blocklist = config.url_blocklist.map(|list| base.join(list));
        FilterJob::new(&config)
    }
}

impl TableStage for PiiConfig {
    type Job = PiiJob;

    fn job(&self, _base: &Path) -> Result<PiiJob> {
        PiiJob::new(self)
    }
}

impl TableStage for DecontamConfig {
    type Job = DecontamJob;

    fn job(&self, base: &Path) -> Result<DecontamJob> {
        let mut config = self.clone();
        config.benchmarks = relative_benchmarks(&config.benchmarks, base)?;
        DecontamJob::new(&config)
    }
}

impl TableStage for SegmentConfig {
    type Job = SegmentJob;

    fn job(&self, base: &Path) -> Result<SegmentJob> {
        let mut config = self.clone();
        config.tokenizer = base.join(&config.tokenizer);
        SegmentJob::new(&config)
    }
}

impl TableStage for EntropyConfig {
    type Job = EntropyJob;

    fn job(&self, base: &Path) -> Result<EntropyJob> {
        let mut config = self.clone();
        config.model = base.join(&config.model);
        config.fallback_model = config.fallback_model.map(|m| base.join(m));
        EntropyJob::new(&config)
    }
}

/// Benchmark specs (`NAME=PATH[:FIELDS]`) with their paths taken from `base`.
fn relative_benchmarks(specs: &[String], base: &Path) -> Result<Vec<String>> {
    specs
        .iter()
        .map(|text| {
            let spec = BenchmarkSpec::parse(text).map_err(Error::Usage)?;
            let path = base.join(&spec.path);
            let fields = if spec.fields.is_empty() {
                String::new()
            } else {
                format!(":{}", spec.fields.join(","))
            };
            Ok(format!("{}={}{fields}", spec.name, path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the command line (base: the current directory) a spec is unchanged, so
    /// its config hash is what it was; under `rlpt run` its path moves to the
    /// config's directory and its fields stay.
    #[test]
    fn benchmark_paths_resolve_against_the_base() {
        let specs = vec![
            "champ=data/champ.jsonl:problem,solution".to_string(),
            "gsm=/abs/gsm8k.jsonl".to_string(),
            "local=bench.v1.jsonl".to_string(),
        ];
        assert_eq!(relative_benchmarks(&specs, Path::new("")).unwrap(), specs);
        assert_eq!(
            relative_benchmarks(&specs, Path::new("configs")).unwrap(),
            [
                "champ=configs/data/champ.jsonl:problem,solution",
                "gsm=/abs/gsm8k.jsonl",
                "local=configs/bench.v1.jsonl",
            ]
        );
        assert!(relative_benchmarks(&["no-name".to_string()], Path::new("")).is_err());
    }
}
