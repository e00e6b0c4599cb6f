//! The judge behind `prefix-semantic` rewards (RLPT's generative reward model): given
//! the context, the reference continuation and a prediction, it answers `Score: 1` when
//! the prediction says what a prefix of the reference says, else `Score: 0`.
//!
//! Either a local model run through rlpt-lm (greedy, a few tokens), or an
//! OpenAI-compatible `chat/completions` endpoint (vLLM, SGLang, llama.cpp's server, a
//! hosted API) with a timeout per request and retries; an endpoint that cannot be
//! reached after the retries stops the run with its address and the last error. A
//! verdict without a readable score counts as 0 and is reported.

use std::time::Duration;

use rlpt_lm::{Model, SamplingConfig, Tokenizer};
use serde_json::{Value, json};

use crate::config::JudgeConfig;
use crate::error::{Error, Result};
use crate::tasks::ChatTemplate;

const JUDGE_TEMPLATE: &str = "You compare a predicted continuation of a text with the \
real one. The prediction is correct if it says the same thing as the beginning of the \
real continuation (it may be shorter, and the wording may differ); it is wrong if it adds \
or changes facts.\n\nText:\n{context}\n\nReal continuation:\n{reference}\n\nPrediction:\n\
{prediction}\n\nAnswer with exactly one line: Score: 1 if correct, Score: 0 if wrong.";

/// One prediction to judge.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    /// The text before the gap.
    pub context: &'a str,
    /// The real continuation.
    pub reference: &'a str,
    /// The model's answer.
    pub prediction: &'a str,
}

/// Where verdicts come from.
pub enum Judge {
    /// A model run here.
    Local {
        /// The judge model.
        model: Box<Model>,
        /// Its tokenizer.
        tokenizer: Box<Tokenizer>,
        /// How its prompts are wrapped.
        chat: ChatTemplate,
        /// The prompt with `{context}`, `{reference}`, `{prediction}`.
        template: String,
    },
    /// An OpenAI-compatible server.
    Http {
        /// `{endpoint}/chat/completions`.
        url: String,
        /// The model name sent.
        model: String,
        /// Bearer token, if any.
        api_key: Option<String>,
        /// Retries of a failed request.
        retries: u32,
        /// The HTTP client, with its timeout.
        agent: ureq::Agent,
        /// The prompt with `{context}`, `{reference}`, `{prediction}`.
        template: String,
    },
}

impl Judge {
    /// The endpoint judge of `config`.
    pub fn http(endpoint: &str, config: &JudgeConfig) -> Result<Self> {
        let api_key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| Error::Judge {
                endpoint: endpoint.to_string(),
                problem: format!("judge.api_key_env names ${var}, which is not set"),
            })?),
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(config.timeout_s.max(1))))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self::Http {
            url: format!("{}/chat/completions", endpoint.trim_end_matches('/')),
            model: config.endpoint_model.clone(),
            api_key,
            retries: config.retries,
            agent,
            template: template(config),
        })
    }

    /// A judge running `model` here.
    pub fn local(model: Model, tokenizer: Tokenizer, config: &JudgeConfig) -> Self {
        let chat = ChatTemplate::choose("auto", &tokenizer);
        Self::Local {
            model: Box::new(model),
            tokenizer: Box::new(tokenizer),
            chat,
            template: template(config),
        }
    }

    /// A verdict per case: Some(score) when the judge's answer holds one.
    pub fn judge(&self, cases: &[Case<'_>]) -> Result<Vec<Option<bool>>> {
        if cases.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Local {
                model,
                tokenizer,
                chat,
                template,
            } => {
                let prompts = cases
                    .iter()
                    .map(|case| tokenizer.encode(&chat.wrap(&fill(template, case))))
                    .collect::<rlpt_lm::Result<Vec<_>>>()?;
                let config = SamplingConfig {
                    temperature: 0.0,
                    max_tokens: 12,
                    stop: chat.end_of_turn().into_iter().map(String::from).collect(),
                    ..SamplingConfig::default()
                };
                let pad = tokenizer.eos().unwrap_or(0);
                let answers = rlpt_lm::generate(model, tokenizer.as_ref(), &prompts, &config, pad)?;
                Ok(answers.iter().map(|a| parse_score(&a.text)).collect())
            }
            Self::Http { template, .. } => cases
                .iter()
                .map(|case| Ok(parse_score(&self.ask(&fill(template, case))?)))
                .collect(),
        }
    }

    /// The endpoint's answer to `prompt`, retrying failures.
    fn ask(&self, prompt: &str) -> Result<String> {
        let Self::Http {
            url,
            model,
            api_key,
            retries,
            agent,
            ..
        } = self
        else {
            unreachable!("ask is only called on an HTTP judge");
        };
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
            "max_tokens": 16,
        });
        let mut last_error = String::new();
        for attempt in 0..=*retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt.min(4)));
            }
            let mut request = agent.post(url.as_str());
            if let Some(key) = api_key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            match request.send_json(&body) {
                Ok(mut response) if response.status().is_success() => {
                    let value: Value = response
                        .body_mut()
                        .read_json()
                        .map_err(|e| judge_error(url, format!("the answer is not JSON: {e}")))?;
                    return value["choices"][0]["message"]["content"]
                        .as_str()
                        .map(String::from)
                        .ok_or_else(|| {
                            judge_error(url, format!("no choices[0].message.content in {value}"))
                        });
                }
                Ok(mut response) => {
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    last_error = format!("HTTP {}: {}", response.status(), text.trim());
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(judge_error(
            url,
            format!(
                "unreachable after {} attempt(s): {last_error} (is the server running? \
                 judge.endpoint sets the address)",
                retries + 1
            ),
        ))
    }
}

fn judge_error(url: &str, problem: String) -> Error {
    Error::Judge {
        endpoint: url.to_string(),
        problem,
    }
}

fn template(config: &JudgeConfig) -> String {
    config
        .template
        .clone()
        .unwrap_or_else(|| JUDGE_TEMPLATE.to_string())
}

fn fill(template: &str, case: &Case<'_>) -> String {
    template
        .replace("{context}", case.context)
        .replace("{reference}", case.reference)
        .replace("{prediction}", case.prediction)
}

/// The score of a judge's answer: the digit after its last `Score:`.
pub fn parse_score(answer: &str) -> Option<bool> {
    let at = answer.rfind("Score:")? + "Score:".len();
    match answer[at..].trim_start().chars().next()? {
        '1' => Some(true),
        '0' => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn scores_are_read_from_the_last_score_line() {
        assert_eq!(parse_score("Score: 1"), Some(true));
        assert_eq!(parse_score("thinking... Score: 1\nScore:0"), Some(false));
        assert_eq!(parse_score("Score: maybe"), None);
        assert_eq!(parse_score("yes"), None);
    }

    /// Serves one OpenAI-style answer per connection, recording the requests.
    fn server(answers: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for (status, content) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                requests.push(String::from_utf8(body).unwrap());
                let reply = json!({"choices": [{"message": {"content": content}}]}).to_string();
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .unwrap();
            }
            requests
        });
        (address, handle)
    }

    #[test]
    fn an_endpoint_judges_and_a_failed_request_is_retried() {
        let (endpoint, handle) = server(vec![
            (503, "busy".into()),
            (200, "Score: 1".into()),
            (200, "Score: 0".into()),
        ]);
        let config = JudgeConfig {
            retries: 1,
            timeout_s: 5,
            ..JudgeConfig::default()
        };
        let judge = Judge::http(&endpoint, &config).unwrap();
        let case = |prediction| Case {
            context: "Water boils",
            reference: " at 100 °C at sea level.",
            prediction,
        };
        let verdicts = judge
            .judge(&[case(" at 100 degrees"), case(" at 50 °C")])
            .unwrap();
        assert_eq!(verdicts, vec![Some(true), Some(false)]);
        let requests = handle.join().unwrap();
        assert_eq!(requests.len(), 3);
        let retried: Value = serde_json::from_str(&requests[1]).unwrap();
        assert_eq!(retried["model"], "judge");
        let content = retried["messages"][0]["content"].as_str().unwrap();
        assert!(
            content.contains("Prediction:\n at 100 degrees"),
            "{content}"
        );
    }

    #[test]
    fn an_unreachable_endpoint_is_a_clear_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = JudgeConfig {
            retries: 0,
            timeout_s: 2,
            ..JudgeConfig::default()
        };
        let judge = Judge::http(&format!("http://127.0.0.1:{port}/v1"), &config).unwrap();
        let case = Case {
            context: "a",
            reference: "b",
            prediction: "c",
        };
        let message = judge.judge(&[case]).unwrap_err().to_string();
        assert!(
            message.contains(&format!("127.0.0.1:{port}/v1/chat/completions")),
            "{message}"
        );
        assert!(message.contains("unreachable after 1 attempt"), "{message}");
    }
}
