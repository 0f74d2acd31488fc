//! Conformance of REST requests to GitHub's OpenAPI description
//! (`api.github.com.json`, OpenAPI 3.0.3; built in, see [`crate::descriptions`]).
//!
//! For every REST request: the path matches a path template, the method is an operation on it,
//! required query parameters are present, enumerated and integer query parameters have valid
//! values, a required body is present, and a JSON body validates against the operation's
//! request schema (jsonschema, with OpenAPI's `nullable` rewritten as a `null` type). A request
//! that fails gets a 400 with the reason and is counted under `nonconforming` in `/_sim/state`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::server::Req;

/// Where the description is registered for `$ref` resolution.
const DOC_URI: &str = "https://github-sim.invalid/openapi.json";

struct Spec {
    doc: Value,
    /// Path templates split into segments, e.g. `["repos", "{owner}", "{repo}"]`.
    templates: Vec<(String, Vec<String>)>,
    registry: jsonschema::Registry<'static>,
    validators: Mutex<HashMap<(String, String), Arc<jsonschema::Validator>>>,
}

static SPEC: OnceLock<Result<Spec, String>> = OnceLock::new();

/// Rewrites OpenAPI 3.0's `nullable: true` into JSON Schema's `type: [T, "null"]`.
fn denull(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("nullable") == Some(&Value::Bool(true)) {
                m.remove("nullable");
                // A nullable enumeration allows null too (OpenAPI 3.0 reads it so).
                if let Some(Value::Array(values)) = m.get_mut("enum")
                    && !values.contains(&Value::Null)
                {
                    values.push(Value::Null);
                }
                match m.get("type").cloned() {
                    Some(Value::String(t)) => {
                        m.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(m));
                        m.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
            for (_, x) in m.iter_mut() {
                denull(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(denull),
        _ => {}
    }
}

/// Points document-local `$ref`s at the registered document.
fn absolutise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && r.starts_with('#')
            {
                *r = format!("{DOC_URI}{r}");
            }
            m.values_mut().for_each(absolutise);
        }
        Value::Array(a) => a.iter_mut().for_each(absolutise),
        _ => {}
    }
}

fn spec() -> Result<&'static Spec, String> {
    SPEC.get_or_init(|| {
        // Parsed on the first REST request, once per process.
        let bytes = crate::descriptions::rest()?;
        let mut doc: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        denull(&mut doc["components"]);
        denull(&mut doc["paths"]);
        let templates = doc["paths"]
            .as_object()
            .ok_or("no paths")?
            .keys()
            .map(|k| (k.clone(), k.trim_matches('/').split('/').map(str::to_string).collect()))
            .collect();
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft4)
            .add(DOC_URI, json!({"components": doc["components"].clone()}))
            .and_then(|b| b.prepare())
            .map_err(|e| e.to_string())?;
        Ok(Spec { doc, templates, registry, validators: Mutex::new(HashMap::new()) })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn is_param(seg: &str) -> bool {
    seg.starts_with('{') && seg.ends_with('}')
}

/// The template matching `segs`, preferring literal segments over parameters.
/// A trailing `{path}` parameter takes the rest of the path (`/contents/{path}`).
fn find_template<'a>(spec: &'a Spec, segs: &[String]) -> Option<&'a str> {
    let mut best: Option<(&str, usize)> = None;
    for (key, t) in &spec.templates {
        let greedy = t.last().is_some_and(|l| l == "{path}");
        let fits = if greedy { segs.len() >= t.len() } else { segs.len() == t.len() };
        if !fits {
            continue;
        }
        let mut literals = 0;
        let ok = t.iter().zip(segs).all(|(a, b)| {
            if is_param(a) {
                true
            } else {
                literals += 1;
                a == b
            }
        });
        if ok && best.is_none_or(|(_, l)| literals > l) {
            best = Some((key, literals));
        }
    }
    best.map(|(k, _)| k)
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(ptr) => doc.pointer(ptr).unwrap_or(v),
        None => v,
    }
}

/// Checks a request against the API description; `Err` carries the reason.
pub(crate) fn check(req: &Req) -> Result<(), String> {
    let spec = match spec() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "loading GitHub's OpenAPI description");
            return Err(format!("github-sim could not load GitHub's OpenAPI description: {e}"));
        }
    };
    let template =
        find_template(spec, &req.segs).ok_or_else(|| format!("no path {} in GitHub's REST API", req.path))?;
    let method = req.method.as_str().to_ascii_lowercase();
    let item = &spec.doc["paths"][template];
    let op = item.get(&method).ok_or_else(|| format!("{} is not an operation on {template}", req.method))?;
    let params =
        item["parameters"].as_array().into_iter().flatten().chain(op["parameters"].as_array().into_iter().flatten());
    for p in params {
        let p = resolve(&spec.doc, p);
        if p["in"] != "query" {
            continue;
        }
        let name = p["name"].as_str().unwrap_or_default();
        let value = req.q(name);
        match value {
            None if p["required"] == true => {
                return Err(format!("missing required query parameter `{name}` for {} {template}", req.method));
            }
            None => {}
            Some(v) => {
                let schema = &p["schema"];
                if let Some(allowed) = schema["enum"].as_array()
                    && !allowed.iter().any(|a| a.as_str() == Some(v))
                {
                    return Err(format!("query parameter `{name}` must be one of {allowed:?}, got `{v}`"));
                }
                if schema["type"] == "integer" && v.parse::<i64>().is_err() {
                    return Err(format!("query parameter `{name}` must be an integer, got `{v}`"));
                }
            }
        }
    }
    let body = &op["requestBody"];
    if body.is_null() {
        return Ok(());
    }
    if req.body.is_empty() {
        return if body["required"] == true {
            Err(format!("{} {template} requires a JSON body", req.method))
        } else {
            Ok(())
        };
    }
    let Some(schema) = body["content"]["application/json"].get("schema") else { return Ok(()) };
    let value: Value = serde_json::from_slice(&req.body).map_err(|e| format!("body is not JSON: {e}"))?;
    let key = (template.to_string(), method);
    let validator = {
        let cached = spec.validators.lock().expect("validators lock").get(&key).cloned();
        match cached {
            Some(v) => v,
            None => {
                let mut s = schema.clone();
                absolutise(&mut s);
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .with_registry(&spec.registry)
                    .build(&s)
                    .map_err(|e| format!("github-sim could not compile the request schema of {template}: {e}"))?;
                let v = Arc::new(v);
                spec.validators.lock().expect("validators lock").insert(key, v.clone());
                v
            }
        }
    };
    let errors: Vec<String> =
        validator.iter_errors(&value).take(3).map(|e| format!("{e} at `{}`", e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("body does not match the request schema of {} {template}: {}", req.method, errors.join("; ")))
    }
}

/// Validates `value` against the component schema `#/components/schemas/{name}` of GitHub's
/// OpenAPI description (`nullable` read as JSON Schema's `null` type, as for requests). `Err`
/// carries up to five reasons, each with its place in `value`.
pub(crate) fn check_component(name: &str, value: &Value) -> Result<(), String> {
    let spec = spec()?;
    if spec.doc["components"]["schemas"].get(name).is_none() {
        return Err(format!("no schema {name} in GitHub's OpenAPI description"));
    }
    let key = (format!("#/components/schemas/{name}"), String::new());
    let validator = {
        let cached = spec.validators.lock().expect("validators lock").get(&key).cloned();
        match cached {
            Some(v) => v,
            None => {
                let s = json!({"$ref": format!("{DOC_URI}#/components/schemas/{name}")});
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .with_registry(&spec.registry)
                    .build(&s)
                    .map_err(|e| format!("github-sim could not compile the schema {name}: {e}"))?;
                let v = Arc::new(v);
                spec.validators.lock().expect("validators lock").insert(key, v.clone());
                v
            }
        }
    };
    let errors: Vec<String> =
        validator.iter_errors(value).take(5).map(|e| format!("{e} at `{}`", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(format!("not a valid {name}: {}", errors.join("; "))) }
}
