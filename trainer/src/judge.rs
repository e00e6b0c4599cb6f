//! The judge behind `prefix-semantic` rewards (RLPT's generative reward model): given
//! the context, the reference (the target segment and, by default, the segment after
//! it: RLPT's prefix reward) and a prediction, it answers `Score: 1` when the
//! prediction is a semantically valid prefix of the reference, else `Score: 0`.
//!
//! Either a local model run through rlpt-lm (greedy, a few tokens), or an
//! OpenAI-compatible `chat/completions` endpoint (vLLM, SGLang, llama.cpp's server, a
//! hosted API) with a timeout per request and retries; an endpoint that cannot be
//! reached after the retries stops the run with its address and the last error. A
//! verdict without a readable score counts as 0 and is reported.
//!
//! Secrets stay out of logs and checkpoints: the API key comes only from the
//! environment variable `judge.api_key_env` names, an endpoint holding credentials
//! (`user:key@`, a key-like query parameter) is refused, every address in a message is
//! redacted, a server's answer body is never quoted (it may echo the key), and a refused
//! key (401, 403) is not retried.

use std::time::Duration;

use rlpt_lm::{Model, SamplingConfig, Tokenizer};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::tasks::{ChatTemplate, ChatTemplateSetting};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const JUDGE_TEMPLATE: &str = "You check a prediction of how a text goes on. Below are \
the text, the reference (what really follows it, one or more sentences) and the \
prediction. The prediction is correct when it is a semantically valid prefix of the \
reference: read from its start, the reference says what the prediction says, in the same \
order, though the wording may differ and the prediction may stop anywhere. It is wrong \
when it contradicts the reference, skips ahead, or states something the reference does \
not.\n\nText:\n{context}\n\nReference:\n{reference}\n\nPrediction:\n{prediction}\n\n\
Answer with exactly one line: Score: 1 if correct, Score: 0 if wrong.";

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
        /// The variable it came from.
        api_key_env: Option<String>,
        /// Retries of a failed request.
        retries: u32,
        /// Requests in flight at once.
        concurrency: usize,
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
        if let Some(problem) = endpoint_credentials(endpoint) {
            return Err(judge_error(endpoint, problem));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(config.timeout_s.max(1))))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self::Http {
            url: format!("{}/chat/completions", endpoint.trim_end_matches('/')),
            model: config.endpoint_model.clone(),
            api_key,
            api_key_env: config.api_key_env.clone(),
            retries: config.retries,
            concurrency: config.concurrency.max(1),
            agent,
            template: template(config),
        })
    }

    /// A judge running `model` here.
    pub fn local(model: Model, tokenizer: Tokenizer, config: &JudgeConfig) -> Self {
        let chat = ChatTemplate::choose(ChatTemplateSetting::Auto, &tokenizer);
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
            Self::Http {
                template,
                concurrency,
                ..
            } => {
                let prompts: Vec<String> = cases.iter().map(|case| fill(template, case)).collect();
                let answers = in_parallel(&prompts, *concurrency, |prompt| self.ask(prompt))?;
                Ok(answers.iter().map(|answer| parse_score(answer)).collect())
            }
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
                    let value: Value = response.body_mut().read_json().map_err(|e| {
                        judge_error(
                            url,
                            format!("the answer is not JSON: {}", redact_text(&e.to_string())),
                        )
                    })?;
                    return value["choices"][0]["message"]["content"]
                        .as_str()
                        .map(String::from)
                        .ok_or_else(|| {
                            judge_error(
                                url,
                                format!(
                                    "no choices[0].message.content in the answer (its keys: {})",
                                    json_keys(&value)
                                ),
                            )
                        });
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    if !retryable(status) {
                        return Err(judge_error(url, refusal(status, self.api_key_env())));
                    }
                    last_error = format!("HTTP {status} (the answer's body is not shown)");
                }
                Err(e) => last_error = redact_text(&e.to_string()),
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

    /// The variable the key came from, for messages.
    fn api_key_env(&self) -> Option<&str> {
        match self {
            Self::Http { api_key_env, .. } => api_key_env.as_deref(),
            Self::Local { .. } => None,
        }
    }
}

/// `work` of every item on at most `workers` threads at once, results in item order;
/// the first failure (in item order) is returned, and no item starts after one.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        break;
                    };
                    let result = work(item);
                    failed.fetch_or(result.is_err(), Ordering::Relaxed);
                    results.lock().expect("no worker panics holding it")[index] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().expect("no worker panics holding it");
    let mut out = Vec::with_capacity(items.len());
    for result in results {
        match result {
            Some(result) => out.push(result?),
            None => break,
        }
    }
    Ok(out)
}

/// Whether a request answered with `status` may succeed when sent again: the server
/// was busy or failed (408, 429, 5xx); anything else is a refusal of the request itself.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

/// What an unretryable status means, without the server's words (they may quote the key).
fn refusal(status: u16, api_key_env: Option<&str>) -> String {
    let key = match api_key_env {
        Some(var) => format!("the key in ${var}"),
        None => "no key (judge.api_key_env names the variable holding one)".to_string(),
    };
    match status {
        401 | 403 => format!("HTTP {status}: the endpoint refused {key}; not retried"),
        _ => format!(
            "HTTP {status}: the endpoint refused the request (check judge.endpoint and \
             judge.endpoint_model); not retried, the answer's body is not shown"
        ),
    }
}

/// The top-level keys of a JSON answer, for an error that must not quote its values.
fn json_keys(value: &Value) -> String {
    match value.as_object() {
        Some(object) if !object.is_empty() => object
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(_) => "none".to_string(),
        None => "not an object".to_string(),
    }
}

/// Query parameter names that carry secrets by convention.
const SECRET_PARAMETERS: [&str; 7] = [
    "key",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "access_token",
    "sig",
];

/// Why `endpoint` may not be used as given: it holds credentials, which would be
/// logged and written into every checkpoint's trainer state.
pub(crate) fn endpoint_credentials(endpoint: &str) -> Option<String> {
    let parts = UrlParts::of(endpoint);
    let secret_query = parts.query.is_some_and(|query| {
        query.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
        })
    });
    (parts.userinfo.is_some() || secret_query).then(|| {
        "the endpoint holds credentials; put the key in an environment variable and name \
         it with judge.api_key_env (rlpt logs the endpoint and keeps it in every \
         checkpoint)"
            .to_string()
    })
}

/// `url` with its credentials and query values replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let parts = UrlParts::of(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.before_authority);
    if parts.userinfo.is_some() {
        out.push_str("***@");
    }
    out.push_str(parts.host_and_path);
    if let Some(query) = parts.query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `text` (an HTTP client's message, which may name the address) with every URL in it
/// redacted.
fn redact_text(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pieces of a URL that hold secrets, cut by hand (`scheme://userinfo@host/path?query`).
struct UrlParts<'a> {
    /// `scheme://`, or nothing.
    before_authority: &'a str,
    /// `user:password`, without the `@`.
    userinfo: Option<&'a str>,
    /// The host, port and path.
    host_and_path: &'a str,
    /// What follows `?`, fragment included.
    query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Self {
        let start = url.find("://").map_or(0, |at| at + 3);
        let (before_authority, rest) = url.split_at(start);
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (userinfo, host_and_path) = match rest[..authority_end].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        Self {
            before_authority,
            userinfo,
            host_and_path,
            query,
        }
    }
}

fn judge_error(url: &str, problem: String) -> Error {
    Error::Judge {
        endpoint: redact_url(url),
        problem,
    }
}

/// The judge's prompt when the config gives none.
pub fn default_template() -> &'static str {
    JUDGE_TEMPLATE
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

/// The judge of `prefix-semantic` rewards: a local model or an OpenAI-compatible
/// endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// A local judge model (GGUF or safetensors); default: the policy's initial weights.
    pub model: Option<PathBuf>,
    /// An OpenAI-compatible base URL (e.g. `http://localhost:8000/v1`); wins over `model`.
    pub endpoint: Option<String>,
    /// The model name sent to the endpoint.
    pub endpoint_model: String,
    /// Environment variable holding the endpoint's API key, if it needs one.
    pub api_key_env: Option<String>,
    /// Seconds before a request is abandoned.
    pub timeout_s: u64,
    /// Retries of a failed request.
    pub retries: u32,
    /// The judge's prompt, with `{context}`, `{reference}` and `{prediction}`.
    pub template: Option<String>,
    /// Segments the prefix judge reads as `{reference}`: the target segment, then the
    /// ones after it in the document (RLPT's prefix reward). Triples hold the next
    /// segment, so 1 (the target alone) or 2.
    #[serde(skip_serializing_if = "is_default_reference_segments")]
    pub reference_segments: usize,
    /// Requests the endpoint judge has in flight at once (each with its own retries).
    /// Verdicts do not depend on it, so a resumed run may change it.
    #[serde(skip_serializing_if = "is_default_concurrency")]
    pub concurrency: usize,
}

/// Default of [`JudgeConfig::reference_segments`]: the segment and the next.
pub const DEFAULT_REFERENCE_SEGMENTS: usize = 2;

fn is_default_reference_segments(segments: &usize) -> bool {
    *segments == DEFAULT_REFERENCE_SEGMENTS
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            model: None,
            endpoint: None,
            endpoint_model: "judge".into(),
            api_key_env: None,
            timeout_s: 60,
            retries: 2,
            template: None,
            reference_segments: DEFAULT_REFERENCE_SEGMENTS,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Default of [`JudgeConfig::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 8;

fn is_default_concurrency(concurrency: &usize) -> bool {
    *concurrency == DEFAULT_CONCURRENCY
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// The body of the HTTP request waiting on `stream`.
    fn request_body(stream: &std::net::TcpStream) -> String {
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
        String::from_utf8(body).unwrap()
    }

    /// Serves one OpenAI-style answer per connection, recording the requests.
    pub(crate) fn server(
        answers: Vec<(u16, String)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for (status, content) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                requests.push(request_body(&stream));
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
        // One request at a time: the server answers in the order it is asked.
        let config = JudgeConfig {
            retries: 1,
            timeout_s: 5,
            concurrency: 1,
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

    /// Answers every connection on its own thread after `delay`: `Score: 1` when the
    /// prediction holds "right", the first request for a prediction holding "busy" with
    /// 503; returns the address and the most requests it ever had in flight.
    pub(crate) fn concurrent_server(
        delay: Duration,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/v1", listener.local_addr().unwrap());
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let refused_once = Arc::new(AtomicBool::new(false));
        let seen_most = most.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (in_flight, most, refused_once) =
                    (in_flight.clone(), seen_most.clone(), refused_once.clone());
                std::thread::spawn(move || {
                    let mut stream = stream.unwrap();
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let body = request_body(&stream);
                    std::thread::sleep(delay);
                    let prediction = body.rsplit("Prediction:").next().unwrap().to_string();
                    let status = if prediction.contains("busy")
                        && !refused_once.swap(true, Ordering::SeqCst)
                    {
                        503
                    } else {
                        200
                    };
                    let score = u8::from(prediction.contains("right"));
                    let reply =
                        json!({"choices": [{"message": {"content": format!("Score: {score}")}}]})
                            .to_string();
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                });
            }
        });
        (address, most)
    }

    #[test]
    fn the_endpoint_judge_has_at_most_its_concurrency_in_flight_and_keeps_the_order() {
        let (endpoint, most) = concurrent_server(Duration::from_millis(150));
        let config = JudgeConfig {
            concurrency: 3,
            retries: 1,
            timeout_s: 10,
            ..JudgeConfig::default()
        };
        let judge = Judge::http(&endpoint, &config).unwrap();
        let predictions = [
            "right 0",
            "wrong 1",
            "right busy 2",
            "wrong 3",
            "right 4",
            "wrong 5",
            "wrong 6",
            "right 7",
            "right 8",
            "wrong 9",
        ];
        let cases: Vec<Case<'_>> = predictions
            .iter()
            .map(|prediction| Case {
                context: "c",
                reference: "r",
                prediction,
            })
            .collect();
        let verdicts = judge.judge(&cases).unwrap();
        let expected: Vec<Option<bool>> = predictions
            .iter()
            .map(|p| Some(p.starts_with("right")))
            .collect();
        assert_eq!(verdicts, expected, "in order, the refused request retried");
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
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

    /// The error of judging one case against a server giving `answers`, and how many
    /// requests the server got.
    fn judge_failure(answers: Vec<(u16, String)>, config: &JudgeConfig) -> (String, usize) {
        let (endpoint, handle) = server(answers);
        let judge = Judge::http(&endpoint, config).unwrap();
        let case = Case {
            context: "a",
            reference: "b",
            prediction: "c",
        };
        let message = judge.judge(&[case]).unwrap_err().to_string();
        (message, handle.join().unwrap().len())
    }

    #[test]
    fn a_refused_key_is_not_retried_and_the_answer_body_is_not_quoted() {
        let config = JudgeConfig {
            retries: 3,
            timeout_s: 5,
            api_key_env: Some("PATH".into()),
            ..JudgeConfig::default()
        };
        let (message, requests) = judge_failure(
            vec![(401, "Incorrect API key sk-live-1234".into())],
            &config,
        );
        assert_eq!(requests, 1, "a 401 was retried");
        assert!(message.contains("HTTP 401"), "{message}");
        assert!(message.contains("not retried"), "{message}");
        assert!(message.contains("$PATH"), "{message}");
        assert!(!message.contains("sk-live"), "{message}");
    }

    #[test]
    fn a_failing_server_is_retried_without_quoting_its_answer() {
        let config = JudgeConfig {
            retries: 1,
            timeout_s: 5,
            ..JudgeConfig::default()
        };
        let answers = vec![
            (503, "overloaded, key sk-live-1234".into()),
            (500, "traceback with sk-live-1234".into()),
        ];
        let (message, requests) = judge_failure(answers, &config);
        assert_eq!(requests, 2);
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(!message.contains("sk-live"), "{message}");
    }

    #[test]
    fn an_endpoint_holding_credentials_is_refused_and_never_shown() {
        for endpoint in [
            "https://user:sk-live-1234@api.example.com/v1",
            "https://api.example.com/v1?api_key=sk-live-1234",
            "https://api.example.com/v1?api-version=2&KEY=sk-live-1234",
        ] {
            let Err(error) = Judge::http(endpoint, &JudgeConfig::default()) else {
                panic!("{endpoint} was accepted");
            };
            let message = error.to_string();
            assert!(message.contains("judge.api_key_env"), "{message}");
            assert!(!message.contains("sk-live"), "{message}");
            let config = crate::config::TrainConfig {
                judge: JudgeConfig {
                    endpoint: Some(endpoint.into()),
                    ..JudgeConfig::default()
                },
                ..crate::config::TrainConfig::default()
            };
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("credentials"), "{message}");
            assert!(!message.contains("sk-live"), "{message}");
        }
        assert!(
            Judge::http(
                "https://api.example.com/v1?api-version=2",
                &JudgeConfig::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:p@ss@host:8000/v1/chat?key=s&x=1"),
            "https://***@host:8000/v1/chat?key=***&x=***"
        );
        assert_eq!(
            redact_url("http://localhost:8000/v1"),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            redact_text("error sending to http://a:b@h/v1: refused"),
            "error sending to http://***@h/v1: refused"
        );
    }
}
