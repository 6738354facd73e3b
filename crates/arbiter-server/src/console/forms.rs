//! Reading the console's forms into the application layer's inputs, and
//! option lists built from the core enums' wire names.

use crate::app::cases::{AnswerInput, ReviewerChoice};
use crate::error::ApiError;
use arbiter_core::WireName;
use arbiter_core::review::*;
use maud::{Markup, html};

/// A submitted form, in order (a field may repeat).
pub type Fields = Vec<(String, String)>;

/// The first value of a field, or "" when absent.
pub fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The last value of a field: a submit button's `op` overrides a hidden one.
pub fn last<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.iter().rev().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// A field's trimmed, non-empty value.
pub fn optional(f: &Fields, name: &str) -> Option<String> {
    Some(field(f, name).trim().to_string()).filter(|s| !s.is_empty())
}

/// Non-empty trimmed lines of a text area.
pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A field that must be one of `T`'s wire names.
pub fn choice<T: WireName>(f: &Fields, name: &str) -> Result<T, ApiError> {
    T::from_wire_name(field(f, name)).ok_or_else(|| {
        let names: Vec<&str> = T::all().iter().map(|v| v.wire_name()).collect();
        ApiError::invalid(name, format!("choose one of {}", names.join(", ")))
    })
}

/// `<option>`s for every value of `T`, `selected` marked.
pub fn options<T: WireName>(selected: Option<T>) -> Markup {
    html! {
        @for v in T::all() {
            option value=(v.wire_name()) selected[Some(*v) == selected] { (v.wire_name()) }
        }
    }
}

/// `<option>`s for role tags.
pub fn tag_options<'a>(tags: impl IntoIterator<Item = &'a String>) -> Markup {
    html! { @for t in tags { option value=(t) { (t) } } }
}

/// The case page's decision form.
pub fn answer(f: &Fields) -> Result<AnswerInput, ApiError> {
    let choice: ReviewerChoice = choice(f, "decision")?;
    let args = match choice {
        ReviewerChoice::Modify => Some(
            serde_json::from_str::<serde_json::Value>(field(f, "args"))
                .map_err(|e| ApiError::invalid("args", format!("the arguments are not valid JSON: {e}")))?,
        ),
        _ => None,
    };
    let failure_modes =
        field(f, "failure_modes").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    Ok(AnswerInput { choice, rationale: field(f, "rationale").to_string(), args, failure_modes, via: None })
}

/// A review page's stage entry form.
pub fn stage_record(f: &Fields) -> Result<StageRecord, ApiError> {
    let text = |name: &str| field(f, name).trim().to_string();
    Ok(match choice::<Stage>(f, "stage")? {
        Stage::ContextualAnalysis => StageRecord::ContextualAnalysis(ContextualAnalysis {
            reproduced: choice(f, "reproduced")?,
            steps: lines(field(f, "steps")),
            environment: text("environment"),
            links: lines(field(f, "links"))
                .into_iter()
                .map(|d| Link { decision_id: Some(d), ..Link::default() })
                .collect(),
            bundle_sha256: optional(f, "bundle_sha256"),
            differences: optional(f, "differences"),
        }),
        Stage::TraceInspection => StageRecord::TraceInspection(TraceInspection {
            findings: vec![Finding {
                decision_id: field(f, "decision_id").to_string(),
                span_id: optional(f, "span_id"),
                kind: choice(f, "kind")?,
                note: text("note"),
            }],
        }),
        Stage::ImpactAssessment => StageRecord::ImpactAssessment(ImpactAssessment {
            severity: choice(f, "severity")?,
            scope: Scope {
                count: field(f, "count").trim().parse().map_err(|_| ApiError::invalid("count", "a whole number"))?,
                entities: lines(field(f, "entities"))
                    .into_iter()
                    .map(|l| match l.split_once(':') {
                        Some((k, i)) => Entity { kind: k.trim().to_string(), id: i.trim().to_string() },
                        None => Entity { kind: "entity".into(), id: l },
                    })
                    .collect(),
            },
            technical_correctness: text("technical_correctness"),
            user_experience: text("user_experience"),
        }),
        Stage::ResolutionDesign => match optional(f, "no_intervention_needed") {
            Some(why) => StageRecord::ResolutionDesign(ResolutionDesign {
                interventions: vec![],
                no_intervention_needed: Some(why),
            }),
            None => StageRecord::ResolutionDesign(ResolutionDesign {
                interventions: vec![InterventionSpec {
                    kind: choice(f, "kind")?,
                    description: text("description"),
                    owner: text("owner"),
                    expected_effect: text("expected_effect"),
                    policy_version: optional(f, "policy_version"),
                }],
                no_intervention_needed: None,
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn option_lists_come_from_the_enums() {
        let html = options(Some(ImpactSeverity::S3)).into_string();
        for s in ImpactSeverity::ALL {
            assert!(html.contains(&format!(r#"value="{}""#, s.as_str())), "{html}");
        }
        assert!(html.contains(r#"<option value="S3" selected>"#), "{html}");
        assert_eq!(html.matches("selected").count(), 1);
    }

    #[test]
    fn stage_forms_parse_into_records_and_name_the_bad_field() {
        let f = form(&[("stage", "impact_assessment"), ("severity", "S2"), ("count", "3"), ("entities", "host:a\nb")]);
        let StageRecord::ImpactAssessment(a) = stage_record(&f).unwrap() else { panic!("wrong stage") };
        assert_eq!(a.severity, ImpactSeverity::S2);
        assert_eq!(a.scope.entities[0], Entity { kind: "host".into(), id: "a".into() });
        assert_eq!(a.scope.entities[1].kind, "entity");
        let bad = stage_record(&form(&[("stage", "impact_assessment"), ("severity", "S9")])).unwrap_err();
        assert!(
            matches!(&bad, ApiError::Invalid { field, message } if field == "severity" && message.contains("S1, S2, S3, S4")),
            "{bad}"
        );
        let unknown = stage_record(&form(&[("stage", "vibes")])).unwrap_err();
        assert!(matches!(&unknown, ApiError::Invalid { field, .. } if field == "stage"), "{unknown}");
    }

    #[test]
    fn the_last_op_wins() {
        let f = form(&[("op", "comment"), ("op", "promote")]);
        assert_eq!(last(&f, "op"), "promote");
        assert_eq!(field(&f, "op"), "comment");
    }
}
