//! The OpenAPI document, committed at `docs/openapi.json` and served at `/openapi.json`.

/// The OpenAPI 3.1 document describing this API.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// Every `(method, path)` the router serves, as it registers them.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    crate::routes::table()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is valid JSON")
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        let served = routes();
        for (method, path) in &served {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is served but not in docs/openapi.json"
            );
        }
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    served.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }

    /// The wire field names serde derives for a struct, read from what its
    /// derived `Deserialize` hands the deserializer; `None` for a struct with
    /// a flattened part (serde then reads a map and names no fields).
    fn wire_fields<T: serde::de::DeserializeOwned>() -> Option<Vec<&'static str>> {
        use serde::de::{self, Visitor};
        struct Probe(Option<&'static [&'static str]>);
        impl<'de> de::Deserializer<'de> for &mut Probe {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = Some(fields);
                Err(de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut probe = Probe(None);
        let _ = T::deserialize(&mut probe);
        probe.0.map(|f| f.to_vec())
    }

    fn properties(doc: &Value, schema: &str) -> Vec<String> {
        let s = &doc["components"]["schemas"][schema];
        assert!(s.is_object(), "docs/openapi.json has no schema {schema}");
        let mut keys: Vec<String> =
            s["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        keys
    }

    /// Each documented schema has exactly the fields of the Rust type the
    /// server reads or writes (the wire types in `arbiter-api` and the records
    /// in core): a field added to, renamed in or removed from a type without
    /// the document fails here.
    #[test]
    fn every_schema_has_the_fields_of_its_type() {
        use arbiter_api::{cases, decisions, keys, learning, policy, reviews, webhooks};
        use arbiter_core::{audit as core_audit, key, review, webhook};
        let doc = doc();
        fn names<T: serde::de::DeserializeOwned>() -> Vec<String> {
            let mut f: Vec<String> = wire_fields::<T>()
                .unwrap_or_else(|| panic!("{} flattens a part: list its parts", std::any::type_name::<T>()))
                .iter()
                .map(|s| s.to_string())
                .collect();
            f.sort();
            f
        }
        fn with(mut a: Vec<String>, extra: &[&str]) -> Vec<String> {
            a.extend(extra.iter().map(|s| s.to_string()));
            a.sort();
            a
        }
        let expected: Vec<(&str, Vec<String>)> = vec![
            ("Problem", names::<arbiter_api::problem::Problem>()),
            ("Action", names::<arbiter_core::Action>()),
            ("DecisionRequest", names::<decisions::DecisionRequest>()),
            ("OutcomeRequest", names::<decisions::OutcomeRequest>()),
            ("FiredTrigger", names::<arbiter_core::FiredTrigger>()),
            ("Tier", names::<arbiter_core::Tier>()),
            ("Escalation", names::<arbiter_core::Escalation>()),
            ("FinalVerdict", names::<arbiter_core::FinalVerdict>()),
            ("Outcome", names::<arbiter_core::Outcome>()),
            ("Decision", names::<arbiter_core::Decision>()),
            ("Answer", names::<arbiter_core::Answer>()),
            ("Case", names::<arbiter_core::Case>()),
            ("CaseDecisionRequest", names::<cases::CaseDecisionRequest>()),
            ("CaseDecisionResponse", names::<cases::CaseDecisionResponse>()),
            ("LabelRequest", names::<cases::LabelRequest>()),
            ("LabelResponse", names::<cases::LabelResponse>()),
            ("AuditDraw", names::<arbiter_core::sampling::AuditDraw>()),
            ("ClockRequest", names::<arbiter_api::drift::ClockRequest>()),
            ("ClockView", names::<arbiter_api::drift::ClockView>()),
            ("Event", names::<core_audit::Event>()),
            ("PolicyView", with(names::<arbiter_core::policy_version::PolicyVersion>(), &["triggers", "active"])),
            ("PolicyVersionSummary", names::<arbiter_core::policy_version::PolicyVersionSummary>()),
            ("KeyRecord", names::<key::KeyRecord>()),
            ("CreateKey", names::<keys::CreateKey>()),
            ("CreatedKey", with(names::<key::KeyRecord>(), &["key", "warnings"])),
            ("RotateKey", names::<keys::RotateKey>()),
            ("Claim", names::<arbiter_core::Claim>()),
            ("Comment", names::<arbiter_core::Comment>()),
            ("InterventionSpec", names::<review::InterventionSpec>()),
            ("Review", names::<review::Review>()),
            ("QueueItem", names::<arbiter_core::queue::QueueItem>()),
            ("QueueView", names::<cases::QueueView>()),
            ("ClaimRequest", names::<cases::ClaimRequest>()),
            ("ReassignRequest", names::<cases::ReassignRequest>()),
            ("CommentRequest", names::<cases::CommentRequest>()),
            ("OpenReview", names::<reviews::OpenReview>()),
            ("InterventionUpdate", names::<reviews::InterventionUpdate>()),
            ("CloseRequest", names::<reviews::CloseRequest>()),
            ("ReviewView", names::<reviews::ReviewView>()),
            // the signing secret is write-once: shown at creation (CreatedWebhook), never serialized after
            ("Webhook", names::<webhook::Webhook>().into_iter().filter(|f| f != "secret").collect()),
            ("CreateWebhook", names::<webhooks::CreateWebhook>()),
            ("Delivery", names::<webhook::Delivery>()),
            ("PolicyStats", names::<arbiter_policy::backtest::PolicyStats>()),
            ("VerdictChange", names::<arbiter_policy::backtest::VerdictChange>()),
            ("BacktestReport", names::<arbiter_policy::backtest::BacktestReport>()),
            ("BacktestRequest", names::<policy::BacktestRequest>()),
            ("DriftStatus", names::<arbiter_api::drift::DriftStatus>()),
            ("SequentialTest", names::<arbiter_core::drift::SequentialTest>()),
            ("DriftEpisode", names::<arbiter_core::drift::episode::Episode>()),
            ("EpisodeList", names::<arbiter_api::drift::EpisodeList>()),
            ("AcknowledgeRequest", names::<arbiter_api::drift::AcknowledgeRequest>()),
            ("ChainHead", names::<core_audit::ChainHead>()),
            ("Verification", with(names::<core_audit::AuditReport>(), &["ok"])),
            ("InterventionCheck", names::<review::InterventionCheck>()),
            ("HumanAnswer", names::<arbiter_core::lesson::HumanAnswer>()),
            ("Lesson", names::<arbiter_core::lesson::Lesson>()),
            ("LessonPatch", names::<arbiter_core::lesson::LessonPatch>()),
            ("RateTest", names::<arbiter_core::drift::RateTest>()),
            ("Recurrence", names::<arbiter_core::recurrence::Recurrence>()),
            ("LessonView", names::<learning::LessonView>()),
            ("UndoneBy", names::<learning::UndoneBy>()),
            ("UndoneLesson", names::<policy::UndoneLesson>()),
            ("CreateLesson", names::<learning::CreateLesson>()),
            ("SearchHit", names::<arbiter_core::search::SearchHit>()),
            ("SearchResults", names::<learning::SearchResults>()),
            ("SimilarCase", names::<arbiter_core::insight::SimilarCase>()),
            ("SimilarLesson", names::<arbiter_core::insight::SimilarLesson>()),
            ("AgentTotals", names::<arbiter_core::insight::AgentTotals>()),
            ("BlastRadius", names::<arbiter_core::insight::BlastRadius>()),
            ("CaseInsights", names::<learning::CaseInsights>()),
            ("GuidanceItem", names::<arbiter_core::lesson::GuidanceItem>()),
            ("Guidance", names::<learning::Guidance>()),
            ("Atom", names::<arbiter_core::suggest::Atom>()),
            ("Pattern", names::<arbiter_core::suggest::Pattern>()),
            ("SuggestionBacktest", names::<arbiter_core::suggest::SuggestionBacktest>()),
            ("Suggestion", names::<arbiter_core::suggest::Suggestion>()),
            ("SuggestionList", names::<learning::SuggestionList>()),
            ("RefreshSuggestions", names::<learning::RefreshSuggestions>()),
            ("AcceptedSuggestion", names::<learning::AcceptedSuggestion>()),
            ("Span", names::<arbiter_core::trace::Span>()),
            ("SpanEvent", names::<arbiter_core::trace::SpanEvent>()),
            ("Dropped", names::<arbiter_core::trace::Dropped>()),
            ("SpanSummary", names::<arbiter_core::trace::SpanSummary>()),
            ("TreeRow", names::<arbiter_core::trace::TreeRow>()),
            ("TraceTree", names::<arbiter_core::trace::TraceTree>()),
            ("Bundle", names::<arbiter_core::replay::Bundle>()),
            ("BundlePolicy", names::<arbiter_core::replay::BundlePolicy>()),
            ("BundleTrace", names::<arbiter_core::replay::BundleTrace>()),
            ("Cassette", names::<arbiter_core::replay::Cassette>()),
            ("RecordedToolCall", names::<arbiter_core::replay::RecordedToolCall>()),
            ("RecordedModelCall", names::<arbiter_core::replay::RecordedModelCall>()),
            ("WithdrawRequest", names::<arbiter_api::decisions::WithdrawRequest>()),
            ("ToolResult", names::<arbiter_core::ToolResult>()),
            ("ToolResultRequest", names::<arbiter_api::decisions::ToolResultRequest>()),
            ("Receipt", names::<arbiter_core::receipt::Receipt>()),
            ("ReceiptKey", names::<arbiter_core::receipt::ReceiptKey>()),
            ("ReceiptKeys", names::<arbiter_api::receipts::ReceiptKeys>()),
            ("ConsumeRequest", names::<arbiter_api::receipts::ConsumeRequest>()),
            ("Consumption", names::<arbiter_store::Consumption>()),
            ("AlwaysDeniedRequest", names::<arbiter_api::policy::AlwaysDeniedRequest>()),
            ("AlwaysDenied", names::<arbiter_api::policy::AlwaysDenied>()),
            ("Project", names::<arbiter_core::Project>()),
            ("CreateProject", names::<arbiter_api::projects::CreateProject>()),
            ("Membership", names::<arbiter_core::Membership>()),
            ("GrantMembership", names::<arbiter_api::projects::GrantMembership>()),
            ("Grant", names::<arbiter_core::Grant>()),
            ("Identity", names::<arbiter_core::Identity>()),
            ("Person", names::<arbiter_core::Person>()),
            ("LinkSlack", names::<arbiter_api::people::LinkSlack>()),
        ];
        for (schema, fields) in &expected {
            assert_eq!(&properties(&doc, schema), fields, "schema {schema} and its Rust type disagree");
        }
        // and no documented schema escapes the check, except the composed stage entries
        let checked: Vec<&str> = expected.iter().map(|(s, _)| *s).collect();
        // OtlpExportResponse is OTLP's own message (opentelemetry-proto), not a type of ours
        let composed =
            ["PolicyError", "StageEntry", "StageRequest", "Intervention", "CreatedWebhook", "OtlpExportResponse"];
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(
                checked.contains(&name.as_str()) || composed.contains(&name.as_str()),
                "schema {name} is not compared with a Rust type"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let name = r.strip_prefix("#/components/schemas/").expect("local schema ref");
                        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {r}");
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        walk(&doc, &doc);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
