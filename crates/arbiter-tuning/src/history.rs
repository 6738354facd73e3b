//! Labelled decision history: what tuning, simulation and backtests learn
//! from. Read from CSV or JSON Lines (format in `docs/tuning.md`), columnar in
//! memory so that ten million rows stay compact and fast to scan.
//!
//! A history may carry an **audit design**: the allowed decisions of classes
//! with an `audit_sample`, each with the inclusion probability π it was drawn
//! with and whether it was drawn, labelled or not. Tuning weights the drawn
//! labels by their inclusion probabilities ([`super::curves`]).

use crate::sampling::AuditDraw;
use crate::time::Timestamp;
use std::collections::HashMap;
use std::fmt;

/// Decisions with their outcomes, one column per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Action class names; `class[i]` indexes into this.
    pub classes: Vec<String>,
    /// Action class of each decision.
    pub class: Vec<u32>,
    /// The agent's confidence (0 when it gave none).
    pub confidence: Vec<f64>,
    /// Whether the proposed action was right.
    pub correct: Vec<bool>,
    /// Cost of an automatic error on this decision (NaN: use the default).
    pub error_cost: Vec<f64>,
    /// Cost of escalating this decision (NaN: use the default).
    pub escalation_cost: Vec<f64>,
    /// Event time, ms since the epoch.
    pub timestamp: Vec<i64>,
    /// Per decision, the inclusion probability of its audit draw (NaN: not
    /// in an audit design). Empty when no decision is in one.
    pub audit_probability: Vec<f64>,
    /// Per decision, whether the audit draw selected it (empty like `audit_probability`).
    pub audit_selected: Vec<bool>,
    /// Decisions of an audit design without a label yet: they count in the
    /// population the audit labels stand for.
    pub unlabelled: Vec<Unlabelled>,
    index: HashMap<String, u32>,
}

/// A decision of an audit design that has no label (yet).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unlabelled {
    /// Its action class (an index into [`History::classes`]).
    pub class: u32,
    /// The agent's confidence.
    pub confidence: f64,
    /// Its audit draw.
    pub audit: AuditDraw,
    /// Event time, ms since the epoch.
    pub timestamp: i64,
}

/// One decision to add.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// Event time.
    pub timestamp: Timestamp,
    /// Action class.
    pub action: &'a str,
    /// Confidence 0..=1.
    pub confidence: f64,
    /// Whether the action was right.
    pub correct: bool,
    /// Cost of an automatic error.
    pub error_cost: Option<f64>,
    /// Cost of an escalation.
    pub escalation_cost: Option<f64>,
}

impl History {
    /// Number of decisions.
    pub fn len(&self) -> usize {
        self.class.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.class.is_empty()
    }

    /// The index of a class, adding it if new.
    pub fn class_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.classes.len() as u32;
        self.classes.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// Append a decision.
    pub fn push(&mut self, r: &Row<'_>) {
        let c = self.class_id(r.action);
        self.class.push(c);
        self.confidence.push(r.confidence);
        self.correct.push(r.correct);
        self.error_cost.push(r.error_cost.unwrap_or(f64::NAN));
        self.escalation_cost.push(r.escalation_cost.unwrap_or(f64::NAN));
        self.timestamp.push(r.timestamp.0);
        if !self.audit_probability.is_empty() {
            self.audit_probability.push(f64::NAN);
            self.audit_selected.push(false);
        }
    }

    /// Append a labelled decision of an audit design, with its draw.
    pub fn push_audited(&mut self, r: &Row<'_>, draw: AuditDraw) {
        self.push(r);
        if self.audit_probability.is_empty() {
            self.audit_probability = vec![f64::NAN; self.len()];
            self.audit_selected = vec![false; self.len()];
        }
        let last = self.len() - 1;
        self.audit_probability[last] = draw.probability;
        self.audit_selected[last] = draw.selected;
    }

    /// Append a decision of an audit design that has no label yet.
    pub fn push_unlabelled(&mut self, timestamp: Timestamp, action: &str, confidence: f64, draw: AuditDraw) {
        let class = self.class_id(action);
        self.unlabelled.push(Unlabelled { class, confidence, audit: draw, timestamp: timestamp.0 });
    }

    /// The audit draw of labelled decision `i`, if it is in an audit design.
    pub fn audit(&self, i: usize) -> Option<AuditDraw> {
        let p = *self.audit_probability.get(i)?;
        (!p.is_nan()).then(|| AuditDraw { probability: p, selected: self.audit_selected[i] })
    }

    /// Whether any decision is in an audit design.
    pub fn has_audit_design(&self) -> bool {
        !self.audit_probability.is_empty() || !self.unlabelled.is_empty()
    }

    /// Only the decisions made in `[since, until)` (an end open when `None`);
    /// classes with none left are dropped.
    pub fn between(&self, since: Option<Timestamp>, until: Option<Timestamp>) -> History {
        let keep = |t: i64| since.is_none_or(|s| t >= s.0) && until.is_none_or(|u| t < u.0);
        let mask: Vec<bool> = self.timestamp.iter().map(|&t| keep(t)).collect();
        let mut out = self.select(&mask);
        out.unlabelled.retain(|u| keep(u.timestamp));
        out.drop_unused_classes();
        out
    }

    /// Renumber classes so that only those with a decision (labelled or not) remain.
    fn drop_unused_classes(&mut self) {
        let mut used = vec![false; self.classes.len()];
        self.class.iter().for_each(|&c| used[c as usize] = true);
        self.unlabelled.iter().for_each(|u| used[u.class as usize] = true);
        if used.iter().all(|&u| u) {
            return;
        }
        let mut map = vec![u32::MAX; self.classes.len()];
        let old = std::mem::take(&mut self.classes);
        self.index.clear();
        for (i, name) in old.into_iter().enumerate().filter(|(i, _)| used[*i]) {
            map[i] = self.classes.len() as u32;
            self.index.insert(name.clone(), map[i]);
            self.classes.push(name);
        }
        self.class.iter_mut().for_each(|c| *c = map[*c as usize]);
        self.unlabelled.iter_mut().for_each(|u| u.class = map[u.class as usize]);
    }

    /// Only the labelled decisions whose `keep` entry is true (`keep` has one
    /// per labelled decision); the unlabelled decisions of an audit design
    /// stay; classes with no decision left are dropped.
    pub fn select(&self, keep: &[bool]) -> History {
        assert_eq!(keep.len(), self.len(), "one entry per decision");
        let cost = |c: f64| (!c.is_nan()).then_some(c);
        let mut out = History::default();
        for i in (0..self.len()).filter(|&i| keep[i]) {
            let row = Row {
                timestamp: Timestamp(self.timestamp[i]),
                action: &self.classes[self.class[i] as usize],
                confidence: self.confidence[i],
                correct: self.correct[i],
                error_cost: cost(self.error_cost[i]),
                escalation_cost: cost(self.escalation_cost[i]),
            };
            match self.audit(i) {
                Some(draw) => out.push_audited(&row, draw),
                None => out.push(&row),
            }
        }
        for u in &self.unlabelled {
            out.push_unlabelled(Timestamp(u.timestamp), &self.classes[u.class as usize], u.confidence, u.audit);
        }
        out
    }
}

/// A bad row: where and why. Nothing is skipped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError {
    /// 1-based line number.
    pub line: usize,
    /// The column or field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

impl std::error::Error for HistoryError {}

fn err(line: usize, field: &str, message: impl Into<String>) -> HistoryError {
    HistoryError { line, field: field.to_string(), message: message.into() }
}

fn parse_time(line: usize, s: &str) -> Result<Timestamp, HistoryError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    s.parse::<Timestamp>().map_err(|e| {
        err(line, "timestamp", format!("`{s}` is neither RFC 3339 nor milliseconds since the epoch ({e})"))
    })
}

fn parse_confidence(line: usize, s: &str) -> Result<f64, HistoryError> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(err(line, "confidence", format!("{v} is outside 0..1"))),
        Err(_) => Err(err(line, "confidence", format!("`{s}` is not a number"))),
    }
}

fn parse_bool(line: usize, s: &str) -> Result<bool, HistoryError> {
    match s {
        "1" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(err(line, "correct", format!("`{s}` is not true/false/1/0"))),
    }
}

fn parse_cost(line: usize, field: &str, s: &str) -> Result<Option<f64>, HistoryError> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(err(line, field, format!("`{s}` is not a non-negative number"))),
    }
}

fn parse_probability(line: usize, s: &str) -> Result<f64, HistoryError> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err(err(line, "audit_probability", format!("`{s}` is not an inclusion probability in (0, 1]"))),
    }
}

fn check_action(line: usize, s: &str) -> Result<(), HistoryError> {
    if s.is_empty() || s.len() > 128 || s.contains('"') {
        return Err(err(line, "action", "must be 1 to 128 characters, unquoted"));
    }
    Ok(())
}

/// Lines between two progress reports.
const REPORT_EVERY: usize = 1 << 16;

/// What a column of a CSV history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Timestamp,
    Action,
    Confidence,
    Correct,
    ErrorCost,
    EscalationCost,
    AuditProbability,
    AuditSelected,
    Other,
}

/// The columns a CSV history's header names, to read its rows by.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvLayout {
    columns: Vec<Column>,
    has_audit: bool,
}

/// One row of a history file (CSV: read by [`CsvLayout::record`]; Parquet:
/// read by the command line, checked by [`Record::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// Event time (only when asked for: `None` otherwise).
    pub timestamp: Option<Timestamp>,
    /// Action class.
    pub action: &'a str,
    /// Confidence 0..=1.
    pub confidence: f64,
    /// The label (`None`: a decision of an audit design without one yet).
    pub correct: Option<bool>,
    /// Cost of an automatic error (NaN: not given).
    pub error_cost: f64,
    /// Cost of an escalation (NaN: not given).
    pub escalation_cost: f64,
    /// The audit draw, for a decision of an audit design.
    pub audit: Option<AuditDraw>,
}

impl CsvLayout {
    /// Read a header naming at least `timestamp,action,confidence,correct`.
    pub fn of_header(header: &str) -> Result<CsvLayout, HistoryError> {
        let header = header.strip_suffix('\r').unwrap_or(header);
        if header.trim().is_empty() {
            return Err(err(1, "header", "the file is empty"));
        }
        let columns: Vec<Column> = header
            .split(',')
            .map(|c| match c.trim() {
                "timestamp" => Column::Timestamp,
                "action" => Column::Action,
                "confidence" => Column::Confidence,
                "correct" => Column::Correct,
                "error_cost" => Column::ErrorCost,
                "escalation_cost" => Column::EscalationCost,
                "audit_probability" => Column::AuditProbability,
                "audit_selected" => Column::AuditSelected,
                _ => Column::Other,
            })
            .collect();
        for (col, name) in [
            (Column::Timestamp, "timestamp"),
            (Column::Action, "action"),
            (Column::Confidence, "confidence"),
            (Column::Correct, "correct"),
        ] {
            if !columns.contains(&col) {
                return Err(err(
                    1,
                    "header",
                    format!("missing column `{name}` (need timestamp,action,confidence,correct)"),
                ));
            }
        }
        let (p, s) = (columns.contains(&Column::AuditProbability), columns.contains(&Column::AuditSelected));
        if p != s {
            return Err(err(1, "header", "audit_probability and audit_selected come together"));
        }
        Ok(CsvLayout { columns, has_audit: p })
    }

    /// Read one data row (`line` is its 1-based line number, for errors).
    /// The timestamp is parsed (and checked) only `with_time`: a command
    /// that does not window by time reads past it.
    pub fn record<'a>(&self, line: usize, raw: &'a str, with_time: bool) -> Result<Record<'a>, HistoryError> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (mut time, mut action, mut confidence, mut correct) = ("", "", "", "");
        let (mut error_cost, mut escalation_cost, mut probability, mut selected) = ("", "", "", "");
        let mut n = 0;
        // fields split by byte (',' is ASCII, so every cut is a character boundary)
        let bytes = raw.as_bytes();
        let mut start = 0;
        for end in (0..bytes.len()).filter(|&i| bytes[i] == b',').chain(std::iter::once(bytes.len())) {
            let field = &raw[start..end];
            start = end + 1;
            match self.columns.get(n) {
                Some(Column::Timestamp) => time = field,
                Some(Column::Action) => action = field,
                Some(Column::Confidence) => confidence = field,
                Some(Column::Correct) => correct = field,
                Some(Column::ErrorCost) => error_cost = field,
                Some(Column::EscalationCost) => escalation_cost = field,
                Some(Column::AuditProbability) => probability = field,
                Some(Column::AuditSelected) => selected = field,
                Some(Column::Other) | None => {}
            }
            n += 1;
        }
        if n != self.columns.len() {
            return Err(err(line, "(row)", format!("has {n} fields, the header has {}", self.columns.len())));
        }
        let action = action.trim_ascii();
        check_action(line, action)?;
        let audit = match probability.trim_ascii() {
            p if !self.has_audit || p.is_empty() => None,
            p => Some(AuditDraw {
                probability: parse_probability(line, p)?,
                selected: parse_bool(line, selected.trim_ascii())
                    .map_err(|e| err(line, "audit_selected", e.message))?,
            }),
        };
        let timestamp = if with_time { Some(parse_time(line, time.trim_ascii())?) } else { None };
        let confidence = parse_confidence(line, confidence.trim_ascii())?;
        let correct = match correct.trim_ascii() {
            "" if audit.is_some() => None,
            "" => {
                return Err(err(
                    line,
                    "correct",
                    "is empty: only a decision of an audit design (audit_probability) may be unlabelled",
                ));
            }
            c => Some(parse_bool(line, c)?),
        };
        let cost = |field: &str, s: &str| -> Result<f64, HistoryError> {
            Ok(parse_cost(line, field, s.trim_ascii())?.unwrap_or(f64::NAN))
        };
        Ok(Record {
            timestamp,
            action,
            confidence,
            correct,
            error_cost: cost("error_cost", error_cost)?,
            escalation_cost: cost("escalation_cost", escalation_cost)?,
            audit,
        })
    }
}

impl Record<'_> {
    /// Check the values of a row read from a typed file (a CSV row is
    /// checked as it is parsed): what is wrong, with the field.
    pub fn check(&self, line: usize) -> Result<(), HistoryError> {
        check_action(line, self.action)?;
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(err(line, "confidence", format!("{} is outside 0..1", self.confidence)));
        }
        for (field, c) in [("error_cost", self.error_cost), ("escalation_cost", self.escalation_cost)] {
            if !(c.is_nan() || c.is_finite() && c >= 0.0) {
                return Err(err(line, field, format!("{c} is not a non-negative number")));
            }
        }
        match self.audit {
            Some(a) if !(a.probability > 0.0 && a.probability <= 1.0) => Err(err(
                line,
                "audit_probability",
                format!("{} is not an inclusion probability in (0, 1]", a.probability),
            )),
            None if self.correct.is_none() => Err(err(
                line,
                "correct",
                "is missing: only a decision of an audit design (audit_probability) may be unlabelled",
            )),
            _ => Ok(()),
        }
    }
}

impl History {
    /// Append a row read from a history file (read with its timestamp).
    pub fn push_record(&mut self, r: &Record<'_>) {
        let timestamp = r.timestamp.unwrap_or(Timestamp(0));
        let Some(correct) = r.correct else {
            let draw = r.audit.expect("only rows of an audit design are unlabelled");
            self.push_unlabelled(timestamp, r.action, r.confidence, draw);
            return;
        };
        let cost = |c: f64| (!c.is_nan()).then_some(c);
        let row = Row {
            timestamp,
            action: r.action,
            confidence: r.confidence,
            correct,
            error_cost: cost(r.error_cost),
            escalation_cost: cost(r.escalation_cost),
        };
        match r.audit {
            Some(d) => self.push_audited(&row, d),
            None => self.push(&row),
        }
    }
}

/// Parse CSV with a header naming at least `timestamp,action,confidence,correct`
/// (optional `error_cost`, `escalation_cost`, and for an audit design
/// `audit_probability`, `audit_selected`; other columns are ignored). A row
/// of an audit design may leave `correct` empty: it has no label yet.
pub fn parse_csv(text: &str) -> Result<History, HistoryError> {
    parse_csv_with(text, &mut |_| {})
}

/// [`parse_csv`], telling `progress` how many bytes are done every 65,536 lines.
pub fn parse_csv_with(text: &str, progress: &mut dyn FnMut(usize)) -> Result<History, HistoryError> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(err(1, "header", "the file is empty"));
    };
    let layout = CsvLayout::of_header(header)?;
    let mut h = History::default();
    let mut done = header.len() + 1;
    for (i, raw) in lines {
        let line = i + 1;
        done += raw.len() + 1;
        if line % REPORT_EVERY == 0 {
            progress(done.min(text.len()));
        }
        if raw.is_empty() || raw == "\r" {
            continue;
        }
        h.push_record(&layout.record(line, raw, true)?);
    }
    Ok(h)
}

/// Parse JSON Lines: one object per line with `timestamp`, `action`,
/// `confidence`, `correct` and optional `error_cost`, `escalation_cost`, and
/// `audit` (`{"probability": π, "selected": true}`) for a decision of an audit
/// design, which may have no `correct` yet.
pub fn parse_jsonl(text: &str) -> Result<History, HistoryError> {
    parse_jsonl_with(text, &mut |_| {})
}

/// [`parse_jsonl`], telling `progress` how many bytes are done every 65,536 lines.
pub fn parse_jsonl_with(text: &str, progress: &mut dyn FnMut(usize)) -> Result<History, HistoryError> {
    let mut h = History::default();
    let mut done = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        done += raw.len() + 1;
        if line % REPORT_EVERY == 0 {
            progress(done.min(text.len()));
        }
        if raw.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| err(line, "(json)", e.to_string()))?;
        let field = |name: &str| v.get(name).ok_or_else(|| err(line, name, "is missing"));
        let timestamp = match field("timestamp")? {
            serde_json::Value::Number(n) => {
                Timestamp(n.as_i64().ok_or_else(|| err(line, "timestamp", "must be an integer or a string"))?)
            }
            serde_json::Value::String(s) => parse_time(line, s)?,
            _ => {
                return Err(err(line, "timestamp", "must be RFC 3339 text or milliseconds"));
            }
        };
        let action = field("action")?.as_str().ok_or_else(|| err(line, "action", "must be a string"))?;
        check_action(line, action)?;
        let confidence = field("confidence")?.as_f64().ok_or_else(|| err(line, "confidence", "must be a number"))?;
        if !(0.0..=1.0).contains(&confidence) {
            return Err(err(line, "confidence", format!("{confidence} is outside 0..1")));
        }
        let draw = match v.get("audit") {
            None | Some(serde_json::Value::Null) => None,
            Some(a) => {
                let p = a.get("probability").and_then(serde_json::Value::as_f64);
                let selected = a.get("selected").and_then(serde_json::Value::as_bool);
                match (p, selected) {
                    (Some(p), Some(selected)) if p > 0.0 && p <= 1.0 => Some(AuditDraw { probability: p, selected }),
                    _ => {
                        return Err(err(
                            line,
                            "audit",
                            "must be {\"probability\": a number in (0, 1], \"selected\": true or false}",
                        ));
                    }
                }
            }
        };
        let correct = match (v.get("correct"), draw) {
            (None | Some(serde_json::Value::Null), Some(d)) => {
                h.push_unlabelled(timestamp, action, confidence, d);
                continue;
            }
            _ => field("correct")?.as_bool().ok_or_else(|| err(line, "correct", "must be true or false"))?,
        };
        let cost = |name: &str| -> Result<Option<f64>, HistoryError> {
            match v.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => match x.as_f64() {
                    Some(c) if c.is_finite() && c >= 0.0 => Ok(Some(c)),
                    _ => Err(err(line, name, "must be a non-negative number")),
                },
            }
        };
        let row = Row {
            timestamp,
            action,
            confidence,
            correct,
            error_cost: cost("error_cost")?,
            escalation_cost: cost("escalation_cost")?,
        };
        match draw {
            Some(d) => h.push_audited(&row, d),
            None => h.push(&row),
        }
    }
    Ok(h)
}

/// Write a history as CSV (the format [`parse_csv`] reads); the unlabelled
/// decisions of an audit design follow the labelled ones.
pub fn write_csv(h: &History, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let design = h.has_audit_design();
    let audit = |d: Option<AuditDraw>| match (design, d) {
        (false, _) => String::new(),
        (true, None) => ",,".to_string(),
        (true, Some(d)) => format!(",{},{}", d.probability, u8::from(d.selected)),
    };
    writeln!(
        out,
        "timestamp,action,confidence,correct,error_cost,escalation_cost{}",
        if design { ",audit_probability,audit_selected" } else { "" }
    )?;
    for i in 0..h.len() {
        let cost = |v: f64| {
            if v.is_nan() { String::new() } else { format!("{v}") }
        };
        writeln!(
            out,
            "{},{},{:.4},{},{},{}{}",
            Timestamp(h.timestamp[i]),
            h.classes[h.class[i] as usize],
            h.confidence[i],
            u8::from(h.correct[i]),
            cost(h.error_cost[i]),
            cost(h.escalation_cost[i]),
            audit(h.audit(i))
        )?;
    }
    for u in &h.unlabelled {
        writeln!(
            out,
            "{},{},{:.4},,,{}",
            Timestamp(u.timestamp),
            h.classes[u.class as usize],
            u.confidence,
            audit(Some(u.audit))
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_agree_and_errors_name_line_and_field() {
        let csv = "timestamp,action,confidence,correct,error_cost\n2026-01-01T00:00:00Z,close_alert,0.9,1,\n1767225600000,isolate_host,0.5,false,40\n";
        let h = parse_csv(csv).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.classes, ["close_alert", "isolate_host"]);
        assert!(h.error_cost[0].is_nan());
        assert_eq!(h.error_cost[1], 40.0);
        let jsonl = "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"action\":\"close_alert\",\"confidence\":0.9,\"correct\":true}\n{\"timestamp\":1767225600000,\"action\":\"isolate_host\",\"confidence\":0.5,\"correct\":false,\"error_cost\":40}\n";
        let j = parse_jsonl(jsonl).unwrap();
        assert_eq!(
            (j.class.clone(), j.confidence.clone(), j.correct.clone(), j.timestamp.clone()),
            (h.class.clone(), h.confidence.clone(), h.correct.clone(), h.timestamp.clone())
        );

        let bad = "timestamp,action,confidence,correct\n2026-01-01T00:00:00Z,a,0.9,1\n2026-01-01T00:00:00Z,a,1.7,1\n";
        assert_eq!(parse_csv(bad).unwrap_err().to_string(), "line 3: confidence: 1.7 is outside 0..1");
        let e = parse_csv("timestamp,action,correct\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "header"));
        let e = parse_csv("timestamp,action,confidence,correct\nyesterday,a,0.5,1\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "timestamp"));
        let e = parse_csv("timestamp,action,confidence,correct\n0,a,0.5,maybe\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "correct"));
        let e = parse_csv("timestamp,action,confidence,correct\n0,a,0.5\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "(row)"));
        let e = parse_jsonl("{\"timestamp\":0,\"action\":\"a\",\"correct\":true}").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "confidence"));
    }

    #[test]
    fn a_window_keeps_its_decisions_and_drops_empty_classes() {
        let mut h = History::default();
        for (t, action) in [(10, "a"), (20, "b"), (30, "a"), (40, "c")] {
            h.push(&Row {
                timestamp: Timestamp(t),
                action,
                confidence: 0.5,
                correct: t != 30,
                error_cost: (t == 30).then_some(7.0),
                escalation_cost: None,
            });
        }
        let w = h.between(Some(Timestamp(20)), Some(Timestamp(40)));
        assert_eq!(w.timestamp, [20, 30]);
        assert_eq!(w.classes, ["b", "a"]);
        assert_eq!(w.correct, [true, false]);
        assert_eq!(w.error_cost[1], 7.0);
        assert!(w.error_cost[0].is_nan());
        assert_eq!(h.between(None, None).len(), 4);
        assert!(h.between(Some(Timestamp(41)), None).is_empty());
    }

    #[test]
    fn csv_round_trips() {
        let mut h = History::default();
        h.push(&Row {
            timestamp: Timestamp(1_000),
            action: "a",
            confidence: 0.25,
            correct: true,
            error_cost: Some(3.0),
            escalation_cost: None,
        });
        let mut out = Vec::new();
        write_csv(&h, &mut out).unwrap();
        let back = parse_csv(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(back.confidence, h.confidence);
        assert_eq!(back.error_cost, h.error_cost);
        assert_eq!(back.timestamp, h.timestamp);
    }
}
