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
