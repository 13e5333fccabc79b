//! Bounce classification: (DSN status, SMTP code, reply text, SMTP stage) → one of 16 categories.
//!
//! The text rules live in `rules.toml` (embedded at build time). All patterns are compiled into a
//! single case-insensitive [`RegexSet`]; the first matching rule in file order wins. When no text
//! rule matches, the enhanced status code (RFC 3463) and then the SMTP code decide.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

/// Only this many bytes of a reply text are matched: replies come from strangers.
pub const MAX_TEXT_BYTES: usize = 2048;

/// Upper bound for the compiled rule set, so a config file cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

const BUILTIN_RULES: &str = include_str!("rules.toml");
const BUILTIN_SOURCE: &str = "built-in rules.toml";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    InvalidMailbox,
    InvalidDomain,
    InactiveMailbox,
    FullMailbox,
    DmarcIssues,
    ReputationIssues,
    GreylistingIssues,
    BlocklistingIssues,
    RelayingIssues,
    RoutingIssues,
    RecipientServerError,
    ConnectionError,
    PolicyRelated,
    MessageExpired,
    SuppressionList,
    Other,
}

impl Category {
    pub const ALL: [Category; 16] = [
        Category::InvalidMailbox,
        Category::InvalidDomain,
        Category::InactiveMailbox,
        Category::FullMailbox,
        Category::DmarcIssues,
        Category::ReputationIssues,
        Category::GreylistingIssues,
        Category::BlocklistingIssues,
        Category::RelayingIssues,
        Category::RoutingIssues,
        Category::RecipientServerError,
        Category::ConnectionError,
        Category::PolicyRelated,
        Category::MessageExpired,
        Category::SuppressionList,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::InvalidMailbox => "invalid-mailbox",
            Category::InvalidDomain => "invalid-domain",
            Category::InactiveMailbox => "inactive-mailbox",
            Category::FullMailbox => "full-mailbox",
            Category::DmarcIssues => "dmarc-issues",
            Category::ReputationIssues => "reputation-issues",
            Category::GreylistingIssues => "greylisting-issues",
            Category::BlocklistingIssues => "blocklisting-issues",
            Category::RelayingIssues => "relaying-issues",
            Category::RoutingIssues => "routing-issues",
            Category::RecipientServerError => "recipient-server-error",
            Category::ConnectionError => "connection-error",
            Category::PolicyRelated => "policy-related",
            Category::MessageExpired => "message-expired",
            Category::SuppressionList => "suppression-list",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not one of the 16 category names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bounce category {0:?}")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

/// The SMTP command a reply answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SmtpStage {
    Connect,
    Helo,
    MailFrom,
    RcptTo,
    Data,
    EndOfData,
    Unknown,
}

impl SmtpStage {
    pub const ALL: [SmtpStage; 7] = [
        SmtpStage::Connect,
        SmtpStage::Helo,
        SmtpStage::MailFrom,
        SmtpStage::RcptTo,
        SmtpStage::Data,
        SmtpStage::EndOfData,
        SmtpStage::Unknown,
    ];

    /// The name used in rules files and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpStage::Connect => "connect",
            SmtpStage::Helo => "helo",
            SmtpStage::MailFrom => "mail-from",
            SmtpStage::RcptTo => "rcpt-to",
            SmtpStage::Data => "data",
            SmtpStage::EndOfData => "end-of-data",
            SmtpStage::Unknown => "unknown",
        }
    }

    fn from_rule_name(s: &str) -> Option<SmtpStage> {
        SmtpStage::ALL.into_iter().find(|stage| stage.as_str() == s)
    }
}

/// One delivery failure as the MTA reported it. Every field may be missing or garbage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failure<'a> {
    pub dsn: Option<&'a str>,
    pub code: Option<u16>,
    pub text: &'a str,
    pub stage: Option<SmtpStage>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{source_name}: cannot read rules")]
    Toml {
        source_name: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{source_name}: rule #{index}: invalid pattern {pattern:?}")]
    Regex {
        source_name: String,
        /// 1-based position of the `[[rule]]` in its file.
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("{source_name}: rule #{index}: {message}")]
    Invalid {
        source_name: String,
        index: usize,
        message: String,
    },
    #[error("{source_name}: the rules together are too large to compile")]
    TooLarge {
        source_name: String,
        #[source]
        source: regex::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    category: String,
    patterns: Vec<String>,
    #[serde(default)]
    dsn: Vec<String>,
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default)]
    except_stages: Vec<String>,
    #[serde(default)]
    after_data: Option<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    category: Category,
    /// DSN patterns like "4.7.1", "5.7." (prefix) or "x.1.1" (any class); empty = any DSN.
    dsn: Vec<String>,
    /// Stages the rule is limited to; empty = any stage.
    stages: Vec<SmtpStage>,
    except_stages: Vec<SmtpStage>,
    /// Category instead of `category` for replies to DATA / end of DATA.
    after_data: Option<Category>,
}

impl Rule {
    fn category_at(&self, stage: SmtpStage) -> Category {
        match (stage, self.after_data) {
            (SmtpStage::Data | SmtpStage::EndOfData, Some(c)) => c,
            _ => self.category,
        }
    }

    fn applies(&self, dsn: Option<&str>, stage: SmtpStage) -> bool {
        if !self.stages.is_empty() && !self.stages.contains(&stage) {
            return false;
        }
        if self.except_stages.contains(&stage) {
            return false;
        }
        if self.dsn.is_empty() {
            return true;
        }
        dsn.is_some_and(|d| self.dsn.iter().any(|p| dsn_matches(p, d)))
    }
}

/// `pattern` components must equal the DSN's, "x" matches any, a trailing "." any remainder.
fn dsn_matches(pattern: &str, dsn: &str) -> bool {
    let mut d = dsn.split('.');
    for p in pattern.split('.') {
        if p.is_empty() {
            return true;
        }
        match d.next() {
            Some(part) if p.eq_ignore_ascii_case("x") || p == part => {}
            _ => return false,
        }
    }
    d.next().is_none()
}

#[derive(Clone, Debug)]
pub struct Classifier {
    set: RegexSet,
    /// For each pattern in `set`, the index of its rule in `rules`.
    pattern_rule: Vec<usize>,
    rules: Vec<Rule>,
}

static BUILTIN: LazyLock<Classifier> = LazyLock::new(|| {
    // The built-in rules are checked by a unit test; failing here is a build defect.
    match Classifier::from_sources(&[(BUILTIN_RULES, BUILTIN_SOURCE)]) {
        Ok(c) => c,
        Err(e) => panic!("built-in bounce rules are broken: {e}"),
    }
});

impl Classifier {
    /// The classifier with the rules shipped in `rules.toml`; compiled once per process.
    pub fn builtin() -> Classifier {
        BUILTIN.clone()
    }

    /// Built-in rules plus rules from configuration; the extra rules are tried first.
    pub fn with_extra_rules(toml_text: &str, source: &str) -> Result<Classifier, RulesError> {
        Classifier::from_sources(&[(toml_text, source), (BUILTIN_RULES, BUILTIN_SOURCE)])
    }

    fn from_sources(sources: &[(&str, &str)]) -> Result<Classifier, RulesError> {
        let mut patterns = Vec::new();
        let mut pattern_rule = Vec::new();
        let mut rules = Vec::new();
        // (source name, 1-based rule index) of each pattern, for error messages.
        let mut origins = Vec::new();
        for &(text, source_name) in sources {
            let file: RulesFile = toml::from_str(text).map_err(|source| RulesError::Toml {
                source_name: source_name.to_string(),
                source,
            })?;
            for (i, def) in file.rule.into_iter().enumerate() {
                let index = i + 1;
                let invalid = |message: String| RulesError::Invalid {
                    source_name: source_name.to_string(),
                    index,
                    message,
                };
                let category = def
                    .category
                    .parse::<Category>()
                    .map_err(|e| invalid(e.to_string()))?;
                if def.patterns.is_empty() {
                    return Err(invalid("no patterns".into()));
                }
                let after_data = def
                    .after_data
                    .as_deref()
                    .map(str::parse::<Category>)
                    .transpose()
                    .map_err(|e| invalid(e.to_string()))?;
                let stage_list = |names: &[String]| -> Result<Vec<SmtpStage>, RulesError> {
                    names
                        .iter()
                        .map(|n| {
                            SmtpStage::from_rule_name(n)
                                .ok_or_else(|| invalid(format!("unknown stage {n:?}")))
                        })
                        .collect()
                };
                let stages = stage_list(&def.stages)?;
                let except_stages = stage_list(&def.except_stages)?;
                for d in &def.dsn {
                    if !valid_dsn_pattern(d) {
                        return Err(invalid(format!("bad DSN pattern {d:?}")));
                    }
                }
                for pattern in def.patterns {
                    patterns.push(pattern);
                    pattern_rule.push(rules.len());
                    origins.push((source_name, index));
                }
                rules.push(Rule {
                    category,
                    dsn: def.dsn,
                    stages,
                    except_stages,
                    after_data,
                });
            }
        }
        let set = match RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(set) => set,
            Err(set_error) => return Err(blame_pattern(&patterns, &origins, sources, set_error)),
        };
        Ok(Classifier {
            set,
            pattern_rule,
            rules,
        })
    }

    /// The category of one failure. Missing parts are taken from the text when it has them
    /// (a leading "550 5.1.1", a quoted "said: 550", postfix' "(in reply to RCPT TO command)").
    /// Reads at most [`MAX_TEXT_BYTES`] of the text; never panics.
    pub fn classify(&self, failure: &Failure<'_>) -> Category {
        let text = bounded(failure.text);
        let found = find_status(text);
        let dsn = failure
            .dsn
            .and_then(|d| valid_dsn(d.trim()))
            .or(found.map(|s| s.1));
        let code = failure
            .code
            .filter(|c| (200..600).contains(c))
            .or_else(|| parse_reply(text).0)
            .or(found.and_then(|s| s.0))
            .or_else(|| find_code(text));
        let stage = failure
            .stage
            .or_else(|| infer_stage(text))
            .unwrap_or(SmtpStage::Unknown);

        // RegexSet reports pattern indices in ascending order = rule order.
        let mut last_rule = usize::MAX;
        for pattern in self.set.matches(text).iter() {
            let r = self.pattern_rule[pattern];
            if r == last_rule {
                continue;
            }
            last_rule = r;
            if self.rules[r].applies(dsn, stage) {
                return self.rules[r].category_at(stage);
            }
        }
        dsn.and_then(by_dsn)
            .or_else(|| code.and_then(|c| by_code(c, stage)))
            .unwrap_or(Category::Other)
    }

    /// One operator line `DSN<TAB>REPLY TEXT` (DSN may be empty; no tab = whole line is text).
    /// Also extracts a leading SMTP code / DSN from the text when present ("550 5.1.1 ...").
    pub fn classify_line(&self, line: &str) -> Category {
        let line = line.trim_end_matches(['\r', '\n']);
        let (dsn, text) = match line.split_once('\t') {
            Some((d, t)) => (Some(d.trim()).filter(|d| !d.is_empty()), t),
            None => (None, line),
        };
        let (code, text_dsn, _) = parse_reply(text);
        self.classify(&Failure {
            dsn: dsn.or(text_dsn),
            code,
            text,
            stage: None,
        })
    }
}

/// The set failed to compile: find the pattern to blame. Compiling each pattern alone is slow,
/// so it is only done on this error path.
fn blame_pattern(
    patterns: &[String],
    origins: &[(&str, usize)],
    sources: &[(&str, &str)],
    set_error: regex::Error,
) -> RulesError {
    for (pattern, &(source_name, index)) in patterns.iter().zip(origins) {
        if let Err(source) = regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            return RulesError::Regex {
                source_name: source_name.to_string(),
                index,
                pattern: pattern.clone(),
                source,
            };
        }
    }
    RulesError::TooLarge {
        source_name: sources.iter().map(|s| s.1).collect::<Vec<_>>().join(" + "),
        source: set_error,
    }
}

/// The first `MAX_TEXT_BYTES` of `text`, cut on a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// "5.1.1" style: class 2/4/5, subject and detail of 1–3 digits.
fn valid_dsn(s: &str) -> Option<&str> {
    let mut parts = s.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let num = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
    (parts.next().is_none() && matches!(class, "2" | "4" | "5") && num(subject) && num(detail))
        .then_some(s)
}

fn valid_dsn_pattern(p: &str) -> bool {
    let parts: Vec<&str> = p.split('.').collect();
    !p.is_empty()
        && parts.len() <= 3
        && parts.iter().enumerate().all(|(i, part)| {
            (part.is_empty() && i == parts.len() - 1 && i > 0)
                || part.eq_ignore_ascii_case("x")
                || (part.len() <= 3 && !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Splits "550 5.1.1 <x@y>: Recipient address rejected" or "550-5.1.1 ..." into the SMTP code,
/// the enhanced status code and the rest. Parts that are absent are `None`; never panics.
pub fn parse_reply(text: &str) -> (Option<u16>, Option<&str>, &str) {
    let mut rest = text.trim_start();
    let mut code = None;
    let b = rest.as_bytes();
    if b.len() >= 3
        && matches!(b[0], b'2'..=b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && (b.len() == 3 || matches!(b[3], b' ' | b'-' | b'\t'))
    {
        code = Some(
            u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0'),
        );
        rest = rest[3..].trim_start_matches([' ', '-', '\t']);
    }
    let token_end = rest.find([' ', '\t']).unwrap_or(rest.len());
    let token = &rest[..token_end];
    let dsn = valid_dsn(token);
    if dsn.is_some() {
        rest = rest[token_end..].trim_start();
    }
    (code, dsn, rest)
}

static STATUS_RE: LazyLock<Regex> = LazyLock::new(|| {
    // An enhanced status code not inside an IP address or version number, optionally preceded
    // by its SMTP code: "said: 550 5.1.1 ...", "(#5.1.1)", "'4.4.7".
    match Regex::new(
        r"(?:^|[^\d.])(?:([245]\d\d)[ -])?#?([245]\.\d{1,3}\.\d{1,3})(?:$|[^\d.]|\.(?:$|[^\d]))",
    ) {
        Ok(re) => re,
        Err(e) => panic!("status pattern: {e}"),
    }
});

/// The first "550 5.1.1" / "5.1.1" found anywhere in the text.
fn find_status(text: &str) -> Option<(Option<u16>, &str)> {
    let caps = STATUS_RE.captures(text)?;
    let code = caps.get(1).and_then(|m| m.as_str().parse().ok());
    Some((code, caps.get(2)?.as_str()))
}

static CODE_RE: LazyLock<Regex> = LazyLock::new(|| {
    // The reply quoted by the MTA without an enhanced status: "host x[ip] said: 550-...".
    match Regex::new(r"(?i)\b(?:said|returned|responded with failure):?\s*'?([245]\d\d)[ -]") {
        Ok(re) => re,
        Err(e) => panic!("code pattern: {e}"),
    }
});

fn find_code(text: &str) -> Option<u16> {
    CODE_RE.captures(text)?.get(1)?.as_str().parse().ok()
}

static STAGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    match Regex::new(
        r"(?ix)
        in\ reply\ to\ (?:the\ )?(?P<reply>rcpt\ to|mail\ from|end\ of\ data|data|helo|ehlo|lhlo|starttls|auth)\b
      | after\ (?P<after>rcpt\ to|mail\ from|end\ of\ data|data|initial\ connection|helo|ehlo)\b
      | >>>\ (?P<transcript>rcpt\ to|mail\ from|data)\b
      | (?P<rcpt>\[rcpt_to\]|did\ not\ like\ our\ rcpt|does\ not\ like\ recipient|following\ rcpt\ command|smtp:rcpt\ host)
      | (?P<eod>did\ not\ like\ our\ final\ data|failed\ after\ i\ sent\ the\ message)
      | (?P<mail>\[mail_from\]|but\ sender\ was\ rejected)
      | (?P<connect>refused\ to\ talk\ to\ me|not\ accepting\ connections)
      | (?P<helo>but\ my\ name\ was\ rejected)
        ",
    ) {
        Ok(re) => re,
        Err(e) => panic!("stage pattern: {e}"),
    }
});

/// The stage named in the reply text, as postfix, exim, qmail and sendmail write it.
fn infer_stage(text: &str) -> Option<SmtpStage> {
    let caps = STAGE_RE.captures(text)?;
    let named = ["reply", "after", "transcript"]
        .iter()
        .find_map(|n| caps.name(n))
        .map(|m| m.as_str().to_ascii_lowercase());
    if let Some(cmd) = named {
        return Some(match cmd.as_str() {
            "rcpt to" => SmtpStage::RcptTo,
            "mail from" => SmtpStage::MailFrom,
            "end of data" => SmtpStage::EndOfData,
            "data" => SmtpStage::Data,
            "initial connection" => SmtpStage::Connect,
            "helo" | "ehlo" | "lhlo" => SmtpStage::Helo,
            _ => SmtpStage::Unknown,
        });
    }
    [
        ("rcpt", SmtpStage::RcptTo),
        ("eod", SmtpStage::EndOfData),
        ("mail", SmtpStage::MailFrom),
        ("connect", SmtpStage::Connect),
        ("helo", SmtpStage::Helo),
    ]
    .into_iter()
    .find(|(n, _)| caps.name(n).is_some())
    .map(|(_, s)| s)
}

/// Fallback by enhanced status code (RFC 3463, RFC 7372, RFC 7505, RFC 8601 codes).
fn by_dsn(dsn: &str) -> Option<Category> {
    let mut parts = dsn.split('.');
    let class = parts.next()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if class == "2" {
        return None;
    }
    use Category::*;
    Some(match (subject, detail) {
        (1, 1) | (1, 3) | (1, 4) => InvalidMailbox,
        (1, 2) | (1, 10) => InvalidDomain,
        (1, 6) => InactiveMailbox,
        // Bad sender address: the receiver cannot verify who we are.
        (1, 7) | (1, 8) => PolicyRelated,
        (2, 1) => InactiveMailbox,
        (2, 2) => FullMailbox,
        // X.2.3 is a per-mailbox size limit: a message-size policy, not a full mailbox.
        (2, 3) => PolicyRelated,
        (2, 4) => RecipientServerError,
        (3, 4) => PolicyRelated,
        (3, _) => RecipientServerError,
        (4, 0) | (4, 1) | (4, 2) => ConnectionError,
        (4, 3) => RoutingIssues,
        (4, 4) => InvalidDomain,
        (4, 5) => RecipientServerError,
        (4, 6) => RoutingIssues,
        (4, 7) => MessageExpired,
        // Too many recipients for one transaction: a limit of the receiving server.
        (5, 3) => RecipientServerError,
        (6, _) => PolicyRelated,
        (7, 13) | (7, 17) | (7, 18) => InactiveMailbox,
        // RFC 7372 authentication codes; Gmail also uses X.7.27 (SPF), X.7.30 (DKIM) and X.7.32
        // (From: alignment), though RFCs 7505/8689 gave 27 and 30 other meanings.
        (7, 20..=24) | (7, 26) | (7, 27) | (7, 29) | (7, 30) | (7, 32) => DmarcIssues,
        (7, 28) => ReputationIssues,
        (7, _) => PolicyRelated,
        _ => return None,
    })
}

/// Last resort when neither text nor DSN says anything (RFC 5321 reply codes).
fn by_code(code: u16, stage: SmtpStage) -> Option<Category> {
    Some(match code {
        421 | 451 | 452 => Category::RecipientServerError,
        // At RCPT a bare 550/553 is "mailbox unavailable / name not allowed".
        550 | 553 if stage == SmtpStage::RcptTo => Category::InvalidMailbox,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
